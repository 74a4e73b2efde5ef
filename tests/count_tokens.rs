//! Token counting (`POST /v1/messages/count_tokens`, `Router::count_tokens`) against the
//! simulated providers: Anthropic targets asked, OpenAI models counted with their tokenizer,
//! failover between targets, no rate budget spent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::TestGateway;
use switchyard::Protocol;
use switchyard::sim::{Fault, FaultRule, SimServer};

fn policy_text(sim: &SimServer) -> String {
    format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
{providers}
[routes.claude]
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5", limits = {{ rpm = 1 }} }}, {{ provider = "anthropic", model = "claude-haiku-4-5" }}]
[routes.gpt]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "anthropic", model = "claude-haiku-4-5" }}]
[routes.local-first]
targets = [{{ provider = "openai", model = "llama-3.1-70b" }}, {{ provider = "anthropic", model = "claude-haiku-4-5" }}]
[routes.uncountable]
targets = [{{ provider = "openai", model = "llama-3.1-70b" }}]
[routes.gpt-tight]
targets = [{{ provider = "openai", model = "gpt-4o", limits = {{ tpm = 16390 }} }}]
[routes.mistral-tight]
targets = [{{ provider = "openai", model = "mistral-large", limits = {{ tpm = 16390 }} }}]
"#,
        providers = sim.providers_toml()
    )
}

struct Setup {
    sim: SimServer,
    gateway: TestGateway,
}

async fn setup() -> Setup {
    let sim = support::sim().await;
    let gateway = support::gateway_with(&policy_text(&sim), &[]).await;
    Setup { sim, gateway }
}

/// What the Anthropic SDK's `messages.count_tokens` sends.
fn count_body(model: &str) -> Value {
    json!({
        "model": model,
        "system": "You are a careful assistant.",
        "messages": [{"role": "user", "content": "How many tokens is this sentence, roughly?"}],
        "tools": [{"name": "lookup", "description": "Look a word up", "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}}}],
    })
}

async fn count(s: &Setup, model: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/v1/messages/count_tokens", s.gateway.addr()))
        .header("anthropic-version", "2023-06-01")
        .json(&count_body(model))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn an_anthropic_target_is_asked_with_what_its_endpoint_takes() {
    let s = setup().await;
    let r = count(&s, "claude").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        (header(&r, "x-switchyard-model"), header(&r, "x-switchyard-counted")),
        ("claude-sonnet-4-5", "by-provider")
    );
    let answer: Value = r.json().await.unwrap();
    let sent = s.sim.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].endpoint, "/v1/messages/count_tokens");
    let body = sent[0].body.as_object().unwrap();
    assert!(!body.contains_key("max_tokens") && !body.contains_key("stream"), "{body:?}");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["tools"][0]["name"], "lookup");
    // the simulator counts a token per four characters of the strings it was sent: the answer
    // is its count, unchanged
    fn chars(v: &Value) -> usize {
        match v {
            Value::String(s) => s.chars().count(),
            Value::Array(a) => a.iter().map(chars).sum(),
            Value::Object(o) => o.values().map(chars).sum(),
            _ => 0,
        }
    }
    let sent_chars: usize = ["messages", "system", "tools"].iter().filter_map(|k| body.get(*k)).map(chars).sum();
    assert_eq!(answer["input_tokens"].as_u64(), Some((sent_chars / 4) as u64), "{answer}");
}

#[tokio::test]
async fn a_failing_target_fails_over_and_no_rate_budget_is_spent() {
    let s = setup().await;
    // `claude-sonnet-4-5` has rpm = 1: three counts and a chat still pass through it
    for _ in 0..3 {
        let r = count(&s, "claude").await;
        assert_eq!((r.status().as_u16(), header(&r, "x-switchyard-model")), (200, "claude-sonnet-4-5"));
    }
    let chat = json!({"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/messages", s.gateway.addr()))
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-switchyard-model"), "claude-sonnet-4-5", "its one request a minute was still there");
    // overloaded: the next target counts
    s.sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::status(529)).model("claude-sonnet-4-5"));
    let r = count(&s, "claude").await;
    assert_eq!(r.status(), 200);
    assert_eq!((header(&r, "x-switchyard-model"), header(&r, "x-switchyard-attempts")), ("claude-haiku-4-5", "2"));
}

#[tokio::test]
async fn an_openai_model_is_counted_with_its_tokenizer_without_a_call() {
    let s = setup().await;
    let r = count(&s, "gpt").await;
    assert_eq!(r.status(), 200);
    assert_eq!((header(&r, "x-switchyard-model"), header(&r, "x-switchyard-counted")), ("gpt-4o-mini", "locally"));
    let answer: Value = r.json().await.unwrap();
    assert!(s.sim.requests().is_empty(), "no provider was called");
    // the same count as the library's
    let decoded =
        switchyard::wire::decode(Protocol::Anthropic, serde_json::to_vec(&count_body("gpt")).unwrap()).unwrap();
    let local = switchyard::tokens::count_openai("gpt-4o-mini", &decoded.request).unwrap();
    assert_eq!(answer["input_tokens"].as_u64(), Some(local));
    // a model whose tokenizer is unknown is passed over for one that can count
    let r = count(&s, "local-first").await;
    assert_eq!((r.status().as_u16(), header(&r, "x-switchyard-model")), (200, "claude-haiku-4-5"));
    // and when no target can count, the 400 says why
    let r = count(&s, "uncountable").await;
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("no tokenizer is known for `llama-3.1-70b`"), "{text}");
}

