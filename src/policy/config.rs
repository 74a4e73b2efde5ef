//! Resolved settings: what a target runs with after the levels are merged (target > route >
//! provider > defaults > built-in defaults).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ErrorClass;

/// A way to finish a streamed answer that failed after part of it reached the consumer, as a
/// route's or target's `resume` list names it (tried in the order written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Resume {
    /// Hold back the first part of the answer (`holdback` content events, or all of it) before
    /// relaying it, so that a failure inside it is retried from scratch, unseen.
    Holdback,
    /// Continue with the partial answer as an assistant prefill, on a model that takes one.
    Prefill,
    /// Continue on any model by asking it to go on from where the partial answer (given in the
    /// conversation) stops; the overlap it repeats is trimmed.
    Instructed,
    /// End the stream with the error.
    None,
}

impl Resume {
    /// The name used in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Resume::Holdback => "holdback",
            Resume::Prefill => "prefill",
            Resume::Instructed => "instructed",
            Resume::None => "none",
        }
    }
}

/// The default `resume`: prefill where the model takes it, else an instructed continuation.
pub const DEFAULT_RESUME: [Resume; 2] = [Resume::Prefill, Resume::Instructed];

/// How much of a streamed answer `holdback` keeps before relaying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Holdback {
    /// The first this many content events (text, tool-call, thinking and refusal deltas: about a
    /// token each).
    Events(u32),
    /// The whole answer.
    All,
}

/// The window `holdback` keeps when the policy lists it without a size.
pub const DEFAULT_HOLDBACK: Holdback = Holdback::Events(32);

/// Retry settings for one target. `max_attempts` counts attempts on that target (3 = two retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetryConfig {
    /// Attempts on one target, the first included.
    pub max_attempts: u32,
    /// First backoff.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub base: Duration,
    /// Largest backoff.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub max: Duration,
    /// Longest server-requested delay honoured; a longer `retry-after` means "move on".
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub retry_after_cap: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        // the official SDKs' values (WIRE.md)
        RetryConfig {
            max_attempts: 3,
            base: Duration::from_millis(500),
            max: Duration::from_secs(8),
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

impl RetryConfig {
    /// The SDK backoff before retry number `retry` (0 = first retry): `min(base * 2^retry, max)`
    /// shortened by up to 25% jitter. `jitter` is a random number in `0..1`.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exp = self.base.saturating_mul(2u32.saturating_pow(retry.min(30)));
        let capped = exp.min(self.max);
        capped.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
    }
}

/// Time limits. `first_token` is the time to headers for non-streaming calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    /// TCP + TLS connect.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub connect: Duration,
    /// Until the first token (streaming) or the response headers.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub first_token: Duration,
    /// Longest gap between stream events.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub idle: Duration,
    /// One attempt, start to end.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub attempt: Duration,
    /// The whole request, every attempt and wait included.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            first_token: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            attempt: Duration::from_secs(60),
            total: Duration::from_secs(120),
        }
    }
}

/// How an open breaker learns that its target is back (a provider's `probe`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeMode {
    /// The router probes at the end of each cooldown, in the background, with the cheapest real
    /// call (a one-token answer): no user request is ever the probe, and a target that is back
    /// carries traffic again within one cooldown.
    #[default]
    Active,
    /// The first request after the cooldown is the probe.
    Passive,
}

impl ProbeMode {
    /// The name used in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeMode::Active => "active",
            ProbeMode::Passive => "passive",
        }
    }
}

/// Consecutive-failure breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Counted failures in a row that open the breaker.
    pub consecutive_failures: u32,
    /// First cooldown before one probe is let through.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub cooldown: Duration,
    /// The cooldown doubles on each failed probe, up to this.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub max_cooldown: Duration,
    /// Who probes when the cooldown ends: the router itself, or the next request.
    pub probe: ProbeMode,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        // with active probes a short cooldown costs a one-token call per cooldown to a dead
        // target, and brings a target that is back into service within 5 to 10 s
        BreakerConfig {
            consecutive_failures: 5,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(10),
            probe: ProbeMode::Active,
        }
    }
}

/// A spending budget: at most `usd` in every window of `per` (windows aligned to the Unix epoch,
/// so a `1d` budget resets at midnight UTC, a `1h` one on the hour).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budget {
    /// USD per window.
    pub usd: f64,
    /// The window.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub per: std::time::Duration,
}

/// When a route starts a hedged attempt: after a fixed wait, or after the serving target's
/// observed percentile of time to first token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeAfter {
    /// After this long without a first token.
    Fixed(Duration),
    /// After the target's observed `pNN` time to first token (its last 64 answers; no hedge until
    /// it has 16).
    Percentile(u8),
}

impl Serialize for HedgeAfter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HedgeAfter::Fixed(d) => s.serialize_str(&crate::duration::format_duration(*d)),
            HedgeAfter::Percentile(p) => s.collect_str(&format_args!("p{p}")),
        }
    }
}

