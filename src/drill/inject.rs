//! Fault injection inside the router. An injected error is produced as the provider's real wire
//! response by an in-process simulator and decoded by the real adapter, so the classification and
//! the router's decisions are the production ones. The faulted provider is not called; the others
//! are, so this works in front of real providers too.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Serialize;
use tokio::time::Instant;

use crate::chat::ChatResponse;
use crate::error::{ErrorClass, ProviderError};
use crate::policy::{InjectKind, LiveFault};
use crate::profile::ProviderProfile;
use crate::provider::{Call, ChatStream, Protocol, Provider};
#[cfg(feature = "sim")]
use {
    crate::duration::DurationStr,
    crate::profile::AuthScheme,
    crate::provider::ProviderConfig,
    crate::secret::ApiKey,
    crate::sim::{FAULT_HEADER, Fault, SimServer},
    std::collections::HashMap,
    tokio::sync::OnceCell,
};

/// Without the `sim` feature no fault is played on the wire (the policy refuses
/// `[[drill.faults]]`, and `Router::inject` needs the feature).
#[cfg(not(feature = "sim"))]
#[derive(Debug)]
enum Fault {}
use crate::sync::lock;

impl LiveFault {
    /// A fault on every request to `provider`, until lifted.
    pub fn new(provider: impl Into<String>, inject: InjectKind) -> Self {
        LiveFault {
            provider: provider.into(),
            model: None,
            inject,
            rate: 1.0,
            count: None,
            duration: None,
            until: None,
            retry_after: None,
            delay: None,
            after_tokens: None,
        }
    }

    /// A failure of `class` on `provider`, as that provider would send it. `budget_exhausted`
    /// is the router's own class, which no provider sends: such a fault never applies (drill
    /// files refuse it; set a small `budget` in the policy instead).
    pub fn error(provider: impl Into<String>, class: ErrorClass) -> Self {
        LiveFault::new(provider, InjectKind::Error(class))
    }

