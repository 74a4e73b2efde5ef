//! Heap allocations per request through the [`Router`] against the bare OpenAI adapter, both
//! against the simulator on loopback in this process.
//!
//! Unlike time, allocation counts do not depend on how busy the machine is, so they show what
//! routing adds on the heap exactly and repeatably. The simulator, hyper and reqwest allocate the
//! same on every way (the bench checks the wire is the same), so the difference is the router's.
//! Requests are sent one at a time, after a warm-up, and the counts are averaged.
//!
//! `cargo bench --bench allocs` prints allocations, reallocations and bytes per request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use switchyard::provider::Call;
use switchyard::sim::SimServer;
use switchyard::{OpenAi, Policy, Provider, ProviderConfig, Router};

use support::{MODELS, measuring, request};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Counts per request.
#[derive(Clone, Copy)]
struct PerRequest {
    allocs: f64,
    reallocs: f64,
    bytes: f64,
}

async fn measure<F, Fut>(n: usize, send: F) -> PerRequest
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 10 + 1 {
        send().await; // warm: connection pool, lazily built state
    }
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        send().await;
    }
    let s = region.change();
    let per = |v: usize| v as f64 / n as f64;
    PerRequest {
        allocs: per(s.allocations),
        reallocs: per(s.reallocations),
        bytes: per(s.bytes_allocated + s.bytes_reallocated.max(0) as usize),
    }
}

fn main() {
    let n = if measuring() { 2_000 } else { 20 };
    // one thread: no other task allocates between the counts but the simulator serving this request
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(run(n));
}

async fn run(n: usize) {
    let sim = SimServer::start().await.expect("simulator starts");
    let policy = Policy::from_toml(&support::policy_text(&sim, MODELS[0], 0), "bench").expect("policy");
    let router = Router::new(policy);
    let adapter = OpenAi::new(ProviderConfig::new("openai", sim.openai_base_url())).expect("adapter");

    let direct = measure(n, || async {
        let req = request();
        adapter.chat(Call::new(MODELS[0], &req)).await.expect("direct request");
    })
    .await;
    sim.clear_requests();
    let routed = measure(n, || async {
        router.chat("chat", request()).await.expect("routed request");
    })
    .await;
    sim.clear_requests();

    println!();
    println!("allocs: {n} sequential requests each way, simulator in process (its allocations count on both sides)");
    println!("{:<8} {:>12} {:>12} {:>12}", "way", "allocs/req", "reallocs/req", "bytes/req");
    for (label, r) in [("direct", direct), ("router", routed)] {
        println!("{label:<8} {:>12.1} {:>12.1} {:>12.0}", r.allocs, r.reallocs, r.bytes);
    }
    println!(
        "router adds {:+.1} allocations, {:+.1} reallocations and {:+.0} bytes per request",
        routed.allocs - direct.allocs,
        routed.reallocs - direct.reallocs,
        routed.bytes - direct.bytes
    );
}
