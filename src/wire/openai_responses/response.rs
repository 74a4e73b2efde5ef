//! `response` objects: made from a Chat Completions answer (what the gateway answers a Responses
//! caller), and read back into one (what the adapter makes of a Responses target's answer).

use serde_json::{Map, Value, json};

use crate::chat::Usage;

/// The Chat Completions `finish_reason` of a `response` object's outcome: `completed` (with or
/// without function calls) or `incomplete` and why.
pub(crate) fn chat_finish(response: &Value, completed: bool, calls: bool) -> &'static str {
    match response.pointer("/incomplete_details/reason").and_then(Value::as_str) {
        _ if completed && calls => "tool_calls",
        _ if completed => "stop",
        Some("content_filter") => "content_filter",
        _ => "length",
    }
}

/// A `response` object's usage as Chat Completions reports it; `None` when it has none (no
/// usage is made up).
pub(crate) fn chat_usage(response: &Value) -> Option<Value> {
    let u = response.get("usage").filter(|u| u.is_object())?;
    let count = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Some(json!({
        "prompt_tokens": count("/input_tokens"),
        "completion_tokens": count("/output_tokens"),
        "total_tokens": count("/total_tokens"),
        "prompt_tokens_details": {"cached_tokens": count("/input_tokens_details/cached_tokens")},
        "completion_tokens_details": {"reasoning_tokens": count("/output_tokens_details/reasoning_tokens")},
    }))
}

/// The members of a `response` object beyond the ones this translation reads (`service_tier`,
/// members added after this release): a Chat Completions answer carries them top-level.
pub(crate) fn extras(response: &Value) -> impl Iterator<Item = (&String, &Value)> {
    response.as_object().into_iter().flatten().filter(|(k, _)| !own(k))
}

/// Members of a `response` object this translation reads or writes, beyond the request's
/// settings it repeats ([`ECHOED`]); anything else a provider sends goes across as a top-level
/// member of the other side, unchanged.
const OWN: &[&str] = &[
    "id",
    "object",
    "created_at",
    "status",
    "error",
    "incomplete_details",
    "model",
    "output",
    "output_text",
    "usage",
    // request settings OpenAI repeats that this gateway does not serve (a Chat Completions answer
    // does not carry them either)
    "top_logprobs",
    "max_tool_calls",
    "store",
    "previous_response_id",
    "background",
    "prompt",
    "conversation",
];

/// Whether `member` of a `response` object is one this translation knows.
fn own(member: &str) -> bool {
    OWN.contains(&member) || ECHOED.contains(&member)
}

/// The request members a `response` object repeats.
const ECHOED: &[&str] = &[
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "max_output_tokens",
    "metadata",
    "text",
    "reasoning",
    "user",
    "truncation",
    "prompt_cache_key",
    "safety_identifier",
];

/// What a `response` object repeats of the Responses request `body` (its settings as sent).
pub(crate) fn echo_of(body: &[u8]) -> Option<Value> {
    let request: Map<String, Value> = serde_json::from_slice(body).ok()?;
    let echo: Map<String, Value> =
        request.into_iter().filter(|(k, v)| ECHOED.contains(&k.as_str()) && !v.is_null()).collect();
    Some(Value::Object(echo))
}

/// Sets what the request said in a `response` object (over the defaults [`object`] writes).
pub(crate) fn apply_echo(response: &mut Value, echo: Option<&Value>) {
    if let (Value::Object(r), Some(Value::Object(echo))) = (response, echo) {
        for (k, v) in echo {
            r.insert(k.clone(), v.clone());
        }
    }
}

/// What a `response` object says about the request, in the order OpenAI writes it.
pub(crate) struct Head<'a> {
    /// The response id (`resp_…`).
    pub(crate) id: &'a str,
    /// Unix time.
    pub(crate) created: u64,
    /// The model that answers.
    pub(crate) model: &'a str,
}

