//! Prompt-cache affinity: on a load-balanced route with `cache_affinity = true`, requests that
//! share a cacheable prefix (up to the last cache mark, or the system prompt and tools) go to the
//! same target while it is healthy, and all move together to one other target when it is not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use switchyard::chat::{CacheControl, ContentPart, Message, Role, Tool};
use switchyard::sim::{Fault, FaultRule, SimServer};
use switchyard::{ChatRequest, Policy, Protocol, Router};

fn router(sim: &SimServer, strategy: &str, affinity: bool) -> Router {
    let policy = format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
breaker = {{ consecutive_failures = 1, cooldown = "60s", max_cooldown = "60s" }}
{openai}[routes.spread]
strategy = "{strategy}"
cache_affinity = {affinity}
targets = [{{ provider = "openai", model = "gpt-4o" }}, {{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "openai", model = "gpt-4.1" }}]
"#,
        openai = support::provider_toml("openai", "openai", &sim.openai_base_url(), "")
    );
    Router::new(Policy::from_toml(&policy, "inline").unwrap())
}

/// A request with the system prompt `system` and a question that differs every time.
fn ask(system: &str, n: usize) -> ChatRequest {
    ChatRequest::new([Message::text(Role::System, system), Message::text(Role::User, format!("Question {n}?"))])
}

async fn served(router: &Router, request: ChatRequest) -> String {
    router.chat("spread", request).await.unwrap().response.model
}

#[tokio::test]
async fn one_prefix_sticks_to_one_target_and_moves_together_when_it_fails() {
    for strategy in ["round_robin", "weighted", "least_latency"] {
        sticks_and_moves(strategy).await;
    }
}

async fn sticks_and_moves(strategy: &str) {
    let sim = support::sim().await;
    let router = router(&sim, strategy, true);
    let system = "You are the support assistant of ACME. Answer from the manual.";
    let mut models = BTreeSet::new();
    for n in 0..9 {
        models.insert(served(&router, ask(system, n)).await);
    }
    assert_eq!(models.len(), 1, "{strategy} would have used several: {models:?}");
    let sticky = models.into_iter().next().unwrap();
    // a cache mark makes the prefix end there: what follows the mark may differ
    let mut marked_models = BTreeSet::new();
    for n in 0..6 {
        let marked = ContentPart::text("The manual, 40 pages.").cached(CacheControl::ephemeral());
        let request =
            ChatRequest::new([Message::new(Role::User, vec![marked, ContentPart::text(format!("And question {n}?"))])]);
        marked_models.insert(served(&router, request).await);
    }
    assert_eq!(marked_models.len(), 1, "{strategy}: {marked_models:?}");
    // tools alone make a prefix too
    let mut tooled = BTreeSet::new();
    for n in 0..6 {
        let tool = Tool::new("lookup", "Looks a part up in the manual", serde_json::json!({"type": "object"}));
        let request = ChatRequest::new([Message::text(Role::User, format!("Part {n}?"))]).tool(tool);
        tooled.insert(served(&router, request).await);
    }
    assert_eq!(tooled.len(), 1, "{strategy}: {tooled:?}");
    // other prefixes spread over the targets
    let mut spread = BTreeSet::new();
    for n in 0..24 {
        spread.insert(served(&router, ask(&format!("You are assistant number {n}."), 0)).await);
    }
    assert!(spread.len() >= 2, "{strategy}: {spread:?}");
    // the sticky target fails: its breaker opens and the prefix moves, all of it to one target
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)).model(sticky.clone()).first(1));
    let _ = router.chat("spread", ask(system, 100)).await;
    let mut moved = BTreeSet::new();
    for n in 0..6 {
        moved.insert(served(&router, ask(system, 200 + n)).await);
    }
    assert_eq!(moved.len(), 1, "{strategy}: {moved:?}");
    assert!(!moved.contains(&sticky), "{strategy}: {moved:?} still has {sticky}");
}

#[tokio::test]
async fn without_it_the_route_balances_as_its_strategy_says() {
    let sim = support::sim().await;
    let router = router(&sim, "round_robin", false);
    let mut models = BTreeSet::new();
    for n in 0..3 {
        models.insert(served(&router, ask("You are the support assistant of ACME.", n)).await);
    }
    assert_eq!(models.len(), 3, "round robin: {models:?}");
}
