//! `message` bodies both ways: written from a [`ChatResponse`] (the gateway's answer to its
//! callers, the simulator's), and read into one (the adapter's reading of an upstream's answer).
//! The stop-reason map and the usage body are the wire's one each, streams included.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::chat::{ChatResponse, ContentPart, Extra, FinishReason, ToolCall, Usage};
use crate::protocol::Protocol;

/// `stop_reason` for a normalized reason; `by_sequence`: a stop sequence ended the answer.
pub(crate) fn stop_reason(reason: FinishReason, by_sequence: bool) -> &'static str {
    match reason {
        FinishReason::Stop if by_sequence => "stop_sequence",
        FinishReason::Stop => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
        FinishReason::Incomplete => "pause_turn",
    }
}

/// Anthropic's `stop_reason` in the normalized form (WIRE.md "Mapping between the two").
pub(crate) fn finish_from(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        // pause_turn, a reason added after this was written, or none at all: not a clean finish
        _ => FinishReason::Incomplete,
    }
}

/// Anthropic's usage: its `input_tokens` leaves out the prompt tokens read from or written to the
/// cache, which the normalized figure counts; the cache counts only where known.
pub(crate) fn usage_body(u: &Usage) -> Value {
    let mut body = Map::new();
    body.insert("input_tokens".into(), json!(u.uncached_input_tokens()));
    if let Some(written) = u.cache_creation_input_tokens {
        body.insert("cache_creation_input_tokens".into(), json!(written));
    }
    if let Some(read) = u.cached_input_tokens {
        body.insert("cache_read_input_tokens".into(), json!(read));
    }
    body.insert("output_tokens".into(), json!(u.output_tokens));
    Value::Object(body)
}

/// Arguments as the object Anthropic clients expect; anything that is not a JSON object (an upstream
/// that streamed broken arguments) becomes `{}` rather than a body the client cannot read.
pub(crate) fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Map::new()),
    }
}

/// The `message` body of `answer` under the message id `id` (`msg_…`). What an upstream of this
/// wire said beyond the model's members (`container`, newer members) goes back as it came.
pub(crate) fn encode_response(answer: &ChatResponse, id: &str) -> Value {
    let mut content = Vec::new();
    for part in &answer.reasoning {
        match part {
            ContentPart::Thinking { thinking, signature } => {
                // the block always has its signature member, as Anthropic's do; a provider that
                // signs nothing leaves it empty
                content.push(json!({"type": "thinking", "thinking": thinking, "signature": signature.as_deref().unwrap_or_default()}));
            }
            ContentPart::RedactedThinking { data } => content.push(json!({"type": "redacted_thinking", "data": data})),
            _ => {}
        }
    }
    // Anthropic has no refusal field: a refusal without text is the answer's text
    let text = if answer.text.is_empty() { answer.refusal.as_deref().unwrap_or_default() } else { &answer.text };
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for c in &answer.tool_calls {
        content.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(&c.arguments)}));
    }
    let mut body = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": stop_reason(answer.finish_reason, answer.stop_sequence.is_some()),
        "stop_sequence": answer.stop_sequence,
        "usage": usage_body(&answer.usage),
    });
    if answer.dialect == Some(Protocol::Anthropic)
        && let Value::Object(map) = &mut body
    {
        map.extend(answer.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    body
}

/// Token counts as Anthropic reports them (in responses, `message_start` and `message_delta`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub(crate) input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) output_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Takes what `newer` reports, keeps the rest (stream usage arrives in pieces).
    pub(crate) fn merge(&mut self, newer: WireUsage) {
        self.input_tokens = newer.input_tokens.or(self.input_tokens);
        self.output_tokens = newer.output_tokens.or(self.output_tokens);
        self.cache_read_input_tokens = newer.cache_read_input_tokens.or(self.cache_read_input_tokens);
        self.cache_creation_input_tokens = newer.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
    }

    /// The normalized usage: Anthropic's `input_tokens` leaves out cache reads and writes, the
    /// normalized figure counts every prompt token.
    pub(crate) fn normalized(self) -> Usage {
        let uncached = self.input_tokens.unwrap_or(0);
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: uncached.saturating_add(read).saturating_add(written),
            output_tokens: self.output_tokens.unwrap_or(0),
            cached_input_tokens: self.cache_read_input_tokens,
            cache_creation_input_tokens: self.cache_creation_input_tokens,
            reasoning_tokens: None,
        }
    }
}

/// A non-streaming response. Unknown fields and block types are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct MessagesResponse {
    #[serde(default)]
    id: Option<String>,
    model: String,
    content: Vec<ResponseBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// `container`, members added after this was written: for callers of the
    /// same wire.
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
    /// Server tool blocks: not part of the normalized answer yet.
    #[serde(other)]
    Other,
}

