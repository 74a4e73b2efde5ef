//! The Responses API end to end: `POST /v1/responses` streamed and not, served by targets of every
//! wire (Chat Completions, Messages, and `protocol = "openai_responses"` targets, which get a
//! Responses caller's body unchanged), and Responses targets serving chat and Messages callers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::TestGateway;
use switchyard::Protocol;
use switchyard::sim::{Fault, FaultRule, SimServer};

struct Setup {
    sim: SimServer,
    _gateway: TestGateway,
    base: String,
}

async fn setup() -> Setup {
    let sim = support::sim().await;
    let policy = format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
timeouts = {{ first_token = "5s", idle = "5s", total = "20s" }}
{providers}
{responses}
[routes.chat]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}]
[routes.claude]
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
[routes.resp]
targets = [{{ provider = "responses", model = "gpt-4.1" }}]
[routes.resp-then-claude]
targets = [{{ provider = "responses", model = "gpt-4.1" }}, {{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
"#,
        providers = sim.providers_toml(),
        responses = support::responses_provider_toml(&sim)
    );
    let gateway = support::gateway_with(&policy, &[]).await;
    Setup { sim, base: gateway.base.clone(), _gateway: gateway }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// The `(event name, data)` pairs of an SSE body (comments, which SSE readers skip, left out).
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| e.lines().any(|l| !l.trim().is_empty() && !l.starts_with(':')))
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("").to_owned();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
            (name, serde_json::from_str(data).unwrap_or(Value::Null))
        })
        .collect()
}

async fn post(s: &Setup, path: &str, body: &Value) -> reqwest::Response {
    client().post(format!("{}{path}", s.base)).json(body).send().await.unwrap()
}

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

