//! The Anthropic adapter end to end through reqwest, against a tiny in-test server that records
//! each request and answers with a canned response.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use support::recorder::{Canned, Recorder};
use switchyard::{
    Anthropic, ApiKey, Call, CallTimeouts, ChatRequest, ErrorClass, FinishReason, Provider, ProviderConfig,
    ProviderProfile, StreamCollector, StreamEvent, Usage,
};

const KEY: &str = "sk-ant-test-0123456789abcdef";

type Reply = Canned;

/// Starts a recording server; returns its base URL and the server, to read what it recorded.
async fn serve(reply: Reply) -> (String, Recorder) {
    let server = Recorder::start(reply).await;
    (server.base(), server)
}

/// The built-in anthropic profile pointed at `base_url`, with the test key.
fn config(base_url: &str) -> ProviderConfig {
    let mut config = ProviderConfig::from_profile(ProviderProfile::builtin("anthropic").unwrap());
    config.base_url = base_url.to_owned();
    config.api_key = Some(ApiKey::new(KEY));
    config
}

fn message_body() -> String {
    json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hi! How can I help?"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 8, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    })
    .to_string()
}

#[tokio::test]
async fn chat_posts_to_v1_messages_with_key_one_version_and_the_mapped_body() {
    let (base, seen) =
        serve(Reply::new(200, message_body()).header("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy")).await;
    // a trailing slash on the base URL must not double the slash in the path
    let adapter = Anthropic::new(config(&format!("{base}/"))).unwrap();
    let request = ChatRequest::user("Hello").system("Be brief").temperature(0.5);
    let response = adapter.chat(Call::new("claude-sonnet-4-5", &request)).await.unwrap();

    assert_eq!(response.text, "Hi! How can I help?");
    assert_eq!(response.provider, "anthropic");
    assert_eq!(response.model, "claude-sonnet-4-5-20250929");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage, Usage::new(10, 8).with_cached_input_tokens(0).with_cache_creation_input_tokens(0));
    assert_eq!(response.request_id.as_deref(), Some("req_011CSHoEeqs5C35K2UUqR7Fy"));

    let seen = seen.requests();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.headers.get("x-api-key").unwrap(), KEY);
    let versions: Vec<_> = req.headers.get_all("anthropic-version").iter().collect();
    assert_eq!(versions, vec!["2023-06-01"]);
    assert_eq!(req.headers.get_all("content-type").iter().collect::<Vec<_>>(), vec!["application/json"]);
    assert!(req.headers.get("authorization").is_none());
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 64000,
            "system": "Be brief",
            "messages": [{"role": "user", "content": "Hello"}],
            "temperature": 0.5,
        })
    );
}

#[tokio::test]
async fn without_a_profile_the_adapter_supplies_the_version_itself() {
    let (base, seen) = serve(Reply::new(200, message_body())).await;
    let adapter = Anthropic::new(ProviderConfig::new("claude-proxy", base).header("x-team", "infra")).unwrap();
    let response = adapter.chat(Call::new("claude-x", &ChatRequest::user("Hello"))).await.unwrap();
    assert_eq!(response.provider, "claude-proxy");
    // no request-id header: the message id stands in
    assert_eq!(response.request_id.as_deref(), Some("msg_013Zva2CMHLNnXjNJJKqJ2EF"));

    let seen = seen.requests();
    let req = &seen[0];
    assert_eq!(req.headers.get_all("anthropic-version").iter().collect::<Vec<_>>(), vec!["2023-06-01"]);
    assert_eq!(req.headers.get("x-team").unwrap(), "infra");
    assert!(req.headers.get("x-api-key").is_none());
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["max_tokens"], 4096);
}

#[tokio::test]
async fn a_missing_key_with_the_anthropic_profile_makes_no_network_call() {
    let (base, seen) = serve(Reply::new(200, message_body())).await;
    let mut config = config(&base);
    config.api_key = None;
    let adapter = Anthropic::new(config).unwrap();
    let request = ChatRequest::user("Hello");

    let err = adapter.chat(Call::new("claude-sonnet-4-5", &request)).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Authentication);
    assert!(err.message().contains("ANTHROPIC_API_KEY"), "{}", err.message());
    assert!(err.status().is_none());

    let err = adapter.chat_stream(Call::new("claude-sonnet-4-5", &request)).await.err().unwrap();
    assert_eq!(err.class(), ErrorClass::Authentication);
    assert!(seen.requests().is_empty(), "no request may reach the server");
}

#[tokio::test]
async fn invalid_tool_arguments_make_no_network_call() {
    let (base, seen) = serve(Reply::new(200, message_body())).await;
    let adapter = Anthropic::new(config(&base)).unwrap();
    let request = ChatRequest::user("q").message(switchyard::Message::tool_calls([switchyard::ToolCall {
        id: "toolu_1".into(),
        name: "f".into(),
        arguments: "{not json".into(),
    }]));
    let err = adapter.chat(Call::new("claude-sonnet-4-5", &request)).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidRequest);
    assert!(seen.requests().is_empty());
}

