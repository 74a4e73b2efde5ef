//! The router's overhead per request: `router.chat(route, req)` against calling the same in-memory
//! provider directly, in the same run.
//!
//! The provider answers at once, so the difference between the two is what routing costs: the
//! policy snapshot, the target order, breaker and pause admission, limiter checks, the attempt
//! bookkeeping and the event. The direct baseline is measured first and last; their mean is the
//! baseline, which cancels drift that is linear over the run.
//!
//! `cargo bench --bench routing` prints criterion's figures, then a table of ratios and overheads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{BatchSize, Criterion};
use switchyard::provider::{Call, ChatStream, Protocol, Provider};
use switchyard::{ChatRequest, ChatResponse, FinishReason, Policy, ProviderError, Router, StreamEvent, Usage};

const GROUP: &str = "routing";
const DIRECT_BEFORE: &str = "direct_before";
const DIRECT_AFTER: &str = "direct_after";
/// The router variants: (benchmark id, route name).
const VARIANTS: [(&str, &str); 4] = [
    ("router_priority_limits", "priority_limits"),
    ("router_priority", "priority"),
    ("router_weighted", "weighted"),
    ("router_least_latency", "least_latency"),
];
/// The issue's target for the routing decision.
const TARGET_NS: f64 = 2_000.0;

/// A provider that answers every call at once, with no I/O.
#[derive(Debug)]
struct Immediate;

#[async_trait]
impl Provider for Immediate {
    fn name(&self) -> &str {
        "instant"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Openai
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatResponse, ProviderError> {
        let mut answer = ChatResponse::new("instant", call.model, "ok", FinishReason::Stop);
        answer.usage = Usage::new(4, 1);
        Ok(answer)
    }

    async fn chat_stream(&self, _call: Call<'_>) -> Result<ChatStream, ProviderError> {
        let events = vec![
            Ok(StreamEvent::TextDelta { text: "ok".to_owned() }),
            Ok(StreamEvent::Finish { reason: FinishReason::Stop }),
        ];
        Ok(Box::pin(futures::stream::iter(events)))
    }
}

/// Limits high enough never to deny during a run (a few million requests), so that every request
/// pays the checks and none is refused.
const LIMITS: &str = "limits = { rpm = 1000000000, tpm = 2000000000, concurrency = 100000 }";

fn policy() -> Policy {
    let mut text = String::new();
    for name in ["p", "q", "r"] {
        text.push_str(&format!("[providers.{name}]\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n"));
        text.push_str(&format!(
            "[providers.l{name}]\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n{LIMITS}\n"
        ));
    }
    let targets = |prefix: &str, extra: &str| {
        ["p", "q", "r"]
            .iter()
            .zip(["a", "b", "c"])
            .zip([60, 30, 10])
            .map(|((p, m), w)| format!("{{ provider = \"{prefix}{p}\", model = \"{m}\", weight = {w}{extra} }}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let target_limits = format!(", {LIMITS}");
    text.push_str(&format!("[routes.priority_limits]\n{LIMITS}\ntargets = [{}]\n", targets("l", &target_limits)));
    text.push_str(&format!("[routes.priority]\ntargets = [{}]\n", targets("", "")));
    text.push_str(&format!("[routes.weighted]\nstrategy = \"weighted\"\ntargets = [{}]\n", targets("", "")));
    text.push_str(&format!("[routes.least_latency]\nstrategy = \"least_latency\"\ntargets = [{}]\n", targets("", "")));
    text.parse().expect("the bench policy is valid")
}

fn router(provider: &Arc<dyn Provider>) -> Router {
    let mut builder = Router::builder(policy());
    for name in ["p", "q", "r", "lp", "lq", "lr"] {
        builder = builder.provider(name, provider.clone());
    }
    builder.build()
}

fn request() -> ChatRequest {
    // a small max_tokens keeps the tpm estimate (prompt + max_tokens) small
    ChatRequest::user("What is the capital of France?").max_tokens(16)
}

fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let provider: Arc<dyn Provider> = Arc::new(Immediate);
    let router = router(&provider);
    let req = request();

    // every route must really serve, or the figures measure an error path
    for (_, route) in VARIANTS {
        let answer = rt.block_on(router.chat(route, req.clone())).expect("route serves");
        assert_eq!(answer.attempts.len(), 1, "{route}: one attempt, no failover");
    }

    let mut group = c.benchmark_group(GROUP);
    group.warm_up_time(Duration::from_millis(800)).measurement_time(Duration::from_secs(2));
    let (provider, router, req) = (&provider, &router, &req);
    let direct = |b: &mut criterion::Bencher<'_>| {
        b.to_async(rt).iter(|| async move { black_box(provider.chat(Call::new("a", req)).await) });
    };
    group.bench_function(DIRECT_BEFORE, direct);
    for (id, route) in VARIANTS {
        group.bench_function(id, |b| {
            // the router takes the request by value: its clone is made outside the timing
            b.to_async(rt).iter_batched(
                || req.clone(),
                |req| async move { black_box(router.chat(route, req).await) },
                BatchSize::SmallInput,
            );
        });
    }
    group.bench_function(DIRECT_AFTER, direct);
    group.finish();
}

/// Where criterion writes its estimates (its own rule, minus the `cargo metadata` lookup).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("criterion"),
        None => PathBuf::from("target/criterion"),
    }
}

/// The median (ns) criterion measured for `id` in this run, if it ran.
fn median_ns(id: &str) -> Option<f64> {
    let path = criterion_dir().join(GROUP).join(id).join("new").join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.pointer("/median/point_estimate")?.as_f64()
}

fn summary() {
    let (Some(before), Some(after)) = (median_ns(DIRECT_BEFORE), median_ns(DIRECT_AFTER)) else {
        println!("(no summary: the direct baselines did not run in this invocation)");
        return;
    };
    let base = (before + after) / 2.0;
    println!();
    println!(
        "routing overhead (medians; baseline = direct call, mean of before {before:.0} ns and after {after:.0} ns)"
    );
    println!("{:<24} {:>10} {:>14} {:>14} {:>8}", "variant", "router ns", "router/direct", "overhead ns", "< 2 µs");
    for (id, _) in VARIANTS {
        let Some(ns) = median_ns(id) else { continue };
        let overhead = ns - base;
        let ok = if overhead < TARGET_NS { "yes" } else { "NO" };
        println!("{id:<24} {ns:>10.0} {:>14.2} {overhead:>14.0} {ok:>8}", ns / base);
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    // plots and the default 100,000 bootstrap resamples would double the run time for nothing here
    let mut c = Criterion::default().without_plots().nresamples(20_000).configure_from_args();
    bench(&mut c, &rt);
    c.final_summary();
    // `cargo test --benches` runs each benchmark once without measuring: nothing to summarize
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
