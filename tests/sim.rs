//! The simulated providers, observed on the wire with a plain HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard::Protocol;
use switchyard::duration::DurationStr;
use switchyard::sim::{Fault, FaultRule, SimServer, When};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- helpers

/// A simulated server and one HTTP client for the test (a client per request would cost a
/// connection setup each time).
struct Sim {
    server: SimServer,
    http: reqwest::Client,
}

impl std::ops::Deref for Sim {
    type Target = SimServer;
    fn deref(&self) -> &SimServer {
        &self.server
    }
}

async fn start() -> Sim {
    Sim { server: support::sim().await, http: reqwest::Client::new() }
}

fn openai_url(sim: &SimServer) -> String {
    format!("{}/chat/completions", sim.openai_base_url())
}

fn anthropic_url(sim: &SimServer) -> String {
    format!("{}/v1/messages", sim.anthropic_base_url())
}

fn openai_body(model: &str, text: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": text }] })
}

fn anthropic_body(model: &str, text: &str) -> Value {
    json!({ "model": model, "max_tokens": 1024, "messages": [{ "role": "user", "content": text }] })
}

fn streaming(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

async fn post(sim: &Sim, url: &str, body: &Value) -> reqwest::Response {
    sim.http.post(url).json(body).send().await.unwrap()
}

async fn post_json(sim: &Sim, url: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = post(sim, url, body).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

/// One SSE event: its `event:` name (if any) and its `data:`.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    name: Option<String>,
    data: String,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("bad json {:?}: {e}", self.data))
    }
}

fn parse_sse(text: &str) -> Vec<Event> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push(d);
                }
            }
            Event { name, data: data.join("\n") }
        })
        .collect()
}

/// Reads a body to its end; returns the text and whether it ended with a transport error.
async fn read_all(mut resp: reqwest::Response) -> (String, bool) {
    let mut text = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => text.extend_from_slice(&chunk),
            Ok(None) => return (String::from_utf8(text).unwrap(), false),
            Err(_) => return (String::from_utf8(text).unwrap(), true),
        }
    }
}

/// Reads chunks until `done` holds for the text so far; panics after 5 s.
async fn read_until(resp: &mut reqwest::Response, text: &mut String, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(text) {
        let chunk = tokio::time::timeout_at(deadline.into(), resp.chunk()).await.expect("stream too slow");
        text.push_str(std::str::from_utf8(&chunk.unwrap().expect("stream ended early")).unwrap());
    }
}

fn ms(ms: u64) -> DurationStr {
    DurationStr::new(Duration::from_millis(ms))
}

fn openai_contents(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| e.json().pointer("/choices/0/delta/content").and_then(Value::as_str).map(str::to_owned))
        .filter(|c| !c.is_empty())
        .collect()
}

fn anthropic_texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.name.as_deref() == Some("content_block_delta"))
        .map(|e| e.json()["delta"]["text"].as_str().unwrap().to_owned())
        .collect()
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_deref().unwrap_or("-")).collect()
}

const QUESTION: &str = "What is the weather like today?";

// ---------------------------------------------------------------- OpenAI wire

