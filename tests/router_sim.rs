//! The router end to end: real adapters over loopback HTTP against the simulated providers, with
//! faults scripted per wire and model. Each test checks what the caller got (answer or error, the
//! attempts) and what the providers saw (the simulator's request log).
//!
//! Time is real here, so durations in policies are short and timing assertions are one-sided
//! where they can be (a wait is at least the retry-after; a timeout ends well before the fault's
//! own delay would have).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use switchyard::duration::DurationStr;
use switchyard::router::{Attempt, AttemptOutcome, BreakerState, SkipReason, StreamSummary};
use switchyard::sim::{Fault, FaultRule, SimServer, When};
use switchyard::{
    ApiKey, Call, ChatRequest, ChatResponse, ChatStream, ErrorClass, FinishReason, OpenAi, Policy, Protocol, Provider,
    ProviderConfig, ProviderError, ProviderProfile, Router, RouterError, RouterEvent, StreamCollector, StreamEvent,
};
use tokio::time::Instant;

const OPENAI: Protocol = Protocol::Openai;
const ANTHROPIC: Protocol = Protocol::Anthropic;

// ---------------------------------------------------------------- helpers

/// Short retries, timeouts and cooldowns, so that every test runs in well under a few seconds.
const DEFAULTS: &str = r#"
[defaults]
retry = { max_attempts = 3, base = "20ms", max = "100ms", retry_after_cap = "2s" }
timeouts = { connect = "500ms", first_token = "400ms", idle = "250ms", attempt = "2s", total = "4s" }
breaker = { consecutive_failures = 5, cooldown = "200ms", max_cooldown = "800ms" }
"#;

/// `openai` and `anthropic` inherit their built-in profiles (model catalogs, prefill flags) with
/// the base URLs pointed at the simulator. The simulator ignores keys, but the profiles need one:
/// `PATH` is set on every machine (setting a variable is `unsafe` in edition 2024). Breakers are
/// probed by requests (`passive`): these tests count the calls each target gets, which a
/// background probe every 200 ms cooldown would add to (active probes: `tests/router_logic.rs`).
fn providers(sim: &SimServer) -> String {
    format!(
        r#"
[providers.openai]
base_url = "{}"
api_key_env = "PATH"
probe = "passive"

[providers.anthropic]
base_url = "{}"
api_key_env = "PATH"
probe = "passive"
"#,
        sim.openai_base_url(),
        sim.anthropic_base_url()
    )
}

/// The providers, the defaults and `routes` as one policy.
fn policy(sim: &SimServer, routes: &str) -> Policy {
    let text = format!("{}{DEFAULTS}{routes}", providers(sim));
    Policy::from_toml(&text, "router_sim").unwrap_or_else(|e| panic!("bad test policy: {e}\n{text}"))
}

/// A simulator and a router whose policy is the shared one plus `routes`.
async fn setup(routes: &str) -> (SimServer, Router) {
    let sim = support::sim().await;
    let router = Router::new(policy(&sim, routes));
    (sim, router)
}

/// A route `chat` over `targets` (`provider/model`), with extra route settings.
fn route(targets: &[&str], extra: &str) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|t| {
            let (p, m) = t.split_once('/').unwrap();
            format!("{{ provider = \"{p}\", model = \"{m}\" }}")
        })
        .collect();
    format!("\n[routes.chat]\ntargets = [{}]\n{extra}\n", targets.join(", "))
}

/// A route's `resume` that continues only with a prefill, and only on another target: the tests
/// of what happens where no target can continue.
const PREFILL_ONLY: &str = "resume = [\"prefill\"]\n[routes.chat.on.stream_interrupted]\nretry = false";

/// What the simulated model answers to `said` (its first 12 words echoed).
fn answer(model: &str, said: &str) -> String {
    format!("Hello from {model}. You said: {said}")
}

fn ms(n: u64) -> DurationStr {
    DurationStr::new(Duration::from_millis(n))
}

/// `(provider, model, outcome, class)` of each attempt: the shape tests compare.
fn shape(attempts: &[Attempt]) -> Vec<(String, String, AttemptOutcome, Option<ErrorClass>)> {
    attempts.iter().map(|a| (a.provider.clone(), a.model.clone(), a.outcome, a.class)).collect()
}

fn served(target: &str) -> (String, String, AttemptOutcome, Option<ErrorClass>) {
    let (p, m) = target.split_once('/').unwrap();
    (p.into(), m.into(), AttemptOutcome::Ok, None)
}

fn failed(target: &str, class: ErrorClass) -> (String, String, AttemptOutcome, Option<ErrorClass>) {
    let (p, m) = target.split_once('/').unwrap();
    (p.into(), m.into(), AttemptOutcome::Error, Some(class))
}

fn skipped(target: &str) -> (String, String, AttemptOutcome, Option<ErrorClass>) {
    let (p, m) = target.split_once('/').unwrap();
    (p.into(), m.into(), AttemptOutcome::Skipped, None)
}

/// Everything a routed stream delivered, in order.
#[derive(Debug)]
struct Streamed {
    events: Vec<StreamEvent>,
    collector: StreamCollector,
    error: Option<RouterError>,
    summary: Option<StreamSummary>,
    served_by: Option<(String, String)>,
}

impl Streamed {
    fn text(&self) -> &str {
        self.collector.text()
    }

    fn finishes(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, StreamEvent::Finish { .. })).count()
    }

    fn restarts(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, StreamEvent::Restart { .. })).count()
    }

    /// A stream ends in exactly one of two ways: a single `Finish` last (with a summary), or an error
    /// last (with no `Finish` and no summary).
    fn assert_well_formed(&self) {
        match &self.error {
            None => {
                assert_eq!(self.finishes(), 1, "a stream without an error must finish once: {self:?}");
                assert!(matches!(self.events.last(), Some(StreamEvent::Finish { .. })), "{self:?}");
                assert!(self.summary.is_some(), "a finished stream has a summary: {self:?}");
            }
            Some(_) => {
                assert_eq!(self.finishes(), 0, "a failed stream must not finish: {self:?}");
                assert!(self.summary.is_none(), "{self:?}");
            }
        }
    }

    fn error(&self) -> &RouterError {
        self.error.as_ref().unwrap_or_else(|| panic!("expected an error: {self:?}"))
    }

    fn summary(&self) -> &StreamSummary {
        self.summary.as_ref().unwrap_or_else(|| panic!("expected a finished stream: {self:?}"))
    }
}

/// Reads a routed stream to its end; an error must be the last item.
async fn stream(router: &Router, request: ChatRequest) -> Streamed {
    let mut s = router.chat_stream("chat", request).await.unwrap();
    let mut out =
        Streamed { events: Vec::new(), collector: StreamCollector::new(), error: None, summary: None, served_by: None };
    while let Some(item) = s.next().await {
        assert!(out.error.is_none(), "nothing may follow an error, got {item:?}");
        match item {
            Ok(e) => {
                out.collector.push(&e);
                out.events.push(e);
            }
            Err(e) => out.error = Some(e),
        }
    }
    out.summary = s.summary().cloned();
    out.served_by = s.served_by().map(|(p, m)| (p.to_owned(), m.to_owned()));
    out.assert_well_formed();
    out
}

/// Requests the simulator logged on `protocol` for `model`.
fn seen(sim: &SimServer, protocol: Protocol, model: &str) -> usize {
    sim.request_count(protocol, Some(model))
}

