//! Requests: a Responses request is translated member by member into the Chat Completions
//! request it means (then decoded by the one OpenAI codec, so every target of every wire can serve
//! it), and a normalized request is encoded for a Responses target through its Chat Completions
//! encoding, member by member. A member with no translation is refused by name (decoding) or
//! reported as [`Unsupported`](crate::wire::Unsupported) (encoding): nothing is dropped without a
//! word. The caller's own body goes unchanged to a target of this wire.

use serde_json::{Map, Value, json};

use crate::chat::{ChatRequest, Opaque};
use crate::protocol::Protocol;
use crate::wire::original::{Edit, Original, splice};
use crate::wire::translate::{HARMLESS_MEMBERS, Sink};
use crate::wire::{Decoded, EncodeError, Encoded, Target};

/// Members of a Responses request this translation reads; any other is carried opaque (a target
/// of this wire gets it in the caller's body, and a target of another wire is skipped naming it,
/// or drops it as the policy says).
const READ: &[&str] = &[
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
    "stream_options",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
    "truncation",
    "background",
    "include",
    "previous_response_id",
    "conversation",
];

/// Decodes a caller's Responses body: the request it means, and the body itself for a target of
/// this wire.
pub fn decode_request(body: impl Into<bytes::Bytes>) -> Result<Decoded, String> {
    let body = body.into();
    let (chat, opaque) = to_chat(&body)?;
    let bytes = serde_json::to_vec(&chat).map_err(|e| e.to_string())?;
    let mut decoded = crate::wire::openai_chat::decode_request(bytes::Bytes::from(bytes))?;
    decoded.request.opaque.extend(opaque);
    decoded.original = Some(Original::new(Protocol::OpenaiResponses, body));
    Ok(decoded)
}

/// A member of this wire carried opaque.
fn opaque(field: impl Into<String>, path: impl Into<String>, harmless: bool) -> Opaque {
    Opaque::new(Protocol::OpenaiResponses, field, path, harmless)
}

