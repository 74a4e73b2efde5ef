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

/// The shortest gap between two probes of one breaker, whatever its cooldown.
const MIN_GAP: Duration = Duration::from_millis(100);

/// Starts probing the breaker of `provider` (and `model`, for a target's breaker) if it is open,
/// active, and not probed already. Called when a breaker opens, and after a reload for every
/// open breaker (one that turned active while open has nobody probing it yet).
pub(crate) fn watch(inner: &Inner, provider: &str, model: Option<&str>) {
    let Some(node) = current(inner, provider, model) else { return };
    if !node.breaker.is_active() || node.breaker.open_until().is_none() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    // one prober per breaker: a node that a reload replaced is another breaker
    let id = Arc::as_ptr(&node) as usize;
    if !crate::sync::lock(&inner.probing).insert(id) {
        return;
    }
    let key: Key = (provider.to_owned(), model.map(str::to_owned));
    let me = inner.me.clone();
    runtime.spawn(async move {
        loop {
            run(&me, &node, &key).await;
            let Some(inner) = me.upgrade() else { return };
            // decided under the lock `watch` takes: a breaker that reopened meanwhile is probed
            // on, not left with nobody to probe it
            let mut probing = crate::sync::lock(&inner.probing);
            if node.breaker.open_until().is_some()
                && node.breaker.is_active()
                && current(&inner, &key.0, key.1.as_deref()).is_some_and(|n| Arc::ptr_eq(&n, &node))
            {
                continue;
            }
            probing.remove(&id);
            return;
        }
    });
}

/// The node of a breaker in the policy in force, if it still has one.
fn current(inner: &Inner, provider: &str, model: Option<&str>) -> Option<Arc<Node>> {
    match model {
        Some(m) => inner.health.find_target(provider, m),
        None => inner.health.find_provider(provider),
    }
}

/// Probes at the end of each cooldown until the breaker closes, turns passive, leaves the policy,
/// or the router is gone. Nothing of the router is held while the probe waits.
async fn run(me: &Weak<Inner>, node: &Arc<Node>, (provider, model): &Key) {
    let mut turn = 0usize;
    loop {
        turn = turn.wrapping_add(1);
        let Some(until) = node.breaker.open_until().filter(|_| node.breaker.is_active()) else { return };
        tokio::time::sleep_until(until.max(Instant::now() + MIN_GAP)).await;
        let (snap, faults, probe_model) = {
            let Some(inner) = me.upgrade() else { return };
            if !node.breaker.is_active()
                || !current(&inner, provider, model.as_deref()).is_some_and(|n| Arc::ptr_eq(&n, node))
            {
                return; // turned passive, or a reload replaced or removed it
            }
            let snap = inner.snapshot();
            let Some(probe_model) = model.clone().or_else(|| provider_probe_model(&inner, &snap, provider, turn))
            else {
                return; // a provider no route uses any more
            };
            (snap, inner.faults.clone(), probe_model)
        };
        // a fleet sends one probe: the router that takes the lease (the others hear its verdict)
        let shared = me.upgrade().and_then(|inner| inner.shared.load_full());
        if let Some(shared) = &shared
            && !shared.probe_lease(provider, model.as_deref(), PROBE_TIMEOUT + MIN_GAP).await
        {
            tokio::time::sleep(MIN_GAP).await;
            continue;
        }
        // a probe is a request like any other for the target's and provider's limits: one that
        // does not fit now waits for room rather than overdraw them
        let held = match me.upgrade() {
            Some(inner) => {
                let nodes = [inner.health.find_target(provider, &probe_model), inner.health.find_provider(provider)];
                let limiters: Vec<_> = nodes.iter().flatten().filter_map(|n| n.limiter_if_limited()).collect();
                let held: Vec<_> = limiters.iter().map_while(|l| l.try_acquire(PROBE_TOKENS).ok()).collect();
                (held.len() == limiters.len()).then_some(held)
            }
            None => return,
        };
        let Some(held) = held else {
            tokio::time::sleep(LIMIT_RETRY).await;
            continue;
        };
        let Some(permit) = node.breaker.probe_now(Instant::now()) else {
            // another probe holds the slot (a request of a passive past), or the cooldown moved on
            tokio::time::sleep(MIN_GAP).await;
            continue;
        };
        let started = Instant::now();
        let result = probe(&snap, &faults, provider, &probe_model).await;
        drop(held);
        let now = Instant::now();
        let class = result.as_ref().err().map(|e| e.class());
        let up = class.is_none_or(|c| !counts_against(c, model.is_some()));
        let transition = if up { node.breaker.success(now) } else { node.breaker.failure(now) };
        drop(permit);
        tracing::info!(provider, model = model.as_deref(), probe_model, ok = up, class = ?class, "breaker probe");
        super::metrics::probe(provider, model.as_deref(), up);
        let Some(inner) = me.upgrade() else { return };
        let _ = inner.events.send(RouterEvent::Probe {
            provider: provider.clone(),
            model: model.clone(),
            probe_model: probe_model.clone(),
            ok: up,
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

/// Whether a probe's failure of class `class` says the breaker's target is still down. A target's
/// breaker: any failure that counts against a breaker (a 429, or a 400 about the probe itself,
/// comes from a live server). A provider's: only failures of the whole provider (a model's own
/// 404 or overload says nothing of the others).
fn counts_against(class: ErrorClass, target: bool) -> bool {
    match ClassActions::default().get(class).breaker {
        BreakerEffect::None => false,
        BreakerEffect::CountTarget | BreakerEffect::TripTarget => target,
        BreakerEffect::CountProvider | BreakerEffect::TripProvider => true,
    }
}

/// The model a provider's breaker is probed with on its `turn`th probe: its targets in the policy
/// in force in turn (those whose own breaker is closed, if any), so that one model the key cannot
/// use does not keep the whole provider out.
fn provider_probe_model(inner: &Inner, snap: &super::Snapshot, provider: &str, turn: usize) -> Option<String> {
    let mut models: Vec<&str> = snap
        .policy
        .routes
        .values()
        .flat_map(|r| &r.targets)
        .filter(|t| t.provider == provider)
        .map(|t| t.model.as_str())
        .collect();
    models.sort_unstable();
    models.dedup();
    let closed: Vec<&str> = models
        .iter()
        .copied()
        .filter(|m| inner.health.find_target(provider, m).is_some_and(|n| n.breaker.open_until().is_none()))
        .collect();
    let pool = if closed.is_empty() { &models } else { &closed };
    pool.get(turn % pool.len().max(1)).map(|m| (*m).to_owned())
}

/// One probe call: the provider as the policy in force builds it (behind a drill's faults, as
/// every request is), asked for one token.
async fn probe(
    snap: &super::Snapshot,
    faults: &Arc<super::faults::FaultSet>,
    provider: &str,
    model: &str,
) -> Result<(), ProviderError> {
    let adapter = match snap.providers.get(provider) {
        Some(ProviderSlot::Ready(p)) => p.clone(),
        Some(ProviderSlot::Unavailable(e)) => return Err((**e).clone()),
        None => return Err(ProviderError::new(ErrorClass::NotFound, provider, "the provider left the policy")),
    };
    let callee: Arc<dyn Provider> = if faults.is_empty() {
        adapter
    } else {
        let profile = snap.policy.provider(provider).and_then(|p| p.profile.clone());
        Arc::new(faults.wrap(adapter, provider, profile))
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
