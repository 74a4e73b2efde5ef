//! `switchyard serve` in front of simulated providers, with reqwest as the client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use support::TestGateway;
use switchyard::Protocol;
use switchyard::sim::{Fault, FaultRule, SimServer};

fn policy_text(sim: &SimServer, extra: &str) -> String {
    format!(
        r#"
[defaults]
retry = {{ max_attempts = 2, base = "10ms", retry_after_cap = "100ms" }}
timeouts = {{ first_token = "2s", idle = "2s", total = "10s" }}
{providers}
[routes.chat]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
[routes.solo]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}]
[routes.claude]
targets = [{{ provider = "anthropic", model = "claude-opus-4-6" }}]
{extra}
"#,
        providers = sim.providers_toml()
    )
}

struct Setup {
    sim: SimServer,
    gateway: TestGateway,
    base: String,
    policy: PathBuf,
}

async fn setup(extra: &str) -> Setup {
    let sim = support::sim().await;
    let gateway = support::gateway_with(&policy_text(&sim, extra), &[]).await;
    let (base, policy) = (gateway.base.clone(), gateway.policy_path());
    Setup { sim, gateway, base, policy }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

fn openai_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hello there"}],
        "max_completion_tokens": 50,
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

fn anthropic_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 50,
        "system": "be brief",
        "messages": [{"role": "user", "content": "Hello there"}],
        "stream": stream,
    })
}

/// SSE `data:` payloads of a body, in order.
fn data_lines(body: &str) -> Vec<String> {
    body.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect()
}

fn event_names(body: &str) -> Vec<String> {
    body.lines().filter_map(|l| l.strip_prefix("event: ")).map(str::to_owned).collect()
}

#[tokio::test]
async fn openai_endpoint_answers_and_names_the_model_that_served() {
    let s = setup("").await;
    let r = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&openai_body("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "openai");
    assert_eq!(r.headers()["x-switchyard-attempts"], "1");
    assert!(r.headers().contains_key("x-switchyard-upstream-request-id"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from gpt-4o-mini. You said: Hello there");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 7);
    // the system prompt reached the provider
    let seen = s.sim.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body["messages"][0]["role"], "system");
}

#[tokio::test]
async fn failover_is_visible_in_headers_model_and_usage() {
    let s = setup("").await;
    s.sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)));
    let r = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&openai_body("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "anthropic");
    assert_eq!(r.headers()["x-switchyard-model"], "claude-sonnet-4-5");
    assert_eq!(r.headers()["x-switchyard-attempts"], "3");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(s.sim.request_count(Protocol::Openai, None), 2);
}