impl MessagesResponse {
    /// Decodes a 2xx body.
    pub(crate) fn decode(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The normalized answer; `request_id` (the `request-id` header) wins over the message id.
    pub(crate) fn into_chat_response(self, provider: &str, request_id: Option<String>) -> ChatResponse {
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        let mut reasoning = Vec::new();
        for block in self.content {
            match block {
                ResponseBlock::Text { text: t } => text.push_str(&t),
                ResponseBlock::ToolUse { id, name, input } => {
                    tool_calls.push(ToolCall { id, name, arguments: input.to_string() })
                }
                ResponseBlock::Thinking { thinking, signature } => {
                    reasoning.push(ContentPart::Thinking { thinking, signature })
                }
                ResponseBlock::RedactedThinking { data } => reasoning.push(ContentPart::RedactedThinking { data }),
                ResponseBlock::Other => {}
            }
        }
        let mut extra = self.extra;
        // `type` and `role` are the gateway's to write; the upstream's `id` goes back to a caller
        // of the same wire with the rest
        for known in ["type", "role"] {
            extra.remove(known);
        }
        if let Some(id) = &self.id {
            extra.insert("id".into(), serde_json::Value::String(id.clone()));
        }
        ChatResponse {
            provider: provider.to_owned(),
            model: self.model,
            text,
            tool_calls,
            reasoning,
            finish_reason: finish_from(self.stop_reason.as_deref()),
            refusal: None,
            stop_sequence: self.stop_sequence,
            logprobs: None,
            alternatives: Vec::new(),
            usage: self.usage.unwrap_or_default().normalized(),
            request_id: request_id.or(self.id),
            dialect: Some(Protocol::Anthropic),
            extra,
            rate_limit: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall::new(id, name, arguments)
    }

    #[test]
    fn response_text_tool_use_usage_and_request_id() {
        let raw = json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 34, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 5, "service_tier": "standard"},
            "future_field": {"x": 1},
        });
        let decoded = MessagesResponse::decode(raw.to_string().as_bytes()).unwrap();
        let r = decoded.into_chat_response("anthropic-eu", None);
        assert_eq!(r.provider, "anthropic-eu");
        assert_eq!(r.model, "claude-sonnet-4-5-20250929");
        assert_eq!(r.text, "Let me check.");
        assert_eq!(r.tool_calls, vec![call("toolu_1", "weather", r#"{"city":"Paris"}"#)]);
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        // every prompt token: 12 uncached + 5 read from the cache + 0 written to it
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 17,
                output_tokens: 34,
                cached_input_tokens: Some(5),
                cache_creation_input_tokens: Some(0),
                ..Usage::default()
            }
        );
        assert_eq!(r.dialect, Some(Protocol::Anthropic));
        assert_eq!(r.extra.get("future_field"), Some(&json!({"x": 1})));
        assert!(r.extra.get("type").is_none() && r.extra.get("content").is_none());
        assert_eq!(r.request_id.as_deref(), Some("msg_01"));

        let decoded = MessagesResponse::decode(raw.to_string().as_bytes()).unwrap();
        let r = decoded.into_chat_response("anthropic", Some("req_9".into()));
        assert_eq!(r.request_id.as_deref(), Some("req_9"));
    }

    #[test]
    fn every_stop_reason_maps() {
        let cases = [
            (Some("end_turn"), FinishReason::Stop),
            (Some("stop_sequence"), FinishReason::Stop),
            (Some("max_tokens"), FinishReason::Length),
            (Some("model_context_window_exceeded"), FinishReason::Length),
            (Some("tool_use"), FinishReason::ToolCalls),
            (Some("refusal"), FinishReason::ContentFilter),
            (Some("pause_turn"), FinishReason::Incomplete),
            (Some("something_new"), FinishReason::Incomplete),
            (None, FinishReason::Incomplete),
        ];
        for (stop, expected) in cases {
            let raw = json!({"model": "m", "content": [{"type": "text", "text": "x"}], "stop_reason": stop,
                             "usage": {"input_tokens": 1, "output_tokens": 1}});
            let r = MessagesResponse::decode(raw.to_string().as_bytes()).unwrap().into_chat_response("a", None);
            assert_eq!(r.finish_reason, expected, "{stop:?}");
            assert_eq!(finish_from(stop), expected);
        }
    }

    #[test]
    fn undecodable_bodies_are_errors() {
        for bad in [
            &b""[..],
            b"{\"model\":\"m\",\"content\":[{\"type\":\"text\",\"te",
            b"<html><body>hi</body></html>",
            b"{\"model\":\"m\",\"content\":\"text\"}",
            b"{\"model\":3,\"content\":[]}",
            b"{\"content\":[{\"type\":\"text\",\"text\":5}],\"model\":\"m\"}",
            b"{\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":\"many\"}}",
            b"null",
        ] {
            assert!(MessagesResponse::decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
