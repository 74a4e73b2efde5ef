//! The OpenAI Chat Completions wire, as the simulated server speaks it.

use bytes::Bytes;
use serde_json::{Value, json};

use super::answer::{Answer, Prompt, Reject};
use super::render;
use super::stream;
use super::wire::{Dialect, Ids, Script, StatusOverrides, WireError, optional_count};
use crate::chat::{ChatResponse, Extra, StreamEvent};
use crate::error::ErrorClass;
use crate::provider::Protocol;
use crate::wire::openai_chat::response::{self, Details};
use crate::wire::openai_chat::{error, stream::Writer};

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
        let answer = ChatResponse {
            dialect: Some(Protocol::Openai),
            extra: envelope(),
            ..render::response(answer, &call_id(ids), ids)
        };
        response::encode_response(&answer, &completion_id(ids), ids.created, Details::All)
    }

    fn script(&self, answer: &Answer, body: &Value, ids: Ids) -> Script {
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        let mut steps = render::steps(answer, &call_id(ids), ids);
        steps.head.insert(0, StreamEvent::Envelope { dialect: Protocol::Openai, extra: envelope() });
        let mut writer = Writer::new(completion_id(ids), ids.created, &answer.model, include_usage, Details::All);
        stream::script(&steps, |events| writer.events(events))
    }

    fn stream_error(&self, error_type: Option<&str>, ids: Ids) -> Bytes {
        let error_type = error_type.unwrap_or("server_error");
        let body = error::envelope(error_message(error_type), error_type, None, None);
        let mut writer = Writer::new(completion_id(ids), ids.created, "", false, Details::All);
        Bytes::from(writer.fail(&body).concat())
    }
}

/// What OpenAI's answers carry beyond the model's members, in every chunk of a stream too.
fn envelope() -> Extra {
    let mut extra = Extra::new();
    extra.insert("service_tier".into(), json!("default"));
    extra.insert("system_fingerprint".into(), json!("fp_sim"));
    extra
}

/// How OpenAI words a server error of `error_type` in a stream: an overload, else a failure.
pub(super) fn error_message(error_type: &str) -> &'static str {
    if error_type.contains("overload") { OVERLOADED_MESSAGE } else { SERVER_ERROR_MESSAGE }
}

fn completion_id(ids: Ids) -> String {
    format!("chatcmpl-sim-{}", ids.seq)
}

/// The id of the simulator's tool call (the Responses API's too).
pub(super) fn call_id(ids: Ids) -> String {
    format!("call_sim_{}", ids.seq)
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
