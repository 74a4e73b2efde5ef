//! Gateway mode (`switchyard serve`): the router behind OpenAI- and Anthropic-compatible HTTP
//! endpoints, so that any official SDK can point its `base_url` at it unchanged.
//!
//! - `POST /v1/chat/completions` (OpenAI wire) and `POST /v1/messages` (Anthropic wire): the
//!   request's `model` names a route; the response's `model` is the model that served.
//! - `GET /v1/models` and `GET /v1/models/{id}` (the routes, in OpenAI's shape or, for a caller that
//!   sends `anthropic-version`, Anthropic's), `GET /` and `GET /healthz` (open), `GET /metrics`
//!   (Prometheus), `GET /admin/state`.
//!
//! The policy is hot-reloaded on file change (and on SIGHUP in the binary); shutdown lets requests
//! and streams in flight finish, up to a bound.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::policy::{Policy, PolicyError};
use crate::router::{PolicyWatcher, Router, WatchError};

mod anthropic;
mod auth;
mod conn;
mod dashboard;
mod dialect;
#[cfg(feature = "sim")]
mod faults;
pub mod fd_limit;
mod handlers;
mod openai;
mod relay;
mod request_id;
mod responses;
mod status;

pub use auth::DEFAULT_MAX_IN_FLIGHT_PER_KEY;
pub use conn::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_WRITE_TIMEOUT,
};

use anthropic::AnthropicWire;
use handlers::AppState;
use openai::OpenAiWire;

/// Largest request body accepted when the policy's `[server] max_body` does not say.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// Default `[server] max_model_bytes`.
pub const DEFAULT_MAX_MODEL_BYTES: usize = 256;
/// Default `[server] max_messages`.
pub const DEFAULT_MAX_MESSAGES: usize = 10_000;
/// Default `[server] max_tools`.
pub const DEFAULT_MAX_TOOLS: usize = 1_000;

/// The request limits of `[server]`, defaults filled in: far above what any real request needs,
/// far below what would let one request make the gateway work hard. Read from the policy in force
/// for every request, so a reload applies at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestLimits {
    pub(crate) body_bytes: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) model_bytes: usize,
    pub(crate) messages: usize,
    pub(crate) tools: usize,
    pub(crate) in_flight_per_key: u32,
}

impl RequestLimits {
    fn of(server: &crate::policy::ServerSettings) -> Self {
        let pick = |v: Option<u64>, default: usize| v.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX));
        RequestLimits {
            body_bytes: pick(server.max_body, DEFAULT_MAX_BODY),
            body_timeout: server.body_read_timeout.unwrap_or(DEFAULT_BODY_READ_TIMEOUT),
            model_bytes: pick(server.max_model_bytes, DEFAULT_MAX_MODEL_BYTES),
            messages: pick(server.max_messages, DEFAULT_MAX_MESSAGES),
            tools: pick(server.max_tools, DEFAULT_MAX_TOOLS),
            in_flight_per_key: server
                .max_in_flight_per_key
                .map_or(DEFAULT_MAX_IN_FLIGHT_PER_KEY, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }
}

/// How to run the gateway.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The policy file (watched for changes).
    pub policy: PathBuf,
    /// Address of the API endpoints (`--listen`; else `[server] listen`; else 127.0.0.1:8080).
    pub listen: Option<SocketAddr>,
    /// Separate address for `/metrics` and `/admin/state` (`--admin-listen`; else `[server] admin_listen`).
    pub admin_listen: Option<SocketAddr>,
    /// How long shutdown waits for requests and streams in flight.
    pub shutdown_grace: Duration,
}

impl ServeOptions {
    /// Options for a policy file, everything else default.
    pub fn new(policy: impl Into<PathBuf>) -> Self {
        ServeOptions {
            policy: policy.into(),
            listen: None,
            admin_listen: None,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The policy is invalid.
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// The policy file cannot be watched.
    #[error("{0}")]
    Watch(#[from] WatchError),
    /// An address is invalid or taken.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The one Prometheus recorder of this process (the `metrics` facade has one global recorder).
fn prometheus() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&buckets)
                .and_then(|b| b.install_recorder())
                .inspect(|_| crate::router::enable_metrics())
                .map_err(|e| tracing::warn!("metrics disabled: {e}"))
                .ok()
        })
        .clone()
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    router: Router,
    shutdown: tokio::sync::watch::Sender<bool>,
    abort: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    grace: Duration,
    _watcher: PolicyWatcher,
}

async fn bind(addr: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Listen { addr: addr.to_owned(), source })
}

