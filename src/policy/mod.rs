//! The routing policy: a TOML file, validated with precise errors and compiled into an immutable
//! [`Policy`]. See `docs/policy.md` for the reference.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::ErrorClass;
use crate::profile::{ModelProfile, ProviderProfile};
use crate::provider::Protocol;

mod client_keys;
pub(crate) mod compile;
mod config;
pub(crate) mod diagnostic;
mod live_fault;
mod otel;
mod schema;
mod state;
mod tls;

pub use client_keys::{ClientKey, ClientKeys};
pub use config::{
    BreakerConfig, BreakerEffect, Budget, ClassAction, ClassActions, DEFAULT_HOLDBACK, DEFAULT_RESUME,
    DEFAULT_STATUS_INTERVAL, Hedge, HedgeAfter, Holdback, Limits, OnIncident, ProbeMode, Resume, RetryConfig,
    StatusPageConfig, Timeouts,
};
pub use diagnostic::{Diagnostic, Location, PolicyError};
#[cfg(feature = "otel")]
pub(crate) use otel::DEFAULT_METRICS_INTERVAL as OTEL_METRICS_INTERVAL;
pub use otel::{OtelSettings, OtlpProtocol};
pub use schema::Strategy;
pub use state::{OnStateError, RedisUrl, StateBackend, StateSettings};
pub use tls::TlsSettings;

/// Output tokens reserved for a request that sets no `max_tokens` and whose model has no profile.
pub const DEFAULT_OUTPUT_RESERVATION: u32 = 4096;

/// A compiled, validated, immutable policy. Cheap to share (`Arc<Policy>`); a reload builds a new one.
/// Made only by reading a policy (`from_file`, `from_toml`, `parse`), which validates it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Policy {
    /// Where it was read from (`<inline>` for strings).
    pub source: String,
    /// A hash of the file's content (16 hex digits).
    pub hash: String,
    /// Providers by name.
    pub providers: BTreeMap<String, Arc<ProviderPolicy>>,
    /// Routes by name.
    pub routes: BTreeMap<String, Arc<RoutePolicy>>,
    /// Live drill faults (`[[drill.faults]]`).
    pub drill_faults: Vec<LiveFault>,
    /// `[server]` settings for `switchyard serve`.
    pub server: ServerSettings,
    /// `[state]`: where a fleet of routers keeps what they share.
    pub state: StateSettings,
    /// `[otel]`: OpenTelemetry export, when the policy has the table (read by `switchyard serve`
    /// at start).
    pub otel: Option<OtelSettings>,
    /// Problems that do not stop the policy from working (an unset API-key variable, ...).
    pub warnings: Vec<Diagnostic>,
}

/// One provider as the policy resolved it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ProviderPolicy {
    /// Its name in the policy.
    pub name: String,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Base URL.
    pub base_url: String,
    /// Environment variable holding the key (never the key).
    pub api_key_env: Option<String>,
    /// How the key is sent; `none` for servers that need no key.
    pub auth: crate::profile::AuthScheme,
    /// Headers sent with every request (names and values from the policy and profile).
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
    /// The built-in profile it inherits.
    #[serde(skip)]
    pub profile: Option<Arc<ProviderProfile>>,
    /// Provider-wide limits (shared by all its targets).
    pub limits: Limits,
    /// What the provider may be sent per window, every route together.
    pub budget: Option<Budget>,
    /// Provider-wide breaker.
    pub breaker: BreakerConfig,
    /// Connect timeout.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub connect_timeout: Duration,
    /// Its status page, when the policy enables one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_page: Option<StatusPageConfig>,
    /// Which provider headers of a gateway caller it is sent (`forward_headers`, `drop_betas`).
    pub caller_headers: crate::provider::CallerHeaders,
}

/// One target of a route: a provider and model with the settings that apply to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TargetPolicy {
    /// Provider name.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Weight for the `weighted` strategy.
    pub weight: u32,
    /// Effective retry settings.
    pub retry: RetryConfig,
    /// Effective time limits.
    pub timeouts: Timeouts,
    /// Effective breaker settings.
    pub breaker: BreakerConfig,
    /// Target-level limits (the provider's apply too).
    pub limits: Limits,
    /// What to do with request fields this target's wire cannot carry (the target's
    /// `unsupported`, else its route's, else `error`).
    pub unsupported: crate::wire::UnsupportedMode,
    /// How a stream this target serves is finished after a failure mid-answer, in order (the
    /// target's `resume`, else its route's, else [`DEFAULT_RESUME`]).
    pub resume: Vec<Resume>,
    /// How much of an answer is held back before relaying: set when `resume` lists `holdback`.
    pub holdback: Option<Holdback>,
    /// What the provider's catalog says of the model.
    #[serde(skip)]
    pub model_profile: Option<ModelProfile>,
}

