//! What the router has learned, kept apart from the (immutable, swappable) policy: breakers,
//! pauses, latency estimates, limiters and learned model facts, per target and per provider.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::breaker::{Breaker, BreakerState};
use super::limiter::{Limiter, LimiterSnapshot};
use crate::policy::{BreakerConfig, Limits, Policy};
use crate::sync::lock;

/// A target's identity: the same provider and model are the same target in every route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TargetKey {
    pub(crate) provider: String,
    pub(crate) model: String,
}

/// A value alone on its cache line (128 bytes: x86 fetches lines in adjacent pairs), so that
/// writes to it do not evict what other cores read next to it.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct CacheLine<T>(pub(crate) T);

/// State of one provider or one target.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) breaker: Breaker,
    pause_until: Mutex<Option<Instant>>,
    /// Whether a pause was ever set and not yet seen expired: the common case reads no lock.
    paused: AtomicBool,
    /// The latency EWMA in milliseconds as `f64` bits; NaN until the first sample. Updated with
    /// plain loads and stores: a lost sample under a race is harmless to an average. On a cache
    /// line of its own: every answer writes it, and the flags every admission reads must not
    /// share its line.
    latency_ms: CacheLine<AtomicU64>,
    limiter: Mutex<Arc<Limiter>>,
    /// No limit at all: admission skips the limiter and its lock.
    unlimited: AtomicBool,
    /// Learned at run time: whether the model accepts an assistant prefill.
    prefill: Mutex<Option<bool>>,
    /// What the provider's rate-limit headers say remains.
    pub(crate) quota: super::quota::Quota,
    /// Recent times to first token (hedging after a percentile). On lines of their own: every
    /// answer writes them.
    pub(crate) first_token: CacheLine<super::samples::FirstTokenSamples>,
}

/// Weight of the newest sample in the latency EWMA.
const EWMA_ALPHA: f64 = 0.3;

impl Node {
    /// A node with default settings, for unit tests of what it holds.
    #[cfg(test)]
    pub(crate) fn for_test() -> Arc<Node> {
        Arc::new(Node::new(BreakerConfig::default(), Limits::default()))
    }

    fn new(breaker: BreakerConfig, limits: Limits) -> Self {
        Node {
            breaker: Breaker::new(breaker),
            pause_until: Mutex::new(None),
            paused: AtomicBool::new(false),
            latency_ms: CacheLine(AtomicU64::new(f64::NAN.to_bits())),
            limiter: Mutex::new(Arc::new(Limiter::new(limits))),
            unlimited: AtomicBool::new(limits.is_unlimited()),
            prefill: Mutex::new(None),
            quota: super::quota::Quota::default(),
            first_token: CacheLine(super::samples::FirstTokenSamples::default()),
        }
    }

    fn reconfigure(&self, breaker: BreakerConfig, limits: Limits) {
        self.breaker.reconfigure(breaker);
        let mut l = lock(&self.limiter);
        // rebuilt only when the quota changed, so a reload keeps the budget already spent
        if l.limits() != limits {
            *l = Arc::new(Limiter::new(limits));
            self.unlimited.store(limits.is_unlimited(), Ordering::Release);
        }
    }

    pub(crate) fn limiter(&self) -> Arc<Limiter> {
        lock(&self.limiter).clone()
    }

    /// The limiter, unless there is no limit to check.
    /// Whether any limit applies (a flag read, no lock).
    pub(crate) fn is_limited(&self) -> bool {
        !self.unlimited.load(Ordering::Acquire)
    }

    pub(crate) fn limiter_if_limited(&self) -> Option<Arc<Limiter>> {
        (!self.unlimited.load(Ordering::Acquire)).then(|| self.limiter())
    }

    /// Paused (by a `retry-after`) until when, if still paused at `now`.
    pub(crate) fn paused_until(&self, now: Instant) -> Option<Instant> {
        if !self.paused.load(Ordering::Acquire) {
            return None;
        }
        let p = lock(&self.pause_until);
        let live = p.filter(|&t| t > now);
        if live.is_none() {
            self.paused.store(false, Ordering::Release);
        }
        live
    }

    pub(crate) fn pause(&self, until: Instant) {
        let mut p = lock(&self.pause_until);
        if p.is_none_or(|t| t < until) {
            *p = Some(until);
        }
        self.paused.store(true, Ordering::Release);
    }