#[tokio::test]
async fn openai_completion_object() {
    let sim = start().await;
    let body = json!({ "model": "gpt-4o-mini", "messages": [
        { "role": "system", "content": "Be brief." },
        { "role": "user", "content": [{ "type": "text", "text": QUESTION }] },
    ]});
    let (status, headers, v) = post_json(&sim, &openai_url(&sim), &body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-request-id"], "req_sim_1");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hello from gpt-4o-mini. You said: What is the weather like today?");
    assert_eq!(choice["message"]["refusal"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
    // ("Be brief." 9 + question 31) / 4 = 10; answer is 11 words
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    assert_eq!(v["usage"]["completion_tokens"], 11);
    assert_eq!(v["usage"]["total_tokens"], 21);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
}

#[tokio::test]
async fn openai_echoes_only_twelve_words_and_ceil_counts_input() {
    let sim = start().await;
    let text = "a b c d e f g h i j k l m n o"; // 29 chars → 8 tokens
    let (_, _, v) = post_json(&sim, &openai_url(&sim), &openai_body("m", text)).await;
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from m. You said: a b c d e f g h i j k l");
    assert_eq!(v["usage"]["prompt_tokens"], 8);
    assert_eq!(v["usage"]["completion_tokens"], 17);
}

#[tokio::test]
async fn openai_stream_exact_chunks_with_usage_and_done() {
    let sim = start().await;
    let mut body = streaming(openai_body("gpt-4o-mini", QUESTION));
    body["stream_options"] = json!({ "include_usage": true });
    let resp = post(&sim, &openai_url(&sim), &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream; charset=utf-8");
    assert_eq!(resp.headers()["x-request-id"], "req_sim_1");
    let (text, failed) = read_all(resp).await;
    assert!(!failed);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let events = parse_sse(&text);
    assert!(events.iter().all(|e| e.name.is_none()), "OpenAI sends no event names");
    let n = events.len();
    // role chunk, 11 tokens, finish chunk, usage chunk, [DONE]
    assert_eq!(n, 1 + 11 + 1 + 1 + 1);
    let first = events[0].json();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"], json!({ "role": "assistant", "content": "", "refusal": null }));
    assert_eq!(first["usage"], Value::Null);
    let tokens = openai_contents(&events);
    assert_eq!(tokens[0], "Hello");
    assert!(tokens[1..].iter().all(|t| t.starts_with(' ') && t.split_whitespace().count() == 1), "{tokens:?}");
    assert_eq!(tokens.concat(), "Hello from gpt-4o-mini. You said: What is the weather like today?");
    for e in &events[..n - 3] {
        let v = e.json();
        assert_eq!(v["choices"][0]["finish_reason"], Value::Null);
        assert!(v.as_object().unwrap().contains_key("usage"));
    }
    let finish = events[n - 3].json();
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = events[n - 2].json();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 8);
    assert_eq!(usage["usage"]["completion_tokens"], 11);
    assert_eq!(usage["usage"]["total_tokens"], 19);
    assert_eq!(events[n - 1].data, "[DONE]");
    // every chunk names the same completion
    let ids: Vec<Value> = events[..n - 1].iter().map(|e| e.json()["id"].clone()).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn openai_stream_without_include_usage_has_no_usage_chunk() {
    let sim = start().await;
    let (text, _) = read_all(post(&sim, &openai_url(&sim), &streaming(openai_body("m", "hi"))).await).await;
    let events = parse_sse(&text);
    assert_eq!(events.len(), 1 + 6 + 1 + 1);
    assert!(events[..events.len() - 1].iter().all(|e| !e.json().as_object().unwrap().contains_key("usage")));
    assert_eq!(events[events.len() - 2].json()["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn openai_max_tokens_cuts_with_length() {
    let sim = start().await;
    let mut body = openai_body("gpt-4o", QUESTION);
    body["max_completion_tokens"] = json!(3);
    body["max_tokens"] = json!(100); // the newer field wins
    let (_, _, v) = post_json(&sim, &openai_url(&sim), &body).await;
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from gpt-4o.");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);

    let mut body = openai_body("gpt-4o", QUESTION);
    body["max_tokens"] = json!(4);
    let (text, _) = read_all(post(&sim, &openai_url(&sim), &streaming(body)).await).await;
    let events = parse_sse(&text);
    assert_eq!(openai_contents(&events).concat(), "Hello from gpt-4o. You");
    assert_eq!(events[events.len() - 2].json()["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn openai_tool_call_plain_and_streamed() {
    let sim = start().await;
    let tools = json!([
        { "type": "function", "function": { "name": "search", "parameters": { "type": "object" } } },
        { "type": "function", "function": { "name": "lookup", "parameters": { "type": "object" } } },
    ]);
    let mut body = openai_body("gpt-4o", "/tool find cats");
    body["tools"] = tools.clone();
    let (_, _, v) = post_json(&sim, &openai_url(&sim), &body).await;
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["function"]["name"], "search");
    assert_eq!(call["function"]["arguments"], r#"{"input":"/tool find cats"}"#);

    // forced by tool_choice naming a tool, streamed: arguments arrive in pieces
    let mut body = streaming(openai_body("gpt-4o", "what about dogs"));
    body["tools"] = tools;
    body["tool_choice"] = json!({ "type": "function", "function": { "name": "lookup" } });
    let (text, _) = read_all(post(&sim, &openai_url(&sim), &body).await).await;
    let events = parse_sse(&text);
    let first = events[0].json();
    let start = &first["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(start["function"]["name"], "lookup");
    assert_eq!(start["index"], 0);
    let pieces: Vec<String> = events[1..]
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| {
            e.json()
                .pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    assert!(pieces.len() >= 2, "{pieces:?}");
    assert_eq!(pieces.concat(), r#"{"input":"what about dogs"}"#);
    assert_eq!(events[events.len() - 2].json()["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(events.last().unwrap().data, "[DONE]");
}

#[tokio::test]
async fn openai_tool_results_get_a_text_answer() {
    let sim = start().await;
    let body = json!({
        "model": "m",
        "tools": [{ "type": "function", "function": { "name": "search" } }],
        "messages": [
            { "role": "user", "content": "/tool go" },
            { "role": "assistant", "content": null, "tool_calls": [
                { "id": "call_1", "type": "function", "function": { "name": "search", "arguments": "{}" } }] },
            { "role": "tool", "tool_call_id": "call_1", "content": "found" },
        ],
    });
    let (_, _, v) = post_json(&sim, &openai_url(&sim), &body).await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from m. You said: /tool go");
}

#[tokio::test]
async fn openai_request_errors_in_dialect() {
    let sim = start().await;
    let client = reqwest::Client::new();
    let resp = client.post(openai_url(&sim)).body("{not json").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let (status, _, v) = post_json(&sim, &openai_url(&sim), &json!({ "model": "m" })).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "messages");

    let (status, headers, v) = post_json(&sim, &openai_url(&sim), &openai_body("missing-model", "hi")).await;
    assert_eq!(status, 404);
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(
        v,
        json!({ "error": {
            "message": "The model `missing-model` does not exist or you do not have access to it.",
            "type": "invalid_request_error", "param": null, "code": "model_not_found" } })
    );
}

#[tokio::test]
async fn openai_context_overflow() {
    let sim = start().await;
    let (status, _, v) = post_json(&sim, &openai_url(&sim), &openai_body("gpt-4o-tiny", &"word ".repeat(60))).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(v["error"]["param"], "messages");
    assert!(
        v["error"]["message"].as_str().unwrap().starts_with(
            "This model's maximum context length is 64 tokens. However, your messages resulted in 75 tokens."
        ),
        "{v}"
    );
    // 64 tokens exactly still fits
    let (status, _, _) = post_json(&sim, &openai_url(&sim), &openai_body("gpt-4o-tiny", &"x".repeat(256))).await;
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------- Anthropic wire

#[tokio::test]
async fn anthropic_message_object() {
    let sim = start().await;
    let mut body = anthropic_body("claude-sonnet-4-5", QUESTION);
    body["system"] = json!([{ "type": "text", "text": "Be brief." }]);
    let (status, headers, v) = post_json(&sim, &anthropic_url(&sim), &body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["request-id"], "req_sim_1");
    assert_eq!(
        v,
        json!({
            "id": "msg_sim_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{ "type": "text", "text": "Hello from claude-sonnet-4-5. You said: What is the weather like today?" }],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": { "input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                       "output_tokens": 11 },
        })
    );
}

#[tokio::test]
async fn anthropic_stream_exact_event_sequence() {
    let sim = start().await;
    let resp = post(&sim, &anthropic_url(&sim), &streaming(anthropic_body("claude-haiku-4-5", "hi there"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream; charset=utf-8");
    assert_eq!(resp.headers()["request-id"], "req_sim_1");
    let (text, failed) = read_all(resp).await;
    assert!(!failed);
    let events = parse_sse(&text);
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", 7));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names(&events), expected);
    for e in &events {
        assert_eq!(e.json()["type"], e.name.as_deref().unwrap(), "data.type matches the event name");
    }
    let start = events[0].json();
    assert_eq!(start["message"]["id"], "msg_sim_1");
    assert_eq!(start["message"]["content"], json!([]));
    assert_eq!(start["message"]["stop_reason"], Value::Null);
    assert_eq!(start["message"]["usage"]["input_tokens"], 2);
    assert_eq!(events[1].json()["content_block"], json!({ "type": "text", "text": "" }));
    let texts = anthropic_texts(&events);
    assert_eq!(texts[0], "Hello");
    assert_eq!(texts.concat(), "Hello from claude-haiku-4-5. You said: hi there");
    assert_eq!(events[3].json()["delta"]["type"], "text_delta");
    assert_eq!(events[3].json()["index"], 0);
    let delta = events[events.len() - 2].json();
    assert_eq!(delta["delta"], json!({ "stop_reason": "end_turn", "stop_sequence": null }));
    assert_eq!(delta["usage"]["output_tokens"], 7);
}

#[tokio::test]
async fn anthropic_max_tokens_required_and_cuts() {
    let sim = start().await;
    let body = json!({ "model": "claude-sonnet-4-5", "messages": [{ "role": "user", "content": "hi" }] });
    let (status, headers, v) = post_json(&sim, &anthropic_url(&sim), &body).await;
    assert_eq!(status, 400);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["message"], "max_tokens: Field required");
    assert_eq!(v["request_id"], headers["request-id"].to_str().unwrap());

    let mut body = anthropic_body("claude-sonnet-4-5", "hi");
    body["max_tokens"] = json!(0);
    let (status, _, _) = post_json(&sim, &anthropic_url(&sim), &body).await;
    assert_eq!(status, 400);
    body["max_tokens"] = json!(2);
    let (_, _, v) = post_json(&sim, &anthropic_url(&sim), &body).await;
    assert_eq!(v["content"][0]["text"], "Hello from");
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 2);

    let (text, _) = read_all(post(&sim, &anthropic_url(&sim), &streaming(body)).await).await;
    let events = parse_sse(&text);
    assert_eq!(anthropic_texts(&events), vec!["Hello", " from"]);
    assert_eq!(events[events.len() - 2].json()["delta"]["stop_reason"], "max_tokens");
}

#[tokio::test]
async fn anthropic_tool_use_plain_and_streamed() {
    let sim = start().await;
    let tools = json!([{ "name": "get_weather", "input_schema": { "type": "object" } }]);
    let mut body = anthropic_body("claude-sonnet-4-5", "Paris today");
    body["tools"] = tools;
    body["tool_choice"] = json!({ "type": "any" });
    let (_, _, v) = post_json(&sim, &anthropic_url(&sim), &body).await;
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({ "input": "Paris today" }));
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));

    let (text, _) = read_all(post(&sim, &anthropic_url(&sim), &streaming(body)).await).await;
    let events = parse_sse(&text);
    let start = events[1].json();
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["name"], "get_weather");
    assert_eq!(start["content_block"]["input"], json!({}));
    let pieces: Vec<String> = events
        .iter()
        .filter(|e| e.name.as_deref() == Some("content_block_delta"))
        .map(|e| {
            let v = e.json();
            assert_eq!(v["delta"]["type"], "input_json_delta");
            v["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(pieces.len() >= 2);
    assert_eq!(serde_json::from_str::<Value>(&pieces.concat()).unwrap(), json!({ "input": "Paris today" }));
    assert_eq!(events[events.len() - 2].json()["delta"]["stop_reason"], "tool_use");
    assert_eq!(names(&events).last(), Some(&"message_stop"));
}

#[tokio::test]
async fn anthropic_prefill_is_continued() {
    let sim = start().await;
    let body = json!({ "model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [
        { "role": "user", "content": "tell me more" },
        { "role": "assistant", "content": [{ "type": "text", "text": "Hello from claude-sonnet-4-5. You" }] },
    ]});
    let (status, _, v) = post_json(&sim, &anthropic_url(&sim), &body).await;
    assert_eq!(status, 200);
    assert_eq!(v["content"][0]["text"], " said: tell me more");
    assert_eq!(v["usage"]["output_tokens"], 4);
    // streamed: the continuation only, its first token keeps its leading space
    let (text, _) = read_all(post(&sim, &anthropic_url(&sim), &streaming(body)).await).await;
    assert_eq!(anthropic_texts(&parse_sse(&text)), vec![" said:", " tell", " me", " more"]);
    // a prefill the answer does not start with: the whole answer
    let body = json!({ "model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [
        { "role": "user", "content": "hi" }, { "role": "assistant", "content": "Sure" },
    ]});
    let (_, _, v) = post_json(&sim, &anthropic_url(&sim), &body).await;
    assert_eq!(v["content"][0]["text"], "Hello from claude-sonnet-4-5. You said: hi");
}

#[tokio::test]
async fn anthropic_prefill_rejected_by_newer_models() {
    let sim = start().await;
    for model in ["claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-5-0"] {
        let body = json!({ "model": model, "max_tokens": 100, "messages": [
            { "role": "user", "content": "hi" }, { "role": "assistant", "content": "Hello" },
        ]});
        let (status, _, v) = post_json(&sim, &anthropic_url(&sim), &body).await;
        assert_eq!(status, 400, "{model}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["message"], "Prefilling assistant messages is not supported for this model.");
        // without prefill the same model answers
        let (status, _, _) = post_json(&sim, &anthropic_url(&sim), &anthropic_body(model, "hi")).await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn anthropic_context_overflow_and_missing_model() {
    let sim = start().await;
    let (status, _, v) =
        post_json(&sim, &anthropic_url(&sim), &anthropic_body("claude-tiny", &"word ".repeat(60))).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["message"], "prompt is too long: 75 tokens > 64 maximum");

    let (status, headers, v) = post_json(&sim, &anthropic_url(&sim), &anthropic_body("missing-model", "hi")).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["type"], "not_found_error");
    assert_eq!(v["error"]["message"], "model: missing-model");
    assert_eq!(v["request_id"], headers["request-id"].to_str().unwrap());

    let resp = reqwest::Client::new().post(anthropic_url(&sim)).body("<html>").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn stop_sequences_in_both_dialects() {
    let sim = start().await;
    let mut body = openai_body("m", "one two three");
    body["stop"] = json!(["two", "zzz"]);
    let (_, _, v) = post_json(&sim, &openai_url(&sim), &body).await;
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from m. You said: one");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    let mut body = anthropic_body("m", "one two three");
    body["stop_sequences"] = json!(["three"]);
    let (_, _, v) = post_json(&sim, &anthropic_url(&sim), &body).await;
    assert_eq!(v["content"][0]["text"], "Hello from m. You said: one two");
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "three");
    let (text, _) = read_all(post(&sim, &anthropic_url(&sim), &streaming(body)).await).await;
    let events = parse_sse(&text);
    assert_eq!(
        events[events.len() - 2].json()["delta"],
        json!({ "stop_reason": "stop_sequence", "stop_sequence": "three" })
    );
}

// ---------------------------------------------------------------- status and body faults

#[tokio::test]
async fn openai_status_faults_have_real_bodies_and_retry_headers() {
    let sim = start().await;
    let id = sim.add_fault(FaultRule::new(
        Protocol::Openai,
        Fault::Status {
            status: 429,
            error_type: None,
            code: None,
            message: None,
            retry_after: Some("2".into()),
            retry_after_ms: Some("1500".into()),
            should_retry: Some(true),
        },
    ));
    let (status, headers, v) = post_json(&sim, &openai_url(&sim), &openai_body("gpt-4o", "hi")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(headers["retry-after-ms"], "1500");
    assert_eq!(headers["x-should-retry"], "true");
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(v["error"]["type"], "requests");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["param"], Value::Null);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Rate limit reached") && message.ends_with("Please try again in 644ms."));
    sim.remove_fault(id);

    let cases = [
        (Fault::typed(429, "insufficient_quota", None), 429, "insufficient_quota", json!("insufficient_quota")),
        (Fault::status(500), 500, "server_error", Value::Null),
        (Fault::status(503), 503, "server_error", json!("overloaded")),
        (Fault::status(401), 401, "invalid_request_error", json!("invalid_api_key")),
        (Fault::status(404), 404, "invalid_request_error", json!("model_not_found")),
        (Fault::status(400), 400, "invalid_request_error", Value::Null),
    ];
    for (fault, status, error_type, code) in cases {
        let id = sim.add_fault(FaultRule::new(Protocol::Openai, fault));
        let (got, headers, v) = post_json(&sim, &openai_url(&sim), &openai_body("gpt-4o", "hi")).await;
        assert_eq!(got, status);
        assert_eq!(v["error"]["type"], error_type, "{status}");
        assert_eq!(v["error"]["code"], code, "{status}");
        assert!(!headers.contains_key("retry-after"));
        sim.remove_fault(id);
    }
    let (_, _, v) = post_json(&sim, &openai_url(&sim), &json!(null)).await;
    assert_eq!(v["error"]["type"], "invalid_request_error", "faults removed: the request is judged on its own");
}

#[tokio::test]
async fn anthropic_status_faults_have_real_bodies() {
    let sim = start().await;
    let cases = [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ];
    for (status, error_type) in cases {
        let id = sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::status_retry_after(status, "3")));
        let (got, headers, v) = post_json(&sim, &anthropic_url(&sim), &anthropic_body("claude-sonnet-4-5", "hi")).await;
        assert_eq!(got, status);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], error_type);
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(v["request_id"], headers["request-id"].to_str().unwrap());
        assert_eq!(headers["retry-after"], "3");
        if status == 529 {
            assert_eq!(v["error"]["message"], "Overloaded");
        }
        sim.remove_fault(id);
    }
    // overrides
    sim.add_fault(FaultRule::new(
        Protocol::Anthropic,
        Fault::Status {
            status: 400,
            error_type: None,
            code: None,
            message: Some("custom words".into()),
            retry_after: None,
            retry_after_ms: None,
            should_retry: Some(false),
        },
    ));
    let (_, headers, v) = post_json(&sim, &anthropic_url(&sim), &anthropic_body("claude-sonnet-4-5", "hi")).await;
    assert_eq!(v["error"]["message"], "custom words");
    assert_eq!(headers["x-should-retry"], "false");
}

#[tokio::test]
async fn raw_body_fault_is_verbatim() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(
        Protocol::Openai,
        Fault::RawBody { status: 502, content_type: "text/html".into(), body: "<html>Bad Gateway</html>".into() },
    ));
    let resp = post(&sim, &openai_url(&sim), &openai_body("m", "hi")).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "text/html");
    assert_eq!(resp.text().await.unwrap(), "<html>Bad Gateway</html>");
    // Anthropic untouched
    assert_eq!(post(&sim, &anthropic_url(&sim), &anthropic_body("m", "hi")).await.status(), 200);
}

// ---------------------------------------------------------------- connection faults

#[tokio::test]
async fn reset_closes_the_connection_before_any_header() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::Reset).first(2));
    let err = reqwest::Client::new().post(openai_url(&sim)).json(&openai_body("m", "hi")).send().await.unwrap_err();
    assert!(err.status().is_none());
    assert!(!err.is_timeout());

    // on the raw socket: not one byte of a response
    let mut socket = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let body = openai_body("m", "hi").to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut buf)).await.unwrap();
    assert!(read.is_ok() || buf.is_empty(), "{read:?}");
    assert!(buf.is_empty(), "got {:?}", String::from_utf8_lossy(&buf));

    // the rule is spent: the server still answers
    assert_eq!(post(&sim, &openai_url(&sim), &openai_body("m", "hi")).await.status(), 200);
    let faults: Vec<_> = sim.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(faults, vec![Some("reset".to_owned()), Some("reset".to_owned()), None]);
}