/// The Chat Completions body a Responses request means, with what it carries opaque (members,
/// items, tools and values with no place on the chat wire), or why it cannot be served at all.
pub(crate) fn to_chat(body: &[u8]) -> Result<(Value, Vec<Opaque>), String> {
    let mut req: Map<String, Value> = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    // a member sent as `null` is a member not sent (some clients write every optional one)
    req.retain(|_, v| !v.is_null());
    let mut op = Vec::new();
    if req.get("background").and_then(Value::as_bool) == Some(true) {
        return Err("`background`: this gateway answers in the foreground only; send `background: false`".into());
    }
    for k in req.keys().filter(|k| !READ.contains(&k.as_str())) {
        op.push(opaque(k.clone(), k.clone(), HARMLESS_MEMBERS.contains(&k.as_str())));
    }
    // the continuation of a conversation OpenAI keeps: only OpenAI's Responses API has it
    for k in ["previous_response_id", "conversation"] {
        if req.contains_key(k) {
            op.push(opaque(k, k, false));
        }
    }
    // a response kept at OpenAI, to be read back there: another wire keeps none
    if req.get("store").and_then(Value::as_bool) == Some(true) {
        op.push(opaque("store", "store", false));
    }
    if let Some(t) = req.get("truncation").and_then(Value::as_str).filter(|t| *t != "disabled") {
        op.push(opaque(format!("truncation {t}"), "truncation", false));
    }
    // extra output (encrypted reasoning, logprobs, sources): the answer itself is the same
    if req.get("include").and_then(Value::as_array).is_some_and(|i| !i.is_empty()) {
        op.push(opaque("include", "include", true));
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
                messages
                    .extend(input_item(item, &format!("input[{i}]"), &mut op).map_err(|e| format!("`input[{i}]`{e}"))?);
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
            let kind = t.get("type").and_then(Value::as_str).unwrap_or("?");
            if kind != "function" {
                // a tool OpenAI runs (web search, file search), a group of tools, a grammar tool
                op.push(opaque(format!("{kind} tool"), format!("tools[{i}]"), false));
                continue;
            }
            let mut function = Map::new();
            for (k, v) in t.as_object().into_iter().flatten() {
                match k.as_str() {
                    "type" => {}
                    "name" | "description" | "parameters" | "strict" => {
                        function.insert(k.clone(), v.clone());
                    }
                    other if !v.is_null() => {
                        op.push(opaque(other, format!("tools[{i}].{other}"), HARMLESS_MEMBERS.contains(&other)));
                    }
                    _ => {}
                }
            }
            out.push(json!({"type": "function", "function": function}));
        }
        if !out.is_empty() {
            chat.insert("tools".into(), Value::Array(out));
        }
    }
    if let Some(choice) = req.get("tool_choice") {
        match choice {
            Value::String(_) => {
                chat.insert("tool_choice".into(), choice.clone());
            }
            Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
                chat.insert(
                    "tool_choice".into(),
                    json!({"type": "function", "function": {"name": o.get("name").cloned().unwrap_or(Value::Null)}}),
                );
            }
            other => {
                let kind = other.get("type").and_then(Value::as_str).unwrap_or("?");
                op.push(opaque(format!("tool_choice {kind}"), "tool_choice", false));
            }
        }
    }
    for (from, to) in [
        ("max_output_tokens", "max_completion_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("metadata", "metadata"),
        ("user", "user"),
        ("service_tier", "service_tier"),
        ("prompt_cache_key", "prompt_cache_key"),
        ("safety_identifier", "safety_identifier"),
    ] {
        if let Some(v) = req.get(from) {
            chat.insert(to.into(), v.clone());
        }
    }
    if let Some(text) = req.get("text") {
        let text = text.as_object().ok_or("`text` must be an object")?;
        for (k, v) in text {
            match k.as_str() {
                "format" => text_format(v, &mut chat, &mut op)?,
                // the same member on the chat wire
                "verbosity" => {
                    chat.insert("verbosity".into(), v.clone());
                }
                other => op.push(opaque(format!("text.{other}"), format!("text.{other}"), false)),
            }
        }
    }
    if let Some(reasoning) = req.get("reasoning") {
        let r = reasoning.as_object().ok_or("`reasoning` must be an object")?;
        for (k, v) in r {
            match k.as_str() {
                "effort" => {
                    chat.insert("reasoning_effort".into(), v.clone());
                }
                // a summary of the reasoning shown to the caller: the answer is the same without
                "summary" | "generate_summary" => {
                    op.push(opaque(format!("reasoning.{k}"), format!("reasoning.{k}"), true))
                }
                other => op.push(opaque(format!("reasoning.{other}"), format!("reasoning.{other}"), false)),
            }
        }
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        // a Responses stream always ends with its usage
        chat.insert("stream".into(), json!(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok((Value::Object(chat), op))
}

/// `text.format` as the chat wire's `response_format`.
fn text_format(format: &Value, chat: &mut Map<String, Value>, op: &mut Vec<Opaque>) -> Result<(), String> {
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => {}
        Some("json_object") => {
            chat.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some("json_schema") => {
            let f = format.as_object().ok_or("`text.format` must be an object")?;
            let mut schema = Map::new();
            for (k, v) in f {
                match k.as_str() {
                    "type" => {}
                    "name" | "schema" | "strict" | "description" => {
                        schema.insert(k.clone(), v.clone());
                    }
                    other => op.push(opaque(format!("text.format.{other}"), format!("text.format.{other}"), false)),
                }
            }
            chat.insert("response_format".into(), json!({"type": "json_schema", "json_schema": schema}));
        }
        Some(other) => op.push(opaque(format!("text.format {other}"), "text.format.type", false)),
    }
    Ok(())
}

/// The members of an item or part beyond those `read`, each carried opaque as `KIND.member`. An
/// id or status of handed-back output says nothing to the model, nor do its annotations and
/// logprobs (harmless).
fn unread(value: &Value, kind: &str, read: &[&str], path: &str, op: &mut Vec<Opaque>) {
    for (k, v) in value.as_object().into_iter().flatten() {
        if v.is_null() || read.contains(&k.as_str()) || matches!(k.as_str(), "type" | "id" | "status") {
            continue;
        }
        let harmless = matches!(k.as_str(), "annotations" | "logprobs");
        op.push(opaque(format!("{kind}.{k}"), format!("{path}.{k}"), harmless));
    }
}

/// The Chat Completions messages of one input item. An item this code does not know, or a part of
/// one, is carried opaque; a `reasoning` item becomes none (see below).
fn input_item(item: &Value, path: &str, op: &mut Vec<Opaque>) -> Result<Vec<Value>, String> {
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
    match kind {
        "message" => {
            let role = item.get("role").and_then(Value::as_str).ok_or(".role is required")?;
            if !matches!(role, "user" | "assistant" | "system" | "developer") {
                op.push(opaque(format!("{role} role"), format!("{path}.role"), false));
                return Ok(Vec::new());
            }
            unread(item, "message", &["role", "content"], path, op);
            let content = match item.get("content") {
                Some(Value::String(s)) => Value::String(s.clone()),
                // an assistant turn of the history (an earlier response's output handed back) is
                // text and a refusal on the chat wire
                Some(Value::Array(parts)) if role == "assistant" => {
                    let (mut text, mut refusal) = (String::new(), None::<String>);
                    for (j, p) in parts.iter().enumerate() {
                        let part_path = format!("{path}.content[{j}]");
                        match p.get("type").and_then(Value::as_str).unwrap_or("") {
                            kind @ ("output_text" | "input_text") => {
                                unread(p, kind, &["text"], &part_path, op);
                                text.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""));
                            }
                            "refusal" => {
                                unread(p, "refusal", &["refusal"], &part_path, op);
                                refusal
                                    .get_or_insert_with(String::new)
                                    .push_str(p.get("refusal").and_then(Value::as_str).unwrap_or(""));
                            }
                            other => {
                                op.push(opaque(format!("{other} content part"), format!("{path}.content[{j}]"), false))
                            }
                        }
                    }
                    let mut message = json!({"role": role, "content": text});
                    if let Some(r) = refusal {
                        message["refusal"] = json!(r);
                    }
                    return Ok(vec![message]);
                }
                Some(Value::Array(parts)) => {
                    let mut out = Vec::new();
                    for (j, p) in parts.iter().enumerate() {
                        out.extend(
                            content_part(p, &format!("{path}.content[{j}]"), op)
                                .map_err(|e| format!(".content[{j}]{e}"))?,
                        );
                    }
                    Value::Array(out)
                }
                _ => return Err(".content must be a string or an array of parts".into()),
            };
            Ok(vec![json!({"role": role, "content": content})])
        }
        "function_call" => {
            let call_id = item.get("call_id").cloned().ok_or(".call_id is required")?;
            let name = item.get("name").cloned().ok_or(".name is required")?;
            unread(item, "function_call", &["call_id", "name", "arguments"], path, op);
            let arguments = item.get("arguments").cloned().unwrap_or(Value::String("{}".into()));
            Ok(vec![json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            ]})])
        }
        "function_call_output" => {
            let call_id = item.get("call_id").cloned().ok_or(".call_id is required")?;
            unread(item, "function_call_output", &["call_id", "output"], path, op);
            let output = match item.get("output") {
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for (j, p) in parts.iter().enumerate() {
                        match p.get("type").and_then(Value::as_str) {
                            Some(kind @ ("input_text" | "output_text")) => {
                                unread(p, kind, &["text"], &format!("{path}.output[{j}]"), op);
                                text.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""));
                            }
                            other => op.push(opaque(
                                format!("{} function_call_output part", other.unwrap_or("?")),
                                format!("{path}.output[{j}]"),
                                false,
                            )),
                        }
                    }
                    Value::String(text)
                }
                _ => return Err(".output must be a string or an array of parts".into()),
            };
            Ok(vec![json!({"role": "tool", "tool_call_id": call_id, "content": output})])
        }
        // an earlier response's reasoning handed back: its summary was shown to the caller, its
        // encrypted content is OpenAI's own; a model on another wire never made it, and OpenAI
        // itself sets earlier turns' reasoning aside (a Responses target gets it, body unchanged)
        "reasoning" => Ok(Vec::new()),
        // a call of a tool OpenAI ran, a custom tool's call, a reference to a stored item...
        other => {
            op.push(opaque(format!("{other} input item"), path.to_owned(), false));
            Ok(Vec::new())
        }
    }
}

