//! Property-based fuzzing of what strangers write: the request parsers of both client wires, the
//! policy loader and the key file; and, through the real gateway, that malformed input is always
//! a 4xx. Each property runs a few hundred cases in `cargo test`; for a long run:
//! `PROPTEST_CASES=100000 cargo test --release --test fuzz`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use switchyard::Protocol;
use switchyard::policy::Policy;
use switchyard::wire::{self, Target, UnsupportedMode};

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![Just("user"), Just("assistant"), Just("system"), Just("tool"), Just("text"), Just("image_url")]
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    ".{0,8}",
                    Just("type".to_owned()),
                    Just("role".to_owned()),
                    Just("content".to_owned()),
                    Just("text".to_owned()),
                    Just("name".to_owned()),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn openai_request() -> Value {
    json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "temperature": 0.5, "top_p": 0.9, "seed": 7, "stop": ["END"], "max_completion_tokens": 50,
        "stream": true, "stream_options": {"include_usage": true},
    })
}

fn anthropic_request() -> Value {
    json!({
        "model": "chat",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "temperature": 0.5, "top_k": 5, "stop_sequences": ["END"], "metadata": {"user_id": "u"},
        "stream": false,
    })
}

/// Replaces the member at a path picked by `picks` with `value`.
fn mutate(mut doc: Value, picks: &[usize], value: Value) -> Value {
    fn at<'a>(v: &'a mut Value, picks: &[usize]) -> &'a mut Value {
        let Some((pick, rest)) = picks.split_first() else { return v };
        let go = match &*v {
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => false,
        };
        if !go {
            return v;
        }
        match v {
            Value::Object(m) => {
                let n = m.len();
                let child = m.values_mut().nth(pick % n).unwrap();
                at(child, rest)
            }
            Value::Array(a) => {
                let n = a.len();
                at(&mut a[pick % n], rest)
            }
            other => other,
        }
    }
    *at(&mut doc, picks) = value;
    doc
}

fn responses_request() -> Value {
    json!({
        "model": "chat",
        "instructions": "be brief",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}, {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
        ],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": "auto",
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        "temperature": 0.5, "top_p": 0.9, "max_output_tokens": 50, "reasoning": {"effort": "low"},
        "stream": true,
    })
}

const WIRES: [Protocol; 3] = [Protocol::Openai, Protocol::Anthropic, Protocol::OpenaiResponses];

