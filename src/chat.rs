//! The normalized chat model shared by every provider: requests, responses and stream events.

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions for the model (OpenAI `system`/`developer`, Anthropic top-level `system`).
    System,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call, sent back to the model.
    Tool,
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

/// The result of running a tool, sent back to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The id of the [`ToolCall`] this answers.
    pub tool_call_id: String,
    /// What the tool returned.
    pub content: String,
    /// Whether the tool failed.
    #[serde(default)]
    pub is_error: bool,
}

/// One piece of a message's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call (assistant messages).
    ToolCall(ToolCall),
    /// A tool result (tool messages).
    ToolResult(ToolResult),
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its content, in order.
    pub content: Vec<ContentPart>,
}

impl Message {
    /// A message with one text part.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message { role, content: vec![ContentPart::Text { text: text.into() }] }
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
        Message { role: Role::Assistant, content: calls.into_iter().map(ContentPart::ToolCall).collect() }
    }

    /// A tool message carrying the result of the call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: Role::Tool,
            content: vec![ContentPart::ToolResult(ToolResult {
                tool_call_id: tool_call_id.into(),
                content: content.into(),
                is_error: false,
            })],
        }
    }

    /// All text parts joined.
    pub fn text_content(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let ContentPart::Text { text } = part {
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
}

impl Tool {
    /// A tool with a name, a description and a JSON Schema for its arguments.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: serde_json::Value) -> Self {
        Tool { name: name.into(), description: Some(description.into()), parameters }
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

/// A provider-independent chat request. The model is chosen per call (by the caller or the router).
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
    /// Maximum output tokens. Anthropic requires one: the adapter supplies the model profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
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
    pub fn temperature(mut self, t: f32) -> Self {
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

    /// A rough token estimate of the prompt (4 characters a token), for limits and context checks.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        let mut chars = 0usize;
        for m in &self.messages {
            for part in &m.content {
                chars += match part {
                    ContentPart::Text { text } => text.len(),
                    ContentPart::ToolCall(c) => c.name.len() + c.arguments.len(),
                    ContentPart::ToolResult(r) => r.content.len(),
                };
            }
        }
        for t in &self.tools {
            chars += t.name.len() + t.description.as_ref().map_or(0, String::len) + t.parameters.to_string().len();
        }
        (chars as u64).div_ceil(4)
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens (OpenAI `prompt_tokens`, Anthropic `input_tokens`).
    pub input_tokens: u64,
    /// Output tokens (OpenAI `completion_tokens`, Anthropic `output_tokens`).
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
}

impl Usage {
    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// A complete answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// The refusal text, when the provider sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Token usage.
    pub usage: Usage,
    /// The provider's request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
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
    /// Token usage (may come more than once; the last one wins).
    Usage(Usage),
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

/// Accumulates stream events into a [`ChatResponse`]: what a consumer that wants the whole answer
/// does with a stream.
#[derive(Debug, Clone, Default)]
pub struct StreamCollector {
    text: String,
    tool_calls: Vec<ToolCall>,
    usage: Option<Usage>,
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
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Restart { .. } => {
                self.text.clear();
                self.tool_calls.clear();
                self.usage = None;
                self.finish = None;
            }
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
    pub fn partial(&self) -> crate::error::Partial {
        crate::error::Partial { text: self.text.clone(), tool_calls: self.tool_calls.clone(), usage: self.usage }
    }

    /// The complete response, or `None` when no [`StreamEvent::Finish`] was seen.
    pub fn finish(
        self,
        provider: impl Into<String>,
        model: impl Into<String>,
        request_id: Option<String>,
    ) -> Option<ChatResponse> {
        let finish_reason = self.finish?;
        Some(ChatResponse {
            provider: provider.into(),
            model: model.into(),
            text: self.text,
            tool_calls: self.tool_calls,
            finish_reason,
            refusal: None,
            usage: self.usage.unwrap_or_default(),
            request_id,
        })
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
        c.push(&StreamEvent::Usage(Usage { input_tokens: 3, output_tokens: 2, cached_input_tokens: None }));
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
