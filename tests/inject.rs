//! Fault injection travels the production path: an injected fault and the same fault from the
//! simulated provider give identical classified errors and identical router decisions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use switchyard::policy::{InjectKind, LiveFault};
use switchyard::sim::{Fault, FaultRule, SimServer, WireFaults};
use switchyard::{ChatRequest, ErrorClass, Policy, Protocol, Router};

fn policy(sim: &SimServer, extra: &str) -> Policy {
    format!(
        "[defaults]\nretry = {{ max_attempts = 2, base = \"10ms\" }}\nbreaker = {{ consecutive_failures = 100 }}\n{}[routes.chat]\ntargets = [{{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }}, {{ provider = \"openai\", model = \"gpt-4o-mini\" }}]\n{extra}",
        sim.providers_toml()
    )
    .parse()
    .unwrap()
}

/// A router whose injected faults sound as each provider's wire would.
fn router(policy: Policy) -> Router {
    Router::builder(policy).fault_player(Arc::new(WireFaults::default())).build()
}

#[tokio::test]
async fn an_injected_529_and_a_real_529_are_the_same_to_the_router() {
    let sim = support::sim().await;
    let router = router(policy(&sim, ""));

    // the real thing: the simulated Anthropic answers 529
    let rule = sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::status(529)));
    let real = router.chat("chat", ChatRequest::user("hello")).await.unwrap();
    sim.remove_fault(rule);
    assert_eq!(sim.request_count(Protocol::Anthropic, None), 2);

    // injected: Anthropic is not called at all
    sim.clear_requests();
    let guard = router.inject(LiveFault::error("anthropic", ErrorClass::Overloaded));
    let injected = router.chat("chat", ChatRequest::user("hello")).await.unwrap();
    assert_eq!(sim.request_count(Protocol::Anthropic, None), 0, "the faulted provider is not called");
    assert_eq!(sim.request_count(Protocol::Openai, None), 1, "the others are");

    let decisions = |r: &switchyard::RoutedResponse| -> Vec<_> {
        r.attempts.iter().map(|a| (a.provider.clone(), a.model.clone(), a.outcome, a.class, a.status)).collect()
    };
    assert_eq!(decisions(&real), decisions(&injected));
    assert_eq!(injected.attempts[0].class, Some(ErrorClass::Overloaded));
    assert_eq!(injected.attempts[0].status, Some(529));
    assert_eq!(injected.model(), "gpt-4o-mini");
    let h = router.health();
    assert_eq!(h.faults.len(), 1);
    assert_eq!(h.faults[0].hits, 2);

    // lifting the fault brings Anthropic back
    drop(guard);
    let ok = router.chat("chat", ChatRequest::user("hello")).await.unwrap();
    assert_eq!(ok.model(), "claude-sonnet-4-5");
    assert!(router.health().faults.is_empty());
}

#[tokio::test]
async fn injected_errors_are_classified_by_the_real_adapters() {
    let sim = support::sim().await;
    let p = policy(&sim, "[routes.solo]\ntargets = [{ provider = \"openai\", model = \"gpt-4o-mini\" }]\n");
    for class in ErrorClass::ALL {
        if class == ErrorClass::StreamInterrupted {
            continue; // a streaming-only fault: covered by the streaming test below
        }
        if class == ErrorClass::BudgetExhausted {
            continue; // the router's own class: no provider sends it (tests/budget.rs)
        }
        for (provider, route) in [("openai", "solo"), ("anthropic", "chat")] {
            // a fresh router each time: auth/quota/not_found trip breakers that would hide the next row
            let router = router(p.clone());
            let _g = router.inject(LiveFault::error(provider, class).retry_after(Duration::from_millis(20)));
            let first = match router.chat(route, ChatRequest::user("hello")).await {
                Ok(r) => r.attempts[0].class,
                Err(e) => e.attempts()[0].class,
            };
            assert_eq!(first, Some(class), "{provider}: injected {class}");
        }
    }
    // the faulted provider is never called; openai serves as the fallback of `chat`
    assert!(sim.requests().iter().all(|r| r.protocol == Protocol::Openai && r.model == "gpt-4o-mini"));
}

