//! Hot reload with the real watcher on a real directory: every way of saving, bad edits, state
//! that survives, no leak.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::{Scripted, Step};
use switchyard::router::{BreakerState, RouterEvent, SkipReason};
use switchyard::{ChatRequest, Policy, Router};

fn policy_text(model: &str) -> String {
    format!(
        "[providers.p]\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[routes.chat]\ntargets = [{{ provider = \"p\", model = \"{model}\" }}]\n"
    )
}

fn router_for(path: &Path) -> (Router, std::sync::Arc<Scripted>) {
    let p = Scripted::new("p");
    let r = Router::builder(Policy::from_file(path).unwrap()).provider("p", p.clone()).build();
    (r, p)
}

/// Sends requests until one is served by `model`, for at most 5 s.
async fn served_by(r: &Router, model: &str) -> bool {
    support::eventually_async(Duration::from_secs(5), || async {
        r.chat("chat", ChatRequest::user("hi")).await.is_ok_and(|ok| ok.model() == model)
    })
    .await
}

#[tokio::test]
async fn in_place_write_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy_text("v1")).unwrap();
    let (r, _) = router_for(&path);
    let _w = r.watch(&path).unwrap();
    assert!(served_by(&r, "v1").await);
    std::fs::write(&path, policy_text("v2")).unwrap();
    assert!(served_by(&r, "v2").await);
    assert_eq!(r.health().policy_version, 2);
}

#[tokio::test]
async fn write_to_temp_then_rename_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy_text("v1")).unwrap();
    let (r, _) = router_for(&path);
    let _w = r.watch(&path).unwrap();
    let tmp = dir.path().join(".policy.toml.swp");
    std::fs::write(&tmp, policy_text("v2")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(served_by(&r, "v2").await);
}

#[tokio::test]
async fn delete_and_recreate_is_picked_up_and_a_missing_file_keeps_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy_text("v1")).unwrap();
    let (r, _) = router_for(&path);
    let _w = r.watch(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    // the watcher says nothing when the file is gone (it keeps the policy): give it twenty times
    // its debounce to do otherwise
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(served_by(&r, "v1").await, "a file that disappears keeps the last good policy");
    assert_eq!(r.health().policy_version, 1);
    std::fs::write(&path, policy_text("v2")).unwrap();
    assert!(served_by(&r, "v2").await);
}

#[cfg(unix)]
#[tokio::test]
async fn a_configmap_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("..2026_11_25_v1")).unwrap();
    std::fs::write(d.join("..2026_11_25_v1/policy.toml"), policy_text("v1")).unwrap();
    symlink("..2026_11_25_v1", d.join("..data")).unwrap();
    symlink("..data/policy.toml", d.join("policy.toml")).unwrap();
    let path = d.join("policy.toml");
    let (r, _) = router_for(&path);
    let _w = r.watch(&path).unwrap();
    // what the kubelet does: new dir, new symlink, atomic rename over `..data`
    std::fs::create_dir(d.join("..2026_11_25_v2")).unwrap();
    std::fs::write(d.join("..2026_11_25_v2/policy.toml"), policy_text("v2")).unwrap();
    symlink("..2026_11_25_v2", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    std::fs::remove_dir_all(d.join("..2026_11_25_v1")).unwrap();
    assert!(served_by(&r, "v2").await);
}

#[tokio::test]
async fn a_bad_edit_is_rejected_and_reported_until_a_good_one_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy_text("v1")).unwrap();
    let (r, _) = router_for(&path);
    let mut events = r.subscribe();
    let _w = r.watch(&path).unwrap();
    std::fs::write(&path, "[routes.chat]\ntargets = [{ provider = \"p\", modle = \"x\" }]\n").unwrap();
    let rejected = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(RouterEvent::PolicyRejected { error }) = events.recv().await {
                return error;
            }
        }
    })
    .await
    .unwrap();
    assert!(rejected.contains("policy.toml:2:") && rejected.contains("modle"), "{rejected}");
    let h = r.health();
    assert_eq!(h.policy_version, 1);
    assert!(h.last_reload_error.as_deref().is_some_and(|e| e.contains("modle")));
    assert!(served_by(&r, "v1").await);
    // an empty (truncated) file is rejected too: its own error replaces the first one
    std::fs::write(&path, "").unwrap();
    let rejected_too = support::eventually(Duration::from_secs(5), || {
        r.health().last_reload_error.as_deref().is_some_and(|e| !e.contains("modle"))
    });
    assert!(rejected_too.await, "{:?}", r.health().last_reload_error);
    assert!(served_by(&r, "v1").await);
    std::fs::write(&path, policy_text("v2")).unwrap();
    assert!(served_by(&r, "v2").await);
    assert_eq!(r.health().last_reload_error, None);
}