/// Wraps a real adapter and records when each call started and ended: the request log has no
/// clock, and this bounds it from the outside (a call starts before the simulator sees it and
/// ends after the simulator answered).
#[derive(Debug)]
struct Timed {
    inner: Arc<dyn Provider>,
    calls: Mutex<Vec<(Instant, Instant)>>,
}

impl Timed {
    fn openai(sim: &SimServer) -> Arc<Timed> {
        let config = ProviderConfig::new("openai", sim.openai_base_url())
            .api_key(ApiKey::new("sk-sim"))
            .profile(ProviderProfile::builtin("openai").unwrap());
        Arc::new(Timed { inner: Arc::new(OpenAi::new(config).unwrap()), calls: Mutex::default() })
    }

    fn calls(&self) -> Vec<(Instant, Instant)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Provider for Timed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn protocol(&self) -> Protocol {
        self.inner.protocol()
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatResponse, ProviderError> {
        let start = Instant::now();
        let result = self.inner.chat(call).await;
        self.calls.lock().unwrap().push((start, Instant::now()));
        result
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        self.inner.chat_stream(call).await
    }
}

fn rate_limit_ms(retry_after_ms: u64) -> Fault {
    Fault::Status {
        status: 429,
        error_type: None,
        code: None,
        message: None,
        retry_after: None,
        retry_after_ms: Some(retry_after_ms.to_string()),
        should_retry: None,
    }
}

// ---------------------------------------------------------------- rate limits

#[tokio::test]
async fn retry_after_is_honoured_before_every_retry() {
    let sim = support::sim().await;
    let timed = Timed::openai(&sim);
    let routes = route(&["openai/gpt-4o", "anthropic/claude-sonnet-4-5"], "");
    let router = Router::builder(policy(&sim, &routes)).provider("openai", timed.clone()).build();
    sim.add_fault(FaultRule::new(OPENAI, rate_limit_ms(300)).model("gpt-4o").first(2));

    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();

    assert_eq!((ok.provider(), ok.model()), ("openai", "gpt-4o"), "retried on the same target, not failed over");
    assert_eq!(ok.response.text, answer("gpt-4o", "hi"));
    let rl = failed("openai/gpt-4o", ErrorClass::RateLimited);
    assert_eq!(shape(&ok.attempts), vec![rl.clone(), rl, served("openai/gpt-4o")]);
    assert!(ok.attempts[..2].iter().all(|a| a.status == Some(429)));
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 3);
    assert_eq!(sim.request_count(ANTHROPIC, None), 0);
    let calls = timed.calls();
    assert_eq!(calls.len(), 3);
    for pair in calls.windows(2) {
        let gap = pair[1].0 - pair[0].1;
        assert!(gap >= Duration::from_millis(300), "a retry went {gap:?} after a 429 with retry-after-ms 300");
    }
}

#[tokio::test]
async fn persistent_rate_limit_backs_off_then_fails_over_without_hammering() {
    let (sim, router) = setup(&route(&["openai/gpt-4o", "anthropic/claude-sonnet-4-5"], "")).await;
    sim.add_fault(FaultRule::new(OPENAI, rate_limit_ms(250)).model("gpt-4o"));

    let t0 = Instant::now();
    let first = router.chat("chat", ChatRequest::user("hi")).await.unwrap();
    let elapsed = t0.elapsed();
    assert_eq!((first.provider(), first.model()), ("anthropic", "claude-sonnet-4-5"));
    let rl = failed("openai/gpt-4o", ErrorClass::RateLimited);
    assert_eq!(shape(&first.attempts), vec![rl.clone(), rl.clone(), rl, served("anthropic/claude-sonnet-4-5")]);
    assert!(elapsed >= Duration::from_millis(500), "two retries, each after retry-after-ms 250: {elapsed:?}");
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 3, "max_attempts bounds the retries");

    // the target is paused for the retry-after of its last 429: the requests that follow go
    // straight to the fallback without touching the limited target
    let more = futures::future::join_all((0..5).map(|i| router.chat("chat", ChatRequest::user(format!("n{i}"))))).await;
    for r in more {
        let r = r.unwrap();
        assert_eq!(r.model(), "claude-sonnet-4-5");
        assert_eq!(r.attempts[0].skip_reason, Some(SkipReason::Paused), "{:?}", r.attempts);
    }
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 3, "no request reached the rate-limited target while paused");
    assert_eq!(seen(&sim, ANTHROPIC, "claude-sonnet-4-5"), 6);
}

// ---------------------------------------------------------------- server errors, overload, resets

#[tokio::test]
async fn a_500_once_then_healthy_is_retried_on_the_same_target() {
    let (sim, router) = setup(&route(&["openai/gpt-4o", "anthropic/claude-sonnet-4-5"], "")).await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::status(500)).model("gpt-4o").first(1));

    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();

    assert_eq!((ok.provider(), ok.model()), ("openai", "gpt-4o"));
    assert_eq!(shape(&ok.attempts), vec![failed("openai/gpt-4o", ErrorClass::ServerError), served("openai/gpt-4o")]);
    assert_eq!(ok.attempts[0].status, Some(500));
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 2);
    assert_eq!(sim.request_count(ANTHROPIC, None), 0);
    let target = router.health().targets.into_iter().find(|t| t.model == "gpt-4o").unwrap();
    assert_eq!(target.state.breaker, BreakerState::Closed);
}

#[tokio::test]
async fn persistent_503_and_529_fail_over_within_the_budget() {
    let targets = ["openai/gpt-4o", "anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5"];
    let (sim, router) = setup(&route(&targets, "")).await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::status(503)).model("gpt-4o"));
    sim.add_fault(FaultRule::new(ANTHROPIC, Fault::status(529)).model("claude-sonnet-4-5"));

    let t0 = Instant::now();
    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();

    assert_eq!((ok.provider(), ok.model()), ("anthropic", "claude-haiku-4-5"));
    let o = failed("openai/gpt-4o", ErrorClass::Overloaded);
    let a = failed("anthropic/claude-sonnet-4-5", ErrorClass::Overloaded);
    assert_eq!(
        shape(&ok.attempts),
        vec![o.clone(), o.clone(), o, a.clone(), a.clone(), a, served("anthropic/claude-haiku-4-5")]
    );
    let statuses: Vec<_> = ok.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses[..6], [Some(503), Some(503), Some(503), Some(529), Some(529), Some(529)]);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 3);
    assert_eq!(seen(&sim, ANTHROPIC, "claude-sonnet-4-5"), 3);
    assert_eq!(seen(&sim, ANTHROPIC, "claude-haiku-4-5"), 1);
    assert!(t0.elapsed() < Duration::from_secs(2), "backoffs of 20-100ms, not the 4s budget: {:?}", t0.elapsed());

    // with no healthy target left the request fails, classified, inside the budget
    sim.add_fault(FaultRule::new(ANTHROPIC, Fault::status(529)).model("claude-haiku-4-5"));
    let t0 = Instant::now();
    let err = router.chat("chat", ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Overloaded);
    let f = err.failure().unwrap();
    assert_eq!(
        (f.provider.as_deref(), f.model.as_deref(), f.status),
        (Some("anthropic"), Some("claude-haiku-4-5"), Some(529))
    );
    assert!(t0.elapsed() < Duration::from_secs(4));
    // the breakers (5 consecutive failures) cut the retries short: 5 calls in all to each failing
    // target, not 6, and both are now open
    let o = failed("openai/gpt-4o", ErrorClass::Overloaded);
    let a = failed("anthropic/claude-sonnet-4-5", ErrorClass::Overloaded);
    let h = failed("anthropic/claude-haiku-4-5", ErrorClass::Overloaded);
    assert_eq!(shape(err.attempts()), vec![o.clone(), o, a.clone(), a, h.clone(), h.clone(), h]);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 5);
    assert_eq!(seen(&sim, ANTHROPIC, "claude-sonnet-4-5"), 5);
    let open: Vec<String> = router
        .health()
        .targets
        .into_iter()
        .filter(|t| t.state.breaker == BreakerState::Open)
        .map(|t| t.model)
        .collect();
    assert_eq!(open.len(), 2, "{open:?}");
}

