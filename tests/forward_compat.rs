//! A forward-compatible front door, through `switchyard serve` in front of the simulated
//! providers: a target of the caller's wire gets the caller's body with every member, known or not
//! (what Claude Code, Codex and members invented next month send); a target of another wire is
//! skipped naming what it cannot take, and a request is refused only when no target can take it;
//! what cannot change the answer is dropped and reported; the caller's provider headers reach a
//! target of its wire as each provider's `forward_headers` and `drop_betas` say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use switchyard::Protocol;
use switchyard::serve::Gateway;
use switchyard::sim::SimServer;

struct Setup {
    sim: SimServer,
    _gateway: Gateway,
    base: String,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let sim = support::sim().await;
    let (providers, responses) = (sim.providers_toml(), support::responses_provider_toml(&sim));
    let cloud = support::provider_toml(
        "cloud",
        "anthropic",
        &sim.anthropic_base_url(),
        "forward_headers = [\"anthropic-beta\"]\ndrop_betas = [\"context-management-*\", \"effort-2025-11-24\"]",
    );
    let text = format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
{providers}
{cloud}{responses}
[routes.claude]
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
[routes.gpt]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}]
[routes.gpt_then_claude]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
[routes.cloud]
targets = [{{ provider = "cloud", model = "claude-sonnet-4-5" }}]
[routes.native]
targets = [{{ provider = "responses", model = "gpt-4.1" }}]
[routes.chat_then_native]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "responses", model = "gpt-4.1" }}]
"#
    );
    let (gateway, base, dir) = support::gateway(&text).await;
    Setup { sim, _gateway: gateway, base, _dir: dir }
}

async fn post(base: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(format!("{base}{path}")).json(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

/// The last body the simulator received on `protocol`'s wire.
fn last(sim: &SimServer, protocol: Protocol) -> switchyard::sim::RecordedRequest {
    sim.requests().into_iter().rev().find(|r| r.protocol == protocol).expect("a request upstream")
}

/// `body` with its model set to `model`: what a same-wire target must receive.
fn as_sent_to(body: &Value, model: &str) -> Value {
    let mut b = body.clone();
    b["model"] = json!(model);
    b
}

/// What Claude Code 2.1 sends for a model name it does not know (its first request, trimmed),
/// with a top-level member and a block type of next month's.
fn claude_code(route: &str) -> Value {
    json!({
        "model": route,
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral", "scope": "global"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "say hi"}, {"type": "a_block_of_next_month", "data": 1}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment\nPlatform: linux"}]},
        ],
        "tools": [
            {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
            {"name": "Later", "description": "Loaded on demand", "input_schema": {"type": "object"}, "defer_loading": true},
        ],
        "metadata": {"user_id": "{\"device_id\":\"d\"}"},
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "a_member_of_next_month": {"x": [1, 2.50, null]},
    })
}

const CLAUDE_CODE_BETAS: &str =
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,effort-2025-11-24";

/// What Codex 0.171 sends on the Responses wire (its first request, trimmed).
fn codex(route: &str) -> Value {
    json!({
        "model": route,
        "stream": false,
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are a coding agent."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "say hi"}]},
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "description": "Runs a command", "strict": false,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
            {"type": "namespace", "name": "multi_agent_v1", "tools": []},
            {"type": "web_search", "external_web_access": false},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "reasoning": {"summary": "auto"},
        "store": false,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "01a251a1",
        "client_metadata": {"turn_id": "t1"},
    })
}

