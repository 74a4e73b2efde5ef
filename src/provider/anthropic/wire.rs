//! The Messages API bodies: the request built from a [`ChatRequest`], and the response decoded into
//! a [`ChatResponse`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chat::{ChatRequest, ChatResponse, ContentPart, FinishReason, Role, ToolCall, ToolChoice, Usage};
use crate::error::{ErrorClass, ProviderError};
use crate::profile::ProviderProfile;

/// `max_tokens` when neither the request nor the model's profile gives one (Anthropic requires it).
pub(super) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// A `POST /v1/messages` body.
#[derive(Debug, Serialize)]
pub(super) struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum WireRole {
    User,
    Assistant,
}

#[derive(Debug, Serialize)]
struct Turn<'a> {
    role: WireRole,
    content: TurnContent<'a>,
}

/// Anthropic accepts both; a lone text block goes as a plain string, the form every client sends.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum TurnContent<'a> {
    Text(&'a str),
    Blocks(Vec<Block<'a>>),
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: Value },
    ToolResult { tool_use_id: &'a str, content: &'a str, is_error: bool },
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: &'a Value,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireToolChoice<'a> {
    Auto,
    None,
    Any,
    Tool { name: &'a str },
}

/// Builds the body for `model`. Fails (before any network call) when a tool call's arguments are
/// not a JSON object: Anthropic wants `input` as an object, not a string.
pub(super) fn build_request<'a>(
    provider: &str,
    model: &'a str,
    request: &'a ChatRequest,
    profile: Option<&ProviderProfile>,
    stream: bool,
) -> Result<MessagesRequest<'a>, ProviderError> {
    let max_tokens = request
        .max_tokens
        .or_else(|| profile.and_then(|p| p.model(model)).map(|m| m.max_output_tokens))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    Ok(MessagesRequest {
        model,
        max_tokens,
        system: system_prompt(request),
        messages: turns(provider, request)?,
        stop_sequences: request.stop.iter().map(String::as_str).collect(),
        temperature: request.temperature,
        tools: request
            .tools
            .iter()
            .map(|t| WireTool { name: &t.name, description: t.description.as_deref(), input_schema: &t.parameters })
            .collect(),
        tool_choice: request.tool_choice.as_ref().map(|c| match c {
            ToolChoice::Auto => WireToolChoice::Auto,
            ToolChoice::None => WireToolChoice::None,
            ToolChoice::Required => WireToolChoice::Any,
            ToolChoice::Tool(name) => WireToolChoice::Tool { name },
        }),
        stream,
    })
}

/// Every system message, wherever it sits, lifted to the top-level `system` field.
fn system_prompt(request: &ChatRequest) -> Option<String> {
    let parts: Vec<String> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.text_content())
        .filter(|t| !t.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// User and assistant turns, tool messages folded into user turns, consecutive same-role turns
/// merged (Anthropic rejects two user turns in a row, which is what tool results followed by a
/// user message would otherwise become).
fn turns<'a>(provider: &str, request: &'a ChatRequest) -> Result<Vec<Turn<'a>>, ProviderError> {
    let mut merged: Vec<(WireRole, Vec<Block<'a>>)> = Vec::new();
    for message in &request.messages {
        let role = match message.role {
            Role::System => continue,
            Role::Assistant => WireRole::Assistant,
            Role::User | Role::Tool => WireRole::User,
        };
        let mut blocks = Vec::with_capacity(message.content.len());
        for part in &message.content {
            blocks.push(block(provider, part)?);
        }
        if blocks.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => merged.push((role, blocks)),
        }
    }
    Ok(merged
        .into_iter()
        .map(|(role, blocks)| {
            let content = match blocks.as_slice() {
                [Block::Text { text }] => TurnContent::Text(text),
                _ => TurnContent::Blocks(blocks),
            };
            Turn { role, content }
        })
        .collect())
}

