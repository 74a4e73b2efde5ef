//! Router decisions against scripted in-memory providers, on paused tokio time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use support::{Scripted, Step, passive_policy, policy};
use switchyard::router::{AttemptOutcome, BreakerState, SkipReason, StreamOptions};
use switchyard::{ChatRequest, ErrorClass, Router, RouterError, StreamCollector, StreamEvent};
use tokio::time::Instant;

const TWO_TARGETS: &str = r#"
[defaults]
retry = { max_attempts = 3, base = "500ms", max = "8s", retry_after_cap = "10s" }
breaker = { consecutive_failures = 3, cooldown = "10s", max_cooldown = "40s" }
[routes.chat]
targets = [{ provider = "p", model = "a" }, { provider = "q", model = "b" }]
"#;

/// [`router`] with `probe = "passive"` providers: requests probe open breakers themselves.
fn passive_router(extra: &str) -> (Router, Arc<Scripted>, Arc<Scripted>) {
    scripted(passive_policy(extra), "q")
}

/// [`TWO_TARGETS`] whose streams are continued with a prefill or not at all.
const TWO_TARGETS_PREFILL_ONLY: &str = r#"
[defaults]
retry = { max_attempts = 3, base = "500ms", max = "8s", retry_after_cap = "10s" }
breaker = { consecutive_failures = 3, cooldown = "10s", max_cooldown = "40s" }
[routes.chat]
resume = ["prefill"]
targets = [{ provider = "p", model = "a" }, { provider = "q", model = "b" }]
[routes.chat.on.stream_interrupted]
retry = false
"#;

/// A router under `policy` over scripted providers `p` and `second` (`q` on OpenAI's wire, `c` on
/// Anthropic's).
fn scripted(policy: switchyard::Policy, second: &str) -> (Router, Arc<Scripted>, Arc<Scripted>) {
    let p = Scripted::new("p");
    let other = Scripted::new(second);
    let r = Router::builder(policy).provider("p", p.clone()).provider(second, other.clone()).build();
    (r, p, other)
}

fn router(extra: &str) -> (Router, Arc<Scripted>, Arc<Scripted>) {
    scripted(policy(extra), "q")
}

