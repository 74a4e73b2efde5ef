//! The codecs against answers in the providers' documented shapes (`tests/fixtures/wire/`), not
//! against switchyard's own encoders: each fixture is served verbatim by the simulator and read
//! through an adapter (the library path) and through `switchyard serve` (both caller dialects).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use support::sse_data;
use switchyard::serve::Gateway;
use switchyard::sim::{Fault, FaultRule, SimServer};
use switchyard::{
    Anthropic, Call, ChatRequest, ChatResponse, ContentPart, FinishReason, OpenAi, Protocol, Provider, ProviderConfig,
    StreamCollector,
};

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/wire/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The simulator, answering every request on `protocol` with `path` verbatim.
async fn serving(protocol: Protocol, path: &str) -> SimServer {
    let sim = support::sim().await;
    let content_type = if path.ends_with(".sse") { "text/event-stream" } else { "application/json" };
    sim.add_fault(FaultRule::new(
        protocol,
        Fault::RawBody { status: 200, content_type: content_type.into(), body: fixture(path) },
    ));
    sim
}

fn adapter(sim: &SimServer, protocol: Protocol) -> Box<dyn Provider> {
    match protocol {
        Protocol::Openai => Box::new(OpenAi::new(ProviderConfig::new("openai", sim.openai_base_url())).unwrap()),
        _ => Box::new(Anthropic::new(ProviderConfig::new("anthropic", sim.anthropic_base_url())).unwrap()),
    }
}

/// The whole answer of a streamed call through the adapter.
async fn streamed(provider: &dyn Provider, model: &str) -> ChatResponse {
    let request = ChatRequest::user("hi").max_tokens(1000);
    let mut stream = provider.chat_stream(Call::new(model, &request)).await.unwrap();
    let mut collector = StreamCollector::new();
    while let Some(event) = stream.next().await {
        collector.push(&event.unwrap());
    }
    collector.finish(provider.name(), model, None).expect("a finished answer")
}

/// `switchyard serve` with one route, `r`, to `model` on the simulator's `protocol` wire.
async fn gateway(sim: &SimServer, protocol: Protocol, model: &str) -> (Gateway, String, tempfile::TempDir) {
    let (name, base) = match protocol {
        Protocol::Openai => ("openai", sim.openai_base_url()),
        _ => ("anthropic", sim.anthropic_base_url()),
    };
    let provider = support::provider_toml(name, name, &base, "");
    support::gateway(&format!(
        "[defaults]\nretry = {{ max_attempts = 1 }}\n{provider}[routes.r]\ntargets = [{{ provider = \"{name}\", model = \"{model}\" }}]\n"
    ))
    .await
}

async fn post(url: String, body: Value) -> reqwest::Response {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let r = client.post(url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r
}

/// A 200's JSON body.
async fn post_json(url: String, body: Value) -> Value {
    post(url, body).await.json().await.unwrap()
}

/// A 200's body as text (a stream, read to its end).
async fn post_text(url: String, body: Value) -> String {
    post(url, body).await.text().await.unwrap()
}

#[tokio::test]
async fn openai_answer_with_two_choices_logprobs_and_cache_usage() {
    let sim = serving(Protocol::Openai, "openai/response_n2_logprobs.json").await;
    let request = ChatRequest::user("The capital of France?");
    let answer = adapter(&sim, Protocol::Openai).chat(Call::new("gpt-4o", &request)).await.unwrap();
    assert_eq!(answer.text, "Paris.");
    assert_eq!(answer.model, "gpt-4o-2024-08-06");
    assert_eq!(answer.alternatives.len(), 1);
    assert_eq!(answer.alternatives[0].text, "The capital is Paris.");
    assert_eq!(answer.alternatives[0].logprobs.as_ref().map(Vec::len), Some(5));
    let logprobs = answer.logprobs.as_ref().unwrap();
    assert_eq!(logprobs[0].token, "Paris");
    assert_eq!(logprobs[0].bytes.as_deref(), Some(&b"Paris"[..]));
    assert_eq!(logprobs[1].top_logprobs[1].token, "!");
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.cached_input_tokens, answer.usage.reasoning_tokens),
        (1117, Some(1024), Some(0))
    );
    assert_eq!(answer.extra.get("system_fingerprint"), Some(&json!("fp_fc9f1d7035")));

    // an OpenAI caller gets what the provider said; an Anthropic caller gets its own terms
    let (_g, base, _dir) = gateway(&sim, Protocol::Openai, "gpt-4o").await;
    let body: Value = post_json(
        format!("{base}/v1/chat/completions"),
        json!({"model": "r", "n": 2, "logprobs": true, "top_logprobs": 2, "messages": [{"role": "user", "content": "?"}]}),
    )
    .await;
    let expected: Value = serde_json::from_str(&fixture("openai/response_n2_logprobs.json")).unwrap();
    for (got, want) in body["choices"].as_array().unwrap().iter().zip(expected["choices"].as_array().unwrap()) {
        assert_eq!(got["message"]["content"], want["message"]["content"]);
        assert_eq!(got["logprobs"], want["logprobs"], "logprobs come back whole");
        assert_eq!(got["finish_reason"], want["finish_reason"]);
    }
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 1024);
    assert_eq!(body["system_fingerprint"], "fp_fc9f1d7035");
    assert_eq!(body["service_tier"], "default");
    assert_eq!((&body["id"], &body["created"]), (&expected["id"], &expected["created"]));

    let body: Value = post_json(
        format!("{base}/v1/messages"),
        json!({"model": "r", "max_tokens": 100, "messages": [{"role": "user", "content": "?"}]}),
    )
    .await;
    assert_eq!(body["content"], json!([{"type": "text", "text": "Paris."}]));
    assert_eq!(body["usage"], json!({"input_tokens": 93, "cache_read_input_tokens": 1024, "output_tokens": 46}));
    assert!(body.get("system_fingerprint").is_none());
}

