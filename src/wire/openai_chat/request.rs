//! `POST /chat/completions` request bodies: decoded from a caller, encoded for a target.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::super::fields::{Fields, data_url, json_body, request_head, strings};
use super::super::original::{Edit, Original, splice};
use super::super::translate::{EncodeError, HARMLESS_MEMBERS, Sink};
use super::super::{Decoded, Encoded, Target, at, effort_for_budget};
use crate::chat::{
    ChatRequest, ContentPart, Extra, MediaSource, Message, Opaque, Reasoning, ResponseFormat, Role, Tool, ToolCall,
    ToolChoice, ToolResult,
};
use crate::protocol::Protocol;

// ---------------------------------------------------------------------------------------------
// Decoding (what a caller sent)
// ---------------------------------------------------------------------------------------------

/// Decodes a caller's Chat Completions body. Members the model has no typed place for are kept in
/// `extra` maps, unknown content parts as native parts.
pub fn decode_request(body: impl Into<Bytes>) -> Result<Decoded, String> {
    let body = body.into();
    let mut decoded = decode_value(json_body(&body)?)?;
    decoded.original = Some(Original::new(Protocol::Openai, body));
    Ok(decoded)
}

/// [`decode_request`] of a body already parsed (the simulator's).
pub(crate) fn decode_value(body: Value) -> Result<Decoded, String> {
    let (mut body, route, stream, messages) = request_head(body)?;
    let mut include_usage = false;
    let mut stream_rest = None;
    if let Some(mut options) = body.object("stream_options")? {
        include_usage = options.bool("include_usage")?.unwrap_or(false);
        if !options.is_empty() {
            stream_rest = Some(options.into_value());
        }
    }
    let max_completion = body.u32("max_completion_tokens")?;
    let max_legacy = body.u32("max_tokens")?;
    let mut request = ChatRequest {
        max_tokens: max_completion.or(max_legacy),
        temperature: body.f64("temperature")?,
        top_p: body.f64("top_p")?,
        stop: strings(&mut body, "stop", true)?,
        seed: body.i64("seed")?,
        presence_penalty: body.f64("presence_penalty")?,
        frequency_penalty: body.f64("frequency_penalty")?,
        logit_bias: body.map("logit_bias")?,
        n: body.u32("n")?,
        logprobs: body.bool("logprobs")?,
        top_logprobs: body.u32("top_logprobs")?,
        parallel_tool_calls: body.bool("parallel_tool_calls")?,
        user: body.str("user")?,
        metadata: body.map("metadata")?,
        service_tier: body.str("service_tier")?,
        reasoning: body.str("reasoning_effort")?.map(|effort| Reasoning::Effort { effort }),
        dialect: Some(Protocol::Openai),
        ..ChatRequest::default()
    };
    let mut op = Vec::new();
    request.response_format = response_format(&mut body, &mut op)?;
    for t in body.objects("tools")? {
        request.tools.extend(tool(t, &mut op)?);
    }
    request.tool_choice = tool_choice(&mut body, &mut op)?;
    for m in messages {
        request.messages.extend(message(m, &mut op)?);
    }
    request.opaque = op;
    request.extra = rest(body);
    if let Some(options) = stream_rest {
        request.extra.insert("stream_options".into(), options);
    }
    Ok(Decoded { route, request, stream, include_usage, original: None })
}

/// What was not taken, less `null` members (SDKs send them for unset options: they mean nothing).
pub(crate) fn rest(fields: Fields) -> Extra {
    let mut extra = fields.rest();
    extra.retain(|_, v| !v.is_null());
    extra
}

/// A member of this wire carried opaque.
fn opaque(field: impl Into<String>, path: impl Into<String>) -> Opaque {
    Opaque::new(Protocol::Openai, field, path, false)
}

