//! Throughput and latency through the [`Router`] against the bare OpenAI adapter, both against the
//! simulator on loopback, in the same run.
//!
//! 32 concurrent clients send a fixed number of requests each way, in interleaved rounds whose
//! order rotates, so that drift of a shared machine falls on every side. The router's route has
//! the OpenAI target first and an Anthropic fallback that healthy runs never reach. A third way,
//! the bare adapter called with the time limits the router sets on an attempt, tells what routing
//! itself costs apart from enforcing timeouts.
//!
//! `cargo bench --bench load` prints the table: throughput ratio router/direct (target ≥ 0.95) and
//! the latency the router adds at p50 and p99. With `LOAD_ONLY` set it runs one way only, for
//! profilers (see [`profiling_only`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchyard::policy::Timeouts;
use switchyard::provider::{Call, CallTimeouts};
use switchyard::sim::SimServer;
use switchyard::{OpenAi, Policy, Provider, ProviderConfig, Router};

use support::{MODELS, diff_us, measuring, quantile, request, us};

const CLIENTS: usize = 32;
/// Requests each way, split evenly over the rounds.
const PER_WAY: usize = 60_000;
const ROUNDS: usize = 30;
const WARMUP: usize = 1_000;
const TARGET_RATIO: f64 = 0.95;

/// One way of sending a request.
#[derive(Clone)]
enum Way {
    /// The bare adapter, as `OpenAi::new(ProviderConfig::new(..))` gives it.
    Direct(Arc<OpenAi>),
    /// The bare adapter with the time limits the router gives an attempt (first-token, idle and
    /// the attempt's deadline, all on the adapter's one timer): separates what routing costs from
    /// what enforcing timeouts costs.
    Timed(Arc<OpenAi>, Timeouts),
    /// Through the router.
    Routed(Router),
}

impl Way {
    fn label(&self) -> &'static str {
        match self {
            Way::Direct(_) => "direct",
            Way::Timed(..) => "direct+timeouts",
            Way::Routed(_) => "router",
        }
    }

    async fn send(&self) -> Result<(), String> {
        match self {
            Way::Direct(adapter) => {
                let req = request();
                adapter.chat(Call::new(MODELS[0], &req)).await.map(drop).map_err(|e| e.to_string())
            }
            Way::Timed(adapter, t) => {
                let req = request();
                let deadline = Some(tokio::time::Instant::now() + t.attempt);
                let limits = CallTimeouts { first_token: Some(t.first_token), idle: Some(t.idle), deadline };
                adapter.chat(Call::new(MODELS[0], &req).timeouts(limits)).await.map(drop).map_err(|e| e.to_string())
            }
            Way::Routed(router) => router.chat("chat", request()).await.map(drop).map_err(|e| e.to_string()),
        }
    }
}

/// What one round measured.
struct Round {
    elapsed: Duration,
    /// CPU time the whole process (clients, adapter or router, simulator) spent, when known.
    cpu: Option<Duration>,
    latencies: Vec<Duration>,
    errors: usize,
}

