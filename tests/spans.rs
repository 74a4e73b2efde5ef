//! The router's tracing spans: one per request and one per attempt, with OpenTelemetry GenAI
//! attribute names, recorded whenever a subscriber listens (the router skips them when none does).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use support::{Scripted, Step, policy};
use switchyard::{ChatRequest, ErrorClass, Router};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

/// A span as it was opened: its name and its fields, rendered.
#[derive(Debug, Clone)]
struct Opened {
    name: &'static str,
    fields: Vec<(String, String)>,
}

impl Opened {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Opened>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}").trim_matches('"').to_owned()));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut fields = Vec::new();
        attrs.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Opened { name: attrs.metadata().name(), fields });
    }
}

/// Runs `f` on a runtime of this thread, under a subscriber that records every span opened.
fn recorded<F: std::future::Future<Output = ()>>(f: impl FnOnce() -> F) -> Vec<Opened> {
    let recorder = Recorder::default();
    let subscriber = Registry::default().with(recorder.clone());
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(f());
    });
    recorder.0.lock().unwrap().clone()
}

fn router() -> (Router, Arc<Scripted>) {
    let p = Scripted::new("p");
    let q = Scripted::new("q");
    let policy = policy(
        r#"[routes.chat]
targets = [{ provider = "p", model = "a" }, { provider = "q", model = "b" }]
"#,
    );
    let router = Router::builder(policy).provider("p", p.clone()).provider("q", q).build();
    (router, p)
}

#[test]
fn a_request_and_each_of_its_attempts_get_a_span_with_genai_attributes() {
    let (router, p) = router();
    // the first target is refused (401: not retried, failed over): the fallback serves
    p.script("a", [Step::Fail(ErrorClass::Authentication, 401)]);
    let spans = recorded(|| async move {
        let answer = router.chat("chat", ChatRequest::user("hi")).await.unwrap();
        assert_eq!(answer.model(), "b");
    });

    let requests: Vec<_> = spans.iter().filter(|s| s.name == "gen_ai.chat").collect();
    assert_eq!(requests.len(), 1, "{spans:?}");
    assert_eq!(requests[0].field("switchyard.route"), Some("chat"));
    assert_eq!(requests[0].field("gen_ai.operation.name"), Some("chat"));

    let attempts: Vec<_> = spans.iter().filter(|s| s.name == "gen_ai.attempt").collect();
    assert_eq!(attempts.len(), 2, "one span per attempt: {spans:?}");
    let served: Vec<_> = attempts.iter().map(|a| (a.field("gen_ai.system"), a.field("gen_ai.request.model"))).collect();
    assert_eq!(served, vec![(Some("p"), Some("a")), (Some("q"), Some("b"))]);
    assert!(attempts.iter().all(|a| a.field("switchyard.route") == Some("chat")));
}

#[test]
fn a_streamed_request_gets_its_spans_too() {
    let (router, _) = router();
    let spans = recorded(|| async move {
        let mut stream = router.chat_stream("chat", ChatRequest::user("hi")).await.unwrap();
        while stream.next().await.is_some() {}
    });
    let names: Vec<_> = spans.iter().map(|s| s.name).collect();
    assert!(names.contains(&"gen_ai.chat"), "{names:?}");
    assert!(names.contains(&"gen_ai.attempt"), "{names:?}");
    let request = spans.iter().find(|s| s.name == "gen_ai.chat").unwrap();
    assert_eq!(request.field("stream"), Some("true"));
}
