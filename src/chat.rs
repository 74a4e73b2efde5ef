//! The normalized chat model shared by every provider: requests, responses and stream events.

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions for the model (OpenAI `system`, Anthropic top-level `system`).
    System,
    /// OpenAI `developer` instructions (what `system` is called for reasoning models); Anthropic
    /// receives them in its top-level `system`, as it does system messages.
    Developer,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call, sent back to the model.
    Tool,
}

/// Fields of a wire that the normalized model has no typed place for, kept as the caller sent them
/// (JSON object members, in order). They travel with the request: sent unchanged to a target that
/// speaks the same wire (`ChatRequest::dialect`), and reported by name to any other.
pub type Extra = serde_json::Map<String, serde_json::Value>;

fn is_empty_extra(extra: &Extra) -> bool {
    extra.is_empty()
}

impl Role {
    /// Whether the role gives instructions (`system` or `developer`).
    pub fn is_instruction(self) -> bool {
        matches!(self, Role::System | Role::Developer)
    }
}

/// A tool call made by the model. `arguments` is a JSON document as a string (OpenAI's form);
/// the Anthropic adapter converts it to and from an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for this call, echoed back in the [`ToolResult`].
    pub id: String,
    /// Name of the tool.
    pub name: String,
    /// Arguments, a JSON document as a string.
    pub arguments: String,
}

impl ToolCall {
    /// A call with an id, a tool name and its arguments (a JSON document as a string).
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
    }
}

/// The result of running a tool, sent back to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The id of the [`ToolCall`] this answers.
    pub tool_call_id: String,
    /// What the tool returned: text, and images or documents where the wire allows them.
    pub content: Vec<ContentPart>,
    /// Whether the tool failed.
    #[serde(default)]
    pub is_error: bool,
    /// Anthropic prompt-cache breakpoint on the result block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

impl ToolResult {
    /// A successful result with one text part.
    pub fn text(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        ToolResult {
            tool_call_id: tool_call_id.into(),
            content: vec![ContentPart::text(content)],
            is_error: false,
            cache_control: None,
        }
    }

    /// The text parts joined by newlines (what a wire that takes only a string receives).
    pub fn text_content(&self) -> String {
        let texts: Vec<&str> = self.content.iter().filter_map(ContentPart::as_text).collect();
        texts.join("\n")
    }
}

/// A prompt-cache breakpoint (Anthropic `cache_control`): the prompt up to and including the block
/// that carries it may be cached. OpenAI caches automatically and has no such mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheControl {
    /// The cache type; `ephemeral` is the only one today.
    #[serde(rename = "type")]
    pub kind: String,
    /// How long the entry lives (`5m`, `1h`); the provider's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

impl CacheControl {
    /// An `ephemeral` breakpoint with the provider's default lifetime.
    pub fn ephemeral() -> Self {
        CacheControl { kind: "ephemeral".into(), ttl: None }
    }
}

/// Where an image's or document's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MediaSource {
    /// Inline bytes, base64-encoded.
    Base64 {
        /// MIME type (`image/png`, `application/pdf`).
        media_type: String,
        /// The base64 data (no `data:` prefix).
        data: String,
    },
    /// A URL the provider fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// A file in the provider's own file store (OpenAI `file_id`, Anthropic Files API).
    File {
        /// The provider's file id.
        file_id: String,
    },
}

impl MediaSource {
    /// Base64 data with its MIME type.
    pub fn base64(media_type: impl Into<String>, data: impl Into<String>) -> Self {
        MediaSource::Base64 { media_type: media_type.into(), data: data.into() }
    }

    /// A URL.
    pub fn url(url: impl Into<String>) -> Self {
        MediaSource::Url { url: url.into() }
    }
}

