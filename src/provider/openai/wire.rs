//! Chat Completions wire types (private serde structs) and their mapping to and from the
//! normalized chat model.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use crate::chat::{
    ChatRequest, ChatResponse, ContentPart, FinishReason, Message, Role, Tool, ToolCall, ToolChoice, Usage,
};

/// The request body of `POST /chat/completions`.
#[derive(Debug, Serialize)]
pub(super) struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    /// Serialized as `null` (not omitted) for an assistant turn that only calls tools, as OpenAI expects.
    content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct WireToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionOut<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionDef<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunctionDef<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a Value,
}

/// Maps a normalized request to the wire body. Errors (with a reason) on conversations OpenAI
/// cannot express, rather than sending something the model would misread.
pub(super) fn request_body<'a>(model: &'a str, req: &'a ChatRequest, stream: bool) -> Result<WireRequest<'a>, String> {
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        map_message(m, &mut messages).map_err(|why| format!("message {i}: {why}"))?;
    }
    Ok(WireRequest {
        model,
        messages,
        max_completion_tokens: req.max_tokens,
        temperature: req.temperature,
        stop: &req.stop,
        tools: req.tools.iter().map(wire_tool).collect(),
        tool_choice: req.tool_choice.as_ref().map(wire_tool_choice),
        stream,
        stream_options: stream.then_some(StreamOptions { include_usage: true }),
    })
}

/// Appends the wire messages for one normalized message. Tool results become `tool` messages of
/// their own, placed first: OpenAI wants them right after the assistant turn that made the calls.
fn map_message<'a>(m: &'a Message, out: &mut Vec<WireMessage<'a>>) -> Result<(), String> {
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    let mut results = 0usize;
    for part in &m.content {
        match part {
            ContentPart::Text { text: t } => text.get_or_insert_with(String::new).push_str(t),
            ContentPart::ToolCall(c) => calls.push(WireToolCallOut {
                id: &c.id,
                kind: "function",
                function: WireFunctionOut { name: &c.name, arguments: &c.arguments },
            }),
            ContentPart::ToolResult(r) => {
                if m.role == Role::Assistant || m.role == Role::System {
                    return Err(format!("tool results cannot appear in a {} message", role_name(m.role)));
                }
                results += 1;
                out.push(WireMessage {
                    role: "tool",
                    content: Some(r.content.clone()),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(&r.tool_call_id),
                });
            }
        }
    }
    match m.role {
        Role::Assistant => {
            // null content only when the turn is nothing but tool calls
            let content = if text.is_none() && !calls.is_empty() { None } else { Some(text.unwrap_or_default()) };
            out.push(WireMessage { role: "assistant", content, tool_calls: calls, tool_call_id: None });
        }
        Role::System | Role::User => {
            if !calls.is_empty() {
                return Err(format!("tool calls can only appear in assistant messages, not {}", role_name(m.role)));
            }
            if text.is_some() || results == 0 {
                let content = Some(text.unwrap_or_default());
                out.push(WireMessage { role: role_name(m.role), content, tool_calls: Vec::new(), tool_call_id: None });
            }
        }
        Role::Tool => {
            if text.is_some() || !calls.is_empty() || results == 0 {
                return Err("a tool message must hold tool results only".to_owned());
            }
        }
    }
    Ok(())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn wire_tool(t: &Tool) -> WireTool<'_> {
    WireTool {
        kind: "function",
        function: WireFunctionDef { name: &t.name, description: t.description.as_deref(), parameters: &t.parameters },
    }
}

fn wire_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
    }
}

/// The response body of a non-streaming call. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    message: WireResponseMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireResponseMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCallIn>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCallIn {
    #[serde(default)]
    id: String,
    function: WireFunctionIn,
}

#[derive(Debug, Deserialize)]
struct WireFunctionIn {
    name: String,
    #[serde(default, deserialize_with = "arguments")]
    arguments: String,
}

/// Arguments are a JSON string per the spec; some OpenAI-compatible servers send the object itself.
fn arguments<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Token usage as OpenAI reports it, in responses and in the last stream chunk.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<WirePromptDetails>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct WirePromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cached_input_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens),
        }
    }
}

/// Maps OpenAI's `finish_reason`; anything unknown or missing is not a clean finish.
pub(super) fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Incomplete,
    }
}

