//! Hot reload, against the simulator on loopback:
//!
//! (a) the time from saving the policy file (write a temp file, rename it over the policy) to the
//!     first request served under the new policy, with the default debounce of `router.watch`,
//!     over 100 edits that alternate the route's model: median and p99 (target: median < 100 ms);
//! (b) request latency under steady load with no reloads against the same load with a reload every
//!     50 ms, in interleaved phases of the same run: the p99 ratio.
//!
//! Before them it times one reload on the calling thread, to tell the parts apart.
//!
//! `cargo bench --bench reload` prints all three.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchyard::router::WatchOptions;
use switchyard::sim::SimServer;
use switchyard::{OpenAi, Policy, ProviderConfig, Router};

use support::{MODELS, measuring, ms, quantile, request, us};

const EDITS: usize = 100;
/// Give up on an edit that is not served after this long (it then counts as a failure).
const EDIT_TIMEOUT: Duration = Duration::from_secs(5);
const TARGET_MEDIAN: Duration = Duration::from_millis(100);

const LOAD_CLIENTS: usize = 16;
const PHASE: Duration = Duration::from_millis(1_000);
const PHASE_PAIRS: usize = 8;
const RELOAD_EVERY: Duration = Duration::from_millis(50);
/// The load phase's watcher: short, so that every 50 ms write is its own reload.
const LOAD_DEBOUNCE: Duration = Duration::from_millis(5);

/// Saves `text` at `path` the way editors do: a temp file beside it, renamed over it.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).expect("write temp policy");
    std::fs::rename(&tmp, path).expect("rename over policy");
}

fn main() {
    let (edits, phase, pairs) =
        if measuring() { (EDITS, PHASE, PHASE_PAIRS) } else { (3, Duration::from_millis(200), 1) };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let sim = SimServer::start().await.expect("simulator starts");
        reload_cost(&sim, if measuring() { 40 } else { 2 });
        edit_to_served(&sim, edits).await;
        sim.clear_requests();
        load_with_reloads(&sim, phase, pairs).await;
    });
}

/// A router on a fresh policy file at `model`.
fn router_on_file(sim: &SimServer, dir: &Path, model: &str) -> (Router, PathBuf) {
    let path = dir.join("policy.toml");
    std::fs::write(&path, support::policy_text(sim, model, 0)).expect("write policy");
    let router = Router::new(Policy::from_file(&path).expect("policy"));
    (router, path)
}

/// Context for (a) and (b): what one reload costs on the calling thread, without watcher or
/// debounce (`router.reload_from`: read, parse, compile, build the adapters, swap), and how much of
/// it is building one adapter (`OpenAi::new`, an HTTP client with its TLS setup).
fn reload_cost(sim: &SimServer, n: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (router, path) = router_on_file(sim, dir.path(), MODELS[0]);
    let mut reloads = Vec::with_capacity(n);
    for i in 1..=n {
        save(&path, &support::policy_text(sim, MODELS[i % 2], i));
        let t = Instant::now();
        router.reload_from(&path).expect("valid edit");
        reloads.push(t.elapsed());
    }
    let mut adapters = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let adapter = OpenAi::new(ProviderConfig::new("openai", sim.openai_base_url())).expect("adapter");
        adapters.push(t.elapsed());
        drop(adapter);
    }
    reloads.sort_unstable();
    adapters.sort_unstable();
    println!();
    println!(
        "reload cost, synchronous ({n} edits): router.reload_from median {:.2} ms, p99 {:.2} ms; of which building one adapter (the policy has 2) median {:.2} ms",
        ms(quantile(&reloads, 0.5)),
        ms(quantile(&reloads, 0.99)),
        ms(quantile(&adapters, 0.5)),
    );
}