/// One message; `None` for a role this code does not know (carried opaque).
fn message(mut m: Fields, op: &mut Vec<Opaque>) -> Result<Option<Message>, String> {
    let role = m.req_str("role")?;
    let mut message = match role.as_str() {
        "system" | "developer" | "user" => {
            let role = match role.as_str() {
                "system" => Role::System,
                "developer" => Role::Developer,
                _ => Role::User,
            };
            if m.peek("content").is_none() {
                return Err(format!("missing required field `{}`", m.path("content")));
            }
            Message::new(role, content(&mut m)?)
        }
        "assistant" => assistant(&mut m, op)?,
        "tool" => {
            let tool_call_id = m.req_str("tool_call_id")?;
            if m.peek("content").is_none() {
                return Err(format!("missing required field `{}`", m.path("content")));
            }
            let content = content(&mut m)?;
            let result = ToolResult { tool_call_id, content, is_error: false, cache_control: None };
            Message::new(Role::Tool, [ContentPart::ToolResult(result)])
        }
        other => {
            op.push(opaque(format!("{other} role"), m.path("role")));
            return Ok(None);
        }
    };
    message.extra = rest(m);
    Ok(Some(message))
}

fn assistant(m: &mut Fields, op: &mut Vec<Opaque>) -> Result<Message, String> {
    let has_content = m.peek("content").is_some();
    let mut parts = content(m)?;
    let calls = m.objects("tool_calls")?;
    if !has_content && calls.is_empty() {
        return Err(format!("invalid `{}`: an assistant message needs `content` or `tool_calls`", m.here()));
    }
    if !calls.is_empty() {
        // SDKs echo `content: ""` beside tool calls; an empty text part would be an empty block upstream
        parts.retain(|p| !matches!(p, ContentPart::Text { text, extra, .. } if text.is_empty() && extra.is_empty()));
    }
    for c in calls {
        parts.extend(tool_call(c, op)?.map(ContentPart::ToolCall));
    }
    Ok(Message::new(Role::Assistant, parts))
}

/// A function call; `None` for a call of another type (a custom tool's), carried opaque.
fn tool_call(mut c: Fields, op: &mut Vec<Opaque>) -> Result<Option<ToolCall>, String> {
    if let Some(kind) = c.str("type")?
        && kind != "function"
    {
        op.push(opaque(format!("{kind} tool call"), c.here()));
        return Ok(None);
    }
    let id = c.req_str("id")?;
    let mut function =
        c.object("function")?.ok_or_else(|| format!("missing required field `{}`", c.path("function")))?;
    let arguments = match function.take("arguments") {
        None => String::new(),
        Some(Value::String(s)) => s,
        Some(_) => return Err(function.invalid("arguments", "a string (a JSON document)")),
    };
    Ok(Some(ToolCall { id, name: function.req_str("name")?, arguments }))
}

/// `content`: a string, or an array of parts.
fn content(m: &mut Fields) -> Result<Vec<ContentPart>, String> {
    match m.take("content") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![ContentPart::text(s)]),
        Some(Value::Array(items)) => {
            let base = m.path("content");
            items.into_iter().enumerate().map(|(i, v)| part(v, format!("{base}[{i}]"))).collect()
        }
        Some(_) => Err(m.invalid("content", "a string or an array of content parts")),
    }
}

