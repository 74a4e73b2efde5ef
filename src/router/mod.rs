//! The [`Router`]: sends each request along its route under the current policy, retrying, failing
//! over, tripping breakers and honouring limits as the policy says.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing::Instrument;

use crate::chat::ChatRequest;
use crate::error::{ErrorClass, ProviderError};
use crate::policy::{LiveFault, Policy};
use crate::profile::AuthScheme;
use crate::provider::{Provider, ProviderConfig};
use crate::secret::ApiKey;
use crate::sync::lock;

mod breaker;
mod budget;
mod engine;
mod events;
mod faults;
mod health;
pub(crate) mod limiter;
pub(crate) mod meter;
pub(crate) mod metrics;
mod observe;
mod outcome;
mod probe;
mod quota;
mod reload;
mod resume;
mod samples;
#[cfg(feature = "redis")]
mod shared;
#[cfg(not(feature = "redis"))]
mod unshared;
#[cfg(not(feature = "redis"))]
use unshared as shared;
mod spans;
mod status;
mod strategy;
mod stream;
#[cfg(feature = "watch")]
mod watch;

pub use breaker::BreakerState;
pub use budget::BudgetSnapshot;
pub use events::RouterEvent;
pub use faults::{FaultGuard, FaultPlayer, FaultSnapshot, FaultSource, FaultTarget};
pub use health::{FleetMember, NodeSnapshot, ProviderHealth, SharedStateSnapshot, TargetHealth};
pub use limiter::LimiterSnapshot;
pub use metrics::enable_metrics;
pub use observe::{Observer, SeenAttempt};
pub use outcome::{
    Attempt, AttemptOutcome, RouteFailure, RoutedCount, RoutedEmbedding, RoutedResponse, RouterError, SkipReason,
};
pub use probe::PROBE_PROMPT;
pub use quota::QuotaSnapshot;
pub use reload::ReloadOutcome;
pub use resume::INSTRUCTION;
pub use stream::{RoutedStream, StreamOptions, StreamSummary};
#[cfg(feature = "watch")]
pub use watch::{PolicyWatcher, WatchError, WatchOptions};

use engine::AttemptFuture;
use faults::FaultSet;

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_BUFFER: usize = 1024;

/// A provider as a policy snapshot holds it.
#[derive(Debug, Clone)]
pub(crate) enum ProviderSlot {
    /// Ready to call.
    Ready(Arc<dyn Provider>),
    /// Every call fails at once with this error (its key is not set, its client cannot start).
    Unavailable(Box<ProviderError>),
}

/// A policy and the providers built for it: what one request runs under from start to end.
/// Aligned so that its fields, which every request reads, do not share a cache line with the
/// reference count in front of them, which every request writes.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Snapshot {
    pub(crate) policy: Arc<Policy>,
    pub(crate) providers: HashMap<String, ProviderSlot>,
    /// The routes as requests use them: one map lookup per request finds everything.
    pub(crate) routes: HashMap<String, RouteState>,
    pub(crate) version: u64,
}

/// A route and what each of its targets needs at request time, resolved when the policy was
/// applied, so that a request makes no map lookup per attempt.
#[derive(Debug)]
pub(crate) struct RouteState {
    pub(crate) policy: Arc<crate::policy::RoutePolicy>,
    /// In the route's order of targets.
    pub(crate) targets: Vec<TargetState>,
    /// Whether a target's provider has `on_incident = "deprioritize"`.
    pub(crate) deprioritizes: bool,
}

