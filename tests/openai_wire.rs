//! The OpenAI adapter end to end through reqwest, against a tiny in-test server that records each
//! request and answers with a canned response.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use support::recorder::{Canned, Recorded, Recorder};
use switchyard::{
    ApiKey, Call, CallTimeouts, ChatRequest, ErrorClass, FinishReason, OpenAi, Provider, ProviderConfig,
    ProviderProfile, StreamCollector, StreamEvent, Usage,
};

const KEY: &str = "sk-proj-wire-test-4f9a1c2b7e";

struct Server(Recorder);

impl Server {
    async fn start(canned: Canned) -> Server {
        Server(Recorder::start(canned).await)
    }

    /// A base URL with a trailing slash, which the adapter must trim.
    fn base_url(&self) -> String {
        format!("{}/v1/", self.0.base())
    }

    fn requests(&self) -> Vec<Recorded> {
        self.0.requests()
    }

    fn adapter(&self) -> OpenAi {
        let config = ProviderConfig::new("openai", self.base_url())
            .api_key(ApiKey::new(KEY))
            .header("OpenAI-Organization", "org-wire")
            .header("OpenAI-Project", "proj-wire");
        OpenAi::new(config).unwrap()
    }
}

fn completion() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1730000000, "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", "refusal": null},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
                  "prompt_tokens_details": {"cached_tokens": 0}}
    })
}

const STREAM: [&str; 5] = [
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello!"},"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1730000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
    "[DONE]",
];

fn timeouts() -> CallTimeouts {
    CallTimeouts { first_token: Some(Duration::from_secs(5)), idle: Some(Duration::from_secs(5)), deadline: None }
}

#[tokio::test]
async fn chat_posts_to_chat_completions_with_auth_org_and_body() {
    let server = Server::start(Canned::json(200, completion())).await;
    let openai = server.adapter();
    let request = ChatRequest::user("Say hello").system("be brief").max_tokens(32).temperature(0.5);
    let answer = openai.chat(Call::new("gpt-4o-mini", &request).timeouts(timeouts())).await.unwrap();

    assert_eq!(answer.text, "Hello!");
    assert_eq!(answer.provider, "openai");
    assert_eq!(answer.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!(answer.usage, Usage::new(9, 2).with_cached_input_tokens(0));
    assert_eq!(answer.request_id.as_deref(), Some("req_wire_1"));

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.headers["authorization"], format!("Bearer {KEY}").as_str());
    assert_eq!(r.headers["openai-organization"], "org-wire");
    assert_eq!(r.headers["openai-project"], "proj-wire");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.json(),
        json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say hello"}],
            "max_completion_tokens": 32,
            "temperature": 0.5
        })
    );
}

#[tokio::test]
async fn chat_stream_end_to_end() {
    let server = Server::start(Canned::sse(&STREAM)).await;
    let openai = server.adapter();
    let request = ChatRequest::user("Say hello");
    let stream = openai.chat_stream(Call::new("gpt-4o-mini", &request).timeouts(timeouts())).await.unwrap();
    let events: Vec<StreamEvent> = stream.map(Result::unwrap).collect().await;
    let mut envelope = serde_json::Map::new();
    envelope.insert("id".into(), "chatcmpl-1".into());
    envelope.insert("created".into(), 1_730_000_000.into());
    assert_eq!(
        events,
        vec![
            // the chunk's own members, for callers of the same wire
            StreamEvent::Envelope { dialect: switchyard::Protocol::Openai, extra: envelope },
            StreamEvent::TextDelta { text: "Hello!".into() },
            StreamEvent::Usage(Usage::new(9, 2)),
            StreamEvent::Finish { reason: FinishReason::Stop },
        ]
    );
    let body = server.requests()[0].json();
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn finish_without_done_on_an_open_connection_completes_promptly() {
    let mut canned = Canned::sse(&STREAM[..3]);
    canned.hang_after_body = true;
    let server = Server::start(canned).await;
    let request = ChatRequest::user("hi");
    let started = Instant::now();
    let stream = server.adapter().chat_stream(Call::new("gpt-4o-mini", &request).timeouts(timeouts())).await.unwrap();
    let events: Vec<StreamEvent> = stream.map(Result::unwrap).collect().await;
    assert_eq!(events.last(), Some(&StreamEvent::Finish { reason: FinishReason::Stop }));
    // the 500 ms grace, far below the 5 s idle timeout
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
}

#[tokio::test]
async fn body_cut_before_finish_is_interrupted_with_partial_text() {
    let server = Server::start(Canned::sse(&STREAM[..2])).await;
    let request = ChatRequest::user("hi");
    let stream = server.adapter().chat_stream(Call::new("gpt-4o-mini", &request).timeouts(timeouts())).await.unwrap();
    let items: Vec<_> = stream.collect().await;
    let mut collector = StreamCollector::new();
    items.iter().filter_map(|i| i.as_ref().ok()).for_each(|e| collector.push(e));
    assert!(!collector.is_finished());
    let error = items.last().unwrap().clone().unwrap_err();
    assert_eq!(error.class(), ErrorClass::StreamInterrupted);
    assert_eq!(error.partial().unwrap().text, "Hello!");
    assert_eq!(error.request_id(), Some("req_sse_1"));
}

#[tokio::test]
async fn silent_server_hits_the_first_token_timeout() {
    let mut canned = Canned::json(200, completion());
    canned.delay = Duration::from_millis(300);
    let server = Server::start(canned).await;
    let request = ChatRequest::user("hi");
    let quick = CallTimeouts { first_token: Some(Duration::from_millis(80)), idle: None, deadline: None };
    let error = server.adapter().chat(Call::new("gpt-4o-mini", &request).timeouts(quick)).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Timeout);
}