#[tokio::test]
async fn hang_never_answers() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::Hang));
    let client = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
    let started = Instant::now();
    let err = client.post(anthropic_url(&sim)).json(&anthropic_body("m", "hi")).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!(sim.request_count(Protocol::Anthropic, Some("m")), 1);
    drop(client);
    // the client went away: so does the hung connection
    support::eventually(Duration::from_secs(5), || sim.open_connections() == 0).await;
    assert_eq!(sim.open_connections(), 0);
}

#[tokio::test]
async fn shutdown_closes_hung_connections() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::Hang));
    let url = openai_url(&sim);
    let pending =
        tokio::spawn(async move { reqwest::Client::new().post(url).json(&openai_body("m", "hi")).send().await });
    let reached = support::eventually(Duration::from_secs(10), || sim.request_count(Protocol::Openai, None) > 0);
    assert!(reached.await, "the request never reached the simulator");
    let addr = sim.addr();
    sim.server.shutdown().await;
    let result = tokio::time::timeout(Duration::from_secs(5), pending).await.unwrap().unwrap();
    assert!(result.is_err());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "nothing listens any more");
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let sim = start().await;
    let addr = sim.addr();
    drop(sim);
    // the listener closes in the background: wait for it rather than for a fixed 20 ms
    let stopped = support::eventually_async(Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    });
    assert!(stopped.await, "something still listens at {addr}");
}

