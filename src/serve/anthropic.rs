//! The Anthropic Messages wire as the gateway speaks it to its clients: requests, answers, errors
//! and streams are the wire's ([`crate::wire::anthropic`]); the gateway adds the message ids, the
//! `anthropic-beta` headers it reads, and its `switchyard` member on errors.

use bytes::Bytes;
use serde_json::Value;

use super::dialect::{Dialect, Encoder, Failure, Parsed};
use super::openai::{answer_id, fresh_id, switchyard_extension};
use crate::chat::StreamEvent;
use crate::router::RoutedResponse;
use crate::wire::anthropic::{error, response, stream::Writer};

/// Anthropic Messages (`POST /v1/messages`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnthropicWire;

impl Dialect for AnthropicWire {
    type Encoder = AnthropicEncoder;

    fn read_headers(parsed: &mut Parsed, headers: &axum::http::HeaderMap) {
        super::dialect::read_caller_headers(parsed, headers);
        // every `anthropic-beta` header, each a comma-separated list, as the API reads them
        for value in headers.get_all("anthropic-beta") {
            let Ok(value) = value.to_str() else { continue };
            for beta in value.split(',').map(str::trim).filter(|b| !b.is_empty()) {
                if !parsed.request.betas.iter().any(|b| b == beta) {
                    parsed.request.betas.push(beta.to_owned());
                }
            }
        }
    }

    fn parse(body: Bytes) -> Result<Parsed, String> {
        crate::wire::anthropic::decode_request(body)
    }

    fn response(r: &RoutedResponse) -> Value {
        response_body(r)
    }

    fn error(f: &Failure) -> Value {
        let mut body = error::envelope(error::type_for_class(f.class), &f.message, None);
        body["switchyard"] = switchyard_extension(f);
        body
    }

    fn encoder(_include_usage: bool, _provider: &str, model: &str) -> AnthropicEncoder {
        AnthropicEncoder::new(format!("msg_{}", fresh_id()), model)
    }
}

/// The `message` body of a routed answer.
fn response_body(r: &RoutedResponse) -> Value {
    response::encode_response(&r.response, &answer_id("msg_", r.response.request_id.as_deref()))
}

/// A streamed answer as Messages events.
#[derive(Debug)]
pub(crate) struct AnthropicEncoder(Writer);

impl AnthropicEncoder {
    fn new(id: String, model: &str) -> Self {
        AnthropicEncoder(Writer::new(id, model))
    }
}

impl Encoder for AnthropicEncoder {
    fn event(&mut self, event: &StreamEvent) -> Vec<Bytes> {
        self.0.event(event)
    }

