//! Providers' status pages (`status_page` on a provider): read in the background from the
//! simulator's scriptable Statuspage summary; shown in `health()`, `/admin/state` and events;
//! named in the errors of a provider with an open incident; with `on_incident = "deprioritize"`,
//! a major outage moves the provider's targets to the back of the order, never out of it. A page
//! that cannot be read never affects a request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::router::{AttemptOutcome, RouterEvent};
use switchyard::sim::{Fault, FaultRule, SimServer, StatusPageScript};
use switchyard::status_page::{MAX_SUMMARY_BYTES, Severity};
use switchyard::{ChatRequest, ErrorClass, Policy, Protocol, Router};

/// OpenAI then Claude, each provider with its own simulated status page.
fn policy(sim: &SimServer, on_incident: &str) -> String {
    format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
{openai}{anthropic}[routes.chat]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "anthropic", model = "claude-haiku-4-5" }}]
[routes.openai-only]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}]
"#,
        openai = support::provider_toml(
            "openai",
            "openai",
            &sim.openai_base_url(),
            &format!("status_page = \"{}\"\nstatus_interval = \"1s\"\n{on_incident}", sim.status_page_url("openai"))
        ),
        anthropic = support::provider_toml(
            "anthropic",
            "anthropic",
            &sim.anthropic_base_url(),
            &format!("status_page = \"{}\"", sim.status_page_url("anthropic"))
        ),
    )
}

fn router(sim: &SimServer, on_incident: &str) -> Router {
    Router::new(Policy::from_toml(&policy(sim, on_incident), "inline").unwrap())
}

fn major_outage() -> StatusPageScript {
    StatusPageScript::operational().incident("Elevated error rates", "major", "2026-12-04T12:03:00Z")
}

const NOTE: &str = "openai reports an incident: Elevated error rates (major outage since 12:03 UTC)";

async fn served_by(router: &Router) -> String {
    router.chat("chat", ChatRequest::user("Hello!")).await.unwrap().provider().to_owned()
}

#[tokio::test]
async fn a_major_outage_shows_in_health_and_events_and_in_the_error_text() {
    let sim = support::sim().await;
    let router = router(&sim, "");
    let mut events = router.subscribe();
    sim.set_status_page("openai", major_outage());
    router.refresh_status_pages().await;
    let health = router.health();
    let openai = health.status_pages.iter().find(|p| p.provider == "openai").unwrap();
    let summary = openai.summary.as_ref().unwrap();
    assert_eq!(summary.indicator, Severity::Major);
    assert_eq!(summary.incidents[0].name, "Elevated error rates");
    assert!(openai.url.ends_with("/status/openai/api/v2/summary.json"), "{}", openai.url);
    assert!(openai.updated_at.is_some() && openai.error.is_none(), "{openai:?}");
    let anthropic = health.status_pages.iter().find(|p| p.provider == "anthropic").unwrap();
    assert_eq!(anthropic.summary.as_ref().unwrap().indicator, Severity::None);
    // the change was an event (from the poller's read or this one)
    let mut saw = false;
    while let Ok(e) = events.try_recv() {
        if let RouterEvent::StatusPage { provider, indicator, incidents, .. } = e
            && provider == "openai"
            && indicator == Some(Severity::Major)
        {
            assert_eq!(incidents, ["Elevated error rates (major outage since 12:03 UTC)"]);
            saw = true;
        }
    }
    assert!(saw, "no status page event");
    // an error from that provider says so, in its text and a field of its own
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)).model("gpt-4o-mini"));
    let err = router.chat("openai-only", ChatRequest::user("Hello!")).await.unwrap_err();
    let failure = err.failure().unwrap();
    assert_eq!(failure.class, ErrorClass::ServerError);
    assert!(failure.message.ends_with(NOTE), "{}", failure.message);
    assert_eq!(failure.provider_incidents.len(), 1);
    assert_eq!(failure.provider_incidents[0].provider, "openai");
    assert_eq!(failure.provider_incidents[0].incident.name, "Elevated error rates");
    // once resolved, errors are plain again
    sim.set_status_page("openai", StatusPageScript::operational());
    router.refresh_status_pages().await;
    let err = router.chat("openai-only", ChatRequest::user("Hello!")).await.unwrap_err();
    assert!(!err.to_string().contains("reports an incident"), "{err}");
    assert!(err.failure().unwrap().provider_incidents.is_empty());
}