fn part(value: Value, path: String) -> Result<ContentPart, String> {
    let mut p = Fields::at(value, path)?;
    let kind = match p.peek("type") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(format!("missing required field `{}`", p.path("type"))),
    };
    let native = |p: Fields| Ok(ContentPart::Native { value: p.into_value() });
    match kind.as_str() {
        "text" => {
            p.take("type");
            let text = p.req_str("text")?;
            Ok(ContentPart::Text { text, cache_control: None, extra: rest(p) })
        }
        "image_url" if p.has_only(&["type", "image_url"]) => {
            let Some(Value::Object(inner)) = p.peek("image_url") else { return native(p) };
            if !inner.keys().all(|k| k == "url" || k == "detail") {
                return native(p);
            }
            let mut image = p.object("image_url")?.unwrap_or_default();
            let url = image.req_str("url")?;
            let source = match data_url(&url) {
                Some((media_type, data)) => MediaSource::base64(media_type, data),
                None => MediaSource::url(url),
            };
            Ok(ContentPart::Image { source, detail: image.str("detail")?, cache_control: None })
        }
        "file" if p.has_only(&["type", "file"]) => {
            let Some(Value::Object(inner)) = p.peek("file") else { return native(p) };
            if !inner.keys().all(|k| ["file_data", "file_id", "filename"].contains(&k.as_str())) {
                return native(p);
            }
            let mut file = p.object("file")?.unwrap_or_default();
            let name = file.str("filename")?;
            let source = match (file.str("file_data")?, file.str("file_id")?) {
                (Some(data), None) => match data_url(&data) {
                    Some((media_type, data)) => MediaSource::base64(media_type, data),
                    None => return Err(file.invalid("file_data", "a data: URL with base64 content")),
                },
                (None, Some(file_id)) => MediaSource::File { file_id },
                _ => return Err(file.invalid("file", "exactly one of `file_data` and `file_id`")),
            };
            Ok(ContentPart::Document { source, name, cache_control: None, extra: Extra::new() })
        }
        "input_audio" if p.has_only(&["type", "input_audio"]) => {
            let Some(Value::Object(inner)) = p.peek("input_audio") else { return native(p) };
            if !inner.keys().all(|k| k == "data" || k == "format") {
                return native(p);
            }
            let mut audio = p.object("input_audio")?.unwrap_or_default();
            Ok(ContentPart::Audio { data: audio.req_str("data")?, format: audio.req_str("format")? })
        }
        "refusal" if p.has_only(&["type", "refusal"]) => Ok(ContentPart::Refusal { refusal: p.req_str("refusal")? }),
        _ => native(p),
    }
}

/// A function tool; `None` for a tool of another type (`custom`, ...), carried opaque.
fn tool(mut t: Fields, op: &mut Vec<Opaque>) -> Result<Option<Tool>, String> {
    if let Some(kind) = t.str("type")?
        && kind != "function"
    {
        op.push(opaque(format!("{kind} tool"), t.here()));
        return Ok(None);
    }
    let mut f = t.object("function")?.ok_or_else(|| format!("missing required field `{}`", t.path("function")))?;
    let base = t.here().to_owned();
    for (k, _) in rest(t) {
        op.push(Opaque::new(Protocol::Openai, k.clone(), at(&base, &k), HARMLESS_MEMBERS.contains(&k.as_str())));
    }
    let parameters = match f.take("parameters") {
        None => json!({"type": "object", "properties": {}}),
        Some(p @ Value::Object(_)) => p,
        Some(_) => return Err(f.invalid("parameters", "a JSON Schema object")),
    };
    Ok(Some(Tool {
        name: f.req_str("name")?,
        description: f.str("description")?,
        parameters,
        strict: f.bool("strict")?,
        cache_control: None,
        extra: rest(f),
    }))
}

/// `tool_choice`; one this code does not know (`allowed_tools`, a custom tool) is carried opaque.
fn tool_choice(body: &mut Fields, op: &mut Vec<Opaque>) -> Result<Option<ToolChoice>, String> {
    let expected = "a string or an object";
    match body.take("tool_choice") {
        None => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "none" => Ok(Some(ToolChoice::None)),
            "auto" => Ok(Some(ToolChoice::Auto)),
            "required" => Ok(Some(ToolChoice::Required)),
            other => {
                op.push(opaque(format!("tool_choice {other}"), "tool_choice"));
                Ok(None)
            }
        },
        Some(v @ Value::Object(_)) => {
            let mut choice = Fields::at(v, body.path("tool_choice"))?;
            let kind = choice.req_str("type")?;
            if kind != "function" {
                op.push(opaque(format!("tool_choice {kind}"), "tool_choice"));
                return Ok(None);
            }
            let mut function = choice
                .object("function")?
                .ok_or_else(|| format!("missing required field `{}`", choice.path("function")))?;
            Ok(Some(ToolChoice::Tool(function.req_str("name")?)))
        }
        Some(_) => Err(body.invalid("tool_choice", expected)),
    }
}