#[tokio::test]
async fn openai_streaming_sends_chunks_usage_and_done() {
    let s = setup("").await;
    let r =
        client().post(format!("{}/v1/chat/completions", s.base)).json(&openai_body("chat", true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = r.text().await.unwrap();
    let data = data_lines(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello from gpt-4o-mini. You said: Hello there");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
    assert!(chunks.iter().any(|c| c["usage"]["completion_tokens"] == 7));
    assert!(chunks.iter().all(|c| c["model"] == "gpt-4o-mini"));
}

#[tokio::test]
async fn anthropic_endpoint_answers_streaming_and_not() {
    let s = setup("").await;
    let r =
        client().post(format!("{}/v1/messages", s.base)).json(&anthropic_body("claude", false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-opus-4-6");
    assert_eq!(v["content"][0]["text"], "Hello from claude-opus-4-6. You said: Hello there");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["output_tokens"], 7);

    let r = client().post(format!("{}/v1/messages", s.base)).json(&anthropic_body("chat", true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let names = event_names(&body);
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    let text: String = data_lines(&body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Hello from gpt-4o-mini. You said: Hello there");
}

#[tokio::test]
async fn a_mid_stream_failure_ends_with_an_error_event_and_no_terminator() {
    let s = setup("").await;
    s.sim.add_fault(FaultRule::new(Protocol::Openai, Fault::Cut { after_tokens: 3 }));
    let r =
        client().post(format!("{}/v1/chat/completions", s.base)).json(&openai_body("solo", true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let data = data_lines(&body);
    assert!(!data.iter().any(|d| d == "[DONE]"), "{body}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["switchyard"]["class"], "stream_interrupted", "{body}");

    let r = client().post(format!("{}/v1/messages", s.base)).json(&anthropic_body("solo", true)).send().await.unwrap();
    let body = r.text().await.unwrap();
    let names = event_names(&body);
    assert_eq!(names.last().map(String::as_str), Some("error"), "{body}");
    assert!(!names.iter().any(|n| n == "message_stop"), "{body}");
}

#[tokio::test]
async fn an_in_stream_error_after_content_keeps_its_own_class() {
    let s = setup("").await;
    // OpenAI's in-stream server error, to an OpenAI caller
    s.sim.add_fault(FaultRule::new(Protocol::Openai, Fault::StreamError { after_tokens: 3, error_type: None }));
    let r =
        client().post(format!("{}/v1/chat/completions", s.base)).json(&openai_body("solo", true)).send().await.unwrap();
    let body = r.text().await.unwrap();
    let last: Value = serde_json::from_str(data_lines(&body).last().unwrap()).unwrap();
    assert_eq!(last["error"]["switchyard"]["class"], "server_error", "{body}");
    assert_eq!(last["error"]["switchyard"]["mid_stream"], true, "{body}");
    assert!(last["error"]["message"].as_str().unwrap().contains("interrupted"), "{body}");

    // Anthropic's in-stream overloaded_error, to an Anthropic caller
    s.sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::StreamError { after_tokens: 3, error_type: None }));
    let r =
        client().post(format!("{}/v1/messages", s.base)).json(&anthropic_body("claude", true)).send().await.unwrap();
    let body = r.text().await.unwrap();
    let error = body.split("event: error\ndata: ").nth(1).expect("an error event");
    let error: Value = serde_json::from_str(error.lines().next().unwrap()).unwrap();
    assert_eq!(error["error"]["type"], "overloaded_error", "{body}");
    assert_eq!(error["switchyard"]["class"], "overloaded", "{body}");
    assert_eq!(error["switchyard"]["mid_stream"], true, "{body}");
}

#[tokio::test]
async fn errors_come_in_the_callers_dialect_with_fitting_statuses() {
    let s = setup("").await;
    // every target rate limited beyond the cap: 429 with Retry-After
    s.sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status_retry_after(429, "5")));
    let r = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&openai_body("solo", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["switchyard"]["class"], "rate_limited");
    assert_eq!(v["error"]["switchyard"]["attempts"].as_array().unwrap().len(), 1);
    s.sim.clear_faults();

    s.sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::status(529)));
    let r =
        client().post(format!("{}/v1/messages", s.base)).json(&anthropic_body("claude", false)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert_eq!(v["switchyard"]["class"], "overloaded");

    let r = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&openai_body("nope", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let huge = "x".repeat(5 * 1024 * 1024);
    let r = client().post(format!("{}/v1/chat/completions", s.base)).body(huge).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["switchyard"]["class"], "request_too_large");
    let r = client().post(format!("{}/v1/messages", s.base)).body("[]").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn models_healthz_metrics_and_admin_state() {
    let s = setup("").await;
    let r = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&openai_body("chat", false))
        .send()
        .await
        .unwrap();
    // what the answer cost, at gpt-4o-mini's prices
    let cost: f64 = r.headers()["x-switchyard-cost-usd"].to_str().unwrap().parse().unwrap();
    let v: Value = r.json().await.unwrap();
    let (input, output) =
        (v["usage"]["prompt_tokens"].as_f64().unwrap(), v["usage"]["completion_tokens"].as_f64().unwrap());
    assert!((cost - (input * 0.15 + output * 0.60) / 1e6).abs() < 1e-9, "{cost}");
    let v: Value = client().get(format!("{}/v1/models", s.base)).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, vec!["chat", "claude", "solo"]);
    // what each route's models can do, from the profiles
    let chat = &v["data"][0];
    assert_eq!(chat["targets"], json!(["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]));
    let gpt = &chat["models"][0];
    assert_eq!((gpt["protocol"].as_str(), gpt["context_window"].as_u64()), (Some("openai"), Some(128_000)));
    assert!(gpt["accepts"].as_array().unwrap().contains(&json!("vision")), "{gpt}");
    assert_eq!(
        (gpt["counts_tokens"].as_bool(), chat["models"][1]["counts_tokens"].as_bool()),
        (Some(true), Some(true))
    );
    let accepts = chat["capabilities"]["accepts"].as_array().unwrap();
    assert!(accepts.contains(&json!("tools")) && accepts.contains(&json!("pdf")), "{chat}");
    assert_eq!(
        chat["capabilities"]["context_window"].as_u64(),
        chat["models"][1]["context_window"].as_u64().max(Some(128_000))
    );
    let v: Value = client().get(format!("{}/healthz", s.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["policy_version"], 1);
    let count = json!({"model": "claude", "messages": [{"role": "user", "content": "Hello there"}]});
    let r = client().post(format!("{}/v1/messages/count_tokens", s.base)).json(&count).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let metrics = client().get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("switchyard_attempts_total"), "{metrics}");
    assert!(
        metrics.lines().any(|l| l.starts_with("switchyard_cost_usd_total{") && l.contains("gpt-4o-mini")),
        "{metrics}"
    );
    // attempts say what they did: a count's are not a chat's
    for operation in ["chat", "count_tokens"] {
        let series = format!("operation=\"{operation}\"");
        assert!(
            metrics.lines().any(|l| l.starts_with("switchyard_attempts_total") && l.contains(&series)),
            "{metrics}"
        );
    }
    assert!(metrics.contains("switchyard_requests_total"), "{metrics}");
    assert!(metrics.contains("switchyard_attempt_duration_seconds_bucket"), "{metrics}");
    let v: Value = client().get(format!("{}/admin/state", s.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["policy_version"], 1);
    assert!(v["policy_hash"].as_str().is_some_and(|h| h.len() == 16));
    assert!(v["targets"].as_array().unwrap().iter().any(|t| t["model"] == "gpt-4o-mini" && t["breaker"] == "closed"));
    assert_eq!(v["last_reload_error"], Value::Null);
}

#[tokio::test]
async fn the_policy_reloads_through_the_file_while_requests_flow() {
    let s = setup("").await;
    let url = format!("{}/v1/chat/completions", s.base);
    // requests flow from before the file changes until after the new policy serves
    let stop = Arc::new(AtomicBool::new(false));
    let flowing = tokio::spawn({
        let (url, stop) = (url.clone(), stop.clone());
        async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = client().post(&url).json(&openai_body("solo", false)).send().await.unwrap();
                statuses.push(r.status().as_u16());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            statuses
        }
    });
    assert!(support::eventually(Duration::from_secs(10), || s.sim.request_count(Protocol::Openai, None) > 0).await);
    let text = policy_text(&s.sim, "").replace(
        "[routes.solo]\ntargets = [{ provider = \"openai\", model = \"gpt-4o-mini\" }]",
        "[routes.solo]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]",
    );
    let tmp = s.policy.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &s.policy).unwrap();
    let reloaded =
        support::eventually(Duration::from_secs(10), || s.sim.request_count(Protocol::Openai, Some("gpt-4o")) > 0)
            .await;
    stop.store(true, Ordering::Relaxed);
    let statuses = flowing.await.unwrap();
    assert!(reloaded, "the new policy never served");
    assert!(statuses.iter().all(|&st| st == 200), "{statuses:?}");
    let v: Value = client().post(&url).json(&openai_body("solo", false)).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["model"], "gpt-4o");
    let state: Value = client().get(format!("{}/admin/state", s.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["policy_version"], 2);
    drop(s.gateway);
}

#[tokio::test]
async fn shutdown_lets_a_stream_in_flight_finish() {
    let s = setup("").await;
    s.sim.add_fault(FaultRule::new(
        Protocol::Openai,
        Fault::SlowFirstToken { delay: switchyard::duration::DurationStr::new(Duration::from_millis(300)) },
    ));
    let url = format!("{}/v1/chat/completions", s.base);
    let in_flight = tokio::spawn(async move {
        let r = client().post(&url).json(&openai_body("solo", true)).send().await.unwrap();
        r.text().await.unwrap()
    });
    // shut down once the stream is in flight: its request has reached the provider
    let reached = support::eventually(Duration::from_secs(10), || s.sim.request_count(Protocol::Openai, None) > 0);
    assert!(reached.await, "the request never reached the provider");
    s.gateway.shutdown().await;
    let body = in_flight.await.unwrap();
    assert_eq!(data_lines(&body).last().map(String::as_str), Some("[DONE]"), "{body}");
}

/// Client authentication needs the keys in the server's environment: run the binary.
#[tokio::test]
async fn client_keys_are_required_when_configured() {
    let sim = support::sim().await;
    let policy = policy_text(&sim, "[server]\napi_keys_env = \"SWITCHYARD_TEST_KEYS\"\n");
    let serve = support::serve_binary(&policy, &[("SWITCHYARD_TEST_KEYS", "key-one, key-two")], Stdio::null()).await;
    let (mut child, port, base) = (serve.child, serve.port, serve.base);
    let url = format!("{base}/v1/chat/completions");
    let r = client().post(&url).json(&openai_body("chat", false)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client().post(&url).bearer_auth("key-three").json(&openai_body("chat", false)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client().post(&url).bearer_auth("key-two").json(&openai_body("chat", false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "key-one")
        .json(&anthropic_body("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client().get(format!("{base}/admin/state")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(client().get(format!("{base}/healthz")).send().await.unwrap().status(), 200);

    // an unauthenticated 4 MB upload: the 401 comes from the headers alone, before any body byte
    // (none is ever sent here: a gateway that read the body first would still be waiting)
    for (path, wire) in [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4194304\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer))
            .await
            .expect("answered without the body")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 401"), "{wire}: {answer}");
    }
    let _ = child.kill().await;
}

#[tokio::test]
async fn streams_and_concurrency_under_load_all_end_cleanly() {
    let s = setup("").await;
    s.sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)).rate(0.3));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let base = s.base.clone();
        tasks.push(tokio::spawn(async move {
            let stream = i % 2 == 0;
            let r = client()
                .post(format!("{base}/v1/chat/completions"))
                .json(&openai_body("chat", stream))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let mut body = r.bytes_stream();
            let mut all = Vec::new();
            while let Some(chunk) = body.next().await {
                all.extend_from_slice(&chunk.unwrap());
            }
            (status, stream, String::from_utf8(all).unwrap())
        }));
    }
    for t in tasks {
        let (status, stream, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        if stream {
            assert_eq!(data_lines(&body).last().map(String::as_str), Some("[DONE]"));
        }
    }
}

#[tokio::test]
async fn a_preamble_without_content_times_out_and_leaves_no_trace_in_the_callers_stream() {
    let extra = "[routes.claude_slow]\ntimeouts = { first_token = \"300ms\" }\n\
                 targets = [{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }, { provider = \"openai\", model = \"gpt-4o-mini\" }]\n\
                 [routes.gpt_slow]\ntimeouts = { first_token = \"300ms\" }\n\
                 targets = [{ provider = \"openai\", model = \"gpt-4o-mini\" }, { provider = \"anthropic\", model = \"claude-sonnet-4-5\" }]\n";
    let s = setup(extra).await;
    let slow = || Fault::SlowFirstToken { delay: switchyard::duration::DurationStr::new(Duration::from_secs(5)) };
    s.sim.add_fault(FaultRule::new(Protocol::Anthropic, slow()).first(1));

    // Anthropic caller: Claude sends message_start and a ping at once, then nothing
    let started = std::time::Instant::now();
    let r = client()
        .post(format!("{}/v1/messages", s.base))
        .json(&anthropic_body("claude_slow", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-model"], "gpt-4o-mini");
    let body = r.text().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(4), "the preamble held the request: {:?}", started.elapsed());
    let names = event_names(&body);
    assert_eq!(names.iter().filter(|n| *n == "message_start").count(), 1, "{body}");
    assert!(!body.contains("claude-sonnet-4-5"), "the abandoned preamble leaked: {body}");
    let said: String = data_lines(&body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert!(said.starts_with("Hello from gpt-4o-mini."), "{body}");

    // OpenAI caller: the role chunk at once, then nothing
    s.sim.add_fault(FaultRule::new(Protocol::Openai, slow()).first(1));
    let started = std::time::Instant::now();
    let r = client()
        .post(format!("{}/v1/chat/completions", s.base))
        .json(&openai_body("gpt_slow", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-switchyard-model"], "claude-sonnet-4-5");
    let body = r.text().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    let chunks: Vec<Value> = data_lines(&body).iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    assert!(chunks.iter().all(|c| c["model"] == "claude-sonnet-4-5"), "{body}");
    let roles = chunks.iter().filter(|c| c["choices"][0]["delta"]["role"].is_string()).count();
    assert_eq!(roles, 1, "one opening chunk: {body}");
    let attempts = &s.sim.requests();
    assert!(attempts.iter().any(|r| r.fault.as_deref() == Some("slow_first_token")));

    // time to first token, per target, from the first content (the timed-out attempts had none)
    let metrics = client().get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
    let ttft = |route: &str, model: &str| {
        metrics.lines().any(|l| {
            l.starts_with("switchyard_time_to_first_token_seconds_count")
                && l.contains(&format!("route=\"{route}\""))
                && l.contains(&format!("model=\"{model}\""))
        })
    };
    assert!(ttft("claude_slow", "gpt-4o-mini") && ttft("gpt_slow", "claude-sonnet-4-5"), "{metrics}");
    assert!(!ttft("claude_slow", "claude-sonnet-4-5"), "a preamble is no first token: {metrics}");
}

#[tokio::test]
async fn metric_labels_come_from_the_policy_never_from_the_client() {
    let s = setup("").await;
    let url = format!("{}/v1/chat/completions", s.base);
    let metrics = || async { client().get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap() };
    let r = client().post(&url).json(&openai_body("made-up-0", false)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let before = metrics().await;
    for i in 1..100 {
        let stream = i % 2 == 0;
        let r = client().post(&url).json(&openai_body(&format!("made-up-{i}"), stream)).send().await.unwrap();
        assert_eq!(r.status(), 404);
    }
    let huge = "m".repeat(1 << 20);
    let r = client().post(&url).json(&openai_body(&huge, false)).send().await.unwrap();
    assert_eq!(r.status(), 400, "beyond `[server] max_model_bytes`");
    let after = metrics().await;
    assert!(!after.contains("made-up-") && !after.contains(&huge[..1000]), "a client's name became a label");
    // a hundred names, one label: the `unknown` series did not multiply (other tests of this
    // process share the recorder, so only these series are compared)
    let unknown = |text: &str| text.lines().filter(|l| l.contains("route=\"unknown\"")).count();
    assert!(unknown(&before) > 0, "{before}");
    assert_eq!(unknown(&after), unknown(&before), "{after}");
}

#[tokio::test]
async fn requests_beyond_the_field_limits_are_refused_naming_field_and_key() {
    let s = setup("[server]\nmax_messages = 2\nmax_tools = 1\n").await;
    let url = format!("{}/v1/chat/completions", s.base);
    let refused = |body: Value| {
        let url = url.clone();
        async move {
            let r = client().post(&url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 400);
            r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned()
        }
    };
    let mut body = openai_body("solo", false);
    body["messages"].as_array_mut().unwrap().push(json!({"role": "user", "content": "more"}));
    let message = refused(body).await;
    assert!(message.contains("`messages` has 3 messages") && message.contains("max_messages"), "{message}");
    let tool = json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}});
    let mut body = openai_body("solo", false);
    body["tools"] = json!([tool.clone(), tool]);
    let message = refused(body).await;
    assert!(message.contains("`tools` has 2 tools") && message.contains("max_tools"), "{message}");
    let message = refused(openai_body(&"x".repeat(300), false)).await;
    assert!(message.contains("`model` has 300 bytes") && message.contains("max_model_bytes"), "{message}");
    // within the limits: served
    let r = client().post(&url).json(&openai_body("solo", false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.sim.requests().len() == 1, "nothing refused reached the provider");
}

#[tokio::test]
async fn the_responses_api_is_served_by_targets_of_either_wire() {
    let s = setup("").await;
    let url = format!("{}/v1/responses", s.base);
    for (route, served) in [("solo", "gpt-4o-mini"), ("claude", "claude-opus-4-6")] {
        let body = json!({"model": route, "instructions": "Be brief.", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}], "max_output_tokens": 40});
        let r = client().post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{route}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (v["object"].as_str(), v["status"].as_str(), v["model"].as_str()),
            (Some("response"), Some("completed"), Some(served))
        );
        assert_eq!(v["output"][0]["type"], "message");
        assert!(v["output"][0]["content"][0]["text"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
        assert!(
            v["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0) && v["usage"]["total_tokens"].as_u64().is_some()
        );
        if route == "solo" {
            // what the OpenAI provider answered beyond the model's members comes back as it came
            let extras = (v["service_tier"].as_str(), v["system_fingerprint"].as_str());
            assert_eq!(extras, (Some("default"), Some("fp_sim")), "{v}");
        }
    }
    // the instructions reached the Anthropic target as its system prompt
    let sent = s.sim.requests();
    let claude = sent.iter().find(|r| r.model == "claude-opus-4-6").unwrap();
    assert_eq!(claude.body["system"], "Be brief.", "{:?}", claude.body);
    assert_eq!(claude.body["max_tokens"], 40);
    // a member with no place on the chat wire skips the route's only target, by name: one 400
    // in OpenAI's error shape (a Responses target would have been sent it)
    let r =
        client().post(&url).json(&json!({"model": "solo", "input": "x", "truncation": "auto"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("`truncation auto`") && message.contains("openai/gpt-4o-mini"), "{v}");
}

/// The value of the stream's `: x-switchyard-cost-usd: ...` comment, and the line after it.
fn cost_comment(body: &str) -> Option<(f64, Option<&str>)> {
    let mut lines = body.lines();
    let cost = lines.by_ref().find_map(|l| l.strip_prefix(": x-switchyard-cost-usd: "))?;
    let next = lines.find(|l| !l.is_empty());
    Some((cost.parse().ok()?, next))
}

#[tokio::test]
async fn a_streamed_answer_ends_with_its_cost() {
    let s = setup("").await;
    let r =
        client().post(format!("{}/v1/chat/completions", s.base)).json(&openai_body("solo", true)).send().await.unwrap();
    assert!(!r.headers().contains_key("trailer"), "no trailer for a client that did not ask");
    let body = r.text().await.unwrap();
    // before `[DONE]`, after the usage chunk: a reader that stops at `[DONE]` has it
    let (cost, next) = cost_comment(&body).expect("a cost comment");
    assert_eq!(next, Some("data: [DONE]"), "{body}");
    let usage = data_lines(&body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|c| c["usage"].is_object())
        .map(|c| c["usage"].clone())
        .unwrap();
    let (input, output) = (usage["prompt_tokens"].as_f64().unwrap(), usage["completion_tokens"].as_f64().unwrap());
    assert!((cost - (input * 0.15 + output * 0.60) / 1e6).abs() < 1e-9, "{cost} for {usage}");

    // Messages: before `message_stop`
    let r =
        client().post(format!("{}/v1/messages", s.base)).json(&anthropic_body("claude", true)).send().await.unwrap();
    let body = r.text().await.unwrap();
    let (cost, next) = cost_comment(&body).expect("a cost comment");
    assert!(cost > 0.0, "{body}");
    assert_eq!(next, Some("event: message_stop"), "{body}");

    // cut after content: the error event, then what the billed prompt and output cost
    s.sim.add_fault(FaultRule::new(Protocol::Openai, Fault::Cut { after_tokens: 3 }));
    let r =
        client().post(format!("{}/v1/chat/completions", s.base)).json(&openai_body("solo", true)).send().await.unwrap();
    let body = r.text().await.unwrap();
    // before the error event: an SDK raises on the error and reads no further
    let (cost, next) = cost_comment(&body).expect("a cost comment before the error");
    assert!(cost > 0.0, "{body}");
    let error: Value = serde_json::from_str(next.and_then(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(error["error"]["switchyard"]["class"], "stream_interrupted", "{body}");
    assert_eq!(data_lines(&body).last().map(|l| l.contains("\"error\"")), Some(true), "{body}");
}

/// One HTTP/1.1 request over a plain socket, its whole response as text (reqwest does not
/// expose trailers).
async fn raw_post(base: &str, path: &str, headers: &str, body: &Value) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut response)).await.unwrap().unwrap();
    String::from_utf8(response).unwrap()
}

#[tokio::test]
async fn a_client_that_reads_trailers_gets_the_cost_in_one() {
    let s = setup("").await;
    let raw = raw_post(&s.base, "/v1/chat/completions", "te: trailers\r\n", &openai_body("solo", true)).await;
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.to_ascii_lowercase().contains("\r\ntrailer: x-switchyard-cost-usd"), "{head}");
    assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    // the last chunk, then the trailer
    let (_, trailer) = rest.rsplit_once("\r\n0\r\n").expect("a last chunk");
    let value = trailer.strip_prefix("x-switchyard-cost-usd: ").expect(trailer).trim_end();
    let (comment, _) = cost_comment(rest).unwrap();
    assert_eq!(value.parse::<f64>().unwrap(), comment, "{rest}");

    // without `TE: trailers`, none is announced or sent
    let raw = raw_post(&s.base, "/v1/chat/completions", "", &openai_body("solo", true)).await;
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    assert!(!head.to_ascii_lowercase().contains("\r\ntrailer:"), "{head}");
    assert!(rest.ends_with("\r\n0\r\n\r\n"), "{rest}");
}