#[tokio::test]
async fn a_refusal_at_an_open_breaker_names_the_incident_too() {
    // in an outage most requests meet the open breaker, not the provider's error
    let sim = support::sim().await;
    let breaker = "[defaults]\nbreaker = { consecutive_failures = 1, cooldown = \"60s\", max_cooldown = \"60s\" }\n";
    let text = policy(&sim, "").replace("[defaults]\n", breaker);
    let router = Router::new(Policy::from_toml(&text, "inline").unwrap());
    sim.set_status_page("openai", major_outage());
    router.refresh_status_pages().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)));
    let opened = router.chat("openai-only", ChatRequest::user("Hello!")).await.unwrap_err();
    assert!(opened.to_string().ends_with(NOTE), "{opened}");
    // OpenAI is skipped at its breaker; Claude fails on its own, and has no incident
    sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::status(503)));
    let err = router.chat("chat", ChatRequest::user("Hello!")).await.unwrap_err();
    let failure = err.failure().unwrap();
    let outcomes: Vec<_> = failure.attempts.iter().map(|a| (a.provider.as_str(), a.outcome)).collect();
    assert_eq!(outcomes, [("openai", AttemptOutcome::Skipped), ("anthropic", AttemptOutcome::Error)]);
    assert!(failure.message.ends_with(NOTE), "{}", failure.message);
    assert_eq!(failure.provider_incidents.len(), 1);
}