    fn error(&mut self, failure: &Failure) -> Vec<Bytes> {
        self.0.fail(&AnthropicWire::error(failure))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    #[allow(unused_imports)]
    use crate::chat::{ChatRequest, ContentPart, Message, Role, Tool, ToolCall, ToolChoice, ToolResult};
    use serde_json::json;

    use crate::chat::{ChatResponse, FinishReason, StreamCollector, Usage};
    use crate::error::ErrorClass;
    use crate::provider::{Anthropic, Call, Provider, ProviderConfig};
    use crate::router::{Attempt, AttemptOutcome};
    use crate::serve::openai::tests::serve;

    fn parse(body: &str) -> Result<Parsed, String> {
        AnthropicWire::parse(Bytes::copy_from_slice(body.as_bytes()))
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
    }

    fn answer(text: &str, tool_calls: Vec<ToolCall>, finish_reason: FinishReason) -> RoutedResponse {
        RoutedResponse {
            route: "chat".into(),
            response: ChatResponse {
                tool_calls,
                usage: Usage::new(25, 7),
                request_id: Some("msg_01abc".into()),
                ..ChatResponse::new("openai", "gpt-4o", text, finish_reason)
            },
            attempts: Vec::new(),
            dropped: Vec::new(),
        }
    }

    fn failure(class: ErrorClass, message: &str) -> Failure {
        Failure {
            class,
            message: message.into(),
            route: Some("chat".into()),
            provider: Some("anthropic".into()),
            model: Some("claude-sonnet-4-5".into()),
            attempts: vec![Attempt {
                provider: "anthropic".into(),
                model: "claude-sonnet-4-5".into(),
                outcome: AttemptOutcome::Error,
                class: Some(class),
                status: Some(529),
                elapsed: Duration::from_millis(80),
                skip_reason: None,
                probe: false,
                hedge: false,
                output_tokens: None,
                cost_usd: None,
            }],
            mid_stream: false,
            provider_incidents: Vec::new(),
        }
    }

    fn text(bytes: &[Bytes]) -> String {
        bytes.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }

    fn encode(events: &[StreamEvent]) -> String {
        let mut e = AnthropicEncoder::new("msg_1".into(), "gpt-4o");
        let mut out = e.0.start();
        for ev in events {
            out.extend(e.event(ev));
        }
        text(&out)
    }

    /// The (event name, data) pairs of an encoded stream, checking the framing on the way.
    fn events_of(sse: &str) -> Vec<(String, Value)> {
        assert!(sse.ends_with("\n\n"), "{sse:?}");
        sse.trim_end_matches("\n\n")
            .split("\n\n")
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap();
                let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name, "{e}");
                (name.to_owned(), data)
            })
            .collect()
    }

    // ---- parsing ----

    #[test]
    fn parses_a_python_sdk_request() {
        let p = parse(
            r#"{
              "max_tokens": 1024,
              "messages": [{"role": "user", "content": "Hello, Claude"}],
              "model": "chat",
              "stream": true,
              "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
              "metadata": {"user_id": "u-1"},
              "temperature": 0.25,
              "top_k": 5,
              "stop_sequences": ["END", "STOP"]
            }"#,
        )
        .unwrap();
        assert_eq!(p.route, "chat");
        assert!(p.stream && p.include_usage);
        let mut expected = ChatRequest::new([
            Message::new(
                Role::System,
                [ContentPart::text("You are terse.").cached(crate::chat::CacheControl::ephemeral())],
            ),
            Message::user("Hello, Claude"),
        ])
        .max_tokens(1024)
        .temperature(0.25)
        .stop("END")
        .stop("STOP");
        expected.top_k = Some(5);
        expected.user = Some("u-1".into());
        expected.dialect = Some(crate::provider::Protocol::Anthropic);
        assert_eq!(p.request, expected);
    }

    #[test]
    fn parses_a_tool_conversation() {
        let p = parse(
            r#"{
              "model": "agents",
              "max_tokens": 512,
              "system": "Use tools.",
              "tools": [
                {"name": "get_weather", "description": "Weather by city",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"type": "custom", "name": "now", "input_schema": {"type": "object"}}
              ],
              "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
              "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
                {"role": "assistant", "content": [
                  {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
                  {"type": "text", "text": "Let me check."},
                  {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                  {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}
                ]},
                {"role": "user", "content": [
                  {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                  {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                   "content": [{"type": "text", "text": "clock"}, {"type": "text", "text": "broken"}]},
                  {"type": "text", "text": "And tomorrow?"}
                ]}
              ]
            }"#,
        )
        .unwrap();
        let r = &p.request;
        assert!(!p.stream);
        assert_eq!(r.max_tokens, Some(512));
        let mut results = Message::tool_result("toolu_1", "18C");
        results.content.push(ContentPart::ToolResult(ToolResult {
            tool_call_id: "toolu_2".into(),
            content: vec![ContentPart::text("clock"), ContentPart::text("broken")],
            is_error: true,
            cache_control: None,
        }));
        let assistant = Message::new(
            Role::Assistant,
            [
                ContentPart::Thinking { thinking: "The user wants weather.".into(), signature: Some("sig".into()) },
                ContentPart::text("Let me check."),
                ContentPart::ToolCall(call("toolu_1", "get_weather", r#"{"city":"Paris"}"#)),
                ContentPart::ToolCall(call("toolu_2", "now", "{}")),
            ],
        );
        assert_eq!(
            r.messages,
            vec![
                Message::system("Use tools."),
                Message::user("Weather in Paris?"),
                assistant,
                results,
                Message::user("And tomorrow?"),
            ]
        );
        assert_eq!(r.tools.len(), 2);
        assert_eq!(r.tools[0].description.as_deref(), Some("Weather by city"));
        assert_eq!(r.tools[0].parameters["required"], json!(["city"]));
        assert_eq!(r.tools[1].parameters, json!({"type": "object"}));
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("get_weather".into())));
    }

    #[test]
    fn max_tokens_may_be_absent_and_system_may_be_empty() {
        let p = parse(r#"{"model":"m","system":"","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(
            p.request,
            ChatRequest { dialect: Some(crate::provider::Protocol::Anthropic), ..ChatRequest::user("hi") }
        );
        let p = parse(r#"{"model":"m","system":[],"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(p.request.messages.len(), 1);
        let two = r#"[{"type":"text","text":"a"},{"type":"text","text":"b"}]"#;
        let p =
            parse(&format!(r#"{{"model":"m","system":{two},"messages":[{{"role":"user","content":"hi"}}]}}"#)).unwrap();
        assert_eq!(p.request.messages[0].role, Role::System);
        assert_eq!(p.request.messages[0].content.len(), 2);
    }

    #[test]
    fn parses_every_tool_choice() {
        let choice = |c: &str| {
            parse(&format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"tool_choice":{c}}}"#))
                .map(|p| p.request.tool_choice)
        };
        assert_eq!(choice(r#"{"type":"auto"}"#), Ok(Some(ToolChoice::Auto)));
        assert_eq!(choice(r#"{"type":"any"}"#), Ok(Some(ToolChoice::Required)));
        assert_eq!(choice(r#"{"type":"none"}"#), Ok(Some(ToolChoice::None)));
        assert_eq!(choice(r#"{"type":"tool","name":"f"}"#), Ok(Some(ToolChoice::Tool("f".into()))));
        assert!(choice(r#"{"type":"tool"}"#).unwrap_err().contains("`tool_choice.name`"));
        assert!(choice(r#""auto""#).unwrap_err().contains("`tool_choice`"));
        // a choice of next month's: carried for a Claude target, named for any other
        let p = parse(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":{"type":"required"}}"#)
            .unwrap();
        assert_eq!(p.request.tool_choice, None);
        assert_eq!(p.request.opaque[0].field, "tool_choice required");
    }

    #[test]
    fn what_it_does_not_know_is_carried_opaque_and_a_system_turn_is_a_system_message() {
        // what Claude Code sends for a model name it does not know, and members not invented yet
        let p = parse(
            r#"{"model":"alias","max_tokens":32000,
                "messages":[{"role":"user","content":"hi"},{"role":"system","content":[{"type":"text","text":"env"}]},
                            {"role":"critic","content":"x"}],
                "thinking":{"type":"adaptive","display":"omitted"},"output_config":{"effort":"high","verbosity":"low"},
                "context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},
                "tools":[{"name":"f","input_schema":{"type":"object"},"defer_loading":true,"cache_control":{"type":"ephemeral","scope":"global"}}]}"#,
        )
        .unwrap();
        let roles: Vec<Role> = p.request.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::System]);
        assert_eq!(p.request.reasoning, Some(crate::chat::Reasoning::Adaptive { effort: Some("high".into()) }));
        let opaque: Vec<(&str, bool)> = p.request.opaque.iter().map(|o| (o.field.as_str(), o.harmless)).collect();
        assert_eq!(
            opaque,
            [
                ("cache_control.scope", true),
                ("thinking.display", true),
                ("output_config.verbosity", false),
                ("critic role", false)
            ]
        );
        assert!(p.request.extra.contains_key("context_management"));
        assert!(p.request.tools[0].extra.contains_key("defer_loading"));
    }

    #[test]
    fn malformed_requests_are_refused_naming_the_field() {
        let user = r#"[{"role":"user","content":"hi"}]"#;
        let msg = |content: &str| format!(r#"{{"model":"m","messages":[{{"role":"user","content":{content}}}]}}"#);
        let said =
            |content: &str| format!(r#"{{"model":"m","messages":[{{"role":"assistant","content":{content}}}]}}"#);
        let cases: Vec<(String, &str)> = vec![
            ("{".into(), "not valid JSON"),
            ("\"hi\"".into(), "must be a JSON object"),
            (format!(r#"{{"messages":{user}}}"#), "`model`"),
            (format!(r#"{{"model":null,"messages":{user}}}"#), "`model`"),
            (format!(r#"{{"model":["m"],"messages":{user}}}"#), "`model`"),
            (r#"{"model":"m","max_tokens":1}"#.into(), "`messages`"),
            (r#"{"model":"m","messages":[]}"#.into(), "`messages`"),
            (r#"{"model":"m","messages":{}}"#.into(), "`messages`"),
            (r#"{"model":"m","messages":[{"role":"user"}]}"#.into(), "`messages[0].content`"),
            (msg("3"), "`messages[0].content`"),
            (msg(r#"[{"type":"image","source":{}}]"#), "`messages[0].content[0].source.type`"),
            (msg(r#"[{"text":"x"}]"#), "`messages[0].content[0].type`"),
            (msg(r#"[{"type":"text","text":7}]"#), "`messages[0].content[0].text`"),
            (msg(r#"[{"type":"tool_use","id":"t","name":"f","input":{}}]"#), "`messages[0].content[0]`: tool_use"),
            (msg(r#"[{"type":"tool_result","content":"x"}]"#), "`messages[0].content[0].tool_use_id`"),
            (msg(r#"[{"type":"tool_result","tool_use_id":"t","content":5}]"#), "`messages[0].content[0].content`"),
            (
                msg(r#"[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image"}]}]"#),
                "`messages[0].content[0].content[0].source`",
            ),
            (msg(r#"[{"type":"tool_result","tool_use_id":"t","is_error":"no"}]"#), "`messages[0].content[0].is_error`"),
            (said(r#"[{"type":"tool_use","id":"t","name":"f","input":"{}"}]"#), "`messages[0].content[0].input`"),
            (said(r#"[{"type":"tool_use","name":"f","input":{}}]"#), "`messages[0].content[0].id`"),
            (said(r#"[{"type":"tool_result","tool_use_id":"t"}]"#), "`messages[0].content[0]`: tool_result"),
            (format!(r#"{{"model":"m","messages":{user},"max_tokens":"1024"}}"#), "`max_tokens`"),
            (format!(r#"{{"model":"m","messages":{user},"temperature":[]}}"#), "`temperature`"),
            (format!(r#"{{"model":"m","messages":{user},"system":5}}"#), "`system`"),
            (format!(r#"{{"model":"m","messages":{user},"system":[{{"type":"image"}}]}}"#), "`system[0].source`"),
            (format!(r#"{{"model":"m","messages":{user},"stop_sequences":"END"}}"#), "`stop_sequences`"),
            (format!(r#"{{"model":"m","messages":{user},"stop_sequences":[null]}}"#), "`stop_sequences`"),
            (format!(r#"{{"model":"m","messages":{user},"stream":1}}"#), "`stream`"),
            (format!(r#"{{"model":"m","messages":{user},"tools":[{{"name":"f"}}]}}"#), "`tools[0].input_schema`"),
            (format!(r#"{{"model":"m","messages":{user},"tools":[{{"input_schema":{{}}}}]}}"#), "`tools[0].name`"),
        ];
        for (body, field) in cases {
            let err = parse(&body).expect_err(&body);
            assert!(err.contains(field), "{body}: {err:?} does not name {field}");
        }
    }

    // ---- responses and errors ----

    #[test]
    fn text_and_tool_use_answer_is_a_message() {
        let r = answer(
            "Let me check.",
            vec![call("call_1", "get_weather", r#"{"city":"Paris"}"#)],
            FinishReason::ToolCalls,
        );
        assert_eq!(
            AnthropicWire::response(&r),
            json!({
                "id": "msg_01abc",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
                ],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {"input_tokens": 25, "output_tokens": 7}
            })
        );
    }

    #[test]
    fn empty_text_is_no_block_and_broken_arguments_are_an_empty_input() {
        let mut r = answer(
            "",
            vec![call("c1", "f", "{\"a\":"), call("c2", "g", "[1]"), call("c3", "h", "")],
            FinishReason::ToolCalls,
        );
        r.response.request_id = Some("req_9".into());
        r.response.usage.cached_input_tokens = Some(3);
        let body = AnthropicWire::response(&r);
        assert_eq!(body["id"], "msg_req_9");
        assert_eq!(
            body["content"],
            json!([
                {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
                {"type": "tool_use", "id": "c2", "name": "g", "input": {}},
                {"type": "tool_use", "id": "c3", "name": "h", "input": {}}
            ])
        );
        // Anthropic's input_tokens leave out the cached prompt tokens the normalized count includes
        assert_eq!(body["usage"], json!({"input_tokens": 22, "output_tokens": 7, "cache_read_input_tokens": 3}));
    }

    #[test]
    fn stop_reasons_ids_and_refusals() {
        let reasons = [
            (FinishReason::Stop, "end_turn"),
            (FinishReason::Length, "max_tokens"),
            (FinishReason::ToolCalls, "tool_use"),
            (FinishReason::ContentFilter, "refusal"),
            (FinishReason::Incomplete, "pause_turn"),
        ];
        for (reason, wire) in reasons {
            assert_eq!(AnthropicWire::response(&answer("x", Vec::new(), reason))["stop_reason"], wire);
        }
        let mut r = answer("", Vec::new(), FinishReason::ContentFilter);
        r.response.request_id = None;
        r.response.refusal = Some("I can't help with that.".into());
        let body = AnthropicWire::response(&r);
        assert_eq!(body["content"], json!([{"type": "text", "text": "I can't help with that."}]));
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("msg_") && id.len() > 20, "{id}");
        assert_ne!(body["id"], AnthropicWire::response(&r)["id"]);
    }

    #[test]
    fn error_body_names_class_route_and_attempts() {
        assert_eq!(
            AnthropicWire::error(&failure(ErrorClass::Overloaded, "Overloaded")),
            json!({
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
                "switchyard": {
                    "class": "overloaded",
                    "route": "chat",
                    "provider": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "attempts": [{"provider": "anthropic", "model": "claude-sonnet-4-5", "outcome": "error",
                        "class": "overloaded", "status": 529, "elapsed_ms": 80}]
                }
            })
        );
    }

    #[test]
    fn error_types_follow_anthropic() {
        let expected = [
            (ErrorClass::RateLimited, "rate_limit_error"),
            (ErrorClass::QuotaExhausted, "billing_error"),
            (ErrorClass::Overloaded, "overloaded_error"),
            (ErrorClass::ServerError, "api_error"),
            (ErrorClass::Connection, "api_error"),
            (ErrorClass::MalformedResponse, "api_error"),
            (ErrorClass::StreamInterrupted, "api_error"),
            (ErrorClass::Timeout, "timeout_error"),
            (ErrorClass::Authentication, "authentication_error"),
            (ErrorClass::PermissionDenied, "permission_error"),
            (ErrorClass::NotFound, "not_found_error"),
            (ErrorClass::RequestTooLarge, "request_too_large"),
            (ErrorClass::InvalidRequest, "invalid_request_error"),
            (ErrorClass::ContextLengthExceeded, "invalid_request_error"),
            (ErrorClass::ContentFiltered, "invalid_request_error"),
            (ErrorClass::BudgetExhausted, "rate_limit_error"),
        ];
        assert_eq!(expected.len(), ErrorClass::ALL.len());
        for (class, kind) in expected {
            let body = AnthropicWire::error(&failure(class, "x"));
            assert_eq!(body["error"]["type"], kind, "{class}");
            assert_eq!(body["switchyard"]["class"], class.as_str());
        }
    }

    // ---- streams ----

    fn text_stream() -> Vec<StreamEvent> {
        vec![
            StreamEvent::TextDelta { text: "Hel".into() },
            StreamEvent::TextDelta { text: "lo!".into() },
            StreamEvent::Usage(Usage {
                input_tokens: 12,
                output_tokens: 3,
                cached_input_tokens: None,
                ..Usage::default()
            }),
            StreamEvent::Finish { reason: FinishReason::Stop },
        ]
    }

    fn tool_stream() -> Vec<StreamEvent> {
        let piece = |index, id: Option<&str>, name: Option<&str>, arguments: &str| StreamEvent::ToolCallDelta {
            index,
            id: id.map(str::to_owned),
            name: name.map(str::to_owned),
            arguments: arguments.to_owned(),
        };
        vec![
            StreamEvent::TextDelta { text: "Checking.".into() },
            piece(0, Some("call_1"), Some("get_weather"), ""),
            piece(0, None, None, "{\"city\":"),
            piece(0, None, None, "\"Paris\"}"),
            piece(1, Some("call_2"), Some("now"), "{}"),
            StreamEvent::Usage(Usage {
                input_tokens: 30,
                output_tokens: 12,
                cached_input_tokens: None,
                ..Usage::default()
            }),
            StreamEvent::Finish { reason: FinishReason::ToolCalls },
        ]
    }

    #[test]
    fn text_stream_is_byte_for_byte_anthropic() {
        let expected = concat!(
            "event: message_start\n",
            r#"data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"gpt-4o","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}"#,
            "\n\n",
            "event: content_block_start\n",
            r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            "\n\n",
            "event: ping\n",
            r#"data: {"type":"ping"}"#,
            "\n\n",
            "event: content_block_delta\n",
            r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#,
            "\n\n",
            "event: content_block_delta\n",
            r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo!"}}"#,
            "\n\n",
            "event: content_block_stop\n",
            r#"data: {"type":"content_block_stop","index":0}"#,
            "\n\n",
            "event: message_delta\n",
            r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":12,"output_tokens":3}}"#,
            "\n\n",
            "event: message_stop\n",
            r#"data: {"type":"message_stop"}"#,
            "\n\n",
        );
        assert_eq!(encode(&text_stream()), expected);
    }

    #[test]
    fn tool_call_stream_closes_text_and_opens_one_block_per_call() {
        let events = events_of(&encode(&tool_stream()));
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert_eq!(events[4].1, json!({"type": "content_block_stop", "index": 0}));
        assert_eq!(
            events[5].1,
            json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}})
        );
        assert_eq!(
            events[6].1,
            json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})
        );
        assert_eq!(events[8].1, json!({"type": "content_block_stop", "index": 1}));
        assert_eq!(events[9].1["index"], 2);
        assert_eq!(events[9].1["content_block"]["id"], "call_2");
        assert_eq!(events[10].1["delta"]["partial_json"], "{}");
        assert_eq!(events[11].1, json!({"type": "content_block_stop", "index": 2}));
        assert_eq!(
            events[12].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"input_tokens": 30, "output_tokens": 12}})
        );
    }

    #[test]
    fn text_after_a_tool_call_opens_a_new_text_block_and_unknown_usage_is_zero() {
        let events = events_of(&encode(&[
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("c".into()),
                name: Some("f".into()),
                arguments: "{}".into(),
            },
            StreamEvent::TextDelta { text: "done".into() },
            StreamEvent::Finish { reason: FinishReason::Stop },
        ]));
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[5].1["content_block"], json!({"type": "text", "text": ""}));
        assert_eq!(events[5].1["index"], 1);
        assert_eq!(events[8].1["usage"], json!({"output_tokens": 0}));
    }

    #[test]
    fn finish_without_content_has_no_block_events() {
        let events = events_of(&encode(&[StreamEvent::Finish { reason: FinishReason::Length }]));
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
        assert_eq!(events[1].1["delta"]["stop_reason"], "max_tokens");
    }

    #[test]
    fn error_after_tokens_closes_nothing_and_has_no_message_stop() {
        let mut e = AnthropicEncoder::new("msg_1".into(), "gpt-4o");
        let mut out = e.0.start();
        out.extend(e.event(&StreamEvent::TextDelta { text: "Hel".into() }));
        let err = e.error(&failure(ErrorClass::Overloaded, "Overloaded"));
        assert_eq!(err.len(), 1);
        assert_eq!(
            text(&err),
            format!("event: error\ndata: {}\n\n", AnthropicWire::error(&failure(ErrorClass::Overloaded, "Overloaded")))
        );
        assert!(e.event(&StreamEvent::Finish { reason: FinishReason::Stop }).is_empty());
        assert!(e.error(&failure(ErrorClass::ServerError, "x")).is_empty());
        let names: Vec<String> = events_of(&(text(&out) + &text(&err))).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["message_start", "content_block_start", "ping", "content_block_delta", "error"]);
    }

    #[test]
    fn encoder_from_the_dialect_uses_the_served_model() {
        let parsed =
            parse(r#"{"model":"chat","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"stream":true}"#)
                .unwrap();
        let mut e = AnthropicWire::encoder(parsed.include_usage, "openai", "gpt-4o");
        let events = events_of(&text(&e.0.start()));
        assert_eq!(events[0].1["message"]["model"], "gpt-4o");
        assert!(events[0].1["message"]["id"].as_str().unwrap().starts_with("msg_"));
        assert!(e.0.start().is_empty());
    }

    // ---- round trips through the project's own Anthropic adapter ----

    fn adapter(base: String) -> Anthropic {
        Anthropic::new(ProviderConfig::new("gateway", base)).unwrap()
    }

    #[tokio::test]
    async fn the_anthropic_adapter_reads_our_streams_back() {
        for events in [text_stream(), tool_stream()] {
            let base = serve("/v1/messages", 200, "text/event-stream", encode(&events)).await;
            let req = ChatRequest::user("hi");
            let stream = adapter(base).chat_stream(Call::new("chat", &req)).await.unwrap();
            let got: Vec<StreamEvent> =
                futures::StreamExt::collect::<Vec<_>>(stream).await.into_iter().collect::<Result<_, _>>().unwrap();
            let mut sent = StreamCollector::new();
            let mut read = StreamCollector::new();
            events.iter().for_each(|e| sent.push(e));
            // the upstream's envelope (its id) is not what this compares
            got.iter().filter(|e| !matches!(e, StreamEvent::Envelope { .. })).for_each(|e| read.push(e));
            assert_eq!(read.finish("p", "m", None), sent.finish("p", "m", None));
        }
    }

    #[tokio::test]
    async fn the_anthropic_adapter_reads_our_responses_and_classifies_our_errors() {
        let calls = vec![call("toolu_1", "f", r#"{"a":1}"#)];
        let r = answer("Hi", calls.clone(), FinishReason::ToolCalls);
        let base = serve("/v1/messages", 200, "application/json", AnthropicWire::response(&r).to_string()).await;
        let req = ChatRequest::user("hi");
        let got = adapter(base).chat(Call::new("chat", &req)).await.unwrap();
        assert_eq!((got.model.as_str(), got.text.as_str()), ("gpt-4o", "Hi"));
        assert_eq!((got.tool_calls, got.finish_reason, got.usage), (calls, FinishReason::ToolCalls, r.response.usage));

        let statuses = [
            (ErrorClass::RateLimited, 429, "Rate limited"),
            (ErrorClass::QuotaExhausted, 402, "Your credit balance is too low"),
            (ErrorClass::Overloaded, 529, "Overloaded"),
            (ErrorClass::ServerError, 500, "Internal server error"),
            (ErrorClass::Timeout, 504, "Request timed out"),
            (ErrorClass::Authentication, 401, "invalid x-api-key"),
            (ErrorClass::PermissionDenied, 403, "not allowed"),
            (ErrorClass::NotFound, 404, "model: x"),
            (ErrorClass::RequestTooLarge, 413, "Request exceeds the maximum size"),
            (ErrorClass::InvalidRequest, 400, "messages: field required"),
            (ErrorClass::ContextLengthExceeded, 400, "prompt is too long: 210266 tokens > 200000 maximum"),
        ];
        for (class, status, message) in statuses {
            let body = AnthropicWire::error(&failure(class, message)).to_string();
            let base = serve("/v1/messages", status, "application/json", body).await;
            let err = adapter(base).chat(Call::new("chat", &req)).await.unwrap_err();
            assert_eq!(err.class(), class, "{status}: {err}");
        }
    }

    #[tokio::test]
    async fn the_anthropic_adapter_sees_our_in_stream_error_with_the_partial_text() {
        let mut e = AnthropicEncoder::new("msg_1".into(), "gpt-4o");
        let mut out = e.0.start();
        out.extend(e.event(&StreamEvent::TextDelta { text: "Hel".into() }));
        out.extend(e.error(&failure(ErrorClass::Overloaded, "Overloaded")));
        let base = serve("/v1/messages", 200, "text/event-stream", text(&out)).await;
        let req = ChatRequest::user("hi");
        let items: Vec<_> =
            futures::StreamExt::collect(adapter(base).chat_stream(Call::new("chat", &req)).await.unwrap()).await;
        let err = items.into_iter().find_map(Result::err).unwrap();
        assert_eq!(err.class(), ErrorClass::Overloaded);
        assert_eq!(err.partial().map(|p| p.text.as_str()), Some("Hel"));
    }
}
