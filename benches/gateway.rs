//! Load benchmark of the gateway: the same requests straight to the simulated provider and through
//! `switchyard serve` (the release binary, in its own process) at a fixed rate, interleaved, on
//! loopback. Reports added latency at p50/p99 (whole answers) and added time to the first token
//! (streamed answers), the throughput ratio at saturation with 16 connections, streamed and not,
//! and the gateway's resident memory.
//!
//! `cargo bench --bench gateway` (set `SWITCHYARD_BENCH_SECS` to change the length of each run,
//! `SWITCHYARD_BENCH_BIN` to measure another build of the `switchyard` binary,
//! `SWITCHYARD_BENCH_ONLY=responses` for the Responses-vs-chat comparison alone).
//!
//! For the first-token figures it also measures two reference relays, each in its own process
//! (this bench binary started again in relay mode), to show what any extra hop costs on this
//! machine: `l4`, a TCP relay (`copy_bidirectional`, no HTTP at all), and `l7`, the smallest HTTP
//! proxy on switchyard's own stack (axum in, reqwest out, the body streamed back untouched, no
//! routing, no parsing). Their added latency is the floor a gateway of that kind starts from.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::sim::SimServer;

const RATE: u64 = 1000;
/// Streams cost more per request on both sides; a lower fixed rate keeps the box below saturation.
const STREAM_RATE: u64 = 500;
/// Concurrent connections of the saturation runs (what peers' published gateway benchmarks use).
const CONNECTIONS: usize = 16;
/// Set (to `l4` or `l7`) in a child process started as a reference relay.
const RELAY_ENV: &str = "SWITCHYARD_BENCH_RELAY";

/// The reference relays: a process of this binary relaying `listen` to `upstream` (`host:port`).
mod relay {
    use std::sync::Arc;

    use axum::body::{Body, Bytes};
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, Uri, header};
    use axum::response::{IntoResponse, Response};
    use axum::serve::ListenerExt;

    pub(crate) fn run(mode: &str, listen: &str, upstream: &str) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
            match mode {
                "l4" => loop {
                    let (mut inbound, _) = listener.accept().await.unwrap();
                    let upstream = upstream.to_owned();
                    tokio::spawn(async move {
                        let _ = inbound.set_nodelay(true);
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else { return };
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    });
                },
                _ => {
                    let state = Arc::new((reqwest::Client::new(), format!("http://{upstream}")));
                    let app = axum::Router::new().fallback(forward).with_state(state);
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    axum::serve(listener, app).await.unwrap();
                }
            }
        });
    }

    async fn forward(
        State(s): State<Arc<(reqwest::Client, String)>>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let mut request = s.0.post(format!("{}{}", s.1, uri.path())).body(body);
        if let Some(ct) = headers.get(header::CONTENT_TYPE) {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        match request.send().await {
            Ok(upstream) => {
                let status = upstream.status();
                let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
                let mut response = Response::new(Body::from_stream(upstream.bytes_stream()));
                *response.status_mut() = status;
                if let Some(ct) = content_type {
                    response.headers_mut().insert(header::CONTENT_TYPE, ct);
                }
                response
            }
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        }
    }
}

fn body() -> serde_json::Value {
    serde_json::json!({"model": "solo", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 16})
}

fn body_direct() -> serde_json::Value {
    serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 16})
}

fn streamed(mut body: serde_json::Value) -> serde_json::Value {
    body["stream"] = serde_json::Value::Bool(true);
    body
}

/// Whether `buf` holds the first non-empty content delta of an OpenAI stream (`"content":"…`) or
/// of a Responses stream (`"delta":"…`).
fn has_content(buf: &[u8]) -> bool {
    [&b"\"content\":\""[..], &b"\"delta\":\""[..]]
        .iter()
        .any(|key| buf.windows(key.len() + 1).any(|w| w.starts_with(key) && w[key.len()] != b'"'))
}

