//! Router events on a broadcast channel: attempts, breaker transitions, failovers, reloads.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use super::breaker::BreakerState;
use super::outcome::{AttemptOutcome, SkipReason};
use crate::error::ErrorClass;

/// Something the router did or saw. Subscribe with `Router::subscribe`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RouterEvent {
    /// An attempt finished (or a target was skipped).
    Attempt {
        /// Route.
        route: String,
        /// What the call did: `chat`, `count_tokens` or `embeddings`.
        operation: &'static str,
        /// Provider.
        provider: String,
        /// Model.
        model: String,
        /// Outcome.
        outcome: AttemptOutcome,
        /// Error class, when it failed.
        class: Option<ErrorClass>,
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// Time spent.
        #[serde(rename = "elapsed_ms", serialize_with = "crate::duration::ser::millis")]
        elapsed: Duration,
        /// Why it was skipped.
        skip_reason: Option<SkipReason>,
        /// Whether it went through as a breaker probe.
        probe: bool,
        /// Whether it was started as a hedge.
        hedge: bool,
        /// What it cost, when its model has prices (a failed or cancelled attempt's billed part).
        cost_usd: Option<f64>,
    },
    /// A breaker changed state.
    Breaker {
        /// Provider.
        provider: String,
        /// Model, for a target breaker; `None` for the provider's.
        model: Option<String>,
        /// State before.
        from: BreakerState,
        /// State after.
        to: BreakerState,
        /// How long it stays open, when it opened.
        #[serde(rename = "cooldown_ms", serialize_with = "crate::duration::ser::opt_millis")]
        cooldown: Option<Duration>,
    },
    /// The router probed an open breaker's target (`probe = "active"`).
    Probe {
        /// Provider.
        provider: String,
        /// Model, for a target's breaker; `None` for the provider's.
        model: Option<String>,
        /// The model the probe asked.
        probe_model: String,
        /// Whether the target answered: the breaker closed.
        ok: bool,
        /// Why not, when it did not.
        class: Option<ErrorClass>,
        /// How long the probe took.
        #[serde(rename = "elapsed_ms", serialize_with = "crate::duration::ser::millis")]
        elapsed: Duration,
    },
    /// The request moved on to another target.
    Failover {
        /// Route.
        route: String,
        /// From provider.
        from_provider: String,
        /// From model.
        from_model: String,
        /// Why.
        class: ErrorClass,
    },
    /// A hedged request started its next target beside the attempt in flight, which had
    /// produced no first token in time (`hedge = { after, max }`).
    Hedge {
        /// Route.
        route: String,
        /// The provider started.
        provider: String,
        /// The model started.
        model: String,
        /// How long the attempt in flight had gone without a first token.
        #[serde(rename = "waited_ms", serialize_with = "crate::duration::ser::millis")]
        waited: Duration,
    },
    /// A stream that failed midway goes on from its checkpoint: a continuation was opened (on
    /// the same target or the next) and its text will follow what the caller already has.
    Resume {
        /// Route.
        route: String,
        /// The provider the continuation runs on.
        provider: String,
        /// The model the continuation runs on.
        model: String,
        /// How it continues: `prefill` or `instructed`.
        strategy: Option<crate::policy::Resume>,
        /// Characters of answer the caller had before the failure.
        carried_chars: usize,
    },
    /// What a provider's status page reports changed (its indicator or incidents), or it could
    /// not be read, or could again.
    StatusPage {
        /// Provider.
        provider: String,
        /// The page's indicator, `None` while it has not been read (or not for a while).
        indicator: Option<crate::status_page::Severity>,
        /// Its open incidents ("Elevated error rates (major outage since 12:03 UTC)").
        incidents: Vec<String>,
        /// Why the last read failed, if it did.
        error: Option<String>,
    },
    /// The shared state (`[state] backend = "redis"`) could not be reached in time, and limits
    /// are decided locally (`degraded`); or it answers again (`ok`).
    SharedState {
        /// `degraded` or `ok`.
        status: &'static str,
        /// Why it is degraded.
        error: Option<String>,
    },
    /// A new policy is in force.
    PolicyApplied {
        /// Its version (1 for the first).
        version: u64,
        /// Content hash.
        hash: String,
        /// What changed, in short.
        changes: Vec<String>,
    },
    /// A policy edit was rejected; the previous one stays in force.
    PolicyRejected {
        /// The errors.
        error: String,
    },
}

/// The router's event channels: every event for [`Router::subscribe`](super::Router::subscribe)
/// readers, and every event but attempts for the dashboard's (which takes attempts otherwise), so
/// that attempt events are built only while a reader that wants them is there.
#[derive(Debug, Clone)]
pub(crate) struct Events {
    all: broadcast::Sender<RouterEvent>,
    notable: broadcast::Sender<RouterEvent>,
}

impl Events {
    pub(crate) fn new(capacity: usize) -> Events {
        Events { all: broadcast::channel(capacity).0, notable: broadcast::channel(capacity).0 }
    }

    /// Sends `event` to the readers that take it; how many did.
    pub(crate) fn send(&self, event: RouterEvent) -> usize {
        let notable = if matches!(event, RouterEvent::Attempt { .. }) {
            0
        } else {
            self.notable.send(event.clone()).unwrap_or(0)
        };
        notable + self.all.send(event).unwrap_or(0)
    }

    /// Every event.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RouterEvent> {
        self.all.subscribe()
    }

    /// Every event but attempts.
    #[cfg_attr(not(feature = "gateway"), allow(dead_code))]
    pub(crate) fn subscribe_notable(&self) -> broadcast::Receiver<RouterEvent> {
        self.notable.subscribe()
    }

    /// Whether a reader of every event is there (an attempt event is worth building).
    pub(crate) fn wants_attempts(&self) -> bool {
        self.all.receiver_count() > 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn attempts_reach_only_readers_of_every_event_and_only_while_one_is_there() {
        let events = Events::new(8);
        let mut notable = events.subscribe_notable();
        assert!(!events.wants_attempts(), "the dashboard's reader asks for no attempt");
        let attempt = RouterEvent::Attempt {
            route: "chat".into(),
            operation: "chat",
            provider: "openai".into(),
            model: "m".into(),
            outcome: AttemptOutcome::Ok,
            class: None,
            status: None,
            elapsed: Duration::from_millis(1),
            skip_reason: None,
            probe: false,
            hedge: false,
            cost_usd: None,
        };
        let rejected = RouterEvent::PolicyRejected { error: "bad".into() };
        assert_eq!(events.send(attempt.clone()), 0);
        assert_eq!(events.send(rejected.clone()), 1);
        assert_eq!(notable.try_recv().unwrap(), rejected);
        assert!(notable.try_recv().is_err(), "no attempt");

        let mut all = events.subscribe();
        assert!(events.wants_attempts());
        assert_eq!(events.send(attempt.clone()), 1);
        assert_eq!(all.try_recv().unwrap(), attempt);
        drop(all);
        assert!(!events.wants_attempts(), "a reader gone, attempts are not built again");
    }
}