#[tokio::test]
async fn latency_delays_the_headers() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::Latency { delay: ms(150) }));
    let started = Instant::now();
    let resp = post(&sim, &openai_url(&sim), &openai_body("m", "hi")).await;
    assert!(started.elapsed() >= Duration::from_millis(140));
    assert_eq!(resp.status(), 200);
    assert_eq!(sim.requests()[0].fault.as_deref(), Some("latency"));
}

// ---------------------------------------------------------------- stream faults

#[tokio::test]
async fn slow_first_token_sends_the_preamble_then_waits_for_the_first_content() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::SlowFirstToken { delay: ms(250) }));
    let started = Instant::now();
    let mut resp = post(&sim, &anthropic_url(&sim), &streaming(anthropic_body("m", "hi"))).await;
    let headers_at = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert!(headers_at < Duration::from_millis(200), "headers took {headers_at:?}");
    // message_start, content_block_start and ping at once; the first delta late
    let mut preamble = String::new();
    while !preamble.contains("event: ping") {
        preamble.push_str(&String::from_utf8_lossy(&resp.chunk().await.unwrap().unwrap()));
    }
    assert!(started.elapsed() < Duration::from_millis(200), "preamble after {:?}", started.elapsed());
    assert!(preamble.starts_with("event: message_start"), "{preamble}");
    assert!(!preamble.contains("content_block_delta"), "{preamble}");
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(240), "first content after {:?}", started.elapsed());
    assert!(first.starts_with(b"event: content_block_delta"));
    let (rest, _) = read_all(resp).await;
    assert!(rest.contains("event: message_stop"));

    // non-streaming: like latency
    let started = Instant::now();
    let resp = post(&sim, &anthropic_url(&sim), &anthropic_body("m", "hi")).await;
    assert!(started.elapsed() >= Duration::from_millis(240));
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn stall_goes_silent_mid_stream_then_finishes() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::Stall { after_tokens: 2, duration: ms(200) }));
    let mut resp = post(&sim, &openai_url(&sim), &streaming(openai_body("m", "hi"))).await;
    let mut text = String::new();
    // role chunk + 2 tokens
    read_until(&mut resp, &mut text, |t| openai_contents(&parse_sse(t)).len() == 2).await;
    let stalled_at = Instant::now();
    read_until(&mut resp, &mut text, |t| openai_contents(&parse_sse(t)).len() == 3).await;
    assert!(stalled_at.elapsed() >= Duration::from_millis(180), "gap {:?}", stalled_at.elapsed());
    let (rest, failed) = read_all(resp).await;
    assert!(!failed);
    text.push_str(&rest);
    assert_eq!(openai_contents(&parse_sse(&text)).concat(), "Hello from m. You said: hi");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn cut_stream_has_no_terminal_event() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::Cut { after_tokens: 2 }));
    sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::Cut { after_tokens: 3 }));

    let (text, failed) = read_all(post(&sim, &openai_url(&sim), &streaming(openai_body("m", "hi"))).await).await;
    assert!(failed, "the connection drops mid-body");
    let events = parse_sse(&text);
    assert_eq!(openai_contents(&events), vec!["Hello", " from"]);
    assert!(events.iter().all(|e| e.data != "[DONE]" && e.json()["choices"][0]["finish_reason"].is_null()));

    let (text, failed) = read_all(post(&sim, &anthropic_url(&sim), &streaming(anthropic_body("m", "hi"))).await).await;
    assert!(failed);
    let events = parse_sse(&text);
    assert_eq!(anthropic_texts(&events).len(), 3);
    assert!(!names(&events).contains(&"message_stop"));
    assert!(!names(&events).contains(&"message_delta"));

    // non-streaming requests are not matched by stream faults
    let (status, _, _) = post_json(&sim, &openai_url(&sim), &openai_body("m", "hi")).await;
    assert_eq!(status, 200);
    assert_eq!(sim.requests()[2].fault, None);
}