#[tokio::test]
async fn a_reset_before_headers_is_a_connection_error_retried_then_failed_over() {
    let (sim, router) = setup(&route(&["openai/gpt-4o", "anthropic/claude-sonnet-4-5"], "")).await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::Reset).model("gpt-4o").first(1));

    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "gpt-4o", "a reset is retried on the same target");
    assert_eq!(shape(&ok.attempts), vec![failed("openai/gpt-4o", ErrorClass::Connection), served("openai/gpt-4o")]);
    assert_eq!(ok.attempts[0].status, None, "no response, no status");
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 2);

    // a target that keeps resetting is given up after max_attempts, and the answer comes from the fallback
    sim.add_fault(FaultRule::new(OPENAI, Fault::Reset).model("gpt-4o"));
    sim.clear_requests();
    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!((ok.provider(), ok.model()), ("anthropic", "claude-sonnet-4-5"));
    let c = failed("openai/gpt-4o", ErrorClass::Connection);
    assert_eq!(shape(&ok.attempts), vec![c.clone(), c.clone(), c, served("anthropic/claude-sonnet-4-5")]);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 3);
}

#[tokio::test]
async fn connection_failures_on_every_model_open_the_provider_breaker() {
    let targets = ["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"];
    let (sim, router) = setup(&route(&targets, "")).await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::Reset));

    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();

    // five consecutive connection failures across the provider's models (breaker: 5) open the
    // provider's breaker, which also cuts gpt-4o-mini's retries short
    assert_eq!(ok.model(), "claude-sonnet-4-5");
    let big = failed("openai/gpt-4o", ErrorClass::Connection);
    let mini = failed("openai/gpt-4o-mini", ErrorClass::Connection);
    assert_eq!(
        shape(&ok.attempts),
        vec![big.clone(), big.clone(), big, mini.clone(), mini, served("anthropic/claude-sonnet-4-5")]
    );
    assert_eq!(sim.request_count(OPENAI, None), 5);

    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "claude-sonnet-4-5");
    let skips: Vec<_> = ok.attempts.iter().map(|a| a.skip_reason.clone()).collect();
    assert_eq!(skips, [Some(SkipReason::ProviderBreakerOpen), Some(SkipReason::ProviderBreakerOpen), None]);
    assert_eq!(sim.request_count(OPENAI, None), 5, "no call to a provider whose breaker is open");
}

#[tokio::test]
async fn x_should_retry_false_stops_the_retries_of_a_500() {
    let (sim, router) = setup(&route(&["openai/gpt-4o", "anthropic/claude-sonnet-4-5"], "")).await;
    let fault = Fault::Status {
        status: 500,
        error_type: None,
        code: None,
        message: None,
        retry_after: None,
        retry_after_ms: None,
        should_retry: Some(false),
    };
    sim.add_fault(FaultRule::new(OPENAI, fault).model("gpt-4o").first(1));

    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();

    assert_eq!(ok.model(), "claude-sonnet-4-5", "the provider said not to retry: fail over at once");
    assert_eq!(
        shape(&ok.attempts),
        vec![failed("openai/gpt-4o", ErrorClass::ServerError), served("anthropic/claude-sonnet-4-5")]
    );
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 1);
}

#[tokio::test]
async fn an_exhausted_quota_trips_the_whole_provider() {
    let targets = ["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"];
    let (sim, router) = setup(&route(&targets, "")).await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::typed(429, "insufficient_quota", Some("insufficient_quota"))));

    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();

    // the account is out of money: not retried, and its other models are not tried either
    assert_eq!(ok.model(), "claude-sonnet-4-5");
    assert_eq!(
        shape(&ok.attempts),
        vec![
            failed("openai/gpt-4o", ErrorClass::QuotaExhausted),
            skipped("openai/gpt-4o-mini"),
            served("anthropic/claude-sonnet-4-5")
        ]
    );
    assert_eq!(ok.attempts[1].skip_reason, Some(SkipReason::ProviderBreakerOpen));
    // (at once: the provider's breaker cooldown is the default 200ms)
    let more = futures::future::join_all((0..3).map(|_| router.chat("chat", ChatRequest::user("hi")))).await;
    assert!(more.iter().all(|r| r.as_ref().is_ok_and(|r| r.model() == "claude-sonnet-4-5")));
    assert_eq!(sim.request_count(OPENAI, None), 1, "one request found out; the others did not ask again");
    let openai = router.health().providers.into_iter().find(|p| p.provider == "openai").unwrap();
    assert_eq!(openai.state.breaker, BreakerState::Open);
}

// ---------------------------------------------------------------- timeouts

#[tokio::test]
async fn a_silent_provider_ends_within_the_timeout_budget_and_is_not_retried() {
    // a first-token limit far away, so the attempt and total limits are what end the silence
    let extra = r#"timeouts = { first_token = "10s", idle = "10s", attempt = "400ms", total = "1s" }"#;
    let targets = ["openai/gpt-4o", "anthropic/claude-sonnet-4-5", "openai/gpt-4o-mini"];
    let (sim, router) = setup(&route(&targets, extra)).await;
    sim.add_fault(FaultRule { protocol: None, model: None, when: When::Always, fault: Fault::Hang });

    let t0 = Instant::now();
    let err = router.chat("chat", ChatRequest::user("hi")).await.unwrap_err();
    let elapsed = t0.elapsed();

    assert_eq!(err.class(), ErrorClass::Timeout);
    assert!(err.to_string().contains("the request's total timeout"), "names the limit that ended it: {err}");
    let t = ErrorClass::Timeout;
    assert_eq!(
        shape(err.attempts()),
        vec![failed("openai/gpt-4o", t), failed("anthropic/claude-sonnet-4-5", t), failed("openai/gpt-4o-mini", t)]
    );
    // 400ms + 400ms, then the 200ms the total leaves
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert!(err.attempts()[2].elapsed < Duration::from_millis(400), "the last attempt gets only what is left");
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 1, "a silent target is not retried");
    assert_eq!(seen(&sim, ANTHROPIC, "claude-sonnet-4-5"), 1);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o-mini"), 1);

    // the same for a stream: the caller gets a classified error, not a stream that never ends
    let t0 = Instant::now();
    let s = stream(&router, ChatRequest::user("hi")).await;
    let elapsed = t0.elapsed();
    assert!(s.events.is_empty(), "{:?}", s.events);
    assert_eq!(s.error().class(), ErrorClass::Timeout);
    assert!(s.error().to_string().contains("the request's total timeout"), "{}", s.error());
    assert_eq!(s.error().attempts().len(), 3);
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 2);
    assert_eq!(seen(&sim, ANTHROPIC, "claude-sonnet-4-5"), 2);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o-mini"), 2);
}

