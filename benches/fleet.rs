//! What sharing state through Redis costs, against keeping it in memory, in the same run:
//!
//! 1. per-request time of `router.chat` on an unlimited and on a limited route (rpm and tpm),
//!    with `[state] backend = "memory"` and `"redis"`, against an in-memory provider that answers
//!    at once, so that the difference is the state's. Rounds interleave the four variants;
//!    medians of the rounds are reported, with the ratios redis/memory.
//! 2. breaker propagation: the time from one router's breaker opening to another's, p50 and p99.
//!
//! It starts its own `redis-server` on a free port (`apt-get install -y redis-server`).
//! `cargo bench --bench fleet`; `cargo test --benches` runs it once with tiny counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "../tests/support/redis.rs"]
mod redis_server;

use async_trait::async_trait;
use redis_server::RedisServer;
use switchyard::provider::{Call, ChatStream, Protocol, Provider};
use switchyard::router::{BreakerState, RouterEvent};
use switchyard::{ChatRequest, ChatResponse, ErrorClass, FinishReason, Policy, ProviderError, Router, Usage};

/// Answers at once; fails with a 500 while `failing`.
#[derive(Debug, Default)]
struct Instant0 {
    failing: AtomicBool,
}

#[async_trait]
impl Provider for Instant0 {
    fn name(&self) -> &str {
        "instant"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Openai
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatResponse, ProviderError> {
        if self.failing.load(Ordering::Relaxed) {
            return Err(ProviderError::new(ErrorClass::ServerError, "p", "down").with_status(500));
        }
        let mut answer = ChatResponse::new("instant", call.model, "ok", FinishReason::Stop);
        answer.usage = Usage::new(4, 1);
        Ok(answer)
    }

    async fn chat_stream(&self, _call: Call<'_>) -> Result<ChatStream, ProviderError> {
        Err(ProviderError::new(ErrorClass::InvalidRequest, "p", "not streamed here"))
    }
}

const LIMITS: &str = "limits = { rpm = 1000000000, tpm = 2000000000 }";

fn policy(state: &str, breaker: &str) -> Policy {
    format!(
        "{state}\n[defaults]\nretry = {{ max_attempts = 1 }}\n{breaker}\n\
         [providers.p]\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
         [providers.q]\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
         [routes.unlimited]\ntargets = [{{ provider = \"p\", model = \"a\" }}, {{ provider = \"q\", model = \"b\" }}]\n\
         [routes.limited]\ntargets = [{{ provider = \"p\", model = \"l\", {LIMITS} }}, {{ provider = \"q\", model = \"b\" }}]\n"
    )
    .parse()
    .unwrap()
}

fn router(policy: Policy, provider: &Arc<Instant0>) -> Router {
    let p: Arc<dyn Provider> = provider.clone();
    Router::builder(policy).provider("p", p.clone()).provider("q", p).build()
}

fn request() -> ChatRequest {
    ChatRequest::user("What is the capital of France?").max_tokens(16)
}

/// Mean time per request over `n` sequential requests.
async fn per_request(router: &Router, route: &str, n: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let answer = router.chat(route, request()).await.unwrap();
        debug_assert_eq!(answer.attempts.len(), 1);
    }
    start.elapsed() / u32::try_from(n).unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run(measuring));
}

async fn run(measuring: bool) {
    let redis = RedisServer::start();
    let state =
        format!("[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\nfleet = \"bench\"\n", redis.port);
    let provider = Arc::new(Instant0::default());
    let memory = router(policy("", ""), &provider);
    let shared = router(policy(&state, ""), &provider);
    let (rounds, n) = if measuring { (9, 2_000) } else { (1, 20) };
    // warm both (connections, lazily built state)
    for r in [&memory, &shared] {
        for route in ["unlimited", "limited"] {
            per_request(r, route, n / 10 + 1).await;
        }
    }
    let variants: [(&str, &Router, &str); 4] = [
        ("memory, unlimited", &memory, "unlimited"),
        ("redis, unlimited", &shared, "unlimited"),
        ("memory, limited", &memory, "limited"),
        ("redis, limited", &shared, "limited"),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (i, (_, router, route)) in variants.iter().enumerate() {
            times[i].push(per_request(router, route, n).await);
        }
    }
    assert_eq!(shared.health().shared_state.status, "ok", "the redis variant must really use Redis");
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    println!("fleet: per-request time, {rounds} rounds of {n} sequential requests, medians");
    println!("{:<20} {:>12}", "variant", "µs/request");
    for ((name, _, _), m) in variants.iter().zip(&medians) {
        println!("{name:<20} {:>12.1}", us(*m));
    }
    println!(
        "redis/memory: unlimited {:.2} (+{:.1} µs), limited {:.2} (+{:.1} µs)",
        us(medians[1]) / us(medians[0]),
        us(medians[1]) - us(medians[0]),
        us(medians[3]) / us(medians[2]),
        us(medians[3]) - us(medians[2]),
    );

    // breaker propagation between two routers of one fleet
    let breaker = "breaker = { consecutive_failures = 1, cooldown = \"200ms\", max_cooldown = \"200ms\" }";
    let a = router(policy(&state.replace("bench", "bench-breaker"), breaker), &provider);
    let b = router(policy(&state.replace("bench", "bench-breaker"), breaker), &provider);
    tokio::time::sleep(Duration::from_millis(300)).await; // both subscribed
    let trials = if measuring { 200 } else { 3 };
    let mut seen = Vec::with_capacity(trials);
    let state_of =
        |r: &Router| r.health().targets.iter().find(|t| t.provider == "p" && t.model == "a").map(|t| t.state.breaker);
    for _ in 0..trials {
        // both closed again (the last trial's probe, by whichever router took the lease)
        let deadline = Instant::now() + Duration::from_secs(10);
        while [&a, &b].iter().any(|r| state_of(r).is_some_and(|s| s != BreakerState::Closed)) {
            assert!(
                Instant::now() < deadline,
                "the breakers did not close: a {:?}, b {:?}",
                state_of(&a),
                state_of(&b)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut events = b.subscribe();
        provider.failing.store(true, Ordering::Relaxed);
        let _ = a.chat("unlimited", request()).await;
        let opened = Instant::now();
        assert_eq!(state_of(&a), Some(BreakerState::Open));
        loop {
            match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
                Ok(Ok(RouterEvent::Breaker { model: Some(m), to: BreakerState::Open, .. })) if m == "a" => break,
                Ok(_) => {}
                Err(_) => panic!("b never saw the breaker open"),
            }
        }
        seen.push(opened.elapsed());
        provider.failing.store(false, Ordering::Relaxed);
    }
    seen.sort();
    println!(
        "breaker propagation, {trials} openings: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        us(quantile(&seen, 0.5)),
        us(quantile(&seen, 0.99)),
        us(quantile(&seen, 1.0))
    );
}