fn response_format(body: &mut Fields, op: &mut Vec<Opaque>) -> Result<Option<ResponseFormat>, String> {
    let Some(mut f) = body.object("response_format")? else { return Ok(None) };
    let kind = f.req_str("type")?;
    let format = match kind.as_str() {
        "text" => ResponseFormat::Text,
        "json_object" => ResponseFormat::JsonObject,
        "json_schema" => {
            let mut s = f
                .object("json_schema")?
                .ok_or_else(|| format!("missing required field `{}`", f.path("json_schema")))?;
            ResponseFormat::JsonSchema {
                name: Some(s.req_str("name")?),
                description: s.str("description")?,
                schema: s.take("schema").unwrap_or_else(|| json!({})),
                strict: s.bool("strict")?,
            }
        }
        other => {
            op.push(opaque(format!("response_format {other}"), f.path("type")));
            return Ok(None);
        }
    };
    Ok(Some(format))
}

// ---------------------------------------------------------------------------------------------
// Encoding (what a target receives)
// ---------------------------------------------------------------------------------------------

/// Encodes `request` as a Chat Completions body for `target`.
pub fn encode_request(request: &ChatRequest, target: Target<'_>, stream: bool) -> Result<Encoded, EncodeError> {
    check_ranges(request, target)?;
    let mut sink = Sink::new(request.dialect == Some(Protocol::Openai));
    let from_anthropic = request.dialect == Some(Protocol::Anthropic);
    let name = |openai: &'static str, anthropic: &'static str| if from_anthropic { anthropic } else { openai };
    let mut body = Map::new();
    body.insert("model".into(), json!(target.model));
    let mut messages = Vec::with_capacity(request.messages.len());
    for (i, m) in request.messages.iter().enumerate() {
        encode_message(m, &format!("messages[{i}]"), &mut sink, &mut messages).map_err(EncodeError::Invalid)?;
    }
    body.insert("messages".into(), Value::Array(messages));
    let mut put = |k: &str, v: Value| {
        body.insert(k.to_owned(), v);
    };
    if let Some(n) = request.max_tokens {
        put("max_completion_tokens", json!(super::super::cross_wire_cap(n, target, sink.same_wire())));
    }
    if let Some(t) = request.temperature {
        put("temperature", json!(t));
    }
    if let Some(p) = request.top_p {
        put("top_p", json!(p));
    }
    if request.top_k.is_some() {
        sink.lossy("top_k", "top_k");
    }
    if !request.stop.is_empty() {
        put("stop", json!(request.stop));
    }
    if let Some(s) = request.seed {
        put("seed", json!(s));
    }
    if let Some(p) = request.presence_penalty {
        put("presence_penalty", json!(p));
    }
    if let Some(p) = request.frequency_penalty {
        put("frequency_penalty", json!(p));
    }
    if let Some(b) = &request.logit_bias {
        put("logit_bias", Value::Object(b.clone()));
    }
    if let Some(n) = request.n {
        put("n", json!(n));
    }
    if let Some(l) = request.logprobs {
        put("logprobs", json!(l));
    }
    if let Some(n) = request.top_logprobs {
        put("top_logprobs", json!(n));
    }
    if let Some(p) = request.parallel_tool_calls {
        put("parallel_tool_calls", json!(p));
    }
    if let Some(u) = &request.user {
        put("user", json!(u));
    }
    if let Some(m) = &request.metadata {
        put("metadata", Value::Object(m.clone()));
    }
    if !request.betas.is_empty() {
        // the header only turns features on: each one the body uses is reported by its own name
        sink.harmless("anthropic-beta", "anthropic-beta");
    }
    if let Some(tier) = &request.service_tier {
        match (from_anthropic, tier.as_str()) {
            (false, _) | (true, "auto") => put("service_tier", json!(tier)),
            (true, "standard_only") => put("service_tier", json!("default")),
            (true, _) => sink.lossy("service_tier", "service_tier"),
        }
    }
    match &request.response_format {
        None => {}
        Some(ResponseFormat::Text) => put("response_format", json!({"type": "text"})),
        Some(ResponseFormat::JsonObject) => put("response_format", json!({"type": "json_object"})),
        Some(ResponseFormat::JsonSchema { name, description, schema, strict }) => {
            let mut s = Map::new();
            s.insert("name".into(), json!(name.as_deref().unwrap_or("response")));
            if let Some(d) = description {
                s.insert("description".into(), json!(d));
            }
            s.insert("schema".into(), schema.clone());
            if let Some(strict) = strict {
                s.insert("strict".into(), json!(strict));
            }
            put("response_format", json!({"type": "json_schema", "json_schema": s}));
        }
    }
    match &request.reasoning {
        None => {}
        Some(Reasoning::Effort { effort }) => put("reasoning_effort", json!(effort)),
        Some(Reasoning::Budget { budget_tokens }) => {
            if let Some(effort) = effort_for_budget(*budget_tokens, target.profile) {
                put("reasoning_effort", json!(effort));
            }
        }
        // a model that does not reason already does not; one that does cannot be told not to
        Some(Reasoning::Disabled) => sink.harmless(name("reasoning", "thinking"), name("reasoning", "thinking")),
        // the model decides how much to think: a model that reasons is told the caller's effort, one
        // that does not meets it by not thinking
        Some(Reasoning::Adaptive { effort }) => match effort.as_deref().filter(|_| reasons(target)) {
            Some(effort) => put("reasoning_effort", json!(if effort == "max" { "high" } else { effort })),
            None => sink.harmless("thinking", "thinking"),
        },
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> =
            request.tools.iter().enumerate().map(|(i, t)| encode_tool(t, &format!("tools[{i}]"), &mut sink)).collect();
        put("tools", Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        put(
            "tool_choice",
            match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
            },
        );
    }
    if stream {
        put("stream", json!(true));
        put("stream_options", stream_options(request, sink.same_wire()));
    }
    sink.extra(&request.extra, "", &mut body);
    let dropped = sink.finish(target.unsupported)?;
    Ok(Encoded { body, headers: Vec::new(), dropped })
}

