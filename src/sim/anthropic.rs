//! The Anthropic Messages wire, as the simulated server speaks it.

use bytes::Bytes;
use serde_json::{Value, json};

use super::answer::{self, Answer, Finish, Prompt, Reject, Reply};
use super::wire::{self, Dialect, Ids, Script, StatusOverrides, WireError};
use crate::chat::Usage;
use crate::provider::Protocol;
use crate::wire::anthropic::{error, response};
use crate::wire::sse;

/// Anthropic Messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnthropicWire;

impl Dialect for AnthropicWire {
    fn protocol(&self) -> Protocol {
        Protocol::Anthropic
    }

    fn endpoint(&self) -> &'static str {
        "/v1/messages"
    }

    fn request_id_header(&self) -> &'static str {
        "request-id"
    }

    fn prompt(&self, body: &Value) -> Result<Prompt, Reject> {
        if !body.is_object() {
            return Err(Reject::invalid("The request body is not valid JSON."));
        }
        let model =
            body.get("model").and_then(Value::as_str).ok_or_else(|| Reject::invalid("model: Field required"))?;
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .ok_or_else(|| Reject::invalid("messages: Field required"))?;
        let max_tokens = match body.get("max_tokens") {
            None | Some(Value::Null) => return Err(Reject::invalid("max_tokens: Field required")),
            Some(v) => v.as_u64().ok_or_else(|| Reject::invalid("max_tokens: Input should be a valid integer"))?,
        };
        if max_tokens == 0 {
            return Err(Reject::invalid("max_tokens: Input should be greater than or equal to 1"));
        }
        if messages.is_empty() {
            return Err(Reject::invalid("messages: at least one message is required"));
        }
        // what the request asks, read by the wire's own codec
        let decoded = crate::wire::anthropic::decode_value(body.clone()).map_err(Reject::invalid)?;
        Ok(Prompt::from_request(model, &decoded.request, Protocol::Anthropic))
    }

    fn reject(&self, reject: &Reject) -> WireError {
        let (status, error_type, message) = match reject {
            Reject::Invalid { message, .. } => (400, "invalid_request_error", message.clone()),
            Reject::ModelNotFound(model) => (404, "not_found_error", format!("model: {model}")),
            Reject::ContextExceeded { limit, tokens } => {
                (400, "invalid_request_error", format!("prompt is too long: {tokens} tokens > {limit} maximum"))
            }
        };
        WireError { status, error_type: error_type.into(), code: None, message, param: None }
    }

    fn status_error(&self, status: u16, overrides: StatusOverrides<'_>, model: &str) -> WireError {
        let (default_type, default_message) = default_error(status, model);
        WireError {
            status,
            error_type: overrides.error_type.unwrap_or(default_type).to_owned(),
            code: overrides.code.map(str::to_owned),
            message: overrides.message.map_or(default_message, str::to_owned),
            param: None,
        }
    }

    fn error_body(&self, error: &WireError, ids: Ids) -> Value {
        error_value(&error.error_type, &error.message, ids)
    }

    fn response(&self, answer: &Answer, ids: Ids) -> Value {
        let content = match &answer.reply {
            Reply::Text { tokens, .. } => json!([{ "type": "text", "text": tokens.concat() }]),
            Reply::Tool { name, input } => {
                json!([{ "type": "tool_use", "id": tool_id(ids), "name": name, "input": input }])
            }
        };
        let content = match (&answer.thinking, content) {
            (Some(thinking), Value::Array(mut blocks)) => {
                let block = json!({ "type": "thinking", "thinking": thinking, "signature": signature(ids) });
                blocks.insert(0, block);
                Value::Array(blocks)
            }
            (_, content) => content,
        };
        json!({
            "id": message_id(ids),
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": content,
            "stop_reason": stop_reason(answer),
            "stop_sequence": stop_sequence(answer),
            "usage": usage(answer, answer.output_tokens),
        })
    }

    fn script(&self, answer: &Answer, _body: &Value, ids: Ids) -> Script {
        let start = json!({
            "type": "message_start",
            "message": {
                "id": message_id(ids),
                "type": "message",
                "role": "assistant",
                "model": answer.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(answer, 1),
            },
        });
        // with thinking, block 0 is the thinking block and the answer is block 1
        let at = usize::from(answer.thinking.is_some());
        let delta = |delta: Value| {
            sse::named("content_block_delta", json!({ "type": "content_block_delta", "index": at, "delta": delta }))
        };
        let (block, tokens) = match &answer.reply {
            Reply::Text { tokens, .. } => (
                json!({ "type": "text", "text": "" }),
                tokens.iter().map(|t| delta(json!({ "type": "text_delta", "text": t }))).collect(),
            ),
            Reply::Tool { name, input } => (
                json!({ "type": "tool_use", "id": tool_id(ids), "name": name, "input": {} }),
                answer::pieces(&input.to_string(), 3)
                    .iter()
                    .map(|p| delta(json!({ "type": "input_json_delta", "partial_json": p })))
                    .collect(),
            ),
        };
        let mut head = vec![sse::named("message_start", &start)];
        if let Some(thinking) = &answer.thinking {
            let thinking_delta = |d: Value| {
                sse::named("content_block_delta", json!({ "type": "content_block_delta", "index": 0, "delta": d }))
            };
            head.extend([
                sse::named(
                    "content_block_start",
                    json!({ "type": "content_block_start", "index": 0,
                             "content_block": { "type": "thinking", "thinking": "" } }),
                ),
                thinking_delta(json!({ "type": "thinking_delta", "thinking": thinking })),
                thinking_delta(json!({ "type": "signature_delta", "signature": signature(ids) })),
                sse::named("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })),
            ]);
        }
        head.extend([
            sse::named(
                "content_block_start",
                json!({ "type": "content_block_start", "index": at, "content_block": block }),
            ),
            sse::named("ping", json!({ "type": "ping" })),
        ]);
        let tail = vec![
            sse::named("content_block_stop", json!({ "type": "content_block_stop", "index": at })),
            sse::named(
                "message_delta",
                json!({
                    "type": "message_delta",
                    "delta": { "stop_reason": stop_reason(answer), "stop_sequence": stop_sequence(answer) },
                    "usage": { "output_tokens": answer.output_tokens },
                }),
            ),
            sse::named("message_stop", json!({ "type": "message_stop" })),
        ];
        Script { head, tokens, tail, sentinel: None }
    }

    fn stream_error(&self, error_type: Option<&str>, ids: Ids) -> Bytes {
        let error_type = error_type.unwrap_or("overloaded_error");
        let message = default_message_for_type(error_type);
        sse::named("error", error_value(error_type, message, ids))
    }

    fn malformed(&self, _ids: Ids) -> Bytes {
        sse::named(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"#,
        )
    }
}

