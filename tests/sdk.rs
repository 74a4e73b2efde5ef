//! The official OpenAI and Anthropic Python SDKs, unchanged, against `switchyard serve` in front
//! of the simulated providers, with the first target of each route failing: chat (whole and
//! streamed), the Responses API (whole and streamed, with a function-call round trip, on
//! targets of every protocol), embeddings (floats and the SDK's default base64), messages and count_tokens.
//! `scripts/test` installs the SDKs (into `target/sdk-venv`) and sets `SWITCHYARD_SDK_PYTHON`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use switchyard::Protocol;
use switchyard::sim::{Fault, FaultRule};

fn python() -> String {
    let python = std::env::var("SWITCHYARD_SDK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "SWITCHYARD_SDK_PYTHON is not set: run the tests with `scripts/test`, which installs the official \
             OpenAI and Anthropic SDKs into target/sdk-venv (or `pip install openai anthropic` and point \
             SWITCHYARD_SDK_PYTHON at that python)"
        )
    });
    let check = std::process::Command::new(&python).args(["-c", "import openai, anthropic"]).output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "{python} cannot import the SDKs ({check:?}): run `scripts/test`, which installs them"
    );
    python
}

#[tokio::test]
async fn the_official_sdks_work_unchanged_and_fail_over() {
    let python = python();
    let sim = support::sim().await;
    let text = format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
{providers}
[routes.chat]
targets = [{{ provider = "openai", model = "gpt-4o" }}, {{ provider = "openai", model = "gpt-4o-mini" }}]
[routes.claude]
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}, {{ provider = "anthropic", model = "claude-haiku-4-5" }}]
{responses}
[routes.native]
targets = [{{ provider = "responses", model = "gpt-4.1" }}, {{ provider = "responses", model = "gpt-4.1-mini" }}]
[routes.embed]
targets = [{{ provider = "openai", model = "text-embedding-ada-002" }}, {{ provider = "openai", model = "text-embedding-3-small" }}]
"#,
        providers = sim.providers_toml(),
        responses = support::responses_provider_toml(&sim)
    );
    // the first target of every route fails, always
    for (protocol, model) in [
        (Protocol::Openai, "gpt-4o"),
        (Protocol::Anthropic, "claude-sonnet-4-5"),
        (Protocol::Openai, "text-embedding-ada-002"),
        (Protocol::OpenaiResponses, "gpt-4.1"),
    ] {
        sim.add_fault(FaultRule::new(protocol, Fault::status(503)).model(model));
    }
    let gateway = support::gateway_with(&text, &[]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/official.py");
    let out =
        tokio::process::Command::new(&python).arg(script).env("SWITCHYARD_BASE", &gateway.base).output().await.unwrap();
    assert!(out.status.success(), "the SDK script failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["chat"]["model"], "gpt-4o-mini", "{v}");
    assert!(v["chat"]["text"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(v["chat_stream"]["text"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert_eq!((v["embeddings"]["count"].as_u64(), v["embeddings"]["dims"].as_u64()), (Some(2), Some(64)), "{v}");
    assert_eq!(v["embeddings"]["model"], "text-embedding-3-small", "{v}");
    assert_eq!(v["embeddings_default"]["dims"].as_u64(), Some(1536), "the SDK decoded the base64 vector: {v}");
    assert_eq!(v["messages"]["model"], "claude-haiku-4-5", "{v}");
    // the Responses API, translated for a chat target, failing over like chat
    assert_eq!(
        (v["responses"]["model"].as_str(), v["responses"]["status"].as_str()),
        (Some("gpt-4o-mini"), Some("completed")),
        "{v}"
    );
    assert!(v["responses"]["text"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(v["responses_tools"]["text"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    // streamed, with a function-call round trip, on targets of every protocol, each failing over
    for (route, model) in [("chat", "gpt-4o-mini"), ("claude", "claude-haiku-4-5"), ("native", "gpt-4.1-mini")] {
        let r = &v["responses_stream"][route];
        assert_eq!(
            (r["first"].as_str(), r["last"].as_str()),
            (Some("response.created"), Some("response.completed")),
            "{route}: {r}"
        );
        assert_eq!((r["model"].as_str(), r["second_model"].as_str()), (Some(model), Some(model)), "{route}: {r}");
        assert_eq!(r["name"], "weather", "{route}: {r}");
        assert_eq!(r["args"], r["call_args"], "the deltas make the arguments: {r}");
        assert!(r["args"].as_str().is_some_and(|a| serde_json::from_str::<Value>(a).is_ok()), "{r}");
        assert!(r["text"].as_str().is_some_and(|t| !t.is_empty()) && r["text"] == r["output_text"], "{route}: {r}");
    }
    assert!(v["responses_previous"].as_str().is_some_and(|e| e.contains("previous_response_id")), "{v}");
    assert!(v["count_tokens"]["input_tokens"].as_u64().is_some_and(|n| n > 0), "{v}");
    // "Hello there" on GPT-4o with the chat framing: 3 + 3 + 1 + 2
    assert_eq!(v["count_tokens_openai"]["input_tokens"].as_u64(), Some(9), "{v}");
    // the count went to the second Claude: the first is down
    let counted = sim
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == "/v1/messages/count_tokens")
        .map(|r| r.model)
        .collect::<Vec<_>>();
    assert_eq!(counted, ["claude-sonnet-4-5", "claude-haiku-4-5"]);
}