/// One content part of a user, system or developer message; one this code does not know, or an
/// image or file the other wires cannot fetch, is carried opaque.
fn content_part(part: &Value, path: &str, op: &mut Vec<Opaque>) -> Result<Option<Value>, String> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    let read: &[&str] = match kind {
        "input_text" | "output_text" => &["text"],
        "input_image" => &["image_url", "file_id", "detail"],
        "input_file" => &["file_data", "file_id", "filename", "file_url"],
        _ => &[],
    };
    if !read.is_empty() {
        unread(part, kind, read, path, op);
    }
    Ok(Some(match kind {
        "input_text" | "output_text" => json!({"type": "text", "text": part.get("text").cloned().unwrap_or_default()}),
        "input_image" => {
            let mut image = Map::new();
            match (part.get("image_url"), part.get("file_id")) {
                (Some(url), _) => image.insert("url".into(), url.clone()),
                // a file in OpenAI's store: only OpenAI can read it
                (None, Some(_)) => {
                    op.push(opaque("input_image file_id", format!("{path}.file_id"), false));
                    return Ok(None);
                }
                (None, None) => return Err(".image_url is required".into()),
            };
            if let Some(detail) = part.get("detail") {
                image.insert("detail".into(), detail.clone());
            }
            json!({"type": "image_url", "image_url": image})
        }
        "input_file" => {
            if part.get("file_url").is_some() {
                op.push(opaque("input_file file_url", format!("{path}.file_url"), false));
                return Ok(None);
            }
            let mut file = Map::new();
            for k in ["file_data", "file_id", "filename"] {
                if let Some(v) = part.get(k) {
                    file.insert(k.into(), v.clone());
                }
            }
            json!({"type": "file", "file": file})
        }
        other => {
            op.push(opaque(format!("{other} content part"), path.to_owned(), false));
            return Ok(None);
        }
    }))
}

