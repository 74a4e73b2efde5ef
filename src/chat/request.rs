//! A request: messages, tools, and the settings a caller can ask for.

use serde::{Deserialize, Serialize};

use super::message::{CacheControl, ContentPart, Extra, MediaSource, Message, Role, is_empty_extra};

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Name of the tool.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    pub parameters: serde_json::Value,
    /// OpenAI `strict`: the arguments must follow the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Prompt-cache breakpoint (Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Members of the wire's tool definition with no typed place here, in the request's dialect.
    #[serde(default, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

impl Tool {
    /// A tool with a name, a description and a JSON Schema for its arguments.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: serde_json::Value) -> Self {
        Tool {
            name: name.into(),
            description: Some(description.into()),
            parameters,
            strict: None,
            cache_control: None,
            extra: Extra::new(),
        }
    }
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call (Anthropic `any`).
    Required,
    /// This tool.
    Tool(String),
}

/// The shape the answer must have (OpenAI `response_format`, Anthropic `output_format`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any JSON object (OpenAI JSON mode).
    JsonObject,
    /// JSON that follows a schema.
    JsonSchema {
        /// The schema's name (OpenAI requires one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// What the answer is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// The JSON Schema.
        schema: serde_json::Value,
        /// OpenAI `strict`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

/// How much the model should reason before it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reasoning {
    /// OpenAI `reasoning_effort` (`minimal`, `low`, `medium`, `high`, ...). Sent to Anthropic as
    /// a thinking budget from the target's effort table.
    Effort {
        /// The effort.
        effort: String,
    },
    /// Anthropic `thinking: {type: "enabled", budget_tokens}`. Sent to OpenAI as the effort whose
    /// budget in the target's table is the largest not above it.
    Budget {
        /// Tokens the model may spend thinking (≥ 1024 and below `max_tokens` on Anthropic).
        budget_tokens: u32,
    },
    /// Anthropic `thinking: {type: "disabled"}`.
    Disabled,
    /// Anthropic `thinking: {type: "adaptive"}`, with `output_config.effort` when given: the model
    /// decides how much to think. A model that does not reason meets it by not thinking, so it
    /// needs no reasoning capability; an OpenAI reasoning model is sent the effort.
    Adaptive {
        /// `output_config.effort` (`low`, `medium`, `high`, `max`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        effort: Option<String>,
    },
}

/// A provider-independent chat request. The model is chosen per call (by the caller or the router).
///
/// Every field a caller may send has a typed place here or in an `extra` map (kept in the wire
/// named by [`ChatRequest::dialect`]); see `docs/wire.md` for how each travels between wires.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Tool choice; `None` leaves it to the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools at once (OpenAI `parallel_tool_calls`, Anthropic
    /// `tool_choice.disable_parallel_tool_use` inverted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Maximum output tokens. Anthropic requires one: the adapter supplies the model profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature (OpenAI 0–2, Anthropic 0–1: checked per target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling (Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Deterministic sampling seed (OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// OpenAI `presence_penalty` (−2 to 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// OpenAI `frequency_penalty` (−2 to 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// OpenAI `logit_bias`: token id → bias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<Extra>,
    /// How many answers to generate (OpenAI `n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Whether to return log probabilities of the output tokens (OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// How many alternatives per token to return with `logprobs` (OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// The end user's id (OpenAI `user`, Anthropic `metadata.user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// OpenAI `metadata`: string pairs stored with the completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Extra>,
    /// Processing tier (OpenAI `auto`, `default`, `flex`, `priority`; Anthropic `auto`,
    /// `standard_only`), in the request's dialect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// The answer's required shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Reasoning effort or thinking budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// The wire this request's `extra` maps and native parts are written in: set by the gateway
    /// to the caller's wire, or by an application that adds fields of one wire. `None` when the
    /// request has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<crate::protocol::Protocol>,
    /// Top-level members with no typed place here (new provider parameters, `store`,
    /// `prediction`, `context_management`, ...), in the request's dialect.
    #[serde(default, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
    /// Anthropic beta features (the `anthropic-beta` header: `context-1m-2025-08-07`, ...): sent
    /// to Claude targets; another wire cannot carry them (refused, or dropped as the policy says).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub betas: Vec<String>,
    /// Provider headers the caller sent besides `anthropic-beta` (`anthropic-version`,
    /// `openai-beta`, ...), by lower-case name: sent to targets of the caller's wire whose
    /// provider forwards them (`forward_headers`), never to another wire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// What the decoder of the caller's wire carried without a place for it here: a member, role,
    /// block, tool or value it does not know. It reaches a target of that wire in the caller's own
    /// body ([`crate::wire::Original`]); a target of another wire cannot take it and is skipped
    /// naming it (or drops and reports it, as the policy says).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opaque: Vec<Opaque>,
}

/// A member of the caller's wire that the request carries only in the caller's own body: decoded
/// no further than its name, so that a member invented after this code was written passes through
/// to a target of its wire untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Opaque {
    /// The wire it is written in.
    pub wire: crate::protocol::Protocol,
    /// Its name as that wire says it (`client_metadata`, `role system`, `tools web_search`).
    pub field: String,
    /// Where it is (`input[3]`, `tools[8]`).
    pub path: String,
    /// Whether leaving it out cannot change the answer (metadata for the caller's own records,
    /// a cache or context-management hint, extra output the caller asked to see).
    pub harmless: bool,
}

impl Opaque {
    /// A member of `wire` at `path`.
    pub fn new(
        wire: crate::protocol::Protocol,
        field: impl Into<String>,
        path: impl Into<String>,
        harmless: bool,
    ) -> Self {
        Opaque { wire, field: field.into(), path: path.into(), harmless }
    }
}