/// One target of a route at request time.
#[derive(Debug)]
pub(crate) struct TargetState {
    /// The target's health.
    pub(crate) node: Arc<health::Node>,
    /// Its provider's health.
    pub(crate) provider_node: Arc<health::Node>,
    /// Its provider, `None` when the policy names none by that name.
    pub(crate) provider: Option<ProviderSlot>,
    /// Its provider's status page, when an outage it reports moves the target back.
    pub(crate) incident_watch: Option<Arc<status::Page>>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    current: ArcSwap<Snapshot>,
    pub(crate) health: health::Health,
    pub(crate) events: events::Events,
    /// Whether anyone ever subscribed: until then no request looks at the channel, whose receiver
    /// count sits behind a lock that every request would otherwise take.
    subscribed: AtomicBool,
    /// Told of every attempt in the request's own task.
    observers: observe::Observers,
    /// Providers given by the application, used instead of building them from the policy.
    custom: HashMap<String, Arc<dyn Provider>>,
    /// Injected faults (drills), applied in front of every provider.
    pub(crate) faults: Arc<FaultSet>,
    version: AtomicU64,
    last_reload_error: Mutex<Option<String>>,
    /// One policy change at a time (the watcher, SIGHUP and the API may race).
    applying: Mutex<()>,
    /// The router itself, for the background probes (which must not keep it alive).
    pub(crate) me: std::sync::Weak<Inner>,
    /// The breakers being probed, by node.
    pub(crate) probing: Mutex<std::collections::HashSet<usize>>,
    /// What the routes' and providers' budgets spent (kept across reloads, by name).
    pub(crate) budgets: budget::Budgets,
    /// Whether the policy in force has any budget: without, an attempt's cost is charged nowhere.
    pub(crate) has_budgets: AtomicBool,
    /// The providers' status pages and what they last said (kept across reloads, by provider).
    pub(crate) status: status::StatusPages,
    /// The state a fleet shares (`[state] backend = "redis"`); `None` with the default, memory.
    pub(crate) shared: arc_swap::ArcSwapOption<shared::Shared>,
}

/// Routes requests across providers under a policy. Cheap to clone; clones share all state.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use switchyard::{ChatRequest, Policy, Router};
/// let router = Router::new(Policy::from_file("policies/openai-to-claude.toml")?);
/// let answer = router.chat("chat", ChatRequest::user("Hello!")).await?;
/// println!("{} (served by {}/{})", answer.response.text, answer.provider(), answer.model());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

/// Builds a [`Router`], optionally with providers of your own.
#[derive(Debug)]
pub struct RouterBuilder {
    policy: Policy,
    custom: HashMap<String, Arc<dyn Provider>>,
    fault_player: Option<Arc<dyn FaultPlayer>>,
    observers: observe::Observers,
}

impl RouterBuilder {
    /// Uses `provider` for the policy's provider `name` instead of building an adapter (tests,
    /// custom transports, fault injection).
    pub fn provider(mut self, name: impl Into<String>, provider: Arc<dyn Provider>) -> Self {
        self.custom.insert(name.into(), provider);
        self
    }

    /// Plays injected faults ([`Router::inject`], `[[drill.faults]]`) on each provider's own wire,
    /// so that the real adapter reads them: with the `sim` feature,
    /// `switchyard::sim::WireFaults`. Without a player, a fault that hits a call fails it with
    /// the fault's class at once, and its message says it was not played.
    pub fn fault_player(mut self, player: Arc<dyn FaultPlayer>) -> Self {
        self.fault_player = Some(player);
        self
    }

    /// Tells `observer` of every attempt, from the first request on.
    pub fn observer(self, observer: Arc<dyn Observer>) -> Self {
        self.observers.add(observer);
        self
    }

    /// Builds the router. A provider that cannot be built (its key is not set, its client cannot
    /// start) does not stop it: calls to that provider fail with the reason, and the others serve.
    pub fn build(self) -> Router {
        let inner = Arc::new_cyclic(|me| Inner {
            current: ArcSwap::from_pointee(Snapshot {
                policy: Arc::new(self.policy.clone()),
                providers: HashMap::new(),
                routes: HashMap::new(),
                version: 0,
            }),
            health: health::Health::default(),
            events: events::Events::new(EVENT_BUFFER),
            subscribed: AtomicBool::new(false),
            observers: self.observers,
            custom: self.custom,
            faults: Arc::new(FaultSet::new(self.fault_player)),
            version: AtomicU64::new(0),
            last_reload_error: Mutex::new(None),
            applying: Mutex::new(()),
            me: me.clone(),
            probing: Mutex::new(std::collections::HashSet::new()),
            budgets: budget::Budgets::default(),
            has_budgets: AtomicBool::new(false),
            status: status::StatusPages::default(),
            shared: arc_swap::ArcSwapOption::empty(),
        });
        let router = Router { inner };
        router.apply(self.policy);
        router
    }
}