#[tokio::test]
async fn the_library_call_counts_on_the_route() {
    let s = setup().await;
    let router = s.gateway.router();
    let request =
        switchyard::ChatRequest::new([switchyard::chat::Message::text(switchyard::chat::Role::User, "Hello there")]);
    let counted = router.count_tokens("gpt", request.clone()).await.unwrap();
    assert_eq!(counted.count.input_tokens, 3 + 3 + 1 + 2);
    assert!(counted.count.local);
    let counted = router.count_tokens("claude", request).await.unwrap();
    assert!(!counted.count.local && counted.provider == "anthropic");
    assert!(router.count_tokens("nope", switchyard::ChatRequest::new([])).await.is_err());
}

/// The token limits use the tokenizer's count where one is known: 20,000 times "a " is ~20,000
/// tokens (an estimate from its characters says 10,000), beyond a tpm of 16,390 on GPT-4o;
/// on a model whose tokenizer is unknown the estimate fits.
#[tokio::test]
async fn token_limits_count_with_the_tokenizer_where_one_is_known() {
    let s = setup().await;
    let router = s.gateway.router();
    let request = switchyard::ChatRequest::user("a ".repeat(20_000)).max_tokens(1);
    let refused = router.chat("gpt-tight", request.clone()).await.unwrap_err();
    let skip = refused.failure().unwrap().attempts[0].skip_reason.clone();
    assert_eq!(skip, Some(switchyard::router::SkipReason::TooLarge), "{refused}");
    let served = router.chat("mistral-tight", request).await.unwrap();
    assert_eq!(served.response.model, "mistral-large");
}

/// A count is not chat: a counting endpoint that is missing (404) or rate limited (429) neither
/// trips the model's breaker nor pauses it for chat.
#[tokio::test]
async fn count_failures_leave_the_models_chat_health_alone() {
    let s = setup().await;
    let rule = s.sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::status(404)).model("claude-sonnet-4-5"));
    for _ in 0..3 {
        let r = count(&s, "claude").await;
        assert_eq!((r.status().as_u16(), header(&r, "x-switchyard-model")), (200, "claude-haiku-4-5"));
    }
    s.sim.remove_fault(rule);
    s.sim.add_fault(
        FaultRule::new(
            Protocol::Anthropic,
            Fault::Status {
                status: 429,
                error_type: None,
                code: None,
                message: None,
                retry_after: Some("30".into()),
                retry_after_ms: None,
                should_retry: None,
            },
        )
        .model("claude-sonnet-4-5")
        .first(1),
    );
    assert_eq!(header(&count(&s, "claude").await, "x-switchyard-model"), "claude-haiku-4-5");
    let chat = json!({"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/messages", s.gateway.addr()))
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-switchyard-model"), "claude-sonnet-4-5", "no breaker opened, no pause taken");
    let health = s.gateway.router().health();
    let sonnet = health.targets.iter().find(|t| t.model == "claude-sonnet-4-5").unwrap();
    assert_eq!(sonnet.state.breaker, switchyard::router::BreakerState::Closed);
}

/// An image cannot be counted locally: the OpenAI target is passed over before any call and the
/// Anthropic one counts; members the counting endpoint takes, newer ones included, reach it.
#[tokio::test]
async fn what_a_local_count_cannot_take_goes_to_a_provider_that_can_with_the_callers_members() {
    let s = setup().await;
    let mut body = count_body("gpt");
    body["messages"][0]["content"] = json!([
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
    ]);
    body["context_management"] = json!({"edits": []});
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/messages/count_tokens", s.gateway.addr()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        (header(&r, "x-switchyard-model"), header(&r, "x-switchyard-counted")),
        ("claude-haiku-4-5", "by-provider")
    );
    let sent = s.sim.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["context_management"], json!({"edits": []}), "{:?}", sent[0].body);
    assert!(sent[0].body.get("max_tokens").is_none());
}

#[tokio::test]
async fn what_the_provider_answers_beyond_the_count_comes_back_as_it_came() {
    let s = setup().await;
    // an answer with a member this release has no field for (as with a context-management beta)
    let answer = r#"{"input_tokens":12,"context_management":{"original_input_tokens":20}}"#;
    let fault = Fault::RawBody { status: 200, content_type: "application/json".into(), body: answer.into() };
    s.sim.add_fault(FaultRule::new(Protocol::Anthropic, fault).model("claude-sonnet-4-5"));
    let r = count(&s, "claude").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"input_tokens": 12, "context_management": {"original_input_tokens": 20}}));
}
