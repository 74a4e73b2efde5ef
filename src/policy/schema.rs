//! The policy file as written: serde structs that mirror the TOML, every table `deny_unknown_fields`.
//! Values that later checks must point at are `Spanned`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::duration::DurationStr;
use crate::provider::Protocol;

/// `retry = { max_attempts, base, max, retry_after_cap }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetrySpec {
    pub(crate) max_attempts: Option<Spanned<u32>>,
    pub(crate) base: Option<DurationStr>,
    pub(crate) max: Option<DurationStr>,
    pub(crate) retry_after_cap: Option<DurationStr>,
}

/// `timeouts = { connect, first_token, idle, attempt, total }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeoutsSpec {
    pub(crate) connect: Option<DurationStr>,
    pub(crate) first_token: Option<DurationStr>,
    pub(crate) idle: Option<DurationStr>,
    pub(crate) attempt: Option<DurationStr>,
    pub(crate) total: Option<DurationStr>,
}

/// `breaker = { consecutive_failures, cooldown, max_cooldown }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BreakerSpec {
    pub(crate) consecutive_failures: Option<Spanned<u32>>,
    pub(crate) cooldown: Option<DurationStr>,
    pub(crate) max_cooldown: Option<DurationStr>,
}

/// `limits = { rpm, tpm, concurrency }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsSpec {
    pub(crate) rpm: Option<Spanned<u32>>,
    pub(crate) tpm: Option<Spanned<u32>>,
    pub(crate) concurrency: Option<Spanned<u32>>,
}

/// The four tables that may appear at every level; also `[defaults]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Layer {
    pub(crate) retry: Option<RetrySpec>,
    pub(crate) timeouts: Option<TimeoutsSpec>,
    pub(crate) breaker: Option<BreakerSpec>,
    pub(crate) limits: Option<Spanned<LimitsSpec>>,
}

/// `[providers.NAME]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderSpec {
    pub(crate) protocol: Option<Protocol>,
    pub(crate) base_url: Option<Spanned<String>>,
    pub(crate) api_key_env: Option<Spanned<String>>,
    pub(crate) auth: Option<crate::profile::AuthScheme>,
    pub(crate) profile: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) retry: Option<RetrySpec>,
    pub(crate) timeouts: Option<TimeoutsSpec>,
    pub(crate) breaker: Option<BreakerSpec>,
    pub(crate) limits: Option<Spanned<LimitsSpec>>,
    /// `probe = "active" | "passive"`.
    pub(crate) probe: Option<super::ProbeMode>,
    pub(crate) budget: Option<Spanned<BudgetSpec>>,
    /// `status_page = "URL"`, or `true` for the profile's.
    pub(crate) status_page: Option<Spanned<StatusPageSpec>>,
    pub(crate) status_interval: Option<Spanned<DurationStr>>,
    pub(crate) on_incident: Option<Spanned<super::OnIncident>>,
    /// Model entries added to (or overriding fields of) the profile's catalog.
    #[serde(default)]
    pub(crate) models: BTreeMap<String, Spanned<ModelSpec>>,
    /// `forward_headers = ["anthropic-beta", ...]`: the caller headers this provider is sent.
    pub(crate) forward_headers: Option<Spanned<Vec<String>>>,
    /// `drop_betas = ["context-management-*", ...]`: betas this provider is never sent.
    pub(crate) drop_betas: Option<Spanned<Vec<String>>>,
}

/// `[providers.NAME.models."MODEL"]`: what the policy says of a model; each field set overrides
/// the profile's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelSpec {
    pub(crate) context_window: Option<u64>,
    pub(crate) max_output_tokens: Option<u32>,
    pub(crate) input_price: Option<f64>,
    pub(crate) output_price: Option<f64>,
    pub(crate) cached_input_price: Option<f64>,
    pub(crate) cache_write_price: Option<f64>,
    pub(crate) supports_prefill: Option<bool>,
    pub(crate) first_token: Option<crate::duration::DurationStr>,
    pub(crate) effort_budgets: Option<BTreeMap<String, u32>>,
    pub(crate) accepts: Option<std::collections::BTreeSet<crate::capability::Feature>>,
    pub(crate) embedding_dimensions: Option<u32>,
}

/// How a route orders its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// In the order written.
    #[default]
    Priority,
    /// Randomly by `weight`, the rest as fallbacks in weight order.
    Weighted,
    /// Rotating the first target per request.
    RoundRobin,
    /// Lowest latency (EWMA) first.
    LeastLatency,
}

impl Strategy {
    /// The name used in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Priority => "priority",
            Strategy::Weighted => "weighted",
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastLatency => "least_latency",
        }
    }
}

