//! Observers: what the router tells of every attempt, in the request's own task, to whoever
//! registered (a gateway's dashboard, an OpenTelemetry exporter, an application's own meter).
//! The one way in for consumers: the router names none of them.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Attempt;
use crate::policy::Policy;

/// Told of every attempt as it ends, in the request's own task: no event to build, no channel,
/// no task to wake. Keep it quick; it runs on the request path. Register it with
/// [`RouterBuilder::observer`](super::RouterBuilder::observer) or [`Router::observe`](super::Router::observe).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use switchyard::router::{Observer, SeenAttempt};
///
/// #[derive(Default)]
/// struct Failures(AtomicU64);
///
/// impl Observer for Failures {
///     fn attempt(&self, seen: &SeenAttempt<'_>) {
///         if seen.attempt.class.is_some() {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// # fn demo(router: &switchyard::Router) {
/// router.observe(Arc::new(Failures::default()));
/// # }
/// ```
pub trait Observer: Send + Sync + 'static {
    /// One attempt ended (served, failed or skipped).
    fn attempt(&self, seen: &SeenAttempt<'_>);
}

/// One attempt, as an [`Observer`] is told of it.
#[derive(Debug)]
#[non_exhaustive]
pub struct SeenAttempt<'a> {
    /// The route the request took.
    pub route: &'a str,
    /// `chat`, `count_tokens` or `embeddings`.
    pub operation: &'static str,
    /// The attempt.
    pub attempt: &'a Attempt,
    /// The policy the request ran under.
    pub policy: &'a Policy,
}

impl SeenAttempt<'_> {
    /// The attempt's provider as the OpenTelemetry GenAI conventions name it (its profile:
    /// `openai`, `anthropic`, ...).
    pub fn provider_system(&self) -> &str {
        self.policy.genai_provider_name(&self.attempt.provider)
    }
}

/// The observers of one router.
#[derive(Default)]
pub(crate) struct Observers(ArcSwap<Vec<Arc<dyn Observer>>>);

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Observers({})", self.0.load().len())
    }
}

impl Observers {
    pub(crate) fn add(&self, observer: Arc<dyn Observer>) {
        self.0.rcu(|now| {
            let mut next = Vec::clone(now);
            next.push(observer.clone());
            next
        });
    }

    /// Tells every observer; `policy` is read only when someone listens.
    pub(crate) fn tell(
        &self,
        route: &str,
        operation: &'static str,
        attempt: &Attempt,
        policy: impl FnOnce() -> arc_swap::Guard<Arc<super::Snapshot>>,
    ) {
        let observers = self.0.load();
        if observers.is_empty() {
            return;
        }
        let snapshot = policy();
        let seen = SeenAttempt { route, operation, attempt, policy: &snapshot.policy };
        for o in observers.iter() {
            o.attempt(&seen);
        }
    }
}
