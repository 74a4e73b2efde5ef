//! What answers cost: each attempt priced at its model profile's prices (input, output, cached
//! input, cache write; USD per million tokens), failed streamed attempts billed for what they
//! generated, summed per answer, sent by the gateway and counted in its metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::StreamExt;
use switchyard::chat::{CacheControl, ContentPart, Message, Role, Usage};
use switchyard::router::AttemptOutcome;
use switchyard::sim::{Fault, FaultRule, SimServer};
use switchyard::{ChatRequest, Policy, Protocol, Router};

fn router(sim: &SimServer) -> Router {
    let policy = format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
{providers}
[routes.mini]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}]
[routes.haiku]
targets = [{{ provider = "anthropic", model = "claude-haiku-4-5" }}]
[routes.cut-then-haiku]
resume = ["none"]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "anthropic", model = "claude-haiku-4-5" }}]
"#,
        providers = sim.providers_toml()
    );
    Router::new(Policy::from_toml(&policy, "inline").unwrap())
}

/// USD at per-million prices: (uncached input, cached input, cache write, output).
fn priced(u: &Usage, prices: (f64, f64, f64, f64)) -> f64 {
    let cached = u.cached_input_tokens.unwrap_or(0);
    let written = u.cache_creation_input_tokens.unwrap_or(0);
    let plain = u.input_tokens - cached - written;
    (plain as f64 * prices.0 + cached as f64 * prices.1 + written as f64 * prices.2 + u.output_tokens as f64 * prices.3)
        / 1e6
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[tokio::test]
async fn an_answer_costs_its_usage_at_the_profile_prices_cached_or_not() {
    let sim = support::sim().await;
    let router = router(&sim);
    // gpt-4o-mini: $0.15 in, $0.60 out
    let r = router.chat("mini", ChatRequest::new([Message::text(Role::User, "Hello there")])).await.unwrap();
    let u = r.response.usage;
    assert!(u.input_tokens > 0 && u.output_tokens > 0);
    let expected = priced(&u, (0.15, 0.075, 0.15, 0.60));
    assert!(close(r.cost_usd().unwrap(), expected), "{:?} vs {expected}", r.cost_usd());
    assert_eq!(r.failed_cost_usd(), None);
    // claude-haiku-4-5 with a cache mark: the first request writes the prefix to the cache, the
    // next reads it: $1.00 in, $0.10 cached, $1.25 written, $5.00 out
    let claude = (1.00, 0.10, 1.25, 5.00);
    let long = "All work and no play makes a dull model. ".repeat(40);
    let part = ContentPart::text(long.clone()).cached(CacheControl::ephemeral());
    let request = ChatRequest::new([Message::new(Role::User, vec![part, ContentPart::text("Summarize.")])]);
    let first = router.chat("haiku", request.clone()).await.unwrap();
    let u = first.response.usage;
    assert!(u.cache_creation_input_tokens.is_some_and(|w| w > 0 && w < u.input_tokens), "{u:?}");
    assert_eq!(u.cached_input_tokens, Some(0), "{u:?}");
    let expected = priced(&u, claude);
    assert!(close(first.cost_usd().unwrap(), expected), "{:?} vs {expected}", first.cost_usd());
    let r = router.chat("haiku", request).await.unwrap();
    let u = r.response.usage;
    assert!(u.cached_input_tokens.is_some_and(|c| c > 0 && c < u.input_tokens), "{u:?}");
    assert_eq!(u.cache_creation_input_tokens, Some(0), "{u:?}");
    let expected = priced(&u, claude);
    assert!(close(r.cost_usd().unwrap(), expected), "{:?} vs {expected}", r.cost_usd());
    let (mut uncached, mut unwritten) = (u, first.response.usage);
    uncached.cached_input_tokens = None;
    unwritten.cache_creation_input_tokens = None;
    assert!(r.cost_usd().unwrap() < priced(&uncached, claude), "cache reads are cheaper");
    assert!(first.cost_usd().unwrap() > priced(&unwritten, claude), "cache writes dearer");
    // gpt-4o-mini caches a prompt of 1,024 tokens or more by itself: the second of two alike reads
    // whole 128-token blocks of it from the cache, at $0.075
    let request = ChatRequest::new([Message::text(Role::User, long.repeat(3))]);
    let first = router.chat("mini", request.clone()).await.unwrap();
    assert_eq!(first.response.usage.cached_input_tokens, Some(0));
    let r = router.chat("mini", request).await.unwrap();
    let u = r.response.usage;
    assert!(u.cached_input_tokens.is_some_and(|c| c >= 1024 && c % 128 == 0 && c <= u.input_tokens), "{u:?}");
    let expected = priced(&u, (0.15, 0.075, 0.15, 0.60));
    assert!(close(r.cost_usd().unwrap(), expected), "{:?} vs {expected}", r.cost_usd());
    assert!(r.cost_usd().unwrap() < first.cost_usd().unwrap(), "cached input is cheaper");
}

#[tokio::test]
async fn a_stream_cut_after_content_is_billed_and_flagged_as_failed() {
    let sim = support::sim().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::Cut { after_tokens: 3 }));
    let router = router(&sim);
    let request = ChatRequest::new([Message::text(Role::User, "Hello there, tell me about the weather")]);
    let prompt_estimate = request.estimated_prompt_tokens();
    // (no continuation: the answer restarts on Claude, which the caller allows)
    let options = switchyard::router::StreamOptions { allow_restart: true };
    let mut s = router.chat_stream_with("cut-then-haiku", request, options).await.unwrap();
    while let Some(e) = s.next().await {
        let _ = e;
    }
    let summary = s.summary().cloned().unwrap();
    let failed = summary.attempts.iter().find(|a| a.outcome == AttemptOutcome::Error).unwrap();
    let generated = failed.output_tokens.unwrap();
    assert!(generated >= 3, "{failed:?}");
    // the cut attempt: its prompt (estimated: the stream had no usage yet) and what it generated
    let billed = priced(&Usage::new(prompt_estimate, generated), (0.15, 0.075, 0.15, 0.60));
    assert!(close(failed.cost_usd.unwrap(), billed), "{:?} vs {billed}", failed.cost_usd);
    assert!(close(summary.failed_cost_usd().unwrap(), billed));
    let served = priced(&summary.usage.unwrap(), (1.00, 0.10, 1.25, 5.00));
    assert!(close(summary.cost_usd().unwrap(), billed + served), "{:?}", summary.cost_usd());
}
