//! Hedged requests (`hedge = { after, max }` on a route): when the attempt in flight has no first
//! token by `after`, the next target starts too; the first to produce content serves, the other
//! is cancelled, and both are accounted (attempts, cost).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use switchyard::duration::DurationStr;
use switchyard::router::{AttemptOutcome, RouterEvent};
use switchyard::sim::{Fault, FaultRule, SimServer};
use switchyard::{ChatRequest, Policy, Protocol, Router};

/// A route from a slow OpenAI model to Claude, hedged as `hedge` says.
fn router(sim: &SimServer, hedge: &str) -> Router {
    router_with(sim, hedge, "")
}

/// [`router`], with `extra` lines in the route.
fn router_with(sim: &SimServer, hedge: &str, extra: &str) -> Router {
    let policy = format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
{providers}
[routes.chat]
hedge = {hedge}
{extra}
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "anthropic", model = "claude-haiku-4-5" }}]
"#,
        providers = sim.providers_toml()
    );
    Router::new(Policy::from_toml(&policy, "inline").unwrap())
}

/// The first target thinks for `secs` before its first token, `n` times.
fn slow_first_target(sim: &SimServer, secs: f64, n: u32) {
    let delay = DurationStr::new(Duration::from_secs_f64(secs));
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::SlowFirstToken { delay }).model("gpt-4o-mini").first(n));
}

/// Ten seconds: far longer than any hedge here takes, so that a test never waits for it.
const SLOW: f64 = 10.0;

#[tokio::test]
async fn a_hedge_wins_against_a_slow_first_target_and_both_are_accounted() {
    let sim = support::sim().await;
    let router = router(&sim, r#"{ after = "100ms", max = 1 }"#);
    let mut events = router.subscribe();
    slow_first_target(&sim, SLOW, 1);
    let answer = router.chat("chat", ChatRequest::user("Hello there!")).await.unwrap();
    assert_eq!(answer.provider(), "anthropic");
    let outcomes: Vec<(&str, AttemptOutcome, bool)> =
        answer.attempts.iter().map(|a| (a.provider.as_str(), a.outcome, a.hedge)).collect();
    assert_eq!(
        outcomes,
        [("openai", AttemptOutcome::Cancelled, false), ("anthropic", AttemptOutcome::Ok, true)],
        "{:#?}",
        answer.attempts
    );
    // the slow one was waited on for the hedge's delay and the hedge's answer, not its own ten seconds
    let cancelled = &answer.attempts[0];
    assert!(cancelled.elapsed >= Duration::from_millis(100), "{cancelled:?}");
    assert!(cancelled.elapsed < Duration::from_secs(5), "{cancelled:?}");
    // both billed: the cancelled one for the prompt it was sent, at gpt-4o-mini's price
    let prompt = ChatRequest::user("Hello there!").estimated_prompt_tokens() as f64;
    let cancelled_cost = cancelled.cost_usd.unwrap();
    assert!((cancelled_cost - prompt * 0.15 / 1e6).abs() < 1e-12, "{cancelled_cost}");
    let served_cost = answer.attempts[1].cost_usd.unwrap();
    assert!((answer.cost_usd().unwrap() - (cancelled_cost + served_cost)).abs() < 1e-12);
    assert_eq!(answer.failed_cost_usd(), Some(cancelled_cost));
    // each target was called once: the hedge is not retried, the slow one not called again
    assert_eq!(sim.request_count(Protocol::Openai, Some("gpt-4o-mini")), 1);
    assert_eq!(sim.request_count(Protocol::Anthropic, Some("claude-haiku-4-5")), 1);
    let mut saw_hedge = false;
    while let Ok(e) = events.try_recv() {
        if let RouterEvent::Hedge { provider, model, waited, .. } = e {
            assert_eq!((provider.as_str(), model.as_str()), ("anthropic", "claude-haiku-4-5"));
            assert!(waited >= Duration::from_millis(100), "{waited:?}");
            saw_hedge = true;
        }
    }
    assert!(saw_hedge, "no hedge event");
}

#[tokio::test]
async fn a_streamed_hedge_serves_the_stream_that_produced_content_first() {
    let sim = support::sim().await;
    let router = router(&sim, r#"{ after = "100ms" }"#);
    slow_first_target(&sim, SLOW, 1);
    let mut stream = router.chat_stream("chat", ChatRequest::user("Stream me a story.")).await.unwrap();
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        if let switchyard::chat::StreamEvent::TextDelta { text: t } = event.unwrap() {
            text.push_str(&t);
        }
    }
    assert!(!text.is_empty());
    let summary = stream.summary().unwrap();
    assert_eq!(summary.provider, "anthropic");
    let outcomes: Vec<(AttemptOutcome, bool)> = summary.attempts.iter().map(|a| (a.outcome, a.hedge)).collect();
    assert_eq!(outcomes, [(AttemptOutcome::Cancelled, false), (AttemptOutcome::Ok, true)], "{:#?}", summary.attempts);
    assert!(summary.failed_cost_usd().unwrap() > 0.0);
}

#[tokio::test]
async fn no_hedge_starts_when_the_first_target_answers_in_time() {
    let sim = support::sim().await;
    let router = router(&sim, r#"{ after = "5s" }"#);
    for _ in 0..3 {
        let answer = router.chat("chat", ChatRequest::user("Hello!")).await.unwrap();
        assert_eq!(answer.provider(), "openai");
        assert_eq!(answer.attempts.len(), 1, "{:#?}", answer.attempts);
    }
    assert_eq!(sim.request_count(Protocol::Anthropic, None), 0);
}

#[tokio::test]
async fn a_target_that_fails_fast_fails_over_as_usual_without_a_hedge() {
    let sim = support::sim().await;
    let router = router(&sim, r#"{ after = "100ms" }"#);
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)).model("gpt-4o-mini").first(1));
    let answer = router.chat("chat", ChatRequest::user("Hello!")).await.unwrap();
    assert_eq!(answer.provider(), "anthropic");
    let outcomes: Vec<(AttemptOutcome, bool)> = answer.attempts.iter().map(|a| (a.outcome, a.hedge)).collect();
    // a failover, not a hedge
    assert_eq!(outcomes, [(AttemptOutcome::Error, false), (AttemptOutcome::Ok, false)]);
}