#[tokio::test]
async fn malformed_chunk_then_the_rest() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::MalformedChunk { after_tokens: 1 }));
    sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::MalformedChunk { after_tokens: 1 }));

    let (text, _) = read_all(post(&sim, &openai_url(&sim), &streaming(openai_body("m", "hi"))).await).await;
    let events = parse_sse(&text);
    let bad: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].data != "[DONE]" && serde_json::from_str::<Value>(&events[i].data).is_err())
        .collect();
    assert_eq!(bad, vec![2], "role chunk, one token, then the bad line");
    let good: Vec<Event> = events
        .iter()
        .filter(|e| serde_json::from_str::<Value>(&e.data).is_ok() || e.data == "[DONE]")
        .cloned()
        .collect();
    assert_eq!(openai_contents(&good).concat(), "Hello from m. You said: hi");
    assert_eq!(events.last().unwrap().data, "[DONE]");

    let (text, _) = read_all(post(&sim, &anthropic_url(&sim), &streaming(anthropic_body("m", "hi"))).await).await;
    let events = parse_sse(&text);
    let bad: Vec<usize> =
        (0..events.len()).filter(|&i| serde_json::from_str::<Value>(&events[i].data).is_err()).collect();
    assert_eq!(bad, vec![4]);
    assert_eq!(names(&events).last(), Some(&"message_stop"));
}

