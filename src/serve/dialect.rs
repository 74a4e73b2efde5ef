//! What each client-facing wire (OpenAI Chat Completions, Anthropic Messages) must provide to the
//! gateway: request parsing, response and error bodies, and stream encoding.

use bytes::Bytes;
use serde::Serialize;

use crate::chat::StreamEvent;
use crate::error::ErrorClass;
use crate::router::{Attempt, RoutedResponse};

/// A client request in the gateway's terms.
pub(crate) type Parsed = crate::wire::Decoded;

/// Why a request failed, as the gateway reports it in the caller's dialect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Failure {
    /// The class (`invalid_request` for bad JSON, `not_found` for an unknown route, ...).
    pub(crate) class: ErrorClass,
    /// What happened.
    pub(crate) message: String,
    /// The route, when known.
    pub(crate) route: Option<String>,
    /// Provider that last failed.
    pub(crate) provider: Option<String>,
    /// Model that last failed.
    pub(crate) model: Option<String>,
    /// Every attempt made.
    pub(crate) attempts: Vec<Attempt>,
    /// The failure came after part of the answer was streamed.
    pub(crate) mid_stream: bool,
    /// Open incidents on the status pages of the providers that failed.
    pub(crate) provider_incidents: Vec<crate::status_page::ProviderIncident>,
}

/// A client-facing wire.
pub(crate) trait Dialect: Send + Sync + 'static {
    /// Encodes one streamed answer.
    type Encoder: Encoder;

    /// Parses a request body, keeping it for a target of the same wire; the error message is for
    /// a 400 in this dialect.
    fn parse(body: Bytes) -> Result<Parsed, String>;

    /// Takes what the request's headers say about the request itself: the provider headers a
    /// target of the caller's wire is sent ([`read_caller_headers`]).
    fn read_headers(parsed: &mut Parsed, headers: &axum::http::HeaderMap) {
        read_caller_headers(parsed, headers);
    }

    /// The complete answer: `model` is the model that served, `usage` its usage.
    fn response(r: &RoutedResponse) -> serde_json::Value;

    /// An error body naming the class and the attempts (the HTTP status is chosen by the gateway).
    fn error(f: &Failure) -> serde_json::Value;

    /// A stream encoder for a request, once the first event arrived from `model`. `include_usage`:
    /// whether the caller asked for usage (OpenAI `stream_options`).
    fn encoder(include_usage: bool, provider: &str, model: &str) -> Self::Encoder;

    /// What the answer repeats of the request (the Responses API echoes its settings:
    /// `instructions`, `tools`, `metadata`, ...), taken before the request is sent; none by default.
    fn echo(_parsed: &Parsed) -> Option<serde_json::Value> {
        None
    }

    /// [`Dialect::response`], repeating `echo`.
    fn response_echoing(r: &RoutedResponse, _echo: Option<&serde_json::Value>) -> serde_json::Value {
        Self::response(r)
    }

    /// [`Dialect::encoder`], repeating `echo`.
    fn encoder_echoing(
        include_usage: bool,
        provider: &str,
        model: &str,
        _echo: Option<serde_json::Value>,
    ) -> Self::Encoder {
        Self::encoder(include_usage, provider, model)
    }
}

/// Turns router stream events into this dialect's SSE bytes.
pub(crate) trait Encoder: Send + 'static {
    /// The bytes for one event, the ones that open the stream first (Anthropic `message_start`;
    /// OpenAI: the first chunk with the role). `Finish` produces the dialect's terminal bytes (OpenAI: the finish
    /// chunk, the usage chunk when asked, `data: [DONE]`; Anthropic: `message_delta`,
    /// `message_stop`). `Restart` never arrives (the gateway does not allow restarts).
    fn event(&mut self, event: &StreamEvent) -> Vec<Bytes>;

    /// The bytes for a failure after the stream started: an error event (OpenAI
    /// `data: {"error":{...}}`, Anthropic `event: error`) and NO terminator.
    fn error(&mut self, failure: &Failure) -> Vec<Bytes>;
}

/// The caller's provider headers (`anthropic-version`, `openai-beta`; `anthropic-beta` is read
/// into [`crate::ChatRequest::betas`] by the Anthropic dialect), kept for a target of its wire.
pub(crate) fn read_caller_headers(parsed: &mut Parsed, headers: &axum::http::HeaderMap) {
    for name in crate::provider::CALLER_HEADERS.iter().filter(|h| **h != "anthropic-beta") {
        for value in headers.get_all(*name) {
            if let Ok(value) = value.to_str() {
                parsed.request.headers.push(((*name).to_owned(), value.to_owned()));
            }
        }
    }
}
