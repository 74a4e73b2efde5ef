//! Fault injection (drills) inside the router. While a fault is in force, every provider is called
//! through [`Injecting`], which hands the calls a fault hits to the router's [`FaultPlayer`]: a
//! provider that answers them as the faulted provider would, on its own wire, so that the real
//! adapter decodes the failure and the router's decisions are the production ones. The faulted
//! provider is not called; the others are, so this works in front of real providers too.
//!
//! The router knows what a fault is and when it applies; how a fault sounds on a wire is the
//! player's business (the simulator's `switchyard::sim::WireFaults`).

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Serialize;
use tokio::time::Instant;

use crate::chat::ChatResponse;
use crate::embed::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{ErrorClass, ProviderError};
use crate::policy::{InjectKind, LiveFault};
use crate::profile::ProviderProfile;
use crate::protocol::Protocol;
use crate::provider::{Call, ChatStream, Provider, TokenCount};
use crate::sync::lock;

/// Plays injected faults: for a fault that hit a call, the provider that answers that call as
/// the faulted provider would send the failure. Installed with
/// [`RouterBuilder::fault_player`](super::RouterBuilder::fault_player).
#[async_trait]
pub trait FaultPlayer: Send + Sync + fmt::Debug {
    /// The provider that answers a call to `target` with `fault` on `target`'s wire. `stream`
    /// says whether the call streams. Only faults that apply to such a call are asked for (never
    /// a plain `latency`, never a stall or cut of a whole answer).
    async fn player(
        &self,
        target: &FaultTarget<'_>,
        fault: &LiveFault,
        stream: bool,
    ) -> Result<Arc<dyn Provider>, ProviderError>;
}

/// The provider a fault hit, as a [`FaultPlayer`] needs to imitate it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct FaultTarget<'a> {
    /// The policy's name for the provider.
    pub provider: &'a str,
    /// Its wire.
    pub protocol: Protocol,
    /// Its profile, when the policy gives it one.
    pub profile: Option<&'a Arc<ProviderProfile>>,
}

/// Where an injected fault came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultSource {
    /// `router.inject(...)`.
    Api,
    /// `[[drill.faults]]` in the policy.
    Policy,
}

#[derive(Debug)]
struct Active {
    id: u64,
    fault: LiveFault,
    source: FaultSource,
    hits: u64,
    expires: Option<Instant>,
}

impl Active {
    fn live(&self, now: Instant, wall: SystemTime) -> bool {
        self.fault.count.is_none_or(|c| self.hits < c)
            && self.expires.is_none_or(|e| now < e)
            && self.fault.until.is_none_or(|u| wall < u)
    }
}

/// A fault as `health()` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct FaultSnapshot {
    /// Its id.
    pub id: u64,
    /// Where it came from.
    pub source: FaultSource,
    /// The fault.
    pub fault: LiveFault,
    /// Requests it has hit.
    pub hits: u64,
    /// Still in effect.
    pub active: bool,
}

/// What to do with one call.
enum Action {
    Pass,
    Delay(Duration),
    Play(LiveFault),
}

/// Whether a fault that is not a plain delay has a form for this kind of call: a stall or a cut
/// needs a stream, and a spent budget is the router's own class, which no provider sends.
fn applies(inject: InjectKind, stream: bool) -> bool {
    match inject {
        InjectKind::Latency | InjectKind::SlowFirstToken => true,
        InjectKind::Stall | InjectKind::Cut | InjectKind::Error(ErrorClass::StreamInterrupted) => stream,
        InjectKind::Error(ErrorClass::BudgetExhausted) => false,
        InjectKind::Error(_) => true,
    }
}

/// The faults in effect, shared by every provider wrapper of a router.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    faults: Mutex<Vec<Active>>,
    /// Fast path: no fault at all means no lock per call.
    count: AtomicUsize,
    next_id: AtomicU64,
    player: Option<Arc<dyn FaultPlayer>>,
}