/// A snapshot of the router's state.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Version of the policy in force (1 for the first).
    pub policy_version: u64,
    /// Content hash of the policy in force.
    pub policy_hash: String,
    /// Where the policy was read from.
    pub policy_source: String,
    /// The last reload's error, until a good policy is applied.
    pub last_reload_error: Option<String>,
    /// Providers: breaker, pause, limits.
    pub providers: Vec<ProviderHealth>,
    /// Targets: breaker, pause, latency, limits.
    pub targets: Vec<TargetHealth>,
    /// Injected faults (API and `[[drill.faults]]`).
    pub faults: Vec<FaultSnapshot>,
    /// The routes' and providers' spending budgets, with what they spent in their window.
    pub budgets: Vec<BudgetSnapshot>,
    /// The providers' status pages (`status_page`) as last read.
    pub status_pages: Vec<crate::status_page::StatusPage>,
    /// Where the fleet's shared state is, and whether it answers.
    pub shared_state: SharedStateSnapshot,
    /// Every router of the fleet (`[state] backend = "redis"`), this one first: the policy each
    /// runs and its last reload error, as each said within the last few seconds. Empty with the
    /// memory backend.
    pub fleet: Vec<FleetMember>,
}

impl Router {
    /// A router for `policy`, with adapters built from it.
    pub fn new(policy: Policy) -> Router {
        Router::builder(policy).build()
    }

    /// A builder, to add providers of your own.
    pub fn builder(policy: Policy) -> RouterBuilder {
        RouterBuilder { policy, custom: HashMap::new(), fault_player: None, observers: observe::Observers::default() }
    }

    /// Subscribes to router events.
    pub fn subscribe(&self) -> broadcast::Receiver<RouterEvent> {
        self.inner.subscribed.store(true, Ordering::Relaxed);
        self.inner.events.subscribe()
    }

    /// The router's events but attempts (policy changes, breaker transitions, ...), unless
    /// someone else subscribed for all with [`Router::subscribe`]: for a consumer that takes
    /// attempts through an [`Observer`] instead, so that no event is built and sent for every
    /// attempt.
    pub fn subscribe_notable(&self) -> broadcast::Receiver<RouterEvent> {
        self.inner.events.subscribe_notable()
    }