    /// Only requests for `model`.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The share of requests hit (0..=1).
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Stops after `n` hits.
    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }

    /// Stops after `d`.
    pub fn lasting(mut self, d: Duration) -> Self {
        self.duration = Some(d);
        self
    }

    /// The delay of a latency, slow-first-token or stall fault.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }

    /// `retry-after` sent with an injected `rate_limited`.
    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// Tokens before a stall or a cut.
    pub fn after_tokens(mut self, n: usize) -> Self {
        self.after_tokens = Some(n);
        self
    }

    /// The wire fault that produces this fault for `protocol`, or `None` when it is a plain delay or
    /// does not apply to this kind of request.
    #[cfg(not(feature = "sim"))]
    fn wire(&self, _: Protocol, _: bool) -> Option<Fault> {
        None
    }

    /// The wire fault that produces this fault for `protocol`, or `None` when it is a plain delay or
    /// does not apply to this kind of request.
    #[cfg(feature = "sim")]
    fn wire(&self, protocol: Protocol, stream: bool) -> Option<Fault> {
        let after = self.after_tokens.unwrap_or(3);
        let delay = DurationStr(self.delay.unwrap_or(Duration::from_secs(1)));
        let openai = protocol.is_openai();
        Some(match self.inject {
            InjectKind::Latency => return None,
            InjectKind::SlowFirstToken if stream => Fault::SlowFirstToken { delay },
            InjectKind::SlowFirstToken => Fault::Latency { delay },
            InjectKind::Stall if stream => Fault::Stall { after_tokens: after, duration: delay },
            InjectKind::Cut if stream => Fault::Cut { after_tokens: after },
            InjectKind::Stall | InjectKind::Cut => return None,
            InjectKind::Error(class) => match class {
                ErrorClass::RateLimited => {
                    let secs = self.retry_after.unwrap_or(Duration::from_secs(1)).as_secs_f64();
                    Fault::status_retry_after(429, format!("{secs}"))
                }
                ErrorClass::QuotaExhausted if openai => Fault::typed(429, "insufficient_quota", Some("insufficient_quota")),
                ErrorClass::QuotaExhausted => Fault::typed(402, "billing_error", None),
                ErrorClass::Overloaded if openai => Fault::status(503),
                ErrorClass::Overloaded => Fault::status(529),
                ErrorClass::ServerError => Fault::status(500),
                ErrorClass::Timeout => Fault::status(504),
                ErrorClass::Connection => Fault::Reset,
                ErrorClass::StreamInterrupted if stream => Fault::Cut { after_tokens: after },
                ErrorClass::StreamInterrupted => return None,
                ErrorClass::MalformedResponse if stream => Fault::MalformedChunk { after_tokens: after },
                ErrorClass::MalformedResponse => {
                    Fault::RawBody { status: 200, content_type: "application/json".into(), body: "{\"id\":\"chatcmpl-cut".into() }
                }
                ErrorClass::Authentication => Fault::status(401),
                ErrorClass::PermissionDenied => Fault::status(403),
                ErrorClass::NotFound => Fault::status(404),
                ErrorClass::InvalidRequest => Fault::status(400),
                ErrorClass::ContextLengthExceeded if openai => Fault::Status {
                    status: 400,
                    error_type: Some("invalid_request_error".into()),
                    code: Some("context_length_exceeded".into()),
                    message: Some("This model's maximum context length is 8192 tokens. However, your messages resulted in 9631 tokens.".into()),
                    retry_after: None,
                    retry_after_ms: None,
                    should_retry: None,
                },
                ErrorClass::ContextLengthExceeded => Fault::Status {
                    status: 400,
                    error_type: Some("invalid_request_error".into()),
                    code: None,
                    message: Some("prompt is too long: 210266 tokens > 200000 maximum".into()),
                    retry_after: None,
                    retry_after_ms: None,
                    should_retry: None,
                },
                ErrorClass::ContentFiltered if openai => Fault::typed(400, "invalid_request_error", Some("content_policy_violation")),
                ErrorClass::ContentFiltered => Fault::Status {
                    status: 400,
                    error_type: Some("invalid_request_error".into()),
                    code: None,
                    message: Some("Output blocked by content filtering policy".into()),
                    retry_after: None,
                    retry_after_ms: None,
                    should_retry: None,
                },
                ErrorClass::RequestTooLarge => Fault::status(413),
                // (refused when a fault is read: no provider answers it)
                ErrorClass::BudgetExhausted => return None,
            },
        })
    }
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
    Wire(Fault),
}

/// The faults in effect, shared by every provider wrapper of a router.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    faults: Mutex<Vec<Active>>,
    /// Fast path: no fault at all means no lock per call.
    count: AtomicUsize,
    next_id: AtomicU64,
    #[cfg(feature = "sim")]
    sim: OnceCell<SimServer>,
    #[cfg(feature = "sim")]
    adapters: Mutex<HashMap<(String, String), Arc<dyn Provider>>>,
}

impl FaultSet {
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
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

    fn decide(&self, provider: &str, model: &str, protocol: Protocol, stream: bool) -> Action {
        if self.count.load(Ordering::Acquire) == 0 {
            return Action::Pass;
        }
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut faults = lock(&self.faults);
        for f in faults.iter_mut() {
            if f.fault.provider != provider
                || f.fault.model.as_deref().is_some_and(|m| m != model)
                || !f.live(now, wall)
            {
                continue;
            }
            let wire = f.fault.wire(protocol, stream);
            if wire.is_none() && f.fault.inject != InjectKind::Latency {
                continue; // does not apply to this kind of request
            }
            if f.fault.rate < 1.0 && rand::random::<f64>() >= f.fault.rate {
                continue;
            }
            f.hits += 1;
            return match wire {
                Some(w) => Action::Wire(w),
                None => Action::Delay(f.fault.delay.unwrap_or_default()),
            };
        }
        Action::Pass
    }

