//! OpenAI's Responses API (`POST /v1/responses`), as the gateway speaks it to its clients: a
//! request is translated member by member into the Chat Completions request it means (then
//! decoded by the one OpenAI codec, so every target of either wire can serve it), and the answer
//! back into a `response` object. A member with no translation is refused by name: nothing is
//! dropped without a word.
//!
//! This first step serves whole answers; `stream: true`, `previous_response_id` and `store: true`
//! are refused with a 400 saying what to send instead.

use serde_json::{Map, Value, json};

/// Members of a Responses request this translation carries (others are refused by name).
const CARRIED: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "temperature",
    "top_p",
    "text",
    "reasoning",
    "parallel_tool_calls",
    "metadata",
    "user",
    "store",
    "stream",
    "seed",
];

/// The Chat Completions body a Responses request means, or why it cannot be served.
pub(crate) fn to_chat(body: &[u8]) -> Result<Value, String> {
    let req: Map<String, Value> = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    if let Some(unknown) = req.keys().find(|k| !CARRIED.contains(&k.as_str())) {
        return Err(format!(
            "`{unknown}` is not supported by this gateway's Responses endpoint (it would be dropped): leave it out, or use /v1/chat/completions"
        ));
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(
            "`stream`: this gateway's Responses endpoint answers whole responses only for now; send `stream: false`, or stream through /v1/chat/completions"
                .into(),
        );
    }
    if req.get("store").and_then(Value::as_bool) == Some(true) {
        return Err(
            "`store`: this gateway keeps no responses; send `store: false` (and the whole conversation in `input`)"
                .into(),
        );
    }
    let mut chat = Map::new();
    chat.insert("model".into(), req.get("model").cloned().ok_or("`model` is required")?);
    let mut messages = Vec::new();
    if let Some(instructions) = req.get("instructions") {
        let text = instructions.as_str().ok_or("`instructions` must be a string")?;
        messages.push(json!({"role": "system", "content": text}));
    }
    match req.get("input") {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                messages.extend(input_item(item).map_err(|e| format!("`input[{i}]`{e}"))?);
            }
        }
        Some(_) => return Err("`input` must be a string or an array of items".into()),
        None => return Err("`input` is required".into()),
    }
    chat.insert("messages".into(), Value::Array(merge_tool_calls(messages)));
    if let Some(tools) = req.get("tools") {
        let tools = tools.as_array().ok_or("`tools` must be an array")?;
        let mut out = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                let kind = t.get("type").and_then(Value::as_str).unwrap_or("?");
                return Err(format!(
                    "`tools[{i}]`: only function tools are served here (not `{kind}`, which runs on OpenAI's side)"
                ));
            }
            let mut function = Map::new();
            for k in ["name", "description", "parameters", "strict"] {
                if let Some(v) = t.get(k) {
                    function.insert(k.into(), v.clone());
                }
            }
            out.push(json!({"type": "function", "function": function}));
        }
        chat.insert("tools".into(), Value::Array(out));
    }
    if let Some(choice) = req.get("tool_choice") {
        let mapped = match choice {
            Value::String(_) => choice.clone(),
            Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
                json!({"type": "function", "function": {"name": o.get("name").cloned().unwrap_or(Value::Null)}})
            }
            _ => return Err("`tool_choice`: `auto`, `none`, `required` or a function".into()),
        };
        chat.insert("tool_choice".into(), mapped);
    }
    for (from, to) in [
        ("max_output_tokens", "max_completion_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("metadata", "metadata"),
        ("user", "user"),
        ("seed", "seed"),
    ] {
        if let Some(v) = req.get(from) {
            chat.insert(to.into(), v.clone());
        }
    }
    if let Some(text) = req.get("text") {
        let format = text.get("format");
        if let Some(other) = text.as_object().and_then(|t| t.keys().find(|k| k.as_str() != "format")) {
            return Err(format!("`text.{other}` is not supported by this gateway's Responses endpoint"));
        }
        match format.and_then(|f| f.get("type")).and_then(Value::as_str) {
            None | Some("text") => {}
            Some("json_object") => {
                chat.insert("response_format".into(), json!({"type": "json_object"}));
            }
            Some("json_schema") => {
                let f = format.and_then(Value::as_object).ok_or("`text.format` must be an object")?;
                let mut schema = Map::new();
                for k in ["name", "schema", "strict", "description"] {
                    if let Some(v) = f.get(k) {
                        schema.insert(k.into(), v.clone());
                    }
                }
                chat.insert("response_format".into(), json!({"type": "json_schema", "json_schema": schema}));
            }
            Some(other) => return Err(format!("`text.format.type` `{other}` is not supported")),
        }
    }
    if let Some(reasoning) = req.get("reasoning") {
        let r = reasoning.as_object().ok_or("`reasoning` must be an object")?;
        if let Some(other) = r.keys().find(|k| k.as_str() != "effort") {
            return Err(format!("`reasoning.{other}` is not supported by this gateway's Responses endpoint"));
        }
        if let Some(effort) = r.get("effort") {
            chat.insert("reasoning_effort".into(), effort.clone());
        }
    }
    Ok(Value::Object(chat))
}

