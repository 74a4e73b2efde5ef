//! A fleet of routers sharing limits through a real `redis-server`, which these tests start
//! themselves (`scripts/test` installs it; install by hand with `apt-get install -y
//! redis-server`): three routers admit no more than one router's limit; killing Redis mid-load
//! fails no request and shows `degraded`, and the state is shared again once Redis is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "support/redis.rs"]
mod redis_server;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use redis_server::RedisServer;

use switchyard::router::{RouterEvent, SkipReason};
use switchyard::sim::SimServer;
use switchyard::{ChatRequest, Policy, Protocol, Router};

/// The policy of these tests: `state`, then OpenAI (with the `openai` lines in its table and
/// `limits` on its target) and Claude behind it; `defaults` lines added to `[defaults]`.
fn policy_with(sim: &SimServer, state: &str, defaults: &str, openai: &str, limits: &str) -> Policy {
    let limits = if limits.is_empty() { String::new() } else { format!(", limits = {{ {limits} }}") };
    let text = format!(
        r#"
{state}
[defaults]
retry = {{ max_attempts = 1 }}
{defaults}
{openai}{anthropic}[routes.chat]
targets = [
  {{ provider = "openai", model = "gpt-4o-mini"{limits} }},
  {{ provider = "anthropic", model = "claude-haiku-4-5" }},
]
"#,
        openai = support::provider_toml("openai", "openai", &sim.openai_base_url(), openai),
        anthropic = support::provider_toml("anthropic", "anthropic", &sim.anthropic_base_url(), "")
    );
    Policy::from_toml(&text, "inline").unwrap()
}

/// A target limited to `rpm` requests a minute, and an unlimited one behind it; the state as
/// `state` says.
fn policy(sim: &SimServer, state: &str, rpm: u32) -> Policy {
    policy_with(sim, state, "", "", &format!("rpm = {rpm}"))
}

fn redis_state(redis: &RedisServer, fleet: &str, extra: &str) -> String {
    format!(
        "[state]\nbackend = \"redis\"\nurl = \"{}\"\nfleet = \"{fleet}\"\ntimeout = \"500ms\"\n{extra}",
        redis.url()
    )
}

