//! Proactive throttling: the router reads the providers' rate-limit headers (OpenAI's
//! `x-ratelimit-*`, Anthropic's `anthropic-ratelimit-*`) and steers away from a target whose
//! stated budget is spent, until its reset, instead of sending the request that would get the
//! 429. The simulator enforces a real limit and states it the way each provider does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use switchyard::chat::{Message, Role};
use switchyard::router::{AttemptOutcome, SkipReason};
use switchyard::sim::SimServer;
use switchyard::{Call, ChatRequest, OpenAi, Policy, Protocol, Provider, ProviderConfig, Router};

fn router(sim: &SimServer) -> Router {
    let policy = format!(
        r#"
[defaults]
retry = {{ max_attempts = 1, retry_after_cap = "5s" }}
timeouts = {{ total = "20s" }}
{providers}
[routes.chat]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "anthropic", model = "claude-haiku-4-5" }}]
[routes.claude-first]
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}, {{ provider = "openai", model = "gpt-4o-mini" }}]
[routes.solo]
targets = [{{ provider = "openai", model = "gpt-4o" }}]
"#,
        providers = sim.providers_toml()
    );
    Router::new(Policy::from_toml(&policy, "inline").unwrap())
}

fn hello() -> ChatRequest {
    ChatRequest::new([Message::text(Role::User, "Hello there")])
}

#[tokio::test]
async fn a_target_whose_headers_say_nothing_remains_is_skipped_without_a_429() {
    let sim = support::sim().await;
    sim.set_rate_limit(Protocol::Openai, "gpt-4o-mini", 3, Duration::from_secs(60));
    let router = router(&sim);
    let mut served = Vec::new();
    for i in 0..6 {
        let r = router.chat("chat", hello()).await.unwrap();
        served.push(r.response.model.clone());
        if i < 3 {
            // the answer says what the headers said
            let limit = r.response.rate_limit.unwrap();
            assert_eq!((limit.requests_limit, limit.requests_remaining), (Some(3), Some(2 - i)));
        }
        if served.len() > 3 {
            let skip = &r.attempts[0];
            assert_eq!(
                (skip.outcome, skip.skip_reason.as_ref()),
                (AttemptOutcome::Skipped, Some(&SkipReason::ProviderBudget))
            );
            assert_eq!(skip.skip_reason.as_ref().map(SkipReason::as_str), Some("provider budget"));
        }
    }
    assert_eq!(
        served,
        ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", "claude-haiku-4-5", "claude-haiku-4-5", "claude-haiku-4-5"]
    );
    // the limited model saw its 3 requests and nothing more: no request ever got its 429
    assert_eq!(sim.request_count(Protocol::Openai, Some("gpt-4o-mini")), 3);
    // the budget shows in the router's health, as /admin/state shows it
    let health = serde_json::to_value(router.health()).unwrap();
    let target = health["targets"].as_array().unwrap().iter().find(|t| t["model"] == "gpt-4o-mini").unwrap().clone();
    assert_eq!(target["provider_budget"]["requests_remaining"], 0, "{target}");
    assert!(target["provider_budget"]["requests_reset_ms"].as_u64().is_some_and(|ms| ms > 50_000), "{target}");
    // asked anyway (the adapter alone, no router), the provider's 429 carries the headers too
    let openai = OpenAi::new(ProviderConfig::new("openai", sim.openai_base_url())).unwrap();
    let e = openai.chat(Call::new("gpt-4o-mini", &hello())).await.unwrap_err();
    assert_eq!((e.status(), e.rate_limit().and_then(|l| l.requests_remaining)), (Some(429), Some(0)));
    // the bucket refills continuously, as the providers' do: one request back in 20 s, whole in 60
    assert!(e.retry_after().is_some_and(|d| d > Duration::from_secs(15) && d <= Duration::from_secs(20)), "{e:?}");
}

#[tokio::test]
async fn streams_and_anthropic_headers_are_learned_too() {
    let sim = support::sim().await;
    sim.set_rate_limit(Protocol::Anthropic, "claude-sonnet-4-5", 2, Duration::from_secs(60));
    let router = router(&sim);
    let mut served = Vec::new();
    for _ in 0..4 {
        let mut s = router.chat_stream("claude-first", hello()).await.unwrap();
        while let Some(e) = s.next().await {
            let e = e.unwrap();
            assert!(!matches!(e, switchyard::StreamEvent::RateLimit(_)), "the router keeps it");
        }
        served.push(s.summary().unwrap().model.clone());
    }
    assert_eq!(served, ["claude-sonnet-4-5", "claude-sonnet-4-5", "gpt-4o-mini", "gpt-4o-mini"]);
    assert_eq!(sim.request_count(Protocol::Anthropic, Some("claude-sonnet-4-5")), 2);
}

#[tokio::test]
async fn the_last_option_waits_for_the_reset_instead_of_taking_the_429() {
    let sim = support::sim().await;
    sim.set_rate_limit(Protocol::Openai, "gpt-4o", 1, Duration::from_secs(1));
    let router = router(&sim);
    for _ in 0..2 {
        let r = router.chat("solo", hello()).await.unwrap();
        assert_eq!(r.attempts.len(), 1, "{:?}", r.attempts);
    }
    // two requests, both answered: the second waited for the window instead of getting the 429
    assert_eq!(sim.request_count(Protocol::Openai, Some("gpt-4o")), 2);
}