    /// Tells `observer` of every attempt from now on (besides those given to the builder).
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        self.inner.observers.add(observer);
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.inner.current.load().policy.clone()
    }

    /// Puts `policy` in force at once: requests already running finish under the old one; breaker,
    /// latency and limiter state of providers and targets that still exist is kept. Returns the new
    /// version.
    pub fn apply(&self, policy: Policy) -> u64 {
        let _one_at_a_time = lock(&self.inner.applying);
        let previous = self.inner.current.load_full();
        let version = self.inner.version.fetch_add(1, Ordering::SeqCst) + 1;
        let providers: HashMap<String, ProviderSlot> = policy
            .providers
            .iter()
            .map(|(name, p)| {
                // an unchanged provider keeps its adapter, and with it its warm connection pool
                if previous.policy.providers.get(name).is_some_and(|old| **old == **p)
                    && let Some(slot) = previous.providers.get(name)
                {
                    return (name.clone(), slot.clone());
                }
                (name.clone(), self.build_provider(p))
            })
            .collect();
        self.inner.health.sync(&policy);
        self.inner.status.sync(&self.inner, &policy);
        // a changed `[state]` starts over with a new client; an unchanged one keeps its connection
        if self.inner.shared.load().as_ref().map(|s| s.settings()) != Some(&policy.state) {
            let shared = shared::Shared::new(&policy.state, self.inner.events.clone()).map(Arc::new);
            self.inner.shared.store(shared.clone());
            // a new (or no) shared state starts undegraded
            metrics::shared_state(false);
            if let Some(shared) = &shared {
                shared.follow_breakers(self.inner.me.clone());
                shared.heartbeat(self.inner.me.clone());
            }
        }
        // a breaker that was open and passive and is now active has nobody probing it yet
        for (provider, model) in self.inner.health.open_breakers() {
            probe::watch(&self.inner, &provider, model.as_deref());
        }
        let routes = policy
            .routes
            .iter()
            .map(|(name, r)| {
                let health = &self.inner.health;
                let watch = |provider: &str| {
                    let deprioritize = policy
                        .providers
                        .get(provider)
                        .and_then(|p| p.status_page.as_ref())
                        .is_some_and(|s| s.on_incident == crate::policy::OnIncident::Deprioritize);
                    if deprioritize { self.inner.status.get(provider) } else { None }
                };
                let targets: Vec<TargetState> = r
                    .targets
                    .iter()
                    .map(|t| TargetState {
                        node: health.target(&t.provider, &t.model),
                        provider_node: health.provider(&t.provider),
                        provider: providers.get(&t.provider).cloned(),
                        incident_watch: watch(&t.provider),
                    })
                    .collect();
                let deprioritizes = targets.iter().any(|t| t.incident_watch.is_some());
                (name.clone(), RouteState { policy: r.clone(), targets, deprioritizes })
            })
            .collect();
        self.inner.faults.sync_policy(&policy.drill_faults);
        let changes =
            if version == 1 { vec!["initial policy".to_owned()] } else { describe_changes(&previous.policy, &policy) };
        let hash = policy.hash.clone();
        let budgets = policy.routes.values().any(|r| r.budget.is_some())
            || policy.providers.values().any(|p| p.budget.is_some())
            || policy.server.client_keys.keys().iter().any(|k| k.budget.is_some());
        self.inner.has_budgets.store(budgets, Ordering::Release);
        self.inner.current.store(Arc::new(Snapshot { policy: Arc::new(policy), providers, routes, version }));
        *lock(&self.inner.last_reload_error) = None;
        if let Some(shared) = self.inner.shared.load_full() {
            shared.announce(&self.inner);
        }
        tracing::info!(version, hash = %hash, ?changes, "policy applied");
        metrics::reload("applied", version);
        let _ = self.inner.events.send(RouterEvent::PolicyApplied { version, hash, changes });
        version
    }

    /// Records a rejected policy edit: the policy in force stays, the error is kept for `health()`.
    pub(crate) fn reject(&self, error: &crate::policy::PolicyError) {
        let text = error.to_string();
        tracing::error!("policy rejected, keeping version {}: {text}", self.inner.current.load().version);
        *lock(&self.inner.last_reload_error) = Some(text.clone());
        if let Some(shared) = self.inner.shared.load_full() {
            shared.announce(&self.inner);
        }
        metrics::reload("rejected", self.inner.current.load().version);
        let _ = self.inner.events.send(RouterEvent::PolicyRejected { error: text });
    }

    fn build_provider(&self, p: &crate::policy::ProviderPolicy) -> ProviderSlot {
        if let Some(custom) = self.inner.custom.get(&p.name) {
            return ProviderSlot::Ready(custom.clone());
        }
        let needs_key = p.auth != AuthScheme::None;
        let key = if needs_key { p.api_key_env.as_deref().and_then(ApiKey::from_env) } else { None };
        if key.is_none() && needs_key {
            let var = p.api_key_env.as_deref().unwrap_or("(no api_key_env set)");
            return ProviderSlot::Unavailable(Box::new(ProviderError::new(
                ErrorClass::Authentication,
                p.name.clone(),
                format!("no API key: environment variable `{var}` is not set"),
            )));
        }
        let mut config = ProviderConfig::new(p.name.clone(), p.base_url.clone()).connect_timeout(p.connect_timeout);
        config.api_key = key;
        config.headers.clone_from(&p.headers);
        config.caller_headers.clone_from(&p.caller_headers);
        // the adapters refuse to call without a key when the profile says one is needed: a policy
        // that says `auth = "none"` overrides its profile
        config.profile = p.profile.as_ref().map(|profile| {
            if profile.auth == p.auth {
                profile.clone()
            } else {
                Arc::new(crate::profile::ProviderProfile { auth: p.auth, ..(**profile).clone() })
            }
        });
        match crate::provider::build(p.protocol, config) {
            Ok(p) => ProviderSlot::Ready(p),
            Err(e) => ProviderSlot::Unavailable(Box::new(e)),
        }
    }

    /// Injects a fault (a drill): matching calls to its provider get the failure as that provider
    /// would send it, decoded by the real adapter; the provider itself is not called. The fault is
    /// lifted when the guard is dropped (or when its count, duration or `until` runs out). The
    /// router's [`FaultPlayer`] plays the fault ([`RouterBuilder::fault_player`]).
    pub fn inject(&self, fault: LiveFault) -> FaultGuard {
        let id = self.inner.faults.add(fault, FaultSource::Api);
        FaultGuard::new(&self.inner.faults, id)
    }

    /// The router's state: policy version, breakers, pauses, latency, limits.
    pub fn health(&self) -> Health {
        let snap = self.inner.current.load_full();
        let (providers, targets) = self.inner.health.snapshot(Instant::now());
        Health {
            policy_version: snap.version,
            policy_hash: snap.policy.hash.clone(),
            policy_source: snap.policy.source.clone(),
            last_reload_error: lock(&self.inner.last_reload_error).clone(),
            providers,
            targets,
            faults: self.inner.faults.snapshot(),
            budgets: self.inner.budgets.snapshot(&snap.policy, std::time::SystemTime::now()),
            status_pages: self.inner.status.snapshot(),
            shared_state: match self.inner.shared.load().as_ref() {
                Some(shared) => shared.snapshot(),
                None => SharedStateSnapshot::memory(&snap.policy.state.fleet),
            },
            fleet: self.inner.shared.load().as_ref().map(|s| s.members()).unwrap_or_default(),
        }
    }

    /// Reads every provider's status page now, besides the background reads every
    /// `status_interval` (which need a Tokio runtime when the policy is applied).
    pub async fn refresh_status_pages(&self) {
        self.inner.status.refresh(&self.inner).await;
    }

    /// Whether a client key's budget (`[server] keys_file`) is spent: the refusal's message, and
    /// how long until the budget's window resets. `None` while it may spend.
    pub fn key_budget_spent(&self, key: &crate::policy::ClientKey) -> Option<(String, std::time::Duration)> {
        let budget = key.budget.as_ref()?;
        let scope = budget::Scope::Key(key.name.clone());
        let resets_in = self.inner.budgets.exhausted_for(&scope, Some(budget), std::time::SystemTime::now())?;
        Some((budget::describe(&scope, budget, resets_in), resets_in))
    }

    /// Charges `usd` that a client key's request spent to the key's budget, when it has one (and
    /// to the fleet's, when the fleet shares its state).
    pub fn charge_key(&self, key: &crate::policy::ClientKey, usd: Option<f64>) {
        if let (Some(budget), Some(usd)) = (&key.budget, usd) {
            self.inner.charge(budget::Scope::Key(key.name.clone()), budget, usd, std::time::SystemTime::now());
        }
    }

    /// Whether the policy in force has a route named `route`.
    pub fn has_route(&self, route: &str) -> bool {
        self.inner.current.load().routes.contains_key(route)
    }

    /// Sends `request` along `route` and returns the complete answer, or why every option failed.
    pub async fn chat(&self, route: &str, request: ChatRequest) -> Result<RoutedResponse, RouterError> {
        self.chat_with_original(route, request, None).await
    }

    /// Sends a request decoded from a caller's body ([`crate::wire::decode`]) along the route its
    /// `model` names. A target of the caller's wire is sent the caller's body itself (see
    /// [`crate::wire::Original`]), not an encoding of `decoded.request`. `decoded.stream` is not
    /// read: this call asks for a complete answer.
    pub async fn chat_decoded(&self, decoded: crate::wire::Decoded) -> Result<RoutedResponse, RouterError> {
        self.chat_with_original(&decoded.route, decoded.request, decoded.original.as_ref()).await
    }

    async fn chat_with_original(
        &self,
        route: &str,
        request: ChatRequest,
        original: Option<&crate::wire::Original>,
    ) -> Result<RoutedResponse, RouterError> {
        let span = spans::info(|| crate::request_span!(route, false));
        // no span (nobody records): no wrapper to enter and leave at every poll
        match span {
            Some(span) => {
                let result = self.chat_inner(route, request, original).instrument(span.clone()).await;
                match &result {
                    Ok(r) => {
                        let served = r.attempts.last();
                        let model = served.map_or(r.response.model.as_str(), |a| a.model.as_str());
                        let policy = self.policy();
                        let provider = r.response.provider.as_str();
                        let who = (provider, policy.genai_provider_name(provider));
                        spans::served(&span, who, model, &r.response.model, &r.response.usage);
                    }
                    Err(e) => spans::failed(&span, e.class()),
                }
                result
            }
            None => self.chat_inner(route, request, original).await,
        }
    }

    async fn chat_inner(
        &self,
        route_name: &str,
        request: ChatRequest,
        original: Option<&crate::wire::Original>,
    ) -> Result<RoutedResponse, RouterError> {
        // one snapshot for the whole request, whatever reloads happen meanwhile
        let snap = self.inner.current.load_full();
        let start = Instant::now();
        let (mut plan, mut success) = engine::first_success(
            &self.inner,
            &snap,
            route_name,
            (&request, original),
            start,
            |_| call_chat,
            engine::Op::Chat,
        )
        .await?;
        let mut response = success.value;
        response.provider.clone_from(&success.lease.target().provider);
        let usage = response.usage;
        let dropped = plan.dropped(success.lease.index());
        let now = success.ended;
        let elapsed = now - success.lease.started;
        let attempt = success.lease.served(elapsed).priced(success.lease.target(), &usage);
        self.inner.emit_attempt(&plan.route.name, plan.op(), &attempt);
        success.lease.learn_budget(&self.inner, response.rate_limit.as_ref());
        success.lease.succeed(&self.inner, Some(usage), now, elapsed);
        plan.attempts.push(attempt);
        tracing::debug!(
            "gen_ai.response.model" = %response.model,
            "gen_ai.usage.input_tokens" = usage.input_tokens,
            "gen_ai.usage.output_tokens" = usage.output_tokens,
            "served"
        );
        Ok(RoutedResponse { route: plan.route.name.clone(), response, attempts: plan.attempts, dropped })
    }
}