#[tokio::test]
async fn an_outage_reorders_a_route_only_when_on_incident_says_deprioritize() {
    let sim = support::sim().await;
    sim.set_status_page("openai", major_outage());
    // reported only: the order stays
    let reporting = router(&sim, "");
    reporting.refresh_status_pages().await;
    assert_eq!(served_by(&reporting).await, "openai");
    // deprioritized: Claude first while the outage lasts
    let deprioritizing = router(&sim, r#"on_incident = "deprioritize""#);
    deprioritizing.refresh_status_pages().await;
    assert_eq!(served_by(&deprioritizing).await, "anthropic");
    // moved back, never away: when Claude fails, OpenAI still serves
    let claude_down = sim.add_fault(FaultRule::new(Protocol::Anthropic, Fault::status(529)).first(1));
    let answer = deprioritizing.chat("chat", ChatRequest::user("Hello!")).await.unwrap();
    assert_eq!(answer.provider(), "openai");
    let order: Vec<(&str, AttemptOutcome)> = answer.attempts.iter().map(|a| (a.provider.as_str(), a.outcome)).collect();
    assert_eq!(order, [("anthropic", AttemptOutcome::Error), ("openai", AttemptOutcome::Ok)]);
    sim.remove_fault(claude_down);
    // a minor incident is no outage: the order stays
    sim.set_status_page(
        "openai",
        StatusPageScript::operational().incident("Slow fine-tuning", "minor", "2026-12-04T09:00:00Z"),
    );
    deprioritizing.refresh_status_pages().await;
    assert_eq!(served_by(&deprioritizing).await, "openai");
    // resolved: the written order again
    sim.set_status_page("openai", StatusPageScript::operational());
    deprioritizing.refresh_status_pages().await;
    assert_eq!(served_by(&deprioritizing).await, "openai");
}

#[tokio::test]
async fn a_page_that_cannot_be_read_never_affects_a_request() {
    let sim = support::sim().await;
    let router = router(&sim, r#"on_incident = "deprioritize""#);
    sim.set_status_page("openai", major_outage());
    router.refresh_status_pages().await;
    assert_eq!(served_by(&router).await, "anthropic");
    // a broken page keeps what was read last, says why, and still routes
    for (script, why) in [
        (StatusPageScript::failing(502, "<html>Bad gateway</html>"), "HTTP 502"),
        (StatusPageScript::failing(200, "{\"page\": \"truncated"), "not a Statuspage summary"),
        (StatusPageScript::operational().delayed(Duration::from_secs(30)), "did not answer within 1s"),
        (StatusPageScript::failing(200, &" ".repeat(MAX_SUMMARY_BYTES + 1)), "larger than 1048576 bytes"),
    ] {
        sim.set_status_page("openai", script);
        router.refresh_status_pages().await;
        let page = router.health().status_pages.into_iter().find(|p| p.provider == "openai").unwrap();
        let error = page.error.clone().unwrap_or_default();
        assert!(error.contains(why), "{error}");
        assert_eq!(page.summary.unwrap().indicator, Severity::Major, "the last good read stays");
        assert_eq!(served_by(&router).await, "anthropic");
    }
    // a page nobody serves: a closed port
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let text = policy(&sim, "").replace(&sim.status_page_url("openai"), &format!("http://{closed}/status"));
    let router = Router::new(Policy::from_toml(&text, "inline").unwrap());
    router.refresh_status_pages().await;
    let page = router.health().status_pages.into_iter().find(|p| p.provider == "openai").unwrap();
    assert!(page.error.clone().unwrap_or_default().contains("cannot reach"), "{page:?}");
    assert!(page.summary.is_none());
    assert_eq!(served_by(&router).await, "openai");
}

#[tokio::test]
async fn the_gateway_shows_pages_in_admin_state_and_incidents_in_error_bodies() {
    let sim = support::sim().await;
    sim.set_status_page("openai", major_outage());
    let (gateway, base, _dir) = support::gateway(&policy(&sim, "")).await;
    gateway.router().refresh_status_pages().await;
    let client = reqwest::Client::new();
    let state: Value = client.get(format!("{base}/admin/state")).send().await.unwrap().json().await.unwrap();
    let pages = state["status_pages"].as_array().unwrap();
    let openai = pages.iter().find(|p| p["provider"] == "openai").unwrap();
    assert_eq!(openai["summary"]["indicator"], "major", "{openai}");
    assert_eq!(openai["summary"]["incidents"][0]["name"], "Elevated error rates", "{openai}");
    assert_eq!(openai["summary"]["degraded_components"][0]["name"], "API", "{openai}");
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)));
    for (path, body) in [
        ("/v1/chat/completions", json!({"model": "openai-only", "messages": [{"role": "user", "content": "Hi"}]})),
        (
            "/v1/messages",
            json!({"model": "openai-only", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}),
        ),
    ] {
        let r = client.post(format!("{base}{path}")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 502, "{path}: a server error upstream is a bad gateway");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"]["message"].as_str().unwrap().ends_with(NOTE), "{v}");
        // (an Anthropic error body has the extension beside `error`)
        let extension = if v["switchyard"].is_object() { &v["switchyard"] } else { &v["error"]["switchyard"] };
        let incident = &extension["provider_incidents"][0];
        assert_eq!(incident["provider"], "openai", "{v}");
        assert_eq!(incident["name"], "Elevated error rates", "{v}");
        assert_eq!(incident["impact"], "major", "{v}");
        assert_eq!(incident["started_at"], "2026-12-04T12:03:00Z", "{v}");
    }
}

