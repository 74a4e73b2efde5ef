//! Test support shared by the integration tests: a scripted in-memory provider, policies over
//! simulated providers, a recording provider stand-in, a gateway on a free port, the `switchyard`
//! binary, and polling.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

pub mod gateway;
pub mod poll;
pub mod recorder;
pub mod scripted;
pub mod sim;

pub use gateway::{ServeProcess, TestGateway, binary, gateway, gateway_with, serve_binary, serve_binary_under};
pub use poll::{eventually, eventually_async, eventually_blocking, poll_for};
pub use scripted::{Scripted, Step};
pub use sim::{provider_toml, responses_provider_toml, sim};

/// A policy with providers `p` and `q` (protocol openai) and `c` (protocol anthropic), all at
/// local URLs, and the given extra TOML.
pub fn policy(extra: &str) -> switchyard::Policy {
    let text = format!(
        "[providers.p]\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[providers.q]\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[providers.c]\nprotocol = \"anthropic\"\nbase_url = \"http://127.0.0.1:9\"\n{extra}"
    );
    match text.parse() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// [`policy`] with the providers' breakers probed `passive`ly: the first request after a
/// cooldown is the probe, as before active probes.
pub fn passive_policy(extra: &str) -> switchyard::Policy {
    let text = format!(
        "[providers.p]\nprotocol = \"openai\"\nprobe = \"passive\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[providers.q]\nprotocol = \"openai\"\nprobe = \"passive\"\nbase_url = \"http://127.0.0.1:9/v1\"\n{extra}"
    );
    match text.parse() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The `data:` payloads of an SSE body, parsed (`[DONE]` left out).
pub fn sse_data(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}
