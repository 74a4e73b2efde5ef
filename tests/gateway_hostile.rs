//! `switchyard serve` against clients that misbehave: slow headers and bodies, idle and excess
//! connections, made-up names, keys revoked mid-flight, keys without rights; and TLS. Limits are
//! configured small; no assertion depends on how fast the machine is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::TestGateway;
use switchyard::duration::DurationStr;
use switchyard::sim::{Fault, FaultRule, SimServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn policy_text(sim: &SimServer, server: &str) -> String {
    format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
{openai}[routes.chat]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}]
[routes.solo]
targets = [{{ provider = "openai", model = "gpt-4o" }}]
[server]
{server}
"#,
        openai = support::provider_toml("openai", "openai", &sim.openai_base_url(), ""),
    )
}

struct Setup {
    sim: SimServer,
    gateway: TestGateway,
    base: String,
}

/// A gateway whose `[server]` table is `server`; `files` are written next to the policy first.
async fn setup(server: &str, files: &[(&str, &str)]) -> Setup {
    let sim = support::sim().await;
    let gateway = support::gateway_with(&policy_text(&sim, server), files).await;
    Setup { sim, base: gateway.base.clone(), gateway }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

fn body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello there"}], "max_completion_tokens": 20})
}

/// Reads until the peer closes; `None` if it is still open after `within` (generous: the limits
/// under test are a few hundred milliseconds).
async fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok().map(|()| seen)
}

