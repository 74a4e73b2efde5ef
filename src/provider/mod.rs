//! The [`Provider`] trait and the adapters that implement it.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;

use crate::chat::{ChatRequest, ChatResponse, StreamEvent};
use crate::error::ProviderError;
use crate::profile::ProviderProfile;
use crate::secret::ApiKey;

pub mod anthropic;
// used by the Bedrock adapter (issue 30)
#[allow(dead_code)]
pub(crate) mod aws;
mod caller_headers;
pub(crate) mod http;
pub mod openai;
pub(crate) mod scrub;
pub(crate) mod timer;

pub use crate::protocol::Protocol;
pub use crate::rate_limit::RateLimit;
pub use anthropic::Anthropic;
pub use caller_headers::{CALLER_HEADERS, CallerHeaders};
pub use http::POOL_MAX_IDLE_PER_HOST;
pub use openai::OpenAi;

/// A streamed answer: events until [`StreamEvent::Finish`], or an error.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

/// The built-in adapter for `protocol`.
pub fn build(protocol: Protocol, config: ProviderConfig) -> Result<Arc<dyn Provider>, ProviderError> {
    Ok(match protocol {
        Protocol::Openai => Arc::new(OpenAi::new(config)?),
        Protocol::Anthropic => Arc::new(Anthropic::new(config)?),
        Protocol::OpenaiResponses => Arc::new(OpenAi::responses(config)?),
    })
}

/// Time limits for one call, applied by the adapter where only it can see the boundary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallTimeouts {
    /// Until the response headers (non-streaming) or the first stream event (streaming).
    pub first_token: Option<Duration>,
    /// Longest gap between two stream events (and between headers and the complete body).
    pub idle: Option<Duration>,
    /// When the whole call must be over: the router's attempt deadline. A provider whose
    /// [`Provider::enforces_deadline`] is true ends the call (or its stream) with a `timeout`
    /// error by then; for any other the router keeps a timer of its own around the call.
    pub deadline: Option<tokio::time::Instant>,
}

/// One call: which model, what to ask, and the call's time limits.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Call<'a> {
    /// The model to ask.
    pub model: &'a str,
    /// The request.
    pub request: &'a ChatRequest,
    /// Time limits.
    pub timeouts: CallTimeouts,
    /// What to do with request fields this provider's wire cannot carry.
    pub unsupported: crate::wire::UnsupportedMode,
    /// The caller's body `request` was decoded from, unchanged since: a provider of the same wire
    /// sends it (with the model set) instead of encoding `request`.
    pub original: Option<&'a crate::wire::Original>,
}

impl<'a> Call<'a> {
    /// A call with no time limits beyond the client's connect timeout.
    pub fn new(model: &'a str, request: &'a ChatRequest) -> Self {
        Call {
            model,
            request,
            timeouts: CallTimeouts::default(),
            unsupported: crate::wire::UnsupportedMode::Error,
            original: None,
        }
    }

    /// Sets the caller's body `request` was decoded from (see [`Call::original`]).
    pub fn original(mut self, original: Option<&'a crate::wire::Original>) -> Self {
        self.original = original;
        self
    }

    /// Sets the time limits.
    pub fn timeouts(mut self, timeouts: CallTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets what to do with request fields the provider's wire cannot carry (refuse by default).
    pub fn unsupported(mut self, mode: crate::wire::UnsupportedMode) -> Self {
        self.unsupported = mode;
        self
    }
}

/// An LLM provider: one non-streaming and one streaming call, every failure a classified
/// [`ProviderError`]. Object safe: routers hold `Arc<dyn Provider>`.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The provider's name (as in the policy), used in responses, errors and metrics.
    fn name(&self) -> &str;

    /// The wire protocol.
    fn protocol(&self) -> Protocol;

