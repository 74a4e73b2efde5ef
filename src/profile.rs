//! Provider profiles: the data in `providers/*.toml`, embedded in the binary.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use crate::duration::DurationStr;
use crate::protocol::Protocol;

/// How a provider expects the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthScheme {
    /// `Authorization: Bearer KEY`.
    Bearer,
    /// `x-api-key: KEY`.
    XApiKey,
    /// No key.
    None,
}

/// What a provider's catalog says of one model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelProfile {
    /// Context window in tokens.
    pub context_window: u64,
    /// Largest output in tokens (also Anthropic's default `max_tokens`).
    pub max_output_tokens: u32,
    /// USD per million input tokens.
    #[serde(default)]
    pub input_price: f64,
    /// USD per million output tokens.
    #[serde(default)]
    pub output_price: f64,
    /// USD per million input tokens read from the provider's prompt cache (`input_price` when
    /// absent).
    #[serde(default)]
    pub cached_input_price: Option<f64>,
    /// USD per million input tokens written to the provider's prompt cache (Anthropic;
    /// `input_price` when absent).
    #[serde(default)]
    pub cache_write_price: Option<f64>,
    /// Whether the model continues an assistant turn placed last (resume a stream from a
    /// checkpoint). `None`: unknown, learned at run time.
    #[serde(default)]
    pub supports_prefill: Option<bool>,
    /// A first-token timeout suited to the model (reasoning models think first).
    #[serde(default)]
    pub first_token: Option<DurationStr>,
    /// Thinking budget per OpenAI `reasoning_effort`, for mapping between the two
    /// ([`crate::wire::DEFAULT_EFFORT_BUDGETS`] when absent).
    #[serde(default)]
    pub effort_budgets: Option<BTreeMap<String, u32>>,
    /// What the model accepts beyond text (`accepts = ["vision", "pdf", "tools", ...]`): the router
    /// skips it for a request that needs anything else. `None`: not declared, so not checked.
    #[serde(default)]
    pub accepts: Option<std::collections::BTreeSet<crate::capability::Feature>>,
    /// An embedding model: the length of its vectors (before any `dimensions` the request asks
    /// for). `None`: a chat model.
    #[serde(default)]
    pub embedding_dimensions: Option<u32>,
}

impl ModelProfile {
    /// The first-token timeout the profile suggests.
    pub fn first_token(&self) -> Option<Duration> {
        self.first_token.map(|d| d.get())
    }
}

/// A provider profile: protocol, endpoint, auth and model catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderProfile {
    /// The profile's name (`openai`, `anthropic`, `groq`, ...).
    pub name: String,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Default base URL.
    pub base_url: String,
    /// How the key is sent.
    pub auth: AuthScheme,
    /// Environment variable holding the key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The provider's public status page (Statuspage format), polled when a policy enables it.
    #[serde(default)]
    pub status_page: Option<String>,
    /// The model catalog.
    #[serde(default)]
    pub models: BTreeMap<String, ModelProfile>,
}

impl ProviderProfile {
    /// Parses a profile from TOML.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The catalog entry for `model`, if any.
    pub fn model(&self, model: &str) -> Option<&ModelProfile> {
        self.models.get(model)
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Option<Arc<ProviderProfile>> {
        builtins().iter().find(|p| p.name == name).cloned()
    }
}

/// The profiles shipped in `providers/`, as TOML text, by file name.
pub const BUILTIN_SOURCES: &[(&str, &str)] = &[
    ("openai.toml", include_str!("../providers/openai.toml")),
    ("anthropic.toml", include_str!("../providers/anthropic.toml")),
    ("groq.toml", include_str!("../providers/groq.toml")),
    ("together.toml", include_str!("../providers/together.toml")),
    ("mistral.toml", include_str!("../providers/mistral.toml")),
    ("openrouter.toml", include_str!("../providers/openrouter.toml")),
    ("ollama.toml", include_str!("../providers/ollama.toml")),
    ("vllm.toml", include_str!("../providers/vllm.toml")),
];

/// All built-in profiles. A built-in that fails to parse is skipped (a test makes sure none does).
pub fn builtins() -> &'static [Arc<ProviderProfile>] {
    static PROFILES: OnceLock<Vec<Arc<ProviderProfile>>> = OnceLock::new();
    PROFILES.get_or_init(|| {
        BUILTIN_SOURCES.iter().filter_map(|(_, text)| ProviderProfile::from_toml(text).ok().map(Arc::new)).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_parses() {
        for (file, text) in BUILTIN_SOURCES {
            let p = ProviderProfile::from_toml(text);
            assert!(p.is_ok(), "{file}: {p:?}");
        }
        assert_eq!(builtins().len(), BUILTIN_SOURCES.len());
    }

    #[test]
    fn openai_and_anthropic_catalogs_have_what_the_router_needs() {
        let openai = ProviderProfile::builtin("openai");
        let openai = openai.as_deref();
        assert_eq!(openai.map(|p| p.protocol), Some(Protocol::Openai));
        assert_eq!(openai.map(|p| p.auth), Some(AuthScheme::Bearer));
        let mini = openai.and_then(|p| p.model("gpt-4o-mini"));
        assert_eq!(mini.map(|m| m.context_window), Some(128_000));
        assert_eq!(mini.and_then(|m| m.supports_prefill), Some(false));

        let anthropic = ProviderProfile::builtin("anthropic");
        let anthropic = anthropic.as_deref();
        assert_eq!(anthropic.map(|p| p.auth), Some(AuthScheme::XApiKey));
        assert_eq!(anthropic.and_then(|p| p.headers.get("anthropic-version")).map(String::as_str), Some("2023-06-01"));
        let sonnet = anthropic.and_then(|p| p.model("claude-sonnet-4-5"));
        assert_eq!(sonnet.and_then(|m| m.supports_prefill), Some(true));
        assert_eq!(anthropic.and_then(|p| p.model("claude-sonnet-4-6")).and_then(|m| m.supports_prefill), Some(false));
    }

    #[test]
    fn unknown_keys_in_a_profile_are_rejected() {
        let err = ProviderProfile::from_toml("name='x'\nprotocol='openai'\nbase_url='u'\nauth='none'\nbogus=1\n");
        assert!(err.is_err());
    }
}
