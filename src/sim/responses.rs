//! The OpenAI Responses wire, as the simulated server speaks it: requests read through their Chat
//! Completions translation (the codec's), answers made as Chat Completions ones and translated
//! back, streams written by the codec's event writer. Errors are OpenAI's.

use bytes::Bytes;
use serde_json::{Value, json};

use super::answer::{Answer, Prompt, Reject, Reply};
use super::openai::OpenAiWire;
use super::wire::{Dialect, Ids, Script, StatusOverrides, WireError};
use crate::chat::StreamEvent;
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
        let opening = Bytes::from(writer.start().concat());
        let mut event = |e: StreamEvent| Bytes::from(writer.event(&e).concat());
        let (head, tokens) = match &answer.reply {
            Reply::Text { tokens, .. } => {
                let tokens = tokens.iter().map(|t| event(StreamEvent::TextDelta { text: t.clone() })).collect();
                (vec![opening], tokens)
            }
            Reply::Tool { name, input } => {
                let start = event(StreamEvent::ToolCallDelta {
                    index: 0,
                    id: Some(format!("call_sim_{}", ids.seq)),
                    name: Some(name.clone()),
                    arguments: String::new(),
                });
                let tokens = super::answer::pieces(&input.to_string(), 3)
                    .into_iter()
                    .map(|p| event(StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: p }))
                    .collect();
                (vec![opening, start], tokens)
            }
        };
        let mut tail = vec![event(StreamEvent::Usage(super::wire::usage(answer)))];
        tail.push(event(StreamEvent::Finish { reason: super::wire::finish(&answer.reply) }));
        tail.retain(|b| !b.is_empty());
        Script { head, tokens, tail, sentinel: None }
    }

    fn stream_error(&self, error_type: Option<&str>, ids: Ids) -> Bytes {
        let mut writer = Writer::new(response_id(ids), ids.created, "");
        let code = error_type.unwrap_or("server_error");
        let message = if code.contains("overload") {
            "The engine is currently overloaded. Please try again later."
        } else {
            "The server had an error while processing your request. Sorry about that!"
        };
        // (only the terminal events: the client already has the opening ones)
        let events = writer.fail(code, message);
        Bytes::from(events.into_iter().skip(2).collect::<Vec<_>>().concat())
    }

    fn malformed(&self, ids: Ids) -> Bytes {
        let data = json!({"type": "response.output_text.delta", "item_id": format!("msg_{}", ids.seq)});
        let cut = data.to_string();
        crate::wire::sse::named("response.output_text.delta", &cut[..cut.len() - 1])
    }
}

fn response_id(ids: Ids) -> String {
    format!("resp_sim_{}", ids.seq)
}
