//! Embeddings (`POST /v1/embeddings`, `Router::embed`) against the simulated providers: the
//! caller's body kept, failover between embedding models, targets that cannot embed skipped,
//! routes mixing vector lengths refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::Protocol;
use switchyard::embed::EmbeddingRequest;
use switchyard::serve::Gateway;
use switchyard::sim::{Fault, FaultRule, SimServer};

fn policy_text(sim: &SimServer) -> String {
    format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
{providers}
{backup}[routes.embed]
targets = [{{ provider = "anthropic", model = "claude-haiku-4-5" }}, {{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "openai", model = "text-embedding-3-small" }}, {{ provider = "backup", model = "text-embedding-ada-002" }}]
[routes.chat-only]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}]
"#,
        providers = sim.providers_toml(),
        backup = support::provider_toml("backup", "openai", &sim.openai_base_url(), "")
    )
}

async fn setup() -> (SimServer, Gateway, tempfile::TempDir) {
    let sim = support::sim().await;
    let (gateway, _, dir) = support::gateway(&policy_text(&sim)).await;
    (sim, gateway, dir)
}

async fn embed(gateway: &Gateway, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/v1/embeddings", gateway.addr()))
        .json(&body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn the_first_embedding_model_answers_with_the_callers_body_and_its_own_answer() {
    let (sim, gateway, _dir) = setup().await;
    let body = json!({"model": "embed", "input": ["first text", "second text"], "dimensions": 256, "user": "u-1", "a_future_member": true});
    let r = embed(&gateway, body).await;
    assert_eq!(r.status(), 200);
    // the Anthropic wire has no embeddings and gpt-4o-mini is a chat model: both passed over
    assert_eq!(
        (header(&r, "x-switchyard-model"), header(&r, "x-switchyard-attempts")),
        ("text-embedding-3-small", "3")
    );
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    assert_eq!(answer["data"][1]["embedding"].as_array().unwrap().len(), 256, "dimensions reached the provider");
    assert_eq!(answer["usage"]["prompt_tokens"], 6);
    let sent = sim.requests();
    assert_eq!(sent.len(), 1, "nothing was sent to the targets passed over");
    assert_eq!(sent[0].endpoint, "/v1/embeddings");
    let expected = json!({"model": "text-embedding-3-small", "input": ["first text", "second text"], "dimensions": 256, "user": "u-1", "a_future_member": true});
    assert_eq!(sent[0].body, expected, "the caller's body, its model replaced");
    // base64 vectors are relayed as they came
    let r = embed(&gateway, json!({"model": "embed", "input": "x", "encoding_format": "base64"})).await;
    let answer: Value = r.json().await.unwrap();
    assert!(answer["data"][0]["embedding"].as_str().is_some_and(|s| s.len() == 1536 * 4 * 4 / 3), "{answer}");
}

#[tokio::test]
async fn a_failing_embedding_model_fails_over_to_the_next() {
    let (sim, gateway, _dir) = setup().await;
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)).model("text-embedding-3-small"));
    let r = embed(&gateway, json!({"model": "embed", "input": "hello"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        (header(&r, "x-switchyard-provider"), header(&r, "x-switchyard-model")),
        ("backup", "text-embedding-ada-002")
    );
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["data"][0]["embedding"].as_array().unwrap().len(), 1536);
    // every embedding model down: the error is in OpenAI's dialect and names the attempts
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(503)).model("text-embedding-ada-002"));
    let r = embed(&gateway, json!({"model": "embed", "input": "hello"})).await;
    assert!(r.status().is_server_error());
    let error: Value = r.json().await.unwrap();
    assert!(error["error"]["message"].is_string(), "{error}");
}

#[tokio::test]
async fn bad_requests_and_routes_without_embedding_models_are_refused_by_name() {
    let (sim, gateway, _dir) = setup().await;
    for (body, why) in [
        (json!({"model": "embed"}), "`input` is required"),
        (json!({"model": "embed", "input": [1.5]}), "token arrays"),
        (json!({"model": "chat-only", "input": "x"}), "is a chat model, not an embedding model"),
    ] {
        let r = embed(&gateway, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let text = r.text().await.unwrap();
        assert!(text.contains(why), "{body}: {text}");
    }
    let r = embed(&gateway, json!({"model": "nope", "input": "x"})).await;
    assert_eq!(r.status(), 404);
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn the_library_call_embeds_on_the_route() {
    let (_sim, gateway, _dir) = setup().await;
    let e = gateway.router().embed("embed", EmbeddingRequest::new("hello").dimensions(16)).await.unwrap();
    assert_eq!((e.provider.as_str(), e.model.as_str()), ("openai", "text-embedding-3-small"));
    assert_eq!(e.response.dimensions(), Some(16));
    assert_eq!(e.response.input_tokens, 2);
}

#[test]
fn a_route_mixing_vector_lengths_is_refused() {
    let text = r#"
[providers.openai]
auth = "none"
[routes.embed]
targets = [{ provider = "openai", model = "text-embedding-3-small" }, { provider = "openai", model = "text-embedding-3-large" }]
"#;
    let e = text.parse::<switchyard::Policy>().unwrap_err().to_string();
    assert!(
        e.contains("routes.embed.targets")
            && e.contains("`text-embedding-3-large` 3072")
            && e.contains("`text-embedding-3-small` 1536"),
        "{e}"
    );
}

/// A live drill fault (`[[drill.faults]]`) hits embeddings like chat: the faulted model fails,
/// the next embedding model answers.
#[tokio::test]
async fn live_drill_faults_hit_embeddings_and_token_counts() {
    let sim = support::sim().await;
    let faults = "\n[[drill.faults]]\nprovider = \"openai\"\nmodel = \"text-embedding-3-small\"\ninject = \"server_error\"\n\
                  [[drill.faults]]\nprovider = \"anthropic\"\nmodel = \"claude-sonnet-4-5\"\ninject = \"overloaded\"\n\
                  [routes.claude]\ntargets = [{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }, { provider = \"anthropic\", model = \"claude-opus-4-6\" }]\n";
    let policy: switchyard::Policy = format!("{}{faults}", policy_text(&sim)).parse().unwrap();
    let player = std::sync::Arc::new(switchyard::sim::WireFaults::default());
    let router = switchyard::Router::builder(policy).fault_player(player).build();
    let e = router.embed("embed", EmbeddingRequest::new("hello")).await.unwrap();
    assert_eq!((e.provider.as_str(), e.model.as_str()), ("backup", "text-embedding-ada-002"));
    assert_eq!(e.attempts.iter().filter(|a| a.class == Some(switchyard::ErrorClass::ServerError)).count(), 1);
    let request = switchyard::ChatRequest::user("Hello there");
    let c = router.count_tokens("claude", request).await.unwrap();
    assert_eq!(c.model, "claude-opus-4-6");
    assert_eq!(c.attempts[0].class, Some(switchyard::ErrorClass::Overloaded));
}