    /// Asks for a complete answer.
    async fn chat(&self, call: Call<'_>) -> Result<ChatResponse, ProviderError>;

    /// Asks for a streamed answer. Errors before the response headers are returned here; errors
    /// after them arrive in the stream. A stream that ends without [`StreamEvent::Finish`] ends
    /// with a `stream_interrupted` error instead.
    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError>;

    /// Counts the input tokens `call.request` would cost on `call.model`, without generating
    /// anything. The default: this provider cannot count (an `invalid_request` error naming it).
    async fn count_tokens(&self, call: Call<'_>) -> Result<TokenCount, ProviderError> {
        let _ = call;
        Err(ProviderError::new(
            crate::error::ErrorClass::InvalidRequest,
            self.name(),
            format!("the provider `{}` cannot count tokens", self.name()),
        ))
    }

    /// Asks for embeddings of `request` from `call.model` (`call.request` is not read). The
    /// default: this provider has no embeddings (an `invalid_request` error naming it).
    async fn embed(
        &self,
        call: Call<'_>,
        request: &crate::embed::EmbeddingRequest,
    ) -> Result<crate::embed::EmbeddingResponse, ProviderError> {
        let _ = (call, request);
        Err(ProviderError::new(
            crate::error::ErrorClass::InvalidRequest,
            self.name(),
            format!("the provider `{}` has no embeddings", self.name()),
        ))
    }

    /// Whether this provider ends every call, and every stream it returns, by
    /// [`CallTimeouts::deadline`] on its own. The built-in adapters do, on the same timer as their
    /// other limits; for a provider that does not (the default) the router adds a timer around
    /// each call and each stream read.
    fn enforces_deadline(&self) -> bool {
        false
    }
}

/// What [`Provider::count_tokens`] answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct TokenCount {
    /// The request's input tokens.
    pub input_tokens: u64,
    /// Counted here with the model's tokenizer, not asked of the provider.
    pub local: bool,
    /// The provider's answer beyond the count (Anthropic's `context_management`, members added
    /// after this release): the gateway's answer carries them, as they came.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl TokenCount {
    /// A count.
    pub fn new(input_tokens: u64, local: bool) -> Self {
        TokenCount { input_tokens, local, extra: serde_json::Map::new() }
    }
}

/// How to reach one provider: what both adapters need.
#[derive(Clone)]
pub struct ProviderConfig {
    /// Name used in responses, errors and metrics (the policy's provider name).
    pub name: String,
    /// Base URL: for OpenAI it ends before `/chat/completions`, for Anthropic before `/v1/messages`.
    pub base_url: String,
    /// The API key, if the provider needs one.
    pub api_key: Option<ApiKey>,
    /// Extra headers sent with every request (OpenAI organization/project, ...).
    pub headers: Vec<(String, String)>,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// The model catalog and defaults (Anthropic's default `max_tokens` comes from here).
    pub profile: Option<Arc<ProviderProfile>>,
    /// Which provider headers of a gateway caller it is sent (`forward_headers`, `drop_betas`).
    pub caller_headers: CallerHeaders,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // headers may carry credentials (organization ids, custom auth): print names only
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("headers", &header_names)
            .field("connect_timeout", &self.connect_timeout)
            .field("profile", &self.profile.as_ref().map(|p| p.name.as_str()))
            .field("caller_headers", &self.caller_headers)
            .finish()
    }
}

impl ProviderConfig {
    /// A config with a name and base URL, no key, a 5 s connect timeout.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>) -> Self {
        ProviderConfig {
            name: name.into(),
            base_url: base_url.into(),
            api_key: None,
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            profile: None,
            caller_headers: CallerHeaders::default(),
        }
    }

    /// Sets the API key.
    pub fn api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Adds a header sent with every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the profile.
    pub fn profile(mut self, profile: Arc<ProviderProfile>) -> Self {
        self.profile = Some(profile);
        self
    }

    /// The `authentication` error of a config whose profile wants a key when none is set: adapters
    /// return it without touching the network.
    pub fn missing_key(&self) -> Option<ProviderError> {
        let profile = self.profile.as_ref()?;
        if profile.auth == crate::profile::AuthScheme::None || self.api_key.is_some() {
            return None;
        }
        let hint = match &profile.api_key_env {
            Some(var) => format!("set the {var} environment variable"),
            None => "configure an API key".to_owned(),
        };
        Some(ProviderError::new(
            crate::error::ErrorClass::Authentication,
            self.name.clone(),
            format!("no API key for provider `{}`: {hint}", self.name),
        ))
    }

    /// A config from a built-in profile: its base URL, headers, and the key from its `api_key_env`.
    pub fn from_profile(profile: Arc<ProviderProfile>) -> Self {
        let mut c = ProviderConfig::new(profile.name.clone(), profile.base_url.clone());
        c.headers = profile.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        c.api_key = profile.api_key_env.as_deref().and_then(ApiKey::from_env);
        c.profile = Some(profile);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Compile-time check: the trait stays dyn-compatible.
    #[allow(dead_code)]
    fn assert_object_safe(p: Arc<dyn Provider>) -> Arc<dyn Provider> {
        p
    }

    #[test]
    fn config_debug_hides_key_and_header_values() {
        let c = ProviderConfig::new("openai", "http://x")
            .api_key(ApiKey::new("sk-secret-abcdef"))
            .header("OpenAI-Organization", "org-secret-123");
        let s = format!("{c:?}");
        assert!(!s.contains("sk-secret-abcdef"), "{s}");
        assert!(!s.contains("org-secret-123"), "{s}");
        assert!(s.contains("OpenAI-Organization"));
    }
}