#[tokio::test]
async fn slow_first_token_fails_over_at_the_first_token_timeout() {
    let (sim, router) = setup(&route(&["openai/gpt-4o", "anthropic/claude-sonnet-4-5"], "")).await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::SlowFirstToken { delay: ms(3000) }).model("gpt-4o"));

    let t0 = Instant::now();
    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();
    let elapsed = t0.elapsed();

    assert_eq!((ok.provider(), ok.model()), ("anthropic", "claude-sonnet-4-5"));
    assert_eq!(
        shape(&ok.attempts),
        vec![failed("openai/gpt-4o", ErrorClass::Timeout), served("anthropic/claude-sonnet-4-5")]
    );
    let waited = ok.attempts[0].elapsed;
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_millis(1000), "{waited:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 1, "a timeout is not retried on the same target");
    assert_eq!(seen(&sim, ANTHROPIC, "claude-sonnet-4-5"), 1);
}

#[tokio::test]
async fn slow_first_token_in_a_stream_fails_over_invisibly() {
    let (sim, router) = setup(&route(&["openai/gpt-4o", "anthropic/claude-sonnet-4-5"], "")).await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::SlowFirstToken { delay: ms(3000) }).model("gpt-4o"));

    let t0 = Instant::now();
    let s = stream(&router, ChatRequest::user("hi")).await;
    let elapsed = t0.elapsed();

    assert!(s.error.is_none(), "{:?}", s.error);
    assert_eq!(s.text(), answer("claude-sonnet-4-5", "hi"), "nothing from the slow target reached the caller");
    assert_eq!(s.restarts(), 0);
    let summary = s.summary();
    assert_eq!((summary.provider.as_str(), summary.model.as_str()), ("anthropic", "claude-sonnet-4-5"));
    assert!(!summary.continued && !summary.restarted);
    assert_eq!(
        shape(&summary.attempts),
        vec![failed("openai/gpt-4o", ErrorClass::Timeout), served("anthropic/claude-sonnet-4-5")]
    );
    let waited = summary.attempts[0].elapsed;
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_millis(1000), "{waited:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 1);
    assert_eq!(seen(&sim, ANTHROPIC, "claude-sonnet-4-5"), 1);
}

// ---------------------------------------------------------------- broken streams

/// Each wire with a fallback on the same wire that cannot continue an answer (OpenAI has no
/// prefill; Claude 4.6 rejects it and its profile says so).
const NO_PREFILL_PAIRS: [(Protocol, &str, &str); 2] = [
    (Protocol::Openai, "openai/gpt-4o", "openai/gpt-4o-mini"),
    (Protocol::Anthropic, "anthropic/claude-sonnet-4-5", "anthropic/claude-sonnet-4-6"),
];

fn model_of(target: &str) -> &str {
    target.split_once('/').unwrap().1
}

#[tokio::test]
async fn a_stream_cut_mid_answer_is_never_a_success() {
    for (protocol, primary, fallback) in NO_PREFILL_PAIRS {
        let (sim, router) = setup(&route(&[primary, fallback], PREFILL_ONLY)).await;
        let model = model_of(primary);
        sim.add_fault(FaultRule::new(protocol, Fault::Cut { after_tokens: 3 }).model(model));

        let s = stream(&router, ChatRequest::user("hi")).await;

        // the caller got the three words that were sent, then an error that carries them
        let partial = format!("Hello from {model}.");
        assert_eq!(s.text(), partial, "{protocol:?}");
        let err = s.error();
        assert_eq!(err.class(), ErrorClass::StreamInterrupted, "{protocol:?}: {err}");
        let f = err.failure().unwrap();
        assert_eq!(f.partial().map(|p| p.text.as_str()), Some(partial.as_str()));
        assert_eq!(f.error.as_ref().map(|e| e.class()), Some(ErrorClass::StreamInterrupted));
        assert_eq!(f.provider.as_deref(), Some(primary.split_once('/').unwrap().0));
        assert_eq!(
            shape(&f.attempts),
            vec![failed(primary, ErrorClass::StreamInterrupted), skipped(fallback)],
            "{protocol:?}"
        );
        assert_eq!(f.attempts[1].skip_reason, Some(SkipReason::NoPrefill));
        assert_eq!(seen(&sim, protocol, model), 1);
        assert_eq!(seen(&sim, protocol, model_of(fallback)), 0, "a target that cannot continue is not asked");
        assert_eq!(s.served_by, Some((primary.split_once('/').unwrap().0.into(), model.into())));
    }
}

#[tokio::test]
async fn a_stall_is_detected_by_the_idle_timeout() {
    let (sim, router) = setup(&route(&["openai/gpt-4o", "openai/gpt-4o-mini"], PREFILL_ONLY)).await;

    // mid-answer: the caller keeps what it got and learns why the rest never came
    sim.add_fault(
        FaultRule::new(OPENAI, Fault::Stall { after_tokens: 2, duration: ms(5000) }).model("gpt-4o").first(1),
    );
    let t0 = Instant::now();
    let s = stream(&router, ChatRequest::user("hi")).await;
    let elapsed = t0.elapsed();
    assert_eq!(s.text(), "Hello from");
    let err = s.error();
    assert_eq!(err.class(), ErrorClass::Timeout, "the stall is the cause");
    let f = err.failure().unwrap();
    assert!(f.mid_stream);
    assert_eq!(f.error.as_ref().map(|e| e.class()), Some(ErrorClass::Timeout), "the stall is the original failure");
    assert_eq!(f.partial().map(|p| p.text.as_str()), Some("Hello from"));
    assert!(elapsed >= Duration::from_millis(250) && elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 1);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o-mini"), 0);

    // before any content: the stall fails over invisibly
    sim.add_fault(
        FaultRule::new(OPENAI, Fault::Stall { after_tokens: 0, duration: ms(5000) }).model("gpt-4o").first(1),
    );
    let t0 = Instant::now();
    let s = stream(&router, ChatRequest::user("hi")).await;
    assert!(t0.elapsed() < Duration::from_millis(1500), "{:?}", t0.elapsed());
    assert!(s.error.is_none(), "{:?}", s.error);
    assert_eq!(s.text(), answer("gpt-4o-mini", "hi"));
    assert_eq!(
        shape(&s.summary().attempts),
        vec![failed("openai/gpt-4o", ErrorClass::Timeout), served("openai/gpt-4o-mini")]
    );
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 2);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o-mini"), 1);
}

#[tokio::test]
async fn a_stream_that_outlives_its_attempt_timeout_is_ended_by_it() {
    // the idle limit is far away: only the attempt's deadline can end this stall
    let extra = r#"timeouts = { idle = "10s", attempt = "300ms" }"#;
    let (sim, router) = setup(&route(&["openai/gpt-4o"], extra)).await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::Stall { after_tokens: 2, duration: ms(5000) }).first(1));

    let t0 = Instant::now();
    let s = stream(&router, ChatRequest::user("hi")).await;
    let elapsed = t0.elapsed();
    assert_eq!(s.text(), "Hello from");
    let f = s.error().failure().unwrap();
    let original = f.error.as_ref().unwrap();
    assert_eq!(original.class(), ErrorClass::Timeout);
    assert!(original.message().contains("within the attempt timeout"), "{}", original.message());
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 1);
}