/// Decodes a 2xx body. `Err` carries why it does not decode (the caller makes it `malformed_response`).
pub(super) fn decode_response(
    body: &[u8],
    provider: &str,
    requested_model: &str,
    request_id: Option<String>,
) -> Result<ChatResponse, String> {
    let wire: WireResponse =
        serde_json::from_slice(body).map_err(|e| format!("response body does not decode: {}", json_error(&e)))?;
    let choice = wire.choices.into_iter().next().ok_or_else(|| "response has no choices".to_owned())?;
    let tool_calls = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .map(|c| ToolCall { id: c.id, name: c.function.name, arguments: c.function.arguments })
        .collect();
    Ok(ChatResponse {
        provider: provider.to_owned(),
        model: wire.model.unwrap_or_else(|| requested_model.to_owned()),
        text: choice.message.content.unwrap_or_default(),
        tool_calls,
        finish_reason: finish_reason(choice.finish_reason.as_deref()),
        refusal: choice.message.refusal,
        usage: wire.usage.map(Usage::from).unwrap_or_default(),
        request_id,
    })
}

/// A JSON error without serde's quote of the offending value: upstream bytes stay out of messages.
pub(super) fn json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::chat::ToolResult;

    /// What goes on the wire: serialized the way the adapter sends it, then read back.
    fn body(model: &str, req: &ChatRequest, stream: bool) -> Value {
        let wire = request_body(model, req, stream).unwrap();
        serde_json::from_slice(&serde_json::to_vec(&wire).unwrap()).unwrap()
    }

    fn weather_tool() -> Tool {
        Tool::new("get_weather", "Weather for a city", json!({"type":"object","properties":{"city":{"type":"string"}}}))
    }

    #[test]
    fn minimal_request_has_only_model_and_messages() {
        let req = ChatRequest::user("hi");
        assert_eq!(
            body("gpt-4o-mini", &req, false),
            json!({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})
        );
    }

    #[test]
    fn roles_system_first_and_sampling_fields() {
        let req = ChatRequest::user("hi")
            .message(Message::assistant("hello"))
            .message(Message::user("again"))
            .system("be brief")
            .max_tokens(64)
            .temperature(0.7)
            .stop("END")
            .stop("STOP");
        assert_eq!(
            body("gpt-4o", &req, false),
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role":"system","content":"be brief"},
                    {"role":"user","content":"hi"},
                    {"role":"assistant","content":"hello"},
                    {"role":"user","content":"again"}
                ],
                "max_completion_tokens": 64,
                "temperature": 0.7,
                "stop": ["END","STOP"]
            })
        );
    }

    #[test]
    fn text_parts_join_into_one_string() {
        let m = Message {
            role: Role::User,
            content: vec![ContentPart::Text { text: "a".into() }, ContentPart::Text { text: "b".into() }],
        };
        assert_eq!(body("m", &ChatRequest::new([m]), false)["messages"], json!([{"role":"user","content":"ab"}]));
    }

    #[test]
    fn tool_calls_and_results_round_trip() {
        let call =
            ToolCall { id: "call_1".into(), name: "get_weather".into(), arguments: "{\"city\":\"Paris\"}".into() };
        let call2 =
            ToolCall { id: "call_2".into(), name: "get_weather".into(), arguments: "{\"city\":\"Oslo\"}".into() };
        let req = ChatRequest::user("weather?")
            .message(Message::tool_calls([call, call2]))
            .message(Message::tool_result("call_1", "18C"))
            .message(Message::tool_result("call_2", "3C"))
            .message(Message {
                role: Role::Assistant,
                content: vec![
                    ContentPart::Text { text: "Let me check again.".into() },
                    ContentPart::ToolCall(ToolCall {
                        id: "call_3".into(),
                        name: "get_weather".into(),
                        arguments: "{}".into(),
                    }),
                ],
            })
            .tool(weather_tool());
        assert_eq!(
            body("gpt-4o", &req, false),
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role":"user","content":"weather?"},
                    {"role":"assistant","content":null,"tool_calls":[
                        {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                        {"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}
                    ]},
                    {"role":"tool","tool_call_id":"call_1","content":"18C"},
                    {"role":"tool","tool_call_id":"call_2","content":"3C"},
                    {"role":"assistant","content":"Let me check again.","tool_calls":[
                        {"id":"call_3","type":"function","function":{"name":"get_weather","arguments":"{}"}}
                    ]}
                ],
                "tools": [{"type":"function","function":{
                    "name":"get_weather","description":"Weather for a city",
                    "parameters":{"type":"object","properties":{"city":{"type":"string"}}}
                }}]
            })
        );
    }

    #[test]
    fn tool_results_in_a_user_turn_come_before_its_text() {
        let m = Message {
            role: Role::User,
            content: vec![
                ContentPart::Text { text: "and now?".into() },
                ContentPart::ToolResult(ToolResult {
                    tool_call_id: "c1".into(),
                    content: "ok".into(),
                    is_error: false,
                }),
            ],
        };
        assert_eq!(
            body("m", &ChatRequest::new([m]), false)["messages"],
            json!([{"role":"tool","tool_call_id":"c1","content":"ok"},{"role":"user","content":"and now?"}])
        );
    }

    #[test]
    fn conversations_openai_cannot_express_are_rejected() {
        let call = ToolCall { id: "c".into(), name: "f".into(), arguments: "{}".into() };
        let user_with_call = Message { role: Role::User, content: vec![ContentPart::ToolCall(call)] };
        assert!(request_body("m", &ChatRequest::new([user_with_call]), false).is_err());
        let tool_with_text = Message::text(Role::Tool, "orphan");
        let err = request_body("m", &ChatRequest::new([Message::user("x"), tool_with_text]), false).unwrap_err();
        assert!(err.starts_with("message 1:"), "{err}");
    }

    #[test]
    fn tool_choice_variants() {
        let cases = [
            (ToolChoice::Auto, json!("auto")),
            (ToolChoice::None, json!("none")),
            (ToolChoice::Required, json!("required")),
            (ToolChoice::Tool("get_weather".into()), json!({"type":"function","function":{"name":"get_weather"}})),
        ];
        for (choice, expected) in cases {
            let req = ChatRequest::user("x").tool(weather_tool()).tool_choice(choice);
            assert_eq!(body("m", &req, false)["tool_choice"], expected);
        }
    }

    #[test]
    fn streaming_adds_stream_and_usage_flags() {
        let b = body("m", &ChatRequest::user("x"), true);
        assert_eq!(b["stream"], json!(true));
        assert_eq!(b["stream_options"], json!({"include_usage": true}));
        let b = body("m", &ChatRequest::user("x"), false);
        assert!(b.get("stream").is_none() && b.get("stream_options").is_none(), "{b}");
    }

    #[test]
    fn decodes_text_usage_and_model_as_reported() {
        let raw = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null},"logprobs":null,"finish_reason":"stop"}],
            "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":4}},
            "system_fingerprint":"fp_x","service_tier":"default"}"#;
        let r = decode_response(raw, "openai", "gpt-4o-mini", Some("req_1".into())).unwrap();
        assert_eq!(r.provider, "openai");
        assert_eq!(r.model, "gpt-4o-mini-2024-07-18");
        assert_eq!(r.text, "Hello!");
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(r.usage, Usage { input_tokens: 9, output_tokens: 2, cached_input_tokens: Some(4) });
        assert_eq!(r.request_id.as_deref(), Some("req_1"));
        assert!(r.refusal.is_none() && r.tool_calls.is_empty());
    }

    #[test]
    fn decodes_tool_calls_with_null_content() {
        let raw = br#"{"model":"gpt-4o","choices":[{"message":{"role":"assistant","content":null,"tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"call_2","type":"function","function":{"name":"get_time","arguments":{"tz":"UTC"}}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#;
        let r = decode_response(raw, "openai", "gpt-4o", None).unwrap();
        assert_eq!(r.text, "");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            r.tool_calls,
            vec![
                ToolCall { id: "call_1".into(), name: "get_weather".into(), arguments: "{\"city\":\"Paris\"}".into() },
                ToolCall { id: "call_2".into(), name: "get_time".into(), arguments: "{\"tz\":\"UTC\"}".into() },
            ]
        );
    }

    #[test]
    fn decodes_refusal_and_missing_usage_and_model() {
        let raw =
            br#"{"choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#;
        let r = decode_response(raw, "p", "asked-model", None).unwrap();
        assert_eq!(r.refusal.as_deref(), Some("I can't help with that."));
        assert_eq!(r.model, "asked-model");
        assert_eq!(r.usage, Usage::default());
    }

    #[test]
    fn finish_reasons_map() {
        let cases = [
            (Some("stop"), FinishReason::Stop),
            (Some("length"), FinishReason::Length),
            (Some("tool_calls"), FinishReason::ToolCalls),
            (Some("function_call"), FinishReason::ToolCalls),
            (Some("content_filter"), FinishReason::ContentFilter),
            (Some("eos"), FinishReason::Incomplete),
            (None, FinishReason::Incomplete),
        ];
        for (wire, expected) in cases {
            assert_eq!(finish_reason(wire), expected, "{wire:?}");
        }
    }

    #[test]
    fn bodies_that_do_not_decode_are_errors() {
        let bad: [&[u8]; 7] = [
            b"",
            b"{\"choices\":[{\"message\":{\"content\":\"Hel",
            b"<html><body>502 Bad Gateway</body></html>",
            b"{\"choices\":[]}",
            b"{\"model\":\"m\"}",
            b"{\"choices\":[{\"message\":{\"content\":42}}]}",
            b"[1,2,3]",
        ];
        for raw in bad {
            assert!(decode_response(raw, "p", "m", None).is_err(), "{}", String::from_utf8_lossy(raw));
        }
    }
}
