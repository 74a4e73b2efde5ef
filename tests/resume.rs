//! How a streamed answer that fails midway is finished (`resume` strategies), through the library
//! and through the gateway, against the simulated providers: what the consumer got, and what
//! each attempt asked of the upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use switchyard::policy::Resume;
use switchyard::router::{AttemptOutcome, SkipReason, StreamSummary};
use switchyard::sim::{Fault, FaultRule, SimServer};
use switchyard::{ChatRequest, ErrorClass, Policy, Protocol, Router, RouterError, StreamCollector, StreamEvent};

const OPENAI: Protocol = Protocol::Openai;
const ANTHROPIC: Protocol = Protocol::Anthropic;

fn policy_text(sim: &SimServer, routes: &str) -> String {
    format!(
        r#"
[defaults]
retry = {{ max_attempts = 3, base = "20ms", max = "100ms", retry_after_cap = "2s" }}
timeouts = {{ connect = "500ms", first_token = "400ms", idle = "250ms", attempt = "2s", total = "4s" }}
[providers.openai]
base_url = "{}"
auth = "none"
[providers.anthropic]
base_url = "{}"
auth = "none"
{routes}
"#,
        sim.openai_base_url(),
        sim.anthropic_base_url()
    )
}

async fn setup(routes: &str) -> (SimServer, Router) {
    let sim = support::sim().await;
    let policy: Policy = policy_text(&sim, routes).parse().unwrap();
    (sim, Router::new(policy))
}

/// What the simulated model answers to "hi".
fn answer(model: &str) -> String {
    format!("Hello from {model}. You said: hi")
}

struct Streamed {
    events: Vec<StreamEvent>,
    text: StreamCollector,
    error: Option<RouterError>,
    summary: Option<StreamSummary>,
}

async fn stream(router: &Router, request: ChatRequest) -> Streamed {
    let mut s = router.chat_stream("chat", request).await.unwrap();
    let mut out = Streamed { events: Vec::new(), text: StreamCollector::new(), error: None, summary: None };
    while let Some(item) = s.next().await {
        match item {
            Ok(e) => {
                out.text.push(&e);
                out.events.push(e);
            }
            Err(e) => out.error = Some(e),
        }
    }
    out.summary = s.summary().cloned();
    out
}

/// The (role, text) of each message of a logged request body, on either wire.
fn messages(body: &Value) -> Vec<(String, String)> {
    let text = |c: &Value| match c {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    };
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), text(&m["content"])))
        .collect()
}

fn outcomes(s: &StreamSummary) -> Vec<(String, AttemptOutcome, Option<ErrorClass>)> {
    s.attempts.iter().map(|a| (a.model.clone(), a.outcome, a.class)).collect()
}

#[tokio::test]
async fn a_single_claude_target_cut_midway_continues_itself_with_a_prefill() {
    let (sim, router) =
        setup("[routes.chat]\ntargets = [{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }]").await;
    sim.add_fault(FaultRule::new(ANTHROPIC, Fault::Cut { after_tokens: 3 }).first(1));
    let mut events = router.subscribe();
    let s = stream(&router, ChatRequest::user("hi")).await;
    assert!(s.error.is_none(), "{:?}", s.error);
    assert_eq!(s.text.text(), answer("claude-sonnet-4-5"), "one answer: nothing repeated, nothing lost");
    // the continuation is an event (the dashboard lists it)
    let mut resumes = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let switchyard::RouterEvent::Resume { route, provider, model, strategy, carried_chars, .. } = e {
            resumes.push((route, provider, model, strategy, carried_chars));
        }
    }
    let carried = "Hello from claude-sonnet-4-5.".len();
    assert_eq!(
        resumes,
        [("chat".into(), "anthropic".into(), "claude-sonnet-4-5".into(), Some(Resume::Prefill), carried)]
    );
    assert!(!s.events.iter().any(|e| matches!(e, StreamEvent::Restart { .. })));
    let summary = s.summary.unwrap();
    assert!(summary.continued);
    assert_eq!(summary.resumed_with, Some(Resume::Prefill));
    assert_eq!(summary.carried_chars, "Hello from claude-sonnet-4-5.".len());
    assert_eq!(summary.attempts[0].output_tokens, Some(3), "what the cut attempt generated, for its bill");
    assert_eq!(summary.attempts[1].output_tokens, None);
    assert_eq!(
        outcomes(&summary),
        [
            ("claude-sonnet-4-5".into(), AttemptOutcome::Error, Some(ErrorClass::StreamInterrupted)),
            ("claude-sonnet-4-5".into(), AttemptOutcome::Ok, None)
        ]
    );
    let logged = sim.requests();
    assert_eq!(logged.len(), 2);
    assert_eq!(
        messages(&logged[1].body),
        [("user".into(), "hi".into()), ("assistant".into(), "Hello from claude-sonnet-4-5.".into())]
    );
}