/// The wire's error envelope with the request id Anthropic adds to it.
fn error_value(kind: &str, message: &str, ids: Ids) -> Value {
    error::envelope(kind, message, Some(&ids.request_id()))
}

/// The signature the simulator puts on its thinking blocks.
fn signature(ids: Ids) -> String {
    format!("sig_sim_{}", ids.seq)
}

fn message_id(ids: Ids) -> String {
    format!("msg_sim_{}", ids.seq)
}

fn tool_id(ids: Ids) -> String {
    format!("toolu_sim_{}", ids.seq)
}

/// The wire's `stop_reason` for how the answer ended.
fn stop_reason(answer: &Answer) -> &'static str {
    let by_sequence = matches!(answer.reply, Reply::Text { finish: Finish::StopSequence(_), .. });
    response::stop_reason(wire::finish(&answer.reply), by_sequence)
}

/// The stop sequence that ended the answer, or null.
fn stop_sequence(answer: &Answer) -> Value {
    match &answer.reply {
        Reply::Text { finish: Finish::StopSequence(sequence), .. } => json!(sequence),
        _ => Value::Null,
    }
}

/// The wire's usage body, `output_tokens` so far.
fn usage(answer: &Answer, output_tokens: u64) -> Value {
    response::usage_body(&Usage { output_tokens, ..wire::usage(answer) })
}

/// `(error.type, message)` Anthropic sends with `status`.
fn default_error(status: u16, model: &str) -> (&'static str, String) {
    let error_type = crate::wire::anthropic::error::type_for_status(status);
    let message = match error_type {
        "not_found_error" => format!("model: {model}"),
        other => default_message_for_type(other).to_owned(),
    };
    (error_type, message)
}

fn default_message_for_type(error_type: &str) -> &'static str {
    match error_type {
        "authentication_error" => "invalid x-api-key",
        "billing_error" => {
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade \
             or purchase credits."
        }
        "permission_error" => "Your API key does not have permission to use the specified resource.",
        "not_found_error" => "Not found",
        "request_too_large" => "Request exceeds the maximum allowed number of bytes.",
        "rate_limit_error" => {
            "Number of request tokens has exceeded your per-minute rate limit. Please reduce the prompt length or \
             the maximum tokens requested, or try again later."
        }
        "api_error" => "Internal server error",
        "timeout_error" => "Request timed out",
        "overloaded_error" => "Overloaded",
        _ => "Invalid request (simulated).",
    }
}
