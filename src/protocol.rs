//! The wire protocols: what the data model, the codecs, the adapters and the policy name a
//! provider's API by.

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Protocol {
    /// OpenAI Chat Completions (and every OpenAI-compatible server).
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses (`POST /v1/responses`).
    OpenaiResponses,
}

impl Protocol {
    /// The name used in policies and profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Openai => "openai",
            Protocol::Anthropic => "anthropic",
            Protocol::OpenaiResponses => "openai_responses",
        }
    }

    /// Whether this is one of OpenAI's APIs (Chat Completions or Responses): OpenAI's models,
    /// tokenizers and error shapes.
    pub fn is_openai(self) -> bool {
        matches!(self, Protocol::Openai | Protocol::OpenaiResponses)
    }
}