#[tokio::test]
async fn stream_error_event_in_both_dialects() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::StreamError { after_tokens: 1, error_type: None }));
    sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::StreamError { after_tokens: 2, error_type: None }));

    let resp = post(&sim, &openai_url(&sim), &streaming(openai_body("m", "hi"))).await;
    assert_eq!(resp.status(), 200);
    let (text, _) = read_all(resp).await;
    let events = parse_sse(&text);
    assert_eq!(events.len(), 3);
    let error = events[2].json();
    assert_eq!(error["error"]["type"], "server_error");
    assert_eq!(error["error"]["message"], "The server had an error while processing your request. Sorry about that!");
    assert!(!text.contains("[DONE]"));

    let (text, _) = read_all(post(&sim, &anthropic_url(&sim), &streaming(anthropic_body("m", "hi"))).await).await;
    let events = parse_sse(&text);
    assert_eq!(
        names(&events),
        vec!["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "error"]
    );
    let error = events[5].json();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"], json!({ "type": "overloaded_error", "message": "Overloaded" }));

    sim.clear_faults();
    sim.add_fault(FaultRule::new(
        Protocol::Anthropic,
        Fault::StreamError { after_tokens: 0, error_type: Some("api_error".into()) },
    ));
    let (text, _) = read_all(post(&sim, &anthropic_url(&sim), &streaming(anthropic_body("m", "hi"))).await).await;
    assert_eq!(parse_sse(&text).last().unwrap().json()["error"]["type"], "api_error");
}