/// One piece of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentPart {
    /// Plain text.
    Text {
        /// The text.
        text: String,
        /// Prompt-cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
        /// Members of the wire's text part or block with no typed place here (Anthropic
        /// `citations`, ...), in the request's dialect.
        #[serde(default, skip_serializing_if = "is_empty_extra")]
        extra: Extra,
    },
    /// An image (input).
    Image {
        /// Where it is.
        source: MediaSource,
        /// OpenAI's `detail` (`auto`, `low`, `high`); no other wire has it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Prompt-cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// A document, such as a PDF (input).
    Document {
        /// Where it is.
        source: MediaSource,
        /// Its file name (OpenAI `filename`) or title (Anthropic `title`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Prompt-cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
        /// Members with no typed place here (Anthropic `context`, `citations`), in the request's dialect.
        #[serde(default, skip_serializing_if = "is_empty_extra")]
        extra: Extra,
    },
    /// Audio input (OpenAI `input_audio`).
    Audio {
        /// Base64 audio.
        data: String,
        /// Its format (`wav`, `mp3`).
        format: String,
    },
    /// A tool call (assistant messages).
    ToolCall(ToolCall),
    /// A tool result (tool messages).
    ToolResult(ToolResult),
    /// The model's reasoning, as Anthropic returns it: handed back unchanged, with its
    /// `signature`, in later turns of a tool-use loop.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// The provider's signature over it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Reasoning the provider encrypted (Anthropic `redacted_thinking`): opaque, handed back as is.
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
    /// A refusal the model gave in an earlier turn (OpenAI assistant `refusal` part).
    Refusal {
        /// The refusal text.
        refusal: String,
    },
    /// A part this model has no type for, exactly as the caller's wire sent it (in the request's
    /// dialect): sent unchanged on the same wire, refused by name on another.
    Native {
        /// The raw JSON part or block.
        value: serde_json::Value,
    },
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into(), cache_control: None, extra: Extra::new() }
    }

    /// An image part.
    pub fn image(source: MediaSource) -> Self {
        ContentPart::Image { source, detail: None, cache_control: None }
    }

    /// A document part (a PDF, say).
    pub fn document(source: MediaSource) -> Self {
        ContentPart::Document { source, name: None, cache_control: None, extra: Extra::new() }
    }

    /// The text of a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ContentPart::Text { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Sets the prompt-cache breakpoint of a part that can carry one (text, image, document,
    /// tool result); other parts are returned unchanged.
    pub fn cached(mut self, control: CacheControl) -> Self {
        match &mut self {
            ContentPart::Text { cache_control, .. }
            | ContentPart::Image { cache_control, .. }
            | ContentPart::Document { cache_control, .. } => *cache_control = Some(control),
            ContentPart::ToolResult(r) => r.cache_control = Some(control),
            _ => {}
        }
        self
    }

    /// The part's type as the normalized model names it (`text`, `image`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ContentPart::Text { .. } => "text",
            ContentPart::Image { .. } => "image",
            ContentPart::Document { .. } => "document",
            ContentPart::Audio { .. } => "audio",
            ContentPart::ToolCall(_) => "tool_call",
            ContentPart::ToolResult(_) => "tool_result",
            ContentPart::Thinking { .. } => "thinking",
            ContentPart::RedactedThinking { .. } => "redacted_thinking",
            ContentPart::Refusal { .. } => "refusal",
            ContentPart::Native { .. } => "native",
        }
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its content, in order.
    pub content: Vec<ContentPart>,
    /// Members of the wire's message with no typed place here (OpenAI `name`, ...), in the
    /// request's dialect.
    #[serde(default, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

impl Message {
    /// A message with the given parts.
    pub fn new(role: Role, content: impl IntoIterator<Item = ContentPart>) -> Self {
        Message { role, content: content.into_iter().collect(), extra: Extra::new() }
    }

    /// A message with one text part.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message::new(role, [ContentPart::text(text)])
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Message::text(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Message::text(Role::User, text)
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::text(Role::Assistant, text)
    }

    /// An assistant message that calls tools.
    pub fn tool_calls(calls: impl IntoIterator<Item = ToolCall>) -> Self {
        Message::new(Role::Assistant, calls.into_iter().map(ContentPart::ToolCall))
    }

    /// A tool message carrying the result of the call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Message::new(Role::Tool, [ContentPart::ToolResult(ToolResult::text(tool_call_id, content))])
    }

    /// All text parts joined.
    pub fn text_content(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let Some(text) = part.as_text() {
                out.push_str(text);
            }
        }
        out
    }
}

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

