//! A complete answer: its choices, why it finished, what it cost in tokens.

use serde::{Deserialize, Serialize};

use super::message::{ContentPart, Extra, ToolCall};

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// The output hit `max_tokens` (or the context window).
    Length,
    /// The model called tools.
    ToolCalls,
    /// The provider filtered or the model refused.
    ContentFilter,
    /// Not a clean finish (Anthropic `pause_turn`).
    Incomplete,
}

impl FinishReason {
    /// The `snake_case` name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Incomplete => "incomplete",
        }
    }
}

/// Token usage reported by the provider.
///
/// `input_tokens` counts every prompt token, those read from or written to the provider's prompt
/// cache included (OpenAI's `prompt_tokens`; on Anthropic, the sum of `input_tokens`,
/// `cache_read_input_tokens` and `cache_creation_input_tokens`), so limits and costs see one
/// figure on both wires. `output_tokens` includes reasoning tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// All prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Output tokens (OpenAI `completion_tokens`, Anthropic `output_tokens`), reasoning included.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache, when reported (OpenAI
    /// `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    /// Prompt tokens written to the provider's cache, when reported (Anthropic
    /// `cache_creation_input_tokens`; OpenAI does not report them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Output tokens spent on reasoning, when reported (OpenAI
    /// `completion_tokens_details.reasoning_tokens`; Anthropic counts them in `output_tokens` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// Usage with `input` prompt and `output` answer tokens and no details.
    pub fn new(input: u64, output: u64) -> Self {
        Usage { input_tokens: input, output_tokens: output, ..Usage::default() }
    }

    /// With `n` of the prompt tokens read from the cache.
    pub fn with_cached_input_tokens(mut self, n: u64) -> Self {
        self.cached_input_tokens = Some(n);
        self
    }

    /// With `n` of the prompt tokens written to the cache.
    pub fn with_cache_creation_input_tokens(mut self, n: u64) -> Self {
        self.cache_creation_input_tokens = Some(n);
        self
    }

    /// With `n` of the output tokens spent reasoning.
    pub fn with_reasoning_tokens(mut self, n: u64) -> Self {
        self.reasoning_tokens = Some(n);
        self
    }

    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// Prompt tokens neither read from nor written to the cache (Anthropic's `input_tokens`).
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cached_input_tokens.unwrap_or(0))
            .saturating_sub(self.cache_creation_input_tokens.unwrap_or(0))
    }
}

/// The log probability of one answer token (OpenAI `logprobs.content[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token.
    pub token: String,
    /// Its log probability.
    pub logprob: f64,
    /// Its UTF-8 bytes, when the provider sends them (`null` otherwise, as OpenAI writes it).
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
    /// The most likely tokens at this position, when `top_logprobs` was asked for.
    #[serde(default)]
    pub top_logprobs: Vec<TopLogprob>,
}

/// One of the most likely tokens at a position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    /// The token.
    pub token: String,
    /// Its log probability.
    pub logprob: f64,
    /// Its UTF-8 bytes, when the provider sends them (`null` otherwise, as OpenAI writes it).
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
}

/// One more answer to the same request, when it asked for `n > 1` (OpenAI); the first one is the
/// [`ChatResponse`] itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Choice {
    /// Its position among the answers (1 and up).
    pub index: usize,
    /// Its text.
    pub text: String,
    /// Its tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Its refusal text, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Log probabilities of its tokens, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
}

impl Choice {
    /// A choice with `text` that stopped for `finish_reason`.
    pub fn new(index: usize, text: impl Into<String>, finish_reason: FinishReason) -> Self {
        Choice { index, text: text.into(), tool_calls: Vec::new(), finish_reason, refusal: None, logprobs: None }
    }
}

/// A complete answer. A [`Provider`](crate::Provider) of one's own builds it with
/// [`ChatResponse::new`] and sets the fields it knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatResponse {
    /// The provider that served it (its name in the policy, or the adapter's name).
    pub provider: String,
    /// The model that served it, as the provider reported it.
    pub model: String,
    /// The answer's text.
    pub text: String,
    /// Tool calls the model made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The model's visible reasoning, in order: [`ContentPart::Thinking`] (with its signature) and
    /// [`ContentPart::RedactedThinking`] blocks, as Claude returns them. A tool-use loop with
    /// thinking must hand them back unchanged in the next turn's assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasoning: Vec<ContentPart>,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// The refusal text, when the provider sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// The stop sequence that ended the answer, when the provider says which (Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequence: Option<String>,
    /// Log probabilities of the answer's tokens, when the request asked for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// The other answers, when the request asked for `n > 1` (in order; this one is the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Choice>,
    /// Token usage.
    pub usage: Usage,
    /// The provider's request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The wire `extra` came from: the target's protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<crate::protocol::Protocol>,
    /// Top-level members of the answer this model has no typed place for (OpenAI
    /// `system_fingerprint`, `service_tier`; Anthropic `container`, members added after this
    /// release): the gateway hands them to callers of the same wire unchanged.
    #[serde(default, skip_serializing_if = "Extra::is_empty")]
    pub extra: Extra,
    /// What the provider's rate-limit headers said with this answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::rate_limit::RateLimit>,
}

impl ChatResponse {
    /// An answer with `text` from `provider`'s `model` that stopped for `finish_reason`; no tool
    /// calls, no usage, nothing else.
    pub fn new(
        provider: impl Into<String>,
        model: impl Into<String>,
        text: impl Into<String>,
        finish_reason: FinishReason,
    ) -> Self {
        ChatResponse {
            provider: provider.into(),
            model: model.into(),
            text: text.into(),
            tool_calls: Vec::new(),
            reasoning: Vec::new(),
            finish_reason,
            refusal: None,
            stop_sequence: None,
            logprobs: None,
            alternatives: Vec::new(),
            usage: Usage::default(),
            request_id: None,
            dialect: None,
            extra: Extra::new(),
            rate_limit: None,
        }
    }
}
