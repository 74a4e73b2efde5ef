//! What the simulated wires share: the [`Dialect`] each implements, the error before it is worded,
//! a stream's script, and the answer's finish and usage in the model's terms.

use bytes::Bytes;
use serde_json::Value;

use super::answer::{Answer, Finish, Prompt, Reject, Reply};
use crate::chat::{FinishReason, Usage};
use crate::provider::Protocol;

/// An error response before it is worded in a dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError {
    /// HTTP status.
    pub(crate) status: u16,
    /// Provider error type.
    pub(crate) error_type: String,
    /// Provider error code (OpenAI only).
    pub(crate) code: Option<String>,
    /// Message.
    pub(crate) message: String,
    /// Offending parameter (OpenAI only).
    pub(crate) param: Option<String>,
}

/// The overrides a [`crate::sim::Fault::Status`] may carry.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StatusOverrides<'a> {
    /// Provider error type.
    pub(crate) error_type: Option<&'a str>,
    /// Provider error code.
    pub(crate) code: Option<&'a str>,
    /// Message.
    pub(crate) message: Option<&'a str>,
}

/// The events of one streamed answer, split where faults get injected.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    /// Events before the first token.
    pub(crate) head: Vec<Bytes>,
    /// One event per token.
    pub(crate) tokens: Vec<Bytes>,
    /// Events after the last token, the terminal one included.
    pub(crate) tail: Vec<Bytes>,
    /// A sentinel after the terminal event (`data: [DONE]`), which `NoDone` withholds.
    pub(crate) sentinel: Option<Bytes>,
}

/// Ids of one request, derived from the server's request counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    /// The request's sequence number.
    pub(crate) seq: u64,
    /// Unix time of the request.
    pub(crate) created: u64,
}

impl Ids {
    /// The `x-request-id` / `request-id` value.
    pub(crate) fn request_id(self) -> String {
        format!("req_sim_{}", self.seq)
    }
}

/// One provider's wire: parsing requests and wording answers and errors.
pub(crate) trait Dialect: Sync {
    /// The protocol.
    fn protocol(&self) -> Protocol;
    /// The path of the model's endpoint, as requests are recorded.
    fn endpoint(&self) -> &'static str;
    /// The response header carrying the request id.
    fn request_id_header(&self) -> &'static str;
    /// The request body in wire-neutral terms, or why it is invalid.
    fn prompt(&self, body: &Value) -> Result<Prompt, Reject>;
    /// A rejection worded in this dialect.
    fn reject(&self, reject: &Reject) -> WireError;
    /// The default error for an HTTP status, with a fault's overrides.
    fn status_error(&self, status: u16, overrides: StatusOverrides<'_>, model: &str) -> WireError;
    /// The JSON error body.
    fn error_body(&self, error: &WireError, ids: Ids) -> Value;
    /// The non-streaming response body.
    fn response(&self, answer: &Answer, ids: Ids) -> Value;
    /// The streamed response; `body` is the request (for options like `include_usage`).
    fn script(&self, answer: &Answer, body: &Value, ids: Ids) -> Script;
    /// An in-stream error event.
    fn stream_error(&self, error_type: Option<&str>, ids: Ids) -> Bytes;
}

/// A JSON field as an unsigned integer: absent or null is `None`, anything else not a count is an error.
pub(crate) fn optional_count(body: &Value, field: &'static str) -> Result<Option<u64>, Reject> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            Reject::param(field, format!("Invalid value for '{field}': expected a non-negative integer."))
        }),
    }
}

/// How a reply ended, in the model's terms (what each wire's own map then words).
pub(crate) fn finish(reply: &Reply) -> FinishReason {
    match reply {
        Reply::Text { finish: Finish::Length, .. } => FinishReason::Length,
        Reply::Text { .. } => FinishReason::Stop,
        Reply::Tool { .. } => FinishReason::ToolCalls,
    }
}

/// An answer's usage in the model's terms: every count known, reasoning only with an effort.
pub(crate) fn usage(answer: &Answer) -> Usage {
    Usage {
        input_tokens: answer.input_tokens,
        output_tokens: answer.output_tokens,
        cached_input_tokens: Some(answer.cached_tokens),
        cache_creation_input_tokens: Some(answer.cache_write_tokens),
        reasoning_tokens: answer.reasoning_tokens,
    }
}