#[tokio::test]
async fn the_key_never_shows_in_debug_or_in_errors_that_echo_it() {
    let echo = json!({"type": "error", "error": {"type": "authentication_error", "message": format!("invalid x-api-key {KEY}")},
                      "request_id": "req_body_1"})
    .to_string();
    let (base, _) = serve(Reply::new(401, echo)).await;
    let adapter = Anthropic::new(config(&base)).unwrap();
    let debug = format!("{adapter:?}");
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("/v1/messages"), "{debug}");

    let err = adapter.chat(Call::new("claude-sonnet-4-5", &ChatRequest::user("Hello"))).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Authentication);
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.request_id(), Some("req_body_1"));
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(KEY), "{text}");
    }

    // a 200 whose body does not decode and quotes the key
    let (base, _) = serve(Reply::new(200, format!("<html>proxy saw key {KEY}</html>"))).await;
    let adapter = Anthropic::new(config(&base)).unwrap();
    let err = adapter.chat(Call::new("claude-sonnet-4-5", &ChatRequest::user("Hello"))).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::MalformedResponse);
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(KEY), "{text}");
    }
}

#[tokio::test]
async fn error_statuses_are_classified_with_retry_headers() {
    let body = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).to_string();
    let reply = Reply::new(529, body).header("request-id", "req_529").header("retry-after", "3");
    let (base, _) = serve(reply).await;
    let adapter = Anthropic::new(config(&base)).unwrap();
    let request = ChatRequest::user("Hello");
    for streaming in [false, true] {
        let call = Call::new("claude-sonnet-4-5", &request);
        let err = if streaming { adapter.chat_stream(call).await.err() } else { adapter.chat(call).await.err() };
        let err = err.unwrap();
        assert_eq!(err.class(), ErrorClass::Overloaded);
        assert_eq!(err.status(), Some(529));
        assert_eq!(err.provider_type(), Some("overloaded_error"));
        assert_eq!(err.request_id(), Some("req_529"));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    }
}

#[tokio::test]
async fn truncated_success_body_is_malformed() {
    let body = message_body();
    let (base, _) = serve(Reply::new(200, &body[..body.len() / 2])).await;
    let adapter = Anthropic::new(config(&base)).unwrap();
    let err = adapter.chat(Call::new("claude-sonnet-4-5", &ChatRequest::user("Hello"))).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::MalformedResponse);
    assert_eq!(err.status(), Some(200));
}

const SSE_OK: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo!\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":3}}\n\n";

const SSE_STOP: &str = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

fn sse_reply(body: String) -> Reply {
    Reply::new(200, body).header("content-type", "text/event-stream").header("request-id", "req_stream")
}

#[tokio::test]
async fn chat_stream_sends_stream_true_and_decodes_events() {
    let (base, seen) = serve(sse_reply(format!("{SSE_OK}{SSE_STOP}"))).await;
    let adapter = Anthropic::new(config(&base)).unwrap();
    let request = ChatRequest::user("Hello").max_tokens(16);
    let mut stream = adapter.chat_stream(Call::new("claude-sonnet-4-5", &request)).await.unwrap();
    let mut collector = StreamCollector::new();
    while let Some(event) = stream.next().await {
        collector.push(&event.unwrap());
    }
    let response = collector.finish(adapter.name(), "claude-sonnet-4-5", None).unwrap();
    assert_eq!(response.text, "Hello!");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage, Usage::new(9, 3));

    let seen = seen.requests();
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 16);
}

#[tokio::test]
async fn a_stream_cut_before_message_stop_is_interrupted_with_the_partial_text() {
    let (base, _) = serve(sse_reply(SSE_OK.to_owned())).await;
    let adapter = Anthropic::new(config(&base)).unwrap();
    let request = ChatRequest::user("Hello");
    let stream = adapter.chat_stream(Call::new("claude-sonnet-4-5", &request)).await.unwrap();
    let items: Vec<_> = stream.collect().await;
    let err = items.last().unwrap().clone().unwrap_err();
    assert!(items.iter().all(|i| !matches!(i, Ok(StreamEvent::Finish { .. }))));
    assert_eq!(err.class(), ErrorClass::StreamInterrupted);
    assert_eq!(err.request_id(), Some("req_stream"));
    assert_eq!(err.partial().unwrap().text, "Hello!");
}

#[tokio::test]
async fn slow_headers_hit_the_first_token_timeout() {
    let mut reply = Reply::new(200, message_body());
    reply.delay = Duration::from_millis(300);
    let (base, _) = serve(reply).await;
    let adapter = Anthropic::new(config(&base)).unwrap();
    let request = ChatRequest::user("Hello");
    let timeouts = CallTimeouts { first_token: Some(Duration::from_millis(50)), idle: None, deadline: None };
    let err = adapter.chat(Call::new("claude-sonnet-4-5", &request).timeouts(timeouts)).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Timeout);
}