/// An assistant turn's text and the tool calls after it become one message (the chat wire
/// groups a turn's calls, and its text, in one).
fn merge_tool_calls(messages: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(messages.len());
    for m in messages {
        if let (Some(Value::Array(more)), Some(last)) = (m.get("tool_calls"), out.last_mut())
            && last.get("role").and_then(Value::as_str) == Some("assistant")
        {
            let calls = last.as_object_mut().map(|l| l.entry("tool_calls").or_insert_with(|| json!([])));
            if let Some(Value::Array(calls)) = calls {
                calls.extend(more.iter().cloned());
                continue;
            }
        }
        out.push(m);
    }
    out
}

/// `request` for a Responses target: its Chat Completions encoding, translated member by member.
/// What the chat wire cannot carry is reported by that encoding; what the Responses wire cannot
/// (`n`, `stop`, penalties, `logit_bias`, logprobs, audio, and members it has never heard of) is
/// reported here, by the same rules.
pub fn encode_request(request: &ChatRequest, target: Target<'_>, stream: bool) -> Result<Encoded, EncodeError> {
    let chat = crate::wire::openai_chat::encode_request(request, target, stream)?;
    let mut sink = Sink::new(false);
    let mut body = Map::new();
    for (k, v) in chat.body {
        match k.as_str() {
            "model"
            | "temperature"
            | "top_p"
            | "parallel_tool_calls"
            | "metadata"
            | "user"
            | "service_tier"
            | "prompt_cache_key"
            | "safety_identifier"
            | "store" => {
                body.insert(k, v);
            }
            "stream" => {
                body.insert(k, v);
            }
            // a Responses stream always carries usage
            "stream_options" => {}
            "max_completion_tokens" | "max_tokens" => {
                body.insert("max_output_tokens".into(), v);
            }
            "reasoning_effort" => {
                body.insert("reasoning".into(), json!({"effort": v}));
            }
            "messages" => {
                let (instructions, input) = input_items(&v, &mut sink).map_err(EncodeError::Invalid)?;
                if let Some(i) = instructions {
                    body.insert("instructions".into(), json!(i));
                }
                body.insert("input".into(), Value::Array(input));
            }
            "tools" => {
                let tools = v.as_array().map(|t| t.iter().map(flat_tool).collect()).unwrap_or_default();
                body.insert("tools".into(), Value::Array(tools));
            }
            "tool_choice" => {
                let choice = match v.pointer("/function/name") {
                    Some(name) => json!({"type": "function", "name": name}),
                    None => v,
                };
                body.insert("tool_choice".into(), choice);
            }
            "response_format" => {
                let format = match v.get("type").and_then(Value::as_str) {
                    Some("json_schema") => {
                        let mut f = v.get("json_schema").and_then(Value::as_object).cloned().unwrap_or_default();
                        f.insert("type".into(), json!("json_schema"));
                        Value::Object(f)
                    }
                    _ => v,
                };
                body.insert("text".into(), json!({"format": format}));
            }
            _ => sink.lossy(&k, k.clone()),
        }
    }
    // a Responses call is stored by OpenAI unless it says not to; nothing here asked for that
    body.entry("store").or_insert(json!(false));
    let mut dropped = chat.dropped;
    dropped.extend(sink.finish(target.unsupported)?);
    Ok(Encoded { body, headers: chat.headers, dropped })
}