/// Sends `n` requests through each router at once; returns how many each provider served.
async fn load(routers: &[Router], n: usize) -> (usize, usize) {
    let mut tasks = Vec::new();
    for router in routers {
        for i in 0..n {
            let router = router.clone();
            tasks.push(tokio::spawn(async move {
                router.chat("chat", ChatRequest::user(format!("Question {i}"))).await.unwrap().provider().to_owned()
            }));
        }
    }
    let (mut openai, mut anthropic) = (0, 0);
    for t in tasks {
        match t.await.unwrap().as_str() {
            "openai" => openai += 1,
            _ => anthropic += 1,
        }
    }
    (openai, anthropic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_routers_admit_no_more_than_one_routers_limit() {
    let redis = RedisServer::start();
    let sim = support::sim().await;
    let state = redis_state(&redis, "fleet-a", "");
    let routers: Vec<Router> = (0..3).map(|_| Router::new(policy(&sim, &state, 40))).collect();
    let started = Instant::now();
    let (openai, anthropic) = load(&routers, 60).await;
    // 180 requests, 40 a minute fleet-wide: the limited target saw its burst of 40, plus one per
    // 1.5 s the load took (the limit refills), the rest went on to the next target
    let refilled = (started.elapsed().as_secs_f64() / 1.5) as usize;
    assert!((40..=40 + refilled).contains(&openai), "served by the limited target: {openai} (refilled {refilled})");
    assert_eq!(sim.request_count(Protocol::Openai, Some("gpt-4o-mini")), openai);
    assert_eq!(openai + anthropic, 180);
    for r in &routers {
        assert_eq!(r.health().shared_state.status, "ok");
    }
    // each router on its own would have sent 40
    let sim = support::sim().await;
    let alone: Vec<Router> = (0..3).map(|_| Router::new(policy(&sim, "", 40))).collect();
    let (openai, _) = load(&alone, 60).await;
    assert_eq!(openai, 120, "memory state: each router keeps its own limit");
    assert_eq!(alone[0].health().shared_state.status, "memory");
    // another fleet on the same Redis has limits of its own
    let sim = support::sim().await;
    let other = Router::new(policy(&sim, &redis_state(&redis, "fleet-b", ""), 40));
    let (openai, _) = load(std::slice::from_ref(&other), 10).await;
    assert_eq!(openai, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_down_fails_no_request_and_the_state_is_shared_again_when_it_returns() {
    let mut redis = RedisServer::start();
    let sim = support::sim().await;
    let state = redis_state(&redis, "fleet-c", "");
    let router = Router::new(policy(&sim, &state, 1000));
    let mut events = router.subscribe();
    let (openai, _) = load(std::slice::from_ref(&router), 20).await;
    assert_eq!(openai, 20);
    redis.kill();
    // every request still served (`load` fails the test on any error), the limits decided locally
    let (openai, anthropic) = load(std::slice::from_ref(&router), 50).await;
    assert_eq!(openai + anthropic, 50);
    let health = router.health();
    assert_eq!(health.shared_state.status, "degraded", "{:?}", health.shared_state);
    assert!(health.shared_state.error.is_some());
    let mut saw_degraded = false;
    while let Ok(e) = events.try_recv() {
        if let RouterEvent::SharedState { status: "degraded", .. } = e {
            saw_degraded = true;
        }
    }
    assert!(saw_degraded, "no degraded event");
    // back: within a few seconds a request finds it and the state is shared again
    redis.restart();
    let back = support::eventually_async(Duration::from_secs(30), || async {
        router.health().shared_state.status == "ok" || {
            router.chat("chat", ChatRequest::user("Anyone there?")).await.unwrap();
            false
        }
    });
    assert!(back.await, "the state never came back: {:?}", router.health().shared_state);
    assert!(router.health().shared_state.error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_skips_a_limited_target_while_the_state_is_unreachable() {
    let mut redis = RedisServer::start();
    let sim = support::sim().await;
    let state = redis_state(&redis, "fleet-d", "on_state_error = \"fail_closed\"\n");
    let router = Router::new(policy(&sim, &state, 1000));
    assert_eq!(router.chat("chat", ChatRequest::user("Hi")).await.unwrap().provider(), "openai");
    redis.kill();
    let answer = router.chat("chat", ChatRequest::user("Hi")).await.unwrap();
    assert_eq!(answer.provider(), "anthropic");
    assert_eq!(answer.attempts[0].skip_reason, Some(SkipReason::SharedStateUnavailable));
}

#[test]
fn the_state_table_is_checked_and_its_password_never_shows() {
    let base =
        "[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]\n[providers.openai]\nauth = \"none\"\n";
    let p = Policy::from_toml(
        &format!(
            "[state]\nbackend = \"redis\"\nurl = \"redis://app:s3cret@cache.internal:6379/2\"\nfleet = \"prod\"\n{base}"
        ),
        "p.toml",
    )
    .unwrap();
    assert_eq!(p.state.fleet, "prod");
    assert!(!format!("{:?}", p.state).contains("s3cret"));
    assert!(!serde_json::to_string(&p.state).unwrap().contains("s3cret"));
    for (state, why) in [
        ("backend = \"redis\"\n", "needs its address"),
        ("backend = \"redis\"\nurl = \"http://cache:6379\"\n", "not a Redis address"),
        ("backend = \"redis\"\nurl_env = \"SWITCHYARD_TEST_UNSET_REDIS_URL\"\n", "is not set"),
        ("backend = \"redis\"\nurl = \"redis://h\"\nfleet = \"a b\"\n", "fleet name"),
        ("backend = \"redis\"\nurl = \"redis://h\"\ntimeout = \"10s\"\n", "1ms to 5s"),
        ("backend = \"etcd\"\n", "etcd"),
    ] {
        let e = Policy::from_toml(&format!("[state]\n{state}{base}"), "p.toml").unwrap_err().to_string();
        assert!(e.contains(why), "{state}: {e}");
    }
}

/// How many routers listen on the fleet's breaker channel.
async fn listeners(redis: &RedisServer, fleet: &str) -> i64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) =
        redis::cmd("PUBSUB").arg("NUMSUB").arg(format!("{fleet}:breakers")).query_async(&mut c).await.unwrap();
    n
}

/// Waits (10 s at most) until `n` routers listen on the fleet's breaker channel.
async fn subscribed(redis: &RedisServer, fleet: &str, n: i64) {
    let all = support::eventually_async(Duration::from_secs(10), || async { listeners(redis, fleet).await >= n });
    assert!(all.await, "the routers never subscribed");
}

fn breaker_of(router: &Router, provider: &str, model: &str) -> switchyard::router::BreakerState {
    let health = router.health();
    health.targets.iter().find(|t| t.provider == provider && t.model == model).unwrap().state.breaker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_in_one_router_is_honoured_by_the_others_and_one_probe_goes_out() {
    use switchyard::router::BreakerState;
    let redis = RedisServer::start();
    let sim = support::sim().await;
    let state = redis_state(&redis, "fleet-e", "");
    let breaker = r#"breaker = { consecutive_failures = 1, cooldown = "1s", max_cooldown = "1s" }"#;
    let routers: Vec<Router> = (0..3).map(|_| Router::new(policy_with(&sim, &state, breaker, "", ""))).collect();
    subscribed(&redis, "fleet-e", 3).await;
    // one 500 opens the first router's breaker (and fails over)
    sim.add_fault(switchyard::sim::FaultRule::new(Protocol::Openai, switchyard::sim::Fault::status(500)).first(1));
    assert_eq!(routers[0].chat("chat", ChatRequest::user("Hi")).await.unwrap().provider(), "anthropic");
    let opened = Instant::now();
    assert_eq!(breaker_of(&routers[0], "openai", "gpt-4o-mini"), BreakerState::Open);
    // the others honour it within 100 ms
    let honoured = support::eventually(Duration::from_millis(100), || {
        routers[1..].iter().all(|r| breaker_of(r, "openai", "gpt-4o-mini") == BreakerState::Open)
    });
    assert!(honoured.await, "not seen within 100 ms");
    let seen = opened.elapsed();
    assert!(seen < Duration::from_millis(100), "{seen:?}");
    // and send it nothing
    sim.clear_requests();
    for r in &routers[1..] {
        assert_eq!(r.chat("chat", ChatRequest::user("Hi")).await.unwrap().provider(), "anthropic");
    }
    // after the cooldown, one probe goes out fleet-wide, and closes every router's breaker
    let closed = support::eventually(Duration::from_secs(15), || {
        routers.iter().all(|r| breaker_of(r, "openai", "gpt-4o-mini") == BreakerState::Closed)
    });
    assert!(closed.await, "the breakers never closed");
    let probes = sim
        .requests()
        .iter()
        .filter(|r| r.protocol == Protocol::Openai && r.body.to_string().contains(switchyard::router::PROBE_PROMPT))
        .count();
    assert_eq!(probes, 1, "one probe for the fleet");
    assert_eq!(routers[2].chat("chat", ChatRequest::user("Hi")).await.unwrap().provider(), "openai");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_told_to_one_router_pauses_the_target_in_all() {
    let redis = RedisServer::start();
    let sim = support::sim().await;
    let state = redis_state(&redis, "fleet-f", "");
    let routers: Vec<Router> = (0..2).map(|_| Router::new(policy(&sim, &state, 100_000))).collect();
    subscribed(&redis, "fleet-f", 2).await;
    sim.add_fault(
        switchyard::sim::FaultRule::new(Protocol::Openai, switchyard::sim::Fault::status_retry_after(429, "30"))
            .first(1),
    );
    assert_eq!(routers[0].chat("chat", ChatRequest::user("Hi")).await.unwrap().provider(), "anthropic");
    let paused = |r: &Router| {
        r.health().targets.iter().any(|t| t.provider == "openai" && t.state.paused_for_ms.is_some_and(|ms| ms > 20_000))
    };
    assert!(support::eventually(Duration::from_secs(5), || paused(&routers[1])).await, "the other router never paused");
    // the other router sends OpenAI nothing until the pause is over
    let answer = routers[1].chat("chat", ChatRequest::user("Hi")).await.unwrap();
    assert_eq!(answer.provider(), "anthropic");
    assert_eq!(answer.attempts[0].skip_reason, Some(SkipReason::Paused));
    assert_eq!(sim.request_count(Protocol::Openai, None), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_router_shows_the_policy_each_member_of_the_fleet_runs() {
    let redis = RedisServer::start();
    let sim = support::sim().await;
    let state = redis_state(&redis, "fleet-g", "");
    let a = Router::new(policy(&sim, &state, 1000));
    let b = Router::new(policy(&sim, &state, 1000));
    // b moves on to a new policy, then gets one it rejects
    b.apply(policy(&sim, &state, 2000));
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[routes.x]\n").unwrap();
    b.reload_from(&broken).unwrap_err();
    let seen = support::eventually(Duration::from_secs(20), || {
        let fleet = a.health().fleet;
        let other = fleet.iter().find(|m| !m.this);
        fleet.len() == 2 && other.is_some_and(|m| m.policy_version == 2 && m.last_reload_error.is_some())
    });
    assert!(seen.await, "a never saw b's policy: {:#?}", a.health().fleet);
    let fleet = a.health().fleet;
    assert!(fleet[0].this && fleet[0].policy_version == 1, "{fleet:#?}");
    assert_ne!(fleet[0].policy_hash, fleet[1].policy_hash, "{fleet:#?}");
    assert!(fleet[1].last_reload_error.as_deref().unwrap_or_default().contains("broken.toml"), "{fleet:#?}");
    // a memory router has no fleet to show
    let alone = Router::new(policy(&sim, "", 1000));
    assert!(alone.health().fleet.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_cap_holds_for_the_fleet_and_its_slots_come_back() {
    let redis = RedisServer::start();
    let sim = support::sim().await;
    let state = redis_state(&redis, "fleet-h", "");
    // the limited target takes 2 requests at a time, fleet-wide, and answers slowly
    let make = || Router::new(policy_with(&sim, &state, "", "", "concurrency = 2"));
    let routers = [make(), make()];
    let delay = switchyard::duration::DurationStr::new(Duration::from_secs(2));
    sim.add_fault(
        switchyard::sim::FaultRule::new(Protocol::Openai, switchyard::sim::Fault::Latency { delay }).first(2),
    );
    let (openai, anthropic) = load(&routers, 3).await;
    assert_eq!((openai, anthropic), (2, 4), "two slots for the fleet, not two per router");
    // the slots came back with the answers (their release is asynchronous: until then the
    // fallback serves)
    let back = support::eventually_async(Duration::from_secs(10), || async { load(&routers[1..], 1).await.0 == 1 });
    assert!(back.await, "the fleet's slots never came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spending_budget_spent_by_one_router_is_spent_for_all() {
    let redis = RedisServer::start();
    let sim = support::sim().await;
    let state = redis_state(&redis, "fleet-i", "");
    let budget = r#"budget = { usd = 0.00001, per = "1h" }"#;
    let a = Router::new(policy_with(&sim, &state, "", budget, ""));
    let b = Router::new(policy_with(&sim, &state, "", budget, ""));
    // a spends OpenAI's budget for the hour
    while a.chat("chat", ChatRequest::user("Hello there, how are you today?")).await.unwrap().provider() == "openai" {}
    // b, which spent nothing, learns the fleet's total and skips OpenAI too
    let spent = |r: &Router| r.health().budgets.iter().find(|x| x.name == "openai").map_or(0.0, |x| x.spent_usd);
    let learned = support::eventually(Duration::from_secs(20), || spent(&b) >= 0.00001);
    assert!(learned.await, "b never learned the fleet's spend: {}", spent(&b));
    let answer = b.chat("chat", ChatRequest::user("Hi")).await.unwrap();
    assert_eq!(answer.provider(), "anthropic");
    assert_eq!(answer.attempts[0].skip_reason, Some(SkipReason::Budget));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_providers_headers_say_to_one_router_the_others_know() {
    let redis = RedisServer::start();
    let sim = support::sim().await;
    sim.set_rate_limit(Protocol::Openai, "gpt-4o-mini", 3, Duration::from_secs(60));
    let state = redis_state(&redis, "fleet-j", "");
    let a = Router::new(policy(&sim, &state, 100_000));
    let b = Router::new(policy(&sim, &state, 100_000));
    subscribed(&redis, "fleet-j", 2).await;
    // a spends the provider's three requests; its headers say none is left
    for _ in 0..3 {
        assert_eq!(a.chat("chat", ChatRequest::user("Hi")).await.unwrap().provider(), "openai");
    }
    let known = |r: &Router| {
        r.health()
            .targets
            .iter()
            .any(|t| t.provider == "openai" && t.state.provider_budget.is_some_and(|q| q.requests_remaining == Some(0)))
    };
    assert!(support::eventually(Duration::from_secs(5), || known(&b)).await, "b never heard what the headers said");
    // b sends OpenAI nothing, and no 429 ever comes back
    let answer = b.chat("chat", ChatRequest::user("Hi")).await.unwrap();
    assert_eq!(answer.provider(), "anthropic");
    assert_eq!(answer.attempts[0].skip_reason, Some(SkipReason::ProviderBudget));
    assert_eq!(sim.request_count(Protocol::Openai, None), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_reads_each_status_page_once_and_every_router_knows_what_it_says() {
    use switchyard::sim::StatusPageScript;
    use switchyard::status_page::Severity;
    let redis = RedisServer::start();
    let sim = support::sim().await;
    sim.set_status_page(
        "openai",
        StatusPageScript::operational().incident("Elevated error rates", "major", "2026-12-04T12:03:00Z"),
    );
    let state = redis_state(&redis, "fleet-k", "");
    let page = format!("status_page = \"{}\"\nstatus_interval = \"1s\"\n", sim.status_page_url("openai"));
    let routers: Vec<Router> = (0..2).map(|_| Router::new(policy_with(&sim, &state, "", &page, ""))).collect();
    let major = |r: &Router| {
        r.health().status_pages.iter().any(|p| p.summary.as_ref().is_some_and(|s| s.indicator == Severity::Major))
    };
    let known = support::eventually(Duration::from_secs(15), || routers.iter().all(major));
    assert!(known.await, "not every router knows the page");
    // one reader for the fleet: about one read a second, not one per router
    let before = sim.status_page_reads("openai");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reads = sim.status_page_reads("openai") - before;
    assert!(reads <= 4, "{reads} reads in 3 s by two routers polling every second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_password_never_shows_in_health_or_errors() {
    let sim = support::sim().await;
    // nothing listens there: every call fails, and says why
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let state = format!(
        "[state]\nbackend = \"redis\"\nurl = \"redis://app:s3cret-pw@127.0.0.1:{closed}\"\nfleet = \"fleet-l\"\n"
    );
    let router = Router::new(policy(&sim, &state, 1000));
    assert_eq!(router.chat("chat", ChatRequest::user("Hi")).await.unwrap().provider(), "openai");
    let health = router.health();
    assert_eq!(health.shared_state.status, "degraded");
    let shown = serde_json::to_string(&health).unwrap();
    assert!(shown.contains(&format!("redis://127.0.0.1:{closed}")), "{shown}");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(!format!("{:?}", router.policy().state).contains("s3cret-pw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_shares_its_state_over_tls() {
    let redis = RedisServer::start_tls();
    let sim = support::sim().await;
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/cert-a.pem");
    let state = format!(
        "[state]\nbackend = \"redis\"\nurl = \"rediss://127.0.0.1:{}\"\ntls_ca_file = \"{ca}\"\nfleet = \"fleet-tls\"\ntimeout = \"500ms\"\n",
        redis.tls_port.unwrap()
    );
    let routers: Vec<Router> = (0..2).map(|_| Router::new(policy(&sim, &state, 10))).collect();
    let started = Instant::now();
    let (openai, _) = load(&routers, 20).await;
    let refilled = (started.elapsed().as_secs_f64() / 6.0) as usize;
    assert!((10..=10 + refilled).contains(&openai), "{openai}");
    assert_eq!(routers[0].health().shared_state.status, "ok");
    // a server whose certificate the router does not trust is no shared state: degraded, and
    // every request still served
    let wrong = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/cert-b.pem");
    let untrusting = Router::new(policy(&sim, &state.replace(ca, wrong), 10));
    let (openai, anthropic) = load(std::slice::from_ref(&untrusting), 5).await;
    assert_eq!(openai + anthropic, 5);
    assert_eq!(untrusting.health().shared_state.status, "degraded");
}