#[tokio::test]
async fn openai_streamed_tool_call_with_reasoning_tokens() {
    let sim = serving(Protocol::Openai, "openai/stream_tool_call_reasoning.sse").await;
    let answer = streamed(adapter(&sim, Protocol::Openai).as_ref(), "o4-mini").await;
    assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    assert_eq!(answer.tool_calls.len(), 1);
    assert_eq!(answer.tool_calls[0].id, "call_Zq8Rr7");
    assert_eq!(answer.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
    assert_eq!((answer.usage.output_tokens, answer.usage.reasoning_tokens), (151, Some(128)));

    // to an Anthropic caller: a tool_use block built from the pieces
    let (_g, base, _dir) = gateway(&sim, Protocol::Openai, "o4-mini").await;
    let text = post_text(
        format!("{base}/v1/messages"),
        json!({"model": "r", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "?"}]}),
    )
    .await;
    let events = sse_data(&text);
    let start = events.iter().find(|e| e["type"] == "content_block_start").unwrap();
    assert_eq!(start["content_block"]["type"], "tool_use", "{text}");
    assert_eq!(start["content_block"]["name"], "get_weather");
    let json: String = events
        .iter()
        .filter(|e| e["delta"]["type"] == "input_json_delta")
        .map(|e| e["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(json, r#"{"city":"Paris"}"#);
    let delta = events.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 151);
}