/// A Chat Completions tool in the flat Responses shape. `strict` is said outright: the Responses
/// API takes a missing one as `true`, Chat Completions as `false`.
fn flat_tool(tool: &Value) -> Value {
    let mut flat = Map::new();
    flat.insert("type".into(), json!("function"));
    if let Some(f) = tool.get("function").and_then(Value::as_object) {
        for (k, v) in f {
            flat.insert(k.clone(), v.clone());
        }
    }
    flat.entry("strict").or_insert(json!(false));
    Value::Object(flat)
}

/// Chat messages as Responses input items; a leading system message becomes `instructions`.
fn input_items(messages: &Value, sink: &mut Sink) -> Result<(Option<String>, Vec<Value>), String> {
    let mut instructions = None;
    let mut items = Vec::new();
    for (i, m) in messages.as_array().into_iter().flatten().enumerate() {
        let path = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        for (k, v) in m.as_object().into_iter().flatten() {
            if !v.is_null() && !matches!(k.as_str(), "role" | "content" | "tool_calls" | "tool_call_id") {
                sink.lossy(k, format!("{path}.{k}"));
            }
        }
        match role {
            "system" if i == 0 && m["content"].is_string() => {
                instructions = m["content"].as_str().map(str::to_owned);
            }
            "tool" => items.push(json!({
                "type": "function_call_output",
                "call_id": m.get("tool_call_id").cloned().unwrap_or(Value::Null),
                "output": text_of(&m["content"]),
            })),
            _ => {
                let content = match &m["content"] {
                    Value::Null => None,
                    Value::String(s) => Some(json!(s)),
                    Value::Array(parts) => {
                        let mut out = Vec::new();
                        for (j, p) in parts.iter().enumerate() {
                            out.extend(input_part(p, role, &format!("{path}.content[{j}]"), sink));
                        }
                        Some(Value::Array(out))
                    }
                    other => return Err(format!("{path}.content: not a string or parts: {other}")),
                };
                if let Some(content) = content {
                    items.push(json!({"role": role, "content": content}));
                }
                for call in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    items.push(json!({
                        "type": "function_call",
                        "call_id": call.get("id").cloned().unwrap_or(Value::Null),
                        "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
                        "arguments": call.pointer("/function/arguments").cloned().unwrap_or(json!("{}")),
                    }));
                }
            }
        }
    }
    Ok((instructions, items))
}

