//! OpenTelemetry export: an OTLP/HTTP collector of the test's own (in-process, JSON) receives the
//! spans of a request that retried and failed over, with the GenAI attributes, and the GenAI
//! operation-duration metric.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use switchyard::otel::{Otel, OtelConfig};
use switchyard::policy::OtlpProtocol;
use switchyard::sim::{Fault, FaultRule};
use switchyard::{ChatRequest, Policy, Protocol, Router};
use tracing_subscriber::layer::SubscriberExt as _;

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// An OTLP/HTTP receiver: keeps every JSON body posted to `/v1/traces` and `/v1/metrics`.
async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let keep = received.clone();
    let app = axum::Router::new().route(
        "/v1/{signal}",
        axum::routing::post(
            move |axum::extract::Path(signal): axum::extract::Path<String>, body: axum::body::Bytes| {
                let keep = keep.clone();
                async move {
                    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    keep.lock().unwrap().push((signal, value));
                    ([("content-type", "application/json")], "{}")
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), received)
}

fn attr<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    let found = item["attributes"].as_array()?.iter().find(|a| a["key"] == key)?;
    let v = &found["value"];
    v.get("stringValue").or_else(|| v.get("intValue")).or_else(|| v.get("boolValue")).or_else(|| v.get("doubleValue"))
}

fn spans(received: &Received) -> Vec<Value> {
    let received = received.lock().unwrap();
    let mut out = Vec::new();
    for (signal, body) in received.iter().filter(|(s, _)| s == "traces") {
        assert_eq!(signal, "traces");
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["key"] == "service.name"))
                .map(|a| a["value"]["stringValue"].clone());
            assert_eq!(service, Some(Value::from("switchyard-test")));
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_reaches_an_otlp_collector_as_genai_spans_and_metrics() {
    let (endpoint, received) = collector().await;
    let sim = support::sim().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)));
    let policy = Policy::from_toml(
        &format!(
            r#"
[defaults]
retry = {{ max_attempts = 2, base = "1ms", max = "2ms" }}
{providers}
[routes.chat]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
"#,
            providers = sim.providers_toml()
        ),
        "otel.toml",
    )
    .unwrap();
    let router = Router::new(policy);

    let mut config = OtelConfig::new(endpoint).protocol(OtlpProtocol::HttpJson);
    config.service_name = "switchyard-test".into();
    let otel = Otel::start(&config).unwrap();
    router.observe(otel.observer());
    let subscriber = tracing_subscriber::registry().with(otel.layer());
    let answer = {
        let _guard = tracing::subscriber::set_default(subscriber);
        let answer = router.chat("chat", ChatRequest::user("Hello")).await.unwrap();
        // and a streamed one
        let mut stream = router.chat_stream("chat", ChatRequest::user("Hello")).await.unwrap();
        while let Some(event) = futures::StreamExt::next(&mut stream).await {
            event.unwrap();
        }
        answer
    };
    assert_eq!(answer.provider(), "anthropic");
    let otel = Arc::new(otel);
    let flushing = otel.clone();
    tokio::task::spawn_blocking(move || flushing.force_flush()).await.unwrap();

    let spans = support::poll_for(Duration::from_secs(20), || {
        let spans = spans(&received);
        std::future::ready((spans.iter().filter(|s| s["name"] == "chat chat").count() == 2).then_some(spans))
    });
    let spans =
        spans.await.unwrap_or_else(|| panic!("the collector got no request span: {:?}", received.lock().unwrap()));

    // a streamed request's span says what served it too
    let streamed =
        spans.iter().find(|s| s["name"] == "chat chat" && attr(s, "switchyard.stream") == Some(&Value::from(true)));
    let streamed = streamed.unwrap_or_else(|| panic!("no streamed request span: {spans:?}"));
    assert_eq!(attr(streamed, "gen_ai.provider.name"), Some(&Value::from("anthropic")));
    assert!(attr(streamed, "gen_ai.usage.output_tokens").is_some());

    // one span for the request, with what served it
    let request = spans
        .iter()
        .find(|s| s["name"] == "chat chat" && attr(s, "switchyard.stream") == Some(&Value::from(false)))
        .unwrap();
    assert_eq!(attr(request, "gen_ai.operation.name"), Some(&Value::from("chat")));
    assert_eq!(attr(request, "gen_ai.provider.name"), Some(&Value::from("anthropic")));
    assert_eq!(attr(request, "gen_ai.request.model"), Some(&Value::from("claude-sonnet-4-5")));
    assert!(attr(request, "gen_ai.response.model").is_some());
    let tokens = |key| attr(request, key).and_then(|v| v.as_str().and_then(|s| s.parse::<u64>().ok()).or(v.as_u64()));
    assert_eq!(tokens("gen_ai.usage.input_tokens"), Some(answer.usage().input_tokens));
    assert_eq!(tokens("gen_ai.usage.output_tokens"), Some(answer.usage().output_tokens));
    assert_eq!(attr(request, "switchyard.route"), Some(&Value::from("chat")));
    assert!(attr(request, "error.type").is_none());
    // retry and failover are events of the request span
    let events: Vec<&str> = request["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(events.contains(&"retry"), "{events:?}");
    assert!(events.contains(&"failover"), "{events:?}");
    let failover = request["events"].as_array().unwrap().iter().find(|e| e["name"] == "failover").unwrap();
    assert_eq!(attr(failover, "error.type"), Some(&Value::from("server_error")));
    assert_eq!(attr(failover, "gen_ai.provider.name"), Some(&Value::from("openai")));

    // one span per attempt, children of the request's: two failed on OpenAI, one served by Claude
    let attempts: Vec<&Value> = spans.iter().filter(|s| s["parentSpanId"] == request["spanId"]).collect();
    let names: Vec<&str> = attempts.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| **n == "chat gpt-4o-mini").count(), 2, "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "chat claude-sonnet-4-5").count(), 1, "{names:?}");
    for a in &attempts {
        assert_eq!(a["traceId"], request["traceId"]);
        assert_eq!(attr(a, "gen_ai.operation.name"), Some(&Value::from("chat")));
        let openai = a["name"] == "chat gpt-4o-mini";
        let provider = if openai { "openai" } else { "anthropic" };
        // the profile's name for the conventions, the policy's own beside it
        assert_eq!(attr(a, "gen_ai.provider.name"), Some(&Value::from(provider)));
        assert_eq!(attr(a, "switchyard.provider"), Some(&Value::from(provider)));
        assert!(attr(a, "gen_ai.request.model").is_some());
        if openai {
            assert_eq!(attr(a, "error.type"), Some(&Value::from("server_error")));
            assert_eq!(a["status"]["code"], 2, "an ERROR status: {a}");
        } else {
            assert!(attr(a, "error.type").is_none());
        }
    }

    // the metric: an operation duration per attempt, by provider and error type
    let text = support::poll_for(Duration::from_secs(20), || async {
        let flushing = otel.clone();
        tokio::task::spawn_blocking(move || flushing.force_flush()).await.unwrap();
        let text = received
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == "metrics")
            .map(|(_, v)| v.to_string())
            .collect::<String>();
        text.contains("gen_ai.client.operation.duration").then_some(text)
    });
    let text = text.await.expect("the collector got no GenAI metric");
    assert!(text.contains("server_error") && text.contains("anthropic"), "{text}");
    // in seconds, with the buckets the GenAI conventions advise
    assert!(text.contains("\"explicitBounds\":[0.01,0.02,0.04"), "{text}");
    Arc::try_unwrap(otel).unwrap().shutdown();
}