impl FaultSet {
    pub(crate) fn new(player: Option<Arc<dyn FaultPlayer>>) -> Self {
        FaultSet { player, ..FaultSet::default() }
    }

    pub(crate) fn add(&self, fault: LiveFault, source: FaultSource) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let expires = fault.duration.map(|d| Instant::now() + d);
        let mut faults = lock(&self.faults);
        faults.push(Active { id, fault, source, hits: 0, expires });
        self.count.store(faults.len(), Ordering::Release);
        id
    }

    /// No fault at all (the common case): callers skip the fault layer.
    pub(crate) fn is_empty(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    pub(crate) fn remove(&self, id: u64) {
        let mut faults = lock(&self.faults);
        faults.retain(|f| f.id != id);
        self.count.store(faults.len(), Ordering::Release);
    }

    /// Makes the policy's `[[drill.faults]]` the policy-sourced faults. Unchanged faults keep their
    /// hit counts and clocks; removing them from the policy ends the drill.
    pub(crate) fn sync_policy(&self, wanted: &[LiveFault]) {
        let mut faults = lock(&self.faults);
        let current: Vec<&LiveFault> =
            faults.iter().filter(|f| f.source == FaultSource::Policy).map(|f| &f.fault).collect();
        if current.len() == wanted.len() && current.iter().zip(wanted).all(|(a, b)| *a == b) {
            return;
        }
        faults.retain(|f| f.source != FaultSource::Policy);
        for fault in wanted {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            let expires = fault.duration.map(|d| Instant::now() + d);
            faults.push(Active { id, fault: fault.clone(), source: FaultSource::Policy, hits: 0, expires });
        }
        self.count.store(faults.len(), Ordering::Release);
    }

    pub(crate) fn snapshot(&self) -> Vec<FaultSnapshot> {
        let (now, wall) = (Instant::now(), SystemTime::now());
        lock(&self.faults)
            .iter()
            .map(|f| FaultSnapshot {
                id: f.id,
                source: f.source,
                fault: f.fault.clone(),
                hits: f.hits,
                active: f.live(now, wall),
            })
            .collect()
    }

    /// `provider` behind this set's faults.
    pub(crate) fn wrap(
        self: &Arc<Self>,
        provider: Arc<dyn Provider>,
        name: &str,
        profile: Option<Arc<ProviderProfile>>,
    ) -> Injecting {
        Injecting {
            protocol: provider.protocol(),
            inner: provider,
            name: name.to_owned(),
            profile,
            faults: self.clone(),
        }
    }

    fn decide(&self, provider: &str, model: &str, stream: bool) -> Action {
        if self.count.load(Ordering::Acquire) == 0 {
            return Action::Pass;
        }
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut faults = lock(&self.faults);
        for f in faults.iter_mut() {
            if f.fault.provider != provider
                || f.fault.model.as_deref().is_some_and(|m| m != model)
                || !f.live(now, wall)
                || !applies(f.fault.inject, stream)
            {
                continue;
            }
            if f.fault.rate < 1.0 && rand::random::<f64>() >= f.fault.rate {
                continue;
            }
            f.hits += 1;
            return match f.fault.inject {
                InjectKind::Latency => Action::Delay(f.fault.delay.unwrap_or_default()),
                _ => Action::Play(f.fault.clone()),
            };
        }
        Action::Pass
    }
}

/// Lifts the fault it was returned for when dropped.
#[derive(Debug)]
#[must_use = "the fault is lifted when the guard is dropped"]
pub struct FaultGuard {
    set: Weak<FaultSet>,
    id: u64,
}

impl FaultGuard {
    pub(crate) fn new(set: &Arc<FaultSet>, id: u64) -> Self {
        FaultGuard { set: Arc::downgrade(set), id }
    }

    /// The fault's id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        if let Some(set) = self.set.upgrade() {
            set.remove(self.id);
        }
    }
}

/// Wraps a provider: calls pass through unless a fault hits them.
#[derive(Debug)]
pub(crate) struct Injecting {
    inner: Arc<dyn Provider>,
    name: String,
    protocol: Protocol,
    profile: Option<Arc<ProviderProfile>>,
    faults: Arc<FaultSet>,
}

