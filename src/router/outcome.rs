//! What a routed request reports: the attempts it made, and its success or failure.

use std::time::Duration;

use serde::Serialize;

use crate::chat::{ChatResponse, Usage};
use crate::error::{ErrorClass, Partial, ProviderError};

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// It served the answer.
    Ok,
    /// It failed.
    Error,
    /// The target was not tried.
    Skipped,
    /// A hedged request's attempt that was still waiting for its first token when another one
    /// produced content, and was cancelled.
    Cancelled,
}

impl AttemptOutcome {
    /// The `snake_case` name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Ok => "ok",
            AttemptOutcome::Error => "error",
            AttemptOutcome::Skipped => "skipped",
            AttemptOutcome::Cancelled => "cancelled",
        }
    }
}

/// Why a target was not tried. Serialized as its `snake_case` name; `Unsupported` as
/// `"unsupported: DETAIL"` (`"unsupported: image input"`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The target's breaker is open.
    BreakerOpen,
    /// The provider's breaker is open.
    ProviderBreakerOpen,
    /// A probe is already in flight.
    ProbeInFlight,
    /// Paused by the provider's `retry-after`.
    Paused,
    /// A local `rpm`/`tpm` limit is exhausted.
    RateLimit,
    /// The provider's rate-limit headers said its budget is spent until a reset still to come.
    ProviderBudget,
    /// The provider's spending budget (`budget = { usd, per }`) is spent for this window.
    Budget,
    /// The local `concurrency` cap is reached.
    Concurrency,
    /// A shared limit could not be checked (Redis did not answer in time) and the policy says
    /// `on_state_error = "fail_closed"`.
    SharedStateUnavailable,
    /// The request needs more tokens than the target's `tpm`.
    TooLarge,
    /// Its context window is not larger than the one that overflowed.
    ContextTooSmall,
    /// The partial answer needs a target that accepts prefill.
    NoPrefill,
    /// The target's `resume` strategies cannot continue a partial answer.
    NoResume,
    /// The request's time budget ran out first.
    Deadline,
    /// The target cannot honour what the request needs: its wire has no place for a field (under
    /// `unsupported = "error"`), a value is out of its range, or its profile lacks a capability.
    Unsupported(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Unsupported(detail) => write!(f, "unsupported: {detail}"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl Serialize for SkipReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SkipReason::Unsupported(_) => s.collect_str(self),
            other => s.serialize_str(other.as_str()),
        }
    }
}

impl SkipReason {
    /// The `snake_case` name (`unsupported` for every [`SkipReason::Unsupported`]; its
    /// `Display` adds the detail).
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::BreakerOpen => "breaker_open",
            SkipReason::ProviderBreakerOpen => "provider_breaker_open",
            SkipReason::ProbeInFlight => "probe_in_flight",
            SkipReason::Paused => "paused",
            SkipReason::RateLimit => "rate_limit",
            SkipReason::ProviderBudget => "provider budget",
            SkipReason::Budget => "budget",
            SkipReason::Concurrency => "concurrency",
            SkipReason::SharedStateUnavailable => "shared_state_unavailable",
            SkipReason::TooLarge => "too_large",
            SkipReason::ContextTooSmall => "context_too_small",
            SkipReason::NoPrefill => "no_prefill",
            SkipReason::NoResume => "no_resume",
            SkipReason::Deadline => "deadline",
            SkipReason::Unsupported(_) => "unsupported",
        }
    }
}

/// One attempt (or skip) on one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// Provider name.
    pub provider: String,
    /// Model.
    pub model: String,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The error class, when it failed.
    pub class: Option<ErrorClass>,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// Time spent, waits before it excluded.
    #[serde(rename = "elapsed_ms", serialize_with = "crate::duration::ser::millis")]
    pub elapsed: Duration,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    /// Whether it was a breaker probe.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub probe: bool,
    /// Whether it was started as a hedge, beside an attempt that had produced no first token in
    /// time (`hedge = { after, max }`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hedge: bool,
    /// For a stream that failed after content: the output tokens it generated first (the
    /// provider's count when the stream reported one, else the content deltas received, about a
    /// token each), which the provider may bill although the answer was finished elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// What the attempt cost in USD, from the model profile's prices: the answer's usage for the
    /// attempt that served; for a stream that failed after content, the tokens the provider
    /// bills for it (its prompt, and the output it generated first) although the answer was
    /// finished elsewhere; for a cancelled hedged attempt, its prompt (the provider read it, and
    /// may bill more). `None` when the model has no profile, or nothing was billed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// The cost of `attempts` (those `which` selects) in USD, if any of them has one.
fn cost_of(attempts: &[Attempt], which: impl Fn(&Attempt) -> bool) -> Option<f64> {
    attempts.iter().filter(|a| which(a)).filter_map(|a| a.cost_usd).reduce(|a, b| a + b)
}

/// The cost of every attempt, and of the ones that did not serve (failed or cancelled: billed
/// although the answer came from another attempt), in USD.
pub(crate) fn costs(attempts: &[Attempt]) -> (Option<f64>, Option<f64>) {
    (cost_of(attempts, |_| true), cost_of(attempts, |a| a.outcome != AttemptOutcome::Ok))
}

impl Attempt {
    /// With its cost: `usage` on `t`'s model at its profile's prices.
    pub(crate) fn priced(mut self, t: &crate::policy::TargetPolicy, usage: &crate::chat::Usage) -> Attempt {
        // a model without prices (added by a policy without them, a local server) has no cost
        self.cost_usd = t
            .model_profile
            .as_ref()
            .filter(|p| p.input_price > 0.0 || p.output_price > 0.0)
            .map(|p| crate::cost::cost_usd(p, usage));
        self
    }