#[tokio::test(start_paused = true)]
async fn a_500_once_is_retried_on_the_same_target_after_backoff() {
    let (r, p, q) = router(TWO_TARGETS);
    p.script("a", [Step::Fail(ErrorClass::ServerError, 500)]);
    let t0 = Instant::now();
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!((ok.provider(), ok.model()), ("p", "a"));
    assert_eq!(p.calls("a"), 2);
    assert_eq!(q.total_calls(), 0);
    assert_eq!(ok.attempts.len(), 2);
    assert_eq!(ok.attempts[0].class, Some(ErrorClass::ServerError));
    assert_eq!(ok.attempts[1].outcome, AttemptOutcome::Ok);
    // the SDK backoff: 500ms shortened by at most 25% jitter
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(375) && waited <= Duration::from_millis(500), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn persistent_overload_fails_over_after_max_attempts() {
    let (r, p, q) = router(TWO_TARGETS);
    p.set_default(Step::Fail(ErrorClass::Overloaded, 529));
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!((ok.provider(), ok.model()), ("q", "b"));
    assert_eq!(p.calls("a"), 3, "max_attempts = 3 on the first target");
    assert_eq!(q.calls("b"), 1);
    let classes: Vec<_> = ok.attempts.iter().map(|a| a.class).collect();
    assert_eq!(
        classes,
        vec![Some(ErrorClass::Overloaded), Some(ErrorClass::Overloaded), Some(ErrorClass::Overloaded), None]
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_on_every_retry_and_pauses_the_target() {
    let (r, p, _q) = router(TWO_TARGETS);
    let e = switchyard::ProviderError::new(ErrorClass::RateLimited, "p", "slow down")
        .with_status(429)
        .with_retry_after(Duration::from_secs(2));
    p.script("a", [Step::Error(e.clone()), Step::Error(e)]);
    let t0 = Instant::now();
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "a");
    assert_eq!(p.calls("a"), 3);
    assert_eq!(t0.elapsed(), Duration::from_secs(4), "two retries, each after exactly retry-after");
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_cap_moves_on_at_once_and_pauses_the_target() {
    let (r, p, q) = router(TWO_TARGETS);
    let e = switchyard::ProviderError::new(ErrorClass::RateLimited, "p", "slow down")
        .with_status(429)
        .with_retry_after(Duration::from_secs(30));
    p.script("a", [Step::Error(e)]);
    let t0 = Instant::now();
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "b");
    assert_eq!(t0.elapsed(), Duration::ZERO);
    // the next request skips the paused target without calling it
    let ok = r.chat("chat", ChatRequest::user("again")).await.unwrap();
    assert_eq!(ok.model(), "b");
    assert_eq!(p.calls("a"), 1);
    assert_eq!(ok.attempts[0].skip_reason, Some(SkipReason::Paused));
    assert_eq!(q.calls("b"), 2);
}

#[tokio::test(start_paused = true)]
async fn content_filter_is_returned_not_failed_over() {
    let (r, p, q) = router(TWO_TARGETS);
    p.script("a", [Step::Fail(ErrorClass::ContentFiltered, 400)]);
    let err = r.chat("chat", ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::ContentFiltered);
    assert_eq!(p.calls("a"), 1);
    assert_eq!(q.total_calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn on_class_override_lets_content_filter_fail_over() {
    let (r, p, q) = router(&format!("{TWO_TARGETS}\n[routes.chat.on.content_filtered]\nfailover = true\n"));
    p.script("a", [Step::Fail(ErrorClass::ContentFiltered, 400)]);
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "b");
    assert_eq!(q.calls("b"), 1);
}

#[tokio::test(start_paused = true)]
async fn timeout_is_not_retried_on_the_same_target() {
    let (r, p, q) = router(&format!("{TWO_TARGETS}\n[routes.chat.timeouts]\nattempt = \"2s\"\n"));
    p.script("a", [Step::Hang]);
    let t0 = Instant::now();
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "b");
    assert_eq!(p.calls("a"), 1, "a silent target is not retried");
    assert_eq!(q.calls("b"), 1);
    assert_eq!(t0.elapsed(), Duration::from_secs(2));
    assert_eq!(ok.attempts[0].class, Some(ErrorClass::Timeout));
}

#[tokio::test(start_paused = true)]
async fn the_total_timeout_bounds_the_whole_request() {
    let (r, p, q) = router(&format!("{TWO_TARGETS}\n[routes.chat.timeouts]\nattempt = \"5s\"\ntotal = \"7s\"\n"));
    p.set_default(Step::Hang);
    q.set_default(Step::Hang);
    let t0 = Instant::now();
    let err = r.chat("chat", ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Timeout);
    assert_eq!(t0.elapsed(), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn passive_a_flapping_target_opens_its_breaker_is_probed_once_per_cooldown_and_recovers() {
    let extra = r#"
[defaults]
retry = { max_attempts = 1 }
breaker = { consecutive_failures = 3, cooldown = "10s", max_cooldown = "40s" }
[routes.chat]
targets = [{ provider = "p", model = "a" }, { provider = "q", model = "b" }]
"#;
    let (r, p, q) = passive_router(extra);
    let mut events = r.subscribe();
    p.set_default(Step::Fail(ErrorClass::ServerError, 500));
    for _ in 0..5 {
        let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
        assert_eq!(ok.model(), "b");
    }
    assert_eq!(p.calls("a"), 3, "opened after 3 failures; then skipped");
    let h = r.health();
    let a = h.targets.iter().find(|t| t.model == "a").unwrap();
    assert_eq!(a.state.breaker, BreakerState::Open);
    // after the cooldown: exactly one probe, which fails: cooldown doubles to 20s
    tokio::time::advance(Duration::from_secs(10)).await;
    let (first, second) = tokio::join!(r.chat("chat", ChatRequest::user("1")), r.chat("chat", ChatRequest::user("2")));
    assert_eq!(first.unwrap().model(), "b");
    assert_eq!(second.unwrap().model(), "b");
    assert_eq!(p.calls("a"), 4, "one probe, not a flood");
    tokio::time::advance(Duration::from_secs(10)).await;
    r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(p.calls("a"), 4, "cooldown doubled: no probe yet at +10s");
    // the provider recovers: the next probe closes the breaker and traffic comes back
    p.set_default(Step::Ok("back"));
    tokio::time::advance(Duration::from_secs(10)).await;
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "a");
    assert!(ok.attempts[0].probe || ok.attempts.len() == 1);
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "a");
    assert!(q.calls("b") >= 8);
    let mut transitions = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let switchyard::RouterEvent::Breaker { model: Some(m), from, to, .. } = e
            && m == "a"
        {
            transitions.push((from, to));
        }
    }
    assert_eq!(transitions.first(), Some(&(BreakerState::Closed, BreakerState::Open)));
    assert_eq!(transitions.last(), Some(&(BreakerState::HalfOpen, BreakerState::Closed)));
}

#[tokio::test(start_paused = true)]
async fn passive_when_every_target_is_open_the_one_whose_cooldown_ends_first_is_probed() {
    let extra = r#"
[defaults]
retry = { max_attempts = 1 }
[routes.chat]
targets = [
  { provider = "p", model = "a", breaker = { consecutive_failures = 1, cooldown = "30s" } },
  { provider = "q", model = "b", breaker = { consecutive_failures = 1, cooldown = "10s" } },
]
"#;
    let (r, p, q) = passive_router(extra);
    p.script("a", [Step::Fail(ErrorClass::ServerError, 500)]);
    q.script("b", [Step::Fail(ErrorClass::ServerError, 500)]);
    let err = r.chat("chat", ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::ServerError);
    // both open now; b's cooldown ends first: it is probed rather than refusing untried
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "b");
    assert_eq!(p.calls("a"), 1);
    assert_eq!(q.calls("b"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_missing_api_key_fails_that_provider_without_a_call_and_fails_over() {
    let text = r#"
[providers.keyed]
protocol = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "SWITCHYARD_TEST_SURELY_UNSET"
[providers.q]
protocol = "openai"
base_url = "http://127.0.0.1:9/v1"
[routes.chat]
targets = [{ provider = "keyed", model = "a" }, { provider = "q", model = "b" }]
"#;
    let policy: switchyard::Policy = text.parse().unwrap();
    assert!(policy.warnings.iter().any(|w| w.message.contains("SWITCHYARD_TEST_SURELY_UNSET")));
    let q = Scripted::new("q");
    let r = Router::builder(policy).provider("q", q.clone()).build();
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "b");
    assert_eq!(ok.attempts[0].class, Some(ErrorClass::Authentication));
    assert_eq!(ok.attempts[0].elapsed, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn context_overflow_skips_targets_that_are_not_larger() {
    let text = r#"
[routes.chat]
targets = [
  { provider = "openai", model = "gpt-4o" },
  { provider = "openai", model = "gpt-4o-mini" },
  { provider = "openai", model = "gpt-4.1" },
]
"#;
    let policy: switchyard::Policy = text.parse().unwrap();
    let o = Scripted::new("openai");
    o.script("gpt-4o", [Step::Fail(ErrorClass::ContextLengthExceeded, 400)]);
    let r = Router::builder(policy).provider("openai", o.clone()).build();
    let ok = r.chat("chat", ChatRequest::user("long")).await.unwrap();
    assert_eq!(ok.model(), "gpt-4.1");
    assert_eq!(o.calls("gpt-4o"), 1, "not retried on the same model");
    assert_eq!(o.calls("gpt-4o-mini"), 0);
    assert_eq!(ok.attempts[1].skip_reason, Some(SkipReason::ContextTooSmall));
}

#[tokio::test(start_paused = true)]
async fn context_overflow_goes_to_the_overflow_route() {
    let extra = r#"
[routes.chat]
targets = [{ provider = "p", model = "small" }, { provider = "q", model = "other" }]
on_context_overflow = "long"
[routes.long]
targets = [{ provider = "q", model = "big" }]
"#;
    let (r, p, q) = router(extra);
    p.script("small", [Step::Fail(ErrorClass::ContextLengthExceeded, 400)]);
    let ok = r.chat("chat", ChatRequest::user("long")).await.unwrap();
    assert_eq!(ok.model(), "big");
    assert_eq!(ok.route, "long");
    assert_eq!(q.calls("other"), 0);
    assert_eq!(ok.attempts.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn local_rpm_limit_skips_to_the_next_target_and_waits_only_on_the_last() {
    let extra = r#"
[routes.chat]
targets = [{ provider = "p", model = "a", limits = { rpm = 2 } }, { provider = "q", model = "b", limits = { rpm = 1 } }]
"#;
    let (r, p, q) = router(extra);
    for _ in 0..2 {
        assert_eq!(r.chat("chat", ChatRequest::user("hi")).await.unwrap().model(), "a");
    }
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "b");
    assert_eq!(ok.attempts[0].skip_reason, Some(SkipReason::RateLimit));
    // both exhausted: the last option waits for its limiter (bounded), then goes
    let t0 = Instant::now();
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "b");
    assert!(t0.elapsed() > Duration::ZERO && t0.elapsed() <= Duration::from_secs(60), "{:?}", t0.elapsed());
    assert_eq!(p.calls("a"), 2);
    assert_eq!(q.calls("b"), 2);
}

#[tokio::test(start_paused = true)]
async fn unknown_route_is_an_error() {
    let (r, _, _) = router(TWO_TARGETS);
    assert!(matches!(r.chat("nope", ChatRequest::user("hi")).await, Err(RouterError::UnknownRoute(_))));
}

async fn collect(mut s: switchyard::RoutedStream) -> (StreamCollector, Vec<StreamEvent>, Option<RouterError>) {
    let mut c = StreamCollector::new();
    let mut events = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(e) => {
                c.push(&e);
                events.push(e);
            }
            Err(e) => return (c, events, Some(e)),
        }
    }
    (c, events, None)
}

#[tokio::test(start_paused = true)]
async fn stream_failures_before_content_fail_over_invisibly() {
    let (r, p, q) = router(TWO_TARGETS);
    p.set_default(Step::Fail(ErrorClass::Overloaded, 529));
    q.set_default(Step::Ok("hello there"));
    let s = r.chat_stream("chat", ChatRequest::user("hi")).await.unwrap();
    let (c, events, err) = collect(s).await;
    assert!(err.is_none());
    assert_eq!(c.text(), "hello there");
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::Restart { .. })));
}