#[tokio::test]
async fn a_malformed_chunk_fails_cleanly_and_never_leaks_into_the_text() {
    for (protocol, primary, fallback) in NO_PREFILL_PAIRS {
        let (sim, router) = setup(&route(&[primary, fallback], PREFILL_ONLY)).await;
        let model = model_of(primary);

        // mid-answer: an error carrying the clean partial text
        sim.add_fault(FaultRule::new(protocol, Fault::MalformedChunk { after_tokens: 2 }).model(model).first(1));
        let s = stream(&router, ChatRequest::user("hi")).await;
        assert_eq!(s.text(), "Hello from", "{protocol:?}");
        let f = s.error().failure().unwrap();
        assert_eq!(f.class, ErrorClass::MalformedResponse, "{protocol:?}");
        assert!(f.mid_stream);
        assert_eq!(f.error.as_ref().map(|e| e.class()), Some(ErrorClass::MalformedResponse), "{protocol:?}");
        assert_eq!(f.partial().map(|p| p.text.as_str()), Some("Hello from"));
        // the error says what failed to decode, without echoing the raw bytes
        assert!(!f.message.contains('{'), "{}", f.message);

        // before any content: failed over invisibly, the answer is the fallback's, whole and clean
        sim.add_fault(FaultRule::new(protocol, Fault::MalformedChunk { after_tokens: 0 }).model(model).first(1));
        let s = stream(&router, ChatRequest::user("hi")).await;
        assert!(s.error.is_none(), "{protocol:?}: {:?}", s.error);
        assert_eq!(s.text(), answer(model_of(fallback), "hi"), "{protocol:?}");
        assert_eq!(
            shape(&s.summary().attempts),
            vec![failed(primary, ErrorClass::MalformedResponse), served(fallback)],
            "{protocol:?}"
        );
        assert_eq!(seen(&sim, protocol, model), 2, "a malformed answer is not retried on the same target");
        assert_eq!(seen(&sim, protocol, model_of(fallback)), 1);
    }
}

#[tokio::test]
async fn a_finish_without_the_terminal_sentinel_finishes_promptly() {
    for (protocol, target) in [(OPENAI, "openai/gpt-4o"), (ANTHROPIC, "anthropic/claude-sonnet-4-5")] {
        // an idle limit far away: the stream must end on the finish itself, not on a stall
        let extra = r#"timeouts = { idle = "10s" }"#;
        let (sim, router) = setup(&route(&[target, "openai/gpt-4o-mini"], extra)).await;
        let model = model_of(target);
        sim.add_fault(FaultRule::new(protocol, Fault::NoDone).model(model));

        let t0 = Instant::now();
        let s = stream(&router, ChatRequest::user("hi")).await;
        let elapsed = t0.elapsed();

        assert!(s.error.is_none(), "{protocol:?}: {:?}", s.error);
        assert_eq!(s.text(), answer(model, "hi"));
        let summary = s.summary();
        assert_eq!(summary.model, model);
        assert_eq!(summary.finish_reason, FinishReason::Stop);
        assert_eq!(shape(&summary.attempts), vec![served(target)]);
        assert!(elapsed < Duration::from_secs(1), "{protocol:?}: held open for {elapsed:?}");
        assert_eq!(seen(&sim, protocol, model), 1);
        assert_eq!(seen(&sim, OPENAI, "gpt-4o-mini"), 0);
    }
}

// ---------------------------------------------------------------- request-level failures

#[tokio::test]
async fn context_overflow_is_not_retried_and_goes_to_a_larger_model() {
    let targets = ["openai/gpt-4o-tiny", "openai/gpt-4o"];
    let (sim, router) = setup(&route(&targets, "")).await;
    // 60 words, 300 characters: 75 tokens, more than the 64 of a `-tiny` model
    let long = "word ".repeat(60);

    let ok = router.chat("chat", ChatRequest::user(long.trim_end())).await.unwrap();

    assert_eq!(ok.model(), "gpt-4o");
    assert_eq!(
        shape(&ok.attempts),
        vec![failed("openai/gpt-4o-tiny", ErrorClass::ContextLengthExceeded), served("openai/gpt-4o")]
    );
    assert_eq!(ok.attempts[0].status, Some(400));
    assert_eq!(seen(&sim, OPENAI, "gpt-4o-tiny"), 1, "the same prompt cannot fit on a retry");
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 1);

    // a short prompt fits the tiny model
    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "gpt-4o-tiny");
}

#[tokio::test]
async fn context_overflow_skips_a_model_whose_window_is_not_larger() {
    // gpt-4o and gpt-4o-mini have 128k windows in the catalog, gpt-4.1 about a million
    let targets = ["openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4.1"];
    let (sim, router) = setup(&route(&targets, "")).await;
    let huge = "abcd ".repeat(110_000); // 550,000 characters: about 137,500 tokens

    let ok = router.chat("chat", ChatRequest::user(huge)).await.unwrap();

    assert_eq!(ok.model(), "gpt-4.1");
    assert_eq!(
        shape(&ok.attempts),
        vec![
            failed("openai/gpt-4o", ErrorClass::ContextLengthExceeded),
            skipped("openai/gpt-4o-mini"),
            served("openai/gpt-4.1")
        ]
    );
    assert_eq!(ok.attempts[1].skip_reason, Some(SkipReason::ContextTooSmall));
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 1);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o-mini"), 0, "a window that cannot fit the prompt is not tried");
    assert_eq!(seen(&sim, OPENAI, "gpt-4.1"), 1);
}

#[tokio::test]
async fn context_overflow_goes_to_the_overflow_route() {
    let routes = format!(
        "{}\n[routes.long]\ntargets = [{{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }}]\n",
        route(&["openai/gpt-4o-tiny", "openai/gpt-4o-mini-tiny"], "on_context_overflow = \"long\"")
    );
    let (sim, router) = setup(&routes).await;
    let long = "word ".repeat(60);

    let ok = router.chat("chat", ChatRequest::user(long.trim_end())).await.unwrap();

    assert_eq!((ok.provider(), ok.model(), ok.route.as_str()), ("anthropic", "claude-sonnet-4-5", "long"));
    assert_eq!(
        shape(&ok.attempts),
        vec![failed("openai/gpt-4o-tiny", ErrorClass::ContextLengthExceeded), served("anthropic/claude-sonnet-4-5")]
    );
    assert_eq!(seen(&sim, OPENAI, "gpt-4o-tiny"), 1);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o-mini-tiny"), 0, "the overflow route replaces the rest of this one");
}