/// Whether the target's profile says its model reasons (it is then told an adaptive effort).
fn reasons(target: Target<'_>) -> bool {
    target.profile.and_then(|p| p.accepts.as_ref()).is_some_and(|a| a.contains(&crate::capability::Feature::Reasoning))
}

/// Values this wire takes only in a range, checked before any call: the error names the field,
/// the target and the range.
pub(crate) fn check_ranges(request: &ChatRequest, target: Target<'_>) -> Result<(), EncodeError> {
    match request.temperature {
        Some(t) if !(0.0..=2.0).contains(&t) => {
            Err(EncodeError::Invalid(format!("`temperature` {t} is out of range for {}: 0 to 2", target.model)))
        }
        _ => Ok(()),
    }
}

/// A stream's `stream_options`: the caller's own (same wire), and the usage the router needs to
/// account tokens (the gateway leaves it out for callers that did not ask).
fn stream_options(request: &ChatRequest, same_wire: bool) -> Value {
    let mut options = match request.extra.get("stream_options").filter(|_| same_wire) {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    options.insert("include_usage".into(), json!(true));
    Value::Object(options)
}

/// `original`, a caller's Chat Completions body, for `target`: the caller's bytes with `model`,
/// `stream` and `stream_options` set, after the same range checks as [`encode_request`].
pub(crate) fn encode_original(
    original: &[u8],
    request: &ChatRequest,
    target: Target<'_>,
    stream: bool,
) -> Result<Vec<u8>, EncodeError> {
    check_ranges(request, target)?;
    let edits = if stream {
        [
            Edit::set("model", json!(target.model)),
            Edit::set("stream", json!(true)),
            Edit::set("stream_options", stream_options(request, true)),
        ]
    } else {
        // OpenAI refuses `stream_options` without a stream
        [Edit::set("model", json!(target.model)), Edit::replace("stream", json!(false)), Edit::remove("stream_options")]
    };
    splice(original, &edits).map_err(EncodeError::Invalid)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::Developer => "developer",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// Appends the wire messages for one normalized message. Tool results become `tool` messages of
/// their own, placed first: OpenAI wants them right after the assistant turn that made the calls.
fn encode_message(m: &Message, path: &str, sink: &mut Sink, out: &mut Vec<Value>) -> Result<(), String> {
    let mut parts: Vec<Value> = Vec::new();
    let mut plain = true;
    let mut calls = Vec::new();
    let mut results = 0usize;
    for (i, part) in m.content.iter().enumerate() {
        let ppath = format!("{path}.content[{i}]");
        match part {
            ContentPart::ToolCall(c) => {
                if m.role != Role::Assistant {
                    return Err(format!(
                        "{path}: tool calls can only appear in assistant messages, not {}",
                        role_name(m.role)
                    ));
                }
                calls.push(
                    json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}),
                );
            }
            ContentPart::ToolResult(r) => {
                if m.role == Role::Assistant || m.role.is_instruction() {
                    return Err(format!("{path}: tool results cannot appear in a {} message", role_name(m.role)));
                }
                results += 1;
                if r.cache_control.is_some() {
                    sink.harmless("cache_control", at(&ppath, "cache_control"));
                }
                let mut inner = Vec::new();
                let mut inner_plain = true;
                for (j, p) in r.content.iter().enumerate() {
                    let jpath = format!("{ppath}.content[{j}]");
                    if !matches!(p, ContentPart::Text { .. } | ContentPart::Native { .. }) {
                        sink.lossy(&format!("tool_result {}", p.kind()), jpath);
                        continue;
                    }
                    if let Some(v) = encode_part(p, &jpath, sink, &mut inner_plain) {
                        inner.push(v);
                    }
                }
                let content = joined_or_parts(inner, inner_plain);
                out.push(json!({"role": "tool", "tool_call_id": r.tool_call_id, "content": content}));
            }
            _ => {
                if let Some(v) = encode_part(part, &ppath, sink, &mut plain) {
                    parts.push(v);
                }
            }
        }
    }
    let mut wire = Map::new();
    match m.role {
        Role::Assistant => {
            wire.insert("role".into(), json!("assistant"));
            // null content only when the turn is nothing but tool calls
            let content =
                if parts.is_empty() && !calls.is_empty() { Value::Null } else { joined_or_parts(parts, plain) };
            wire.insert("content".into(), content);
            if !calls.is_empty() {
                wire.insert("tool_calls".into(), Value::Array(calls));
            }
        }
        Role::System | Role::Developer | Role::User => {
            if !parts.is_empty() || results == 0 {
                wire.insert("role".into(), json!(role_name(m.role)));
                wire.insert("content".into(), joined_or_parts(parts, plain));
            }
        }
        Role::Tool => {
            if !parts.is_empty() {
                return Err(format!("{path}: a tool message carries tool results only"));
            }
        }
    }
    if !wire.is_empty() {
        sink.extra(&m.extra, path, &mut wire);
        out.push(Value::Object(wire));
    } else if !m.extra.is_empty() {
        sink.extra(&m.extra, path, &mut Map::new());
    }
    Ok(())
}