/// How one call goes on: to the provider (after a delay, maybe) or to the fault's player.
enum Route {
    Provider(Option<Duration>),
    Player(Arc<dyn Provider>),
}

impl Injecting {
    async fn route(&self, model: &str, stream: bool) -> Result<Route, ProviderError> {
        let fault = match self.faults.decide(&self.name, model, stream) {
            Action::Pass => return Ok(Route::Provider(None)),
            Action::Delay(d) => return Ok(Route::Provider(Some(d))),
            Action::Play(fault) => fault,
        };
        let Some(player) = &self.faults.player else {
            if fault.inject == InjectKind::SlowFirstToken {
                return Ok(Route::Provider(Some(fault.delay.unwrap_or(Duration::from_secs(1)))));
            }
            return unplayed(&self.name, &fault);
        };
        let target = FaultTarget { provider: &self.name, protocol: self.protocol, profile: self.profile.as_ref() };
        player.player(&target, &fault, stream).await.map(Route::Player)
    }

    /// The provider a call goes to, after the delay a fault asks for.
    async fn callee(&self, model: &str, stream: bool) -> Result<Arc<dyn Provider>, ProviderError> {
        match self.route(model, stream).await? {
            Route::Provider(delay) => {
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                Ok(self.inner.clone())
            }
            Route::Player(p) => Ok(p),
        }
    }
}

/// A fault with no player to sound it on the wire: the call fails with the fault's class as the
/// router would have classified the provider's answer, and the message says it was not played.
/// A slow first token without a player is a plain delay.
fn unplayed<T>(provider: &str, fault: &LiveFault) -> Result<T, ProviderError> {
    let class = match fault.inject {
        InjectKind::Error(class) => class,
        InjectKind::Stall => ErrorClass::Timeout,
        InjectKind::Cut => ErrorClass::StreamInterrupted,
        // (never asked: both are delays without a player)
        InjectKind::Latency | InjectKind::SlowFirstToken => ErrorClass::Timeout,
    };
    let mut e = ProviderError::new(
        class,
        provider,
        format!("injected fault `{}` (no fault player is installed: not played on the wire)", fault.inject),
    );
    if class == ErrorClass::RateLimited {
        e = e.with_retry_after(fault.retry_after.unwrap_or(Duration::from_secs(1)));
    }
    Err(e)
}

#[async_trait]
impl Provider for Injecting {
    fn name(&self) -> &str {
        &self.name
    }

    fn protocol(&self) -> Protocol {
        self.protocol
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatResponse, ProviderError> {
        self.callee(call.model, false).await?.chat(call).await
    }

    async fn count_tokens(&self, call: Call<'_>) -> Result<TokenCount, ProviderError> {
        self.callee(call.model, false).await?.count_tokens(call).await
    }

    async fn embed(&self, call: Call<'_>, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        self.callee(call.model, false).await?.embed(call, request).await
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        self.callee(call.model, true).await?.chat_stream(call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_applies_only_where_it_has_a_form() {
        assert!(applies(InjectKind::Cut, true));
        assert!(!applies(InjectKind::Cut, false));
        assert!(!applies(InjectKind::Stall, false));
        assert!(!applies(InjectKind::Error(ErrorClass::StreamInterrupted), false));
        assert!(applies(InjectKind::Error(ErrorClass::ServerError), false));
        assert!(!applies(InjectKind::Error(ErrorClass::BudgetExhausted), true));
        assert!(applies(InjectKind::Latency, false));
    }

    #[test]
    fn without_a_player_a_fault_fails_with_its_class_and_says_so() {
        let fault = LiveFault::error("p", ErrorClass::RateLimited).retry_after(Duration::from_secs(3));
        let Err(e) = unplayed::<()>("p", &fault) else { panic!("an unplayed fault fails") };
        assert_eq!(e.class(), ErrorClass::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.message().contains("no fault player"), "{}", e.message());
    }
}
