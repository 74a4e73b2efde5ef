//! Full fidelity of requests through `switchyard serve`: what a caller sends is what reaches the
//! upstream (same wire), is mapped (other wire), or is refused / dropped and reported by name.
//! Checked by what the simulated providers recorded, field by field, on all four paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{TestGateway, sse_data};
use switchyard::Protocol;
use switchyard::sim::SimServer;

struct Setup {
    sim: SimServer,
    _gateway: TestGateway,
    base: String,
}

/// The policy every test here runs under: one route per wire, one that drops what it cannot
/// carry, one that fails over from Claude to OpenAI, and routes whose models accept less. The
/// OpenAI model `gpt-sim` is declared by the policy without `accepts`: it takes every feature,
/// so a request can carry every field of the wire (no real model takes them all).
fn policy_text(sim: &SimServer) -> String {
    format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
{providers}
[providers.openai.models."gpt-sim"]
context_window = 128000
max_output_tokens = 16384
[providers.openai.models."gpt-text"]
context_window = 16000
max_output_tokens = 4096
accepts = ["tools"]
[routes.gpt]
targets = [{{ provider = "openai", model = "gpt-sim" }}]
[routes.claude]
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
[routes.claude_drop]
unsupported = "drop"
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
[routes.text_then_vision]
targets = [{{ provider = "openai", model = "gpt-text" }}, {{ provider = "openai", model = "gpt-4o" }}]
[routes.text_only]
targets = [{{ provider = "openai", model = "gpt-text" }}, {{ provider = "openai", model = "gpt-4o-mini" }}]
{anthropic2}[routes.claude_twice]
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}, {{ provider = "anthropic2", model = "claude-sonnet-4-5" }}]
[routes.claude_then_gpt]
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}, {{ provider = "openai", model = "gpt-sim" }}]
"#,
        providers = sim.providers_toml(),
        anthropic2 = support::provider_toml("anthropic2", "anthropic", &sim.anthropic_base_url(), "")
    )
}

async fn setup() -> Setup {
    let sim = support::sim().await;
    let gateway = support::gateway_with(&policy_text(&sim), &[]).await;
    Setup { sim, base: gateway.base.clone(), _gateway: gateway }
}

async fn post(base: &str, path: &str, body: &Value) -> reqwest::Response {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    client.post(format!("{base}{path}")).json(body).send().await.unwrap()
}

/// The body the simulator received last on `protocol`.
fn upstream(sim: &SimServer, protocol: Protocol) -> Value {
    sim.requests().into_iter().rev().find(|r| r.protocol == protocol).expect("a request upstream").body
}

const PNG: &str = "iVBORw0KGgo=";

fn openai_request(route: &str, stream: bool) -> Value {
    json!({
        "model": route,
        "stream": stream,
        "messages": [
            {"role": "developer", "content": "Answer in JSON."},
            {"role": "user", "name": "ada", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}"), "detail": "high"}}
            ]}
        ],
        "max_completion_tokens": 8000,
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 42,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "logit_bias": {"50256": -100},
        "logprobs": true,
        "top_logprobs": 3,
        "n": 1,
        "user": "user-7",
        "metadata": {"team": "search"},
        "store": false,
        "service_tier": "default",
        "reasoning_effort": "medium",
        "parallel_tool_calls": false,
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
            "schema": {"type": "object", "properties": {"what": {"type": "string"}}}}},
        "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}, "strict": true}}],
        "tool_choice": "auto",
        "prediction": {"type": "content", "content": "x"},
        "stop": ["END"],
        "prompt_cache_key": "search-v2",
        "safety_identifier": "hash-7",
        "verbosity": "low",
        "modalities": ["text"],
        "web_search_options": {},
        "a_parameter_from_the_future": {"on": true}
    })
}