#[tokio::test]
async fn injected_stream_faults_cut_and_stall_streams() {
    use futures::StreamExt;
    let sim = support::sim().await;
    let p = policy(
        &sim,
        // streams are not continued here: the test is about how a cut or a stall ends one
        "[routes.solo]\nresume = [\"none\"]\ntargets = [{ provider = \"openai\", model = \"gpt-4o-mini\" }]\ntimeouts = { idle = \"100ms\" }\n",
    );
    for (fault, class) in [
        (LiveFault::error("openai", ErrorClass::StreamInterrupted).after_tokens(2), ErrorClass::StreamInterrupted),
        (LiveFault::new("openai", InjectKind::Cut).after_tokens(2), ErrorClass::StreamInterrupted),
        (
            LiveFault::new("openai", InjectKind::Stall).after_tokens(2).delay(Duration::from_millis(400)),
            ErrorClass::Timeout,
        ),
    ] {
        let router = router(p.clone());
        let _g = router.inject(fault);
        let mut s = router.chat_stream("solo", ChatRequest::user("tell me a long story please")).await.unwrap();
        let mut text = String::new();
        let mut error = None;
        while let Some(item) = s.next().await {
            match item {
                Ok(switchyard::StreamEvent::TextDelta { text: t }) => text.push_str(&t),
                Ok(_) => {}
                Err(e) => error = Some(e),
            }
        }
        let error = error.expect("a cut or stalled stream is never a success");
        // the cause (a stall is a timeout), not the symptom, and that it came mid-stream
        assert_eq!(error.class(), class);
        assert!(error.failure().unwrap().mid_stream);
        assert_eq!(error.failure().and_then(|f| f.error.as_ref()).map(|e| e.class()), Some(class));
        assert_eq!(text, "Hello from");
    }
}

#[tokio::test]
async fn policy_drill_faults_take_effect_and_expire() {
    let sim = support::sim().await;
    let p = policy(&sim, "[[drill.faults]]\nprovider = \"anthropic\"\ninject = \"server_error\"\ncount = 1\n");
    let router = router(p);
    let first = router.chat("chat", ChatRequest::user("hello")).await.unwrap();
    assert_eq!(first.attempts[0].class, Some(ErrorClass::ServerError));
    // count = 1: spent; the retry already goes through to the real (simulated) provider
    assert_eq!(first.model(), "claude-sonnet-4-5");
    let again = router.chat("chat", ChatRequest::user("hello")).await.unwrap();
    assert_eq!(again.attempts.len(), 1);
    let p = policy(&sim, "[[drill.faults]]\nprovider = \"anthropic\"\ninject = \"latency\"\ndelay = \"150ms\"\n");
    router.apply(p);
    let t0 = std::time::Instant::now();
    router.chat("chat", ChatRequest::user("hello")).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(150));
    let _ = InjectKind::Latency;
}

/// A router without a fault player still honours a fault: the call fails at once with the
/// fault's class, and the message says it was not played on the wire.
#[tokio::test]
async fn without_a_player_a_fault_fails_its_calls_with_its_class() {
    let sim = support::sim().await;
    let router = Router::new(policy(&sim, ""));
    let _g = router.inject(LiveFault::error("anthropic", ErrorClass::Overloaded));
    let answer = router.chat("chat", ChatRequest::user("hello")).await.unwrap();
    assert_eq!(answer.provider(), "openai");
    let first = &answer.attempts[0];
    assert_eq!(first.class, Some(ErrorClass::Overloaded));
    assert_eq!(sim.request_count(Protocol::Anthropic, None), 0, "the faulted provider is not called");
    drop(_g);
    let _a = router.inject(LiveFault::error("anthropic", ErrorClass::ServerError));
    let _o = router.inject(LiveFault::error("openai", ErrorClass::ServerError));
    let error = router.chat("chat", ChatRequest::user("hello")).await.unwrap_err();
    let last = error.failure().and_then(|f| f.error.as_ref()).unwrap();
    assert_eq!(last.class(), ErrorClass::ServerError);
    assert!(last.message().contains("no fault player"), "{}", last.message());
    assert_eq!(sim.request_count(Protocol::Openai, None), 1, "only the first call, before the faults, reached it");
}