impl Router {
    /// Counts the input tokens `request` would cost on the route's first target that can count,
    /// without generating anything: an Anthropic target is asked (its `count_tokens` endpoint),
    /// an OpenAI model with a known tokenizer is counted here ([`crate::tokens`]); targets that
    /// cannot count are skipped. Breakers, retries and failover apply as for chat; rate-limit
    /// budgets are not spent.
    pub async fn count_tokens(&self, route: &str, request: ChatRequest) -> Result<RoutedCount, RouterError> {
        self.count_inner(route, &request, None).await
    }

    /// [`Router::count_tokens`] for a request decoded from a caller's body: a target of the
    /// caller's wire is sent the caller's body.
    pub async fn count_tokens_decoded(&self, decoded: crate::wire::Decoded) -> Result<RoutedCount, RouterError> {
        self.count_inner(&decoded.route, &decoded.request, decoded.original.as_ref()).await
    }

    async fn count_inner(
        &self,
        route_name: &str,
        request: &ChatRequest,
        original: Option<&crate::wire::Original>,
    ) -> Result<RoutedCount, RouterError> {
        let snap = self.inner.current.load_full();
        let start = Instant::now();
        let (mut plan, success) = engine::first_success(
            &self.inner,
            &snap,
            route_name,
            (request, original),
            start,
            |_| call_count,
            engine::Op::Count,
        )
        .await?;
        let count = success.value;
        let now = success.ended;
        let attempt = success.lease.served(now - success.lease.started);
        self.inner.emit_attempt(&plan.route.name, plan.op(), &attempt);
        let (provider, model) = (attempt.provider.clone(), attempt.model.clone());
        success.lease.counted();
        plan.attempts.push(attempt);
        Ok(RoutedCount { route: plan.route.name.clone(), provider, model, count, attempts: plan.attempts })
    }
}