/// Plain text parts as one string (the form every client sends), anything else as an array.
fn joined_or_parts(parts: Vec<Value>, plain: bool) -> Value {
    if plain {
        let texts: Vec<&str> = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
        if texts.len() == 1 || texts.is_empty() {
            return json!(texts.concat());
        }
    }
    Value::Array(parts)
}

/// One content part on the wire; `plain` turns false when it is more than bare text.
fn encode_part(part: &ContentPart, path: &str, sink: &mut Sink, plain: &mut bool) -> Option<Value> {
    let note_cache = |c: &Option<crate::chat::CacheControl>, sink: &mut Sink| {
        if c.is_some() {
            // OpenAI caches prompt prefixes by itself: the mark changes nothing there
            sink.harmless("cache_control", at(path, "cache_control"));
        }
    };
    match part {
        ContentPart::Text { text, cache_control, extra } => {
            note_cache(cache_control, sink);
            let mut p = Map::new();
            p.insert("type".into(), json!("text"));
            p.insert("text".into(), json!(text));
            if !extra.is_empty() {
                *plain = false;
                sink.extra(extra, path, &mut p);
            }
            Some(Value::Object(p))
        }
        ContentPart::Image { source, detail, cache_control } => {
            note_cache(cache_control, sink);
            *plain = false;
            let url = match source {
                MediaSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
                MediaSource::Url { url } => url.clone(),
                MediaSource::File { .. } => {
                    sink.lossy("image file_id", at(path, "source"));
                    return None;
                }
            };
            let mut image = Map::new();
            image.insert("url".into(), json!(url));
            if let Some(d) = detail {
                image.insert("detail".into(), json!(d));
            }
            Some(json!({"type": "image_url", "image_url": image}))
        }
        ContentPart::Document { source, name, cache_control, extra } => {
            note_cache(cache_control, sink);
            *plain = false;
            sink.extra(extra, path, &mut Map::new());
            let mut file = Map::new();
            match source {
                MediaSource::Base64 { media_type, data } => {
                    file.insert("file_data".into(), json!(format!("data:{media_type};base64,{data}")));
                }
                MediaSource::File { file_id } if sink.same_wire() => {
                    file.insert("file_id".into(), json!(file_id));
                }
                MediaSource::File { .. } => {
                    sink.lossy("document file_id", at(path, "source"));
                    return None;
                }
                MediaSource::Url { .. } => {
                    sink.lossy("document url", at(path, "source"));
                    return None;
                }
            }
            if let Some(n) = name {
                file.insert("filename".into(), json!(n));
            }
            Some(json!({"type": "file", "file": file}))
        }
        ContentPart::Audio { data, format } => {
            *plain = false;
            Some(json!({"type": "input_audio", "input_audio": {"data": data, "format": format}}))
        }
        ContentPart::Thinking { .. } | ContentPart::RedactedThinking { .. } => {
            // reasoning of an earlier turn, from a wire that shows it: this wire takes none back
            sink.harmless(part.kind(), path.to_owned());
            None
        }
        ContentPart::Refusal { refusal } => {
            *plain = false;
            Some(json!({"type": "refusal", "refusal": refusal}))
        }
        ContentPart::Native { value } => {
            if sink.same_wire() {
                *plain = false;
                Some(value.clone())
            } else {
                let kind = value.get("type").and_then(Value::as_str).unwrap_or("unknown");
                sink.lossy(kind, path.to_owned());
                None
            }
        }
        ContentPart::ToolCall(_) | ContentPart::ToolResult(_) => None,
    }
}

