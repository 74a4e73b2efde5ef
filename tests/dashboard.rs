//! The operators' dashboard (`GET /admin`, fed by `GET /admin/events`): in a real headless
//! Chromium, and its endpoints with reqwest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::Protocol;
use switchyard::serve::Gateway;
use switchyard::sim::{Fault, FaultRule, SimServer};

use browser::Browser;

fn policy(sim: &SimServer, extra: &str) -> String {
    format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
# opens on the second failure in a row; probed after 3 s
breaker = {{ consecutive_failures = 2, cooldown = "3s", max_cooldown = "3s" }}
{providers}
[routes.chat]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
[routes.claude]
targets = [{{ provider = "anthropic", model = "claude-opus-4-6" }}]
{extra}
"#,
        providers = sim.providers_toml()
    )
}

async fn gateway(sim: &SimServer, extra: &str) -> (Gateway, tempfile::TempDir) {
    let (gateway, _, dir) = support::gateway(&policy(sim, extra)).await;
    (gateway, dir)
}

async fn chat(base: &str, route: &str) -> u16 {
    let body = json!({"model": route, "messages": [{"role": "user", "content": "Hello"}], "max_completion_tokens": 20});
    let r = reqwest::Client::new().post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
    r.status().as_u16()
}

/// The breaker state the page shows for `who`.
fn breaker_js(who: &str) -> String {
    format!(
        r#"const el = document.querySelector('td[data-breaker="{who}"] .pill'); return el ? el.dataset.state : null;"#
    )
}

/// Reads the stream into `text` until it holds `needle` (20 s at most: keep-alives and snapshots
/// alone would keep a plain loop going for ever).
async fn read_until(events: &mut reqwest::Response, text: &mut String, needle: &str) {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while !text.contains(needle) {
            text.push_str(&String::from_utf8_lossy(&events.chunk().await.unwrap().unwrap()));
        }
    });
    assert!(found.await.is_ok(), "`{needle}` never came: {text}");
}