#[tokio::test]
async fn content_filter_is_propagated_not_failed_over() {
    let (sim, router) = setup(&route(&["openai/gpt-4o", "anthropic/claude-sonnet-4-5"], "")).await;
    let filter = Fault::Status {
        status: 400,
        error_type: Some("invalid_request_error".into()),
        code: Some("content_policy_violation".into()),
        message: Some("Your request was rejected as a result of our safety system.".into()),
        retry_after: None,
        retry_after_ms: None,
        should_retry: None,
    };
    sim.add_fault(FaultRule::new(OPENAI, filter).model("gpt-4o"));

    let err = router.chat("chat", ChatRequest::user("hi")).await.unwrap_err();

    assert_eq!(err.class(), ErrorClass::ContentFiltered);
    let f = err.failure().unwrap();
    assert_eq!((f.provider.as_deref(), f.model.as_deref(), f.status), (Some("openai"), Some("gpt-4o"), Some(400)));
    let e = f.error.as_ref().unwrap();
    assert_eq!(e.provider_code(), Some("content_policy_violation"), "the provider's own reason is kept");
    assert!(e.message().contains("safety system"), "{}", e.message());
    assert_eq!(shape(&f.attempts), vec![failed("openai/gpt-4o", ErrorClass::ContentFiltered)]);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 1);
    assert_eq!(sim.request_count(ANTHROPIC, None), 0, "a refusal is not shopped around to another provider");
}

// ---------------------------------------------------------------- breakers

#[tokio::test]
async fn passive_a_flapping_provider_opens_the_breaker_is_probed_once_per_cooldown_and_recovers() {
    let extra = r#"
retry = { max_attempts = 1 }
breaker = { consecutive_failures = 3, cooldown = "1s", max_cooldown = "4s" }
"#;
    // cooldowns of seconds: the check that nothing is probed before the doubled cooldown ends has
    // more than a second to spare on a loaded machine
    // `probe = "passive"`: the first request after a cooldown is the probe
    let sim = support::sim().await;
    let text =
        format!("{}{DEFAULTS}{}", providers(&sim), route(&["openai/gpt-4o", "anthropic/claude-sonnet-4-5"], extra));
    let router = Router::new(Policy::from_toml(&text, "router_sim").unwrap());
    let mut events = router.subscribe();
    let fault = sim.add_fault(FaultRule::new(OPENAI, Fault::status(500)).model("gpt-4o"));
    let breaker = |r: &Router| r.health().targets.into_iter().find(|t| t.model == "gpt-4o").unwrap().state.breaker;

    // three failures in a row open the breaker; each request is served by the fallback
    for _ in 0..3 {
        let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();
        assert_eq!(ok.model(), "claude-sonnet-4-5");
    }
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 3);
    assert_eq!(breaker(&router), BreakerState::Open);

    // while open: no traffic to the target
    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.attempts[0].skip_reason, Some(SkipReason::BreakerOpen));
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 3);

    // after the cooldown a burst of requests sends exactly one probe; it fails and the cooldown doubles
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let burst = futures::future::join_all((0..10).map(|_| router.chat("chat", ChatRequest::user("hi")))).await;
    assert!(burst.iter().all(|r| r.as_ref().is_ok_and(|r| r.model() == "claude-sonnet-4-5")));
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 4, "one probe per cooldown, not a flood");
    let probes: Vec<&Attempt> = burst.iter().flat_map(|r| &r.as_ref().unwrap().attempts).filter(|a| a.probe).collect();
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].class, Some(ErrorClass::ServerError));
    assert_eq!(breaker(&router), BreakerState::Open);

    // the provider recovers; still nothing before the doubled cooldown (2s) ends
    sim.remove_fault(fault);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();
    assert_eq!(ok.model(), "claude-sonnet-4-5");
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 4);

    // then the probe succeeds, the breaker closes and the target serves again (until then the
    // fallback serves)
    let ok = support::poll_for(Duration::from_secs(10), || async {
        let ok = router.chat("chat", ChatRequest::user("hi")).await.unwrap();
        (ok.model() == "gpt-4o").then_some(ok)
    })
    .await
    .expect("the target never served again");
    assert_eq!(ok.model(), "gpt-4o");
    assert_eq!(shape(&ok.attempts), vec![served("openai/gpt-4o")]);
    assert!(ok.attempts[0].probe, "the attempt that closed the breaker was its probe");
    assert_eq!(breaker(&router), BreakerState::Closed);
    for _ in 0..3 {
        assert_eq!(router.chat("chat", ChatRequest::user("hi")).await.unwrap().model(), "gpt-4o");
    }
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 8);

    let mut transitions = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let RouterEvent::Breaker { model: Some(m), from, to, .. } = e
            && m == "gpt-4o"
        {
            transitions.push((from, to));
        }
    }
    use BreakerState::{Closed, HalfOpen, Open};
    assert_eq!(transitions, vec![(Closed, Open), (HalfOpen, Open), (HalfOpen, Closed)]);
}

// ---------------------------------------------------------------- attribution and continuation

#[tokio::test]
async fn the_response_names_the_fallback_model_with_its_usage() {
    let (sim, router) = setup(&route(&["openai/gpt-4o", "anthropic/claude-sonnet-4-5"], "")).await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::status(500)).model("gpt-4o"));
    let said = "what is the weather"; // 19 characters: 5 input tokens

    let ok = router.chat("chat", ChatRequest::user(said)).await.unwrap();
    assert_eq!((ok.provider(), ok.model(), ok.route.as_str()), ("anthropic", "claude-sonnet-4-5", "chat"));
    assert_eq!(ok.response.text, answer("claude-sonnet-4-5", said));
    assert_eq!((ok.usage().input_tokens, ok.usage().output_tokens), (5, 9));
    assert!(ok.response.request_id.as_deref().is_some_and(|id| id.starts_with("req_sim_")));
    let last = ok.attempts.last().unwrap();
    assert_eq!(
        (last.provider.as_str(), last.model.as_str(), last.status),
        ("anthropic", "claude-sonnet-4-5", Some(200))
    );
    assert_eq!(ok.attempts.iter().filter(|a| a.class == Some(ErrorClass::ServerError)).count(), 3);
    let logged = sim.requests().into_iter().find(|r| r.protocol == ANTHROPIC).unwrap();
    assert_eq!(logged.model, "claude-sonnet-4-5");
    assert!(!logged.stream);

    // the same attribution for a stream
    let s = stream(&router, ChatRequest::user(said)).await;
    let summary = s.summary();
    assert_eq!((summary.provider.as_str(), summary.model.as_str()), ("anthropic", "claude-sonnet-4-5"));
    assert_eq!(s.served_by, Some(("anthropic".into(), "claude-sonnet-4-5".into())));
    let usage = summary.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (5, 9));
    assert_eq!(s.text(), answer("claude-sonnet-4-5", said));
    assert_eq!(seen(&sim, ANTHROPIC, "claude-sonnet-4-5"), 2);
}

/// The messages of a logged Anthropic request: `(role, text)`.
fn anthropic_messages(body: &serde_json::Value) -> Vec<(String, String)> {
    let text = |c: &serde_json::Value| match c {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    };
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), text(&m["content"])))
        .collect()
}