/// Hedged requests (`hedge = { after, max }`): when an attempt has produced no first token (or, not
/// streamed, no answer) by `after`, the next target is started too; the first to produce content
/// serves, the others are cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hedge {
    /// When to start the next target.
    pub after: HedgeAfter,
    /// The most hedged attempts one request starts.
    pub max: u32,
}

/// What a provider's open incident does to the order of the routes' targets
/// (`on_incident` on a provider with a `status_page`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnIncident {
    /// Nothing: the incident is reported, the order stays.
    #[default]
    Report,
    /// While the page reports a major or critical outage, the provider's targets move to the back
    /// of every route's order (never skipped: status pages lag and under-report).
    Deprioritize,
}

/// A provider's status page, as the policy enables it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusPageConfig {
    /// The address of its `summary.json`.
    pub url: String,
    /// How often it is read.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub interval: Duration,
    /// What an outage it reports does to the routes.
    pub on_incident: OnIncident,
}

/// How often a status page is read unless the policy says (Statuspage caches its summary for
/// about a minute).
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(60);

/// Local rate limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute (estimated from the request, corrected by reported usage).
    pub tpm: Option<u32>,
    /// Requests in flight at once.
    pub concurrency: Option<u32>,
}

impl Limits {
    /// True when no limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.concurrency.is_none()
    }
}

/// What a failure does to the breakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerEffect {
    /// Nothing.
    None,
    /// Counts toward the target's breaker.
    CountTarget,
    /// Counts toward the provider's breaker (and the target's).
    CountProvider,
    /// Opens the target's breaker at once.
    TripTarget,
    /// Opens the provider's breaker at once.
    TripProvider,
}

/// What the router does with one error class (DESIGN.md §2), overridable per route with `[on.CLASS]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClassAction {
    /// Retry on the same target.
    pub retry: bool,
    /// Move on to the next target.
    pub failover: bool,
    /// Effect on breakers.
    pub breaker: BreakerEffect,
}

impl ClassAction {
    /// The default action for a class.
    pub fn default_for(class: ErrorClass) -> Self {
        use BreakerEffect as B;
        use ErrorClass as C;
        let (retry, failover, breaker) = match class {
            C::RateLimited => (true, true, B::None),
            C::QuotaExhausted => (false, true, B::TripProvider),
            C::Overloaded | C::ServerError => (true, true, B::CountTarget),
            // a dropped stream is the most passing of faults: the same target continues it
            C::StreamInterrupted => (true, true, B::CountTarget),
            C::Timeout | C::MalformedResponse => (false, true, B::CountTarget),
            C::Connection => (true, true, B::CountProvider),
            C::Authentication | C::PermissionDenied => (false, true, B::TripProvider),
            C::NotFound => (false, true, B::TripTarget),
            C::ContextLengthExceeded => (false, true, B::None),
            C::ContentFiltered | C::InvalidRequest | C::RequestTooLarge => (false, false, B::None),
            // a spent provider budget is skipped by admission; a failure of this class is final
            C::BudgetExhausted => (false, false, B::None),
        };
        ClassAction { retry, failover, breaker }
    }
}

/// The action for every class on one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassActions(Vec<(ErrorClass, ClassAction)>);

impl Default for ClassActions {
    fn default() -> Self {
        ClassActions(ErrorClass::ALL.iter().map(|&c| (c, ClassAction::default_for(c))).collect())
    }
}

impl ClassActions {
    /// The action for `class`.
    pub fn get(&self, class: ErrorClass) -> ClassAction {
        self.0.iter().find(|(c, _)| *c == class).map_or_else(|| ClassAction::default_for(class), |(_, a)| *a)
    }

    pub(crate) fn set(&mut self, class: ErrorClass, action: ClassAction) {
        if let Some(slot) = self.0.iter_mut().find(|(c, _)| *c == class) {
            slot.1 = action;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_sdk_formula() {
        let r = RetryConfig::default();
        assert_eq!(r.backoff(0, 0.0), Duration::from_millis(500));
        assert_eq!(r.backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(r.backoff(4, 0.0), Duration::from_secs(8));
        assert_eq!(r.backoff(10, 0.0), Duration::from_secs(8));
        assert_eq!(r.backoff(0, 1.0), Duration::from_millis(375));
    }

    #[test]
    fn default_actions_match_the_design_table() {
        let a = ClassActions::default();
        assert!(a.get(ErrorClass::RateLimited).retry);
        assert!(!a.get(ErrorClass::Timeout).retry);
        assert!(a.get(ErrorClass::Timeout).failover);
        assert!(!a.get(ErrorClass::ContentFiltered).failover);
        assert_eq!(a.get(ErrorClass::QuotaExhausted).breaker, BreakerEffect::TripProvider);
        assert_eq!(a.get(ErrorClass::NotFound).breaker, BreakerEffect::TripTarget);
        assert_eq!(a.get(ErrorClass::Connection).breaker, BreakerEffect::CountProvider);
    }
}