fn encode_tool(t: &Tool, path: &str, sink: &mut Sink) -> Value {
    let mut f = Map::new();
    f.insert("name".into(), json!(t.name));
    if let Some(d) = &t.description {
        f.insert("description".into(), json!(d));
    }
    f.insert("parameters".into(), t.parameters.clone());
    if let Some(s) = t.strict {
        f.insert("strict".into(), json!(s));
    }
    if t.cache_control.is_some() {
        sink.harmless("cache_control", at(path, "cache_control"));
    }
    sink.extra(&t.extra, path, &mut f);
    json!({"type": "function", "function": f})
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// What goes on the wire: serialized the way the adapter sends it, then read back.
    fn body(model: &str, req: &ChatRequest, stream: bool) -> Value {
        let wire = encode_request(req, Target::new(model), stream).unwrap();
        serde_json::from_slice(&serde_json::to_vec(&wire.body).unwrap()).unwrap()
    }

    fn weather_tool() -> Tool {
        Tool::new("get_weather", "Weather for a city", json!({"type":"object","properties":{"city":{"type":"string"}}}))
    }

    #[test]
    fn minimal_request_has_only_model_and_messages() {
        let req = ChatRequest::user("hi");
        assert_eq!(
            body("gpt-4o-mini", &req, false),
            json!({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})
        );
    }

    #[test]
    fn roles_system_first_and_sampling_fields() {
        let req = ChatRequest::user("hi")
            .message(Message::assistant("hello"))
            .message(Message::user("again"))
            .system("be brief")
            .max_tokens(64)
            .temperature(0.7)
            .stop("END")
            .stop("STOP");
        assert_eq!(
            body("gpt-4o", &req, false),
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role":"system","content":"be brief"},
                    {"role":"user","content":"hi"},
                    {"role":"assistant","content":"hello"},
                    {"role":"user","content":"again"}
                ],
                "max_completion_tokens": 64,
                "temperature": 0.7,
                "stop": ["END","STOP"]
            })
        );
    }

    #[test]
    fn several_text_parts_stay_parts() {
        let m = Message::new(Role::User, [ContentPart::text("a"), ContentPart::text("b")]);
        assert_eq!(
            body("m", &ChatRequest::new([m]), false)["messages"],
            json!([{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}])
        );
    }

    #[test]
    fn tool_calls_and_results_round_trip() {
        let call =
            ToolCall { id: "call_1".into(), name: "get_weather".into(), arguments: "{\"city\":\"Paris\"}".into() };
        let call2 =
            ToolCall { id: "call_2".into(), name: "get_weather".into(), arguments: "{\"city\":\"Oslo\"}".into() };
        let req = ChatRequest::user("weather?")
            .message(Message::tool_calls([call, call2]))
            .message(Message::tool_result("call_1", "18C"))
            .message(Message::tool_result("call_2", "3C"))
            .message(Message::new(
                Role::Assistant,
                [
                    ContentPart::text("Let me check again."),
                    ContentPart::ToolCall(ToolCall {
                        id: "call_3".into(),
                        name: "get_weather".into(),
                        arguments: "{}".into(),
                    }),
                ],
            ))
            .tool(weather_tool());
        assert_eq!(
            body("gpt-4o", &req, false),
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role":"user","content":"weather?"},
                    {"role":"assistant","content":null,"tool_calls":[
                        {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                        {"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}
                    ]},
                    {"role":"tool","tool_call_id":"call_1","content":"18C"},
                    {"role":"tool","tool_call_id":"call_2","content":"3C"},
                    {"role":"assistant","content":"Let me check again.","tool_calls":[
                        {"id":"call_3","type":"function","function":{"name":"get_weather","arguments":"{}"}}
                    ]}
                ],
                "tools": [{"type":"function","function":{
                    "name":"get_weather","description":"Weather for a city",
                    "parameters":{"type":"object","properties":{"city":{"type":"string"}}}
                }}]
            })
        );
    }

    #[test]
    fn tool_results_in_a_user_turn_come_before_its_text() {
        let m = Message::new(
            Role::User,
            [
                ContentPart::text("and now?"),
                ContentPart::ToolResult(ToolResult {
                    tool_call_id: "c1".into(),
                    content: vec![ContentPart::text("ok")],
                    is_error: false,
                    cache_control: None,
                }),
            ],
        );
        assert_eq!(
            body("m", &ChatRequest::new([m]), false)["messages"],
            json!([{"role":"tool","tool_call_id":"c1","content":"ok"},{"role":"user","content":"and now?"}])
        );
    }

    #[test]
    fn conversations_openai_cannot_express_are_rejected() {
        let call = ToolCall { id: "c".into(), name: "f".into(), arguments: "{}".into() };
        let user_with_call = Message::new(Role::User, [ContentPart::ToolCall(call)]);
        assert!(encode_request(&ChatRequest::new([user_with_call]), Target::new("m"), false).is_err());
        let tool_with_text = Message::text(Role::Tool, "orphan");
        let err = encode_request(&ChatRequest::new([Message::user("x"), tool_with_text]), Target::new("m"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("messages[1]"), "{err}");
    }

    #[test]
    fn tool_choice_variants() {
        let cases = [
            (ToolChoice::Auto, json!("auto")),
            (ToolChoice::None, json!("none")),
            (ToolChoice::Required, json!("required")),
            (ToolChoice::Tool("get_weather".into()), json!({"type":"function","function":{"name":"get_weather"}})),
        ];
        for (choice, expected) in cases {
            let req = ChatRequest::user("x").tool(weather_tool()).tool_choice(choice);
            assert_eq!(body("m", &req, false)["tool_choice"], expected);
        }
    }

    #[test]
    fn streaming_adds_stream_and_usage_flags() {
        let b = body("m", &ChatRequest::user("x"), true);
        assert_eq!(b["stream"], json!(true));
        assert_eq!(b["stream_options"], json!({"include_usage": true}));
        let b = body("m", &ChatRequest::user("x"), false);
        assert!(b.get("stream").is_none() && b.get("stream_options").is_none(), "{b}");
    }
}