impl Router {
    /// Asks the route's embedding models for embeddings of `request`, with the route's retries,
    /// breakers, limits (the input's tokens against `tpm`), timeouts and failover. Targets that
    /// cannot embed (the Anthropic wire; a model whose profile makes it a chat model) are skipped.
    pub async fn embed(
        &self,
        route_name: &str,
        request: crate::embed::EmbeddingRequest,
    ) -> Result<RoutedEmbedding, RouterError> {
        let snap = self.inner.current.load_full();
        let start = Instant::now();
        let carrier = request.as_chat();
        let request = Arc::new(request);
        let op = |_: &crate::policy::RoutePolicy| embed_op(request.clone());
        let (mut plan, success) =
            engine::first_success(&self.inner, &snap, route_name, (&carrier, None), start, op, engine::Op::Embed)
                .await?;
        let response = success.value;
        let now = success.ended;
        let elapsed = now - success.lease.started;
        let usage = crate::chat::Usage { input_tokens: response.input_tokens, ..Default::default() };
        let attempt = success.lease.served(elapsed).priced(success.lease.target(), &usage);
        self.inner.emit_attempt(&plan.route.name, plan.op(), &attempt);
        let (provider, model) = (attempt.provider.clone(), attempt.model.clone());
        success.lease.succeed(&self.inner, Some(usage), now, elapsed);
        plan.attempts.push(attempt);
        Ok(RoutedEmbedding { route: plan.route.name.clone(), provider, model, response, attempts: plan.attempts })
    }
}