impl ChatRequest {
    /// A request with one user message: the common case in one line.
    pub fn user(text: impl Into<String>) -> Self {
        ChatRequest { messages: vec![Message::user(text)], ..ChatRequest::default() }
    }

    /// A request with the given messages.
    pub fn new(messages: impl IntoIterator<Item = Message>) -> Self {
        ChatRequest { messages: messages.into_iter().collect(), ..ChatRequest::default() }
    }

    /// Puts a system message first.
    pub fn system(mut self, text: impl Into<String>) -> Self {
        self.messages.insert(0, Message::system(text));
        self
    }

    /// Appends a message.
    pub fn message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }

    /// Sets the maximum output tokens.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Sets the temperature.
    pub fn temperature(mut self, t: f64) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Adds a stop sequence.
    pub fn stop(mut self, s: impl Into<String>) -> Self {
        self.stop.push(s.into());
        self
    }

    /// Adds a tool.
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tools.push(tool);
        self
    }

    /// Sets the tool choice.
    pub fn tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Asks Claude targets for a beta feature (`anthropic-beta`).
    pub fn beta(mut self, name: impl Into<String>) -> Self {
        self.betas.push(name.into());
        self
    }

    /// Sets the answer's required shape.
    pub fn response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = Some(format);
        self
    }

    /// Sets the reasoning effort or thinking budget.
    pub fn reasoning(mut self, reasoning: Reasoning) -> Self {
        self.reasoning = Some(reasoning);
        self
    }

    /// Adds a top-level field of `dialect`'s wire that this model has no typed place for: sent
    /// unchanged to targets of that wire, refused (or dropped, as the policy says) on others.
    pub fn extra_field(
        mut self,
        dialect: crate::protocol::Protocol,
        name: impl Into<String>,
        value: serde_json::Value,
    ) -> Self {
        self.dialect = Some(dialect);
        self.extra.insert(name.into(), value);
        self
    }

    /// A hash of the request's cacheable prefix, for prompt-cache affinity: everything up to its
    /// last prompt-cache mark (`cache_control`), else its system and developer messages and its
    /// tools (what providers cache by themselves); `None` when it has neither.
    pub fn cache_prefix_hash(&self) -> Option<u64> {
        let marked = |p: &ContentPart| match p {
            ContentPart::Text { cache_control, .. }
            | ContentPart::Image { cache_control, .. }
            | ContentPart::Document { cache_control, .. } => cache_control.is_some(),
            ContentPart::ToolResult(r) => r.cache_control.is_some(),
            _ => false,
        };
        let last_mark = self
            .messages
            .iter()
            .enumerate()
            .flat_map(|(i, m)| m.content.iter().enumerate().map(move |(j, p)| (i, j, p)))
            .filter(|(_, _, p)| marked(p))
            .map(|(i, j, _)| (i, j))
            .next_back();
        // the same prefix hashes alike in every router of a fleet, whatever built it
        let mut h = crate::stable_hash::StableHash::default();
        let part = |h: &mut crate::stable_hash::StableHash, p: &ContentPart| match p {
            ContentPart::Text { text, .. } => {
                h.field(text.as_bytes());
            }
            other => {
                h.field(serde_json::to_string(other).unwrap_or_default().as_bytes());
            }
        };
        for t in &self.tools {
            h.field(t.name.as_bytes())
                .field(t.description.as_deref().unwrap_or_default().as_bytes())
                .field(t.parameters.to_string().as_bytes());
        }
        match last_mark {
            Some((last_i, last_j)) => {
                for (i, m) in self.messages.iter().enumerate().take(last_i + 1) {
                    h.u64(m.role as u64);
                    let upto = if i == last_i { last_j + 1 } else { m.content.len() };
                    m.content.iter().take(upto).for_each(|p| part(&mut h, p));
                }
            }
            None => {
                let system: Vec<&Message> =
                    self.messages.iter().filter(|m| matches!(m.role, Role::System | Role::Developer)).collect();
                if system.is_empty() && self.tools.is_empty() {
                    return None;
                }
                for m in system {
                    m.content.iter().for_each(|p| part(&mut h, p));
                }
            }
        }
        Some(h.finish())
    }

    /// A rough token estimate of the prompt (4 characters a token), for limits and context checks.
    /// Images and documents count by the size of their data or URL (a coarse upper bound).
    pub fn estimated_prompt_tokens(&self) -> u64 {
        let mut chars = 0usize;
        for m in &self.messages {
            for part in &m.content {
                chars += part_chars(part);
            }
        }
        for t in &self.tools {
            chars += t.name.len() + t.description.as_ref().map_or(0, String::len) + t.parameters.to_string().len();
        }
        (chars as u64).div_ceil(4)
    }
}

fn part_chars(part: &ContentPart) -> usize {
    let source_chars = |s: &MediaSource| match s {
        MediaSource::Base64 { data, .. } => data.len(),
        MediaSource::Url { url } => url.len(),
        MediaSource::File { file_id } => file_id.len(),
    };
    match part {
        ContentPart::Text { text, .. } => text.len(),
        ContentPart::ToolCall(c) => c.name.len() + c.arguments.len(),
        ContentPart::ToolResult(r) => r.content.iter().map(part_chars).sum(),
        ContentPart::Image { source, .. } | ContentPart::Document { source, .. } => source_chars(source),
        ContentPart::Audio { data, .. } => data.len(),
        ContentPart::Thinking { thinking, .. } => thinking.len(),
        ContentPart::RedactedThinking { data } => data.len(),
        ContentPart::Refusal { refusal } => refusal.len(),
        ContentPart::Native { value } => value.to_string().len(),
    }
}