impl Gateway {
    /// Starts the gateway: reads and watches the policy, binds, serves.
    pub async fn start(options: ServeOptions) -> Result<Gateway, ServeError> {
        let policy = Policy::from_file(&options.policy)?;
        fd_limit::raise();
        for w in &policy.warnings {
            tracing::warn!("{w}");
        }
        let listen = options
            .listen
            .map(|a| a.to_string())
            .or_else(|| policy.server.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let admin_listen = options.admin_listen.map(|a| a.to_string()).or_else(|| policy.server.admin_listen.clone());
        if !policy.server.client_keys.enabled() && !listen.starts_with("127.") && !listen.starts_with("[::1]") {
            tracing::warn!(%listen, "no client keys (`[server] keys_file`): anyone who reaches this address may call every route and read /admin");
        }
        // a token limit on an OpenAI model counts every request with the model's tokenizer: built
        // now, off the request path, not by the first request (its tables cost tens of MB, so
        // only where a limit needs them; `count_tokens` alone loads them when first asked)
        let openai_models: Vec<String> = policy
            .routes
            .values()
            .flat_map(|r| r.targets.iter())
            .filter(|t| {
                policy
                    .provider(&t.provider)
                    .is_some_and(|p| p.protocol.is_openai() && (p.limits.tpm.or(t.limits.tpm)).is_some())
            })
            .map(|t| t.model.clone())
            .collect();
        tokio::task::spawn_blocking(move || crate::tokens::warm(openai_models.iter().map(String::as_str)));
        let router = Router::builder(policy);
        // the admin API's faults and `[[drill.faults]]` sound as each provider's wire would
        #[cfg(feature = "sim")]
        let router = router.fault_player(Arc::new(crate::sim::WireFaults::default()));
        let router = router.build();
        let watcher = router.watch(&options.policy)?;
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let dashboard = Arc::new(dashboard::Dashboard::default());
        dashboard.follow(&router);
        let state = AppState {
            router: router.clone(),
            metrics: prometheus(),
            key_limiters: Arc::new(auth::KeyLimiters::default()),
            dashboard,
            #[cfg(feature = "sim")]
            faults: Arc::default(),
            shutdown: rx.clone(),
            connections: Arc::default(),
        };

        let api = axum::Router::new()
            .route(
                "/v1/chat/completions",
                post(|State(s): State<AppState>, c: handlers::CallerOf, h: HeaderMap, b: Body| {
                    handlers::chat::<OpenAiWire>("chat_completions", s, c, h, b)
                })
                .route_layer(from_fn_with_state(state.clone(), handlers::authenticate::<OpenAiWire>)),
            )
            .route(
                "/v1/messages",
                post(|State(s): State<AppState>, c: handlers::CallerOf, h: HeaderMap, b: Body| {
                    handlers::chat::<AnthropicWire>("messages", s, c, h, b)
                })
                .route_layer(from_fn_with_state(state.clone(), handlers::authenticate::<AnthropicWire>)),
            )
            .route(
                "/v1/responses",
                post(|State(s): State<AppState>, c: handlers::CallerOf, h: HeaderMap, b: Body| {
                    handlers::chat::<responses::ResponsesWire>("responses", s, c, h, b)
                })
                .route_layer(from_fn_with_state(state.clone(), handlers::authenticate::<OpenAiWire>)),
            )
            .route(
                "/v1/embeddings",
                post(handlers::embeddings)
                    .route_layer(from_fn_with_state(state.clone(), handlers::authenticate::<OpenAiWire>)),
            )
            .route(
                "/v1/messages/count_tokens",
                post(handlers::count_tokens)
                    .route_layer(from_fn_with_state(state.clone(), handlers::authenticate::<AnthropicWire>)),
            )
            // both wires' SDKs ask here: answered in the shape, and refused in the dialect, of the one that asks
            .route(
                "/v1/models",
                get(handlers::models).route_layer(from_fn_with_state(state.clone(), handlers::authenticate_models)),
            )
            .route(
                "/v1/models/{id}",
                get(handlers::model).route_layer(from_fn_with_state(state.clone(), handlers::authenticate_models)),
            )
            // connectivity probes (`HEAD /` too: axum answers HEAD from GET), open like /healthz
            .route("/", get(handlers::root))
            .route("/healthz", get(handlers::healthz));
        let admin = axum::Router::new()
            .route("/metrics", get(handlers::metrics))
            .route("/admin/state", get(handlers::admin_state))
            .route("/admin", get(dashboard::page))
            .route("/admin/events", get(dashboard::events));
        #[cfg(feature = "sim")]
        let admin = admin
            .route("/admin/faults", axum::routing::post(faults::inject))
            .route("/admin/faults/{id}", axum::routing::delete(faults::lift));
        let admin = admin.route_layer(from_fn_with_state(state.clone(), handlers::admin_only));

        let abort = CancellationToken::new();
        let listener = bind(&listen).await?;
        let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: listen.clone(), source })?;
        let mut tasks = Vec::new();
        let admin_addr = match admin_listen {
            Some(a) => {
                let admin_listener = bind(&a).await?;
                let admin_addr =
                    admin_listener.local_addr().map_err(|source| ServeError::Listen { addr: a.clone(), source })?;
                let admin_app = admin.with_state(state.clone());
                let connections = state.connections.clone();
                tasks.push(conn::spawn_server(
                    admin_listener,
                    admin_app,
                    router.clone(),
                    connections.clone(),
                    rx.clone(),
                    abort.clone(),
                ));
                tasks.push(conn::spawn_server(
                    listener,
                    api.with_state(state),
                    router.clone(),
                    connections,
                    rx,
                    abort.clone(),
                ));
                Some(admin_addr)
            }
            None => {
                let connections = state.connections.clone();
                let app = api.merge(admin).with_state(state);
                tasks.push(conn::spawn_server(listener, app, router.clone(), connections, rx, abort.clone()));
                None
            }
        };
        tracing::info!(%addr, ?admin_addr, "switchyard gateway listening");
        Ok(Gateway {
            addr,
            admin_addr,
            router,
            shutdown,
            abort,
            tasks,
            grace: options.shutdown_grace,
            _watcher: watcher,
        })
    }

    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` and `/admin/state` listen, when separate.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The router behind the gateway.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Stops accepting connections and waits for requests and streams in flight, up to the
    /// shutdown grace; then closes what is left.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let grace = self.grace;
        let mut tasks = futures::future::join_all(self.tasks);
        if tokio::time::timeout(grace, &mut tasks).await.is_err() {
            tracing::warn!(?grace, "shutdown grace over: closing the connections left");
            self.abort.cancel();
            let _ = tasks.await;
        }
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down: finishing requests in flight");
        self.shutdown().await;
    }
}
