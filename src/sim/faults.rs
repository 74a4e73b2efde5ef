//! Injected faults as each provider's wire sends them: the router's [`FaultPlayer`], played by an
//! in-process simulator and read by the real adapter, so that a drill's failure is classified
//! and routed as the production one would be.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::{FAULT_HEADER, Fault, SimServer};
use crate::duration::DurationStr;
use crate::error::{ErrorClass, ProviderError};
use crate::policy::{InjectKind, LiveFault};
use crate::profile::{AuthScheme, ProviderProfile};
use crate::protocol::Protocol;
use crate::provider::{Provider, ProviderConfig};
use crate::router::{FaultPlayer, FaultTarget};
use crate::secret::ApiKey;
use crate::sync::lock;

/// The most adapters kept, one per provider and fault: faults come and go during drills.
const MAX_ADAPTERS: usize = 256;

/// Plays injected faults on each provider's own wire from a simulator started in this process
/// at the first fault. Install it with `Router::builder(policy).fault_player(...)`.
///
/// ```no_run
/// # fn demo(policy: switchyard::Policy) {
/// use std::sync::Arc;
/// let player = Arc::new(switchyard::sim::WireFaults::default());
/// let router = switchyard::Router::builder(policy).fault_player(player).build();
/// # }
/// ```
#[derive(Debug, Default)]
pub struct WireFaults {
    sim: OnceCell<SimServer>,
    adapters: Mutex<HashMap<(String, String), Arc<dyn Provider>>>,
}

#[async_trait]
impl FaultPlayer for WireFaults {
    async fn player(
        &self,
        target: &FaultTarget<'_>,
        fault: &LiveFault,
        stream: bool,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        let provider = target.provider;
        let Some(fault) = wire(fault, target.protocol, stream) else {
            return Err(ProviderError::new(
                ErrorClass::InvalidRequest,
                provider,
                format!("injected fault `{}` has no form on the wire for this call", fault.inject),
            ));
        };
        let fault_json = serde_json::to_string(&fault).unwrap_or_default();
        let key = (provider.to_owned(), fault_json.clone());
        if let Some(a) = lock(&self.adapters).get(&key) {
            return Ok(a.clone());
        }
        let sim = self.sim.get_or_try_init(SimServer::start).await.map_err(|e| {
            ProviderError::new(ErrorClass::Connection, provider, format!("cannot start the fault simulator: {e}"))
        })?;
        let base = sim.base_url(target.protocol);
        let mut config =
            ProviderConfig::new(provider, base).header(FAULT_HEADER, fault_json).api_key(ApiKey::new("injected-fault"));
        config.profile = target.profile.map(|p| Arc::new(ProviderProfile { auth: AuthScheme::None, ..(**p).clone() }));
        let adapter = crate::provider::build(target.protocol, config)?;
        let mut adapters = lock(&self.adapters);
        if adapters.len() > MAX_ADAPTERS {
            adapters.clear();
        }
        adapters.insert(key, adapter.clone());
        Ok(adapter)
    }
}

/// The wire fault that sounds `fault` on `protocol`, or `None` when it has no form there (a plain
/// delay; a stall, a cut or an interruption of a whole answer; a spent budget).
fn wire(fault: &LiveFault, protocol: Protocol, stream: bool) -> Option<Fault> {
    let after = fault.after_tokens.unwrap_or(3);
    let delay = DurationStr::new(fault.delay.unwrap_or(Duration::from_secs(1)));
    let openai = protocol.is_openai();
    Some(match fault.inject {
        InjectKind::Latency => return None,
        InjectKind::SlowFirstToken if stream => Fault::SlowFirstToken { delay },
        InjectKind::SlowFirstToken => Fault::Latency { delay },
        InjectKind::Stall if stream => Fault::Stall { after_tokens: after, duration: delay },
        InjectKind::Cut if stream => Fault::Cut { after_tokens: after },
        InjectKind::Stall | InjectKind::Cut => return None,
        InjectKind::Error(class) => match class {
            ErrorClass::RateLimited => {
                let secs = fault.retry_after.unwrap_or(Duration::from_secs(1)).as_secs_f64();
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