/// The Chat Completions messages of one input item (an item may become none: a `reasoning` item
/// is refused, since its encrypted content has no place on the other wires).
fn input_item(item: &Value) -> Result<Vec<Value>, String> {
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
    match kind {
        "message" => {
            let role = item.get("role").and_then(Value::as_str).ok_or(".role is required")?;
            if !matches!(role, "user" | "assistant" | "system" | "developer") {
                return Err(format!(".role `{role}` is not a message role"));
            }
            let content = match item.get("content") {
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(Value::Array(parts)) => {
                    let mut out = Vec::new();
                    for (j, p) in parts.iter().enumerate() {
                        out.push(content_part(p).map_err(|e| format!(".content[{j}]{e}"))?);
                    }
                    // an assistant turn of the history is text on the chat wire
                    if role == "assistant" {
                        let text: Vec<&str> =
                            out.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
                        Value::String(text.concat())
                    } else {
                        Value::Array(out)
                    }
                }
                _ => return Err(".content must be a string or an array of parts".into()),
            };
            Ok(vec![json!({"role": role, "content": content})])
        }
        "function_call" => {
            let call_id = item.get("call_id").cloned().ok_or(".call_id is required")?;
            let name = item.get("name").cloned().ok_or(".name is required")?;
            let arguments = item.get("arguments").cloned().unwrap_or(Value::String("{}".into()));
            Ok(vec![json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            ]})])
        }
        "function_call_output" => {
            let call_id = item.get("call_id").cloned().ok_or(".call_id is required")?;
            let output = match item.get("output") {
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(other) => Value::String(other.to_string()),
                None => return Err(".output is required".into()),
            };
            Ok(vec![json!({"role": "tool", "tool_call_id": call_id, "content": output})])
        }
        other => Err(format!(
            ".type `{other}` is not supported by this gateway's Responses endpoint (it has no place on the chat wire)"
        )),
    }
}

fn content_part(part: &Value) -> Result<Value, String> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    Ok(match kind {
        "input_text" | "output_text" => json!({"type": "text", "text": part.get("text").cloned().unwrap_or_default()}),
        "input_image" => {
            let mut image = Map::new();
            match (part.get("image_url"), part.get("file_id")) {
                (Some(url), _) => image.insert("url".into(), url.clone()),
                (None, Some(_)) => {
                    return Err(".file_id: images by file id cannot be carried to other providers".into());
                }
                (None, None) => return Err(".image_url is required".into()),
            };
            if let Some(detail) = part.get("detail") {
                image.insert("detail".into(), detail.clone());
            }
            json!({"type": "image_url", "image_url": image})
        }
        "input_file" => {
            let mut file = Map::new();
            for k in ["file_data", "file_id", "filename"] {
                if let Some(v) = part.get(k) {
                    file.insert(k.into(), v.clone());
                }
            }
            json!({"type": "file", "file": file})
        }
        other => return Err(format!(".type `{other}` is not supported")),
    })
}

/// Consecutive assistant tool-call messages become one (the chat wire groups a turn's calls).
fn merge_tool_calls(messages: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(messages.len());
    for m in messages {
        let is_calls = m.get("tool_calls").is_some();
        if is_calls
            && let Some(last) = out.last_mut()
            && last.get("role").and_then(Value::as_str) == Some("assistant")
            && let (Some(Value::Array(calls)), Some(Value::Array(more))) =
                (last.get_mut("tool_calls").map(std::mem::take), m.get("tool_calls").cloned())
        {
            let mut calls = calls;
            calls.extend(more);
            last["tool_calls"] = Value::Array(calls);
            continue;
        }
        out.push(m);
    }
    out
}

