//! Active recovery probes: while a breaker is open, the router itself asks its target, at the end
//! of each cooldown, for the cheapest real answer (one token). A success closes the breaker, so a
//! target that is back carries traffic again within one cooldown; a failure reopens it for a
//! longer one. No user request is the probe ([`crate::policy::ProbeMode::Active`]); with
//! `probe = "passive"` none of this runs and the first request after the cooldown probes.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::breaker::BreakerState;
use super::events::RouterEvent;
use super::health::Node;
use super::{Inner, ProviderSlot};
use crate::chat::ChatRequest;
use crate::drill::inject::Injecting;
use crate::error::{ErrorClass, ProviderError};
use crate::policy::{BreakerEffect, ClassActions};
use crate::provider::{Call, CallTimeouts, Provider};

/// The prompt of a probe: a provider or simulator can tell probes from user requests by it.
pub const PROBE_PROMPT: &str = "switchyard health probe: reply with one word";

/// Longest a probe may take: a target slower than this to say one word is not back.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Tokens a probe is counted for against token limits: its short prompt and one token out.
const PROBE_TOKENS: u64 = 16;

/// How long a probe that found no room under the limits waits before it asks again.
const LIMIT_RETRY: Duration = Duration::from_secs(1);

/// The breaker a probe is for: a target's (`model` set) or a provider's.
type Key = (String, Option<String>);

/// Starts probing the breaker of `provider` (and `model`, for a target's breaker) that just
/// opened, unless it is passive or already probed. `probe_model` is the model a probe asks (for
/// a provider's breaker: the model whose failure opened it).
pub(crate) fn watch(inner: &Inner, node: &Arc<Node>, provider: &str, model: Option<&str>, probe_model: &str) {
    if !node.breaker.is_active() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let key: Key = (provider.to_owned(), model.map(str::to_owned));
    if !crate::sync::lock(&inner.probing).insert(key.clone()) {
        return; // already probing it
    }
    let (me, node, probe_model) = (inner.me.clone(), node.clone(), probe_model.to_owned());
    runtime.spawn(async move {
        run(&me, &node, &key, &probe_model).await;
        if let Some(inner) = me.upgrade() {
            crate::sync::lock(&inner.probing).remove(&key);
        }
    });
}

/// Probes at the end of each cooldown until the breaker closes, turns passive, or the router is
/// gone. The router is not kept alive while the probe waits.
async fn run(me: &Weak<Inner>, node: &Node, (provider, model): &Key, probe_model: &str) {
    loop {
        let Some(until) = node.breaker.open_until().filter(|_| node.breaker.is_active()) else { return };
        tokio::time::sleep_until(until).await;
        let Some(inner) = me.upgrade() else { return };
        let Some(permit) = node.breaker.probe_now(Instant::now()) else {
            // closed meanwhile (a reload, a success elsewhere), or its cooldown was moved on
            if node.breaker.open_until().is_none() {
                return;
            }
            continue;
        };
        // a probe is a request like any other for the target's and provider's limits: one that
        // does not fit now waits for room rather than overdraw them
        let nodes = [inner.health.target(provider, probe_model), inner.health.provider(provider)];
        let mut held = Vec::new();
        for limiter in nodes.iter().filter_map(|n| n.limiter_if_limited()) {
            match limiter.try_acquire(PROBE_TOKENS) {
                Ok(p) => held.push(p),
                Err(_) => break,
            }
        }
        if held.len() < nodes.iter().filter(|n| n.limiter_if_limited().is_some()).count() {
            drop((held, permit));
            tokio::time::sleep(LIMIT_RETRY).await;
            continue;
        }
        let started = Instant::now();
        let result = probe(&inner, provider, probe_model).await;
        drop(held);
        let now = Instant::now();
        // a target that answers at all is back: only the failures that count against a breaker
        // say it is not (a 429 or a 400 about the probe itself come from a live server)
        let down = result
            .as_ref()
            .err()
            .map(|e| e.class)
            .filter(|&c| ClassActions::default().get(c).breaker != BreakerEffect::None);
        let transition = match down {
            None => node.breaker.success(now),
            Some(_) => node.breaker.failure(now),
        };
        drop(permit);
        let class = result.as_ref().err().map(|e| e.class);
        tracing::info!(provider, model = model.as_deref(), ok = down.is_none(), class = ?class, "breaker probe");
        super::metrics::probe(provider, model.as_deref(), down.is_none());
        let _ = inner.events.send(RouterEvent::Probe {
            provider: provider.clone(),
            model: model.clone(),
            probe_model: probe_model.to_owned(),
            ok: down.is_none(),
            class,
            elapsed: now - started,
        });
        if let Some(t) = transition {
            super::engine::emit_transition(&inner, provider, model.as_deref(), node, t);
        }
        if node.breaker.state(now) == BreakerState::Closed {
            return;
        }
    }
}

/// One probe call: the provider as the policy in force builds it (behind a drill's faults, as
/// every request is), asked for one token.
async fn probe(inner: &Inner, provider: &str, model: &str) -> Result<(), ProviderError> {
    let snap = inner.snapshot();
    let adapter = match snap.providers.get(provider) {
        Some(ProviderSlot::Ready(p)) => p.clone(),
        Some(ProviderSlot::Unavailable(e)) => return Err((**e).clone()),
        None => return Err(ProviderError::new(ErrorClass::NotFound, provider, "the provider left the policy")),
    };
    let callee: Arc<dyn Provider> = if inner.faults.is_empty() {
        adapter
    } else {
        Arc::new(Injecting {
            protocol: adapter.protocol(),
            inner: adapter,
            name: provider.to_owned(),
            profile: snap.policy.provider(provider).and_then(|p| p.profile.clone()),
            faults: inner.faults.clone(),
        })
    };
    let request = ChatRequest::user(PROBE_PROMPT).max_tokens(1);
    let timeouts = CallTimeouts {
        first_token: Some(PROBE_TIMEOUT),
        idle: Some(PROBE_TIMEOUT),
        deadline: Some(Instant::now() + PROBE_TIMEOUT),
    };
    let call = callee.chat(Call::new(model, &request).timeouts(timeouts));
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ProviderError::new(ErrorClass::Timeout, provider, "the probe got no answer in time")),
    }
}