fn block<'a>(provider: &str, part: &'a ContentPart) -> Result<Block<'a>, ProviderError> {
    Ok(match part {
        ContentPart::Text { text } => Block::Text { text },
        ContentPart::ToolCall(call) => {
            Block::ToolUse { id: &call.id, name: &call.name, input: tool_input(provider, call)? }
        }
        ContentPart::ToolResult(result) => {
            Block::ToolResult { tool_use_id: &result.tool_call_id, content: &result.content, is_error: result.is_error }
        }
    })
}

/// The arguments string as the object Anthropic expects; an empty string means no arguments.
fn tool_input(provider: &str, call: &ToolCall) -> Result<Value, ProviderError> {
    if call.arguments.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    // the arguments themselves stay out of the message: they may be large or sensitive
    match serde_json::from_str::<Value>(&call.arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ProviderError::new(
            ErrorClass::InvalidRequest,
            provider,
            format!("arguments of tool call `{}` ({}) are not a JSON object", call.id, call.name),
        )),
        Err(e) => Err(ProviderError::new(
            ErrorClass::InvalidRequest,
            provider,
            format!("arguments of tool call `{}` ({}) are not valid JSON: {e}", call.id, call.name),
        )),
    }
}

/// Token counts as Anthropic reports them (in responses, `message_start` and `message_delta`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Overwrites what `newer` reports, keeps the rest (stream usage arrives in pieces).
    pub(super) fn apply_to(self, usage: &mut Usage) {
        if let Some(n) = self.input_tokens {
            usage.input_tokens = n;
        }
        if let Some(n) = self.output_tokens {
            usage.output_tokens = n;
        }
        if let Some(n) = self.cache_read_input_tokens {
            usage.cached_input_tokens = Some(n);
        }
    }
}

/// A non-streaming response. Unknown fields and block types are ignored.
#[derive(Debug, Deserialize)]
pub(super) struct MessagesResponse {
    #[serde(default)]
    id: Option<String>,
    model: String,
    content: Vec<ResponseBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// `thinking`, `redacted_thinking`, server tool blocks: not part of the normalized answer.
    #[serde(other)]
    Other,
}

impl MessagesResponse {
    /// Decodes a 2xx body.
    pub(super) fn decode(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The normalized answer; `request_id` (the `request-id` header) wins over the message id.
    pub(super) fn into_chat_response(self, provider: &str, request_id: Option<String>) -> ChatResponse {
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in self.content {
            match block {
                ResponseBlock::Text { text: t } => text.push_str(&t),
                ResponseBlock::ToolUse { id, name, input } => {
                    tool_calls.push(ToolCall { id, name, arguments: input.to_string() })
                }
                ResponseBlock::Other => {}
            }
        }
        let mut usage = Usage::default();
        if let Some(u) = self.usage {
            u.apply_to(&mut usage);
        }
        ChatResponse {
            provider: provider.to_owned(),
            model: self.model,
            text,
            tool_calls,
            finish_reason: finish_reason(self.stop_reason.as_deref()),
            refusal: None,
            usage,
            request_id: request_id.or(self.id),
        }
    }
}

/// Anthropic's `stop_reason` in the normalized form (WIRE.md "Mapping between the two").
pub(super) fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        // pause_turn, a reason added after this was written, or none at all: not a clean finish
        _ => FinishReason::Incomplete,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::chat::{Message, Tool};
    use serde_json::json;

    fn body(request: &ChatRequest, model: &str, stream: bool) -> Value {
        let profile = ProviderProfile::builtin("anthropic");
        let req = build_request("anthropic", model, request, profile.as_deref(), stream).unwrap();
        // through bytes, as on the wire
        serde_json::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap()
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
    }

