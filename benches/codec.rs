//! What the gateway's request codec costs per request: decoding a caller's body, and producing
//! the upstream body three ways, measured in the same run:
//!
//! - `same_wire_passthrough`: the caller's body with `model` / `stream` edited in place (what a
//!   target of the caller's wire is sent);
//! - `same_wire_reencoded`: the decoded request encoded again for the same wire (what was sent
//!   before passthrough);
//! - `cross_wire`: the decoded request translated to the other wire.
//!
//! The request is a realistic agent turn: a system prompt, 24 turns with tool calls and results,
//! 4 tools with JSON schemas, sampling options and two members switchyard has no type for (about
//! 14 KB). `cargo bench --bench codec` prints criterion's figures, then the ratios.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use serde_json::{Value, json};
use switchyard::Protocol;
use switchyard::wire::{self, Target};

const GROUP: &str = "codec";

fn request() -> Value {
    let mut messages = vec![json!({"role": "system", "content": "You are a careful assistant. ".repeat(20)})];
    for i in 0..12 {
        messages.push(json!({"role": "user", "content": format!("Step {i}: look up the order status and explain what changed since yesterday, with details.")}));
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": format!("call_{i}"), "type": "function", "function": {"name": "lookup_order", "arguments": format!("{{\"order_id\":\"A-{i:04}\",\"fields\":[\"status\",\"eta\",\"items\"]}}")}}
        ]}));
        messages.push(json!({"role": "tool", "tool_call_id": format!("call_{i}"), "content": format!("{{\"status\":\"shipped\",\"eta\":\"2026-12-{:02}\",\"items\":[{{\"sku\":\"X-1\",\"qty\":2}},{{\"sku\":\"Y-7\",\"qty\":1}}]}}", i + 1)}));
        messages.push(json!({"role": "assistant", "content": format!("Order A-{i:04} has shipped and should arrive on December {}. Two items are on the way.", i + 1)}));
    }
    let tool = |name: &str| {
        json!({"type": "function", "function": {"name": name, "description": format!("{name}: find the record by id and return its fields"),
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "description": "the order id"},
                "fields": {"type": "array", "items": {"type": "string", "enum": ["status", "eta", "items", "price"]}}},
                "required": ["order_id"]}}})
    };
    json!({
        "model": "agents",
        "messages": messages,
        "tools": [tool("lookup_order"), tool("lookup_customer"), tool("cancel_order"), tool("refund_order")],
        "tool_choice": "auto",
        "temperature": 0.2,
        "top_p": 0.95,
        "max_completion_tokens": 2048,
        "seed": 7,
        "user": "user-42",
        "prompt_cache_key": "agents-v3",
        "a_parameter_from_the_future": {"on": true},
    })
}

fn main() {
    let body = Bytes::from(serde_json::to_vec(&request()).unwrap());
    let decoded = wire::decode(Protocol::Openai, body.clone()).unwrap();
    let original = decoded.original.clone();
    let target = Target::new("gpt-4o-mini");
    // `seed` and the members only OpenAI knows are dropped (and reported) on the way to Claude
    let claude = Target { unsupported: wire::UnsupportedMode::Drop, ..Target::new("claude-sonnet-4-5") };
    // the same bytes, whichever way they are made: the upstream sees one request
    let passthrough = wire::encode_bytes(Protocol::Openai, &decoded.request, original.as_ref(), target, true).unwrap();
    let reencoded = wire::encode_bytes(Protocol::Openai, &decoded.request, None, target, true).unwrap();
    let parse = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap();
    assert_eq!(parse(&passthrough.0)["messages"], parse(&reencoded.0)["messages"]);
    eprintln!("request body: {} bytes", body.len());

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    {
        let mut g = c.benchmark_group(GROUP);
        g.bench_function("decode", |b| b.iter(|| wire::decode(Protocol::Openai, black_box(body.clone())).unwrap()));
        g.bench_function("same_wire_passthrough", |b| {
            b.iter(|| {
                wire::encode_bytes(Protocol::Openai, black_box(&decoded.request), original.as_ref(), target, true)
                    .unwrap()
            })
        });
        g.bench_function("same_wire_reencoded", |b| {
            b.iter(|| wire::encode_bytes(Protocol::Openai, black_box(&decoded.request), None, target, true).unwrap())
        });
        g.bench_function("cross_wire", |b| {
            b.iter(|| wire::encode_bytes(Protocol::Anthropic, black_box(&decoded.request), None, claude, true).unwrap())
        });
        // what a token limit reads: the estimate, or the tokenizer's count for an OpenAI model
        // (the tables loaded once, before the timing)
        let _ = switchyard::tokens::count_openai("gpt-4o-mini", &decoded.request);
        g.bench_function("tokens_estimate", |b| b.iter(|| black_box(&decoded.request).estimated_prompt_tokens()));
        g.bench_function("tokens_counted_o200k", |b| {
            b.iter(|| switchyard::tokens::count_openai("gpt-4o-mini", black_box(&decoded.request)).unwrap())
        });
        g.finish();
    }
    c.final_summary();
    report();
}

/// Reads criterion's estimates of this run and prints the ratios.
fn report() {
    let mean = |id: &str| -> Option<f64> {
        let path = format!("target/criterion/{GROUP}/{id}/new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["mean"]["point_estimate"].as_f64()
    };
    let (Some(decode), Some(pass), Some(re), Some(cross)) =
        (mean("decode"), mean("same_wire_passthrough"), mean("same_wire_reencoded"), mean("cross_wire"))
    else {
        eprintln!("no estimates under target/criterion/{GROUP} (run with `cargo bench --bench codec`)");
        return;
    };
    println!("\n| path | mean | ratio to passthrough |");
    println!("|---|---|---|");
    println!("| decode (every path) | {:.1} µs | |", decode / 1000.0);
    println!("| same wire, passthrough | {:.1} µs | 1.00 |", pass / 1000.0);
    println!("| same wire, re-encoded | {:.1} µs | {:.2} |", re / 1000.0, re / pass);
    println!("| other wire, translated | {:.1} µs | {:.2} |", cross / 1000.0, cross / pass);
    if let (Some(est), Some(count)) = (mean("tokens_estimate"), mean("tokens_counted_o200k")) {
        println!("\n| prompt tokens for a limit | mean | ratio to the estimate |");
        println!("|---|---|---|");
        println!("| estimated from characters | {:.1} µs | 1.00 |", est / 1000.0);
        println!("| counted with o200k_base | {:.1} µs | {:.1} |", count / 1000.0, count / est);
    }
}