/// The embeddings call, the request shared by every attempt.
fn embed_op(
    request: Arc<crate::embed::EmbeddingRequest>,
) -> impl for<'a> Fn(
    &'a dyn Provider,
    crate::provider::Call<'a>,
    &'a crate::policy::TargetPolicy,
) -> AttemptFuture<'a, crate::embed::EmbeddingResponse> {
    move |p, call, _| {
        let request = request.clone();
        Box::pin(async move { p.embed(call, &request).await })
    }
}

fn call_count<'a>(
    p: &'a dyn Provider,
    call: crate::provider::Call<'a>,
    _: &'a crate::policy::TargetPolicy,
) -> AttemptFuture<'a, crate::provider::TokenCount> {
    p.count_tokens(call)
}

fn call_chat<'a>(
    p: &'a dyn Provider,
    call: crate::provider::Call<'a>,
    _: &'a crate::policy::TargetPolicy,
) -> AttemptFuture<'a, crate::chat::ChatResponse> {
    // async-trait already boxes the call: no second box
    p.chat(call)
}

impl Inner {
    pub(crate) fn emit_attempt(&self, route: &str, op: engine::Op, a: &Attempt) {
        metrics::attempt(route, op.as_str(), a);
        self.observers.tell(route, op.as_str(), a, || self.current.load());
        if let Some(usd) = a.cost_usd {
            self.spend(route, &a.provider, usd);
            meter::add(usd);
        }
        if !self.subscribed.load(Ordering::Relaxed) || !self.events.wants_attempts() {
            return; // nobody listens: do not build the event
        }
        let _ = self.events.send(RouterEvent::Attempt {
            route: route.to_owned(),
            operation: op.as_str(),
            provider: a.provider.clone(),
            model: a.model.clone(),
            outcome: a.outcome,
            class: a.class,
            status: a.status,
            elapsed: a.elapsed,
            skip_reason: a.skip_reason.clone(),
            probe: a.probe,
            hedge: a.hedge,
            cost_usd: a.cost_usd,
        });
    }