#[tokio::test]
async fn after_a_percentile_hedges_only_once_the_target_has_enough_answers() {
    let sim = support::sim().await;
    let router = router(&sim, r#"{ after = "p95" }"#);
    // no answers seen yet: no percentile, no hedge, however slow
    slow_first_target(&sim, 0.3, 1);
    let answer = router.chat("chat", ChatRequest::user("Hello!")).await.unwrap();
    assert_eq!((answer.provider(), answer.attempts.len()), ("openai", 1), "{:#?}", answer.attempts);
    // sixteen quick answers make a p95 of milliseconds
    for _ in 0..16 {
        assert_eq!(router.chat("chat", ChatRequest::user("Hello!")).await.unwrap().provider(), "openai");
    }
    slow_first_target(&sim, SLOW, 1);
    let answer = router.chat("chat", ChatRequest::user("Hello!")).await.unwrap();
    assert_eq!(answer.provider(), "anthropic", "{:#?}", answer.attempts);
    assert!(answer.attempts.iter().any(|a| a.outcome == AttemptOutcome::Cancelled));
}

#[tokio::test]
async fn a_hedge_that_fails_finally_leaves_the_first_target_its_chance() {
    let sim = support::sim().await;
    let router = router(&sim, r#"{ after = "100ms" }"#);
    // the first target is slow but answers; the hedge is refused as a bad request, which is not
    // failed over: the request waits for the first target rather than fail
    slow_first_target(&sim, 0.5, 1);
    let refuse = sim.add_fault(
        FaultRule::new(Protocol::Anthropic, Fault::typed(400, "invalid_request_error", None)).model("claude-haiku-4-5"),
    );
    let answer = router.chat("chat", ChatRequest::user("Hello!")).await.unwrap();
    assert_eq!(answer.provider(), "openai");
    let outcomes: Vec<(&str, AttemptOutcome)> =
        answer.attempts.iter().map(|a| (a.provider.as_str(), a.outcome)).collect();
    assert_eq!(outcomes, [("anthropic", AttemptOutcome::Error), ("openai", AttemptOutcome::Ok)]);
    // when the first target fails too (here: no first token within its timeout), the request
    // ends with the hedge's final failure, which stopped it, not the first target's
    let router = router_with(&sim, r#"{ after = "100ms" }"#, r#"timeouts = { first_token = "500ms" }"#);
    slow_first_target(&sim, SLOW, 1);
    let err = router.chat("chat", ChatRequest::user("Hello!")).await.unwrap_err();
    assert_eq!(err.class(), switchyard::ErrorClass::InvalidRequest, "{err}");
    let outcomes: Vec<(&str, AttemptOutcome)> =
        err.attempts().iter().map(|a| (a.provider.as_str(), a.outcome)).collect();
    assert_eq!(outcomes, [("anthropic", AttemptOutcome::Error), ("openai", AttemptOutcome::Error)]);
    sim.remove_fault(refuse);
}