#[tokio::test]
async fn a_same_wire_target_gets_every_member_known_or_not_with_the_callers_provider_headers() {
    let s = setup().await;
    let body = claude_code("claude");
    let headers = [("anthropic-beta", CLAUDE_CODE_BETAS), ("anthropic-version", "2023-06-01")];
    let r = post(&s.base, "/v1/messages", &body, &headers).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let got = last(&s.sim, Protocol::Anthropic);
    assert_eq!(got.body, as_sent_to(&body, "claude-sonnet-4-5"));
    assert_eq!(got.header("anthropic-beta"), Some(CLAUDE_CODE_BETAS));
    assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));

    // Chat Completions: a role, a tool, a tool choice and a response format of next month's
    let body = json!({
        "model": "gpt",
        "messages": [{"role": "user", "content": "hi"}, {"role": "critic", "content": "be brief"}],
        "tools": [{"type": "custom", "custom": {"name": "patch", "format": {"type": "grammar"}}}],
        "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
        "verbosity": "low",
    });
    let r = post(&s.base, "/v1/chat/completions", &body, &[("openai-beta", "assistants=v2")]).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let got = last(&s.sim, Protocol::Openai);
    assert_eq!(got.body, as_sent_to(&body, "gpt-4o-mini"));
    assert_eq!(got.header("openai-beta"), Some("assistants=v2"));

    // the Responses API: Codex's body, unchanged, with its beta header
    let body = codex("native");
    let r = post(&s.base, "/v1/responses", &body, &[("openai-beta", "responses=experimental")]).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let got = last(&s.sim, Protocol::OpenaiResponses);
    assert_eq!(got.body, as_sent_to(&body, "gpt-4.1"));
    assert_eq!(got.header("openai-beta"), Some("responses=experimental"));

    // a provider header belongs to its wire: a Responses caller's is not a Chat Completions one's
    let body = json!({"model": "gpt", "input": "hi"});
    let r = post(&s.base, "/v1/responses", &body, &[("openai-beta", "responses=experimental")]).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(last(&s.sim, Protocol::Openai).header("openai-beta"), None);
}

#[tokio::test]
async fn across_wires_what_cannot_change_the_answer_is_dropped_and_reported() {
    let s = setup().await;
    let mut body = claude_code("gpt");
    // the two members of Claude Code's request with no equivalent at all, taken out: what is left
    // has a place on the OpenAI wire or cannot change the answer
    body.as_object_mut().unwrap().remove("a_member_of_next_month");
    body["messages"][0]["content"].as_array_mut().unwrap().pop();
    for stream in [false, true] {
        body["stream"] = json!(stream);
        let r = post(&s.base, "/v1/messages", &body, &[("anthropic-beta", CLAUDE_CODE_BETAS)]).await;
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        let dropped = r.headers()["x-switchyard-dropped"].to_str().unwrap().to_owned();
        for name in ["anthropic-beta", "context_management", "defer_loading", "thinking", "cache_control.scope"] {
            assert!(dropped.split(',').any(|d| d == name), "{name} not in {dropped}");
        }
        let _ = r.bytes().await;
        let got = last(&s.sim, Protocol::Openai).body;
        // the system turn in the middle stays where it was; gpt-4o-mini does not reason, so it is
        // not sent an effort (it meets `adaptive` by not thinking)
        assert_eq!(got["messages"][0]["role"], "system");
        assert_eq!(got["messages"][2]["role"], "system");
        assert_eq!(got["messages"][2]["content"], "# Environment\nPlatform: linux");
        assert!(got.get("reasoning_effort").is_none() && got.get("context_management").is_none(), "{got}");
        assert_eq!(got["tools"].as_array().map(Vec::len), Some(2));
        // Claude Code's 32,000 is more than gpt-4o-mini can write: capped at its output limit
        assert_eq!(got["max_completion_tokens"], 16384);
        assert_eq!(last(&s.sim, Protocol::Openai).header("anthropic-beta"), None);
    }
}