/// One chat content part as a Responses one (an assistant's text is `output_text`).
fn input_part(part: &Value, role: &str, path: &str, sink: &mut Sink) -> Option<Value> {
    Some(match part.get("type").and_then(Value::as_str).unwrap_or("") {
        "text" => {
            let kind = if role == "assistant" { "output_text" } else { "input_text" };
            json!({"type": kind, "text": part.get("text").cloned().unwrap_or_default()})
        }
        "image_url" => {
            let mut image = Map::new();
            image.insert("type".into(), json!("input_image"));
            image.insert("image_url".into(), part.pointer("/image_url/url").cloned().unwrap_or(Value::Null));
            image.insert("detail".into(), part.pointer("/image_url/detail").cloned().unwrap_or(json!("auto")));
            Value::Object(image)
        }
        "file" => {
            let mut file = part.get("file").and_then(Value::as_object).cloned().unwrap_or_default();
            file.insert("type".into(), json!("input_file"));
            Value::Object(file)
        }
        other => {
            sink.lossy(other, path.to_owned());
            return None;
        }
    })
}

/// A tool message's content as the text a `function_call_output` carries.
fn text_of(content: &Value) -> Value {
    match content {
        Value::Array(parts) => {
            json!(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<String>())
        }
        other => other.clone(),
    }
}

