//! The OpenAI Responses wire, as the simulated server speaks it: requests read through their Chat
//! Completions translation (the codec's), answers made as Chat Completions ones and translated
//! back, streams written by the codec's event writer. Errors are OpenAI's.

use bytes::Bytes;
use serde_json::Value;

use super::answer::{Answer, Prompt, Reject};
use super::openai::{OpenAiWire, call_id, error_message};
use super::render;
use super::stream;
use super::wire::{Dialect, Ids, Script, StatusOverrides, WireError};
use crate::provider::Protocol;
use crate::wire::openai_responses::{response, stream::Writer, to_chat};

/// OpenAI Responses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResponsesWire;

impl Dialect for ResponsesWire {
    fn protocol(&self) -> Protocol {
        Protocol::OpenaiResponses
    }

    fn endpoint(&self) -> &'static str {
        "/v1/responses"
    }

    fn request_id_header(&self) -> &'static str {
        OpenAiWire.request_id_header()
    }

    fn prompt(&self, body: &Value) -> Result<Prompt, Reject> {
        let bytes = serde_json::to_vec(body).map_err(|e| Reject::invalid(e.to_string()))?;
        // (what the chat wire has no place for does not change the simulated answer)
        let (chat, _) = to_chat(&bytes).map_err(Reject::invalid)?;
        OpenAiWire.prompt(&chat)
    }

    fn reject(&self, reject: &Reject) -> WireError {
        OpenAiWire.reject(reject)
    }

    fn status_error(&self, status: u16, overrides: StatusOverrides<'_>, model: &str) -> WireError {
        OpenAiWire.status_error(status, overrides, model)
    }

    fn error_body(&self, error: &WireError, ids: Ids) -> Value {
        OpenAiWire.error_body(error, ids)
    }

    fn response(&self, answer: &Answer, ids: Ids) -> Value {
        response::from_chat(&OpenAiWire.response(answer, ids))
    }

    fn script(&self, answer: &Answer, _body: &Value, ids: Ids) -> Script {
        let mut writer = Writer::new(response_id(ids), ids.created, &answer.model);
        let steps = render::steps(answer, &call_id(ids), ids);
        stream::script(&steps, |events| events.iter().flat_map(|e| writer.event(e)).collect())
    }

    fn stream_error(&self, error_type: Option<&str>, ids: Ids) -> Bytes {
        let mut writer = Writer::new(response_id(ids), ids.created, "");
        let code = error_type.unwrap_or("server_error");
        // (only the terminal events: the client already has the opening ones)
        let events = writer.fail(code, error_message(code));
        Bytes::from(events.into_iter().skip(2).collect::<Vec<_>>().concat())
    }
}

fn response_id(ids: Ids) -> String {
    format!("resp_sim_{}", ids.seq)
}