#[tokio::test(start_paused = true)]
async fn mid_stream_failure_continues_with_prefill_on_a_target_that_supports_it() {
    let text = r#"
[defaults]
retry = { max_attempts = 1 }
[routes.chat]
targets = [{ provider = "anthropic", model = "claude-sonnet-4-6" }, { provider = "anthropic", model = "claude-sonnet-4-5" }]
"#;
    let policy: switchyard::Policy = text.parse().unwrap();
    let a = Scripted::new("anthropic");
    a.script("claude-sonnet-4-6", [Step::StreamThenFail(vec!["The answer ", "is "], ErrorClass::Overloaded)]);
    a.script("claude-sonnet-4-5", [Step::Ok("42.")]);
    let r = Router::builder(policy).provider("anthropic", a.clone()).build();
    let s = r.chat_stream("chat", ChatRequest::user("question")).await.unwrap();
    let (c, _events, err) = collect(s).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(c.text(), "The answer is 42.");
    // the fallback saw the partial answer as an assistant prefill, without trailing white space
    let msgs = a.last_messages("claude-sonnet-4-5");
    assert_eq!(msgs[0], vec!["question".to_owned(), "The answer is".to_owned()]);
}

/// `a` on `p` (OpenAI's wire), then `b` on `c` (Anthropic's), continued with a prefill only.
const A_THEN_CLAUDE_PREFILL_ONLY: &str = r#"
[routes.chat]
resume = ["prefill"]
targets = [{ provider = "p", model = "a" }, { provider = "c", model = "b" }]
[routes.chat.on.stream_interrupted]
retry = false
"#;

