//! `chat.completion` bodies both ways: written from a [`ChatResponse`] (the gateway's answer to its
//! callers, the simulator's), and read into one (the adapter's reading of an upstream's answer).
//! The finish-reason map and the usage body are the wire's one each, streams included.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use crate::chat::{ChatResponse, Choice, ContentPart, Extra, FinishReason, TokenLogprob, ToolCall, Usage};
use crate::protocol::Protocol;

/// `finish_reason` for a normalized reason.
pub(crate) fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        // OpenAI has no "paused": the answer is cut short, which clients handle as `length`
        FinishReason::Length | FinishReason::Incomplete => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

/// The normalized reason for a `finish_reason`; anything unknown or missing is not a clean finish.
pub(crate) fn finish_from(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Incomplete,
    }
}

/// Which `usage` details a writer states: what it can vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Details {
    /// The counts the normalized usage carries, where known: all a relay (the gateway) knows, since
    /// an upstream's audio and predicted-output counts have no place there.
    Known,
    /// Every member OpenAI itself writes, a count not known as 0: what the server of a model that
    /// takes no audio and no predicted output says of its own answer (the simulator).
    All,
}

/// `usage` as OpenAI writes it, with the details `details` says.
pub(crate) fn usage_body(u: &Usage, details: Details) -> Value {
    let mut body = json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total(),
    });
    let (cached, reasoning) = match details {
        Details::Known => (u.cached_input_tokens, u.reasoning_tokens),
        Details::All => (Some(u.cached_input_tokens.unwrap_or(0)), Some(u.reasoning_tokens.unwrap_or(0))),
    };
    let all = details == Details::All;
    if let Value::Object(map) = &mut body {
        if let Some(cached) = cached {
            let mut prompt = json!({"cached_tokens": cached});
            if all {
                prompt["audio_tokens"] = json!(0);
            }
            map.insert("prompt_tokens_details".into(), prompt);
        }
        if let Some(reasoning) = reasoning {
            let mut completion = json!({"reasoning_tokens": reasoning});
            if all {
                for count in ["audio_tokens", "accepted_prediction_tokens", "rejected_prediction_tokens"] {
                    completion[count] = json!(0);
                }
            }
            map.insert("completion_tokens_details".into(), completion);
        }
    }
    body
}

/// A choice's (or a chunk's) `logprobs`.
pub(crate) fn logprobs_body(content: &[TokenLogprob]) -> Value {
    json!({"content": content, "refusal": null})
}

/// The `chat.completion` body of `answer`, under the answer id `id` (`chatcmpl-…`) made at
/// `created` (Unix time), its usage with `details`. What an upstream of this wire said beyond the
/// model's members (`system_fingerprint`, `service_tier`, newer members) goes back as it came.
pub(crate) fn encode_response(answer: &ChatResponse, id: &str, created: u64, details: Details) -> Value {
    let mut first = choice_body(
        0,
        &answer.text,
        &answer.tool_calls,
        answer.refusal.as_deref(),
        answer.logprobs.as_deref(),
        answer.finish_reason,
    );
    let thinking: String = answer
        .reasoning
        .iter()
        .filter_map(|p| match p {
            ContentPart::Thinking { thinking, .. } => Some(thinking.as_str()),
            _ => None,
        })
        .collect();
    if !thinking.is_empty() {
        // the wire has no reasoning text; OpenAI-compatible servers and clients use this member
        first["message"]["reasoning_content"] = json!(thinking);
    }
    let mut choices = vec![first];
    choices.extend(answer.alternatives.iter().map(|c| {
        choice_body(c.index, &c.text, &c.tool_calls, c.refusal.as_deref(), c.logprobs.as_deref(), c.finish_reason)
    }));
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    body.insert("object".into(), json!("chat.completion"));
    body.insert("created".into(), json!(created));
    body.insert("model".into(), json!(answer.model));
    body.insert("choices".into(), Value::Array(choices));
    body.insert("usage".into(), usage_body(&answer.usage, details));
    if answer.dialect == Some(Protocol::Openai) {
        body.extend(answer.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Value::Object(body)
}

fn choice_body(
    index: usize,
    text: &str,
    tool_calls: &[ToolCall],
    refusal: Option<&str>,
    logprobs: Option<&[TokenLogprob]>,
    finish: FinishReason,
) -> Value {
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    // OpenAI sends null content, not "", when the turn is only tool calls or a refusal
    let content_is_null = text.is_empty() && (!tool_calls.is_empty() || refusal.is_some());
    message.insert("content".into(), if content_is_null { Value::Null } else { json!(text) });
    if !tool_calls.is_empty() {
        let calls: Vec<Value> = tool_calls.iter().map(tool_call_body).collect();
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    message.insert("refusal".into(), json!(refusal));
    // OpenAI writes `logprobs` on every choice, null when none were asked for
    json!({
        "index": index,
        "message": message,
        "logprobs": logprobs.map_or(Value::Null, logprobs_body),
        "finish_reason": finish_reason(finish),
    })
}

/// One whole tool call of a message.
pub(crate) fn tool_call_body(c: &ToolCall) -> Value {
    json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})
}

/// The response body of a non-streaming call. Members this struct does not name are kept in
/// `extra`, for callers of the same wire.
#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    #[serde(default)]
    index: Option<usize>,
    message: WireResponseMessage,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<WireLogprobs>,
}