/// One event of a streamed answer. A successful stream ends with exactly one [`StreamEvent::Finish`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamEvent {
    /// Text to append to the answer.
    TextDelta {
        /// The text.
        text: String,
    },
    /// A piece of a tool call. `id` and `name` come with the first piece of each call; `arguments`
    /// pieces are concatenated in order.
    ToolCallDelta {
        /// Which tool call (0-based, in order of appearance).
        index: usize,
        /// The call's id, on its first piece.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The tool's name, on its first piece.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// A piece of the JSON arguments.
        arguments: String,
    },
    /// Reasoning text to append to the current thinking block (Anthropic `thinking_delta`); a
    /// thinking block starts at the first one after anything else.
    ThinkingDelta {
        /// The text.
        thinking: String,
    },
    /// The current thinking block's signature (Anthropic `signature_delta`), which closes it.
    SignatureDelta {
        /// The signature.
        signature: String,
    },
    /// A whole `redacted_thinking` block.
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
    /// Refusal text to append (OpenAI `delta.refusal`).
    RefusalDelta {
        /// The text.
        refusal: String,
    },
    /// Log probabilities of the tokens just sent (OpenAI `logprobs.content` of a chunk).
    Logprobs {
        /// One entry per token.
        content: Vec<TokenLogprob>,
    },
    /// An event of another answer than the first, when the request asked for `n > 1`.
    Alternative {
        /// Which answer (1 and up).
        index: usize,
        /// Its event (never `Usage`, `Restart` or another `Alternative`).
        event: Box<StreamEvent>,
    },
    /// The upstream stream's own members the model has no type for (OpenAI's chunk `id`,
    /// `created`, `system_fingerprint`, `service_tier`; Anthropic's message `id`, ...), once,
    /// before the first content: a caller of the same wire gets them back.
    Envelope {
        /// The wire they come from.
        dialect: crate::protocol::Protocol,
        /// The members.
        extra: Extra,
    },
    /// The stop sequence that ended the answer (Anthropic), just before `Finish`.
    StopSequence {
        /// The sequence.
        sequence: String,
    },
    /// Token usage (may come more than once; the last one wins).
    Usage(Usage),
    /// What the provider's rate-limit headers said as the stream started (the adapters send it
    /// first; the router learns from it and does not pass it on).
    RateLimit(crate::rate_limit::RateLimit),
    /// Discard everything received so far: the answer restarts on another target.
    /// Emitted only by the router, never by an adapter.
    Restart {
        /// Why the answer restarts.
        reason: String,
    },
    /// The answer is complete. Always the last event of a successful stream.
    Finish {
        /// Why the model stopped.
        reason: FinishReason,
    },
}

impl StreamEvent {
    /// Whether the event is part of the answer itself (text, a tool call, thinking, a refusal,
    /// or its end), as opposed to the preamble and bookkeeping around it (the envelope, usage,
    /// logprobs, the empty delta that opens a thinking block). The first-token timeout and the
    /// time to first token run until the first one.
    pub fn is_content(&self) -> bool {
        matches!(
            self,
            StreamEvent::TextDelta { .. }
                | StreamEvent::ToolCallDelta { .. }
                | StreamEvent::RedactedThinking { .. }
                | StreamEvent::RefusalDelta { .. }
                | StreamEvent::Finish { .. }
        ) || matches!(self, StreamEvent::ThinkingDelta { thinking } if !thinking.is_empty())
    }
}

/// Accumulates stream events into a [`ChatResponse`]: what a consumer that wants the whole answer
/// does with a stream.
#[derive(Debug, Clone, Default)]
pub struct StreamCollector {
    text: String,
    tool_calls: Vec<ToolCall>,
    reasoning: Vec<ContentPart>,
    refusal: Option<String>,
    stop_sequence: Option<String>,
    logprobs: Option<Vec<TokenLogprob>>,
    envelope: Option<(crate::protocol::Protocol, Extra)>,
    /// Answers 1 and up, by index.
    alternatives: Vec<(usize, StreamCollector)>,
    usage: Option<Usage>,
    rate_limit: Option<crate::rate_limit::RateLimit>,
    finish: Option<FinishReason>,
}