#[tokio::test]
async fn an_openai_stream_cut_mid_answer_is_continued_on_anthropic_with_prefill() {
    let (sim, router) =
        setup(&route(&["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"], PREFILL_ONLY)).await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::Cut { after_tokens: 3 }).model("gpt-4o"));

    let s = stream(&router, ChatRequest::user("hi")).await;

    assert!(s.error.is_none(), "{:?}", s.error);
    assert_eq!(s.restarts(), 0, "a continuation does not take back what was shown");
    // the simulated Claude does not recognise another model's words as its own, so it answers in
    // full after the prefill: one stream, the cut target's words first
    let partial = "Hello from gpt-4o.";
    assert_eq!(s.text(), format!("{partial}{}", answer("claude-sonnet-4-5", "hi")));
    let summary = s.summary();
    assert!(summary.continued && !summary.restarted);
    assert_eq!((summary.provider.as_str(), summary.model.as_str()), ("anthropic", "claude-sonnet-4-5"));
    assert_eq!(summary.finish_reason, FinishReason::Stop);
    assert_eq!(
        shape(&summary.attempts),
        vec![
            failed("openai/gpt-4o", ErrorClass::StreamInterrupted),
            skipped("openai/gpt-4o-mini"),
            served("anthropic/claude-sonnet-4-5")
        ]
    );
    assert_eq!(summary.attempts[1].skip_reason, Some(SkipReason::NoPrefill));

    // what Anthropic saw: the conversation with the delivered text as an assistant prefill
    assert_eq!(seen(&sim, OPENAI, "gpt-4o"), 1);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o-mini"), 0);
    let logged: Vec<_> = sim.requests().into_iter().filter(|r| r.protocol == ANTHROPIC).collect();
    assert_eq!(logged.len(), 1);
    assert!(logged[0].stream);
    assert_eq!(
        anthropic_messages(&logged[0].body),
        vec![("user".into(), "hi".into()), ("assistant".into(), partial.into())]
    );
}

#[tokio::test]
async fn a_continuation_waits_out_a_short_pause_of_the_only_target_that_can_continue() {
    // `warm` shares the Claude target with `chat`: its 429 pauses that target for everyone
    let routes = format!(
        "{}\n[routes.warm]\ntargets = [{{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }}]\nretry = {{ max_attempts = 1 }}\n",
        route(&["openai/gpt-4o", "anthropic/claude-sonnet-4-5", "openai/gpt-4o-mini"], PREFILL_ONLY)
    );
    let (sim, router) = setup(&routes).await;
    sim.add_fault(FaultRule::new(ANTHROPIC, rate_limit_ms(400)).model("claude-sonnet-4-5").first(1));
    sim.add_fault(FaultRule::new(OPENAI, Fault::Cut { after_tokens: 3 }).model("gpt-4o"));
    let err = router.chat("warm", ChatRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited);
    let paused_at = Instant::now();

    let s = stream(&router, ChatRequest::user("hi")).await;

    // gpt-4o-mini comes after Claude but cannot take a prefill: Claude is the last option of the
    // continuation, so the router waits out its pause (within the cap) instead of giving up
    assert!(s.error.is_none(), "{:?}", s.error);
    let summary = s.summary();
    assert!(summary.continued);
    assert_eq!(summary.model, "claude-sonnet-4-5");
    assert!(paused_at.elapsed() >= Duration::from_millis(350), "continued before the pause ended");
    assert_eq!(s.text(), format!("Hello from gpt-4o.{}", answer("claude-sonnet-4-5", "hi")));
    assert_eq!(seen(&sim, ANTHROPIC, "claude-sonnet-4-5"), 2);
    assert_eq!(seen(&sim, OPENAI, "gpt-4o-mini"), 0);
}

#[tokio::test]
async fn a_continuation_on_the_same_model_elsewhere_is_seamless() {
    // two accounts of the same provider: the second continues exactly where the first was cut
    let routes = format!(
        "\n[providers.backup]\nprofile = \"anthropic\"\nbase_url = \"{{}}\"\napi_key_env = \"PATH\"\n{}",
        route(
            &["anthropic/claude-sonnet-4-5", "backup/claude-sonnet-4-5"],
            "[routes.chat.on.stream_interrupted]\nretry = false"
        )
    );
    let sim = support::sim().await;
    let routes = routes.replace("{}", &sim.anthropic_base_url());
    let router = Router::new(policy(&sim, &routes));
    sim.add_fault(FaultRule::new(ANTHROPIC, Fault::Cut { after_tokens: 3 }).model("claude-sonnet-4-5").first(1));
    let said = "one two three";

    let s = stream(&router, ChatRequest::user(said)).await;

    assert!(s.error.is_none(), "{:?}", s.error);
    assert_eq!(s.text(), answer("claude-sonnet-4-5", said), "no seam: nothing repeated, nothing lost");
    let texts: Vec<&str> = s
        .events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["Hello", " from", " claude-sonnet-4-5.", " You", " said:", " one", " two", " three"]);
    let summary = s.summary();
    assert!(summary.continued);
    assert_eq!(summary.provider, "backup");
    let usage = summary.usage.unwrap();
    assert_eq!(usage.output_tokens, 5, "the continuation's own usage");
    let logged = sim.requests();
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[0].fault.as_deref(), Some("cut"));
    assert_eq!(
        anthropic_messages(&logged[1].body).last(),
        Some(&("assistant".to_owned(), "Hello from claude-sonnet-4-5.".to_owned()))
    );
}

#[tokio::test]
async fn a_fallback_that_rejects_prefill_does_not_mask_the_original_failure() {
    // `claude_raw` has no profile, so nothing tells the router Claude 4.6 rejects prefill: it finds
    // out from the 400, learns it, and reports the cut that started it all
    let sim = support::sim().await;
    let routes = format!(
        "\n[providers.claude_raw]\nprotocol = \"anthropic\"\nbase_url = \"{}\"\napi_key_env = \"PATH\"\n{}",
        sim.anthropic_base_url(),
        route(&["openai/gpt-4o", "claude_raw/claude-sonnet-4-6"], PREFILL_ONLY)
    );
    let router = Router::new(policy(&sim, &routes));
    sim.add_fault(FaultRule::new(OPENAI, Fault::Cut { after_tokens: 3 }).model("gpt-4o"));

    let s = stream(&router, ChatRequest::user("hi")).await;

    assert_eq!(s.text(), "Hello from gpt-4o.");
    let err = s.error();
    assert_eq!(err.class(), ErrorClass::StreamInterrupted);
    let f = err.failure().unwrap();
    let original = f.error.as_ref().unwrap();
    assert_eq!((original.class(), original.provider()), (ErrorClass::StreamInterrupted, "openai"));
    assert_eq!(f.provider.as_deref(), Some("openai"));
    assert_eq!(f.partial().map(|p| p.text.as_str()), Some("Hello from gpt-4o."));
    assert!(!f.message.to_lowercase().contains("prefill"), "the rejection must not replace the cause: {}", f.message);
    assert_eq!(
        shape(&f.attempts),
        vec![
            failed("openai/gpt-4o", ErrorClass::StreamInterrupted),
            failed("claude_raw/claude-sonnet-4-6", ErrorClass::InvalidRequest)
        ]
    );
    assert_eq!(f.attempts[1].status, Some(400));
    let logged: Vec<_> = sim.requests().into_iter().filter(|r| r.protocol == ANTHROPIC).collect();
    assert_eq!(logged.len(), 1);
    assert_eq!(anthropic_messages(&logged[0].body).last().map(|m| m.0.as_str()), Some("assistant"));

    // learned: the next interrupted stream does not ask it again, and its breaker was not counted
    let s = stream(&router, ChatRequest::user("hi")).await;
    let f = s.error().failure().unwrap();
    assert_eq!(f.attempts[1].skip_reason, Some(SkipReason::NoPrefill));
    assert_eq!(sim.request_count(ANTHROPIC, None), 1);
    let t = router.health().targets.into_iter().find(|t| t.model == "claude-sonnet-4-6").unwrap();
    assert_eq!(t.state.breaker, BreakerState::Closed);

    // a request that needs no continuation is served by that model as usual
    sim.clear_faults();
    sim.add_fault(FaultRule::new(OPENAI, Fault::status(500)).model("gpt-4o"));
    let s = stream(&router, ChatRequest::user("hi")).await;
    assert_eq!(s.text(), answer("claude-sonnet-4-6", "hi"));
    assert_eq!(s.summary().provider, "claude_raw");
}