/// Sends `n` requests from `CLIENTS` concurrent clients.
async fn round(way: &Way, n: usize) -> Round {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_start = cpu_time();
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (way, next) = (way.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(n / CLIENTS + 1);
                let mut errors = 0;
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let t = Instant::now();
                    match way.send().await {
                        Ok(()) => latencies.push(t.elapsed()),
                        Err(e) => {
                            if errors == 0 {
                                eprintln!("{} request failed: {e}", way.label());
                            }
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Round { elapsed: Duration::ZERO, cpu: None, latencies: Vec::with_capacity(n), errors: 0 };
    for c in clients {
        let (latencies, errors) = c.await.expect("client task");
        all.latencies.extend(latencies);
        all.errors += errors;
    }
    all.elapsed = start.elapsed();
    all.cpu = cpu_time().zip(cpu_start).map(|(end, start)| end.saturating_sub(start));
    all
}

/// CPU time of every thread of this process so far (Linux: `/proc/self/task/*/schedstat`, in ns).
/// Less disturbed by other processes on a shared machine than wall-clock throughput is.
fn cpu_time() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Everything one way measured over all rounds.
#[derive(Default)]
struct Totals {
    elapsed: Duration,
    cpu: Option<Duration>,
    latencies: Vec<Duration>,
    errors: usize,
    rounds: Vec<Duration>,
}

impl Totals {
    fn add(&mut self, r: Round) {
        let first = self.rounds.is_empty();
        self.cpu = match (first, self.cpu, r.cpu) {
            (true, _, cpu) => cpu,
            (false, Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.elapsed += r.elapsed;
        self.rounds.push(r.elapsed);
        self.latencies.extend(r.latencies);
        self.errors += r.errors;
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU microseconds per request.
    fn cpu_per_request(&self) -> Option<f64> {
        self.cpu.map(|c| us(c) / self.latencies.len() as f64)
    }
}

fn main() {
    let (per_way, rounds, warmup) = if measuring() { (PER_WAY, ROUNDS, WARMUP) } else { (2 * CLIENTS, 2, CLIENTS) };
    // the machine has 2 cores: clients, router and simulator share them, as they would a small host
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(per_way, rounds, warmup));
}

async fn run(per_way: usize, rounds: usize, warmup: usize) {
    let sim = SimServer::start().await.expect("simulator starts");
    let policy = Policy::from_toml(&support::policy_text(&sim, MODELS[0], 0), "bench").expect("policy");
    let timeouts = policy.route("chat").and_then(|r| r.targets.first()).expect("route chat").timeouts;
    let router = Router::new(policy);
    let adapter = || Arc::new(OpenAi::new(ProviderConfig::new("openai", sim.openai_base_url())).expect("adapter"));
    // each way has its own adapter, hence its own connection pool, as the router's adapter has
    let ways = [Way::Direct(adapter()), Way::Timed(adapter(), timeouts), Way::Routed(router)];

    // warm the connection pools and the allocator before anything counts
    for way in &ways {
        let r = round(way, warmup).await;
        assert_eq!(r.errors, 0, "{} warm-up failed", way.label());
        sim.clear_requests();
    }

    same_wire(&sim, &ways).await;

    if let Some((way, n)) = profiling_only() {
        let Some(way) = ways.iter().find(|w| w.label() == way) else {
            panic!("LOAD_ONLY must be one of direct, direct+timeouts, router; got {way}");
        };
        let r = round(way, n).await;
        assert_eq!(r.errors, 0, "{} requests failed", way.label());
        println!("{}: {} requests in {:?}", way.label(), r.latencies.len(), r.elapsed);
        return;
    }

    let per_round = per_way / rounds;
    let mut totals: Vec<Totals> = ways.iter().map(|_| Totals::default()).collect();
    for i in 0..rounds {
        // the order rotates every round: no way always runs first, on a warmer or a cooler machine
        for k in 0..ways.len() {
            let w = (i + k) % ways.len();
            let result = round(&ways[w], per_round).await;
            totals[w].add(result);
            sim.clear_requests();
        }
    }
    report(&ways, &mut totals, rounds, per_round);
    for (way, t) in ways.iter().zip(&totals) {
        assert_eq!(t.errors, 0, "{} requests failed", way.label());
    }
}

/// `LOAD_ONLY=direct|direct+timeouts|router` (and `LOAD_REQUESTS=N`, default 20,000): run that one
/// way once and print nothing else, for a profiler (`perf record`, `valgrind --tool=callgrind`) to
/// compare the ways run by run.
fn profiling_only() -> Option<(String, usize)> {
    let way = std::env::var("LOAD_ONLY").ok()?;
    let n = std::env::var("LOAD_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    Some((way, n))
}

/// Every way must put the same request on the wire, or the comparison measures the difference.
async fn same_wire(sim: &SimServer, ways: &[Way]) {
    let mut seen = Vec::new();
    for way in ways {
        sim.clear_requests();
        way.send().await.expect("request served");
        let recorded = sim.requests().pop().expect("request recorded");
        let headers: Vec<String> = recorded.headers.iter().map(|(k, _)| k.clone()).collect();
        seen.push((way.label(), recorded.body, headers));
    }
    sim.clear_requests();
    let (first, body, headers) = &seen[0];
    for (label, b, h) in &seen[1..] {
        assert_eq!(b, body, "{label} sends another body than {first}");
        assert_eq!(h, headers, "{label} sends other headers than {first}");
    }
}

/// `a`'s throughput over `b`'s: overall, and the median and range of the per-round ratios.
fn ratios(a: &Totals, b: &Totals) -> (f64, f64, f64, f64) {
    let mut per_round: Vec<f64> =
        b.rounds.iter().zip(&a.rounds).map(|(tb, ta)| tb.as_secs_f64() / ta.as_secs_f64()).collect();
    per_round.sort_by(f64::total_cmp);
    let overall = a.rate() / b.rate();
    (overall, per_round[per_round.len() / 2], per_round[0], per_round[per_round.len() - 1])
}

fn report(ways: &[Way], totals: &mut [Totals], rounds: usize, per_round: usize) {
    for t in totals.iter_mut() {
        t.latencies.sort_unstable();
    }
    let [direct, timed, routed] = [&totals[0], &totals[1], &totals[2]];
    println!();
    println!(
        "load: {CLIENTS} clients, {} requests each way in {rounds} rotating rounds of {per_round}, simulator on loopback, 2 runtime threads",
        direct.latencies.len()
    );
    println!("{:<16} {:>10} {:>12} {:>10} {:>10} {:>10}", "way", "req/s", "CPU µs/req", "p50 µs", "p99 µs", "max µs");
    for (way, t) in ways.iter().zip(totals.iter()) {
        let l = &t.latencies;
        println!(
            "{:<16} {:>10.0} {:>12.1} {:>10.0} {:>10.0} {:>10.0}",
            way.label(),
            t.rate(),
            t.cpu_per_request().unwrap_or(f64::NAN),
            us(quantile(l, 0.50)),
            us(quantile(l, 0.99)),
            us(quantile(l, 1.0))
        );
    }
    let (ratio, median, lo, hi) = ratios(routed, direct);
    println!(
        "throughput ratio router/direct: {ratio:.3} (target ≥ {TARGET_RATIO}: {}); per round: median {median:.3}, range {lo:.3}..{hi:.3}",
        if ratio >= TARGET_RATIO { "met" } else { "NOT met" },
    );
    if let (Some(r), Some(d)) = (routed.cpu_per_request(), direct.cpu_per_request()) {
        println!(
            "CPU per request router/direct: {:.3} (router adds {:+.1} µs of CPU per request; clients and simulator included in both)",
            r / d,
            r - d
        );
    }
    let added = |a: &Totals, b: &Totals, q| diff_us(quantile(&a.latencies, q), quantile(&b.latencies, q));
    println!(
        "added latency router - direct: p50 {:+.0} µs, p99 {:+.0} µs",
        added(routed, direct, 0.5),
        added(routed, direct, 0.99)
    );
    let (ratio, median, lo, hi) = ratios(routed, timed);
    println!(
        "context: router/direct+timeouts {ratio:.3} (per round: median {median:.3}, range {lo:.3}..{hi:.3}); added p50 {:+.0} µs, p99 {:+.0} µs",
        added(routed, timed, 0.5),
        added(routed, timed, 0.99)
    );
}