/// Decoding any wire, and encoding what decoded for every wire, never panics.
fn decode_and_encode(protocol: Protocol, body: Vec<u8>) {
    let Ok(decoded) = wire::decode(protocol, body) else { return };
    for to in WIRES {
        for unsupported in [UnsupportedMode::Error, UnsupportedMode::Drop] {
            let target = Target { unsupported, ..Target::new("model-x") };
            let _ = wire::encode_bytes(to, &decoded.request, decoded.original.as_ref(), target, decoded.stream);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_a_parser(body in prop::collection::vec(any::<u8>(), 0..512)) {
        for protocol in WIRES {
            decode_and_encode(protocol, body.clone());
        }
    }

    #[test]
    fn arbitrary_json_never_panics_a_parser(doc in any_json()) {
        let body = serde_json::to_vec(&doc).unwrap();
        for protocol in WIRES {
            decode_and_encode(protocol, body.clone());
        }
    }

    /// A real request with one member anywhere in it replaced by anything.
    #[test]
    fn requests_with_a_member_replaced_never_panic(
        picks in prop::collection::vec(any::<usize>(), 0..6),
        value in any_json(),
    ) {
        let o = serde_json::to_vec(&mutate(openai_request(), &picks, value.clone())).unwrap();
        decode_and_encode(Protocol::Openai, o);
        let a = serde_json::to_vec(&mutate(anthropic_request(), &picks, value.clone())).unwrap();
        decode_and_encode(Protocol::Anthropic, a);
        let r = serde_json::to_vec(&mutate(responses_request(), &picks, value)).unwrap();
        decode_and_encode(Protocol::OpenaiResponses, r);
    }

    /// A real request cut short or with bytes flipped.
    #[test]
    fn requests_cut_or_flipped_never_panic(cut in any::<usize>(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4)) {
        for doc in [openai_request(), anthropic_request(), responses_request()] {
            let mut body = serde_json::to_vec(&doc).unwrap();
            body.truncate(cut % (body.len() + 1));
            let n = body.len().max(1);
            for (at, byte) in &flips {
                if let Some(b) = body.get_mut(at % n) {
                    *b = *byte;
                }
            }
            for protocol in WIRES {
                decode_and_encode(protocol, body.clone());
            }
        }
    }

    /// The policy loader: every rejection names a real place in the file.
    #[test]
    fn policies_with_lines_changed_never_panic_and_errors_point_into_the_file(
        edits in prop::collection::vec((any::<usize>(), policy_line()), 0..4),
        cut in any::<usize>(),
    ) {
        let mut lines: Vec<String> = POLICY.lines().map(str::to_owned).collect();
        for (at, line) in edits {
            let i = at % (lines.len() + 1);
            lines.insert(i, line);
        }
        let mut text = lines.join("\n");
        if cut % 4 == 0 {
            let mut end = (cut / 4) % (text.len() + 1);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        if let Err(e) = Policy::from_toml(&text, "fuzz.toml") {
            let line_count = text.lines().count().max(1);
            for d in e.diagnostics() {
                prop_assert!(d.location.line >= 1 && d.location.line <= line_count + 1, "{d} in:\n{text}");
                prop_assert!(d.location.column >= 1, "{d}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The key file, read with the policy: no panic, and every rejection names a line of the
    /// key file or of the policy.
    #[test]
    fn key_files_with_lines_changed_never_panic(edits in prop::collection::vec((any::<usize>(), key_line()), 0..5)) {
        let mut lines: Vec<String> = KEYS.lines().map(str::to_owned).collect();
        for (at, line) in edits {
            let i = at % (lines.len() + 1);
            lines.insert(i, line);
        }
        let keys = lines.join("\n");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keys.toml"), &keys).unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, format!("{POLICY}keys_file = \"keys.toml\"\n")).unwrap();
        if let Err(e) = Policy::from_file(&policy) {
            for d in e.diagnostics() {
                let in_keys = d.location.file.ends_with("keys.toml");
                let count = if in_keys { keys.lines().count() } else { POLICY.lines().count() + 1 };
                prop_assert!(d.location.line >= 1 && d.location.line <= count.max(1) + 1, "{d} in:\n{keys}");
            }
        }
    }
}

const KEYS: &str = r#"[keys.app]
key = "sk-app"
routes = ["chat"]
rpm = 10
[keys.ops]
sha256 = "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"
admin = true
"#;

/// A line a key file might have, right or wrong.
fn key_line() -> impl Strategy<Value = String> {
    const NAMES: &[&str] = &["key", "key_env", "sha256", "routes", "rpm", "tpm", "concurrency", "admin"];
    let value = prop_oneof![
        Just("\"sk-x\"".to_owned()),
        Just("[\"chat\", \"nope\"]".to_owned()),
        Just("0".to_owned()),
        Just("-5".to_owned()),
        Just("true".to_owned()),
        Just("\"zz\"".to_owned()),
        "\"[0-9a-f]{60,66}\"",
        "[ -~]{0,10}",
    ];
    let table = prop_oneof![
        Just("[keys.app]".to_owned()),
        Just("[keys.new]".to_owned()),
        Just("[other]".to_owned()),
        "\\[[a-z.]{1,10}\\]"
    ];
    prop_oneof![
        (prop::sample::select(NAMES).prop_map(str::to_owned), value).prop_map(|(k, v)| format!("{k} = {v}")),
        table,
        "[ -~]{0,20}",
    ]
}

const POLICY: &str = r#"[defaults]
retry = { max_attempts = 2, base = "10ms" }
timeouts = { first_token = "2s", total = "10s" }
breaker = { consecutive_failures = 3, cooldown = "5s" }
[providers.openai]
profile = "openai"
auth = "none"
base_url = "http://127.0.0.1:1"
[providers.anthropic]
profile = "anthropic"
auth = "none"
base_url = "http://127.0.0.1:2"
[routes.chat]
strategy = "priority"
resume = ["holdback", "instructed"]
targets = [{ provider = "openai", model = "gpt-4o-mini", limits = { rpm = 10 } }, { provider = "anthropic", model = "claude-sonnet-4-5" }]
[server]
max_connections = 10
header_read_timeout = "1s"
"#;

/// A line a policy might have, right or wrong.
fn policy_line() -> impl Strategy<Value = String> {
    const NAMES: &[&str] =
        &["retry", "timeouts", "targets", "strategy", "max_connections", "holdback", "resume", "probe"];
    let key = prop_oneof![prop::sample::select(NAMES).prop_map(str::to_owned), "[a-z_]{1,8}"];
    let value = prop_oneof![
        Just("\"5s\"".to_owned()),
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("{ max_attempts = 0 }".to_owned()),
        Just("[{ provider = \"nope\", model = \"m\" }]".to_owned()),
        Just("\"all\"".to_owned()),
        Just("[\"none\", \"prefill\"]".to_owned()),
        "\"[ -~]{0,10}\"",
        "[ -~]{0,10}",
    ];
    let table = prop_oneof![
        Just("[routes.other]".to_owned()),
        Just("[providers.x]".to_owned()),
        Just("[[drill.faults]]".to_owned()),
        Just("[server]".to_owned()),
        "\\[[a-z.]{1,10}\\]",
    ];
    prop_oneof![(key, value).prop_map(|(k, v)| format!("{k} = {v}")), table, "[ -~]{0,20}"]
}

/// Through the gateway: every malformed body is a 4xx in the caller's dialect, never a 5xx or
/// a dropped connection.
#[tokio::test]
async fn the_gateway_answers_every_malformed_request_with_a_4xx() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let sim = support::sim().await;
    let text = POLICY
        .replace("http://127.0.0.1:1\"", &format!("{}\"", sim.openai_base_url()))
        .replace("http://127.0.0.1:2\"", &format!("{}\"", sim.anthropic_base_url()));
    let (gateway, _, _dir) = support::gateway(&text).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let mut runner = TestRunner::deterministic();
    let strategy = (prop::collection::vec(any::<usize>(), 0..6), any_json(), any::<usize>());
    let (mut answered, mut served) = (0, 0);
    for _ in 0..200 {
        let (picks, value, cut) = strategy.new_tree(&mut runner).unwrap().current();
        for (path, doc) in [("/v1/chat/completions", openai_request()), ("/v1/messages", anthropic_request())] {
            let mut body = serde_json::to_vec(&mutate(doc, &picks, value.clone())).unwrap();
            if cut % 3 == 0 {
                body.truncate(cut % (body.len() + 1));
            }
            let r = http
                .post(format!("http://{}{path}", gateway.addr()))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!(status < 500, "{status} for {}: {text}", String::from_utf8_lossy(&body));
            if status >= 400 {
                let error: Value = serde_json::from_str(&text).unwrap();
                assert!(error["error"]["message"].is_string(), "{text}");
                answered += 1;
            } else {
                served += 1;
            }
        }
    }
    // both kinds occur (the runner is deterministic: 392 and 8): the mutations reach the routing
    // and encoding paths, not only the parser
    assert!(answered > 50 && served >= 5, "{answered} refused, {served} served");
}