#[tokio::test]
async fn explicit_reload_and_events_describe_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy_text("v1")).unwrap();
    let (r, _) = router_for(&path);
    let mut events = r.subscribe();
    assert_eq!(r.reload().unwrap(), switchyard::router::ReloadOutcome::Unchanged);
    std::fs::write(&path, policy_text("v2")).unwrap();
    assert_eq!(r.reload().unwrap(), switchyard::router::ReloadOutcome::Applied { version: 2 });
    let Ok(RouterEvent::PolicyApplied { version, hash, changes }) = events.recv().await else {
        panic!("expected PolicyApplied")
    };
    assert_eq!(version, 2);
    assert_eq!(hash, r.health().policy_hash);
    assert!(changes.contains(&"route chat: target p/v2 added".to_owned()), "{changes:?}");
    assert!(changes.contains(&"route chat: target p/v1 removed".to_owned()), "{changes:?}");
}

const STATEFUL: &str = r#"
[providers.p]
protocol = "openai"
base_url = "http://127.0.0.1:9/v1"
[defaults]
retry = { max_attempts = 1, retry_after_cap = "10ms" }
[routes.chat]
targets = [{ provider = "p", model = "a", breaker = { consecutive_failures = 2, cooldown = "60s" } }, { provider = "p", model = "b", limits = { rpm = RPM } }]
[routes.other]
targets = [{ provider = "p", model = "OTHER" }]
"#;

fn stateful(rpm: u32, other: &str) -> Policy {
    STATEFUL.replace("RPM", &rpm.to_string()).replace("OTHER", other).parse().unwrap()
}

#[tokio::test]
async fn breaker_state_and_limiter_budgets_survive_an_unrelated_edit_and_a_changed_quota_rebuilds() {
    let p = Scripted::new("p");
    let r = Router::builder(stateful(1, "x")).provider("p", p.clone()).build();
    p.script(
        "a",
        [Step::Fail(switchyard::ErrorClass::ServerError, 500), Step::Fail(switchyard::ErrorClass::ServerError, 500)],
    );
    r.chat("chat", ChatRequest::user("1")).await.unwrap(); // a fails, b serves (rpm budget now spent)
    r.chat("chat", ChatRequest::user("2")).await.unwrap_err(); // a fails again: opens; b is rate limited
    let open = |r: &Router| r.health().targets.iter().find(|t| t.model == "a").map(|t| t.state.breaker);
    assert_eq!(open(&r), Some(BreakerState::Open));
    // an unrelated edit keeps both the open breaker and b's spent budget
    r.apply(stateful(1, "y"));
    assert_eq!(open(&r), Some(BreakerState::Open));
    let err = r.chat("chat", ChatRequest::user("3")).await.unwrap_err();
    let reasons: Vec<_> = err.attempts().iter().map(|a| a.skip_reason.clone()).collect();
    assert_eq!(reasons, vec![Some(SkipReason::BreakerOpen), Some(SkipReason::RateLimit)]);
    // a changed quota rebuilds b's limiter
    r.apply(stateful(5, "y"));
    let ok = r.chat("chat", ChatRequest::user("4")).await.unwrap();
    assert_eq!(ok.model(), "b");
    assert_eq!(open(&r), Some(BreakerState::Open));
    assert_eq!(p.calls("a"), 2);
}

#[tokio::test]
async fn thousands_of_reloads_do_not_grow_the_state() {
    let p = Scripted::new("p");
    let r = Router::builder(stateful(1, "x")).provider("p", p.clone()).build();
    let policies: Vec<Policy> = (0..50).map(|i| stateful(1 + i % 3, &format!("m{i}"))).collect();
    for i in 0..3000 {
        r.apply(policies[i % policies.len()].clone());
        if i % 100 == 0 {
            r.chat("other", ChatRequest::user("hi")).await.unwrap();
        }
    }
    // one provider; targets a, b and the one `other` target of the policy in force
    let health = r.health();
    assert_eq!((health.providers.len(), health.targets.len()), (1, 3));
    assert_eq!(r.health().policy_version, 3001);
}