/// `original`, a caller's Responses body, for `target`: the caller's bytes with `model` and
/// `stream` set, and `store: false` unless the body says otherwise, after the same range checks
/// as Chat Completions.
pub(crate) fn encode_original(
    original: &[u8],
    request: &ChatRequest,
    target: Target<'_>,
    stream: bool,
) -> Result<Vec<u8>, EncodeError> {
    crate::wire::openai_chat::check_ranges(request, target)?;
    // the gateway keeps no responses, so it does not let OpenAI keep them either unless asked
    let store = Edit::default_to("store", json!(false));
    let edits = if stream {
        [Edit::set("model", json!(target.model)), Edit::set("stream", json!(true)), store]
    } else {
        [Edit::set("model", json!(target.model)), Edit::replace("stream", json!(false)), store]
    };
    splice(original, &edits).map_err(EncodeError::Invalid)
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
        let (chat, opaque) = to_chat(&serde_json::to_vec(&body).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(opaque.is_empty(), "{opaque:?}");
        assert_eq!(chat["messages"][0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(chat["messages"][1]["content"][1]["image_url"], json!({"url": "https://x/y.png", "detail": "low"}));
        assert_eq!(chat["messages"][2]["tool_calls"].as_array().map(Vec::len), Some(2), "one turn, two calls");
        assert_eq!(chat["messages"][3], json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}));
        assert_eq!(chat["tools"][0]["function"]["strict"], true);
        assert_eq!(chat["tool_choice"]["function"]["name"], "weather");
        assert_eq!(chat["max_completion_tokens"], 100);
        assert_eq!(chat["response_format"]["json_schema"]["name"], "w");
        assert_eq!(chat["reasoning_effort"], "low");
        assert!(
            crate::wire::decode(crate::protocol::Protocol::Openai, serde_json::to_vec(&chat).unwrap_or_default())
                .is_ok()
        );
    }

    /// What it carries opaque, by name and path, and whether it is harmless.
    fn opaque_of(body: &Value) -> Vec<(String, String, bool)> {
        let (_, opaque) =
            to_chat(&serde_json::to_vec(body).unwrap_or_default()).unwrap_or_else(|e| panic!("{body}: {e}"));
        opaque.into_iter().map(|o| (o.field, o.path, o.harmless)).collect()
    }

    #[test]
    fn what_has_no_place_on_the_chat_wire_is_carried_opaque_by_name() {
        let o = |f: &str, p: &str, h: bool| (f.to_owned(), p.to_owned(), h);
        for (body, expected) in [
            (
                json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}),
                o("previous_response_id", "previous_response_id", false),
            ),
            (
                json!({"model": "m", "input": "x", "include": ["reasoning.encrypted_content"]}),
                o("include", "include", true),
            ),
            (json!({"model": "m", "input": "x", "store": true}), o("store", "store", false)),
            (json!({"model": "m", "input": "x", "truncation": "auto"}), o("truncation auto", "truncation", false)),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
                o("web_search tool", "tools[0]", false),
            ),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "rs_1"}, {"role": "user", "content": "x"}]}),
                o("item_reference input item", "input[0]", false),
            ),
            (
                json!({"model": "m", "input": "x", "reasoning": {"summary": "auto"}}),
                o("reasoning.summary", "reasoning.summary", true),
            ),
            (
                json!({"model": "m", "input": "x", "client_metadata": {"a": "b"}}),
                o("client_metadata", "client_metadata", true),
            ),
            (
                json!({"model": "m", "input": "x", "a_member_of_next_month": 1}),
                o("a_member_of_next_month", "a_member_of_next_month", false),
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f", "defer": true}]}),
                o("defer", "tools[0].defer", false),
            ),
            (
                json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "s", "schema": {}, "extra": 1}}}),
                o("text.format.extra", "text.format.extra", false),
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_file", "file_url": "https://x/y.pdf"}]}]}),
                o("input_file file_url", "input[0].content[1].file_url", false),
            ),
            (
                json!({"model": "m", "input": [{"role": "critic", "content": "x"}, {"role": "user", "content": "y"}]}),
                o("critic role", "input[0].role", false),
            ),
            (
                json!({"model": "m", "input": [{"type": "message", "id": "m1", "status": "completed", "role": "user", "phase": "commentary",
                                                "content": [{"type": "input_text", "text": "x"}]}]}),
                o("message.phase", "input[0].phase", false),
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "x", "cite": true}]}]}),
                o("input_text.cite", "input[0].content[0].cite", false),
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": "q"}, {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", "namespace": "ns"}]}),
                o("function_call.namespace", "input[1].namespace", false),
            ),
        ] {
            assert_eq!(opaque_of(&body), vec![expected], "{body}");
        }
    }

    #[test]
    fn what_it_carries_opaque_leaves_the_rest_translated() {
        // what Codex sends: every unknown member carried, the request it means intact
        let body = json!({
            "model": "m", "stream": true, "store": false, "include": ["reasoning.encrypted_content"],
            "reasoning": {"effort": "high", "summary": "auto"}, "prompt_cache_key": "k", "client_metadata": {"turn": "1"},
            "tools": [{"type": "function", "name": "exec", "parameters": {"type": "object"}, "strict": false},
                      {"type": "namespace", "name": "agents", "tools": []}, {"type": "web_search"}],
            "text": {"verbosity": "low"},
            "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be careful"}]},
                      {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        });
        let (chat, opaque) = to_chat(&serde_json::to_vec(&body).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = opaque.iter().map(|o| o.field.as_str()).collect();
        assert_eq!(names, ["client_metadata", "include", "namespace tool", "web_search tool", "reasoning.summary"]);
        assert_eq!(chat["tools"].as_array().map(Vec::len), Some(1));
        assert_eq!(chat["reasoning_effort"], "high");
        assert_eq!(chat["verbosity"], "low");
        assert_eq!(chat["prompt_cache_key"], "k");
        assert_eq!(chat["messages"][0]["role"], "developer");
    }

    #[test]
    fn a_background_response_is_refused_the_gateway_has_nowhere_to_keep_it() {
        let e = to_chat(br#"{"model": "m", "input": "x", "background": true}"#).err().unwrap_or_default();
        assert!(e.contains("`background`"), "{e}");
    }

    #[test]
    fn an_earlier_response_handed_back_is_taken() {
        // what the SDK loop `input += response.output` sends: items with ids and statuses,
        // a reasoning item, a refusal part, null members
        let body = json!({
            "model": "m", "instructions": null, "previous_response_id": null,
            "input": [
                {"role": "user", "content": "Weather?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "status": "completed", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "sunny"}]},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            ],
        });
        let (chat, _) = to_chat(&serde_json::to_vec(&body).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        let messages = chat["messages"].as_array().cloned().unwrap_or_default();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert_eq!(messages[1]["content"], "Let me check.");
        assert_eq!(messages[1]["tool_calls"][0]["id"], "c1", "the turn's text and its call are one message");
        assert_eq!(messages[2]["content"], "sunny");
        assert_eq!(messages[3]["refusal"], "no");
    }
}
