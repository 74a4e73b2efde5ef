//! Spending budgets: `budget = { usd, per }` on a provider skips it once spent; on a route, or
//! when every target's provider is spent, the request is refused with `budget_exhausted` and the
//! time the window resets. What was spent survives a reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::TestGateway;
use switchyard::chat::{Message, Role};
use switchyard::error::ErrorClass;
use switchyard::router::SkipReason;
use switchyard::sim::SimServer;
use switchyard::{ChatRequest, Policy, Router};

fn policy(sim: &SimServer) -> String {
    // one answer of the simulator costs a few millionths of a dollar: $0.000001 is one answer
    format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
{openai}{anthropic}[routes.chat]
targets = [{{ provider = "openai", model = "gpt-4o" }}, {{ provider = "anthropic", model = "claude-haiku-4-5" }}]
[routes.openai-only]
targets = [{{ provider = "openai", model = "gpt-4o" }}]
[routes.capped]
budget = {{ usd = 0.000001, per = "1h" }}
targets = [{{ provider = "anthropic", model = "claude-haiku-4-5" }}]
[routes.capped-free]
targets = [{{ provider = "anthropic", model = "claude-haiku-4-5" }}]
"#,
        openai = support::provider_toml(
            "openai",
            "openai",
            &sim.openai_base_url(),
            "budget = { usd = 0.000001, per = \"1d\" }"
        ),
        anthropic = support::provider_toml("anthropic", "anthropic", &sim.anthropic_base_url(), "")
    )
}

fn hello() -> ChatRequest {
    ChatRequest::new([Message::text(Role::User, "Hello there")])
}

#[tokio::test]
async fn a_spent_provider_budget_skips_then_refuses_and_survives_a_reload() {
    let sim = support::sim().await;
    let text = policy(&sim);
    let router = Router::new(Policy::from_toml(&text, "inline").unwrap());
    // the first answer spends OpenAI's budget for the day
    let first = router.chat("chat", hello()).await.unwrap();
    assert_eq!(first.response.model, "gpt-4o");
    assert!(first.cost_usd().unwrap() > 0.000001);
    let next = router.chat("chat", hello()).await.unwrap();
    assert_eq!(next.response.model, "claude-haiku-4-5");
    assert_eq!(next.attempts[0].skip_reason, Some(SkipReason::Budget));
    assert_eq!(next.attempts[0].skip_reason.as_ref().map(SkipReason::as_str), Some("budget"));
    // with nothing else to try: budget_exhausted, and when it resets (within the day)
    let e = router.chat("openai-only", hello()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::BudgetExhausted);
    let f = e.failure().unwrap();
    assert!(f.retry_after.is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(86_400)), "{f:?}");
    assert!(f.message.contains("openai") && f.message.contains("budget"), "{}", f.message);
    // the budget and what it spent, in the router's state
    let health = serde_json::to_value(router.health()).unwrap();
    let openai = health["budgets"].as_array().unwrap().iter().find(|b| b["name"] == "openai").unwrap().clone();
    assert_eq!((openai["scope"].as_str(), openai["per"].as_str()), (Some("provider"), Some("1day")), "{openai}");
    assert!(openai["spent_usd"].as_f64().unwrap() > 0.000001, "{openai}");
    // a reload keeps what was spent
    router.apply(Policy::from_toml(&text, "inline").unwrap());
    assert_eq!(router.chat("openai-only", hello()).await.unwrap_err().class(), ErrorClass::BudgetExhausted);
    assert_eq!(sim.request_count(switchyard::Protocol::Openai, None), 1, "a spent budget sends nothing");
}

#[tokio::test]
async fn a_spent_route_budget_is_a_429_budget_exhausted_with_retry_after() {
    let sim = support::sim().await;
    let gateway = support::gateway_with(&policy(&sim), &[]).await;
    let url = gateway.url("/v1/chat/completions");
    let body = json!({"model": "capped", "messages": [{"role": "user", "content": "Hello there"}]});
    let client = reqwest::Client::new();
    assert_eq!(client.post(&url).json(&body).send().await.unwrap().status(), 200);
    let r = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["switchyard"]["class"], "budget_exhausted", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("route `capped` spent its budget"), "{v}");
}

/// A gateway in front of the simulator with the client keys `keys` (a key file's text).
struct KeyedGateway {
    sim: SimServer,
    _gateway: TestGateway,
    base: String,
}

async fn gateway_with_keys(keys: &str) -> KeyedGateway {
    let sim = support::sim().await;
    let policy = format!("[server]\nkeys_file = \"keys.toml\"\n{}", policy(&sim));
    let gateway = support::gateway_with(&policy, &[("keys.toml", keys)]).await;
    KeyedGateway { sim, base: gateway.base.clone(), _gateway: gateway }
}