fn breaker_is(who: &str, state: &str) -> String {
    format!(
        r#"const el = document.querySelector('td[data-breaker="{who}"] .pill'); return !!el && el.dataset.state === '{state}';"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_every_route_a_breaker_opening_and_closing_live() {
    let sim = support::sim().await;
    let (gw, _dir) = gateway(&sim, "").await;
    let base = format!("http://{}", gw.addr());
    for _ in 0..3 {
        assert_eq!(chat(&base, "chat").await, 200);
    }

    let browser = Browser::start().await;
    browser.goto(&format!("{base}/admin")).await;
    let long = Duration::from_secs(30);
    browser.wait_for("return Number(document.body.dataset.rendered || 0) >= 1", "a first snapshot", long).await;
    // every route, and each of its targets
    for route in ["chat", "claude"] {
        let found = browser.eval(&format!("return !!document.querySelector('tr[data-route=\"{route}\"]')")).await;
        assert_eq!(found, true, "route {route} is not on the page");
    }
    for target in ["chat:openai/gpt-4o-mini", "chat:anthropic/claude-sonnet-4-5", "claude:anthropic/claude-opus-4-6"] {
        let found =
            browser.eval(&format!("return !!document.querySelector('tr[data-route-target=\"{target}\"]')")).await;
        assert_eq!(found, true, "target {target} is not on the page");
    }
    assert_eq!(browser.eval(&breaker_js("openai/gpt-4o-mini")).await, "closed");
    assert_eq!(browser.eval("return document.getElementById('conn').textContent").await, "live");
    // set in this document: still there later, the page updated in place
    browser.eval("window.sameDocument = true; return null").await;

    // a scripted fault opens OpenAI's breaker: the page shows it without a reload
    let fault = sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)));
    for _ in 0..3 {
        assert_eq!(chat(&base, "chat").await, 200, "anthropic serves while openai fails");
    }
    browser.wait_for(&breaker_is("openai/gpt-4o-mini", "open"), "the breaker open", long).await;
    assert_eq!(browser.eval("return window.sameDocument === true").await, true, "the page was reloaded");
    // the transition is in the recent events and on the timeline, the failures in the error table
    browser
        .wait_for("return !!document.querySelector('#recent li[data-event=\"breaker\"]')", "the breaker event", long)
        .await;
    browser
        .wait_for(
            "return !!document.querySelector('g[data-breaker-band=\"openai/gpt-4o-mini\"] rect[data-state=\"open\"]')",
            "the open band",
            long,
        )
        .await;
    browser
        .wait_for("return !!document.querySelector('#recent li[data-event=\"failover\"]')", "the failover", long)
        .await;
    let errors =
        browser.eval("return document.querySelector('#errors tr[data-provider=\"openai\"]').textContent").await;
    assert!(errors.as_str().unwrap().contains('2'), "{errors}");
    let series = browser.eval("return document.querySelector('#traffic svg').dataset.series").await;
    assert_eq!(series, "openai anthropic");
    assert!(
        browser
            .eval("return document.querySelectorAll('#traffic g[data-series=\"anthropic\"] rect').length")
            .await
            .as_u64()
            > Some(0)
    );

    // the fault ends; after the cooldown a probe closes the breaker, and the page follows
    sim.remove_fault(fault);
    let closed = support::eventually_async(long, || async {
        assert_eq!(chat(&base, "chat").await, 200);
        browser.eval(&breaker_js("openai/gpt-4o-mini")).await == "closed"
    });
    assert!(closed.await, "the page never showed the breaker closed again");
    browser
        .wait_for(
            "return !!document.querySelector('g[data-breaker-band=\"openai/gpt-4o-mini\"] rect[data-state=\"closed\"]:last-of-type')",
            "the closed band",
            long,
        )
        .await;

    assert_eq!(browser.eval("return window.sameDocument === true").await, true, "the page was reloaded");
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    // and the check could have failed: an error written now is seen
    browser.eval("console.error('switchyard: the console is read'); return null").await;
    assert!(browser.console_errors().await.iter().any(|e| e.contains("the console is read")));
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"));
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&out, png).unwrap();
    browser.close().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_stream_sends_snapshots_and_events() {
    let sim = support::sim().await;
    let (gw, _dir) = gateway(&sim, "").await;
    let base = format!("http://{}", gw.addr());
    let page = reqwest::get(format!("{base}/admin")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let html = page.text().await.unwrap();
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "self-contained");

    let mut events = reqwest::get(format!("{base}/admin/events")).await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    read_until(&mut events, &mut text, "event: snapshot").await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)));
    assert_eq!(chat(&base, "chat").await, 200);
    read_until(&mut events, &mut text, "\"event\":\"failover\"").await;
    // each snapshot is one JSON document with the routes, the health and the series
    let snapshot = text.split("event: snapshot\ndata: ").nth(1).unwrap();
    let snapshot: Value = serde_json::from_str(snapshot.lines().next().unwrap()).unwrap();
    assert_eq!(snapshot["routes"].as_array().unwrap().len(), 2);
    assert_eq!(snapshot["slice_ms"], 5000);
    assert!(snapshot["health"]["targets"].is_array());
    assert!(!text.contains("\"event\":\"attempt\""), "attempts only when asked");
    drop(events);
    // a drill against the gateway asks for every attempt too
    let mut events = reqwest::get(format!("{base}/admin/events?attempts=true")).await.unwrap();
    let mut text = String::new();
    read_until(&mut events, &mut text, "event: snapshot").await;
    assert_eq!(chat(&base, "chat").await, 200);
    read_until(&mut events, &mut text, "\"event\":\"attempt\"").await;
    drop(events);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_takes_an_admin_key_as_basic_credentials_and_caps_its_streams() {
    let sim = support::sim().await;
    let keys = "[keys.ops]\nkey = \"sk-admin-1234567890\"\nadmin = true\n[keys.app]\nkey = \"sk-app-1234567890\"\n";
    let policy = policy(&sim, "[server]\nkeys_file = \"keys.toml\"\n");
    let gw = support::gateway_with(&policy, &[("keys.toml", keys)]).await;
    let base = gw.base.clone();
    let http = reqwest::Client::new();

    // no key: 401 with a Basic challenge, so that a browser asks for one
    let r = http.get(format!("{base}/admin")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"switchyard admin\", charset=\"UTF-8\"");
    // the admin key as the password of Basic credentials (any user name), or as a bearer token
    let r = http.get(format!("{base}/admin")).basic_auth("me", Some("sk-admin-1234567890")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(format!("{base}/admin/state")).bearer_auth("sk-admin-1234567890").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // a key that is not an admin key, a wrong password
    let r = http.get(format!("{base}/admin")).basic_auth("me", Some("sk-app-1234567890")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http.get(format!("{base}/admin")).basic_auth("me", Some("sk-wrong")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // a basic-auth password is no key on the API
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "Hello"}]});
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .basic_auth("me", Some("sk-app-1234567890"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // at most 16 streams at once; one more is refused, and a closed one gives its place back
    let mut open = Vec::new();
    for _ in 0..16 {
        let r = http.get(format!("{base}/admin/events")).bearer_auth("sk-admin-1234567890").send().await.unwrap();
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let r = http.get(format!("{base}/admin/events")).bearer_auth("sk-admin-1234567890").send().await.unwrap();
    assert_eq!(r.status(), 503);
    drop(open.pop());
    let back = support::eventually_async(Duration::from_secs(10), || async {
        let r = http.get(format!("{base}/admin/events")).bearer_auth("sk-admin-1234567890").send().await.unwrap();
        r.status() == 200
    });
    assert!(back.await, "a closed stream never gave its place back");
    drop(open);
    gw.shutdown().await;
}

#[tokio::test]
async fn faults_are_injected_and_lifted_through_the_admin_api() {
    let sim = support::sim().await;
    let (gw, _dir) = gateway(&sim, "").await;
    let base = format!("http://{}", gw.addr());
    let http = reqwest::Client::new();
    let post = |body: Value| http.post(format!("{base}/admin/faults")).json(&body).send();

    // written as a [[drill.faults]] entry, with the same checks and messages
    let r = post(json!({"provider": "nope", "inject": "server_error"})).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("`fault.provider`: unknown provider `nope`"));
    let r = post(json!({"provider": "openai", "inject": "server_error", "rate": 2})).await.unwrap();
    assert!(r.text().await.unwrap().contains("rate must be between 0 and 1"));
    // only JSON, and never from another site
    let r = http.post(format!("{base}/admin/faults")).body("{}").header("content-type", "text/plain").send();
    assert_eq!(r.await.unwrap().status(), 415);
    let r = http
        .post(format!("{base}/admin/faults"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"provider": "openai", "inject": "server_error"}))
        .send();
    assert_eq!(r.await.unwrap().status(), 403);

    let r = post(json!({"provider": "openai", "inject": "server_error", "duration": "1h"})).await.unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_u64().unwrap();
    assert_eq!(created["fault"]["provider"], "openai");
    // in force: OpenAI's answers are 500s, Anthropic serves
    assert_eq!(chat(&base, "chat").await, 200);
    assert!(sim.request_count(Protocol::Openai, None) == 0, "the fault answers instead of OpenAI");
    assert!(gw.router().health().faults.iter().any(|f| f.id == id && f.active));
    let r = http.delete(format!("{base}/admin/faults/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(gw.router().health().faults.iter().all(|f| f.id != id));
    assert_eq!(http.delete(format!("{base}/admin/faults/{id}")).send().await.unwrap().status(), 404);
    assert_eq!(chat(&base, "chat").await, 200);
    assert_eq!(sim.request_count(Protocol::Openai, None), 1, "OpenAI serves again");

    // at most 64 at once; those that ran out give their place back
    for _ in 0..64 {
        let r = post(json!({"provider": "openai", "inject": "server_error", "count": 1})).await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = post(json!({"provider": "openai", "inject": "server_error", "count": 1})).await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(chat(&base, "chat").await, 200); // one request uses up one fault's count
    let r = post(json!({"provider": "openai", "inject": "server_error", "count": 1})).await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    gw.shutdown().await;
}