// ---------------------------------------------------------------- load

/// What one request of the load test ended with.
#[derive(Debug)]
enum Ended {
    Chat(Result<switchyard::RoutedResponse, RouterError>),
    Stream(Streamed),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_requests_under_random_faults_all_end_in_time() {
    let extra = r#"
timeouts = { first_token = "500ms", idle = "300ms", attempt = "1s", total = "3s" }
retry = { max_attempts = 2, base = "20ms", max = "50ms", retry_after_cap = "200ms" }
"#;
    let targets = ["openai/gpt-4o", "anthropic/claude-sonnet-4-5", "openai/gpt-4o-mini"];
    let (sim, router) = setup(&route(&targets, extra)).await;
    let total = Duration::from_secs(3);
    let rate = |p: Protocol, f: Fault, r: f64| FaultRule::new(p, f).rate(r);
    for p in [OPENAI, ANTHROPIC] {
        sim.add_fault(rate(p, rate_limit_ms(50), 0.05));
        sim.add_fault(rate(p, Fault::status(500), 0.05));
        sim.add_fault(rate(p, Fault::status(if p == OPENAI { 503 } else { 529 }), 0.05));
        sim.add_fault(rate(p, Fault::Reset, 0.03));
        sim.add_fault(rate(p, Fault::Hang, 0.02));
        sim.add_fault(rate(p, Fault::Latency { delay: ms(100) }, 0.05));
        sim.add_fault(rate(p, Fault::SlowFirstToken { delay: ms(2000) }, 0.03));
        sim.add_fault(rate(p, Fault::Cut { after_tokens: 2 }, 0.05));
        sim.add_fault(rate(p, Fault::Stall { after_tokens: 3, duration: ms(2000) }, 0.03));
        sim.add_fault(rate(p, Fault::MalformedChunk { after_tokens: 1 }, 0.03));
        sim.add_fault(rate(p, Fault::StreamError { after_tokens: 2, error_type: None }, 0.03));
        sim.add_fault(rate(p, Fault::NoDone, 0.03));
    }

    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let router = router.clone();
            tokio::spawn(async move {
                let said = format!("request {i}");
                let request = ChatRequest::user(said.clone());
                let t0 = Instant::now();
                let run = async {
                    if i % 2 == 0 {
                        Ended::Chat(router.chat("chat", request).await)
                    } else {
                        Ended::Stream(stream(&router, request).await)
                    }
                };
                // a generous watchdog: the router must end every request by its own total timeout
                let ended = tokio::time::timeout(total + Duration::from_secs(2), run).await;
                (said, ended, t0.elapsed())
            })
        })
        .collect();

    let (mut ok, mut failed_classified) = (0, 0);
    let mut by_class = std::collections::BTreeMap::<String, usize>::new();
    for task in tasks {
        // a panic in the router or an adapter would surface here as a JoinError
        let (said, ended, elapsed) = task.await.expect("a request panicked");
        let ended = ended.unwrap_or_else(|_| panic!("request `{said}` hung past its deadline"));
        assert!(elapsed <= total + Duration::from_millis(500), "`{said}` took {elapsed:?}, total is {total:?}");
        match ended {
            Ended::Chat(Ok(r)) => {
                assert_eq!(r.response.text, answer(r.model(), &said), "a chat answer is whole and clean");
                assert_eq!(r.attempts.last().map(|a| a.outcome), Some(AttemptOutcome::Ok));
                ok += 1;
            }
            Ended::Stream(s) if s.error.is_none() => {
                let summary = s.summary();
                if !summary.continued && !summary.restarted {
                    assert_eq!(s.text(), answer(&summary.model, &said), "a stream answer is whole and clean");
                } else {
                    assert!(s.text().ends_with(&said), "a continued answer ends like the model's: {:?}", s.text());
                }
                ok += 1;
            }
            Ended::Chat(Err(e)) => {
                assert!(e.failure().is_some(), "{e}");
                assert!(!e.attempts().is_empty(), "{e}");
                *by_class.entry(e.class().to_string()).or_default() += 1;
                failed_classified += 1;
            }
            Ended::Stream(s) => {
                let e = s.error();
                let f = e.failure().unwrap_or_else(|| panic!("{e}"));
                if !s.text().is_empty() {
                    // whatever was shown is in the error's checkpoint
                    assert_eq!(f.partial().map(|p| p.text.as_str()), Some(s.text()), "{e}");
                }
                *by_class.entry(e.class().to_string()).or_default() += 1;
                failed_classified += 1;
            }
        }
    }
    eprintln!("{ok} served, {failed_classified} failed: {by_class:?}; {} upstream requests", sim.requests().len());
    assert_eq!(ok + failed_classified, 300);
    // three targets with ~40% faults each serve about 95% of requests; the bound leaves room for a
    // loaded machine, where timeouts fire that would not otherwise
    assert!(ok >= 150, "most requests should be served: {ok} ok, {by_class:?}");
    let seen_total = sim.requests().len();
    assert!((300..=300 * 8).contains(&seen_total), "{seen_total} upstream requests for 300 routed ones");
}

#[tokio::test]
async fn streamed_calls_reuse_their_upstream_connections() {
    // a body dropped before its end takes its connection with it: every stream would then pay
    // for a new connection (and leave one in TIME_WAIT)
    for (target, options) in [("openai/gpt-4o-mini", ""), ("anthropic/claude-sonnet-4-5", "")] {
        let (sim, router) = setup(&route(&[target], options)).await;
        for _ in 0..5 {
            let mut stream = router.chat_stream("chat", ChatRequest::user("Hello there")).await.unwrap();
            while let Some(event) = stream.next().await {
                event.unwrap();
            }
            // a client's next request comes after it has handled the answer: the connection goes
            // back to the pool in the background, once its body is read to its end
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        support::eventually(Duration::from_secs(5), || sim.accepted_connections() == 1).await;
        assert_eq!(sim.accepted_connections(), 1, "{target}: every stream opened its own connection");
    }
}

#[tokio::test]
async fn a_route_failure_has_the_provider_error_as_its_source() {
    let (sim, router) = setup(&route(&["anthropic/claude-sonnet-4-5"], "retry = { max_attempts = 1 }")).await;
    sim.add_fault(FaultRule::new(ANTHROPIC, Fault::status(529)));
    let err = router.chat("chat", ChatRequest::user("hi")).await.unwrap_err();
    assert!(err.to_string().starts_with("route `chat` failed: overloaded"), "{err}");
    let source = std::error::Error::source(&err).expect("a source");
    let provider_error = source.downcast_ref::<ProviderError>().expect("the provider error");
    assert_eq!(provider_error.class(), ErrorClass::Overloaded);
    assert_eq!(provider_error.status(), Some(529));
}