/// A router over `p` and `c` (Anthropic's wire).
fn router_with_claude(extra: &str) -> (Router, Arc<Scripted>, Arc<Scripted>) {
    scripted(policy(extra), "c")
}

#[tokio::test(start_paused = true)]
async fn an_openai_model_of_unknown_prefill_is_not_asked_for_one() {
    // an OpenAI-compatible server answers a trailing assistant turn afresh: unknown means no
    let (r, p, q) = router(TWO_TARGETS_PREFILL_ONLY);
    p.script("a", [Step::StreamThenFail(vec!["Hel", "lo"], ErrorClass::StreamInterrupted)]);
    let s = r.chat_stream("chat", ChatRequest::user("hi")).await.unwrap();
    let (c, _events, err) = collect(s).await;
    assert_eq!(c.text(), "Hello");
    let f = err.expect("no target can continue").failure().unwrap().clone();
    assert_eq!(f.attempts[1].skip_reason, Some(switchyard::router::SkipReason::NoPrefill));
    assert_eq!(q.calls("b"), 0);
}

#[tokio::test(start_paused = true)]
async fn mid_stream_failure_without_prefill_ends_with_stream_interrupted_and_the_partial_text() {
    let (r, p, q) = router_with_claude(A_THEN_CLAUDE_PREFILL_ONLY);
    p.script("a", [Step::StreamThenFail(vec!["Hel", "lo"], ErrorClass::StreamInterrupted)]);
    // b is on Anthropic's wire with no profile (prefill unknown): it is tried, rejects the prefill
    // with a 400, and that rejection must not replace the original failure
    q.script("b", [Step::Fail(ErrorClass::InvalidRequest, 400)]);
    let s = r.chat_stream("chat", ChatRequest::user("hi")).await.unwrap();
    let (c, _events, err) = collect(s).await;
    assert_eq!(c.text(), "Hello");
    let err = err.expect("must not be a success");
    assert_eq!(err.class(), ErrorClass::StreamInterrupted);
    let f = err.failure().unwrap();
    assert_eq!(f.partial().map(|p| p.text.as_str()), Some("Hello"));
    assert!(f.message.contains("stream_interrupted"), "{}", f.message);
    assert_eq!(q.calls("b"), 1);
    // learned: the next continuation does not ask b again
    p.script("a", [Step::StreamThenFail(vec!["Hi"], ErrorClass::StreamInterrupted)]);
    let s = r.chat_stream("chat", ChatRequest::user("hi")).await.unwrap();
    let (_, _, err) = collect(s).await;
    assert!(err.is_some());
    assert_eq!(q.calls("b"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_refused_prefill_moves_on_to_an_instructed_continuation_on_the_same_target() {
    // one attempt per target: the continuation goes to b, on Anthropic's wire
    let (r, p, q) = router_with_claude(
        "[defaults]\nretry = { max_attempts = 1 }\n[routes.chat]\ntargets = [{ provider = \"p\", model = \"a\" }, { provider = \"c\", model = \"b\" }]",
    );
    p.script("a", [Step::StreamThenFail(vec!["The answer ", "is "], ErrorClass::StreamInterrupted)]);
    q.script("b", [Step::Fail(ErrorClass::InvalidRequest, 400), Step::Ok("42.")]);
    let s = r.chat_stream("chat", ChatRequest::user("question")).await.unwrap();
    let summary = s;
    let (c, events, err) = collect(summary).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(c.text(), "The answer is 42.");
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::Restart { .. })));
    // b was asked with a prefill (refused), then with the partial answer and an instruction
    assert_eq!(q.calls("b"), 2);
    let msgs = q.last_messages("b");
    let last = msgs.last().unwrap();
    assert_eq!(last[..2], ["question".to_owned(), "The answer is ".to_owned()]);
    assert!(last[2].contains("Continue it from exactly where it stops"), "{last:?}");
}