/// `targets = [{ provider, model, weight? }]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetSpec {
    pub(crate) provider: Spanned<String>,
    pub(crate) model: Spanned<String>,
    pub(crate) weight: Option<Spanned<u32>>,
    pub(crate) unsupported: Option<crate::wire::UnsupportedMode>,
    pub(crate) resume: Option<Spanned<Vec<super::Resume>>>,
    pub(crate) holdback: Option<Spanned<HoldbackSpec>>,
    pub(crate) retry: Option<RetrySpec>,
    pub(crate) timeouts: Option<TimeoutsSpec>,
    pub(crate) breaker: Option<BreakerSpec>,
    pub(crate) limits: Option<Spanned<LimitsSpec>>,
}

/// `holdback = 32` (content events) or `holdback = "all"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum HoldbackSpec {
    Events(u32),
    Word(String),
}

/// `[on.CLASS]`: overrides of one error class's actions.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClassActionSpec {
    pub(crate) retry: Option<bool>,
    pub(crate) failover: Option<bool>,
    pub(crate) breaker: Option<bool>,
}

/// `[routes.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSpec {
    #[serde(default)]
    pub(crate) strategy: Strategy,
    pub(crate) targets: Spanned<Vec<TargetSpec>>,
    pub(crate) on_context_overflow: Option<Spanned<String>>,
    pub(crate) unsupported: Option<crate::wire::UnsupportedMode>,
    pub(crate) resume: Option<Spanned<Vec<super::Resume>>>,
    pub(crate) holdback: Option<Spanned<HoldbackSpec>>,
    #[serde(default)]
    pub(crate) on: BTreeMap<Spanned<String>, ClassActionSpec>,
    pub(crate) retry: Option<RetrySpec>,
    pub(crate) timeouts: Option<TimeoutsSpec>,
    pub(crate) breaker: Option<BreakerSpec>,
    pub(crate) limits: Option<Spanned<LimitsSpec>>,
    pub(crate) budget: Option<Spanned<BudgetSpec>>,
    pub(crate) cache_affinity: Option<bool>,
    pub(crate) hedge: Option<Spanned<HedgeSpec>>,
}

/// `hedge = { after = "2s" | "p95", max = 1 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HedgeSpec {
    pub(crate) after: Spanned<String>,
    pub(crate) max: Option<Spanned<u32>>,
}

/// `status_page = "https://status.example.com"` or `status_page = true` (the profile's).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum StatusPageSpec {
    Enabled(bool),
    Url(String),
}

/// `budget = { usd = N, per = "1d" }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetSpec {
    pub(crate) usd: f64,
    pub(crate) per: crate::duration::DurationStr,
}

/// `[[drill.faults]]`: a live drill's fault.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DrillFaultSpec {
    pub(crate) provider: Spanned<String>,
    pub(crate) model: Option<String>,
    pub(crate) inject: Spanned<String>,
    pub(crate) rate: Option<Spanned<f64>>,
    pub(crate) count: Option<u64>,
    pub(crate) duration: Option<DurationStr>,
    pub(crate) until: Option<Spanned<toml::Value>>,
    pub(crate) retry_after: Option<DurationStr>,
    pub(crate) delay: Option<DurationStr>,
    pub(crate) after_tokens: Option<usize>,
}

/// `[drill]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DrillSpec {
    #[serde(default)]
    pub(crate) faults: Vec<DrillFaultSpec>,
}

/// `[server]`: settings of `switchyard serve`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerSpec {
    pub(crate) api_keys_env: Option<String>,
    pub(crate) listen: Option<String>,
    pub(crate) admin_listen: Option<String>,
    pub(crate) max_body: Option<u64>,
    pub(crate) max_model_bytes: Option<u64>,
    pub(crate) max_messages: Option<u64>,
    pub(crate) max_tools: Option<u64>,
    pub(crate) keys_file: Option<Spanned<String>>,
    pub(crate) header_read_timeout: Option<Spanned<DurationStr>>,
    pub(crate) body_read_timeout: Option<Spanned<DurationStr>>,
    pub(crate) keepalive_timeout: Option<Spanned<DurationStr>>,
    pub(crate) write_timeout: Option<Spanned<DurationStr>>,
    pub(crate) max_connections: Option<Spanned<u64>>,
    pub(crate) max_header_bytes: Option<Spanned<u64>>,
    pub(crate) max_in_flight_per_key: Option<Spanned<u64>>,
    pub(crate) tls: Option<Spanned<super::tls::TlsSpec>>,
}

/// The level tables of a spec that carries them inline (serde's `flatten` cannot be combined with
/// `deny_unknown_fields`, so each spec lists them and this gathers them).
macro_rules! layer_of {
    ($($spec:ty),*) => {$(
        impl $spec {
            pub(crate) fn layer(&self) -> Layer {
                Layer {
                    retry: self.retry.clone(),
                    timeouts: self.timeouts.clone(),
                    breaker: self.breaker.clone(),
                    limits: self.limits.clone(),
                }
            }
        }
    )*};
}

layer_of!(ProviderSpec, RouteSpec, TargetSpec);
