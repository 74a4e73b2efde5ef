//! Gateway mode (`switchyard serve`): the router behind OpenAI- and Anthropic-compatible HTTP
//! endpoints, so that any official SDK can point its `base_url` at it unchanged.
//!
//! - `POST /v1/chat/completions` (OpenAI wire) and `POST /v1/messages` (Anthropic wire): the
//!   request's `model` names a route; the response's `model` is the model that served.
//! - `GET /v1/models` (the routes), `GET /healthz`, `GET /metrics` (Prometheus), `GET /admin/state`.
//!
//! The policy is hot-reloaded on file change (and on SIGHUP in the binary); shutdown lets requests
//! and streams in flight finish, up to a bound.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::policy::{Policy, PolicyError};
use crate::router::{PolicyWatcher, Router, RouterError, WatchError};

mod anthropic;
mod auth;
mod dialect;
mod handlers;
mod openai;
mod status;

use anthropic::AnthropicWire;
use handlers::AppState;
use openai::OpenAiWire;

/// Largest request body accepted when the policy's `[server] max_body` does not say.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// The request's field limits of `[server]` (`max_model_bytes`, `max_messages`, `max_tools`),
/// with their defaults: far above what any real request needs, far below what would let one
/// request make the gateway work hard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldLimits {
    pub(crate) model_bytes: usize,
    pub(crate) messages: usize,
    pub(crate) tools: usize,
}

impl FieldLimits {
    fn of(server: &crate::policy::ServerSettings) -> Self {
        let pick = |v: Option<u64>, default: usize| v.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX));
        FieldLimits {
            model_bytes: pick(server.max_model_bytes, 256),
            messages: pick(server.max_messages, 10_000),
            tools: pick(server.max_tools, 1_000),
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
    /// The router did not start.
    #[error("{0}")]
    Router(#[from] RouterError),
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
        for w in &policy.warnings {
            tracing::warn!("{w}");
        }
        let listen = options
            .listen
            .map(|a| a.to_string())
            .or_else(|| policy.server.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let admin_listen = options.admin_listen.map(|a| a.to_string()).or_else(|| policy.server.admin_listen.clone());
        let max_body = policy.server.max_body.map_or(DEFAULT_MAX_BODY, |b| usize::try_from(b).unwrap_or(usize::MAX));
        // client keys are read once at start: rotating them means a restart (documented)
        let keys = Arc::new(auth::ClientKeys::from_env(policy.server.api_keys_env.as_deref()));
        let limits = FieldLimits::of(&policy.server);
        let router = Router::new(policy)?;
        let watcher = router.watch(&options.policy)?;
        let state = AppState { router: router.clone(), keys, metrics: prometheus(), limits };

        let api = axum::Router::new()
            .route(
                "/v1/chat/completions",
                post(|State(s): State<AppState>, h: HeaderMap, b: Result<Bytes, BytesRejection>| {
                    handlers::chat::<OpenAiWire>("chat_completions", s, h, b)
                })
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), handlers::authenticate::<OpenAiWire>)),
            )
            .route(
                "/v1/messages",
                post(|State(s): State<AppState>, h: HeaderMap, b: Result<Bytes, BytesRejection>| {
                    handlers::chat::<AnthropicWire>("messages", s, h, b)
                })
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    handlers::authenticate::<AnthropicWire>,
                )),
            )
            .route("/v1/models", get(handlers::models))
            .route("/healthz", get(handlers::healthz))
            .layer(DefaultBodyLimit::max(max_body));
        let admin = axum::Router::new()
            .route("/metrics", get(handlers::metrics))
            .route("/admin/state", get(handlers::admin_state));

        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let listener = bind(&listen).await?;
        let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: listen.clone(), source })?;
        let mut tasks = Vec::new();
        let admin_addr = match admin_listen {
            Some(a) => {
                let admin_listener = bind(&a).await?;
                let admin_addr =
                    admin_listener.local_addr().map_err(|source| ServeError::Listen { addr: a.clone(), source })?;
                tasks.push(spawn_server(admin_listener, admin.with_state(state.clone()), rx.clone()));
                tasks.push(spawn_server(listener, api.with_state(state), rx));
                Some(admin_addr)
            }
            None => {
                tasks.push(spawn_server(listener, api.merge(admin).with_state(state), rx));
                None
            }
        };
        tracing::info!(%addr, ?admin_addr, "switchyard gateway listening");
        Ok(Gateway { addr, admin_addr, router, shutdown, tasks, grace: options.shutdown_grace, _watcher: watcher })
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
        let aborts: Vec<_> = self.tasks.iter().map(JoinHandle::abort_handle).collect();
        if tokio::time::timeout(grace, futures::future::join_all(self.tasks)).await.is_err() {
            tracing::warn!(?grace, "shutdown grace over: closing the connections left");
            for a in aborts {
                a.abort();
            }
        }
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down: finishing requests in flight");
        self.shutdown().await;
    }
}

fn spawn_server(
    listener: TcpListener,
    app: axum::Router,
    mut rx: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let signal = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // streams are many small writes: Nagle would hold each back until the client's delayed
        // ACK (~40 ms), which caps a streaming client at a few dozen answers a second
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(signal).await {
            tracing::error!("server error: {e}");
        }
    })
}