#[tokio::test]
async fn slow_headers_are_closed_after_the_header_timeout_and_a_slow_body_gets_408() {
    // the idle timeout is far away: only the header timeout can close these
    let s = setup("header_read_timeout = \"300ms\"\nkeepalive_timeout = \"60s\"\nbody_read_timeout = \"300ms\"\n", &[])
        .await;
    let addr = s.gateway.addr();
    // slowloris: half the headers, then nothing
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    // a connection that never says a word
    let mut mute = TcpStream::connect(addr).await.unwrap();
    for (name, conn) in [("slow headers", &mut slow), ("no bytes", &mut mute)] {
        let seen = closed_within(conn, Duration::from_secs(10)).await;
        assert_eq!(seen.map(|b| b.len()), Some(0), "{name}: closed, with no answer");
    }
    // a body that stops halfway: 408 naming the setting
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":";
    conn.write_all(head.as_bytes()).await.unwrap();
    let answer = closed_within(&mut conn, Duration::from_secs(10)).await.expect("answered and closed");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout"), "{answer}");
    assert!(s.sim.requests().is_empty());
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_keepalive_timeout_but_busy_ones_are_not() {
    // the header timeout is far away: only the idle timeout can close this one
    let s = setup("header_read_timeout = \"60s\"\nkeepalive_timeout = \"300ms\"\n", &[]).await;
    let mut idle = TcpStream::connect(s.gateway.addr()).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut first = [0u8; 1024];
    let n = idle.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"), "served before going idle");
    let seen = closed_within(&mut idle, Duration::from_secs(10)).await;
    assert_eq!(seen.map(|b| b.len()), Some(0), "closed once idle");
    // a request in flight for three idle timeouts is answered
    let latency = Fault::Latency { delay: DurationStr::new(Duration::from_millis(900)) };
    s.sim.add_fault(FaultRule::new(switchyard::Protocol::Openai, latency));
    let r = client().post(format!("{}/v1/chat/completions", s.base)).json(&body("chat")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn connections_past_the_cap_do_not_lock_out_healthz() {
    let s = setup("max_connections = 4\nheader_read_timeout = \"60s\"\n", &[]).await;
    let addr = s.gateway.addr();
    // more idle connections than the cap: each new one takes the place of the oldest idle one
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let r = client().get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let oldest = closed_within(&mut idle[0], Duration::from_secs(10)).await;
    assert_eq!(oldest.map(|b| b.len()), Some(0), "the oldest idle connection made room");

    // every slot busy with a request the provider takes seconds to answer: new connections are
    // answered at once, /healthz with its usual answer, anything else a 503
    let latency = Fault::Latency { delay: DurationStr::new(Duration::from_secs(5)) };
    s.sim.add_fault(FaultRule::new(switchyard::Protocol::Openai, latency).first(4));
    let busy: Vec<_> = (0..4)
        .map(|_| {
            let url = format!("{}/v1/chat/completions", s.base);
            tokio::spawn(async move { client().post(url).json(&body("chat")).send().await.unwrap().status() })
        })
        .collect();
    wait_until(|| s.sim.requests().len() == 4).await;
    let fresh = client();
    let r = fresh.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200, "healthz past the cap");
    let r = fresh.post(format!("{}/v1/chat/completions", s.base)).json(&body("chat")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let text = r.text().await.unwrap();
    assert!(text.contains("max_connections"), "{text}");
    assert!(busy.iter().all(|b| !b.is_finished()), "the four were still in flight while the cap was probed");
    // the busy ones are answered in full
    for b in busy {
        assert_eq!(b.await.unwrap(), 200);
    }
}

/// Under a descriptor limit of 256 (a container's or a unit's is often 1,024), more connections
/// than descriptors, each sending half a request head and waiting: the connection cap, fitted to
/// the limit, makes room by the quietest, so `/healthz` is answered at once while they are held,
/// and the gateway serves after.
#[tokio::test]
async fn a_low_descriptor_limit_keeps_healthz_answered_under_held_connections() {
    let sim = support::sim().await;
    // the header timeout is far away: only the cap can free a descriptor
    let policy = policy_text(&sim, "header_read_timeout = \"60s\"\n");
    let gw = support::serve_binary_under(&["prlimit", "--nofile=256:256", "--"], &policy, &[], Stdio::null()).await;
    let state: Value = client().get(format!("{}/admin/state", gw.base)).send().await.unwrap().json().await.unwrap();
    let connections = &state["connections"];
    assert_eq!(connections["fd_limit"]["soft"], 256, "{connections}");
    assert_eq!(connections["max_connections"], 1024, "{connections}");
    let cap = connections["effective"].as_u64().unwrap();
    assert!(cap > 0 && cap < 128, "two descriptors a connection, beside a reserve: {connections}");
    assert!(connections["why"].as_str().unwrap().contains("descriptor limit 256"), "{connections}");

    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", gw.port).parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        held.push(c);
    }
    // each probe a fresh connection (no pool), answered well within the header timeout
    for _ in 0..5 {
        let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let probe = tokio::time::timeout(Duration::from_secs(5), fresh.get(format!("{}/healthz", gw.base)).send());
        let r = probe.await.expect("/healthz unanswered while the connections are held").unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = client().post(format!("{}/v1/chat/completions", gw.base)).json(&body("chat")).send().await.unwrap();
    assert_eq!(r.status(), 200, "a request is served while they are held");
    let metrics = client().get(format!("{}/metrics", gw.base)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("switchyard_connections_closed_total{reason=\"evicted\"}")),
        "the held connections made room by eviction"
    );
    assert!(
        !metrics.contains("reason=\"fd_limit\""),
        "the cap acted before the descriptors ran out: accept never failed for want of one"
    );
    drop(held);
    let r = client().post(format!("{}/v1/chat/completions", gw.base)).json(&body("chat")).send().await.unwrap();
    assert_eq!(r.status(), 200, "healthy after");
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let s = setup("max_header_bytes = 8192\n", &[]).await;
    let r = client().get(format!("{}/healthz", s.base)).header("x-filler", "f".repeat(16 * 1024)).send().await.unwrap();
    assert_eq!(r.status(), 431);
    let r = client().get(format!("{}/healthz", s.base)).header("x-filler", "f".repeat(1024)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_request_id_is_taken_or_made_and_echoed() {
    let s = setup("", &[]).await;
    let url = format!("{}/v1/chat/completions", s.base);
    let r = client().post(&url).json(&body("chat")).send().await.unwrap();
    let made = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(made.len() == 32 && made.chars().all(|c| c.is_ascii_hexdigit()), "{made}");
    let r = client().post(&url).header("x-request-id", "client-abc-123").json(&body("chat")).send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "client-abc-123");
    // one that could forge a log line is replaced
    let r = client().post(&url).header("x-request-id", "a b\"c").json(&body("nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_ne!(r.headers()["x-request-id"], "a b\"c");
}

const KEYS: &str = r#"
[keys.app]
key = "sk-app"
routes = ["chat"]
[keys.ops]
key = "sk-ops"
admin = true
[keys.batch]
key = "sk-batch"
rpm = 2
[keys.single]
key = "sk-single"
concurrency = 1
"#;

#[tokio::test]
async fn keys_carry_names_routes_limits_and_the_admin_right() {
    let s = setup("keys_file = \"keys.toml\"\n", &[("keys.toml", KEYS)]).await;
    let url = format!("{}/v1/chat/completions", s.base);
    let call = |key: &'static str, route: &'static str| {
        let url = url.clone();
        async move { client().post(&url).bearer_auth(key).json(&body(route)).send().await.unwrap() }
    };
    assert_eq!(call("sk-app", "chat").await.status(), 200);
    let r = call("sk-app", "solo").await;
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(text.contains("`app` may not use the route `solo`") && !text.contains("sk-app"), "{text}");
    assert_eq!(call("sk-nope", "chat").await.status(), 401);
    // /v1/models lists what the key may use
    let models: Value =
        client().get(format!("{}/v1/models", s.base)).bearer_auth("sk-app").send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["chat"]);
    // admin endpoints: an admin key only
    for path in ["/admin/state", "/metrics"] {
        let get = |key: &'static str| client().get(format!("{}{path}", s.base)).bearer_auth(key).send();
        assert_eq!(get("sk-app").await.unwrap().status(), 403, "{path}");
        assert_eq!(get("sk-nope").await.unwrap().status(), 401, "{path}");
        assert_eq!(get("sk-ops").await.unwrap().status(), 200, "{path}");
    }
    // rpm of its own
    assert_eq!(call("sk-batch", "chat").await.status(), 200);
    assert_eq!(call("sk-batch", "chat").await.status(), 200);
    let r = call("sk-batch", "chat").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.text().await.unwrap().contains("`batch` is over its rpm"));
    // concurrency of its own: the second request while the first is in flight
    s.sim.add_fault(
        FaultRule::new(
            switchyard::Protocol::Openai,
            Fault::Latency { delay: DurationStr::new(Duration::from_secs(3)) },
        )
        .first(1),
    );
    let first = tokio::spawn(call("sk-single", "chat"));
    wait_until(|| s.sim.requests().len() == 4).await;
    let r = call("sk-single", "chat").await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("`single` has 1 requests in flight"));
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(call("sk-single", "chat").await.status(), 200, "the slot came back");
    // the key's name is a metric label; the key itself appears nowhere
    let metrics =
        client().get(format!("{}/metrics", s.base)).bearer_auth("sk-ops").send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("key=\"batch\""), "{metrics}");
    assert!(!metrics.contains("sk-"), "a key leaked into /metrics");
}