#[tokio::test]
async fn a_dropped_openai_stream_continues_with_an_instruction_and_its_repeat_trimmed() {
    let (sim, router) = setup("[routes.chat]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]").await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::Cut { after_tokens: 2 }).first(1));
    let s = stream(&router, ChatRequest::user("hi")).await;
    assert!(s.error.is_none(), "{:?}", s.error);
    // the simulated model repeats the last word ("from") before going on: trimmed at the seam
    assert_eq!(s.text.text(), answer("gpt-4o"));
    let summary = s.summary.unwrap();
    assert!(summary.continued);
    assert_eq!((summary.resumed_with, summary.carried_chars), (Some(Resume::Instructed), "Hello from".len()));
    let logged = sim.requests();
    assert_eq!(logged.len(), 2);
    let asked = messages(&logged[1].body);
    assert_eq!(asked[..2], [("user".into(), "hi".into()), ("assistant".into(), "Hello from".into())]);
    assert_eq!(asked[2], ("user".into(), switchyard::router::INSTRUCTION.into()));
}

#[tokio::test]
async fn a_claude_model_without_prefill_continues_with_an_instruction() {
    // Claude 4.6 refuses prefill (its profile says so): the next strategy, on the same target
    let (sim, router) =
        setup("[routes.chat]\ntargets = [{ provider = \"anthropic\", model = \"claude-opus-4-6\" }]").await;
    sim.add_fault(FaultRule::new(ANTHROPIC, Fault::Cut { after_tokens: 3 }).first(1));
    let s = stream(&router, ChatRequest::user("hi")).await;
    assert!(s.error.is_none(), "{:?}", s.error);
    assert_eq!(s.text.text(), answer("claude-opus-4-6"));
    assert_eq!(sim.requests().len(), 2, "no prefill asked of a model known to refuse it");
    assert_eq!(messages(&sim.requests()[1].body).last().unwrap().1, switchyard::router::INSTRUCTION);
}

#[tokio::test]
async fn a_failure_inside_the_holdback_window_is_retried_from_scratch_unseen() {
    let routes = "[routes.chat]\nresume = [\"holdback\", \"prefill\"]\nholdback = 8\n\
                  targets = [{ provider = \"openai\", model = \"gpt-4o\" }, { provider = \"openai\", model = \"gpt-4o-mini\" }]";
    let (sim, router) = setup(routes).await;
    sim.add_fault(FaultRule::new(OPENAI, Fault::Cut { after_tokens: 3 }).first(1));
    let s = stream(&router, ChatRequest::user("hi")).await;
    assert!(s.error.is_none(), "{:?}", s.error);
    // nothing of the cut attempt reached the consumer: the answer is the retry's, whole
    assert_eq!(s.text.text(), answer("gpt-4o"));
    let summary = s.summary.unwrap();
    assert!(!summary.continued && !summary.restarted);
    assert_eq!(
        outcomes(&summary),
        [
            ("gpt-4o".into(), AttemptOutcome::Error, Some(ErrorClass::StreamInterrupted)),
            ("gpt-4o".into(), AttemptOutcome::Ok, None)
        ]
    );
    for logged in sim.requests() {
        assert_eq!(messages(&logged.body), [("user".to_owned(), "hi".to_owned())], "asked from scratch each time");
    }

    // a cut past the window is continued by the next strategy (no prefill on gpt-4o: skipped)
    sim.add_fault(FaultRule::new(OPENAI, Fault::Cut { after_tokens: 9 }).first(1));
    let s = stream(&router, ChatRequest::user("one two three four five six seven")).await;
    let error = s.error.expect("prefill only, and no OpenAI model takes it");
    assert_eq!(error.class(), ErrorClass::StreamInterrupted);
    let failure = error.failure().unwrap();
    assert!(failure.mid_stream);
    assert!(failure.attempts.iter().any(|a| a.skip_reason == Some(SkipReason::NoPrefill)));
}

