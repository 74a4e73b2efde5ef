//! Policies over a simulated provider.

use switchyard::sim::SimServer;

/// A simulator on a free loopback port.
pub async fn sim() -> SimServer {
    SimServer::start().await.unwrap()
}

/// A `[providers.NAME]` block for a simulated provider: `profile` (`openai` or `anthropic`), no
/// auth, at `base_url` (one of the simulator's), then `extra` lines as they are.
///
/// The simulator's two standard providers are `SimServer::providers_toml`.
pub fn provider_toml(name: &str, profile: &str, base_url: &str, extra: &str) -> String {
    let mut text = format!("[providers.{name}]\nprofile = \"{profile}\"\nauth = \"none\"\nbase_url = \"{base_url}\"\n");
    if !extra.is_empty() {
        text.push_str(extra.trim_matches('\n'));
        text.push('\n');
    }
    text
}

/// `[providers.responses]`: the simulator's OpenAI side over the Responses API.
pub fn responses_provider_toml(sim: &SimServer) -> String {
    provider_toml("responses", "openai", &sim.openai_base_url(), "protocol = \"openai_responses\"")
}