    #[test]
    fn system_messages_are_lifted_and_joined() {
        let req = ChatRequest::new([
            Message::system("be brief"),
            Message::user("hi"),
            Message::system("answer in French"),
            Message::assistant("salut"),
        ])
        .max_tokens(100);
        assert_eq!(
            body(&req, "claude-sonnet-4-5", false),
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 100,
                "system": "be brief\n\nanswer in French",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "salut"},
                ],
            })
        );
    }

    #[test]
    fn no_system_field_without_system_messages() {
        let v = body(&ChatRequest::user("hi"), "claude-sonnet-4-5", false);
        assert!(v.get("system").is_none(), "{v}");
    }

    #[test]
    fn consecutive_same_role_turns_are_merged_into_blocks() {
        let req = ChatRequest::new([Message::user("one"), Message::user("two"), Message::assistant("three")]);
        assert_eq!(
            body(&req, "claude-sonnet-4-5", false)["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "three"},
            ])
        );
    }

    #[test]
    fn tool_calls_and_results_round_trip_between_string_and_object() {
        let mut result = Message::tool_result("toolu_2", "boom");
        if let ContentPart::ToolResult(r) = &mut result.content[0] {
            r.is_error = true;
        }
        let req = ChatRequest::new([
            Message::user("weather in Paris and Rome?"),
            Message {
                role: Role::Assistant,
                content: vec![
                    ContentPart::Text { text: "Checking.".into() },
                    ContentPart::ToolCall(call("toolu_1", "weather", r#"{"city":"Paris","days":[1,2]}"#)),
                    ContentPart::ToolCall(call("toolu_2", "now", "")),
                ],
            },
            Message::tool_result("toolu_1", "18C"),
            result,
            Message::user("thanks"),
        ]);
        assert_eq!(
            body(&req, "claude-sonnet-4-5", false)["messages"],
            json!([
                {"role": "user", "content": "weather in Paris and Rome?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris", "days": [1, 2]}},
                    {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C", "is_error": false},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": true},
                    {"type": "text", "text": "thanks"},
                ]},
            ])
        );
    }

    #[test]
    fn tool_arguments_that_are_not_a_json_object_are_rejected_before_sending() {
        for bad in [r#"{"city": "Par"#, "not json", "[1,2]", "3"] {
            let req = ChatRequest::new([Message::user("q"), Message::tool_calls([call("toolu_9", "weather", bad)])]);
            let err = build_request("anthropic", "claude-sonnet-4-5", &req, None, false).unwrap_err();
            assert_eq!(err.class, ErrorClass::InvalidRequest, "{bad}");
            assert!(err.message.contains("toolu_9"), "{}", err.message);
            assert!(err.status.is_none());
        }
    }

    #[test]
    fn tools_and_every_tool_choice() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
        let base = ChatRequest::user("q").tool(Tool::new("weather", "Current weather", schema.clone())).tool(Tool {
            name: "now".into(),
            description: None,
            parameters: json!({"type": "object"}),
        });
        let v = body(&base, "claude-sonnet-4-5", false);
        assert_eq!(
            v["tools"],
            json!([
                {"name": "weather", "description": "Current weather", "input_schema": schema},
                {"name": "now", "input_schema": {"type": "object"}},
            ])
        );
        assert!(v.get("tool_choice").is_none());
        let cases = [
            (ToolChoice::Auto, json!({"type": "auto"})),
            (ToolChoice::None, json!({"type": "none"})),
            (ToolChoice::Required, json!({"type": "any"})),
            (ToolChoice::Tool("weather".into()), json!({"type": "tool", "name": "weather"})),
        ];
        for (choice, expected) in cases {
            let req = base.clone().tool_choice(choice);
            assert_eq!(body(&req, "claude-sonnet-4-5", false)["tool_choice"], expected);
        }
    }

    #[test]
    fn max_tokens_comes_from_request_then_profile_then_default() {
        assert_eq!(body(&ChatRequest::user("q").max_tokens(7), "claude-sonnet-4-5", false)["max_tokens"], 7);
        assert_eq!(body(&ChatRequest::user("q"), "claude-sonnet-4-5", false)["max_tokens"], 64000);
        assert_eq!(body(&ChatRequest::user("q"), "claude-opus-4-1", false)["max_tokens"], 32000);
        assert_eq!(body(&ChatRequest::user("q"), "claude-unknown-9", false)["max_tokens"], 4096);
        let req = ChatRequest::user("q");
        let no_profile = build_request("x", "claude-sonnet-4-5", &req, None, false).unwrap();
        assert_eq!(serde_json::to_value(&no_profile).unwrap()["max_tokens"], 4096);
    }

    #[test]
    fn stop_temperature_and_stream() {
        let req = ChatRequest::user("q").stop("END").stop("\n\nHuman:").temperature(0.5).max_tokens(10);
        assert_eq!(
            body(&req, "claude-haiku-4-5", true),
            json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "q"}],
                "stop_sequences": ["END", "\n\nHuman:"],
                "temperature": 0.5,
                "stream": true,
            })
        );
    }

    #[test]
    fn temperature_is_sent_as_written() {
        let req = ChatRequest::user("q").temperature(0.7);
        let profile = ProviderProfile::builtin("anthropic");
        let built = build_request("anthropic", "m", &req, profile.as_deref(), false).unwrap();
        let text = serde_json::to_string(&built).unwrap();
        assert!(text.contains("\"temperature\":0.7"), "{text}");
    }

    #[test]
    fn assistant_prefill_placed_last_is_sent_as_is() {
        let req = ChatRequest::new([Message::user("Count to 5"), Message::assistant("1, 2, 3")]).max_tokens(20);
        assert_eq!(
            body(&req, "claude-sonnet-4-5", false)["messages"],
            json!([
                {"role": "user", "content": "Count to 5"},
                {"role": "assistant", "content": "1, 2, 3"},
            ])
        );
    }

    #[test]
    fn messages_without_content_are_dropped() {
        let req = ChatRequest::new([Message::user("a"), Message { role: Role::Assistant, content: vec![] }]);
        assert_eq!(body(&req, "m", false)["messages"], json!([{"role": "user", "content": "a"}]));
    }

    #[test]
    fn response_text_tool_use_usage_and_request_id() {
        let raw = json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 34, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 5, "service_tier": "standard"},
            "future_field": {"x": 1},
        });
        let decoded = MessagesResponse::decode(raw.to_string().as_bytes()).unwrap();
        let r = decoded.into_chat_response("anthropic-eu", None);
        assert_eq!(r.provider, "anthropic-eu");
        assert_eq!(r.model, "claude-sonnet-4-5-20250929");
        assert_eq!(r.text, "Let me check.");
        assert_eq!(r.tool_calls, vec![call("toolu_1", "weather", r#"{"city":"Paris"}"#)]);
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.usage, Usage { input_tokens: 12, output_tokens: 34, cached_input_tokens: Some(5) });
        assert_eq!(r.request_id.as_deref(), Some("msg_01"));

        let decoded = MessagesResponse::decode(raw.to_string().as_bytes()).unwrap();
        let r = decoded.into_chat_response("anthropic", Some("req_9".into()));
        assert_eq!(r.request_id.as_deref(), Some("req_9"));
    }

    #[test]
    fn every_stop_reason_maps() {
        let cases = [
            (Some("end_turn"), FinishReason::Stop),
            (Some("stop_sequence"), FinishReason::Stop),
            (Some("max_tokens"), FinishReason::Length),
            (Some("model_context_window_exceeded"), FinishReason::Length),
            (Some("tool_use"), FinishReason::ToolCalls),
            (Some("refusal"), FinishReason::ContentFilter),
            (Some("pause_turn"), FinishReason::Incomplete),
            (Some("something_new"), FinishReason::Incomplete),
            (None, FinishReason::Incomplete),
        ];
        for (stop, expected) in cases {
            let raw = json!({"model": "m", "content": [{"type": "text", "text": "x"}], "stop_reason": stop,
                             "usage": {"input_tokens": 1, "output_tokens": 1}});
            let r = MessagesResponse::decode(raw.to_string().as_bytes()).unwrap().into_chat_response("a", None);
            assert_eq!(r.finish_reason, expected, "{stop:?}");
        }
    }

    #[test]
    fn undecodable_bodies_are_errors() {
        for bad in [
            &b""[..],
            b"{\"model\":\"m\",\"content\":[{\"type\":\"text\",\"te",
            b"<html><body>hi</body></html>",
            b"{\"model\":\"m\",\"content\":\"text\"}",
            b"{\"model\":3,\"content\":[]}",
            b"{\"content\":[{\"type\":\"text\",\"text\":5}],\"model\":\"m\"}",
            b"{\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":\"many\"}}",
            b"null",
        ] {
            assert!(MessagesResponse::decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