    pub(crate) fn record_latency(&self, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let prev = f64::from_bits(self.latency_ms.0.load(Ordering::Relaxed));
        let next = if prev.is_nan() { ms } else { prev + EWMA_ALPHA * (ms - prev) };
        self.latency_ms.0.store(next.to_bits(), Ordering::Relaxed);
    }

    pub(crate) fn latency_ms(&self) -> Option<f64> {
        let v = f64::from_bits(self.latency_ms.0.load(Ordering::Relaxed));
        (!v.is_nan()).then_some(v)
    }

    pub(crate) fn learned_prefill(&self) -> Option<bool> {
        *lock(&self.prefill)
    }

    pub(crate) fn learn_prefill(&self, supported: bool) {
        *lock(&self.prefill) = Some(supported);
    }

    fn snapshot(&self, now: Instant) -> NodeSnapshot {
        let state = self.breaker.state(now);
        NodeSnapshot {
            breaker: state,
            cooldown_remaining_ms: match state {
                BreakerState::Open => {
                    self.breaker.open_until().map(|t| t.saturating_duration_since(now).as_millis() as u64)
                }
                _ => None,
            },
            paused_for_ms: self.paused_until(now).map(|t| t.saturating_duration_since(now).as_millis() as u64),
            latency_ewma_ms: self.latency_ms(),
            limiter: self.limiter().snapshot(),
            probe: self.breaker.probe_mode(),
            provider_budget: self.quota.snapshot(now),
        }
    }
}

/// The health registry.
#[derive(Debug, Default)]
pub(crate) struct Health {
    providers: Mutex<HashMap<String, Arc<Node>>>,
    /// By provider, then model: lookups by `&str` without allocating.
    targets: Mutex<HashMap<String, HashMap<String, Arc<Node>>>>,
    round_robin: Mutex<HashMap<String, usize>>,
}

impl Health {
    /// Makes the registry match a policy: new providers and targets get fresh state, existing ones
    /// keep theirs (with new settings), removed ones are dropped.
    pub(crate) fn sync(&self, policy: &Policy) {
        {
            let mut providers = lock(&self.providers);
            providers.retain(|name, _| policy.providers.contains_key(name));
            for (name, p) in &policy.providers {
                match providers.get(name) {
                    Some(node) => node.reconfigure(p.breaker, p.limits),
                    None => {
                        providers.insert(name.clone(), Arc::new(Node::new(p.breaker, p.limits)));
                    }
                }
            }
        }
        let mut wanted: HashMap<TargetKey, (BreakerConfig, Limits)> = HashMap::new();
        for route in policy.routes.values() {
            for t in &route.targets {
                // the first route (by name) to mention a target sets its breaker and limits
                wanted
                    .entry(TargetKey { provider: t.provider.clone(), model: t.model.clone() })
                    .or_insert((t.breaker, t.limits));
            }
        }
        let mut targets = lock(&self.targets);
        for (provider, models) in targets.iter_mut() {
            models.retain(|model, _| {
                wanted.contains_key(&TargetKey { provider: provider.clone(), model: model.clone() })
            });
        }
        targets.retain(|_, models| !models.is_empty());
        for (key, (breaker, limits)) in wanted {
            let models = targets.entry(key.provider).or_default();
            match models.get(&key.model) {
                Some(node) => node.reconfigure(breaker, limits),
                None => {
                    models.insert(key.model, Arc::new(Node::new(breaker, limits)));
                }
            }
        }
        lock(&self.round_robin).retain(|route, _| policy.routes.contains_key(route));
    }