#[tokio::test(start_paused = true)]
async fn the_written_order_of_resume_is_followed() {
    // Claude's wire takes a prefill, but the list puts the instruction first
    let (r, _p, c) = router_with_claude(
        "[routes.chat]\nresume = [\"instructed\", \"prefill\"]\ntargets = [{ provider = \"c\", model = \"b\" }]",
    );
    c.script("b", [Step::StreamThenFail(vec!["The answer ", "is "], ErrorClass::Overloaded), Step::Ok("42.")]);
    let s = r.chat_stream("chat", ChatRequest::user("question")).await.unwrap();
    let (text, _events, err) = collect(s).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text.text(), "The answer is 42.");
    let last = c.last_messages("b").pop().unwrap();
    assert_eq!(last.len(), 3, "question, partial answer, instruction: {last:?}");
    assert_eq!(last[2], switchyard::router::INSTRUCTION);
}

#[tokio::test(start_paused = true)]
async fn a_continuation_on_the_same_target_waits_its_backoff_first() {
    let (r, _p, c) = router_with_claude(
        "[defaults]\nretry = { max_attempts = 3, base = \"1s\", max = \"8s\" }\n\
         [routes.chat]\ntargets = [{ provider = \"c\", model = \"b\" }]",
    );
    c.script("b", [Step::StreamThenFail(vec!["The answer ", "is "], ErrorClass::Overloaded), Step::Ok("42.")]);
    let t0 = Instant::now();
    let s = r.chat_stream("chat", ChatRequest::user("question")).await.unwrap();
    let (text, _events, err) = collect(s).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text.text(), "The answer is 42.");
    // an overloaded target is not hit again at once: the first backoff (1 s less jitter) first
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(750) && waited <= Duration::from_secs(1), "{waited:?}");
    assert_eq!(c.calls("b"), 2);
}