#[tokio::test]
async fn a_tool_call_cut_midway_is_never_continued_as_prose() {
    let (sim, router) =
        setup("[routes.chat]\ntargets = [{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }]").await;
    let request = || {
        ChatRequest::user("/tool look it up").tool(switchyard::Tool::new(
            "lookup",
            "Looks up",
            json!({"type": "object"}),
        ))
    };
    sim.add_fault(FaultRule::new(ANTHROPIC, Fault::Cut { after_tokens: 1 }).first(1));
    let s = stream(&router, request()).await;
    let error = s.error.expect("a cut tool call ends with an error");
    assert!(error.failure().unwrap().mid_stream);
    assert_eq!(s.text.text(), "", "no prose");
    assert_eq!(sim.requests().len(), 1, "not continued");

    // held back, the same cut is retried from scratch and the call arrives whole
    let (sim, router) = setup(
        "[routes.chat]\nresume = [\"holdback\", \"prefill\"]\nholdback = \"all\"\n\
         targets = [{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }]",
    )
    .await;
    sim.add_fault(FaultRule::new(ANTHROPIC, Fault::Cut { after_tokens: 1 }).first(1));
    let s = stream(&router, request()).await;
    assert!(s.error.is_none(), "{:?}", s.error);
    let calls = s.text.partial().tool_calls;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "lookup");
    assert_eq!(serde_json::from_str::<Value>(&calls[0].arguments).unwrap(), json!({"input": "/tool look it up"}));
}

#[tokio::test]
async fn through_the_gateway_a_cut_stream_reaches_the_caller_whole_on_both_wires() {
    let sim = support::sim().await;
    let routes = "[routes.gpt]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]\n\
                  [routes.claude]\ntargets = [{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }]";
    let (_gateway, base, _dir) = support::gateway(&policy_text(&sim, routes)).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();

    sim.add_fault(FaultRule::new(OPENAI, Fault::Cut { after_tokens: 2 }).first(1));
    let body = json!({"model": "gpt", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let text =
        client.post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap().text().await.unwrap();
    let data = support::sse_data(&text);
    let said: String = data.iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(said, answer("gpt-4o"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    sim.add_fault(FaultRule::new(ANTHROPIC, Fault::Cut { after_tokens: 3 }).first(1));
    let body =
        json!({"model": "claude", "stream": true, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]});
    let text = client.post(format!("{base}/v1/messages")).json(&body).send().await.unwrap().text().await.unwrap();
    let data = support::sse_data(&text);
    let said: String = data.iter().filter_map(|e| e["delta"]["text"].as_str()).collect();
    assert_eq!(said, answer("claude-sonnet-4-5"), "{text}");
    assert!(text.contains("event: message_stop"), "{text}");
}

#[tokio::test]
async fn a_fallback_that_refuses_prefill_finishes_the_answer_with_an_instruction() {
    // `claude_raw` has no profile: nothing says Claude 4.6 refuses prefill until its 400; the
    // next strategy, on the same target, finishes the answer
    let sim = support::sim().await;
    let routes = format!(
        "[providers.claude_raw]\nprotocol = \"anthropic\"\nauth = \"none\"\nbase_url = \"{}\"\n\
         [routes.chat]\ntargets = [{{ provider = \"openai\", model = \"gpt-4o\" }}, {{ provider = \"claude_raw\", model = \"claude-sonnet-4-6\" }}]\n\
         [routes.chat.on.stream_interrupted]\nretry = false",
        sim.anthropic_base_url()
    );
    let router = Router::new(policy_text(&sim, &routes).parse().unwrap());
    sim.add_fault(FaultRule::new(OPENAI, Fault::Cut { after_tokens: 3 }).model("gpt-4o"));
    let s = stream(&router, ChatRequest::user("hi")).await;
    assert!(s.error.is_none(), "{:?}", s.error);
    // the simulated Claude does not take another model's words for its own: it answers in full
    assert_eq!(s.text.text(), format!("Hello from gpt-4o.{}", answer("claude-sonnet-4-6")));
    let summary = s.summary.unwrap();
    assert_eq!(summary.resumed_with, Some(Resume::Instructed));
    assert_eq!(
        outcomes(&summary),
        [
            ("gpt-4o".into(), AttemptOutcome::Error, Some(ErrorClass::StreamInterrupted)),
            ("claude-sonnet-4-6".into(), AttemptOutcome::Error, Some(ErrorClass::InvalidRequest)),
            ("claude-sonnet-4-6".into(), AttemptOutcome::Ok, None),
        ]
    );
    let asked: Vec<_> = sim.requests().into_iter().filter(|r| r.protocol == ANTHROPIC).collect();
    assert_eq!(messages(&asked[0].body).last().unwrap().0, "assistant", "a prefill first");
    assert_eq!(messages(&asked[1].body).last().unwrap().1, switchyard::router::INSTRUCTION, "then the instruction");
}