#[tokio::test]
async fn across_wires_a_member_without_an_equivalent_skips_the_target_by_name() {
    let s = setup().await;
    let before = s.sim.request_count(Protocol::Openai, None);
    // first target OpenAI: skipped for the members it cannot take, Claude serves
    let r = post(&s.base, "/v1/messages", &claude_code("gpt_then_claude"), &[]).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(r.headers()["x-switchyard-provider"], "anthropic");
    assert_eq!(r.headers()["x-switchyard-attempts"], "2");
    assert_eq!(s.sim.request_count(Protocol::Openai, None), before, "skipped, not called");

    // no target can take it: one 400 in the caller's dialect naming each member and the target
    let r = post(&s.base, "/v1/messages", &claude_code("gpt"), &[]).await;
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["type"], "error");
    let message = err["error"]["message"].as_str().unwrap();
    for name in ["`a_member_of_next_month`", "`a_block_of_next_month`", "openai/gpt-4o-mini"] {
        assert!(message.contains(name), "{name} not in {message}");
    }
    for harmless in ["context_management", "defer_loading"] {
        assert!(!message.contains(harmless), "{harmless} in {message}");
    }
    let skip = err["switchyard"]["attempts"][0]["skip_reason"].as_str().unwrap();
    assert!(skip.starts_with("unsupported: ") && skip.contains("`a_member_of_next_month`"), "{skip}");
    assert_eq!(s.sim.request_count(Protocol::Openai, None), before, "refused before any call");

    // Codex: a Chat Completions target cannot run OpenAI's hosted tools; the Responses target can
    let r = post(&s.base, "/v1/responses", &codex("chat_then_native"), &[]).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(r.headers()["x-switchyard-provider"], "responses");
    let r = post(&s.base, "/v1/responses", &codex("gpt"), &[]).await;
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    let message = err["error"]["message"].as_str().unwrap();
    for name in ["`namespace tool`", "`web_search tool`"] {
        assert!(message.contains(name), "{name} not in {message}");
    }
    for harmless in ["client_metadata", "include", "reasoning.summary"] {
        assert!(!message.contains(harmless), "{harmless} in {message}");
    }
}

#[tokio::test]
async fn a_provider_is_sent_only_the_caller_headers_and_betas_it_takes() {
    let s = setup().await;
    let mut body = claude_code("cloud");
    body.as_object_mut().unwrap().remove("a_member_of_next_month");
    let headers = [("anthropic-beta", CLAUDE_CODE_BETAS), ("anthropic-version", "2023-06-01")];
    let r = post(&s.base, "/v1/messages", &body, &headers).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let dropped = r.headers()["x-switchyard-dropped"].to_str().unwrap().to_owned();
    assert_eq!(dropped, "anthropic-beta context-management-2025-06-27,anthropic-beta effort-2025-11-24");
    let got = last(&s.sim, Protocol::Anthropic);
    assert_eq!(got.header("anthropic-beta"), Some("claude-code-20250219,interleaved-thinking-2025-05-14"));
    // its own version, not the caller's (`forward_headers` leaves it out): the adapter's default
    assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(got.body, as_sent_to(&body, "claude-sonnet-4-5"), "the body itself is the caller's");
}

#[test]
fn forward_headers_and_drop_betas_are_checked_naming_the_key() {
    let policy = |extra: &str| {
        format!(
            "[providers.c]\nprotocol = \"anthropic\"\nbase_url = \"http://127.0.0.1:9\"\nauth = \"none\"\n{extra}\n\
             [routes.r]\ntargets = [{{ provider = \"c\", model = \"m\" }}]\n"
        )
    };
    let err = switchyard::Policy::from_toml(&policy("forward_headers = [\"x-api-key\"]"), "p.toml").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("providers.c.forward_headers") && text.contains("`x-api-key`"), "{text}");
    let err = switchyard::Policy::from_toml(&policy("drop_betas = [\"a*b\"]"), "p.toml").unwrap_err();
    assert!(err.to_string().contains("providers.c.drop_betas"), "{err}");
    let ok = switchyard::Policy::from_toml(&policy("forward_headers = []\ndrop_betas = [\"x-*\"]"), "p.toml").unwrap();
    let rules = &ok.provider("c").unwrap().caller_headers;
    assert!(!rules.forwards("anthropic-beta") && rules.drops_beta("x-1") && !rules.drops_beta("y"));
}