fn anthropic_request(route: &str, stream: bool) -> Value {
    json!({
        "model": route,
        "stream": stream,
        "max_tokens": 8000,
        "system": [{"type": "text", "text": "Be exact.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                 "title": "report.pdf", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Summarize both."}
            ]}
        ],
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "top_p": 0.8,
        "metadata": {"user_id": "user-7"},
        "tools": [{"name": "look", "description": "Look", "input_schema": {"type": "object"},
                   "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        "top_k": 40,
        "temperature": 1.0,
        "stop_sequences": ["END"],
        "service_tier": "auto",
        "a_parameter_from_the_future": [1, 2]
    })
}

fn without(mut v: Value, keys: &[&str]) -> Value {
    for k in keys {
        v.as_object_mut().unwrap().remove(*k);
    }
    v
}

/// The member names of a JSON object, in order.
fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn openai_to_openai_carries_the_callers_body_unchanged() {
    for stream in [false, true] {
        let s = setup().await;
        let mut sent = openai_request("gpt", stream);
        // what only a passthrough keeps: the legacy name of a member, and the `null`s SDKs send
        sent["max_tokens"] = json!(900);
        sent["stop"] = Value::Null;
        let r = post(&s.base, "/v1/chat/completions", &sent).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        assert!(r.headers().get("x-switchyard-dropped").is_none());
        let got = upstream(&s.sim, Protocol::Openai);
        // the caller's body, member for member and in its order, but the route name (now the
        // model) and the usage the router asks for on streams
        let mut expected = sent.clone();
        expected["model"] = json!("gpt-sim");
        if stream {
            expected["stream_options"] = json!({"include_usage": true});
        }
        assert_eq!(got, expected, "stream {stream}");
        assert_eq!(keys(&got), keys(&expected), "stream {stream}");
    }
}

#[tokio::test]
async fn anthropic_to_anthropic_carries_the_callers_body_unchanged() {
    for stream in [false, true] {
        let s = setup().await;
        let mut sent = anthropic_request("claude", stream);
        sent["stop_sequences"] = Value::Null;
        let r = post(&s.base, "/v1/messages", &sent).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let got = upstream(&s.sim, Protocol::Anthropic);
        let mut expected = sent.clone();
        expected["model"] = json!("claude-sonnet-4-5");
        assert_eq!(got, expected, "stream {stream}");
        assert_eq!(keys(&got), keys(&expected), "stream {stream}");
    }
}

#[tokio::test]
async fn a_same_wire_body_without_max_tokens_gets_the_profiles_and_keeps_the_rest() {
    let s = setup().await;
    let sent = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}], "x_new": 1});
    let r = post(&s.base, "/v1/messages", &sent).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let got = upstream(&s.sim, Protocol::Anthropic);
    assert_eq!(keys(&got), ["model", "messages", "x_new", "max_tokens"]);
    assert_eq!(got["max_tokens"], 64000, "the profile's max output of claude-sonnet-4-5");
}