    /// An attempt on `t` that ended with `outcome` after `elapsed`; no class, status or cost yet.
    pub(crate) fn new(
        t: &crate::policy::TargetPolicy,
        outcome: AttemptOutcome,
        elapsed: std::time::Duration,
    ) -> Attempt {
        Attempt {
            provider: t.provider.clone(),
            model: t.model.clone(),
            outcome,
            class: None,
            status: None,
            elapsed,
            skip_reason: None,
            probe: false,
            hedge: false,
            output_tokens: None,
            cost_usd: None,
        }
    }
}

/// A routed token count ([`super::Router::count_tokens`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RoutedCount {
    /// The route.
    pub route: String,
    /// The provider that counted.
    pub provider: String,
    /// The model counted for.
    pub model: String,
    /// The count.
    pub count: crate::provider::TokenCount,
    /// Every attempt, in order, the successful one last.
    pub attempts: Vec<Attempt>,
}

/// Routed embeddings ([`super::Router::embed`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RoutedEmbedding {
    /// The route.
    pub route: String,
    /// The provider that answered.
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// Its answer.
    pub response: crate::embed::EmbeddingResponse,
    /// Every attempt, in order, the successful one last.
    pub attempts: Vec<Attempt>,
}

impl RoutedEmbedding {
    /// What the embeddings cost in USD (the input's tokens at the model's price), if the model
    /// has a price.
    pub fn cost_usd(&self) -> Option<f64> {
        costs(&self.attempts).0
    }
}

/// A successful routed answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutedResponse {
    /// The route.
    pub route: String,
    /// The answer; its `provider` and `model` name what actually served it.
    pub response: ChatResponse,
    /// Every attempt, in order, the successful one last.
    pub attempts: Vec<Attempt>,
    /// Request fields the serving target's wire could not carry and that were left out (under
    /// `unsupported = "drop"`, and harmless ones such as cache marks always); the gateway lists
    /// them in `x-switchyard-dropped`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<crate::wire::Unsupported>,
}

impl RoutedResponse {
    /// What the answer cost in USD, every attempt included (see [`Attempt::cost_usd`]); `None`
    /// when no attempt's model has prices.
    pub fn cost_usd(&self) -> Option<f64> {
        costs(&self.attempts).0
    }

    /// The part of [`RoutedResponse::cost_usd`] billed for attempts that did not serve (streams
    /// cut after content, cancelled hedges).
    pub fn failed_cost_usd(&self) -> Option<f64> {
        costs(&self.attempts).1
    }

    /// Provider that served.
    pub fn provider(&self) -> &str {
        &self.response.provider
    }

    /// Model that served.
    pub fn model(&self) -> &str {
        &self.response.model
    }

    /// Usage of the serving model.
    pub fn usage(&self) -> Usage {
        self.response.usage
    }
}

/// A route that failed: the class of the failure, the last provider error, and every attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RouteFailure {
    /// The route.
    pub route: String,
    /// The class of the failure that ended the request.
    pub class: ErrorClass,
    /// What happened.
    pub message: String,
    /// Provider that last failed (or was last considered).
    pub provider: Option<String>,
    /// Model that last failed.
    pub model: Option<String>,
    /// HTTP status of the last failure.
    pub status: Option<u16>,
    /// When the soonest target frees up, if the request was refused for local limits or pauses.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// The provider error that ended the request, if one did.
    #[serde(skip)]
    pub error: Option<ProviderError>,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// The failure came after part of a streamed answer reached the consumer (which has it in
    /// [`RouteFailure::partial`]); `class` is still the failure's own (`overloaded`,
    /// `server_error`, ...), `stream_interrupted` only for a stream that just ended.
    pub mid_stream: bool,
    /// Open incidents on the status pages of the providers that failed (`status_page`), also
    /// named at the end of `message`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provider_incidents: Vec<crate::status_page::ProviderIncident>,
}

impl RouteFailure {
    /// What the failed attempts cost in USD (streams cut after content are billed), if any did.
    pub fn cost_usd(&self) -> Option<f64> {
        costs(&self.attempts).0
    }
}

impl std::fmt::Display for RouteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "route `{}` failed: {}: {}", self.route, self.class, self.message)
    }
}

impl std::error::Error for RouteFailure {
    /// The provider error that ended the request, if one did.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.as_ref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl RouteFailure {
    /// What a stream delivered before it failed, if anything.
    pub fn partial(&self) -> Option<&Partial> {
        self.error.as_ref().and_then(|e| e.partial())
    }
}

/// Why a routed request failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The policy has no such route.
    #[error("unknown route `{0}`")]
    UnknownRoute(String),
    /// Every option was tried or ruled out. Its `source()` is the provider error that ended the
    /// request, if one did.
    #[error(transparent)]
    Failed(Box<RouteFailure>),
}

impl RouterError {
    /// The error class (`invalid_request` for an unknown route).
    pub fn class(&self) -> ErrorClass {
        match self {
            RouterError::UnknownRoute(_) => ErrorClass::InvalidRequest,
            RouterError::Failed(f) => f.class,
        }
    }

    /// The failure details, when the route existed.
    pub fn failure(&self) -> Option<&RouteFailure> {
        match self {
            RouterError::Failed(f) => Some(f),
            RouterError::UnknownRoute(_) => None,
        }
    }

    /// The attempts made.
    pub fn attempts(&self) -> &[Attempt] {
        self.failure().map_or(&[], |f| &f.attempts)
    }
}