impl TargetPolicy {
    /// Tokens a request may need on this target: its prompt estimate plus its `max_tokens`, or the
    /// model's largest output, or [`DEFAULT_OUTPUT_RESERVATION`].
    pub fn token_need(&self, prompt_tokens: u64, max_tokens: Option<u32>) -> u64 {
        let output = max_tokens
            .or(self.model_profile.as_ref().map(|m| m.max_output_tokens))
            .unwrap_or(DEFAULT_OUTPUT_RESERVATION);
        prompt_tokens + u64::from(output)
    }

    /// The model's context window, when its profile is known.
    pub fn context_window(&self) -> Option<u64> {
        self.model_profile.as_ref().map(|m| m.context_window)
    }

    /// Whether `resume` lists `strategy`.
    pub fn resumes_with(&self, strategy: Resume) -> bool {
        self.resume.contains(&strategy)
    }

    /// Whether the model accepts an assistant prefill, when known.
    pub fn supports_prefill(&self) -> Option<bool> {
        self.model_profile.as_ref().and_then(|m| m.supports_prefill)
    }
}

/// One route.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RoutePolicy {
    /// Its name.
    pub name: String,
    /// How targets are ordered.
    pub strategy: Strategy,
    /// Targets, in the order written.
    pub targets: Vec<TargetPolicy>,
    /// Per-class actions (defaults with the route's `[on.CLASS]` overrides).
    pub actions: ClassActions,
    /// Route for prompts that do not fit.
    pub on_context_overflow: Option<String>,
    /// Bound on the whole request.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub total_timeout: Duration,
    /// What the route may spend per window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Requests that share a cacheable prompt prefix go first to the same target (while it is
    /// healthy), so load balancing keeps the provider's prompt cache warm.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cache_affinity: bool,
    /// Hedged requests, when the route asks for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hedge: Option<Hedge>,
}

/// What a live drill injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "class")]
pub enum InjectKind {
    /// A failure of this class, produced as the provider's real wire response.
    Error(ErrorClass),
    /// Extra latency before the response.
    Latency,
    /// A slow first token.
    SlowFirstToken,
    /// A stall mid-stream.
    Stall,
    /// A stream cut after `after_tokens` tokens.
    Cut,
}

impl std::fmt::Display for InjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InjectKind::Error(class) => write!(f, "{class}"),
            InjectKind::Latency => f.write_str("latency"),
            InjectKind::SlowFirstToken => f.write_str("slow_first_token"),
            InjectKind::Stall => f.write_str("stall"),
            InjectKind::Cut => f.write_str("cut"),
        }
    }
}

impl InjectKind {
    /// Parses `inject = "..."`: an error class name or `latency`, `slow_first_token`, `stall`, `cut`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "latency" => Some(InjectKind::Latency),
            "slow_first_token" => Some(InjectKind::SlowFirstToken),
            "stall" => Some(InjectKind::Stall),
            "cut" => Some(InjectKind::Cut),
            // a spent budget is the policy's own, not a provider's: set a small budget instead
            "budget_exhausted" => None,
            other => other.parse::<ErrorClass>().ok().map(InjectKind::Error),
        }
    }
}

/// A fault declared in `[[drill.faults]]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveFault {
    /// Provider it applies to.
    pub provider: String,
    /// Only this model, if set.
    pub model: Option<String>,
    /// What to inject.
    pub inject: InjectKind,
    /// Share of requests hit (0..=1).
    pub rate: f64,
    /// Stop after this many hits.
    pub count: Option<u64>,
    /// Stop this long after the policy is applied.
    #[serde(serialize_with = "crate::duration::ser::opt_human")]
    pub duration: Option<Duration>,
    /// Stop at this time.
    #[serde(skip)]
    pub until: Option<SystemTime>,
    /// `retry-after` sent with an injected `rate_limited`.
    #[serde(serialize_with = "crate::duration::ser::opt_human")]
    pub retry_after: Option<Duration>,
    /// Delay for latency, slow first token and stall.
    #[serde(serialize_with = "crate::duration::ser::opt_human")]
    pub delay: Option<Duration>,
    /// Tokens before a stall or cut.
    pub after_tokens: Option<usize>,
}