#[tokio::test]
async fn openai_streamed_refusal() {
    let sim = serving(Protocol::Openai, "openai/stream_refusal.sse").await;
    let answer = streamed(adapter(&sim, Protocol::Openai).as_ref(), "gpt-4o").await;
    assert_eq!(answer.refusal.as_deref(), Some("I'm sorry, I can't help with that."));
    assert_eq!(answer.text, "");

    let (_g, base, _dir) = gateway(&sim, Protocol::Openai, "gpt-4o").await;
    let text = post_text(
        format!("{base}/v1/chat/completions"),
        json!({"model": "r", "stream": true, "messages": [{"role": "user", "content": "?"}]}),
    )
    .await;
    let refusal: String = sse_data(&text)
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["refusal"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(refusal, "I'm sorry, I can't help with that.", "{text}");
    // the upstream's own chunk members reach a caller of the same wire, in every chunk
    for chunk in sse_data(&text) {
        assert_eq!(chunk["id"], "chatcmpl-Bx2", "{text}");
        assert_eq!(chunk["created"], 1_741_570_400);
        assert_eq!(chunk["system_fingerprint"], "fp_fc9f1d7035");
    }
}

#[tokio::test]
async fn anthropic_answer_with_thinking_redacted_thinking_tool_use_and_cache_writes() {
    let sim = serving(Protocol::Anthropic, "anthropic/message_thinking_tool_use.json").await;
    let request = ChatRequest::user("Weather in Paris?").max_tokens(1000);
    let answer = adapter(&sim, Protocol::Anthropic).chat(Call::new("claude-sonnet-4-5", &request)).await.unwrap();
    let expected: Value = serde_json::from_str(&fixture("anthropic/message_thinking_tool_use.json")).unwrap();
    assert_eq!(
        answer.reasoning,
        vec![
            ContentPart::Thinking {
                thinking: "The user wants the weather in Paris; I should call the tool.".into(),
                signature: Some("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds".into()),
            },
            ContentPart::RedactedThinking {
                data: "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP".into()
            },
        ]
    );
    assert_eq!(answer.text, "Let me check the weather.");
    assert_eq!(answer.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
    // every prompt token: 50 uncached + 3000 read from the cache + 2051 written to it
    let u = answer.usage;
    assert_eq!(
        (u.input_tokens, u.cached_input_tokens, u.cache_creation_input_tokens, u.output_tokens),
        (5101, Some(3000), Some(2051), 503)
    );

    // an Anthropic caller gets the blocks and the usage back as the provider sent them
    let (_g, base, _dir) = gateway(&sim, Protocol::Anthropic, "claude-sonnet-4-5").await;
    let body: Value = post_json(
        format!("{base}/v1/messages"),
        json!({"model": "r", "max_tokens": 100, "messages": [{"role": "user", "content": "?"}]}),
    )
    .await;
    for i in [0, 1, 3] {
        assert_eq!(body["content"][i], expected["content"][i], "block {i}");
    }
    assert_eq!(body["content"][2]["text"], expected["content"][2]["text"]);
    for field in ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"] {
        assert_eq!(body["usage"][field], expected["usage"][field], "{field}");
    }
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(body["container"], Value::Null);
    assert_eq!(body["id"], expected["id"]);

    // an OpenAI caller: the tool call, every prompt token, and no thinking (no place for it)
    let body: Value = post_json(
        format!("{base}/v1/chat/completions"),
        json!({"model": "r", "messages": [{"role": "user", "content": "?"}]}),
    )
    .await;
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], "Let me check the weather.");
    assert_eq!(message["tool_calls"][0]["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(body["usage"]["prompt_tokens"], 5101);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 3000);
}

#[tokio::test]
async fn anthropic_stream_with_thinking_and_a_stop_sequence() {
    let sim = serving(Protocol::Anthropic, "anthropic/stream_thinking_stop_sequence.sse").await;
    let answer = streamed(adapter(&sim, Protocol::Anthropic).as_ref(), "claude-sonnet-4-5").await;
    assert_eq!(
        answer.reasoning,
        vec![ContentPart::Thinking {
            thinking: "Count to three, then stop.".into(),
            signature: Some("EqQBCgIYAhIM1gbcDa9GJwZA".into())
        }]
    );
    assert_eq!(answer.text, "one, two, three");
    assert_eq!(answer.stop_sequence.as_deref(), Some("four"));
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!((answer.usage.input_tokens, answer.usage.cached_input_tokens), (1812, Some(1800)));

    let (_g, base, _dir) = gateway(&sim, Protocol::Anthropic, "claude-sonnet-4-5").await;
    let text = post_text(
        format!("{base}/v1/messages"),
        json!({"model": "r", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "?"}]}),
    )
    .await;
    let events = sse_data(&text);
    let thinking: String = events
        .iter()
        .filter(|e| e["delta"]["type"] == "thinking_delta")
        .map(|e| e["delta"]["thinking"].as_str().unwrap())
        .collect();
    assert_eq!(thinking, "Count to three, then stop.");
    let start = events.iter().find(|e| e["type"] == "message_start").unwrap();
    assert_eq!(start["message"]["id"], "msg_01Vx7", "the upstream's message id: {text}");
    assert!(
        events
            .iter()
            .any(|e| e["delta"] == json!({"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}))
    );
    let delta = events.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"], json!({"stop_reason": "stop_sequence", "stop_sequence": "four"}), "{text}");
    assert_eq!(delta["usage"]["input_tokens"], 12);
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 1800);
    assert_eq!(delta["usage"]["output_tokens"], 87);
}

#[tokio::test]
async fn reasoning_content_of_openai_compatible_servers_is_thinking() {
    let sim = serving(Protocol::Openai, "openai/stream_reasoning_content.sse").await;
    let answer = streamed(adapter(&sim, Protocol::Openai).as_ref(), "deepseek-reasoner").await;
    assert_eq!(
        answer.reasoning,
        vec![ContentPart::Thinking { thinking: "Two plus two is four.".into(), signature: None }]
    );
    assert_eq!(answer.text, "4");
    assert_eq!(answer.usage.reasoning_tokens, Some(17));

    // an Anthropic caller gets a thinking block (with no signature: this provider gives none)
    let (_g, base, _dir) = gateway(&sim, Protocol::Openai, "deepseek-reasoner").await;
    let text = post_text(
        format!("{base}/v1/messages"),
        json!({"model": "r", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "2+2?"}]}),
    )
    .await;
    let events = sse_data(&text);
    let first = events.iter().find(|e| e["type"] == "content_block_start").unwrap();
    assert_eq!(first["content_block"]["type"], "thinking", "{text}");
    let thinking: String = events
        .iter()
        .filter(|e| e["delta"]["type"] == "thinking_delta")
        .map(|e| e["delta"]["thinking"].as_str().unwrap())
        .collect();
    assert_eq!(thinking, "Two plus two is four.");
    // and an OpenAI caller gets it back where it came from
    let text = post_text(
        format!("{base}/v1/chat/completions"),
        json!({"model": "r", "stream": true, "messages": [{"role": "user", "content": "2+2?"}]}),
    )
    .await;
    let reasoning: String = sse_data(&text)
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(reasoning, "Two plus two is four.", "{text}");
}