#[tokio::test(start_paused = true)]
async fn resume_none_ends_the_stream_with_its_error() {
    let (r, p, q) = router(&TWO_TARGETS.replace("[routes.chat]", "[routes.chat]\nresume = [\"none\"]"));
    p.script("a", [Step::StreamThenFail(vec!["Hel"], ErrorClass::Overloaded)]);
    let s = r.chat_stream("chat", ChatRequest::user("hi")).await.unwrap();
    let (c, _events, err) = collect(s).await;
    assert_eq!(c.text(), "Hel");
    let err = err.expect("ends with the error");
    assert_eq!(err.class(), ErrorClass::Overloaded);
    assert_eq!(q.calls("b"), 0);
}

#[tokio::test(start_paused = true)]
async fn with_restart_allowed_the_consumer_is_told_to_discard_and_the_answer_restarts() {
    // neither OpenAI-wire target takes a prefill: nothing can continue, so the answer restarts,
    // on the next target, not on the one that failed
    let (r, p, q) = router(TWO_TARGETS_PREFILL_ONLY);
    p.script("a", [Step::StreamThenFail(vec!["Hel"], ErrorClass::ServerError)]);
    q.script("b", [Step::Ok("fresh answer")]);
    let s = r.chat_stream_with("chat", ChatRequest::user("hi"), StreamOptions { allow_restart: true }).await.unwrap();
    let summary_stream = s;
    let (c, events, err) = collect(summary_stream).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(events.iter().filter(|e| matches!(e, StreamEvent::Restart { .. })).count(), 1);
    assert_eq!(c.text(), "fresh answer");
    assert_eq!((p.calls("a"), q.calls("b")), (1, 1));

    // a target that keeps failing is not restarted on again and again: the restart moves on
    let (r, p, q) = router(TWO_TARGETS_PREFILL_ONLY);
    p.set_default(Step::StreamThenFail(vec!["Hel"], ErrorClass::ServerError));
    q.set_default(Step::StreamThenFail(vec!["Hel"], ErrorClass::ServerError));
    let s = r.chat_stream_with("chat", ChatRequest::user("hi"), StreamOptions { allow_restart: true }).await.unwrap();
    let (_, events, err) = collect(s).await;
    assert!(err.is_some());
    assert!(events.iter().filter(|e| matches!(e, StreamEvent::Restart { .. })).count() <= 1, "{events:?}");
    assert!(p.calls("a") <= 3 && q.calls("b") <= 3, "{} {}", p.calls("a"), q.calls("b"));
}

#[tokio::test(start_paused = true)]
async fn passive_a_cancelled_probe_does_not_keep_the_slot() {
    let extra = r#"
[defaults]
retry = { max_attempts = 1 }
[routes.chat]
targets = [{ provider = "p", model = "a", breaker = { consecutive_failures = 1, cooldown = "10s" } }, { provider = "q", model = "b" }]
"#;
    let (r, p, _q) = passive_router(extra);
    p.script("a", [Step::Fail(ErrorClass::ServerError, 500), Step::Hang]);
    r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    // this request takes the probe and hangs; cancel it
    let probe = tokio::time::timeout(Duration::from_secs(1), r.chat("chat", ChatRequest::user("probe"))).await;
    assert!(probe.is_err());
    assert_eq!(p.calls("a"), 2);
    // the slot is free: the next request probes again (and succeeds)
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "a");
    assert_eq!(p.calls("a"), 3);
}