    pub(crate) fn provider(&self, name: &str) -> Arc<Node> {
        let mut providers = lock(&self.providers);
        if let Some(node) = providers.get(name) {
            return node.clone();
        }
        // a provider the policy in force does not know (a request racing a reload)
        providers
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Node::new(BreakerConfig::default(), Limits::default())))
            .clone()
    }

    pub(crate) fn target(&self, provider: &str, model: &str) -> Arc<Node> {
        let mut targets = lock(&self.targets);
        if let Some(node) = targets.get(provider).and_then(|m| m.get(model)) {
            return node.clone();
        }
        targets
            .entry(provider.to_owned())
            .or_default()
            .entry(model.to_owned())
            .or_insert_with(|| Arc::new(Node::new(BreakerConfig::default(), Limits::default())))
            .clone()
    }

    /// The provider's node, if the policy in force has it (nothing is created).
    pub(crate) fn find_provider(&self, name: &str) -> Option<Arc<Node>> {
        lock(&self.providers).get(name).cloned()
    }

    /// The target's node, if the policy in force has it (nothing is created).
    pub(crate) fn find_target(&self, provider: &str, model: &str) -> Option<Arc<Node>> {
        lock(&self.targets).get(provider).and_then(|m| m.get(model)).cloned()
    }

    /// Every breaker that is open (or half-open): (provider, model for a target's).
    pub(crate) fn open_breakers(&self) -> Vec<(String, Option<String>)> {
        let mut open: Vec<(String, Option<String>)> = lock(&self.providers)
            .iter()
            .filter(|(_, n)| n.breaker.open_until().is_some())
            .map(|(p, _)| (p.clone(), None))
            .collect();
        for (p, models) in lock(&self.targets).iter() {
            for (m, n) in models {
                if n.breaker.open_until().is_some() {
                    open.push((p.clone(), Some(m.clone())));
                }
            }
        }
        open
    }

    /// The next round-robin offset for a route.
    pub(crate) fn next_round_robin(&self, route: &str) -> usize {
        let mut rr = lock(&self.round_robin);
        let n = rr.entry(route.to_owned()).or_insert(0);
        let current = *n;
        *n = n.wrapping_add(1);
        current
    }

    pub(crate) fn snapshot(&self, now: Instant) -> (Vec<ProviderHealth>, Vec<TargetHealth>) {
        let mut providers: Vec<ProviderHealth> = lock(&self.providers)
            .iter()
            .map(|(name, n)| ProviderHealth { provider: name.clone(), state: n.snapshot(now) })
            .collect();
        providers.sort_by(|a, b| a.provider.cmp(&b.provider));
        let mut targets: Vec<TargetHealth> = lock(&self.targets)
            .iter()
            .flat_map(|(p, models)| {
                models.iter().map(|(m, n)| TargetHealth {
                    provider: p.clone(),
                    model: m.clone(),
                    state: n.snapshot(now),
                })
            })
            .collect();
        targets.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        (providers, targets)
    }
}

/// The state of one provider or target, as `health()` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSnapshot {
    /// Breaker state.
    pub breaker: BreakerState,
    /// Time left in the breaker's cooldown, when open.
    pub cooldown_remaining_ms: Option<u64>,
    /// Time left in a `retry-after` pause.
    pub paused_for_ms: Option<u64>,
    /// Latency EWMA of successful attempts.
    pub latency_ewma_ms: Option<f64>,
    /// Limits and free concurrency.
    pub limiter: LimiterSnapshot,
    /// Who probes the breaker when its cooldown ends: `active` (the router) or `passive` (the
    /// next request).
    pub probe: crate::policy::ProbeMode,
    /// What the provider's rate-limit headers said remains (targets only), while a window is
    /// open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_budget: Option<super::quota::QuotaSnapshot>,
}

/// One provider's state.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderHealth {
    /// Provider name.
    pub provider: String,
    /// Its state.
    #[serde(flatten)]
    pub state: NodeSnapshot,
}

/// One target's state.
#[derive(Debug, Clone, Serialize)]
pub struct TargetHealth {
    /// Provider name.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Its state.
    #[serde(flatten)]
    pub state: NodeSnapshot,
}

/// What `health()` and `/admin/state` show of the shared state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedStateSnapshot {
    /// `memory`, or for Redis `ok` or `degraded` (decided locally until Redis answers again).
    pub status: &'static str,
    /// The Redis address, without its password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The fleet's name.
    pub fleet: String,
    /// Why it is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SharedStateSnapshot {
    /// Each process keeps its own state.
    pub(crate) fn memory(fleet: &str) -> Self {
        SharedStateSnapshot { status: "memory", url: None, fleet: fleet.to_owned(), error: None }
    }
}

/// One router of the fleet, as it last said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetMember {
    /// Its id (random, per process and `[state]`).
    pub instance: String,
    /// Whether it is the router this snapshot comes from.
    #[serde(default)]
    pub this: bool,
    /// The version of the policy it runs (1 for its first).
    pub policy_version: u64,
    /// The content hash of that policy: equal hashes, equal policies.
    pub policy_hash: String,
    /// Its last reload's error, until a good policy was applied.
    pub last_reload_error: Option<String>,
    /// When it said so (RFC 3339).
    pub updated_at: String,
}