/// A `response` object: `status` (`in_progress`, `completed`, `incomplete`, `failed`), its
/// `output` items so far, and, once known, usage and why it is incomplete or failed.
pub(crate) fn object(head: &Head<'_>, status: &str, output: Vec<Value>, usage: Option<&Usage>) -> Value {
    json!({
        "id": head.id,
        "object": "response",
        "created_at": head.created,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "max_output_tokens": null,
        "model": head.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage.map(usage_body),
        "metadata": {},
    })
}

/// Usage as a `response` object carries it.
pub(crate) fn usage_body(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_input_tokens.unwrap_or(0)},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens.unwrap_or(0)},
        "total_tokens": u.total(),
    })
}

/// `status` and `incomplete_details` for a Chat Completions `finish_reason`.
pub(crate) fn status_for(finish: Option<&str>) -> (&'static str, Value) {
    match finish {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// A `response` object from the Chat Completions answer the gateway made (`chat`).
pub(crate) fn from_chat(chat: &Value) -> Value {
    let created = chat["created"].as_u64().unwrap_or(0);
    let id = chat["id"].as_str().unwrap_or("").trim_start_matches("chatcmpl-").to_owned();
    let choice = &chat["choices"][0];
    let message = &choice["message"];
    let mut output = Vec::new();
    if let Some(reasoning) = message.get("reasoning_content").and_then(Value::as_str).filter(|r| !r.is_empty()) {
        output.push(json!({"type": "reasoning", "id": format!("rs_{id}"), "summary": [{"type": "summary_text", "text": reasoning}]}));
    }
    let text = message.get("content").and_then(Value::as_str).unwrap_or("");
    let refusal = message.get("refusal").and_then(Value::as_str);
    if !text.is_empty() || refusal.is_some() {
        let mut content = Vec::new();
        if !text.is_empty() {
            content.push(json!({"type": "output_text", "text": text, "annotations": []}));
        }
        if let Some(r) = refusal {
            content.push(json!({"type": "refusal", "refusal": r}));
        }
        output.push(json!({"type": "message", "id": format!("msg_{id}"), "status": "completed", "role": "assistant", "content": content}));
    }
    for (i, call) in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
        output.push(json!({
            "type": "function_call",
            "id": format!("fc_{id}_{i}"),
            "call_id": call["id"],
            "name": call["function"]["name"],
            "arguments": call["function"]["arguments"],
            "status": "completed",
        }));
    }
    let (status, incomplete) = status_for(choice.get("finish_reason").and_then(Value::as_str));
    let u = &chat["usage"];
    let count = |p: &str| u.pointer(p).and_then(Value::as_u64);
    let usage = Usage {
        input_tokens: count("/prompt_tokens").unwrap_or(0),
        output_tokens: count("/completion_tokens").unwrap_or(0),
        cached_input_tokens: count("/prompt_tokens_details/cached_tokens"),
        cache_creation_input_tokens: None,
        reasoning_tokens: count("/completion_tokens_details/reasoning_tokens"),
    };
    let model = chat["model"].as_str().unwrap_or("");
    let mut response = object(&Head { id: &format!("resp_{id}"), created, model }, status, output, Some(&usage));
    response["incomplete_details"] = incomplete;
    // what the provider said that the translation has no place for (`service_tier`,
    // `system_fingerprint`, newer members) goes back as it came, as on the chat endpoint
    if let (Value::Object(out), Some(chat)) = (&mut response, chat.as_object()) {
        for (k, v) in chat {
            if !matches!(k.as_str(), "id" | "object" | "created" | "choices" | "usage") && !out.contains_key(k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    response
}

/// The Chat Completions answer a Responses target's `response` object means, or why it is not a
/// finished answer. An output item with no place in a chat answer (a hosted tool's call) is an
/// error naming it, never dropped.
pub(crate) fn to_chat(response: &Value) -> Result<Value, String> {
    let r = response.as_object().ok_or("not a response object")?;
    let status = r.get("status").and_then(Value::as_str).unwrap_or("completed");
    match status {
        "completed" | "incomplete" => {}
        "failed" => {
            let message = response.pointer("/error/message").and_then(Value::as_str).unwrap_or("the response failed");
            return Err(format!("the response failed: {message}"));
        }
        other => return Err(format!("the response is `{other}`, not finished")),
    }
    let mut text = String::new();
    let mut refusal: Option<String> = None;
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for (i, item) in r.get("output").and_then(Value::as_array).into_iter().flatten().enumerate() {
        match item.get("type").and_then(Value::as_str).unwrap_or("") {
            "message" => {
                for part in item.get("content").and_then(Value::as_array).into_iter().flatten() {
                    match part.get("type").and_then(Value::as_str).unwrap_or("") {
                        "output_text" => text.push_str(part.get("text").and_then(Value::as_str).unwrap_or("")),
                        "refusal" => refusal
                            .get_or_insert_with(String::new)
                            .push_str(part.get("refusal").and_then(Value::as_str).unwrap_or("")),
                        other => {
                            return Err(format!("`output[{i}].content` part `{other}` has no place in a chat answer"));
                        }
                    }
                }
            }
            "function_call" => calls.push(json!({
                "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": item.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": item.get("arguments").cloned().unwrap_or(json!("{}")),
                },
            })),
            "reasoning" => {
                for s in item.get("summary").and_then(Value::as_array).into_iter().flatten() {
                    if !reasoning.is_empty() {
                        reasoning.push_str("\n\n");
                    }
                    reasoning.push_str(s.get("text").and_then(Value::as_str).unwrap_or(""));
                }
            }
            other => return Err(format!("`output[{i}]` of type `{other}` has no place in a chat answer")),
        }
    }
    let finish = chat_finish(response, status == "completed", !calls.is_empty());
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert("content".into(), if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) });
    message.insert("refusal".into(), refusal.map_or(Value::Null, Value::String));
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), json!(reasoning));
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let mut chat = json!({
        "id": r.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": r.get("created_at").cloned().unwrap_or(json!(0)),
        "model": r.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}],
    });
    if let Value::Object(out) = &mut chat {
        if let Some(usage) = chat_usage(response) {
            out.insert("usage".into(), usage);
        }
        out.extend(extras(response).map(|(k, v)| (k.clone(), v.clone())));
    }
    Ok(chat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_read_back_is_the_chat_answer_it_was_made_from() {
        let chat = json!({
            "id": "chatcmpl-7", "object": "chat.completion", "created": 5, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
                "role": "assistant", "content": "Let me look.", "refusal": null, "reasoning_content": "think",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14,
                      "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 2}},
            "service_tier": "default",
        });
        let response = from_chat(&chat);
        assert_eq!(response["usage"]["input_tokens_details"]["cached_tokens"], 3);
        assert_eq!(response["service_tier"], "default");
        let back = to_chat(&response).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back["choices"][0]["message"]["content"], "Let me look.");
        assert_eq!(back["choices"][0]["message"]["reasoning_content"], "think");
        assert_eq!(back["choices"][0]["message"]["tool_calls"], chat["choices"][0]["message"]["tool_calls"]);
        assert_eq!(back["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(back["usage"], chat["usage"]);
        assert_eq!(back["service_tier"], "default");
        assert!(back.get("truncation").is_none(), "request echoes stay on the Responses side");
    }

    #[test]
    fn what_a_chat_answer_cannot_hold_is_an_error_naming_it() {
        let hosted = json!({"status": "completed", "output": [{"type": "web_search_call", "id": "ws_1"}]});
        assert!(to_chat(&hosted).err().unwrap_or_default().contains("`web_search_call`"));
        let failed = json!({"status": "failed", "error": {"code": "server_error", "message": "boom"}, "output": []});
        assert!(to_chat(&failed).err().unwrap_or_default().contains("boom"));
        let cut = json!({"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "output": []});
        assert_eq!(to_chat(&cut).ok().map(|c| c["choices"][0]["finish_reason"].clone()), Some(json!("length")));
    }
}
