//! Messages and their content: who wrote what, text, media, tool calls and their results.

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

pub(super) fn is_empty_extra(extra: &Extra) -> bool {
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