#[tokio::test]
async fn a_streamed_response_is_the_responses_event_sequence_on_every_wire() {
    let s = setup().await;
    for (route, model) in [("chat", "gpt-4o-mini"), ("claude", "claude-sonnet-4-5"), ("resp", "gpt-4.1")] {
        let body = json!({"model": route, "input": "Hello there", "stream": true, "max_output_tokens": 40,
                          "temperature": 0.5});
        let r = post(&s, "/v1/responses", &body).await;
        assert_eq!(r.status(), 200, "{route}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let text = r.text().await.unwrap();
        // what it cost, in a comment SSE readers skip, just before `response.completed`
        let blocks: Vec<&str> = text.split("\n\n").filter(|b| !b.is_empty()).collect();
        let cost = blocks.iter().rev().nth(1).and_then(|c| c.strip_prefix(": x-switchyard-cost-usd: "));
        assert!(cost.and_then(|c| c.parse::<f64>().ok()).is_some_and(|c| c > 0.0), "{route}: {text}");
        let evs = events(&text);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            &names[..4],
            ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"],
            "{route}"
        );
        assert_eq!(names.last(), Some(&"response.completed"), "{route}: {names:?}");
        for (name, data) in &evs {
            assert_eq!(data["type"].as_str(), Some(name.as_str()), "each event names itself");
        }
        let seq: Vec<u64> = evs.iter().map(|(_, d)| d["sequence_number"].as_u64().unwrap()).collect();
        assert!(seq.windows(2).all(|w| w[1] == w[0] + 1), "{seq:?}");
        let deltas: String = evs
            .iter()
            .filter(|(n, _)| n == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect();
        let done = &evs.last().unwrap().1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["model"], model);
        // the response repeats the request's settings, as OpenAI's does
        assert_eq!((done["temperature"].as_f64(), done["max_output_tokens"].as_u64()), (Some(0.5), Some(40)));
        assert_eq!(evs[0].1["response"]["temperature"], 0.5);
        assert_eq!(done["output"][0]["content"][0]["text"].as_str(), Some(deltas.as_str()), "{route}");
        assert!(deltas.contains("Hello there"), "{deltas}");
        assert!(done["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0), "{done}");
        assert!(names.contains(&"response.output_text.done") && names.contains(&"response.output_item.done"));
        if route == "chat" {
            // what the OpenAI upstream said beyond the model's members, as a whole answer has it
            assert_eq!(done["system_fingerprint"], "fp_sim", "{done}");
        }
    }
}

#[tokio::test]
async fn a_streamed_function_call_and_its_round_trip() {
    let s = setup().await;
    for route in ["chat", "claude", "resp"] {
        let body = json!({"model": route, "input": "What is the weather in Paris?", "tools": [weather_tool()],
                          "tool_choice": "required", "stream": true});
        let evs = events(&post(&s, "/v1/responses", &body).await.text().await.unwrap());
        let added = evs.iter().find(|(n, _)| n == "response.output_item.added").unwrap();
        assert_eq!(added.1["item"]["type"], "function_call", "{route}");
        assert_eq!(added.1["item"]["name"], "get_weather");
        let args: String = evs
            .iter()
            .filter(|(n, _)| n == "response.function_call_arguments.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect();
        let done = &evs.last().unwrap().1["response"];
        assert_eq!(done["output"][0]["arguments"].as_str(), Some(args.as_str()), "{route}");
        assert!(serde_json::from_str::<Value>(&args).is_ok(), "{args}");
        let call_id = done["output"][0]["call_id"].clone();
        // the next turn hands the call and its output back
        let next = json!({"model": route, "tools": [weather_tool()], "input": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": call_id, "name": "get_weather", "arguments": args},
            {"type": "function_call_output", "call_id": call_id, "output": "sunny, 21C"},
        ]});
        let r = post(&s, "/v1/responses", &next).await;
        assert_eq!(r.status(), 200, "{route}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["output"][0]["type"], "message", "{route}: {v}");
        assert_eq!(v["tools"][0]["name"], "get_weather", "the tools are repeated: {v}");
    }
}

#[tokio::test]
async fn a_failure_mid_stream_ends_with_error_and_response_failed() {
    let s = setup().await;
    s.sim.add_fault(FaultRule::new(Protocol::Openai, Fault::StreamError { after_tokens: 2, error_type: None }));
    let body = json!({"model": "chat", "input": "Hello there, how are you today?", "stream": true});
    let evs = events(&post(&s, "/v1/responses", &body).await.text().await.unwrap());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"response.output_text.delta"), "{names:?}");
    assert_eq!(&names[names.len() - 2..], ["error", "response.failed"], "{names:?}");
    assert!(!names.contains(&"response.completed"));
    let failed = &evs.last().unwrap().1["response"];
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{failed}");
    assert_eq!(evs[evs.len() - 2].1["code"], failed["error"]["code"]);
}

#[tokio::test]
async fn a_responses_caller_body_reaches_a_responses_target_unchanged() {
    let s = setup().await;
    // member order, a number's spelling and a member only this wire has: all kept
    let text = r#"{"input":[{"role":"user","content":"Hello there"}],"prompt_cache_key":"k-1","model":"resp","temperature":0.50,"metadata":{"b":"1","a":"2"}}"#;
    let r = client()
        .post(format!("{}/v1/responses", s.base))
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["object"].as_str(), v["model"].as_str()), (Some("response"), Some("gpt-4.1")), "{v}");
    let sent = s.sim.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].endpoint, "/v1/responses");
    assert_eq!(sent[0].protocol, Protocol::OpenaiResponses);
    let expected: Value = serde_json::from_str(&text.replace(r#""model":"resp""#, r#""model":"gpt-4.1""#)).unwrap();
    let mut got = sent[0].body.clone();
    let got_map = got.as_object_mut().unwrap();
    got_map.remove("stream");
    // the gateway keeps no responses, so neither does OpenAI unless the caller says so
    assert_eq!(got_map.remove("store"), Some(json!(false)));
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_responses_target_serves_chat_and_messages_callers() {
    let s = setup().await;
    // Chat Completions, whole and streamed
    let chat = json!({"model": "resp", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hello there"}],
                      "max_completion_tokens": 30, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]});
    let r = post(&s, "/v1/chat/completions", &chat).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["choices"][0]["message"]["content"].as_str().is_some_and(|t| t.contains("Hello there")), "{v}");
    assert!(v["usage"]["prompt_tokens"].as_u64().is_some_and(|n| n > 0));
    let sent = s.sim.requests().pop().unwrap();
    assert_eq!(sent.endpoint, "/v1/responses");
    assert_eq!(sent.body["instructions"], "be brief");
    assert_eq!(sent.body["max_output_tokens"], 30);
    assert_eq!(sent.body["input"], json!([{"role": "user", "content": "Hello there"}]));
    // the chat meaning of a tool without `strict` is said outright
    assert_eq!(
        sent.body["tools"][0],
        json!({"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": false})
    );
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let body = post(&s, "/v1/chat/completions", &streamed).await.text().await.unwrap();
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let text: String = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str).map(str::to_owned))
        .collect();
    assert!(text.contains("Hello there"), "{body}");
    // Anthropic Messages, streamed
    let messages = json!({"model": "resp", "max_tokens": 30, "stream": true, "messages": [{"role": "user", "content": "Hello there"}]});
    let r = client()
        .post(format!("{}/v1/messages", s.base))
        .header("anthropic-version", "2023-06-01")
        .json(&messages)
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("event: message_stop"), "{body}");
    // a chat member the Responses API has no place for is refused by name, never dropped
    let mut n = chat.clone();
    n["logit_bias"] = json!({"50256": -100});
    let r = post(&s, "/v1/chat/completions", &n).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("logit_bias"), "{v}");
}

#[tokio::test]
async fn a_failing_responses_target_fails_over_streamed_or_not() {
    let s = setup().await;
    s.sim.add_fault(FaultRule::new(Protocol::OpenaiResponses, Fault::status(500)));
    for stream in [false, true] {
        let body = json!({"model": "resp-then-claude", "input": "Hello there", "stream": stream});
        let r = post(&s, "/v1/responses", &body).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchyard-model"], "claude-sonnet-4-5");
        let text = r.text().await.unwrap();
        assert!(text.contains("Hello there"), "{text}");
    }
    assert_eq!(s.sim.request_count(Protocol::OpenaiResponses, None), 2);
    // a stream that fails before any content fails over too
    s.sim.clear_faults();
    s.sim
        .add_fault(FaultRule::new(Protocol::OpenaiResponses, Fault::StreamError { after_tokens: 0, error_type: None }));
    let body = json!({"model": "resp-then-claude", "input": "Hello there", "stream": true});
    let r = post(&s, "/v1/responses", &body).await;
    assert_eq!(r.headers()["x-switchyard-model"], "claude-sonnet-4-5");
    let evs = events(&r.text().await.unwrap());
    assert_eq!(evs.last().map(|(n, _)| n.as_str()), Some("response.completed"));
}