/// A choice's (or a chunk's) `logprobs`, read.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireLogprobs {
    /// The tokens' log probabilities.
    #[serde(default)]
    pub(crate) content: Option<Vec<TokenLogprob>>,
}

#[derive(Debug, Deserialize)]
struct WireResponseMessage {
    #[serde(default)]
    content: Option<String>,
    /// The reasoning text OpenAI-compatible servers (DeepSeek, vLLM, ...) send beside the answer.
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCallIn>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCallIn {
    #[serde(default)]
    id: String,
    function: WireFunctionIn,
}

#[derive(Debug, Deserialize)]
struct WireFunctionIn {
    name: String,
    #[serde(default, deserialize_with = "arguments")]
    arguments: String,
}

/// Arguments are a JSON string per the spec; some OpenAI-compatible servers send the object itself.
fn arguments<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Token usage as OpenAI reports it, in responses and in the last stream chunk.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<WirePromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<WireCompletionDetails>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct WirePromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct WireCompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cached_input_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens),
            cache_creation_input_tokens: None,
            reasoning_tokens: u.completion_tokens_details.and_then(|d| d.reasoning_tokens),
        }
    }
}

/// Decodes a 2xx body. `Err` carries why it does not decode (the adapter makes it
/// `malformed_response`).
pub(crate) fn decode_response(
    body: &[u8],
    provider: &str,
    requested_model: &str,
    request_id: Option<String>,
) -> Result<ChatResponse, String> {
    let mut wire: WireResponse =
        serde_json::from_slice(body).map_err(|e| format!("response body does not decode: {}", json_error(&e)))?;
    if wire.choices.is_empty() {
        return Err("response has no choices".to_owned());
    }
    wire.choices.sort_by_key(|c| c.index.unwrap_or(0));
    let reasoning_content = wire.choices.first_mut().and_then(|c| c.message.reasoning_content.take());
    let mut choices = wire.choices.into_iter().enumerate().map(|(position, c)| {
        let tool_calls = c
            .message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| ToolCall { id: c.id, name: c.function.name, arguments: c.function.arguments })
            .collect();
        Choice {
            index: c.index.unwrap_or(position),
            text: c.message.content.unwrap_or_default(),
            tool_calls,
            finish_reason: finish_from(c.finish_reason.as_deref()),
            refusal: c.message.refusal,
            logprobs: c.logprobs.and_then(|l| l.content),
        }
    });
    let first = choices.next().ok_or_else(|| "response has no choices".to_owned())?;
    let reasoning = reasoning_content
        .filter(|t| !t.is_empty())
        .map(|thinking| vec![ContentPart::Thinking { thinking, signature: None }])
        .unwrap_or_default();
    // `object` is the gateway's to write; the upstream's `id` and `created` go back to a caller of
    // the same wire with the rest
    wire.extra.remove("object");
    Ok(ChatResponse {
        provider: provider.to_owned(),
        model: wire.model.unwrap_or_else(|| requested_model.to_owned()),
        text: first.text,
        tool_calls: first.tool_calls,
        reasoning,
        finish_reason: first.finish_reason,
        refusal: first.refusal,
        stop_sequence: None,
        logprobs: first.logprobs,
        alternatives: choices.collect(),
        usage: wire.usage.map(Usage::from).unwrap_or_default(),
        request_id,
        dialect: Some(Protocol::Openai),
        extra: wire.extra,
        rate_limit: None,
    })
}

