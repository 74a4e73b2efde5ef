//! The OpenAI Chat Completions wire, as the simulated server speaks it.

use bytes::Bytes;
use serde_json::{Value, json};

use super::answer::{self, Answer, Prompt, Reject, Reply};
use super::wire::{self, Dialect, Ids, Script, StatusOverrides, WireError, optional_count};
use crate::chat::ToolCall;
use crate::error::ErrorClass;
use crate::provider::Protocol;
use crate::wire::openai_chat::{error, response, stream};
use crate::wire::sse;

const SERVER_ERROR_MESSAGE: &str = "The server had an error while processing your request. Sorry about that!";
const OVERLOADED_MESSAGE: &str = "The engine is currently overloaded. Please try again later.";

/// OpenAI Chat Completions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenAiWire;

impl Dialect for OpenAiWire {
    fn protocol(&self) -> Protocol {
        Protocol::Openai
    }

    fn endpoint(&self) -> &'static str {
        "/v1/chat/completions"
    }

    fn request_id_header(&self) -> &'static str {
        "x-request-id"
    }

    fn prompt(&self, body: &Value) -> Result<Prompt, Reject> {
        if !body.is_object() {
            return Err(Reject::invalid(
                "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.",
            ));
        }
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| Reject::param("model", "you must provide a model parameter"))?;
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .ok_or_else(|| Reject::param("messages", "Missing required parameter: 'messages'."))?;
        if messages.is_empty() {
            return Err(Reject::param(
                "messages",
                "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            ));
        }
        for count in ["max_completion_tokens", "max_tokens"] {
            optional_count(body, count)?;
        }
        // OpenAI's own bounds, which also keep a hostile `n` from making the simulator allocate
        if optional_count(body, "n")?.is_some_and(|n| n > 128) {
            return Err(Reject::param("n", "Invalid 'n': integer above maximum value. Expected a value <= 128."));
        }
        if optional_count(body, "top_logprobs")?.is_some_and(|n| n > 20) {
            return Err(Reject::param(
                "top_logprobs",
                "Invalid 'top_logprobs': integer above maximum value. Expected a value <= 20.",
            ));
        }
        // what the request asks, read by the wire's own codec
        let decoded = crate::wire::openai_chat::decode_value(body.clone()).map_err(Reject::invalid)?;
        Ok(Prompt::from_request(model, &decoded.request, Protocol::Openai))
    }

    fn reject(&self, reject: &Reject) -> WireError {
        let (class, message, param) = match reject {
            Reject::Invalid { message, param } => (ErrorClass::InvalidRequest, message.clone(), *param),
            Reject::ModelNotFound(model) => (
                ErrorClass::NotFound,
                format!("The model `{model}` does not exist or you do not have access to it."),
                None,
            ),
            Reject::ContextExceeded { limit, tokens } => (
                ErrorClass::ContextLengthExceeded,
                format!(
                    "This model's maximum context length is {limit} tokens. However, your messages resulted in \
                     {tokens} tokens. Please reduce the length of the messages."
                ),
                Some("messages"),
            ),
        };
        let kind = error::for_class(class);
        WireError {
            status: kind.status,
            error_type: kind.kind.into(),
            code: kind.code.map(str::to_owned),
            message,
            param: param.map(str::to_owned),
        }
    }

    fn status_error(&self, status: u16, overrides: StatusOverrides<'_>, model: &str) -> WireError {
        let (default_type, default_code, default_message) = default_error(status, overrides.error_type, model);
        WireError {
            status,
            error_type: overrides.error_type.map_or(default_type, str::to_owned),
            code: overrides.code.map(str::to_owned).or(default_code),
            message: overrides.message.map_or(default_message, str::to_owned),
            param: None,
        }
    }

    fn error_body(&self, error: &WireError, _ids: Ids) -> Value {
        error::envelope(&error.message, &error.error_type, error.param.as_deref(), error.code.as_deref())
    }

    fn response(&self, answer: &Answer, ids: Ids) -> Value {
        let finish = response::finish_reason(wire::finish(&answer.reply));
        let (message, logprobs) = match &answer.reply {
            Reply::Text { tokens, .. } => (
                json!({ "role": "assistant", "content": tokens.concat(), "refusal": null }),
                answer.logprobs.map_or(Value::Null, |top| answer::logprobs(tokens, top)),
            ),
            Reply::Tool { name, input } => {
                let call = response::tool_call_body(&ToolCall::new(call_id(ids), name, input.to_string()));
                (json!({ "role": "assistant", "content": null, "refusal": null, "tool_calls": [call] }), Value::Null)
            }
        };
        let choices: Vec<Value> = (0..answer.choices)
            .map(|index| json!({ "index": index, "message": message, "logprobs": logprobs, "finish_reason": finish }))
            .collect();
        json!({
            "id": completion_id(ids),
            "object": "chat.completion",
            "created": ids.created,
            "model": answer.model,
            "choices": choices,
            "usage": usage(answer),
            "service_tier": "default",
            "system_fingerprint": "fp_sim",
        })
    }

    fn script(&self, answer: &Answer, body: &Value, ids: Ids) -> Script {
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        // one chunk per step, with a choice for every answer asked for (`n`), as OpenAI interleaves them
        let chunk = |delta: Value, logprobs: Value, finish: Option<&str>| {
            let choices: Vec<Value> = (0..answer.choices)
                .map(|index| json!({ "index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish }))
                .collect();
            let mut c = json!({
                "id": completion_id(ids),
                "object": "chat.completion.chunk",
                "created": ids.created,
                "model": answer.model,
                "system_fingerprint": "fp_sim",
                "choices": choices,
            });
            if include_usage {
                c["usage"] = Value::Null;
            }
            sse::data(&c)
        };
        let (head, tokens) = match &answer.reply {
            Reply::Text { tokens, .. } => (
                chunk(json!({ "role": "assistant", "content": "", "refusal": null }), Value::Null, None),
                tokens
                    .iter()
                    .map(|t| {
                        let logprobs =
                            answer.logprobs.map_or(Value::Null, |top| answer::logprobs(std::slice::from_ref(t), top));
                        chunk(json!({ "content": t }), logprobs, None)
                    })
                    .collect(),
            ),
            Reply::Tool { name, input } => {
                let start = stream::tool_call_delta(0, Some(&call_id(ids)), Some(name), "");
                let pieces = answer::pieces(&input.to_string(), 3);
                (
                    chunk(json!({ "role": "assistant", "content": null, "tool_calls": [start] }), Value::Null, None),
                    pieces
                        .iter()
                        .map(|p| {
                            let piece = stream::tool_call_delta(0, None, None, p);
                            chunk(json!({ "tool_calls": [piece] }), Value::Null, None)
                        })
                        .collect(),
                )
            }
        };
        let finish = response::finish_reason(wire::finish(&answer.reply));
        let mut tail = vec![chunk(json!({}), Value::Null, Some(finish))];
        if include_usage {
            tail.push(sse::data(json!({
                "id": completion_id(ids),
                "object": "chat.completion.chunk",
                "created": ids.created,
                "model": answer.model,
                "system_fingerprint": "fp_sim",
                "choices": [],
                "usage": usage(answer),
            })));
        }
        Script { head: vec![head], tokens, tail, sentinel: Some(sse::data(sse::DONE)) }
    }

    fn stream_error(&self, error_type: Option<&str>, _ids: Ids) -> Bytes {
        let error_type = error_type.unwrap_or("server_error");
        let message = if error_type.contains("overload") { OVERLOADED_MESSAGE } else { SERVER_ERROR_MESSAGE };
        sse::data(error::envelope(message, error_type, None, None))
    }

    fn malformed(&self, ids: Ids) -> Bytes {
        let id = completion_id(ids);
        sse::data(format_args!(
            "{{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":"
        ))
    }
}

fn completion_id(ids: Ids) -> String {
    format!("chatcmpl-sim-{}", ids.seq)
}

fn call_id(ids: Ids) -> String {
    format!("call_sim_{}", ids.seq)
}

/// The wire's usage body with every count, as OpenAI's own servers write it.
fn usage(answer: &Answer) -> Value {
    response::usage_body(&wire::usage(answer), response::Details::All)
}

/// `(type, code, message)` OpenAI sends with `status`: type and code from the wire's one table,
/// messages as OpenAI words them.
fn default_error(status: u16, error_type: Option<&str>, model: &str) -> (String, Option<String>, String) {
    use crate::error::ErrorClass;
    use crate::wire::openai_chat::error;
    let kind = match status {
        429 if error_type == Some(error::INSUFFICIENT_QUOTA) => error::for_class(ErrorClass::QuotaExhausted),
        s => error::for_status(s),
    };
    let message = match kind.class {
        ErrorClass::Authentication => "Incorrect API key provided: sk-sim...abcd. You can find your API key at \
             https://platform.openai.com/account/api-keys."
            .to_owned(),
        ErrorClass::PermissionDenied => "You are not allowed to access this resource.".to_owned(),
        ErrorClass::NotFound => format!("The model `{model}` does not exist or you do not have access to it."),
        ErrorClass::QuotaExhausted => {
            "You exceeded your current quota, please check your plan and billing details.".to_owned()
        }
        ErrorClass::RateLimited => format!(
            "Rate limit reached for {model} in organization org-sim on requests per min (RPM): Limit 500, \
             Used 500, Requested 1. Please try again in 644ms."
        ),
        ErrorClass::Overloaded => OVERLOADED_MESSAGE.to_owned(),
        _ if status == 502 => "Bad gateway.".to_owned(),
        _ if status >= 500 => SERVER_ERROR_MESSAGE.to_owned(),
        _ => "Invalid request (simulated).".to_owned(),
    };
    (kind.kind.to_owned(), kind.code.map(str::to_owned), message)
}