/// A `response` object from the Chat Completions answer the gateway made (`chat`), with what the
/// caller asked echoed where the Responses API echoes it.
pub(crate) fn from_chat(chat: &Value, request: &Value, id: &str, created: u64) -> Value {
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
    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let (status, incomplete) = match finish {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    };
    let usage = &chat["usage"];
    let input = usage["prompt_tokens"].as_u64().unwrap_or(0);
    let output_tokens = usage["completion_tokens"].as_u64().unwrap_or(0);
    let echo = |k: &str, default: Value| request.get(k).cloned().unwrap_or(default);
    let mut response = json!({
        "id": format!("resp_{id}"),
        "object": "response",
        "created_at": created,
        "status": status,
        "incomplete_details": incomplete,
        "error": null,
        "model": chat["model"],
        "output": output,
        "instructions": echo("instructions", Value::Null),
        "tools": echo("tools", json!([])),
        "tool_choice": echo("tool_choice", json!("auto")),
        "parallel_tool_calls": echo("parallel_tool_calls", json!(true)),
        "temperature": echo("temperature", Value::Null),
        "top_p": echo("top_p", Value::Null),
        "max_output_tokens": echo("max_output_tokens", Value::Null),
        "metadata": echo("metadata", json!({})),
        "text": echo("text", json!({"format": {"type": "text"}})),
        "reasoning": echo("reasoning", json!({"effort": null})),
        "store": false,
        "previous_response_id": null,
        "usage": {
            "input_tokens": input,
            "input_tokens_details": {"cached_tokens": usage.pointer("/prompt_tokens_details/cached_tokens").and_then(Value::as_u64).unwrap_or(0)},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.pointer("/completion_tokens_details/reasoning_tokens").and_then(Value::as_u64).unwrap_or(0)},
            "total_tokens": input + output_tokens,
        },
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_with_items_becomes_the_chat_request_it_means() {
        let body = json!({
            "model": "chat",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}, {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"}]},
                {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "call_id": "c2", "name": "time", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "c2", "output": "noon"},
            ],
            "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "weather"},
            "max_output_tokens": 100,
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
            "reasoning": {"effort": "low"},
        });
        let chat = to_chat(&serde_json::to_vec(&body).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(chat["messages"][0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(chat["messages"][1]["content"][1]["image_url"], json!({"url": "https://x/y.png", "detail": "low"}));
        assert_eq!(chat["messages"][2]["tool_calls"].as_array().map(Vec::len), Some(2), "one turn, two calls");
        assert_eq!(chat["messages"][3], json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}));
        assert_eq!(chat["tools"][0]["function"]["strict"], true);
        assert_eq!(chat["tool_choice"]["function"]["name"], "weather");
        assert_eq!(chat["max_completion_tokens"], 100);
        assert_eq!(chat["response_format"]["json_schema"]["name"], "w");
        assert_eq!(chat["reasoning_effort"], "low");
        assert!(crate::wire::decode(crate::Protocol::Openai, serde_json::to_vec(&chat).unwrap_or_default()).is_ok());
    }

    #[test]
    fn what_cannot_be_carried_is_refused_by_name() {
        for (body, why) in [
            (json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}), "`previous_response_id`"),
            (json!({"model": "m", "input": "x", "stream": true}), "`stream`"),
            (json!({"model": "m", "input": "x", "store": true}), "`store`"),
            (json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}), "`tools[0]`"),
            (json!({"model": "m", "input": [{"type": "reasoning", "id": "rs_1"}]}), "`input[0]`.type `reasoning`"),
            (json!({"model": "m", "input": "x", "reasoning": {"summary": "auto"}}), "`reasoning.summary`"),
        ] {
            let e = to_chat(&serde_json::to_vec(&body).unwrap_or_default()).err().unwrap_or_default();
            assert!(e.contains(why), "{body}: {e}");
        }
    }
}

/// The Responses API as a gateway dialect: parsed through its Chat Completions translation,
/// answered as `response` objects, errors in OpenAI's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResponsesWire;

impl super::dialect::Dialect for ResponsesWire {
    type Encoder = super::openai::OpenAiEncoder;

    fn parse(body: bytes::Bytes) -> Result<super::dialect::Parsed, String> {
        let chat = to_chat(&body)?;
        let bytes = serde_json::to_vec(&chat).map_err(|e| e.to_string())?;
        crate::wire::openai_chat::decode_request(bytes::Bytes::from(bytes))
    }

    fn response(r: &crate::router::RoutedResponse) -> Value {
        let chat = <super::openai::OpenAiWire as super::dialect::Dialect>::response(r);
        let created = chat["created"].as_u64().unwrap_or(0);
        let id = chat["id"].as_str().unwrap_or("").trim_start_matches("chatcmpl-").to_owned();
        from_chat(&chat, &Value::Null, &id, created)
    }

    fn error(f: &super::dialect::Failure) -> Value {
        <super::openai::OpenAiWire as super::dialect::Dialect>::error(f)
    }

    fn encoder(include_usage: bool, provider: &str, model: &str) -> Self::Encoder {
        // never reached: a stream is refused when the request is parsed
        <super::openai::OpenAiWire as super::dialect::Dialect>::encoder(include_usage, provider, model)
    }
}