/// One whole answer, read to its end: its time in µs.
async fn whole(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> Option<f64> {
    let t0 = Instant::now();
    let resp = client.post(url).json(body).send().await.ok()?;
    (resp.status().is_success() && resp.bytes().await.is_ok()).then(|| t0.elapsed().as_secs_f64() * 1e6)
}

/// The Responses API against Chat Completions through the same gateway to the same target, one
/// request at a time, interleaved: what the Responses translation adds, whole and streamed.
async fn responses_vs_chat(client: &reqwest::Client, port: u16, secs: u64) {
    let chat = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let responses = format!("http://127.0.0.1:{port}/v1/responses");
    let r_body = serde_json::json!({"model": "solo", "input": "Hello there", "max_output_tokens": 16});
    for (label, streamed_too) in [("whole answer", false), ("first content delta, streamed", true)] {
        let (c_body, r_body) =
            if streamed_too { (streamed(body()), streamed(r_body.clone())) } else { (body(), r_body.clone()) };
        let (mut c, mut r) = (Vec::new(), Vec::new());
        for _ in 0..(200 * secs) {
            if streamed_too {
                c.extend(first_token(client, &chat, &c_body).await);
                r.extend(first_token(client, &responses, &r_body).await);
            } else {
                c.extend(whole(client, &chat, &c_body).await);
                r.extend(whole(client, &responses, &r_body).await);
            }
        }
        c.sort_by(f64::total_cmp);
        r.sort_by(f64::total_cmp);
        println!(
            "responses vs chat, {label}, one at a time ({} each): chat p50 {:.0} µs p99 {:.0} µs, responses p50 {:.0} µs \
             p99 {:.0} µs: added p50 {:+.0} µs, p99 {:+.0} µs, ratio p50 {:.3}",
            c.len().min(r.len()),
            pct(&c, 50.0),
            pct(&c, 99.0),
            pct(&r, 50.0),
            pct(&r, 99.0),
            pct(&r, 50.0) - pct(&c, 50.0),
            pct(&r, 99.0) - pct(&c, 99.0),
            pct(&r, 50.0) / pct(&c, 50.0),
        );
    }
}

/// Sends one streamed request; returns the time to the first content delta in µs, once the whole
/// stream was read without error.
async fn first_token(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> Option<f64> {
    let t0 = Instant::now();
    let mut resp = client.post(url).json(body).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let mut buf = Vec::new();
    let mut first = None;
    while let Some(chunk) = resp.chunk().await.ok()? {
        if first.is_none() {
            buf.extend_from_slice(&chunk);
            if has_content(&buf) {
                first = Some(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    first
}

/// Open loop: starts `one` at `rate` per second for `secs`; returns the sorted latencies it
/// reported in µs, and how many failed (`None`).
async fn open_loop<F, Fut>(rate: u64, secs: u64, one: F) -> (Vec<f64>, usize)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<f64>> + Send + 'static,
{
    let n = rate * secs;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        tokio::time::sleep_until(start + interval * i as u32).await;
        tasks.push(tokio::spawn(one()));
    }
    let mut lat = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    for t in tasks {
        match t.await.unwrap() {
            Some(us) => lat.push(us),
            None => errors += 1,
        }
    }
    lat.sort_by(f64::total_cmp);
    (lat, errors)
}

/// Streamed requests at `rate`/s for `secs`: time to the first content delta.
async fn fixed_rate_stream(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    rate: u64,
    secs: u64,
) -> (Vec<f64>, usize) {
    open_loop(rate, secs, || {
        let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
        async move { first_token(&client, &url, &body).await }
    })
    .await
}

/// Whole answers at `RATE`/s for `secs`: time to the whole answer.
async fn fixed_rate(client: &reqwest::Client, url: &str, body: &serde_json::Value, secs: u64) -> (Vec<f64>, usize) {
    open_loop(RATE, secs, || {
        let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
        async move {
            let t0 = Instant::now();
            let ok = client.post(&url).json(&body).send().await.is_ok_and(|r| r.status().is_success());
            ok.then(|| t0.elapsed().as_secs_f64() * 1e6)
        }
    })
    .await
}

/// Closed loop: as many requests as `CONNECTIONS` clients can do in `secs`, each answer read to
/// its end; returns requests/s.
async fn saturate(client: &reqwest::Client, url: &str, body: &serde_json::Value, secs: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, url, body, count) = (client.clone(), url.to_owned(), body.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let Ok(resp) = client.post(&url).json(&body).send().await else { continue };
                if resp.status().is_success() && resp.bytes().await.is_ok() {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    count.load(std::sync::atomic::Ordering::Relaxed) as f64 / secs as f64
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Prints the latencies of both ways and what the gateway adds.
fn report(what: &str, target: &str, mut direct: Vec<f64>, mut gateway: Vec<f64>, errors: (usize, usize)) {
    direct.sort_by(f64::total_cmp);
    gateway.sort_by(f64::total_cmp);
    println!("{:<10} {:>10} {:>10} {:>8}", "path", "p50 µs", "p99 µs", "errors");
    println!("{:<10} {:>10.0} {:>10.0} {:>8}", "direct", pct(&direct, 50.0), pct(&direct, 99.0), errors.0);
    println!("{:<10} {:>10.0} {:>10.0} {:>8}", "gateway", pct(&gateway, 50.0), pct(&gateway, 99.0), errors.1);
    println!(
        "{what}: p50 {:+.0} µs, p99 {:+.0} µs ({target})",
        pct(&gateway, 50.0) - pct(&direct, 50.0),
        pct(&gateway, 99.0) - pct(&direct, 99.0)
    );
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    if let Ok(mode) = std::env::var(RELAY_ENV) {
        let var = |k: &str| std::env::var(k).unwrap();
        relay::run(&mode, &var("SWITCHYARD_BENCH_RELAY_LISTEN"), &var("SWITCHYARD_BENCH_RELAY_UPSTREAM"));
        return;
    }
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(bench());
}

/// Starts this binary as a reference relay of kind `mode` in front of `upstream` (`host:port`);
/// returns the process and the base URL to use instead of the upstream's.
async fn start_relay(mode: &str, upstream: &str) -> (tokio::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(RELAY_ENV, mode)
        .env("SWITCHYARD_BENCH_RELAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("SWITCHYARD_BENCH_RELAY_UPSTREAM", upstream)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (child, port)
}

async fn bench() {
    let secs: u64 = std::env::var("SWITCHYARD_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let sim = SimServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[providers.openai]\nprofile = \"openai\"\nauth = \"none\"\nbase_url = \"{}\"\n[routes.solo]\ntargets = [{{ provider = \"openai\", model = \"gpt-4o-mini\" }}]\n",
            sim.openai_base_url()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // another build of the gateway may be measured against the same load and simulator
    let bin = std::env::var("SWITCHYARD_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchyard").to_owned());
    let mut child = tokio::process::Command::new(bin)
        .args(["serve", "--policy", &policy.display().to_string(), "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap_or(0);
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let gateway = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let direct = format!("{}/chat/completions", sim.openai_base_url());
    for _ in 0..200 {
        if client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // warm up both paths (connections, allocator)
    fixed_rate(&client, &direct, &body_direct(), 1).await;
    fixed_rate(&client, &gateway, &body(), 1).await;
    if std::env::var("SWITCHYARD_BENCH_ONLY").is_ok_and(|o| o == "responses") {
        responses_vs_chat(&client, port, secs).await;
        let _ = child.kill().await;
        return;
    }

    println!("fixed rate {RATE} req/s, {secs} s per run, runs interleaved direct/gateway/direct/gateway");
    let (mut d_all, mut g_all) = (Vec::new(), Vec::new());
    let mut errors = (0, 0);
    for _ in 0..2 {
        sim.clear_requests();
        let (d, de) = fixed_rate(&client, &direct, &body_direct(), secs).await;
        sim.clear_requests();
        let (g, ge) = fixed_rate(&client, &gateway, &body(), secs).await;
        d_all.extend(d);
        g_all.extend(g);
        errors.0 += de;
        errors.1 += ge;
    }
    let rss_loaded = rss_kb(pid);
    report("added latency", "target: p99 < 1000 µs", d_all, g_all, errors);

    // the reference relays forward the direct request as it is
    let sim_addr = direct.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let path = direct.trim_start_matches("http://").split_once('/').map(|(_, p)| p.to_owned()).unwrap();
    let (_l4, l4_port) = start_relay("l4", &sim_addr).await;
    let (_l7, l7_port) = start_relay("l7", &sim_addr).await;
    let l4 = format!("http://127.0.0.1:{l4_port}/{path}");
    let l7 = format!("http://127.0.0.1:{l7_port}/{path}");
    for url in [&l4, &l7] {
        assert!(first_token(&client, url, &streamed(body_direct())).await.is_some(), "relay {url} does not answer");
    }
    // (label, url, body) of each way to the simulator, direct first
    let ways = [
        ("direct", direct.clone(), streamed(body_direct())),
        ("l4 relay", l4.clone(), streamed(body_direct())),
        ("l7 relay", l7.clone(), streamed(body_direct())),
        ("gateway", gateway.clone(), streamed(body())),
    ];

    println!("streamed, fixed rate {STREAM_RATE} req/s: time to the first content delta");
    let mut all: Vec<(Vec<f64>, usize)> = vec![(Vec::new(), 0); ways.len()];
    for _ in 0..2 {
        for (i, (_, url, body)) in ways.iter().enumerate() {
            sim.clear_requests();
            let (lat, errors) = fixed_rate_stream(&client, url, body, STREAM_RATE, secs).await;
            all[i].0.extend(lat);
            all[i].1 += errors;
        }
    }
    for (lat, _) in &mut all {
        lat.sort_by(f64::total_cmp);
    }
    let direct_p50 = pct(&all[0].0, 50.0);
    for ((label, _, _), (lat, errors)) in ways.iter().zip(&all).skip(1) {
        println!(
            "  {label}: first-token p50 {:.0} µs (direct {direct_p50:.0}), added {:+.0} µs, p99 added {:+.0} µs, errors {errors}",
            pct(lat, 50.0),
            pct(lat, 50.0) - direct_p50,
            pct(lat, 99.0) - pct(&all[0].0, 99.0),
        );
    }
    println!("  (gateway target: added p50 <= 200 µs)");

    // one request at a time: the hop's own cost, without queueing behind other requests
    let mut seq: Vec<Vec<f64>> = vec![Vec::new(); ways.len()];
    for _ in 0..(100 * secs) {
        for (i, (_, url, body)) in ways.iter().enumerate() {
            seq[i].extend(first_token(&client, url, body).await);
        }
    }
    for lat in &mut seq {
        lat.sort_by(f64::total_cmp);
    }
    let direct_p50 = pct(&seq[0], 50.0);
    println!("streamed, one at a time: first content delta p50 direct {direct_p50:.0} µs");
    for ((label, _, _), lat) in ways.iter().zip(&seq).skip(1) {
        println!("  {label}: p50 {:.0} µs, added {:+.0} µs", pct(lat, 50.0), pct(lat, 50.0) - direct_p50);
    }

    for (label, d_body, g_body, target) in
        [("whole answers", body_direct(), body(), 0.35), ("streamed", streamed(body_direct()), streamed(body()), 0.25)]
    {
        sim.clear_requests();
        let td = saturate(&client, &direct, &d_body, secs).await;
        sim.clear_requests();
        let tg = saturate(&client, &gateway, &g_body, secs).await;
        println!(
            "saturation, {label}, {CONNECTIONS} connections: direct {td:.0} req/s, gateway {tg:.0} req/s, \
             ratio {:.2} (target >= {target})",
            tg / td
        );
    }
    responses_vs_chat(&client, port, secs).await;
    match rss_loaded {
        Some(kb) => println!("gateway RSS after the fixed-rate runs: {:.1} MB (target < 50 MB)", kb as f64 / 1024.0),
        None => println!("gateway RSS: not available on this OS"),
    }
    let _ = child.kill().await;
}