async fn wait_until(done: impl FnMut() -> bool) {
    assert!(support::eventually(Duration::from_secs(10), done).await, "condition not met in 10 s");
}

#[tokio::test]
async fn a_key_removed_from_the_key_file_is_refused_after_the_reload_while_its_requests_in_flight_finish() {
    let s = setup("keys_file = \"keys.toml\"\n", &[("keys.toml", KEYS)]).await;
    let url = format!("{}/v1/chat/completions", s.base);
    let version = s.gateway.router().health().policy_version;
    s.sim.add_fault(
        FaultRule::new(
            switchyard::Protocol::Openai,
            Fault::Latency { delay: DurationStr::new(Duration::from_secs(3)) },
        )
        .first(1),
    );
    let in_flight = tokio::spawn({
        let url = url.clone();
        async move { client().post(&url).bearer_auth("sk-batch").json(&body("chat")).send().await.unwrap() }
    });
    wait_until(|| s.sim.requests().len() == 1).await;
    // revoke `batch` by editing the key file only
    std::fs::write(
        s.gateway.dir.path().join("keys.toml"),
        KEYS.replace("[keys.batch]\nkey = \"sk-batch\"\nrpm = 2\n", ""),
    )
    .unwrap();
    wait_until(|| s.gateway.router().health().policy_version > version).await;
    let r = client().post(&url).bearer_auth("sk-batch").json(&body("chat")).send().await.unwrap();
    assert_eq!(r.status(), 401, "revoked without a restart");
    assert!(!in_flight.is_finished(), "the earlier request is still in flight after the reload");
    assert_eq!(in_flight.await.unwrap().status(), 200, "the request admitted before the reload finished");
    let r = client().post(&url).bearer_auth("sk-app").json(&body("chat")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the other keys stay");
    // a broken key file is refused and the keys in force stay
    let version = s.gateway.router().health().policy_version;
    std::fs::write(s.gateway.dir.path().join("keys.toml"), "[keys.app]\nkey = \"sk-app\"\nroutes = \"chat\"\n")
        .unwrap();
    wait_until(|| s.gateway.router().health().last_reload_error.is_some()).await;
    let error = s.gateway.router().health().last_reload_error.unwrap();
    assert!(error.contains("keys.toml:3") && error.contains("keys.app.routes"), "{error}");
    assert_eq!(s.gateway.router().health().policy_version, version);
    let r = client().post(&url).bearer_auth("sk-ops").json(&body("chat")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // a policy naming a key file that is not there yet is refused; writing the file applies it
    let version = s.gateway.router().health().policy_version;
    let text = std::fs::read_to_string(s.gateway.dir.path().join("policy.toml")).unwrap();
    std::fs::write(s.gateway.dir.path().join("policy.toml"), text.replace("keys.toml", "later/new-keys.toml")).unwrap();
    wait_until(|| {
        s.gateway.router().health().last_reload_error.as_deref().is_some_and(|e| e.contains("new-keys.toml"))
    })
    .await;
    std::fs::create_dir(s.gateway.dir.path().join("later")).unwrap();
    std::fs::write(s.gateway.dir.path().join("later/new-keys.toml"), "[keys.fresh]\nkey = \"sk-fresh\"\n").unwrap();
    wait_until(|| s.gateway.router().health().policy_version > version).await;
    let r = client().post(&url).bearer_auth("sk-fresh").json(&body("chat")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// 20,000 requests naming made-up routes and ten with a 1 MB `model`, against the gateway binary:
/// its `/metrics` gains no series and its resident memory stays where it was.
#[tokio::test]
async fn made_up_names_leave_metrics_and_memory_flat() {
    let sim = support::sim().await;
    let serve = support::serve_binary(&policy_text(&sim, ""), &[], Stdio::null()).await;
    let support::ServeProcess { mut child, base, .. } = serve;
    let pid = child.id().unwrap();
    let http = client();
    let url = format!("{base}/v1/chat/completions");
    // warm up every path once, so that what is measured after is growth, not first use
    for model in ["made-up-warm".to_owned(), "chat".to_owned(), "m".repeat(300)] {
        http.post(&url).json(&body(&model)).send().await.unwrap();
    }
    let metrics = || async { http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap() };
    let (metrics_before, rss_before) = (metrics().await, rss_kib(pid));
    let requests = futures::stream::iter(0..20_000).map(|i| {
        let (http, url) = (http.clone(), url.clone());
        async move { http.post(&url).json(&body(&format!("made-up-{i}"))).send().await.unwrap().status() }
    });
    let statuses: Vec<_> = futures::StreamExt::buffer_unordered(requests, 16).collect().await;
    assert!(statuses.iter().all(|s| *s == 404));
    let huge = "m".repeat(1 << 20);
    for _ in 0..10 {
        assert_eq!(http.post(&url).json(&body(&huge)).send().await.unwrap().status(), 400);
    }
    let (metrics_after, rss_after) = (metrics().await, rss_kib(pid));
    let series = |text: &str| -> std::collections::BTreeSet<String> {
        // a series is its name and labels; its value changes
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            // connections the gateway closed, by reason: a fixed set of labels, which a slow
            // machine may reach during the run (a pooled connection that idles out)
            .filter(|l| !l.starts_with("switchyard_connections_"))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(s, _)| s.to_owned())
            .collect()
    };
    let new: Vec<_> = series(&metrics_after).difference(&series(&metrics_before)).cloned().collect();
    assert!(new.is_empty(), "new series: {new:#?}");
    assert!(
        metrics_after.len() < metrics_before.len() + 512,
        "{} -> {} bytes",
        metrics_before.len(),
        metrics_after.len()
    );
    assert!(!metrics_after.contains("made-up-"));
    // the issue saw +65 MB and +134 MB; allocator noise stays far below 16 MB
    assert!(rss_after < rss_before + 16 * 1024, "RSS {rss_before} KiB -> {rss_after} KiB");
    let _ = child.kill().await;
}

use futures::StreamExt;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
}

fn tls_client(cert: &str) -> reqwest::Client {
    let pem = std::fs::read(fixture(cert)).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_is_terminated_and_a_new_certificate_applies_on_reload() {
    let copy = |dir: &Path, from: &str, to: &str| std::fs::copy(fixture(from), dir.join(to)).unwrap();
    let sim = support::sim().await;
    let pem = |name: &str| std::fs::read_to_string(fixture(name)).unwrap();
    let (cert, key) = (pem("cert-a.pem"), pem("key-a.pem"));
    let tls = policy_text(&sim, "tls = { cert = \"cert.pem\", key = \"key.pem\" }\n");
    let gateway = support::gateway_with(&tls, &[("cert.pem", &cert), ("key.pem", &key)]).await;
    let (dir, policy) = (gateway.dir.path(), gateway.policy_path());
    let port = gateway.addr().port();
    let https = format!("https://localhost:{port}");
    let r =
        tls_client("cert-a.pem").post(format!("{https}/v1/chat/completions")).json(&body("chat")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        client().get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_err(),
        "no plain HTTP on a TLS port"
    );
    // rotate the certificate: new connections get the new one
    let version = gateway.router().health().policy_version;
    copy(dir, "key-b.pem", "key.pem");
    copy(dir, "cert-b.pem", "cert.pem");
    wait_until(|| gateway.router().health().policy_version > version).await;
    assert!(tls_client("cert-a.pem").get(format!("{https}/healthz")).send().await.is_err());
    let r = tls_client("cert-b.pem").get(format!("{https}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // a connection that never starts its handshake is closed after the header timeout
    let text = std::fs::read_to_string(&policy).unwrap();
    let version = gateway.router().health().policy_version;
    std::fs::write(&policy, text.replace("[server]\n", "[server]\nheader_read_timeout = \"300ms\"\n")).unwrap();
    wait_until(|| gateway.router().health().policy_version > version).await;
    let mut mute = TcpStream::connect(gateway.addr()).await.unwrap();
    let seen = closed_within(&mut mute, Duration::from_secs(10)).await;
    assert_eq!(seen.map(|b| b.len()), Some(0), "closed without a handshake");
}

/// Every log line of a request, a streamed one's included, names its request id and key name
/// (and never the key).
#[tokio::test]
async fn log_lines_carry_the_request_id_and_the_key_name() {
    let sim = support::sim().await;
    let policy = policy_text(&sim, "api_keys_env = \"HOSTILE_TEST_KEYS\"\n");
    let envs = [("HOSTILE_TEST_KEYS", "sk-logged-key"), ("RUST_LOG", "info"), ("NO_COLOR", "1")];
    let serve = support::serve_binary(&policy, &envs, Stdio::piped()).await;
    let support::ServeProcess { mut child, base, .. } = serve;
    let http = client();
    // a whole answer whose attempt fails, and a stream cut after its first tokens
    sim.add_fault(FaultRule::new(switchyard::Protocol::Openai, Fault::status(500)).first(1));
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-logged-key")
        .header("x-request-id", "whole-1")
        .json(&body("chat"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502, "a provider's server error");
    sim.add_fault(FaultRule::new(switchyard::Protocol::Openai, Fault::Cut { after_tokens: 2 }).first(1));
    let mut streamed = body("chat");
    streamed["stream"] = json!(true);
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-logged-key")
        .header("x-request-id", "stream-2")
        .json(&streamed)
        .send()
        .await
        .unwrap();
    let _ = r.text().await.unwrap();
    let _ = child.start_kill();
    let output = child.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("attempt failed")).collect();
    assert!(failed.len() >= 2, "{log}");
    for id in ["whole-1", "stream-2"] {
        assert!(
            failed.iter().any(|l| l.contains(&format!("request_id={id}")) && l.contains("key=env-1")),
            "no line of {id} names it: {log}"
        );
    }
    assert!(!log.contains("sk-logged-key"), "the key leaked into the log");
}
