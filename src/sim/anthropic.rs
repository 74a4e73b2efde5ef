//! The Anthropic Messages wire, as the simulated server speaks it.

use bytes::Bytes;
use serde_json::Value;

use super::answer::{Answer, Prompt, Reject};
use super::render;
use super::stream;
use super::wire::{Dialect, Ids, Script, StatusOverrides, WireError};
use crate::provider::Protocol;
use crate::wire::anthropic::{error, response, stream::Writer};

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
        error::envelope(&error.error_type, &error.message, Some(&ids.request_id()))
    }

    fn response(&self, answer: &Answer, ids: Ids) -> Value {
        response::encode_response(&render::response(answer, &tool_id(ids), ids), &message_id(ids))
    }

    fn script(&self, answer: &Answer, _body: &Value, ids: Ids) -> Script {
        let mut writer = Writer::new(message_id(ids), &answer.model);
        let steps = render::steps(answer, &tool_id(ids), ids);
        stream::script(&steps, |events| events.iter().flat_map(|e| writer.event(e)).collect())
    }

    fn stream_error(&self, error_type: Option<&str>, ids: Ids) -> Bytes {
        let error_type = error_type.unwrap_or("overloaded_error");
        let body = error::envelope(error_type, default_message_for_type(error_type), Some(&ids.request_id()));
        Bytes::from(Writer::new(message_id(ids), "").fail(&body).concat())
    }
}

fn message_id(ids: Ids) -> String {
    format!("msg_sim_{}", ids.seq)
}

fn tool_id(ids: Ids) -> String {
    format!("toolu_sim_{}", ids.seq)
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