    #[cfg(not(feature = "sim"))]
    async fn adapter(
        &self,
        _: &str,
        _: Protocol,
        _: Option<&Arc<ProviderProfile>>,
        fault: &Fault,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        match *fault {}
    }

    /// The adapter that fetches `fault` from the in-process simulator, as `provider` would send it.
    #[cfg(feature = "sim")]
    async fn adapter(
        &self,
        provider: &str,
        protocol: Protocol,
        profile: Option<&Arc<ProviderProfile>>,
        fault: &Fault,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        let fault_json = serde_json::to_string(fault).unwrap_or_default();
        let key = (provider.to_owned(), fault_json.clone());
        if let Some(a) = lock(&self.adapters).get(&key) {
            return Ok(a.clone());
        }
        let sim = self.sim.get_or_try_init(SimServer::start).await.map_err(|e| {
            ProviderError::new(ErrorClass::Connection, provider, format!("cannot start the fault simulator: {e}"))
        })?;
        let base = sim.base_url(protocol);
        let mut config =
            ProviderConfig::new(provider, base).header(FAULT_HEADER, fault_json).api_key(ApiKey::new("injected-fault"));
        config.profile = profile.map(|p| Arc::new(ProviderProfile { auth: AuthScheme::None, ..(**p).clone() }));
        let adapter = crate::provider::build(protocol, config)?;
        let mut adapters = lock(&self.adapters);
        if adapters.len() > 256 {
            adapters.clear(); // bounded: faults come and go during drills
        }
        adapters.insert(key, adapter.clone());
        Ok(adapter)
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
    #[cfg(feature = "sim")]
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
    pub(crate) inner: Arc<dyn Provider>,
    pub(crate) name: String,
    pub(crate) protocol: Protocol,
    pub(crate) profile: Option<Arc<ProviderProfile>>,
    pub(crate) faults: Arc<FaultSet>,
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
        match self.faults.decide(&self.name, call.model, self.protocol, false) {
            Action::Pass => self.inner.chat(call).await,
            Action::Delay(d) => {
                tokio::time::sleep(d).await;
                self.inner.chat(call).await
            }
            Action::Wire(fault) => {
                self.faults.adapter(&self.name, self.protocol, self.profile.as_ref(), &fault).await?.chat(call).await
            }
        }
    }

    async fn count_tokens(&self, call: Call<'_>) -> Result<crate::provider::TokenCount, ProviderError> {
        match self.faults.decide(&self.name, call.model, self.protocol, false) {
            Action::Pass => self.inner.count_tokens(call).await,
            Action::Delay(d) => {
                tokio::time::sleep(d).await;
                self.inner.count_tokens(call).await
            }
            Action::Wire(fault) => {
                self.faults
                    .adapter(&self.name, self.protocol, self.profile.as_ref(), &fault)
                    .await?
                    .count_tokens(call)
                    .await
            }
        }
    }

    async fn embed(
        &self,
        call: Call<'_>,
        request: &crate::embed::EmbeddingRequest,
    ) -> Result<crate::embed::EmbeddingResponse, ProviderError> {
        match self.faults.decide(&self.name, call.model, self.protocol, false) {
            Action::Pass => self.inner.embed(call, request).await,
            Action::Delay(d) => {
                tokio::time::sleep(d).await;
                self.inner.embed(call, request).await
            }
            Action::Wire(fault) => {
                self.faults
                    .adapter(&self.name, self.protocol, self.profile.as_ref(), &fault)
                    .await?
                    .embed(call, request)
                    .await
            }
        }
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        match self.faults.decide(&self.name, call.model, self.protocol, true) {
            Action::Pass => self.inner.chat_stream(call).await,
            Action::Delay(d) => {
                tokio::time::sleep(d).await;
                self.inner.chat_stream(call).await
            }
            Action::Wire(fault) => {
                self.faults
                    .adapter(&self.name, self.protocol, self.profile.as_ref(), &fault)
                    .await?
                    .chat_stream(call)
                    .await
            }
        }
    }
}