#[tokio::test]
async fn no_done_keeps_the_connection_open_after_the_finish() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::NoDone));
    let mut body = streaming(openai_body("m", "hi"));
    body["stream_options"] = json!({ "include_usage": true });
    let mut resp = post(&sim, &openai_url(&sim), &body).await;
    let mut text = String::new();
    read_until(&mut resp, &mut text, |t| t.contains("\"choices\":[]")).await;
    let events = parse_sse(&text);
    assert_eq!(events[events.len() - 2].json()["choices"][0]["finish_reason"], "stop");
    assert_eq!(events.last().unwrap().json()["usage"]["completion_tokens"], 6);
    // nothing more comes, and the connection stays open
    let next = tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await;
    assert!(next.is_err(), "expected silence, got {next:?}");
    assert_eq!(sim.open_connections(), 1);
    drop(resp);

    // Anthropic: everything through message_stop, then the same silence
    sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::NoDone));
    let mut resp = post(&sim, &anthropic_url(&sim), &streaming(anthropic_body("m", "hi"))).await;
    let mut text = String::new();
    read_until(&mut resp, &mut text, |t| t.contains("event: message_stop")).await;
    assert!(tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await.is_err());
}

// ---------------------------------------------------------------- rule selection

#[tokio::test]
async fn first_two_hits_exactly_the_first_two_requests() {
    let sim = start().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)).model("gpt-4o").first(2));
    // other models and the other wire do not spend the rule
    assert_eq!(post(&sim, &openai_url(&sim), &openai_body("gpt-4o-mini", "hi")).await.status(), 200);
    assert_eq!(post(&sim, &anthropic_url(&sim), &anthropic_body("gpt-4o", "hi")).await.status(), 200);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(post(&sim, &openai_url(&sim), &openai_body("gpt-4o", "hi")).await.status().as_u16());
    }
    assert_eq!(statuses, vec![500, 500, 200, 200]);
    assert_eq!(sim.faults()[0].1.when, When::First { count: 0 });
}

#[tokio::test]
async fn rate_zero_never_and_one_always() {
    let sim = start().await;
    let never = sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(503)).rate(0.0));
    for _ in 0..20 {
        assert_eq!(post(&sim, &openai_url(&sim), &openai_body("m", "hi")).await.status(), 200);
    }
    sim.remove_fault(never);
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(503)).rate(1.0));
    for _ in 0..20 {
        assert_eq!(post(&sim, &openai_url(&sim), &openai_body("m", "hi")).await.status(), 503);
    }
}

#[tokio::test]
async fn first_matching_rule_wins_and_rules_for_both_wires() {
    let sim = start().await;
    sim.add_fault(FaultRule { protocol: None, model: Some("a".into()), when: When::Always, fault: Fault::status(502) });
    sim.add_fault(FaultRule { protocol: None, model: None, when: When::Always, fault: Fault::status(500) });
    assert_eq!(post(&sim, &openai_url(&sim), &openai_body("a", "hi")).await.status(), 502);
    assert_eq!(post(&sim, &anthropic_url(&sim), &anthropic_body("a", "hi")).await.status(), 502);
    assert_eq!(post(&sim, &anthropic_url(&sim), &anthropic_body("b", "hi")).await.status(), 500);
    sim.clear_faults();
    assert_eq!(post(&sim, &openai_url(&sim), &openai_body("a", "hi")).await.status(), 200);
}

// ---------------------------------------------------------------- control API and log

