//! Embedding the router in an application: a policy, a router, a request — with failover.
//! Runs against the built-in simulator, so it needs no keys: `cargo run --example embed`.

use switchyard::sim::{Fault, FaultRule, SimServer};
use switchyard::{ChatRequest, Policy, Protocol, Router};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = SimServer::start().await?; // stand-in for api.openai.com and api.anthropic.com
    let policy: Policy = format!(
        r#"
        [providers.openai]
        profile = "openai"
        auth = "none"
        base_url = "{}"

        [providers.anthropic]
        profile = "anthropic"
        auth = "none"
        base_url = "{}"

        [routes.chat]
        targets = [
          {{ provider = "openai", model = "gpt-4o-mini" }},
          {{ provider = "anthropic", model = "claude-sonnet-4-5" }},
        ]
        "#,
        sim.openai_base_url(),
        sim.anthropic_base_url()
    )
    .parse()?;
    let router = Router::new(policy);

    // OpenAI is down: every request gets a 500
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)));

    let answer = router.chat("chat", ChatRequest::user("Hello!").max_tokens(64)).await?;
    println!("{}", answer.response.text);
    println!("served by {}/{} after {} attempts", answer.provider(), answer.model(), answer.attempts.len());
    Ok(())
}