/// (a): edit → first request served by the new model.
async fn edit_to_served(sim: &SimServer, edits: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (router, path) = router_on_file(sim, dir.path(), MODELS[0]);
    let _watch = router.watch(&path).expect("watch");
    let debounce = WatchOptions::default().debounce;

    let mut times = Vec::with_capacity(edits);
    let mut polls = 0usize;
    let mut missed = 0usize;
    for i in 1..=edits {
        let model = MODELS[i % 2];
        let text = support::policy_text(sim, model, i);
        let start = Instant::now();
        save(&path, &text);
        loop {
            let answer = router.chat("chat", request()).await.expect("request served");
            polls += 1;
            // the route chose the new model, and the answer really came from it
            let routed = answer.attempts.last().is_some_and(|a| a.model == model);
            if routed && answer.model() == model {
                times.push(start.elapsed());
                break;
            }
            if start.elapsed() > EDIT_TIMEOUT {
                missed += 1;
                break;
            }
        }
        sim.clear_requests();
        // let the rename's trailing events drain so that edits do not merge into one burst
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    times.sort_unstable();
    let median = quantile(&times, 0.5);
    println!();
    println!(
        "reload (a): file saved (temp + rename) -> first request served by the new model, {edits} edits, default debounce {} ms",
        debounce.as_millis()
    );
    println!(
        "  median {:.1} ms (target < {} ms: {}), p99 {:.1} ms, min {:.1} ms, max {:.1} ms; {missed} not served within {} s; {} polling requests",
        ms(median),
        TARGET_MEDIAN.as_millis(),
        if median < TARGET_MEDIAN && missed == 0 { "met" } else { "NOT met" },
        ms(quantile(&times, 0.99)),
        ms(quantile(&times, 0.0)),
        ms(quantile(&times, 1.0)),
        EDIT_TIMEOUT.as_secs(),
        polls
    );
    println!(
        "  median minus debounce: {:.1} ms (watch event + read + compile + swap + one request)",
        ms(median.saturating_sub(debounce))
    );
    assert_eq!(missed, 0, "every edit must be served");
}

/// What one load phase measured.
struct Phase {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
    reloads: u64,
}

/// Runs `LOAD_CLIENTS` clients for `length`; with `reload`, saves a new policy every 50 ms meanwhile.
async fn phase(
    router: &Router,
    sim: &SimServer,
    path: &Path,
    length: Duration,
    reload: bool,
    tag: &AtomicUsize,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let version_before = router.health().policy_version;
    let start = Instant::now();
    let clients: Vec<_> = (0..LOAD_CLIENTS)
        .map(|_| {
            let (router, stop) = (router.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match router.chat("chat", request()).await {
                        Ok(_) => latencies.push(t.elapsed()),
                        Err(e) => {
                            if errors == 0 {
                                eprintln!("request failed: {e}");
                            }
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    if reload {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        while start.elapsed() < length {
            tick.tick().await;
            let i = tag.fetch_add(1, Ordering::Relaxed);
            let text = support::policy_text(sim, MODELS[i % 2], i);
            let path = path.to_owned();
            // a blocking write off the async threads, as an editor in another process would do it
            tokio::task::spawn_blocking(move || save(&path, &text)).await.expect("save task");
        }
    } else {
        tokio::time::sleep(length).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut out = Phase { latencies: Vec::new(), errors: 0, elapsed: Duration::ZERO, reloads: 0 };
    for c in clients {
        let (latencies, errors) = c.await.expect("client task");
        out.latencies.extend(latencies);
        out.errors += errors;
    }
    out.elapsed = start.elapsed();
    // let the last reload land before counting, so that it is charged to this phase
    if reload {
        tokio::time::sleep(LOAD_DEBOUNCE * 4).await;
    }
    out.reloads = router.health().policy_version - version_before;
    out
}

/// (b): latency under load, without and with a reload every 50 ms.
async fn load_with_reloads(sim: &SimServer, length: Duration, pairs: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (router, path) = router_on_file(sim, dir.path(), MODELS[0]);
    let _watch = router.watch_with(&path, WatchOptions { debounce: LOAD_DEBOUNCE }).expect("watch");
    let tag = AtomicUsize::new(1);

    // warm the connection pool
    phase(&router, sim, &path, Duration::from_millis(200), false, &tag).await;
    sim.clear_requests();

    let (mut steady, mut reloading) = (Vec::new(), Vec::new());
    let (mut steady_n, mut reload_n, mut errors, mut reloads) = (0.0, 0.0, 0, 0);
    let (mut steady_t, mut reload_t) = (Duration::ZERO, Duration::ZERO);
    // each pair's p99s, for the spread of the per-pair ratio
    let mut pair_p99 = vec![(Duration::ZERO, Duration::ZERO); pairs];
    for i in 0..pairs * 2 {
        // steady, reloading, reloading, steady, ...: neither side always goes first
        let with_reloads = matches!(i % 4, 1 | 2);
        let p = phase(&router, sim, &path, length, with_reloads, &tag).await;
        sim.clear_requests();
        errors += p.errors;
        let mut sorted = p.latencies.clone();
        sorted.sort_unstable();
        let p99 = quantile(&sorted, 0.99);
        if with_reloads {
            pair_p99[i / 2].1 = p99
        } else {
            pair_p99[i / 2].0 = p99
        }
        if with_reloads {
            reload_n += p.latencies.len() as f64;
            reload_t += p.elapsed;
            reloads += p.reloads;
            reloading.extend(p.latencies);
        } else {
            steady_n += p.latencies.len() as f64;
            steady_t += p.elapsed;
            steady.extend(p.latencies);
        }
    }
    steady.sort_unstable();
    reloading.sort_unstable();
    let (s99, r99) = (quantile(&steady, 0.99), quantile(&reloading, 0.99));
    let (s50, r50) = (quantile(&steady, 0.5), quantile(&reloading, 0.5));
    println!();
    println!(
        "reload (b): {LOAD_CLIENTS} clients on the router for {pairs} x {:.1} s each way, interleaved; a policy save every {} ms (debounce {} ms)",
        length.as_secs_f64(),
        RELOAD_EVERY.as_millis(),
        LOAD_DEBOUNCE.as_millis()
    );
    let mut per_pair: Vec<f64> = pair_p99.iter().map(|(s, r)| us(*r) / us(*s)).collect();
    per_pair.sort_by(f64::total_cmp);
    println!(
        "  p99 ratio reloading/steady: {:.2} (per pair: median {:.2}, range {:.2}..{:.2})   p50 ratio: {:.2}   throughput ratio: {:.2}",
        us(r99) / us(s99),
        per_pair[per_pair.len() / 2],
        per_pair[0],
        per_pair[per_pair.len() - 1],
        us(r50) / us(s50),
        (reload_n / reload_t.as_secs_f64()) / (steady_n / steady_t.as_secs_f64())
    );
    println!("{:<10} {:>9} {:>9} {:>9} {:>9} {:>8}", "phase", "requests", "p50 µs", "p99 µs", "max µs", "reloads");
    for (label, l, n) in [("steady", &steady, 0), ("reloading", &reloading, reloads)] {
        println!(
            "{label:<10} {:>9} {:>9.0} {:>9.0} {:>9.0} {n:>8}",
            l.len(),
            us(quantile(l, 0.5)),
            us(quantile(l, 0.99)),
            us(quantile(l, 1.0))
        );
    }
    assert_eq!(errors, 0, "no request may fail because of a reload");
    // a smoke run (`cargo test --benches`, unoptimized) is too short to promise a reload
    assert!(reloads > 0 || !measuring(), "reloads happened");
}
