//! OpenAI's Responses API (`POST /v1/responses`) as a gateway dialect: requests decoded by the
//! Responses codec (the caller's body goes unchanged to a Responses target, translated to every
//! other), answers as `response` objects, streams as the Responses event sequence, errors in
//! OpenAI's shape (in a stream: `error` and `response.failed`).

use bytes::Bytes;
use serde_json::Value;

use super::dialect::{Dialect, Encoder, Failure, Parsed};
use super::openai::{OpenAiWire, answer_id, unix_now};
use crate::chat::StreamEvent;
use crate::router::RoutedResponse;
use crate::wire::openai_responses::{self, response, stream::Writer};

/// The Responses API.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResponsesWire;

impl Dialect for ResponsesWire {
    type Encoder = ResponsesEncoder;

    fn parse(body: Bytes) -> Result<Parsed, String> {
        openai_responses::decode_request(body)
    }

    fn response(r: &RoutedResponse) -> Value {
        response::from_chat(&OpenAiWire::response(r))
    }

    fn error(f: &Failure) -> Value {
        OpenAiWire::error(f)
    }

    fn encoder(_include_usage: bool, _provider: &str, model: &str) -> ResponsesEncoder {
        ResponsesEncoder(Writer::new(answer_id("resp_", None), unix_now(), model))
    }

    fn echo(parsed: &Parsed) -> Option<Value> {
        parsed.original.as_ref().and_then(|o| response::echo_of(o.body()))
    }

    fn response_echoing(r: &RoutedResponse, echo: Option<&Value>) -> Value {
        let mut body = Self::response(r);
        response::apply_echo(&mut body, echo);
        body
    }

    fn encoder_echoing(include_usage: bool, provider: &str, model: &str, echo: Option<Value>) -> ResponsesEncoder {
        let ResponsesEncoder(writer) = Self::encoder(include_usage, provider, model);
        ResponsesEncoder(writer.echoing(echo))
    }
}

/// A streamed answer as Responses events.
#[derive(Debug)]
pub(crate) struct ResponsesEncoder(Writer);

impl Encoder for ResponsesEncoder {
    fn event(&mut self, event: &StreamEvent) -> Vec<Bytes> {
        self.0.event(event)
    }

    fn error(&mut self, failure: &Failure) -> Vec<Bytes> {
        let body = OpenAiWire::error(failure);
        let code = body.pointer("/error/code").and_then(Value::as_str);
        let code = code.or_else(|| body.pointer("/error/type").and_then(Value::as_str)).unwrap_or("server_error");
        let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("the answer failed");
        self.0.fail(code, message)
    }
}
