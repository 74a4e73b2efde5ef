//! What an answer costs, from the model profile's prices (USD per million tokens: input, output,
//! cached input, cache write) and the usage the provider reported.

use crate::chat::Usage;
use crate::profile::ModelProfile;

/// The cost in USD of `usage` on a model priced by `profile`. Input tokens read from the cache
/// are priced at `cached_input_price`, written to it at `cache_write_price` (each `input_price`
/// when the profile has none), the rest at `input_price`; output tokens (reasoning included) at
/// `output_price`.
pub fn cost_usd(profile: &ModelProfile, usage: &Usage) -> f64 {
    let cached = usage.cached_input_tokens.unwrap_or(0);
    let written = usage.cache_creation_input_tokens.unwrap_or(0);
    let plain = usage.input_tokens.saturating_sub(cached).saturating_sub(written);
    let per_token = |price: f64, tokens: u64| price * tokens as f64 / 1_000_000.0;
    per_token(profile.input_price, plain)
        + per_token(profile.cached_input_price.unwrap_or(profile.input_price), cached)
        + per_token(profile.cache_write_price.unwrap_or(profile.input_price), written)
        + per_token(profile.output_price, usage.output_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_written_and_plain_input_each_at_their_price() {
        let sonnet = crate::profile::ProviderProfile::builtin("anthropic")
            .and_then(|p| p.model("claude-sonnet-4-5").cloned())
            .unwrap_or_else(|| panic!("the built-in profile has claude-sonnet-4-5"));
        // 1M input of which 200k read from the cache and 100k written to it, 100k output:
        // 700k × $3 + 200k × $0.30 + 100k × $3.75 + 100k × $15
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cached_input_tokens: Some(200_000),
            cache_creation_input_tokens: Some(100_000),
            reasoning_tokens: None,
        };
        let cost = cost_usd(&sonnet, &usage);
        assert!((cost - (2.1 + 0.06 + 0.375 + 1.5)).abs() < 1e-9, "{cost}");
        // no cache prices: everything at the input price
        let plain = ModelProfile { cached_input_price: None, cache_write_price: None, ..sonnet };
        assert!((cost_usd(&plain, &usage) - (3.0 + 1.5)).abs() < 1e-9);
    }
}