#[tokio::test]
async fn error_statuses_come_back_classified_with_response_meta() {
    let body = json!({"error": {"message": "Rate limit reached. Please try again in 644ms.", "type": "requests",
                                "param": null, "code": "rate_limit_exceeded"}});
    let mut canned = Canned::json(429, body);
    canned.headers.push(("retry-after-ms", "644".into()));
    canned.headers.push(("x-should-retry", "true".into()));
    let server = Server::start(canned).await;
    let request = ChatRequest::user("hi");
    let openai = server.adapter();
    for streaming in [false, true] {
        let call = Call::new("gpt-4o-mini", &request).timeouts(timeouts());
        let error = if streaming { openai.chat_stream(call).await.err() } else { openai.chat(call).await.err() };
        let error = error.unwrap();
        assert_eq!(error.class(), ErrorClass::RateLimited);
        assert_eq!(error.status(), Some(429));
        assert_eq!(error.provider_code(), Some("rate_limit_exceeded"));
        assert_eq!(error.request_id(), Some("req_wire_1"));
        assert_eq!(error.retry_after(), Some(Duration::from_millis(644)));
        assert_eq!(error.should_retry(), Some(true));
    }
}

#[tokio::test]
async fn html_200_is_a_malformed_response() {
    let mut canned = Canned::json(200, Value::Null);
    canned.chunks = vec!["<html><body>Welcome to the captive portal</body></html>".into()];
    let server = Server::start(canned).await;
    let request = ChatRequest::user("hi");
    let error = server.adapter().chat(Call::new("gpt-4o-mini", &request)).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::MalformedResponse);
    assert_eq!(error.status(), Some(200));
    assert!(!error.message().contains("captive"), "{}", error.message());
}

#[tokio::test]
async fn missing_key_with_the_openai_profile_makes_no_network_call() {
    let server = Server::start(Canned::json(200, completion())).await;
    let mut config = ProviderConfig::from_profile(ProviderProfile::builtin("openai").unwrap());
    config.base_url = server.base_url();
    config.api_key = None;
    let openai = OpenAi::new(config).unwrap();
    let request = ChatRequest::user("hi");

    let error = openai.chat(Call::new("gpt-4o-mini", &request)).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Authentication);
    assert!(error.message().contains("OPENAI_API_KEY"), "{}", error.message());
    let error = openai.chat_stream(Call::new("gpt-4o-mini", &request)).await.err().unwrap();
    assert_eq!(error.class(), ErrorClass::Authentication);
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn the_key_never_leaks_into_debug_or_errors() {
    let body = json!({"error": {"message": format!("Incorrect API key provided: {KEY}."),
                                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
    let server = Server::start(Canned::json(401, body)).await;
    let openai = server.adapter();
    assert!(!format!("{openai:?}").contains(KEY));
    assert!(!format!("{openai:#?}").contains("org-wire"));

    let request = ChatRequest::user("hi");
    for streaming in [false, true] {
        let call = Call::new("gpt-4o-mini", &request);
        let error = if streaming { openai.chat_stream(call).await.err() } else { openai.chat(call).await.err() };
        let error = error.unwrap();
        assert_eq!(error.class(), ErrorClass::Authentication);
        let shown = format!("{error} | {error:?} | {error:#?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("Incorrect API key provided: ***."), "{shown}");
    }
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn the_key_never_leaks_from_an_in_stream_error() {
    let leak =
        format!(r#"{{"error":{{"message":"upstream said {KEY}","type":"server_error","param":null,"code":null}}}}"#);
    let server = Server::start(Canned::sse(&[STREAM[1], &leak])).await;
    let request = ChatRequest::user("hi");
    let stream = server.adapter().chat_stream(Call::new("gpt-4o-mini", &request)).await.unwrap();
    let items: Vec<_> = stream.collect().await;
    let error = items.last().unwrap().clone().unwrap_err();
    assert_eq!(error.class(), ErrorClass::ServerError);
    assert_eq!(error.partial().unwrap().text, "Hello!");
    let shown = format!("{error} | {error:?}");
    assert!(!shown.contains(KEY), "{shown}");
}

#[tokio::test]
async fn a_stalled_error_body_still_yields_the_status_class() {
    let mut canned = Canned::json(503, Value::Null);
    canned.chunks = vec!["{\"error\":{\"message\":\"The engine is".into()];
    canned.hang_after_body = true;
    let server = Server::start(canned).await;
    let request = ChatRequest::user("hi");
    let quick = CallTimeouts {
        first_token: Some(Duration::from_secs(5)),
        idle: Some(Duration::from_millis(100)),
        deadline: None,
    };
    let error = server.adapter().chat_stream(Call::new("gpt-4o-mini", &request).timeouts(quick)).await.err().unwrap();
    assert_eq!(error.class(), ErrorClass::Overloaded);
    assert_eq!(error.status(), Some(503));
}
