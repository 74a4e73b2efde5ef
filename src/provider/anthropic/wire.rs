//! Messages API answers decoded into a [`ChatResponse`]. Requests are encoded by
//! [`crate::wire::anthropic`].

use serde::Deserialize;
use serde_json::Value;

use crate::chat::{ChatResponse, ContentPart, FinishReason, ToolCall, Usage};

/// Token counts as Anthropic reports them (in responses, `message_start` and `message_delta`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Overwrites what `newer` reports, keeps the rest (stream usage arrives in pieces).
    pub(super) fn apply_to(self, usage: &mut Usage) {
        if let Some(n) = self.input_tokens {
            usage.input_tokens = n;
        }
        if let Some(n) = self.output_tokens {
            usage.output_tokens = n;
        }
        if let Some(n) = self.cache_read_input_tokens {
            usage.cached_input_tokens = Some(n);
        }
    }
}

/// A non-streaming response. Unknown fields and block types are ignored.
#[derive(Debug, Deserialize)]
pub(super) struct MessagesResponse {
    #[serde(default)]
    id: Option<String>,
    model: String,
    content: Vec<ResponseBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
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
    pub(super) fn decode(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The normalized answer; `request_id` (the `request-id` header) wins over the message id.
    pub(super) fn into_chat_response(self, provider: &str, request_id: Option<String>) -> ChatResponse {
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
        let mut usage = Usage::default();
        if let Some(u) = self.usage {
            u.apply_to(&mut usage);
        }
        ChatResponse {
            provider: provider.to_owned(),
            model: self.model,
            text,
            tool_calls,
            reasoning,
            finish_reason: finish_reason(self.stop_reason.as_deref()),
            refusal: None,
            usage,
            request_id: request_id.or(self.id),
        }
    }
}

/// Anthropic's `stop_reason` in the normalized form (WIRE.md "Mapping between the two").
pub(super) fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        // pause_turn, a reason added after this was written, or none at all: not a clean finish
        _ => FinishReason::Incomplete,
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
        assert_eq!(r.usage, Usage { input_tokens: 12, output_tokens: 34, cached_input_tokens: Some(5) });
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