#[tokio::test]
async fn openai_to_anthropic_maps_what_maps_and_refuses_the_rest_by_name() {
    let s = setup().await;
    // as sent, `seed`, penalties, logprobs, `metadata`, ... have no place on Anthropic: a 400 naming them
    let r = post(&s.base, "/v1/chat/completions", &openai_request("claude", false)).await;
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    let message = err["error"]["message"].as_str().unwrap();
    for field in [
        "`seed`",
        "`logit_bias`",
        "`logprobs`",
        "`metadata`",
        "`verbosity`",
        "`modalities`",
        "`web_search_options`",
        "`a_parameter_from_the_future`",
    ] {
        assert!(message.contains(field), "{field} not named in {message}");
    }
    assert!(message.contains("anthropic/claude-sonnet-4-5"), "{message}");
    // a record kept for the caller, a cache hint: dropped and reported, never a reason to refuse
    for harmless in ["`store`", "`prompt_cache_key`", "`safety_identifier`"] {
        assert!(!message.contains(harmless), "{harmless} named in {message}");
    }
    assert_eq!(
        err["error"]["switchyard"]["attempts"][0]["skip_reason"].as_str().map(|s| s.starts_with("unsupported: ")),
        Some(true)
    );
    assert_eq!(s.sim.request_count(Protocol::Anthropic, None), 0, "refused before any call");

    // what maps is mapped; with `unsupported = "drop"` the rest is dropped and reported
    for stream in [false, true] {
        let r = post(&s.base, "/v1/chat/completions", &openai_request("claude_drop", stream)).await;
        assert_eq!(r.status(), 200);
        let dropped = r.headers()["x-switchyard-dropped"].to_str().unwrap().to_owned();
        for field in [
            "seed",
            "presence_penalty",
            "logit_bias",
            "logprobs",
            "metadata",
            "store",
            "detail",
            "name",
            "prompt_cache_key",
            "verbosity",
            "safety_identifier",
        ] {
            assert!(dropped.split(',').any(|d| d == field), "{field} not in {dropped}");
        }
        let got = upstream(&s.sim, Protocol::Anthropic);
        assert_eq!(got["system"], json!("Answer in JSON."));
        assert_eq!(
            got["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
            ])
        );
        assert_eq!(got["max_tokens"], 8000);
        assert_eq!(got["top_p"], 0.9);
        assert_eq!(got["stop_sequences"], json!(["END"]));
        assert_eq!(got["metadata"], json!({"user_id": "user-7"}));
        assert_eq!(got["service_tier"], "standard_only");
        assert_eq!(got["thinking"], json!({"type": "enabled", "budget_tokens": 4096}));
        assert_eq!(got["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
        assert_eq!(got["output_format"]["schema"]["properties"]["what"]["type"], "string");
        assert!(got.get("seed").is_none() && got.get("a_parameter_from_the_future").is_none());
        let beta = s.sim.requests().into_iter().rev().find(|r| r.protocol == Protocol::Anthropic).unwrap();
        assert_eq!(beta.header("anthropic-beta"), Some("structured-outputs-2025-11-13"));
    }
}

#[tokio::test]
async fn anthropic_to_openai_maps_thinking_images_and_reports_cache_marks() {
    let s = setup().await;
    // Anthropic first, which fails over to OpenAI: the caller's request reaches OpenAI mapped
    s.sim.add_fault(switchyard::sim::FaultRule::new(Protocol::Anthropic, switchyard::sim::Fault::status(529)));
    let mut sent = anthropic_request("claude_then_gpt", false);
    // top_k has no place on OpenAI (refused by name below)
    for field in ["a_parameter_from_the_future", "top_k", "messages"] {
        sent.as_object_mut().unwrap().remove(field);
    }
    sent["messages"] = json!([{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "What is this?", "cache_control": {"type": "ephemeral"}}
    ]}]);
    let r = post(&s.base, "/v1/messages", &sent).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // prompt-cache marks mean nothing to OpenAI, which caches by itself: dropped, and said so
    assert_eq!(r.headers()["x-switchyard-dropped"], "cache_control");
    let got = upstream(&s.sim, Protocol::Openai);
    assert_eq!(got["messages"][0], json!({"role": "system", "content": "Be exact."}));
    assert_eq!(
        got["messages"][1]["content"],
        json!([
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "text", "text": "What is this?"}
        ])
    );
    assert_eq!(got["reasoning_effort"], "medium");
    assert_eq!(got["user"], "user-7");
    assert_eq!(got["parallel_tool_calls"], false);
    assert_eq!(got["max_completion_tokens"], 8000);
    assert_eq!(got["temperature"], 1.0);
    assert_eq!(got["stop"], json!(["END"]));
    assert_eq!(got["service_tier"], "auto");

    // top_k has no place on OpenAI: refused by name, before any call
    let before = s.sim.request_count(Protocol::Openai, None);
    let r = post(
        &s.base,
        "/v1/messages",
        &json!({"model": "gpt", "max_tokens": 10, "top_k": 5,
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["type"], "error");
    assert!(err["error"]["message"].as_str().unwrap().contains("`top_k`"), "{err}");
    assert_eq!(s.sim.request_count(Protocol::Openai, None), before);
}

#[tokio::test]
async fn a_target_that_cannot_carry_the_request_is_skipped_for_one_that_can() {
    let s = setup().await;
    let body = json!({"model": "claude_then_gpt", "seed": 3, "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&s.base, "/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-provider"], "openai");
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
    assert_eq!(s.sim.request_count(Protocol::Anthropic, None), 0);
    assert_eq!(upstream(&s.sim, Protocol::Openai)["seed"], 3);
}

#[tokio::test]
async fn values_out_of_a_targets_range_are_refused_naming_field_and_range() {
    let s = setup().await;
    let r = post(
        &s.base,
        "/v1/chat/completions",
        &json!({"model": "claude", "temperature": 1.7, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let message = r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("`temperature` 1.7") && message.contains("0 to 1"), "{message}");

    let r = post(
        &s.base,
        "/v1/messages",
        &json!({"model": "claude", "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 4096},
                "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let message = r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("`thinking.budget_tokens` 4096") && message.contains("below `max_tokens` (2000)"),
        "{message}"
    );

    let r = post(
        &s.base,
        "/v1/chat/completions",
        &json!({"model": "claude", "max_completion_tokens": 2000, "reasoning_effort": "high",
                "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let message = r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("`reasoning_effort`") && message.contains("16384") && message.contains("2000"),
        "{message}"
    );
    assert_eq!(s.sim.request_count(Protocol::Anthropic, None), 0, "every one refused before any call");
}

#[tokio::test]
async fn the_library_path_maps_skips_and_reports_like_the_gateway() {
    use switchyard::router::SkipReason;
    use switchyard::{ChatRequest, ContentPart, MediaSource, Message, Policy, Reasoning, Role, Router};

    let sim = support::sim().await;
    let policy = policy_text(&sim);
    let router = Router::new(Policy::from_toml(&policy, "inline").unwrap());
    let picture = || {
        ChatRequest::new([Message::new(
            Role::User,
            [ContentPart::text("What is this?"), ContentPart::image(MediaSource::base64("image/png", PNG))],
        )])
        .max_tokens(20000)
        .reasoning(Reasoning::Effort { effort: "high".into() })
    };
    let ok = router.chat("claude_then_gpt", picture()).await.unwrap();
    assert_eq!(ok.provider(), "anthropic");
    assert!(ok.dropped.is_empty());
    let got = upstream(&sim, Protocol::Anthropic);
    assert_eq!(got["thinking"], json!({"type": "enabled", "budget_tokens": 16384}));
    assert_eq!(got["messages"][0]["content"][1]["source"]["data"], PNG);

    // a seed has no place on Claude: skipped, served by OpenAI, the skip says why
    let mut seeded = picture();
    seeded.seed = Some(1);
    seeded.reasoning = None;
    let ok = router.chat("claude_then_gpt", seeded).await.unwrap();
    assert_eq!(ok.provider(), "openai");
    assert_eq!(ok.attempts[0].skip_reason, Some(SkipReason::Unsupported("`seed` on the anthropic wire".into())));
    assert_eq!(
        serde_json::to_value(&ok.attempts[0]).unwrap()["skip_reason"],
        "unsupported: `seed` on the anthropic wire"
    );
    assert_eq!(
        upstream(&sim, Protocol::Openai)["messages"][0]["content"][1]["image_url"]["url"],
        format!("data:image/png;base64,{PNG}")
    );

    // a picture never lands on a text-only model: skipped, saying why
    let mut seeing = picture();
    seeing.reasoning = None;
    let ok = router.chat("text_then_vision", seeing).await.unwrap();
    assert_eq!(ok.response.model, "gpt-4o");
    assert_eq!(ok.attempts[0].model, "gpt-text");
    assert_eq!(ok.attempts[0].skip_reason, Some(SkipReason::Unsupported("image input".into())));
}

#[tokio::test]
async fn thinking_blocks_come_back_with_their_signature_streamed_and_not() {
    let s = setup().await;
    let body = |stream: bool| {
        json!({"model": "claude", "max_tokens": 2000, "stream": stream,
               "thinking": {"type": "enabled", "budget_tokens": 1024},
               "messages": [{"role": "user", "content": "Hello there"}]})
    };
    let r = post(&s.base, "/v1/messages", &body(false)).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let thinking = &answer["content"][0];
    assert_eq!(thinking["type"], "thinking", "{answer}");
    assert_eq!(thinking["thinking"], "The user said: Hello there");
    assert!(thinking["signature"].as_str().unwrap().starts_with("sig_sim_"));
    assert_eq!(answer["content"][1]["type"], "text");

    let r = post(&s.base, "/v1/messages", &body(true)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let data: Vec<Value> =
        text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    let starts: Vec<&Value> = data.iter().filter(|d| d["type"] == "content_block_start").collect();
    assert_eq!(starts[0]["content_block"]["type"], "thinking", "{text}");
    assert_eq!(starts[0]["index"], 0);
    assert_eq!(starts[1]["content_block"]["type"], "text");
    assert_eq!(starts[1]["index"], 1);
    let deltas: Vec<&Value> = data.iter().filter(|d| d["type"] == "content_block_delta" && d["index"] == 0).collect();
    assert_eq!(deltas[0]["delta"], json!({"type": "thinking_delta", "thinking": "The user said: Hello there"}));
    assert_eq!(deltas[1]["delta"]["type"], "signature_delta");
    assert!(text.contains("message_stop"));

    // the next turn hands the block back unchanged, signature and all
    let turn = json!({"model": "claude", "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1024},
    "messages": [
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": [thinking, {"type": "text", "text": "Hi."}]},
        {"role": "user", "content": "Again"}
    ]});
    assert_eq!(post(&s.base, "/v1/messages", &turn).await.status(), 200);
    assert_eq!(upstream(&s.sim, Protocol::Anthropic)["messages"][1]["content"][0], *thinking);
}

#[tokio::test]
async fn openai_answers_carry_every_choice_logprobs_reasoning_tokens_and_unknown_members() {
    let s = setup().await;
    let body = |stream: bool| {
        json!({"model": "gpt", "stream": stream, "stream_options": {"include_usage": true},
               "n": 2, "logprobs": true, "top_logprobs": 2, "reasoning_effort": "low",
               "messages": [{"role": "user", "content": "Hello there"}]})
    };
    let r = post(&s.base, "/v1/chat/completions", &without(body(false), &["stream_options"])).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let choices = answer["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2, "{answer}");
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], i);
        assert_eq!(choice["message"]["content"], "Hello from gpt-sim. You said: Hello there");
        assert_eq!(choice["finish_reason"], "stop");
        let first = &choice["logprobs"]["content"][0];
        assert_eq!(first["token"], "Hello");
        assert_eq!(first["logprob"], -0.25);
        assert_eq!(first["bytes"], json!(b"Hello".to_vec()));
        assert_eq!(first["top_logprobs"].as_array().unwrap().len(), 2);
        assert_eq!(first["top_logprobs"][1]["token"], "alt1");
    }
    assert_eq!(answer["usage"]["completion_tokens_details"]["reasoning_tokens"], 2, "{answer}");
    // members the model has no place for come back as the upstream sent them
    assert_eq!(answer["system_fingerprint"], "fp_sim");
    assert_eq!(answer["service_tier"], "default");

    let r = post(&s.base, "/v1/chat/completions", &body(true)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let chunks = sse_data(&text);
    let content = |index: u64| -> String {
        chunks
            .iter()
            .flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["index"] == index)
            .filter_map(|c| c["delta"]["content"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(content(0), "Hello from gpt-sim. You said: Hello there", "{text}");
    assert_eq!(content(1), "Hello from gpt-sim. You said: Hello there", "{text}");
    let finishes: Vec<&Value> = chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().into_iter().flatten())
        .filter(|c| !c["finish_reason"].is_null())
        .map(|c| &c["index"])
        .collect();
    assert_eq!(finishes.len(), 2, "one finish per answer: {text}");
    let tokens: Vec<&Value> = chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().into_iter().flatten())
        .filter(|c| c["index"] == 0)
        .filter_map(|c| c["logprobs"]["content"].as_array())
        .flatten()
        .map(|t| &t["token"])
        .collect();
    assert_eq!(tokens.first().copied(), Some(&json!("Hello")), "{text}");
    assert_eq!(tokens.len(), 7, "a logprob per token: {text}");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 2, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn anthropic_answers_carry_cache_usage_and_unknown_members_streamed_and_not() {
    let s = setup().await;
    let system = "You are a careful assistant. ".repeat(8);
    let body = |stream: bool| {
        json!({"model": "claude", "max_tokens": 100, "stream": stream, "stop_sequences": ["said"],
               "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
               "messages": [{"role": "user", "content": "Hello there"}]})
    };
    let cached = (system.chars().count() as u64).div_ceil(4);
    let all = (system.chars().count() as u64 + "Hello there".len() as u64).div_ceil(4);
    // the first request writes the marked prefix to the cache
    let r = post(&s.base, "/v1/messages", &body(false)).await;
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["usage"]["cache_creation_input_tokens"], cached, "{answer}");
    assert_eq!(answer["usage"]["cache_read_input_tokens"], 0, "{answer}");
    assert_eq!(answer["usage"]["input_tokens"], all - cached, "{answer}");
    // the next reads it
    let r = post(&s.base, "/v1/messages", &body(false)).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let usage = &answer["usage"];
    assert_eq!(usage["cache_read_input_tokens"], cached, "{answer}");
    assert_eq!(usage["cache_creation_input_tokens"], 0, "{answer}");
    // input_tokens leaves the cache out, as Anthropic's does
    assert_eq!(usage["input_tokens"], all - cached, "{answer}");
    // which stop sequence ended the answer comes back
    assert_eq!(answer["stop_sequence"], "said", "{answer}");
    assert_eq!(answer["stop_reason"], "stop_sequence");

    let r = post(&s.base, "/v1/messages", &body(true)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let delta = sse_data(&text).into_iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"], json!({"stop_reason": "stop_sequence", "stop_sequence": "said"}), "{text}");
    assert_eq!(delta["usage"]["cache_read_input_tokens"], cached, "{text}");
    assert_eq!(delta["usage"]["input_tokens"], all - cached, "{text}");
}

#[tokio::test]
async fn usage_is_mapped_across_wires_streamed_and_not() {
    let s = setup().await;
    // an Anthropic caller served by OpenAI: reasoning and cache figures in Anthropic's terms
    let r = post(
        &s.base,
        "/v1/messages",
        &json!({"model": "gpt", "max_tokens": 100, "messages": [{"role": "user", "content": "Hello there"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["usage"]["cache_read_input_tokens"], 0, "{answer}");
    assert_eq!(answer["usage"]["input_tokens"], 3, "{answer}");
    // OpenAI members have no place on this wire
    assert!(answer.get("system_fingerprint").is_none(), "{answer}");

    // an OpenAI caller served by Claude with a cached prefix: prompt_tokens counts it
    let long = "Some long shared context. ".repeat(8);
    for stream in [false, true] {
        let r = post(
            &s.base,
            "/v1/chat/completions",
            &json!({"model": "claude", "stream": stream, "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": long}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
        let usage = if stream {
            sse_data(&r.text().await.unwrap()).last().unwrap()["usage"].clone()
        } else {
            r.json::<Value>().await.unwrap()["usage"].clone()
        };
        assert_eq!(usage["prompt_tokens"], (long.len() as u64).div_ceil(4), "{usage}");
        assert!(usage.get("completion_tokens_details").is_none(), "{usage}");
    }
}

#[tokio::test]
async fn the_library_path_returns_every_choice_and_logprobs_streamed_and_not() {
    use futures::StreamExt;
    use switchyard::{ChatRequest, Policy, Router, StreamCollector};

    let sim = support::sim().await;
    let router = Router::new(Policy::from_toml(&policy_text(&sim), "inline").unwrap());
    let mut request = ChatRequest::user("Hello there");
    request.n = Some(3);
    request.logprobs = Some(true);
    request.top_logprobs = Some(1);
    let ok = router.chat("gpt", request.clone()).await.unwrap();
    let answer = &ok.response;
    assert_eq!(answer.text, "Hello from gpt-sim. You said: Hello there");
    assert_eq!(answer.alternatives.iter().map(|c| c.index).collect::<Vec<_>>(), [1, 2]);
    assert!(answer.alternatives.iter().all(|c| c.text == answer.text));
    let logprobs = answer.logprobs.as_ref().unwrap();
    assert_eq!(logprobs.len(), 7);
    assert_eq!(logprobs[0].top_logprobs.len(), 1);
    assert_eq!(answer.extra.get("system_fingerprint"), Some(&json!("fp_sim")));

    let mut stream = router.chat_stream("gpt", request).await.unwrap();
    let mut collector = StreamCollector::new();
    while let Some(event) = stream.next().await {
        collector.push(&event.unwrap());
    }
    let streamed = collector.finish("openai", "gpt-sim", None).unwrap();
    assert_eq!(streamed.text, answer.text);
    assert_eq!(streamed.alternatives.len(), 2);
    assert!(streamed.alternatives.iter().all(|c| c.text == answer.text));
    assert_eq!(streamed.logprobs.as_ref().map(Vec::len), Some(7));
}

#[tokio::test]
async fn a_request_lands_only_on_models_that_accept_what_it_needs() {
    let s = setup().await;
    let picture = |route: &str, stream: bool| {
        json!({"model": route, "stream": stream, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}
        ]}]})
    };
    // the text-only model is skipped for the one that sees, streamed and not
    for stream in [false, true] {
        let r = post(&s.base, "/v1/chat/completions", &picture("text_then_vision", stream)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchyard-model"], "gpt-4o");
        if !stream {
            assert_eq!(r.headers()["x-switchyard-attempts"], "2");
        }
        let _ = r.bytes().await.unwrap();
    }
    assert_eq!(s.sim.request_count(Protocol::Openai, Some("gpt-text")), 0);
    assert_eq!(s.sim.request_count(Protocol::Openai, Some("gpt-4o")), 2);

    // a text request still goes to the first target
    let r = post(
        &s.base,
        "/v1/chat/completions",
        &json!({"model": "text_then_vision", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(r.headers()["x-switchyard-model"], "gpt-text");

    // nobody on the route can reason: one 400 naming the feature and why each target was
    // skipped, before any call
    let before = s.sim.requests().len();
    let r = post(
        &s.base,
        "/v1/chat/completions",
        &json!({"model": "text_only", "reasoning_effort": "high", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(
        err["error"]["message"],
        "no target of route `text_only` can carry this request: openai/gpt-text cannot take reasoning; \
         openai/gpt-4o-mini cannot take reasoning"
    );
    let attempts = err["error"]["switchyard"]["attempts"].as_array().unwrap();
    assert!(attempts.iter().all(|a| a["outcome"] == "skipped" && a["skip_reason"] == "unsupported: reasoning"));
    assert_eq!(s.sim.requests().len(), before, "no call was made");

    // an Anthropic caller's PDF: the text-only model is skipped, the next one reads it
    let r = post(
        &s.base,
        "/v1/messages",
        &json!({"model": "text_only", "max_tokens": 100, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
            {"type": "text", "text": "Summarize."}
        ]}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-model"], "gpt-4o-mini");
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
    let got = upstream(&s.sim, Protocol::Openai);
    assert_eq!(got["messages"][0]["content"][0]["file"]["file_data"], "data:application/pdf;base64,JVBERi0=");
}

#[tokio::test]
async fn anthropic_beta_headers_reach_claude_and_are_dropped_and_reported_elsewhere() {
    let s = setup().await;
    let client = reqwest::Client::new();
    let body = |route: &str| json!({"model": route, "max_tokens": 100, "messages": [{"role": "user", "content": "Hello there"}]});
    let r = client
        .post(format!("{}/v1/messages", s.base))
        .header("anthropic-beta", "context-1m-2025-08-07, interleaved-thinking-2025-05-14")
        .header("anthropic-beta", "context-1m-2025-08-07")
        .json(&body("claude"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = s.sim.requests().into_iter().rev().find(|r| r.protocol == Protocol::Anthropic).unwrap();
    assert_eq!(got.header("anthropic-beta"), Some("context-1m-2025-08-07,interleaved-thinking-2025-05-14"));

    // OpenAI has no beta header, and the header only turns on features of the body (each one
    // the body uses is named by its own member): dropped and reported, never sent
    let r = client
        .post(format!("{}/v1/messages", s.base))
        .header("anthropic-beta", "context-1m-2025-08-07")
        .json(&body("gpt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-dropped"].to_str().unwrap(), "anthropic-beta");
    let got = s.sim.requests().into_iter().rev().find(|r| r.protocol == Protocol::Openai).unwrap();
    assert_eq!(got.header("anthropic-beta"), None);
}

#[tokio::test]
async fn an_openai_caller_served_by_claude_gets_its_thinking_as_reasoning_content() {
    let s = setup().await;
    let body = |stream: bool| {
        json!({"model": "claude", "stream": stream, "reasoning_effort": "low", "max_completion_tokens": 2000,
               "messages": [{"role": "user", "content": "Hello there"}]})
    };
    let answer: Value = post(&s.base, "/v1/chat/completions", &body(false)).await.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["reasoning_content"], "The user said: Hello there", "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello from claude-sonnet-4-5. You said: Hello there");

    let text = post(&s.base, "/v1/chat/completions", &body(true)).await.text().await.unwrap();
    let reasoning: String = sse_data(&text)
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(reasoning, "The user said: Hello there", "{text}");
}

#[tokio::test]
async fn a_same_wire_stream_cut_mid_answer_is_continued_by_an_encoded_request_not_the_callers_body() {
    let s = setup().await;
    s.sim.add_fault(
        switchyard::sim::FaultRule::new(Protocol::Anthropic, switchyard::sim::Fault::Cut { after_tokens: 3 }).first(1),
    );
    let sent = anthropic_request("claude_twice", true);
    let r = post(&s.base, "/v1/messages", &sent).await;
    assert_eq!(r.status(), 200);
    let text: String = sse_data(&r.text().await.unwrap())
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    let logged = s.sim.requests();
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert_eq!(logged[0].fault.as_deref(), Some("cut"));
    let (first, second) = (&logged[0].body, &logged[1].body);
    assert_eq!(first["messages"], sent["messages"], "the first attempt gets the caller's body");
    // the continuation is the caller's request plus the partial answer and, as thinking is on
    // (Claude takes no prefill then), the instruction to go on: encoded, its unknown members
    // still ride along (same wire)
    let turns = second["messages"].as_array().unwrap();
    let (partial, instruction) = (&turns[turns.len() - 2], &turns[turns.len() - 1]);
    assert_eq!((partial["role"].as_str(), instruction["role"].as_str()), (Some("assistant"), Some("user")));
    let said = |m: &Value| m["content"].as_str().or(m["content"][0]["text"].as_str()).unwrap().to_owned();
    assert_eq!(said(instruction), switchyard::router::INSTRUCTION);
    let partial = said(partial);
    assert!(!partial.is_empty() && text.starts_with(&partial), "{partial:?} / {text:?}");
    assert_eq!(second["a_parameter_from_the_future"], sent["a_parameter_from_the_future"]);
    assert!(text.ends_with("Summarize both."), "one answer, nothing lost: {text:?}");
}