    /// `usd` spent on `route` at `provider`: charged to their budgets, when they have one.
    fn spend(&self, route: &str, provider: &str, usd: f64) {
        if !self.has_budgets.load(Ordering::Acquire) {
            return;
        }
        let snap = self.current.load();
        let now = std::time::SystemTime::now();
        if let Some(b) = snap.policy.routes.get(route).and_then(|r| r.budget) {
            self.charge(budget::Scope::Route(route.to_owned()), &b, usd, now);
        }
        if let Some(b) = snap.policy.provider(provider).and_then(|p| p.budget) {
            self.charge(budget::Scope::Provider(provider.to_owned()), &b, usd, now);
        }
    }

    /// What a provider's rate-limit headers said of a target's budget, in the answer to a request
    /// sent at `sent`: learned here, and told to the fleet when it shares its state (at most every
    /// [`quota::QUOTA_EVERY`] per target, and at once when the budget is spent).
    pub(crate) fn learn_quota(
        &self,
        provider: &str,
        model: &str,
        node: &health::Node,
        limit: &crate::provider::RateLimit,
        sent: Instant,
    ) {
        let now = Instant::now();
        node.quota.learn(limit, sent, now);
        if let Some(shared) = self.shared.load_full()
            && node.quota.share_now(now, limit)
        {
            shared.publish_quota(provider, model, limit);
        }
    }

    /// `usd` spent on `scope`'s budget: counted here, and added to the fleet's total when the
    /// fleet shares its state.
    fn charge(&self, scope: budget::Scope, b: &crate::policy::Budget, usd: f64, now: std::time::SystemTime) {
        if let Some(shared) = self.shared.load_full() {
            shared.spend_budget(self.me.clone(), scope.clone(), *b, usd, budget::window_index(b, now));
        }
        self.budgets.spend(scope, b, usd, now);
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The last reload's error, until a good policy is applied.
    #[cfg(feature = "redis")]
    pub(crate) fn last_reload_error(&self) -> Option<String> {
        lock(&self.last_reload_error).clone()
    }
}

/// A short summary of what changed between two policies.
fn describe_changes(old: &Policy, new: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    let names = |m: &BTreeMap<String, Arc<crate::policy::RoutePolicy>>| {
        m.keys().cloned().collect::<std::collections::BTreeSet<_>>()
    };
    let (o, n) = (names(&old.routes), names(&new.routes));
    for r in n.difference(&o) {
        out.push(format!("route {r} added"));
    }
    for r in o.difference(&n) {
        out.push(format!("route {r} removed"));
    }
    for r in o.intersection(&n) {
        let (Some(a), Some(b)) = (old.routes.get(r), new.routes.get(r)) else { continue };
        let ta: Vec<(String, String)> = a.targets.iter().map(|t| (t.provider.clone(), t.model.clone())).collect();
        let tb: Vec<(String, String)> = b.targets.iter().map(|t| (t.provider.clone(), t.model.clone())).collect();
        for t in tb.iter().filter(|t| !ta.contains(t)) {
            out.push(format!("route {r}: target {}/{} added", t.0, t.1));
        }
        for t in ta.iter().filter(|t| !tb.contains(t)) {
            out.push(format!("route {r}: target {}/{} removed", t.0, t.1));
        }
        if a != b && ta == tb {
            out.push(format!("route {r} modified"));
        } else if ta != tb && ta.iter().all(|t| tb.contains(t)) && tb.iter().all(|t| ta.contains(t)) {
            out.push(format!("route {r}: targets reordered"));
        }
    }
    let po: std::collections::BTreeSet<_> = old.providers.keys().collect();
    let pn: std::collections::BTreeSet<_> = new.providers.keys().collect();
    for p in pn.difference(&po) {
        out.push(format!("provider {p} added"));
    }
    for p in po.difference(&pn) {
        out.push(format!("provider {p} removed"));
    }
    for p in po.intersection(&pn) {
        if old.providers.get(*p) != new.providers.get(*p) {
            out.push(format!("provider {p} modified"));
        }
    }
    if old.drill_faults != new.drill_faults {
        out.push(format!("drill faults: {} → {}", old.drill_faults.len(), new.drill_faults.len()));
    }
    if out.is_empty() {
        out.push("no effective change".to_owned());
    }
    out
}