/// `[server]` settings. Limits left unset take the defaults the gateway documents
/// (`switchyard::serve`'s `DEFAULT_*` constants).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct ServerSettings {
    /// Variable with the comma-separated client API keys; unset means no client auth.
    pub api_keys_env: Option<String>,
    /// Listen address, overridden by `--listen`.
    pub listen: Option<String>,
    /// Separate address for admin endpoints.
    pub admin_listen: Option<String>,
    /// Largest request body in bytes.
    pub max_body: Option<u64>,
    /// Longest `model` (route name) a request may give, in bytes.
    pub max_model_bytes: Option<u64>,
    /// Most messages a request may carry.
    pub max_messages: Option<u64>,
    /// Most tools a request may declare.
    pub max_tools: Option<u64>,
    /// The key file (`[keys.NAME]` tables), resolved against the policy's directory.
    pub keys_file: Option<std::path::PathBuf>,
    /// Time a connection has to deliver a request's headers.
    #[serde(serialize_with = "crate::duration::ser::opt_human")]
    pub header_read_timeout: Option<Duration>,
    /// Time a request has to deliver its body.
    #[serde(serialize_with = "crate::duration::ser::opt_human")]
    pub body_read_timeout: Option<Duration>,
    /// Time an idle kept-alive connection stays open.
    #[serde(serialize_with = "crate::duration::ser::opt_human")]
    pub keepalive_timeout: Option<Duration>,
    /// Time a connection may refuse the gateway's writes (a client that stopped reading).
    #[serde(serialize_with = "crate::duration::ser::opt_human")]
    pub write_timeout: Option<Duration>,
    /// Client connections open at once.
    pub max_connections: Option<u64>,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: Option<u64>,
    /// Requests in flight at once per client key without its own `concurrency`.
    pub max_in_flight_per_key: Option<u64>,
    /// TLS termination, when configured.
    pub tls: Option<TlsSettings>,
    /// The client keys (from `keys_file` and `api_keys_env`), read with the policy.
    #[serde(skip)]
    pub client_keys: Arc<ClientKeys>,
    /// A hash of the key file and TLS files as read: a change to them is a new policy, but the
    /// hash shown to the world (`Policy::hash`) never depends on secrets.
    #[serde(skip)]
    pub(crate) files_hash: u64,
}

impl ServerSettings {
    /// The files besides the policy that the policy reads (key file, TLS certificate and key):
    /// a change to one reloads the policy like a change to the policy itself.
    pub fn files(&self) -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = self.keys_file.iter().cloned().collect();
        if let Some(tls) = &self.tls {
            files.extend([tls.cert.clone(), tls.key.clone()]);
        }
        files
    }

    /// A TLS acceptor for a new connection, when TLS is on.
    #[cfg(feature = "gateway")]
    pub(crate) fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.as_ref().map(TlsSettings::acceptor)
    }
}

/// The files a policy file names (key file, TLS certificate and key), read as leniently as
/// possible: for watching them even while the policy is rejected (it may be waiting for one of
/// them to be written).
#[cfg(feature = "watch")]
pub(crate) fn referenced_files(path: &Path) -> Vec<std::path::PathBuf> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let Ok(root) = text.parse::<toml::Table>() else { return Vec::new() };
    let server = root.get("server").and_then(toml::Value::as_table);
    let tls = server.and_then(|s| s.get("tls")).and_then(toml::Value::as_table);
    let named =
        [server.and_then(|s| s.get("keys_file")), tls.and_then(|t| t.get("cert")), tls.and_then(|t| t.get("key"))];
    let base = path.parent().unwrap_or(Path::new(""));
    named.into_iter().flatten().filter_map(toml::Value::as_str).map(|f| base.join(f)).collect()
}

impl Policy {
    /// Parses, validates and compiles a policy from TOML text. `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Policy, PolicyError> {
        compile::compile(source, text)
    }

    /// Reads, validates and compiles a policy file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::Io { file: file.clone(), message: e.to_string() })?;
        compile::compile(&file, &text)
    }

    /// A route by name.
    pub fn route(&self, name: &str) -> Option<&Arc<RoutePolicy>> {
        self.routes.get(name)
    }

    /// A provider by name.
    pub fn provider(&self, name: &str) -> Option<&Arc<ProviderPolicy>> {
        self.providers.get(name)
    }

    /// The provider `name` as the OpenTelemetry GenAI conventions call it
    /// (`gen_ai.provider.name`): its profile's name (`openai`, `anthropic`, `groq`, ...), else the
    /// policy's own name for it.
    pub fn genai_provider_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.provider(name).and_then(|p| p.profile.as_ref()).map_or(name, |p| p.name.as_str())
    }
}

impl std::str::FromStr for Policy {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        compile::compile("<inline>", text)
    }
}