/// A JSON error without serde's quote of the offending value: upstream bytes stay out of messages.
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_text_usage_and_model_as_reported() {
        let raw = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null},"logprobs":null,"finish_reason":"stop"}],
            "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":4}},
            "system_fingerprint":"fp_x","service_tier":"default"}"#;
        let r = decode_response(raw, "openai", "gpt-4o-mini", Some("req_1".into())).unwrap();
        assert_eq!(r.provider, "openai");
        assert_eq!(r.model, "gpt-4o-mini-2024-07-18");
        assert_eq!(r.text, "Hello!");
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(
            r.usage,
            Usage { input_tokens: 9, output_tokens: 2, cached_input_tokens: Some(4), ..Usage::default() }
        );
        assert_eq!(r.request_id.as_deref(), Some("req_1"));
        assert!(r.refusal.is_none() && r.tool_calls.is_empty());
    }

    #[test]
    fn decodes_tool_calls_with_null_content() {
        let raw = br#"{"model":"gpt-4o","choices":[{"message":{"role":"assistant","content":null,"tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"call_2","type":"function","function":{"name":"get_time","arguments":{"tz":"UTC"}}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#;
        let r = decode_response(raw, "openai", "gpt-4o", None).unwrap();
        assert_eq!(r.text, "");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            r.tool_calls,
            vec![
                ToolCall { id: "call_1".into(), name: "get_weather".into(), arguments: "{\"city\":\"Paris\"}".into() },
                ToolCall { id: "call_2".into(), name: "get_time".into(), arguments: "{\"tz\":\"UTC\"}".into() },
            ]
        );
    }

    #[test]
    fn decodes_refusal_and_missing_usage_and_model() {
        let raw =
            br#"{"choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#;
        let r = decode_response(raw, "p", "asked-model", None).unwrap();
        assert_eq!(r.refusal.as_deref(), Some("I can't help with that."));
        assert_eq!(r.model, "asked-model");
        assert_eq!(r.usage, Usage::default());
    }

    #[test]
    fn finish_reasons_map_both_ways() {
        let cases = [
            (Some("stop"), FinishReason::Stop),
            (Some("length"), FinishReason::Length),
            (Some("tool_calls"), FinishReason::ToolCalls),
            (Some("function_call"), FinishReason::ToolCalls),
            (Some("content_filter"), FinishReason::ContentFilter),
            (Some("eos"), FinishReason::Incomplete),
            (None, FinishReason::Incomplete),
        ];
        for (wire, expected) in cases {
            assert_eq!(finish_from(wire), expected, "{wire:?}");
        }
        for reason in [FinishReason::Stop, FinishReason::Length, FinishReason::ToolCalls, FinishReason::ContentFilter] {
            assert_eq!(finish_from(Some(finish_reason(reason))), reason);
        }
        assert_eq!(finish_reason(FinishReason::Incomplete), "length");
    }

    #[test]
    fn usage_states_what_its_writer_can_vouch_for() {
        let u = Usage::new(10, 4).with_reasoning_tokens(2);
        let counts = json!({"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14});
        let mut known = counts.clone();
        known["completion_tokens_details"] = json!({"reasoning_tokens": 2});
        assert_eq!(usage_body(&u, Details::Known), known);
        assert_eq!(usage_body(&Usage::new(10, 4), Details::Known), counts);
        let mut all = counts;
        all["prompt_tokens_details"] = json!({"cached_tokens": 0, "audio_tokens": 0});
        all["completion_tokens_details"] = json!({"reasoning_tokens": 2, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0});
        assert_eq!(usage_body(&u, Details::All), all);
    }

    #[test]
    fn every_choice_says_its_logprobs_null_or_not() {
        let token = TokenLogprob { token: "Hi".into(), logprob: -0.5, bytes: None, top_logprobs: Vec::new() };
        let mut answer = ChatResponse::new("p", "m", "Hi", FinishReason::Stop);
        answer.alternatives.push(Choice { logprobs: Some(vec![token]), ..Choice::new(1, "Hi", FinishReason::Stop) });
        let body = encode_response(&answer, "chatcmpl-1", 1, Details::Known);
        assert_eq!(body["choices"][0]["logprobs"], Value::Null);
        assert!(body["choices"][0].as_object().is_some_and(|c| c.contains_key("logprobs")));
        assert_eq!(body["choices"][1]["logprobs"]["content"][0]["token"], "Hi");
    }

    #[test]
    fn bodies_that_do_not_decode_are_errors() {
        let bad: [&[u8]; 7] = [
            b"",
            b"{\"choices\":[{\"message\":{\"content\":\"Hel",
            b"<html><body>502 Bad Gateway</body></html>",
            b"{\"choices\":[]}",
            b"{\"model\":\"m\"}",
            b"{\"choices\":[{\"message\":{\"content\":42}}]}",
            b"[1,2,3]",
        ];
        for raw in bad {
            assert!(decode_response(raw, "p", "m", None).is_err(), "{}", String::from_utf8_lossy(raw));
        }
    }
}
