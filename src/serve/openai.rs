//! The OpenAI Chat Completions wire as the gateway speaks it to its clients: requests, answers,
//! errors and streams are the wire's ([`crate::wire::openai_chat`]); the gateway adds the answer
//! ids, the time, and its `switchyard` member on errors. Also home to the ids and error extension
//! every dialect shares.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};

use super::dialect::{Dialect, Encoder, Failure, Parsed};
use crate::chat::StreamEvent;
use crate::router::RoutedResponse;
use crate::wire::openai_chat::{error, response, stream::Writer};

/// OpenAI Chat Completions (`POST /v1/chat/completions`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenAiWire;

impl Dialect for OpenAiWire {
    type Encoder = OpenAiEncoder;

    fn parse(body: Bytes) -> Result<Parsed, String> {
        crate::wire::openai_chat::decode_request(body)
    }

    fn response(r: &RoutedResponse) -> Value {
        response_body(r, unix_now())
    }

    fn error(f: &Failure) -> Value {
        let kind = error::for_class(f.class);
        let mut body = error::envelope(&f.message, kind.kind, None, kind.code);
        body["error"]["switchyard"] = switchyard_extension(f);
        body
    }

    fn encoder(include_usage: bool, _provider: &str, model: &str) -> OpenAiEncoder {
        OpenAiEncoder::new(format!("chatcmpl-{}", fresh_id()), unix_now(), model, include_usage)
    }
}

// ---------------------------------------------------------------------------------------------
// Shared by both dialects
// ---------------------------------------------------------------------------------------------

/// The `switchyard` member both dialects add to their error bodies.
pub(super) fn switchyard_extension(f: &Failure) -> Value {
    let mut extension = json!({
        "class": f.class,
        "route": f.route,
        "provider": f.provider,
        "model": f.model,
        "attempts": f.attempts,
    });
    if f.mid_stream {
        // only in-stream errors have a stream to be in the middle of
        extension["mid_stream"] = json!(true);
    }
    if !f.provider_incidents.is_empty() {
        extension["provider_incidents"] = json!(f.provider_incidents);
    }
    extension
}

/// A unique id for an answer whose upstream gave none (24 hex digits).
pub(super) fn fresh_id() -> String {
    format!("{:016x}{:08x}", rand::random::<u64>(), rand::random::<u32>())
}

/// The answer's id: `prefix` + the upstream request id (unless it already has the prefix), or a
/// fresh id.
pub(crate) fn answer_id(prefix: &str, request_id: Option<&str>) -> String {
    match request_id {
        Some(id) if id.starts_with(prefix) => id.to_owned(),
        Some(id) if !id.is_empty() => format!("{prefix}{id}"),
        _ => format!("{prefix}{}", fresh_id()),
    }
}

/// Seconds since the epoch (0 on a clock before 1970 rather than a failure).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The `chat.completion` body of a routed answer, made at `created`.
fn response_body(r: &RoutedResponse, created: u64) -> Value {
    let id = answer_id("chatcmpl-", r.response.request_id.as_deref());
    response::encode_response(&r.response, &id, created, response::Details::Known)
}

/// A streamed answer as `chat.completion.chunk` events.
#[derive(Debug)]
pub(crate) struct OpenAiEncoder(Writer);

impl OpenAiEncoder {
    fn new(id: String, created: u64, model: &str, include_usage: bool) -> Self {
        OpenAiEncoder(Writer::new(id, created, model, include_usage, response::Details::Known))
    }
}

impl Encoder for OpenAiEncoder {
    fn event(&mut self, event: &StreamEvent) -> Vec<Bytes> {
        self.0.event(event)
    }

