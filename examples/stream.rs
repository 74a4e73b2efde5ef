//! Streaming through the router: the answer arrives as events, and when the serving provider's
//! stream dies halfway the router continues it on the next target, so the reader sees one answer.
//! Runs against the built-in simulator, so it needs no keys: `cargo run --example stream`.

use std::io::Write as _;

use futures::StreamExt as _;
use switchyard::sim::{Fault, FaultRule, SimServer};
use switchyard::{ChatRequest, Policy, Protocol, Router, StreamEvent};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = SimServer::start().await?; // stand-in for api.openai.com and api.anthropic.com
    let policy: Policy = format!(
        r#"
        {}
        [routes.chat]
        targets = [
          {{ provider = "openai", model = "gpt-4o-mini" }},
          {{ provider = "anthropic", model = "claude-sonnet-4-5" }},
        ]
        "#,
        sim.providers_toml()
    )
    .parse()?;
    let router = Router::new(policy);

    // OpenAI's stream is cut after three tokens, once
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::Cut { after_tokens: 3 }).first(1));

    let mut stream = router.chat_stream("chat", ChatRequest::user("Tell me about rivers.").max_tokens(64)).await?;
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::TextDelta { text, .. } => {
                print!("{text}");
                std::io::stdout().flush()?;
            }
            StreamEvent::Finish { .. } => println!(),
            _ => {} // tool calls, thinking, usage, rate-limit news: not shown here
        }
    }
    if let Some(summary) = stream.summary() {
        let how = if summary.continued { "continued after a cut" } else { "in one go" };
        println!("served by {}/{} ({how}), {} attempts", summary.provider, summary.model, summary.attempts.len());
    }
    Ok(())
}
