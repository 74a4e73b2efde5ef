//! What breakers and pauses hear of a failure, and how the breaker transitions it causes are told:
//! to the fleet, to metrics, to subscribers, and to the prober of an active breaker.

use tokio::time::Instant;

use crate::error::{ErrorClass, ProviderError};
use crate::policy::{BreakerEffect, TargetPolicy};
use crate::router::Inner;
use crate::router::breaker::Transition;
use crate::router::events::RouterEvent;
use crate::router::health::Node;

/// Tells of a breaker transition this router made, the fleet included.
pub(crate) fn emit_transition(inner: &Inner, provider: &str, model: Option<&str>, node: &Node, t: Transition) {
    let cooldown = node.breaker.open_until().map(|u| u.saturating_duration_since(Instant::now()));
    // the fleet hears of it (`[state] backend = "redis"`)
    if let Some(shared) = inner.shared.load_full() {
        shared.publish_breaker(provider, model, t.to, cooldown);
    }
    emit_remote_transition(inner, provider, model, node, t);
}

/// [`emit_transition`] for a change another router of the fleet made: told here, not retold.
pub(crate) fn emit_remote_transition(inner: &Inner, provider: &str, model: Option<&str>, node: &Node, t: Transition) {
    tracing::warn!(provider, model, from = t.from.as_str(), to = t.to.as_str(), "breaker transition");
    crate::router::metrics::breaker(provider, model, t.to);
    if t.to != crate::router::breaker::BreakerState::Closed && t.from != t.to {
        // an active breaker is probed by its router (by the fleet's one lease holder)
        crate::router::probe::watch(inner, provider, model);
    }
    let cooldown = node.breaker.open_until().map(|u| u.saturating_duration_since(Instant::now()));
    let _ = inner.events.send(RouterEvent::Breaker {
        provider: provider.to_owned(),
        model: model.map(str::to_owned),
        from: t.from,
        to: t.to,
        cooldown,
    });
}

/// [`emit_transition`] when a breaker operation changed the state. Inlined: on every answer the
/// breakers report no change, and that check should cost no call.
#[inline]
pub(super) fn emit_if(inner: &Inner, provider: &str, model: Option<&str>, node: &Node, t: Option<Transition>) {
    if let Some(t) = t {
        emit_transition(inner, provider, model, node, t);
    }
}

/// Records a failure into the breakers (and pauses a rate-limited target).
pub(super) fn settle_failure(
    inner: &Inner,
    target: &TargetPolicy,
    target_node: &Node,
    provider_node: &Node,
    effect: BreakerEffect,
    e: &ProviderError,
) {
    let now = Instant::now();
    if e.class() == ErrorClass::RateLimited
        && let Some(ra) = e.retry_after()
    {
        target_node.pause(now + ra);
        // the fleet pauses it too: the provider said so to one of its routers
        if let Some(shared) = inner.shared.load_full() {
            shared.publish_pause(&target.provider, &target.model, ra.min(target.retry.retry_after_cap));
        }
    }
    let (p, m) = (target.provider.as_str(), Some(target.model.as_str()));
    // a breaker that opens is probed by the router from now on (unless it is passive)
    let opened = |node: &Node, model: Option<&str>, t: Option<Transition>| emit_if(inner, p, model, node, t);
    match effect {
        BreakerEffect::None => {
            // not a breaker matter, but a probe that ends this way still resolves the slot
        }
        BreakerEffect::CountTarget => opened(target_node, m, target_node.breaker.failure(now)),
        BreakerEffect::CountProvider => {
            opened(target_node, m, target_node.breaker.failure(now));
            opened(provider_node, None, provider_node.breaker.failure(now));
        }
        BreakerEffect::TripTarget => opened(target_node, m, target_node.breaker.trip(now)),
        BreakerEffect::TripProvider => opened(provider_node, None, provider_node.breaker.trip(now)),
    }
}