/// `a` then `b`, one attempt each; one failure opens a breaker for 5 s, doubling to 10 s.
const ONE_FAILURE_OPENS: &str = r#"
[defaults]
retry = { max_attempts = 1 }
breaker = { consecutive_failures = 1, cooldown = "5s", max_cooldown = "10s" }
[routes.chat]
targets = [{ provider = "p", model = "a" }, { provider = "q", model = "b" }]
"#;

/// User requests and probes the scripted model `model` of `s` received.
fn user_calls_and_probes(s: &Scripted, model: &str) -> (usize, usize) {
    let calls = s.last_messages(model);
    let probes =
        calls.iter().filter(|m| m.first().map(String::as_str) == Some(switchyard::router::PROBE_PROMPT)).count();
    (calls.len() - probes, probes)
}

#[tokio::test(start_paused = true)]
async fn a_target_down_for_a_minute_is_back_within_one_cooldown_and_only_probes_reach_it_meanwhile() {
    // the default breaker: 5 failures open it, 5 s cooldown doubling to 10 s, active probes
    let extra = r#"
[defaults]
retry = { max_attempts = 1 }
[routes.chat]
targets = [{ provider = "p", model = "a" }, { provider = "q", model = "b" }]
"#;
    let (r, p, q) = router(extra);
    let mut events = r.subscribe();
    q.set_default(Step::Ok("fallback"));
    p.set_default(Step::Fail(ErrorClass::Overloaded, 503));
    let start = Instant::now();
    // a request every 4 s for the minute the target is down: every one is served
    while start.elapsed() < Duration::from_secs(60) {
        let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
        assert_eq!(ok.model(), "b");
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let (users, probes) = user_calls_and_probes(&p, "a");
    assert_eq!(users, 5, "the five failures that opened the breaker, then no user request");
    // opened at 16 s; probed at 21, 31, 41, 51 s: one per cooldown
    assert!((3..=5).contains(&probes), "{probes} probes");

    // the target comes back: traffic returns within one cooldown, by a probe's success
    p.set_default(Step::Ok("back"));
    let recovered = Instant::now();
    loop {
        let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
        if ok.model() == "a" {
            break;
        }
        assert!(recovered.elapsed() <= Duration::from_secs(10), "not back within the 10 s cooldown");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let back_after = recovered.elapsed();
    assert!(back_after <= Duration::from_secs(10), "{back_after:?}");
    let (users, _) = user_calls_and_probes(&p, "a");
    assert_eq!(users, 6, "the first user request after the recovery is served, not a probe");
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let switchyard::RouterEvent::Probe { model, ok, class, .. } = e {
            assert_eq!(model.as_deref(), Some("a"));
            seen.push((ok, class));
        }
    }
    assert_eq!(seen.last(), Some(&(true, None)), "{seen:?}");
    assert!(seen[..seen.len() - 1].iter().all(|&(ok, class)| !ok && class == Some(ErrorClass::Overloaded)), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn a_dead_target_costs_one_probe_per_cooldown() {
    let extra = ONE_FAILURE_OPENS;
    let (r, p, _q) = router(extra);
    p.set_default(Step::Fail(ErrorClass::ServerError, 500));
    r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    // two minutes with no traffic at all: probes at 5, 15, 25, ... s
    tokio::time::sleep(Duration::from_secs(120)).await;
    let (users, probes) = user_calls_and_probes(&p, "a");
    assert_eq!(users, 1);
    assert!((11..=13).contains(&probes), "{probes} probes in two minutes");
    assert_eq!(r.health().targets.iter().find(|t| t.model == "a").unwrap().state.breaker, BreakerState::Open);
}

/// Seconds from the end of a 60 s outage of `a` to the first request it serves, with a request
/// every 4 s (the failure harness of the issue) under `breaker` and the providers' `probe`.
async fn recovery_after_a_minute(breaker: &str, passive: bool) -> f64 {
    let extra = format!(
        "[defaults]\nretry = {{ max_attempts = 1 }}\nbreaker = {breaker}\n[routes.chat]\n\
         targets = [{{ provider = \"p\", model = \"a\" }}, {{ provider = \"q\", model = \"b\" }}]\n"
    );
    let (r, p, _q) = if passive { passive_router(&extra) } else { router(&extra) };
    p.set_default(Step::Fail(ErrorClass::Overloaded, 529));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        r.chat("chat", ChatRequest::user("hi")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    p.set_default(Step::Ok("back"));
    let recovered = Instant::now();
    loop {
        if r.chat("chat", ChatRequest::user("hi")).await.unwrap().model() == "a" {
            return recovered.elapsed().as_secs_f64();
        }
        assert!(recovered.elapsed() < Duration::from_secs(300));
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn recovery_from_a_minute_outage_active_probes_and_new_defaults_against_the_old() {
    let before =
        recovery_after_a_minute("{ consecutive_failures = 5, cooldown = \"10s\", max_cooldown = \"40s\" }", true).await;
    let after = recovery_after_a_minute("{}", false).await;
    eprintln!(
        "back on the primary after a 60 s outage: passive, 10 s..40 s: {before:.1} s; active, defaults: {after:.1} s"
    );
    assert!(after <= 10.0, "{after}");
    assert!(before > after, "{before} / {after}");
}

#[tokio::test(start_paused = true)]
async fn probes_keep_to_the_targets_limits() {
    let extra = r#"
[defaults]
retry = { max_attempts = 1 }
breaker = { consecutive_failures = 1, cooldown = "5s", max_cooldown = "10s" }
[routes.chat]
targets = [{ provider = "p", model = "a", limits = { rpm = 1 } }, { provider = "q", model = "b" }]
"#;
    let (r, p, _q) = router(extra);
    p.set_default(Step::Fail(ErrorClass::ServerError, 500));
    r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    // the one request a minute was the user's: the probes due at 5 s wait for room
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(user_calls_and_probes(&p, "a"), (1, 0));
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (_, probes) = user_calls_and_probes(&p, "a");
    assert!((1..=2).contains(&probes), "{probes}");
}

#[tokio::test(start_paused = true)]
async fn a_reload_that_turns_probes_active_probes_a_breaker_already_open() {
    let extra = ONE_FAILURE_OPENS;
    let (r, p, _q) = passive_router(extra);
    p.set_default(Step::Fail(ErrorClass::ServerError, 500));
    r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(user_calls_and_probes(&p, "a"), (1, 0), "passive: nobody probes without requests");
    // the same policy with active probes (the default)
    r.apply(policy(extra));
    p.set_default(Step::Ok("back"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(user_calls_and_probes(&p, "a"), (1, 1), "the router probes at once: the cooldown is long over");
    assert_eq!(r.health().targets.iter().find(|t| t.model == "a").unwrap().state.breaker, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_provider_breaker_is_probed_with_each_of_its_models_in_turn() {
    // the key cannot use `a` (403 trips the whole provider), `c` works
    let extra = r#"
[defaults]
retry = { max_attempts = 1 }
breaker = { consecutive_failures = 1, cooldown = "5s", max_cooldown = "10s" }
[routes.chat]
targets = [{ provider = "p", model = "a" }, { provider = "q", model = "b" }]
[routes.other]
targets = [{ provider = "p", model = "c" }]
"#;
    let (r, p, _q) = router(extra);
    p.script("a", std::iter::repeat_n(Step::Fail(ErrorClass::PermissionDenied, 403), 20));
    p.set_default(Step::Ok("fine"));
    r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    let state = |r: &Router| r.health().providers.into_iter().find(|x| x.provider == "p").unwrap().state.breaker;
    assert_eq!(state(&r), BreakerState::Open);
    // two cooldowns at most: one probe may ask `a` (refused again), the next asks `c`
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(state(&r), BreakerState::Closed);
    assert!(user_calls_and_probes(&p, "c").1 >= 1);
}

#[tokio::test(start_paused = true)]
async fn with_every_target_open_a_request_still_probes_the_soonest_under_active_probes() {
    let (r, p, q) = router(ONE_FAILURE_OPENS);
    p.set_default(Step::Fail(ErrorClass::ServerError, 500));
    q.set_default(Step::Fail(ErrorClass::ServerError, 500));
    r.chat("chat", ChatRequest::user("hi")).await.unwrap_err();
    // both back, both breakers still cooling down: a request with nowhere else to go tries the
    // one whose cooldown ends first rather than fail untried
    p.set_default(Step::Ok("back"));
    q.set_default(Step::Ok("back"));
    let ok = r.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "a");
    assert!(ok.attempts.iter().any(|a| a.probe));
    assert_eq!(user_calls_and_probes(&p, "a"), (2, 0));
}