impl StreamCollector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event.
    pub fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => self.text.push_str(text),
            StreamEvent::ToolCallDelta { index, id, name, arguments } => {
                while self.tool_calls.len() <= *index {
                    self.tool_calls.push(ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
                }
                let call = &mut self.tool_calls[*index];
                if let Some(id) = id {
                    call.id.clone_from(id);
                }
                if let Some(name) = name {
                    call.name.clone_from(name);
                }
                call.arguments.push_str(arguments);
            }
            StreamEvent::ThinkingDelta { thinking } => match self.reasoning.last_mut() {
                Some(ContentPart::Thinking { thinking: open, signature: None }) => open.push_str(thinking),
                _ => self.reasoning.push(ContentPart::Thinking { thinking: thinking.clone(), signature: None }),
            },
            StreamEvent::SignatureDelta { signature } => match self.reasoning.last_mut() {
                Some(ContentPart::Thinking { signature: open @ None, .. }) => *open = Some(signature.clone()),
                _ => self
                    .reasoning
                    .push(ContentPart::Thinking { thinking: String::new(), signature: Some(signature.clone()) }),
            },
            StreamEvent::RedactedThinking { data } => {
                self.reasoning.push(ContentPart::RedactedThinking { data: data.clone() });
            }
            StreamEvent::RefusalDelta { refusal } => self.refusal.get_or_insert_with(String::new).push_str(refusal),
            StreamEvent::Logprobs { content } => {
                self.logprobs.get_or_insert_with(Vec::new).extend(content.iter().cloned());
            }
            StreamEvent::Alternative { index, event } => {
                let position = match self.alternatives.iter().position(|(i, _)| i == index) {
                    Some(p) => p,
                    None => {
                        self.alternatives.push((*index, StreamCollector::new()));
                        self.alternatives.len() - 1
                    }
                };
                if !matches!(**event, StreamEvent::Alternative { .. } | StreamEvent::Restart { .. }) {
                    self.alternatives[position].1.push(event);
                }
            }
            StreamEvent::StopSequence { sequence } => self.stop_sequence = Some(sequence.clone()),
            StreamEvent::Envelope { dialect, extra } => self.envelope = Some((*dialect, extra.clone())),
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::RateLimit(r) => self.rate_limit = Some(*r),
            StreamEvent::Restart { .. } => *self = StreamCollector::new(),
            StreamEvent::Finish { reason } => self.finish = Some(*reason),
        }
    }

    /// Text received so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether a [`StreamEvent::Finish`] was seen.
    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// What was received so far, as a checkpoint.
    pub fn partial(&self) -> Partial {
        Partial { text: self.text.clone(), tool_calls: self.tool_calls.clone(), usage: self.usage }
    }

    /// The complete response, or `None` when no [`StreamEvent::Finish`] was seen.
    pub fn finish(
        self,
        provider: impl Into<String>,
        model: impl Into<String>,
        request_id: Option<String>,
    ) -> Option<ChatResponse> {
        let finish_reason = self.finish?;
        let (dialect, extra) = match self.envelope {
            Some((dialect, extra)) => (Some(dialect), extra),
            None => (None, Extra::new()),
        };
        Some(ChatResponse {
            provider: provider.into(),
            model: model.into(),
            text: self.text,
            tool_calls: self.tool_calls,
            reasoning: self.reasoning,
            finish_reason,
            refusal: self.refusal,
            stop_sequence: self.stop_sequence,
            logprobs: self.logprobs,
            alternatives: self
                .alternatives
                .into_iter()
                .map(|(index, c)| Choice {
                    index,
                    text: c.text,
                    tool_calls: c.tool_calls,
                    finish_reason: c.finish.unwrap_or(FinishReason::Incomplete),
                    refusal: c.refusal,
                    logprobs: c.logprobs,
                })
                .collect(),
            usage: self.usage.unwrap_or_default(),
            request_id,
            dialect,
            extra,
            rate_limit: self.rate_limit,
        })
    }
}

/// What a stream delivered before it failed: the checkpoint a router can resume from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Text received so far.
    pub text: String,
    /// Tool calls completed so far (arguments may be incomplete for the last one).
    pub tool_calls: Vec<ToolCall>,
    /// Usage reported before the failure, if any.
    pub usage: Option<Usage>,
}

impl Partial {
    /// True when nothing at all was received.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.tool_calls.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_make_the_common_case_one_line() {
        let req = ChatRequest::user("hi").system("be brief").max_tokens(64).stop("END");
        assert_eq!(req.messages.len(), 2);
        assert_eq!(req.messages[0].role, Role::System);
        assert_eq!(req.messages[1].text_content(), "hi");
        assert_eq!(req.max_tokens, Some(64));
        assert_eq!(req.stop, vec!["END".to_owned()]);
    }

    #[test]
    fn collector_assembles_text_tool_calls_and_restarts() {
        let mut c = StreamCollector::new();
        c.push(&StreamEvent::TextDelta { text: "Hel".into() });
        c.push(&StreamEvent::Restart { reason: "failover".into() });
        c.push(&StreamEvent::TextDelta { text: "Hi".into() });
        c.push(&StreamEvent::ToolCallDelta {
            index: 0,
            id: Some("c1".into()),
            name: Some("f".into()),
            arguments: "{\"a\":".into(),
        });
        c.push(&StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: "1}".into() });
        c.push(&StreamEvent::Usage(Usage {
            input_tokens: 3,
            output_tokens: 2,
            cached_input_tokens: None,
            ..Usage::default()
        }));
        assert!(!c.is_finished());
        c.push(&StreamEvent::Finish { reason: FinishReason::ToolCalls });
        let r = c.finish("p", "m", None);
        let r = r.as_ref();
        assert_eq!(r.map(|r| r.text.as_str()), Some("Hi"));
        assert_eq!(r.map(|r| r.tool_calls[0].arguments.as_str()), Some("{\"a\":1}"));
        assert_eq!(r.map(|r| r.usage.total()), Some(5));
    }

    #[test]
    fn unfinished_stream_is_not_a_response() {
        let mut c = StreamCollector::new();
        c.push(&StreamEvent::TextDelta { text: "partial".into() });
        assert_eq!(c.partial().text, "partial");
        assert!(c.finish("p", "m", None).is_none());
    }
}