#[tokio::test]
async fn a_client_key_with_a_spent_budget_is_refused_and_the_others_are_not() {
    let g = gateway_with_keys(
        "[keys.alice]\nkey = \"sk-alice\"\nbudget = { usd = 0.000001, per = \"1h\" }\n[keys.ops]\nkey = \"sk-ops\"\nadmin = true\n",
    )
    .await;
    let base = g.base.clone();
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "Hello there"}]});
    let client = reqwest::Client::new();
    let call =
        |key: &'static str| client.post(format!("{base}/v1/chat/completions")).bearer_auth(key).json(&body).send();
    assert_eq!(call("sk-alice").await.unwrap().status(), 200, "the first answer spends alice's hour");
    let r = call("sk-alice").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["switchyard"]["class"], "budget_exhausted", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("key `alice` spent its budget"), "{v}");
    assert_eq!(call("sk-ops").await.unwrap().status(), 200, "another key is not charged");
    let state: Value =
        client.get(format!("{base}/admin/state")).bearer_auth("sk-ops").send().await.unwrap().json().await.unwrap();
    let alice = state["budgets"].as_array().unwrap().iter().find(|b| b["name"] == "alice").unwrap().clone();
    assert_eq!(alice["scope"], "key", "{alice}");
    assert!(alice["spent_usd"].as_f64().unwrap() > 0.000001, "{alice}");
    assert!(!state.to_string().contains("sk-alice"), "no key in the state");
}

/// What the key `name` has spent, from `/admin/state`.
async fn key_spent(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let state: Value =
        client.get(format!("{base}/admin/state")).bearer_auth("sk-ops").send().await.unwrap().json().await.unwrap();
    state["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .map_or(0.0, |b| b["spent_usd"].as_f64().unwrap())
}

#[tokio::test]
async fn a_client_that_goes_away_mid_answer_is_charged_what_the_provider_billed() {
    use futures::StreamExt;
    use switchyard::duration::DurationStr;
    use switchyard::sim::{Fault, FaultRule};
    let g = gateway_with_keys(
        "[keys.streamer]\nkey = \"sk-streamer\"\nbudget = { usd = 1, per = \"1h\" }\n\
         [keys.waiter]\nkey = \"sk-waiter\"\nbudget = { usd = 1, per = \"1h\" }\n\
         [keys.ops]\nkey = \"sk-ops\"\nadmin = true\n",
    )
    .await;
    let (sim, base) = (&g.sim, g.base.clone());
    let client = reqwest::Client::new();
    let long = DurationStr::new(Duration::from_secs(30));

    // a stream that stalls after three words; the client reads the first and goes away
    sim.add_fault(FaultRule::new(switchyard::Protocol::Anthropic, Fault::Stall { after_tokens: 3, duration: long }));
    let body =
        json!({"model": "capped-free", "stream": true, "messages": [{"role": "user", "content": "Hello there"}]});
    let r =
        client.post(format!("{base}/v1/chat/completions")).bearer_auth("sk-streamer").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut chunks = r.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"content\"") {
        seen.push_str(&String::from_utf8_lossy(&chunks.next().await.unwrap().unwrap()));
    }
    drop(chunks);
    // the gateway notices, drops the stream, and bills its attempt: the prompt and what was generated
    let charged = support::eventually_async(Duration::from_secs(10), || async {
        key_spent(&client, &base, "streamer").await != 0.0
    });
    assert!(charged.await, "the key was never charged for the stream it left");
    let metrics =
        client.get(format!("{base}/metrics")).bearer_auth("sk-ops").send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("switchyard_attempts_total{")
            && l.contains("outcome=\"cancelled\"")
            && l.contains("claude-haiku-4-5")),
        "{metrics}"
    );

    // a whole answer the client stops waiting for: billed for the prompt the provider read
    sim.add_fault(FaultRule::new(switchyard::Protocol::Anthropic, Fault::Latency { delay: long }));
    let body = json!({"model": "capped-free", "messages": [{"role": "user", "content": "Hello there"}]});
    let impatient = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-waiter")
        .timeout(Duration::from_millis(300))
        .json(&body)
        .send()
        .await;
    assert!(impatient.is_err_and(|e| e.is_timeout()));
    let charged = support::eventually_async(Duration::from_secs(10), || async {
        key_spent(&client, &base, "waiter").await != 0.0
    });
    assert!(charged.await, "the key was never charged for the answer it left");
}