    fn error(&mut self, failure: &Failure) -> Vec<Bytes> {
        self.0.fail(&OpenAiWire::error(failure))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(super) mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    #[allow(unused_imports)]
    use crate::chat::{ChatRequest, ContentPart, Message, Role, Tool, ToolCall, ToolChoice, ToolResult};
    use crate::chat::{ChatResponse, FinishReason, StreamCollector, Usage};
    use crate::error::ErrorClass;
    use crate::provider::{Call, OpenAi, Provider, ProviderConfig};
    use crate::router::{Attempt, AttemptOutcome};
    use crate::wire::openai_chat::response::finish_reason;

    fn parse(body: &str) -> Result<Parsed, String> {
        OpenAiWire::parse(Bytes::copy_from_slice(body.as_bytes()))
    }

    fn answer(text: &str, tool_calls: Vec<ToolCall>, finish_reason: FinishReason) -> RoutedResponse {
        RoutedResponse {
            route: "chat".into(),
            response: ChatResponse {
                tool_calls,
                usage: Usage::new(9, 2),
                request_id: Some("req_42".into()),
                ..ChatResponse::new("anthropic", "claude-sonnet-4-5", text, finish_reason)
            },
            attempts: Vec::new(),
            dropped: Vec::new(),
        }
    }

    fn attempt(provider: &str, model: &str, class: Option<ErrorClass>, status: Option<u16>) -> Attempt {
        Attempt {
            provider: provider.into(),
            model: model.into(),
            outcome: if class.is_some() { AttemptOutcome::Error } else { AttemptOutcome::Ok },
            class,
            status,
            elapsed: Duration::from_millis(120),
            skip_reason: None,
            probe: false,
            hedge: false,
            output_tokens: None,
            cost_usd: None,
        }
    }

    fn failure(class: ErrorClass) -> Failure {
        Failure {
            class,
            message: "Rate limit reached. Please try again in 644ms.".into(),
            route: Some("chat".into()),
            provider: Some("openai".into()),
            model: Some("gpt-4o".into()),
            attempts: vec![attempt("openai", "gpt-4o", Some(class), Some(429))],
            mid_stream: false,
            provider_incidents: Vec::new(),
        }
    }

    fn text(bytes: &[Bytes]) -> String {
        bytes.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
    }

    fn encode(include_usage: bool, events: &[StreamEvent]) -> String {
        let mut e = OpenAiEncoder::new("chatcmpl-1".into(), 1_730_000_000, "gpt-4o-mini", include_usage);
        let mut out = Vec::new();
        for ev in events {
            out.extend(e.event(ev));
        }
        text(&out)
    }

    // ---- parsing ----

    #[test]
    fn parses_a_python_sdk_streaming_request() {
        let p = parse(
            r#"{
              "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hello"}
              ],
              "model": "chat",
              "max_completion_tokens": 256,
              "n": 1,
              "seed": 7,
              "user": "u-1",
              "logprobs": null,
              "stop": "END",
              "stream": true,
              "stream_options": {"include_usage": true},
              "temperature": 0.5
            }"#,
        )
        .unwrap();
        assert_eq!(p.route, "chat");
        assert!(p.stream);
        assert!(p.include_usage);
        let mut expected =
            ChatRequest::user("Hello").system("You are terse.").max_tokens(256).temperature(0.5).stop("END");
        expected.n = Some(1);
        expected.seed = Some(7);
        expected.user = Some("u-1".into());
        expected.dialect = Some(crate::provider::Protocol::Openai);
        assert_eq!(p.request, expected);
    }

    #[test]
    fn parses_a_tool_conversation() {
        let p = parse(
            r#"{
              "model": "agents",
              "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                {"role": "user", "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": "Paris?"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                  {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
                {"role": "assistant", "content": "", "tool_calls": [
                  {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]}
              ],
              "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                  "strict": true}},
                {"type": "function", "function": {"name": "now"}}
              ],
              "tool_choice": "required",
              "parallel_tool_calls": false
            }"#,
        )
        .unwrap();
        let r = &p.request;
        assert!(!p.stream && !p.include_usage);
        assert_eq!(r.messages.len(), 6);
        assert_eq!(r.messages[0], Message::text(Role::Developer, "Use tools."));
        assert_eq!(r.messages[1].role, Role::User);
        assert_eq!(r.messages[1].text_content(), "Weather in Paris?");
        let call =
            |id: &str, name: &str, args: &str| ToolCall { id: id.into(), name: name.into(), arguments: args.into() };
        assert_eq!(r.messages[2], Message::tool_calls([call("call_1", "get_weather", r#"{"city":"Paris"}"#)]));
        assert_eq!(r.messages[3], Message::tool_result("call_1", "18C, sunny"));
        // the empty content beside tool calls is dropped
        assert_eq!(r.messages[4], Message::tool_calls([call("call_2", "now", "")]));
        assert_eq!(r.messages[5], Message::tool_result("call_2", "noon"));
        assert_eq!(r.tools.len(), 2);
        assert_eq!(r.tools[0].name, "get_weather");
        assert_eq!(r.tools[0].description.as_deref(), Some("Weather by city"));
        assert_eq!(r.tools[0].parameters["required"], json!(["city"]));
        assert_eq!(r.tools[1].parameters, json!({"type": "object", "properties": {}}));
        assert_eq!(r.tool_choice, Some(ToolChoice::Required));
        assert_eq!(r.tools[0].strict, Some(true));
        assert_eq!(r.parallel_tool_calls, Some(false));
        assert!(r.extra.is_empty(), "{:?}", r.extra);
    }

    #[test]
    fn stop_may_be_a_string_or_an_array_and_max_completion_tokens_wins() {
        let base = r#""model":"m","messages":[{"role":"user","content":"hi"}]"#;
        let p = parse(&format!(r#"{{{base},"stop":["a","b"],"max_tokens":10,"max_completion_tokens":20}}"#)).unwrap();
        assert_eq!(p.request.stop, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(p.request.max_tokens, Some(20));
        let p = parse(&format!(r#"{{{base},"stop":"x","max_tokens":10}}"#)).unwrap();
        assert_eq!(p.request.stop, vec!["x".to_owned()]);
        assert_eq!(p.request.max_tokens, Some(10));
        let p = parse(&format!(r#"{{{base},"stop":null,"stream":null,"tools":null,"n":null}}"#)).unwrap();
        assert!(p.request.stop.is_empty() && p.request.tools.is_empty() && !p.stream);
    }

    #[test]
    fn parses_every_tool_choice() {
        let choice = |c: &str| {
            parse(&format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"tool_choice":{c}}}"#))
                .map(|p| p.request.tool_choice)
        };
        assert_eq!(choice(r#""none""#), Ok(Some(ToolChoice::None)));
        assert_eq!(choice(r#""auto""#), Ok(Some(ToolChoice::Auto)));
        assert_eq!(choice(r#""required""#), Ok(Some(ToolChoice::Required)));
        assert_eq!(choice(r#"{"type":"function","function":{"name":"f"}}"#), Ok(Some(ToolChoice::Tool("f".into()))));
        // choices of next month's: carried for an OpenAI target, named for any other
        for (c, name) in
            [(r#""sometimes""#, "tool_choice sometimes"), (r#"{"type":"allowed_tools"}"#, "tool_choice allowed_tools")]
        {
            let p =
                parse(&format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"tool_choice":{c}}}"#))
                    .unwrap();
            assert_eq!((p.request.tool_choice, p.request.opaque[0].field.as_str()), (None, name));
        }
        assert!(choice(r#"{"type":"function","function":{}}"#).unwrap_err().contains("`tool_choice.function.name`"));
        assert!(choice("3").unwrap_err().contains("`tool_choice`"));
    }

    #[test]
    fn roles_tools_and_calls_of_next_month_are_carried_opaque_by_name() {
        let p = parse(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"function","content":"x"},
                {"role":"assistant","tool_calls":[{"id":"c1","type":"custom","custom":{"name":"g","input":"x"}},
                                                  {"id":"c2","type":"function","function":{"name":"f","arguments":"{}"}}]}],
                "tools":[{"type":"custom","custom":{"name":"g"}},{"type":"function","function":{"name":"f"},"defer_loading":true}],
                "response_format":{"type":"grammar"}}"#,
        )
        .unwrap();
        let opaque: Vec<(&str, &str, bool)> =
            p.request.opaque.iter().map(|o| (o.field.as_str(), o.path.as_str(), o.harmless)).collect();
        assert_eq!(
            opaque,
            [
                ("response_format grammar", "response_format.type", false),
                ("custom tool", "tools[0]", false),
                ("defer_loading", "tools[1].defer_loading", true),
                ("function role", "messages[1].role", false),
                ("custom tool call", "messages[2].tool_calls[0]", false),
            ]
        );
        assert_eq!(p.request.tools.len(), 1);
        assert_eq!(p.request.messages.len(), 2);
    }

    #[test]
    fn malformed_requests_are_refused_naming_the_field() {
        let user = r#"[{"role":"user","content":"hi"}]"#;
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "not valid JSON"),
            ("".into(), "not valid JSON"),
            ("[1,2]".into(), "must be a JSON object"),
            (format!(r#"{{"messages":{user}}}"#), "`model`"),
            (format!(r#"{{"model":7,"messages":{user}}}"#), "`model`"),
            (format!(r#"{{"model":"","messages":{user}}}"#), "`model`"),
            (r#"{"model":"m"}"#.into(), "`messages`"),
            (r#"{"model":"m","messages":[]}"#.into(), "`messages`"),
            (r#"{"model":"m","messages":"hi"}"#.into(), "`messages`"),
            (r#"{"model":"m","messages":[7]}"#.into(), "`messages[0]`"),
            (r#"{"model":"m","messages":[{"content":"hi"}]}"#.into(), "`messages[0].role`"),
            (r#"{"model":"m","messages":[{"role":"user"}]}"#.into(), "`messages[0].content`"),
            (r#"{"model":"m","messages":[{"role":"user","content":5}]}"#.into(), "`messages[0].content`"),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"detail":"x"}}]}]}"#
                    .into(),
                "`messages[0].content[0].image_url.url`",
            ),
            (r#"{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}"#.into(), "`messages[0].content[0].type`"),
            (r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#.into(), "`messages[0].content[0].text`"),
            (r#"{"model":"m","messages":[{"role":"assistant"}]}"#.into(), "`messages[0]`"),
            (
                r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]}"#
                    .into(),
                "`messages[0].tool_calls[0].id`",
            ),
            (
                r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":{}}}]}]}"#
                    .into(),
                "`messages[0].tool_calls[0].function.arguments`",
            ),
            (r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#.into(), "`messages[0].tool_call_id`"),
            (format!(r#"{{"model":"m","messages":{user},"n":"2"}}"#), "`n`"),
            (format!(r#"{{"model":"m","messages":{user},"max_tokens":-1}}"#), "`max_tokens`"),
            (format!(r#"{{"model":"m","messages":{user},"max_completion_tokens":1e12}}"#), "`max_completion_tokens`"),
            (format!(r#"{{"model":"m","messages":{user},"max_tokens":5000000000}}"#), "`max_tokens`"),
            (format!(r#"{{"model":"m","messages":{user},"temperature":"hot"}}"#), "`temperature`"),
            (format!(r#"{{"model":"m","messages":{user},"stop":[1]}}"#), "`stop`"),
            (format!(r#"{{"model":"m","messages":{user},"stop":true}}"#), "`stop`"),
            (format!(r#"{{"model":"m","messages":{user},"stream":"yes"}}"#), "`stream`"),
            (format!(r#"{{"model":"m","messages":{user},"stream_options":[]}}"#), "`stream_options`"),
            (format!(r#"{{"model":"m","messages":{user},"stream_options":{{"include_usage":1}}}}"#), "`stream_options.include_usage`"),
            (format!(r#"{{"model":"m","messages":{user},"tools":{{}}}}"#), "`tools`"),
            (format!(r#"{{"model":"m","messages":{user},"tools":[{{"type":"function"}}]}}"#), "`tools[0].function`"),
            (
                format!(r#"{{"model":"m","messages":{user},"tools":[{{"type":"function","function":{{"name":"f","parameters":"x"}}}}]}}"#),
                "`tools[0].function.parameters`",
            ),
        ];
        for (body, field) in cases {
            let err = parse(&body).expect_err(&body);
            assert!(err.contains(field), "{body}: {err:?} does not name {field}");
        }
    }

    /// Arbitrary JSON whose object keys are mostly the fields the parser looks at.
    fn arb_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("model"),
            Just("messages"),
            Just("role"),
            Just("content"),
            Just("type"),
            Just("text"),
            Just("tool_calls"),
            Just("function"),
            Just("name"),
            Just("arguments"),
            Just("id"),
            Just("tool_call_id"),
            Just("tools"),
            Just("parameters"),
            Just("tool_choice"),
            Just("stop"),
            Just("n"),
            Just("stream"),
            Just("stream_options"),
            Just("include_usage"),
            Just("max_tokens"),
            Just("temperature"),
            Just("system"),
            Just("input"),
            Just("tool_use_id"),
            Just("input_schema"),
            Just("stop_sequences"),
            Just("is_error"),
            Just("refusal"),
            Just("x"),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
            prop_oneof![
                Just("user"),
                Just("assistant"),
                Just("system"),
                Just("tool"),
                Just("text"),
                Just("function"),
                Just("tool_use"),
                Just("tool_result"),
                Just("auto"),
                Just("any"),
                Just("")
            ]
            .prop_map(|s| json!(s)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = OpenAiWire::parse(Bytes::from(bytes.clone()));
            let _ = crate::serve::anthropic::AnthropicWire::parse(Bytes::from(bytes.clone()));
        }

        #[test]
        fn random_json_never_panics(value in arb_json(), messages in arb_json()) {
            let bytes = value.to_string().into_bytes();
            let _ = OpenAiWire::parse(Bytes::from(bytes.clone()));
            let _ = crate::serve::anthropic::AnthropicWire::parse(Bytes::from(bytes.clone()));
            // deep junk in the places the parsers walk furthest
            let body = json!({"model": "m", "messages": [messages.clone()], "tools": [messages.clone()],
                "system": [messages.clone()], "tool_choice": messages}).to_string().into_bytes();
            let _ = OpenAiWire::parse(Bytes::from(body.clone()));
            let _ = crate::serve::anthropic::AnthropicWire::parse(Bytes::from(body.clone()));
        }
    }

    // ---- responses and errors ----

    #[test]
    fn text_answer_is_a_chat_completion() {
        let body = response_body(&answer("Hello!", Vec::new(), FinishReason::Stop), 1_730_000_000);
        assert_eq!(
            body,
            json!({
                "id": "chatcmpl-req_42",
                "object": "chat.completion",
                "created": 1_730_000_000,
                "model": "claude-sonnet-4-5",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello!", "refusal": null},
                    "logprobs": null,
                    "finish_reason": "stop"
                }],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
            })
        );
    }

    #[test]
    fn tool_call_answer_has_null_content() {
        let call =
            ToolCall { id: "toolu_1".into(), name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() };
        let mut r = answer("", vec![call], FinishReason::ToolCalls);
        r.response.usage.cached_input_tokens = Some(4);
        r.response.request_id = Some("chatcmpl-abc".into());
        let body = response_body(&r, 5);
        assert_eq!(
            body,
            json!({
                "id": "chatcmpl-abc",
                "object": "chat.completion",
                "created": 5,
                "model": "claude-sonnet-4-5",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": null,
                        "tool_calls": [{"id": "toolu_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
                        "refusal": null
                    },
                    "logprobs": null,
                    "finish_reason": "tool_calls"
                }],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
                    "prompt_tokens_details": {"cached_tokens": 4}}
            })
        );
    }

    #[test]
    fn response_ids_are_fresh_without_an_upstream_id_and_finish_reasons_map() {
        let mut r = answer("x", Vec::new(), FinishReason::Incomplete);
        r.response.request_id = None;
        let a = OpenAiWire::response(&r);
        let b = OpenAiWire::response(&r);
        let id = a["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-") && id.len() > "chatcmpl-".len() + 16, "{id}");
        assert_ne!(a["id"], b["id"]);
        assert!(a["created"].as_u64().unwrap() > 1_700_000_000);
        assert_eq!(a["choices"][0]["finish_reason"], "length");
        let reasons = [
            (FinishReason::Stop, "stop"),
            (FinishReason::Length, "length"),
            (FinishReason::ToolCalls, "tool_calls"),
            (FinishReason::ContentFilter, "content_filter"),
            (FinishReason::Incomplete, "length"),
        ];
        for (reason, wire) in reasons {
            assert_eq!(finish_reason(reason), wire);
        }
    }

    #[test]
    fn refusal_is_carried_with_null_content() {
        let mut r = answer("", Vec::new(), FinishReason::ContentFilter);
        r.response.refusal = Some("I can't help with that.".into());
        let body = response_body(&r, 0);
        assert_eq!(
            body["choices"][0]["message"],
            json!({"role": "assistant", "content": null, "refusal": "I can't help with that."})
        );
        assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    }

    #[test]
    fn error_body_names_class_route_and_attempts() {
        let f = Failure {
            attempts: vec![
                attempt("openai", "gpt-4o", Some(ErrorClass::RateLimited), Some(429)),
                attempt("anthropic", "claude-sonnet-4-5", Some(ErrorClass::RateLimited), Some(429)),
            ],
            ..failure(ErrorClass::RateLimited)
        };
        assert_eq!(
            OpenAiWire::error(&f),
            json!({"error": {
                "message": "Rate limit reached. Please try again in 644ms.",
                "type": "requests",
                "param": null,
                "code": "rate_limit_exceeded",
                "switchyard": {
                    "class": "rate_limited",
                    "route": "chat",
                    "provider": "openai",
                    "model": "gpt-4o",
                    "attempts": [
                        {"provider": "openai", "model": "gpt-4o", "outcome": "error", "class": "rate_limited",
                            "status": 429, "elapsed_ms": 120},
                        {"provider": "anthropic", "model": "claude-sonnet-4-5", "outcome": "error",
                            "class": "rate_limited", "status": 429, "elapsed_ms": 120}
                    ]
                }
            }})
        );
    }

    #[test]
    fn error_types_and_codes_follow_openai() {
        let expected = [
            (ErrorClass::RateLimited, "requests", json!("rate_limit_exceeded")),
            (ErrorClass::QuotaExhausted, "insufficient_quota", json!("insufficient_quota")),
            (ErrorClass::InvalidRequest, "invalid_request_error", Value::Null),
            (ErrorClass::ContextLengthExceeded, "invalid_request_error", json!("context_length_exceeded")),
            (ErrorClass::ContentFiltered, "invalid_request_error", json!("content_policy_violation")),
            // as OpenAI itself answers a bad key
            (ErrorClass::Authentication, "invalid_request_error", json!("invalid_api_key")),
            (ErrorClass::NotFound, "invalid_request_error", json!("model_not_found")),
            (ErrorClass::Overloaded, "server_error", json!("overloaded")),
            (ErrorClass::ServerError, "server_error", Value::Null),
            (ErrorClass::Timeout, "server_error", Value::Null),
            (ErrorClass::StreamInterrupted, "server_error", Value::Null),
        ];
        for (class, kind, code) in expected {
            let body = OpenAiWire::error(&Failure { route: None, provider: None, model: None, ..failure(class) });
            assert_eq!(body["error"]["type"], kind, "{class}");
            assert_eq!(body["error"]["code"], code, "{class}");
            assert_eq!(body["error"]["switchyard"]["class"], class.as_str());
            assert_eq!(body["error"]["switchyard"]["route"], Value::Null);
        }
    }

    // ---- streams ----

    fn text_stream() -> Vec<StreamEvent> {
        vec![
            StreamEvent::TextDelta { text: "Hello!".into() },
            StreamEvent::Usage(Usage {
                input_tokens: 9,
                output_tokens: 2,
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
    fn text_stream_is_byte_for_byte_openai() {
        let expected = concat!(
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            "\n\n",
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello!"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            "\n\n",
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
            "\n\n",
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
            "\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(encode(true, &text_stream()), expected);
    }

    #[test]
    fn without_include_usage_there_is_no_usage_at_all() {
        let expected = concat!(
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}"#,
            "\n\n",
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello!"},"logprobs":null,"finish_reason":null}]}"#,
            "\n\n",
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#,
            "\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(encode(false, &text_stream()), expected);
    }

    #[test]
    fn tool_call_stream_opens_with_the_first_call_and_sends_id_type_and_name_first() {
        let out = encode(false, &tool_stream());
        let deltas: Vec<Value> = out
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<Value>(d).unwrap()["choices"][0].clone())
            .collect();
        assert_eq!(
            deltas,
            vec![
                // as OpenAI opens a turn that starts with a call: the role and the call's start together
                json!({"index": 0, "delta": {"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                    "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}],
                    "refusal": null}, "logprobs": null, "finish_reason": null}),
                json!({"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]},
                    "logprobs": null, "finish_reason": null}),
                json!({"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]},
                    "logprobs": null, "finish_reason": null}),
                json!({"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                    "function": {"name": "now", "arguments": "{}"}}]}, "logprobs": null, "finish_reason": null}),
                json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": "tool_calls"}),
            ]
        );
        assert!(out.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn usage_chunk_comes_even_when_no_usage_was_reported() {
        let out = encode(true, &[StreamEvent::Finish { reason: FinishReason::Length }]);
        assert!(out.contains(r#""choices":[],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}"#));
        assert!(out.contains(r#""finish_reason":"length""#));
    }

    #[test]
    fn error_after_tokens_has_no_terminator_and_ends_the_stream() {
        let mut e = OpenAiEncoder::new("chatcmpl-1".into(), 1, "gpt-4o-mini", true);
        let out = e.event(&StreamEvent::TextDelta { text: "Hel".into() });
        let err = e.error(&failure(ErrorClass::StreamInterrupted));
        assert_eq!(err.len(), 1);
        let err_text = text(&err);
        let expected = format!("data: {}\n\n", OpenAiWire::error(&failure(ErrorClass::StreamInterrupted)));
        assert_eq!(err_text, expected);
        assert!(err_text.starts_with(r#"data: {"error":{"message":"#));
        // nothing after an error, not even a Finish
        assert!(e.event(&StreamEvent::Finish { reason: FinishReason::Stop }).is_empty());
        assert!(e.error(&failure(ErrorClass::ServerError)).is_empty());
        let all = text(&out) + &err_text;
        assert!(!all.contains("[DONE]"));
        assert!(!all.contains("finish_reason\":\"stop"));
    }

    #[test]
    fn events_before_start_still_open_the_stream() {
        let mut e = OpenAiEncoder::new("chatcmpl-1".into(), 1, "m", false);
        let out = text(&e.event(&StreamEvent::TextDelta { text: "a".into() }));
        assert!(out.starts_with(r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant""#));
        assert!(e.event(&StreamEvent::TextDelta { text: String::new() }).is_empty());
        // what opens nothing: a usage, however early, is the usage chunk's
        let mut e = OpenAiEncoder::new("chatcmpl-1".into(), 1, "m", false);
        assert!(e.event(&StreamEvent::Usage(Usage::new(1, 1))).is_empty());
    }

    #[test]
    fn encoder_from_the_dialect_uses_the_served_model_and_a_fresh_id() {
        let parsed = parse(r#"{"model":"chat","messages":[{"role":"user","content":"hi"}],"stream":true}"#).unwrap();
        let mut e = OpenAiWire::encoder(parsed.include_usage, "anthropic", "claude-sonnet-4-5");
        let opening = e.event(&StreamEvent::TextDelta { text: String::new() });
        let first: Value = serde_json::from_str(text(&opening).trim().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(first["model"], "claude-sonnet-4-5");
        assert!(first["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert!(first.get("usage").is_none());
    }

    // ---- round trips through the project's own OpenAI adapter ----

    /// Serves `body` with `status` on `POST path`; returns the base URL. Shared with the Anthropic tests.
    pub(in crate::serve) async fn serve(
        path: &'static str,
        status: u16,
        content_type: &'static str,
        body: String,
    ) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = axum::http::StatusCode::from_u16(status).unwrap();
        let app = axum::Router::new().route(
            path,
            axum::routing::post(
                move || async move { (status, [(axum::http::header::CONTENT_TYPE, content_type)], body) },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn adapter(base: String) -> OpenAi {
        OpenAi::new(ProviderConfig::new("gateway", base)).unwrap()
    }

    #[tokio::test]
    async fn the_openai_adapter_reads_our_streams_back() {
        for (events, include_usage) in [(text_stream(), true), (tool_stream(), true), (text_stream(), false)] {
            let base = serve("/chat/completions", 200, "text/event-stream", encode(include_usage, &events)).await;
            let req = ChatRequest::user("hi");
            let stream = adapter(base).chat_stream(Call::new("chat", &req)).await.unwrap();
            let got: Vec<StreamEvent> =
                futures::StreamExt::collect::<Vec<_>>(stream).await.into_iter().collect::<Result<_, _>>().unwrap();
            let mut sent = StreamCollector::new();
            let mut read = StreamCollector::new();
            events.iter().filter(|e| include_usage || !matches!(e, StreamEvent::Usage(_))).for_each(|e| sent.push(e));
            // the upstream's envelope (its id) is not what this compares
            got.iter().filter(|e| !matches!(e, StreamEvent::Envelope { .. })).for_each(|e| read.push(e));
            assert_eq!(read.finish("p", "m", None), sent.finish("p", "m", None));
        }
    }

    #[tokio::test]
    async fn the_openai_adapter_reads_our_responses_and_classifies_our_errors() {
        let call = ToolCall { id: "call_1".into(), name: "f".into(), arguments: "{\"a\":1}".into() };
        let r = answer("Hi", vec![call.clone()], FinishReason::ToolCalls);
        let base = serve("/chat/completions", 200, "application/json", OpenAiWire::response(&r).to_string()).await;
        let req = ChatRequest::user("hi");
        let got = adapter(base).chat(Call::new("chat", &req)).await.unwrap();
        assert_eq!((got.model.as_str(), got.text.as_str()), ("claude-sonnet-4-5", "Hi"));
        assert_eq!(
            (got.tool_calls, got.finish_reason, got.usage),
            (vec![call], FinishReason::ToolCalls, r.response.usage)
        );

        let statuses = [
            (ErrorClass::RateLimited, 429),
            (ErrorClass::QuotaExhausted, 429),
            (ErrorClass::ContextLengthExceeded, 400),
            (ErrorClass::ContentFiltered, 400),
            (ErrorClass::InvalidRequest, 400),
            (ErrorClass::Authentication, 401),
            (ErrorClass::NotFound, 404),
            (ErrorClass::Overloaded, 503),
            (ErrorClass::ServerError, 500),
        ];
        for (class, status) in statuses {
            let body = OpenAiWire::error(&failure(class)).to_string();
            let base = serve("/chat/completions", status, "application/json", body).await;
            let err = adapter(base).chat(Call::new("chat", &req)).await.unwrap_err();
            assert_eq!(err.class(), class, "{status}: {err}");
        }
    }

    #[tokio::test]
    async fn the_openai_adapter_sees_our_in_stream_error_with_the_partial_text() {
        let mut e = OpenAiEncoder::new("chatcmpl-1".into(), 1, "m", true);
        let mut out = e.event(&StreamEvent::TextDelta { text: "Hel".into() });
        out.extend(e.error(&failure(ErrorClass::ServerError)));
        let base = serve("/chat/completions", 200, "text/event-stream", text(&out)).await;
        let req = ChatRequest::user("hi");
        let items: Vec<_> =
            futures::StreamExt::collect(adapter(base).chat_stream(Call::new("chat", &req)).await.unwrap()).await;
        let err = items.into_iter().find_map(Result::err).unwrap();
        assert_eq!(err.class(), ErrorClass::ServerError);
        assert_eq!(err.partial().map(|p| p.text.as_str()), Some("Hel"));
    }
}