#[tokio::test]
async fn control_api_round_trip() {
    let sim = start().await;
    let client = reqwest::Client::new();
    let faults = format!("{}/_sim/faults", sim.url());
    let rule = json!({ "protocol": "openai", "model": "gpt-4o", "when": { "kind": "first", "count": 1 },
                       "fault": { "kind": "status", "status": 429, "retry_after": "1" } });
    let resp = client.post(&faults).json(&rule).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let listed: Value = client.get(&faults).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["fault"]["kind"], "status");
    assert_eq!(sim.faults().len(), 1);

    let resp = post(&sim, &openai_url(&sim), &openai_body("gpt-4o", "hi")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");

    let stall = json!({ "fault": { "kind": "stall", "after_tokens": 1, "duration": "150ms" } });
    let id2 =
        client.post(&faults).json(&stall).send().await.unwrap().json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    assert!(matches!(sim.faults()[1].1.fault, Fault::Stall { after_tokens: 1, .. }));
    let resp = client.delete(format!("{faults}/{id2}")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(client.delete(format!("{faults}/{id2}")).send().await.unwrap().status(), 404);

    let bad = client.post(&faults).json(&json!({ "fault": { "kind": "explode" } })).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("invalid fault rule"));

    let resp = client.delete(&faults).send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["removed"], 1);
    assert!(sim.faults().is_empty());

    let log: Value = client.get(format!("{}/_sim/requests", sim.url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(log.as_array().unwrap().len(), 1);
    assert_eq!(log[0]["protocol"], "openai");
    assert_eq!(log[0]["fault"], "status");
    assert_eq!(client.delete(format!("{}/_sim/requests", sim.url())).send().await.unwrap().status(), 204);
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn request_log_records_what_came_in() {
    let sim = start().await;
    let client = reqwest::Client::new();
    client
        .post(openai_url(&sim))
        .bearer_auth("sk-test-secret-key")
        .header("OpenAI-Organization", "org-1")
        .json(&openai_body("gpt-4o", "hi"))
        .send()
        .await
        .unwrap();
    client
        .post(anthropic_url(&sim))
        .header("x-api-key", "sk-ant-secret")
        .header("anthropic-version", "2023-06-01")
        .json(&streaming(anthropic_body("claude-sonnet-4-5", "yo")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    client.post(openai_url(&sim)).body("garbage").send().await.unwrap();

    let log = sim.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].protocol, Protocol::Openai);
    assert_eq!(log[0].model, "gpt-4o");
    assert!(!log[0].stream);
    assert_eq!(log[0].header("authorization"), Some("Bearer sk-test-secret-key"));
    assert_eq!(log[0].header("openai-organization"), Some("org-1"));
    assert_eq!(log[0].body, openai_body("gpt-4o", "hi"));
    assert_eq!(log[0].request_id, "req_sim_1");
    assert_eq!(log[1].protocol, Protocol::Anthropic);
    assert!(log[1].stream);
    assert_eq!(log[1].header("x-api-key"), Some("sk-ant-secret"));
    assert_eq!(log[1].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(log[2].model, "");
    assert_eq!(log[2].body, json!("garbage"));
    assert!(log.iter().all(|r| r.fault.is_none()));
    // credentials never print
    let debug = format!("{log:?}");
    assert!(!debug.contains("sk-test-secret-key") && !debug.contains("sk-ant-secret"), "{debug}");
    let served: String = reqwest::get(format!("{}/_sim/requests", sim.url())).await.unwrap().text().await.unwrap();
    assert!(!served.contains("secret"), "{served}");

    assert_eq!(sim.request_count(Protocol::Openai, None), 2);
    assert_eq!(sim.request_count(Protocol::Openai, Some("gpt-4o")), 1);
    assert_eq!(sim.request_count(Protocol::Anthropic, Some("claude-sonnet-4-5")), 1);
    sim.clear_requests();
    assert_eq!(sim.request_count(Protocol::Openai, None), 0);
}

// ---------------------------------------------------------------- plain HTTP/1.1, concurrency

#[tokio::test]
async fn plain_http11_client_with_keep_alive() {
    let sim = start().await;
    let mut socket = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let body = openai_body("m", "hi").to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for _ in 0..2 {
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 8192];
        let mut got = String::new();
        while !(got.contains("\r\n\r\n") && got.ends_with('}')) {
            let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "connection closed: {got}");
            got.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.contains("Hello from m. You said: hi"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_concurrent_connections() {
    let sim = start().await;
    // a little latency so the requests overlap and each needs its own connection
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::Latency { delay: ms(100) }));
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let client = client.clone();
        let (url, body) = if i % 2 == 0 {
            (openai_url(&sim), openai_body("m", &format!("n{i}")))
        } else {
            (anthropic_url(&sim), streaming(anthropic_body("m", &format!("n{i}"))))
        };
        tasks.push(tokio::spawn(async move {
            let resp = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let text = task.await.unwrap();
        assert!(text.contains(&format!("n{i}")), "{i}: {text}");
    }
    assert_eq!(sim.requests().len(), 300);
    assert!(
        sim.requests().iter().filter(|r| r.protocol == Protocol::Openai).all(|r| r.fault.as_deref() == Some("latency"))
    );
}

#[tokio::test]
async fn openai_bounds_on_n_and_top_logprobs_are_the_providers() {
    let sim = start().await;
    let mut body = openai_body("gpt-4o-mini", "hi");
    body["n"] = json!(129);
    let (status, _, err) = post_json(&sim, &openai_url(&sim), &body).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "n");
    body["n"] = json!(2);
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(21);
    let (status, _, err) = post_json(&sim, &openai_url(&sim), &body).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "top_logprobs");
    body["top_logprobs"] = json!(20);
    let (status, _, answer) = post_json(&sim, &openai_url(&sim), &body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["choices"].as_array().map(Vec::len), Some(2));
    assert_eq!(answer["choices"][1]["logprobs"]["content"][0]["top_logprobs"].as_array().map(Vec::len), Some(20));
}