#[tokio::test]
async fn the_poller_reads_on_its_own_every_interval() {
    let sim = support::sim().await;
    let router = router(&sim, "");
    let mut events = router.subscribe();
    // no refresh here: the background poller (every second) finds the outage
    sim.set_status_page("openai", major_outage());
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.recv().await {
                Ok(RouterEvent::StatusPage { provider, indicator: Some(Severity::Major), .. })
                    if provider == "openai" =>
                {
                    return;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert!(found.is_ok(), "the poller never reported the outage");
    // and a reload that keeps the page keeps what it read
    router.apply(Policy::from_toml(&policy(&sim, r#"on_incident = "deprioritize""#), "inline").unwrap());
    let page = router.health().status_pages.into_iter().find(|p| p.provider == "openai").unwrap();
    assert_eq!(page.summary.unwrap().indicator, Severity::Major);
    assert_eq!(served_by(&router).await, "anthropic");
}

#[tokio::test]
async fn a_shorter_interval_applies_at_once_and_a_retired_page_is_read_no_more() {
    let sim = support::sim().await;
    let hourly = policy(&sim, "").replace("status_interval = \"1s\"", "status_interval = \"1h\"");
    let router = Router::new(Policy::from_toml(&hourly, "inline").unwrap());
    let first = support::eventually(Duration::from_secs(10), || sim.status_page_reads("openai") > 0);
    assert!(first.await, "the first read, when the policy was applied");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sim.status_page_reads("openai"), 1, "one read, then the hour");
    let read = sim.status_page_reads("openai");
    // the poller waits out the hour... until a reload says every second
    router.apply(Policy::from_toml(&policy(&sim, ""), "inline").unwrap());
    let again = support::eventually(Duration::from_secs(10), || sim.status_page_reads("openai") >= read + 2);
    assert!(again.await, "the new interval was not taken: {} reads", sim.status_page_reads("openai"));
    // a policy without the page stops its poller
    let without = policy(&sim, "").replace(&format!("status_page = \"{}\"\n", sim.status_page_url("openai")), "");
    router.apply(Policy::from_toml(&without, "inline").unwrap());
    assert!(router.health().status_pages.iter().all(|p| p.provider != "openai"));
    // (a read in flight when it was retired may still land; a live poller would read twice more)
    let last = sim.status_page_reads("openai");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(sim.status_page_reads("openai") <= last + 1, "a retired page was read again");
}

#[test]
fn policies_enable_pages_by_address_or_from_the_profile() {
    let base = "[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]\n";
    let p = Policy::from_toml(&format!("[providers.openai]\nauth = \"none\"\nstatus_page = true\n{base}"), "p.toml")
        .unwrap();
    let page = p.provider("openai").unwrap().status_page.clone().unwrap();
    assert_eq!(page.url, "https://status.openai.com/api/v2/summary.json");
    assert_eq!(page.interval, Duration::from_secs(60));
    let p = Policy::from_toml(&format!("[providers.openai]\nauth = \"none\"\n{base}"), "p.toml").unwrap();
    assert!(p.provider("openai").unwrap().status_page.is_none(), "off unless enabled");
    for (text, key, why) in [
        (
            "[providers.groq]\nauth = \"none\"\nstatus_page = true\n",
            "providers.groq.status_page",
            "names no status page",
        ),
        (
            "[providers.openai]\nauth = \"none\"\nstatus_page = \"status.openai.com\"\n",
            "providers.openai.status_page",
            "not an http(s) URL",
        ),
        (
            "[providers.openai]\nauth = \"none\"\nstatus_page = true\nstatus_interval = \"100ms\"\n",
            "providers.openai.status_interval",
            "once a second",
        ),
        (
            "[providers.openai]\nauth = \"none\"\nstatus_page = \"https://user:pw@status.example.com\"\n",
            "providers.openai.status_page",
            "no credentials",
        ),
        (
            "[providers.openai]\nauth = \"none\"\nstatus_page = true\non_incident = \"panic\"\n",
            "providers.openai.on_incident",
            "deprioritize",
        ),
    ] {
        let e = Policy::from_toml(&format!("{text}{base}"), "p.toml").unwrap_err().to_string();
        assert!(e.contains(key) || e.contains(why), "{text}: {e}");
        assert!(e.contains(why), "{text}: {e}");
    }
    let p = Policy::from_toml(
        &format!("[providers.openai]\nauth = \"none\"\non_incident = \"deprioritize\"\n{base}"),
        "p.toml",
    )
    .unwrap();
    assert!(p.warnings.iter().any(|w| w.to_string().contains("without `status_page`")), "{:?}", p.warnings);
}
