//! What the load and reload benches share: the policy against the simulator, the run mode,
//! percentiles.
#![allow(dead_code)]

use std::time::Duration;

use switchyard::sim::SimServer;

/// The model the policy's first target uses in [`policy_text`]'s two variants.
pub(crate) const MODELS: [&str; 2] = ["gpt-4o-mini", "gpt-4o"];

/// A policy against `sim` (no keys): route `chat` goes to OpenAI `model`, with Anthropic behind it
/// as the fallback, as a real policy would have. `tag` goes in a comment so that every edit is a
/// distinct file.
pub(crate) fn policy_text(sim: &SimServer, model: &str, tag: usize) -> String {
    format!(
        "# edit {tag}\n\
         [providers.openai]\nprofile = \"openai\"\nauth = \"none\"\nbase_url = \"{}\"\n\
         [providers.anthropic]\nprofile = \"anthropic\"\nauth = \"none\"\nbase_url = \"{}\"\n\
         [routes.chat]\ntargets = [{{ provider = \"openai\", model = \"{model}\" }}, \
         {{ provider = \"anthropic\", model = \"claude-haiku-4-5\" }}]\n",
        sim.openai_base_url(),
        sim.anthropic_base_url(),
    )
}

/// Whether this is a real benchmark run (`cargo bench` passes `--bench`). Without it (`cargo test
/// --benches`) a bench only checks that it works, with tiny counts.
pub(crate) fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A fresh request, as an application builds one per call.
pub(crate) fn request() -> switchyard::ChatRequest {
    switchyard::ChatRequest::user("Tell me about switchyards and trains").max_tokens(16)
}

/// The `q` quantile (0..=1) of `sorted`, nearest rank.
pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Microseconds, for tables.
pub(crate) fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Milliseconds, for tables.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A signed difference in microseconds (`a - b`).
pub(crate) fn diff_us(a: Duration, b: Duration) -> f64 {
    us(a) - us(b)
}
