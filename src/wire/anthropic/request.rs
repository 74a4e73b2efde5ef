//! `POST /v1/messages` request bodies: decoded from a caller, encoded for a target.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::super::fields::{Fields, json_body, request_head, strings};
use super::super::openai_chat::rest;
use super::super::original::{Edit, Original, splice};
use super::super::translate::{EncodeError, Sink};
use super::super::{Decoded, Encoded, Target, at, budget_for_effort};
use crate::chat::{
    CacheControl, ChatRequest, ContentPart, MediaSource, Message, Opaque, Reasoning, ResponseFormat, Role, Tool,
    ToolCall, ToolChoice, ToolResult,
};
use crate::protocol::Protocol;

/// `max_tokens` when neither the request nor the model's profile gives one (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The smallest thinking budget Anthropic accepts.
pub const MIN_THINKING_BUDGET: u32 = 1024;

/// The beta that `output_format` (structured outputs) needs.
pub const STRUCTURED_OUTPUTS_BETA: &str = "structured-outputs-2025-11-13";

// ---------------------------------------------------------------------------------------------
// Decoding (what a caller sent)
// ---------------------------------------------------------------------------------------------

/// Decodes a caller's Messages body. Members the model has no typed place for are kept in `extra`
/// maps, unknown blocks as native parts.
pub fn decode_request(body: impl Into<Bytes>) -> Result<Decoded, String> {
    let body = body.into();
    let mut decoded = decode_value(json_body(&body)?)?;
    decoded.original = Some(Original::new(Protocol::Anthropic, body));
    Ok(decoded)
}

/// [`decode_request`] of a body already parsed (the simulator's).
pub(crate) fn decode_value(body: Value) -> Result<Decoded, String> {
    let (mut body, route, stream, turns) = request_head(body)?;
    let mut op = Vec::new();
    let mut request = ChatRequest {
        messages: system(&mut body, &mut op)?.into_iter().collect(),
        // required by Anthropic's API; without it the adapter supplies the model profile's default
        max_tokens: body.u32("max_tokens")?,
        temperature: body.f64("temperature")?,
        top_p: body.f64("top_p")?,
        top_k: body.u32("top_k")?,
        stop: strings(&mut body, "stop_sequences", false)?,
        service_tier: body.str("service_tier")?,
        tools: body.objects("tools")?.into_iter().map(|t| tool(t, &mut op)).collect::<Result<_, _>>()?,
        dialect: Some(Protocol::Anthropic),
        ..ChatRequest::default()
    };
    if let Some((choice, parallel)) = tool_choice(&mut body, &mut op)? {
        request.tool_choice = choice;
        request.parallel_tool_calls = parallel;
    }
    metadata(&mut body, &mut request)?;
    thinking(&mut body, &mut request, &mut op)?;
    output_format(&mut body, &mut request)?;
    output_config(&mut body, &mut request, &mut op)?;
    for m in turns {
        turn(m, &mut request.messages, &mut op)?;
    }
    request.extra.extend(rest(body));
    request.opaque = op;
    Ok(Decoded { route, request, stream, include_usage: true, original: None })
}

/// A member of this wire carried opaque.
fn opaque(field: impl Into<String>, path: impl Into<String>, harmless: bool) -> Opaque {
    Opaque::new(Protocol::Anthropic, field, path, harmless)
}

fn cache_control(f: &mut Fields, op: &mut Vec<Opaque>) -> Result<Option<CacheControl>, String> {
    let Some(mut c) = f.object("cache_control")? else { return Ok(None) };
    let control = CacheControl { kind: c.str("type")?.unwrap_or_else(|| "ephemeral".into()), ttl: c.str("ttl")? };
    // a cache mark's new settings (a scope, say) only make it cheaper or faster
    untaken(c, "cache_control", true, op);
    Ok(Some(control))
}

/// The members of `f` nothing took, each carried opaque as `NAME.member`.
fn untaken(f: Fields, name: &str, harmless: bool, op: &mut Vec<Opaque>) {
    let base = f.here().to_owned();
    op.extend(rest(f).into_iter().map(|(k, _)| opaque(format!("{name}.{k}"), at(&base, &k), harmless)));
}

/// The top-level `system` (a string or text blocks) as a leading system message.
fn system(body: &mut Fields, op: &mut Vec<Opaque>) -> Result<Option<Message>, String> {
    let path = body.path("system");
    match body.take("system") {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(Message::system(s))),
        Some(Value::Array(items)) => {
            let mut parts = Vec::new();
            for (i, v) in items.into_iter().enumerate() {
                let part = block(v, format!("{path}[{i}]"), op)?;
                match part {
                    ContentPart::Text { .. } => parts.push(part),
                    ContentPart::Native { value } => {
                        let kind = value.get("type").and_then(Value::as_str).unwrap_or("unknown");
                        op.push(opaque(format!("{kind} system block"), format!("{path}[{i}]"), false));
                    }
                    _ => return Err(format!("invalid `{path}[{i}]`: system blocks must be text")),
                }
            }
            Ok((!parts.is_empty()).then(|| Message::new(Role::System, parts)))
        }
        Some(_) => Err(format!("invalid `{path}`: expected a string or an array of text blocks")),
    }
}

/// Appends the messages of one turn. A user turn's `tool_result` blocks become tool messages and
/// its other blocks user messages, in the order they came: the normalized model keeps results apart.
/// A `system` turn (instructions in the middle of the conversation) is a system message there; a
/// turn of a role this code does not know is carried opaque.
fn turn(mut m: Fields, out: &mut Vec<Message>, op: &mut Vec<Opaque>) -> Result<(), String> {
    let role = m.req_str("role")?;
    let role = match role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        other => {
            op.push(opaque(format!("{other} role"), m.path("role"), false));
            return Ok(());
        }
    };
    let assistant = role == Role::Assistant;
    let path = m.path("content");
    let mut parts: Vec<(Role, ContentPart)> = Vec::new();
    match m.require("content")? {
        Value::String(s) => parts.push((role, ContentPart::text(s))),
        Value::Array(items) => {
            for (i, v) in items.into_iter().enumerate() {
                let part = block(v, format!("{path}[{i}]"), op)?;
                let part_role = match &part {
                    ContentPart::ToolResult(_) if role == Role::User => Role::Tool,
                    ContentPart::ToolResult(_) => {
                        return Err(format!("invalid `{path}[{i}]`: tool_result blocks belong in user turns"));
                    }
                    ContentPart::ToolCall(_) if !assistant => {
                        return Err(format!("invalid `{path}[{i}]`: tool_use blocks belong in assistant turns"));
                    }
                    _ => role,
                };
                parts.push((part_role, part));
            }
        }
        _ => return Err(format!("invalid `{path}`: expected a string or an array of content blocks")),
    }
    let extra = rest(m);
    let first = out.len();
    push_runs(parts, out);
    // members of the turn itself (none are defined today) stay with its first message
    if let Some(msg) = out.get_mut(first) {
        msg.extra = extra;
    }
    Ok(())
}

/// Consecutive parts of the same role become one message.
fn push_runs(parts: Vec<(Role, ContentPart)>, out: &mut Vec<Message>) {
    let mut current: Option<Message> = None;
    for (role, part) in parts {
        match &mut current {
            Some(m) if m.role == role => m.content.push(part),
            _ => {
                out.extend(current.take());
                current = Some(Message::new(role, [part]));
            }
        }
    }
    out.extend(current);
}

fn source(mut s: Fields) -> Result<Option<MediaSource>, String> {
    let kind = s.req_str("type")?;
    let source = match kind.as_str() {
        "base64" => MediaSource::Base64 { media_type: s.req_str("media_type")?, data: s.req_str("data")? },
        "url" => MediaSource::Url { url: s.req_str("url")? },
        "file" => MediaSource::File { file_id: s.req_str("file_id")? },
        _ => return Ok(None),
    };
    Ok(s.is_empty().then_some(source))
}

/// One content block. A block of a type the model has no place for, or with a source it does not
/// know, is kept whole (native).
fn block(value: Value, path: String, op: &mut Vec<Opaque>) -> Result<ContentPart, String> {
    let native = Value::clone(&value);
    let mut b = Fields::at(value, path)?;
    let kind = b.req_str("type")?;
    let part = match kind.as_str() {
        "text" => {
            let text = b.req_str("text")?;
            let cache_control = cache_control(&mut b, op)?;
            return Ok(ContentPart::Text { text, cache_control, extra: rest(b) });
        }
        "image" if b.has_only(&["source", "cache_control"]) => {
            let Some(src) = b.object("source")? else {
                return Err(format!("missing required field `{}`", b.path("source")));
            };
            match source(src)? {
                Some(source) => ContentPart::Image { source, detail: None, cache_control: cache_control(&mut b, op)? },
                None => return Ok(ContentPart::Native { value: native }),
            }
        }
        "document" => {
            let Some(src) = b.object("source")? else {
                return Err(format!("missing required field `{}`", b.path("source")));
            };
            let Some(source) = source(src)? else { return Ok(ContentPart::Native { value: native }) };
            let name = b.str("title")?;
            let cache_control = cache_control(&mut b, op)?;
            return Ok(ContentPart::Document { source, name, cache_control, extra: rest(b) });
        }
        "tool_use" if b.has_only(&["id", "name", "input", "cache_control"]) => {
            let arguments = match b.take("input") {
                None => "{}".to_owned(),
                Some(input @ Value::Object(_)) => input.to_string(),
                Some(_) => return Err(b.invalid("input", "an object")),
            };
            ContentPart::ToolCall(ToolCall { id: b.req_str("id")?, name: b.req_str("name")?, arguments })
        }
        "tool_result" if b.has_only(&["tool_use_id", "content", "is_error", "cache_control"]) => {
            let tool_call_id = b.req_str("tool_use_id")?;
            let cpath = b.path("content");
            let content = match b.take("content") {
                None => Vec::new(),
                Some(Value::String(s)) => vec![ContentPart::text(s)],
                Some(Value::Array(items)) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| block(v, format!("{cpath}[{i}]"), op))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(format!("invalid `{cpath}`: expected a string or an array of blocks")),
            };
            ContentPart::ToolResult(ToolResult {
                tool_call_id,
                content,
                is_error: b.bool("is_error")?.unwrap_or(false),
                cache_control: cache_control(&mut b, op)?,
            })
        }
        "thinking" if b.has_only(&["thinking", "signature"]) => {
            ContentPart::Thinking { thinking: b.req_str("thinking")?, signature: b.str("signature")? }
        }
        "redacted_thinking" if b.has_only(&["data"]) => ContentPart::RedactedThinking { data: b.req_str("data")? },
        _ => return Ok(ContentPart::Native { value: native }),
    };
    if !b.is_empty() {
        // a cache mark on a tool_use block, say: kept whole rather than lose it
        return Ok(ContentPart::Native { value: native });
    }
    Ok(part)
}

fn tool(mut t: Fields, op: &mut Vec<Opaque>) -> Result<Tool, String> {
    // `custom` is what a client tool is; any other type (web search, code execution, ...) is a
    // server tool: kept with its members, for an Anthropic target only
    let kind = t.str("type")?;
    let name = t.req_str("name")?;
    let description = t.str("description")?;
    let parameters = match t.take("input_schema") {
        None => Value::Null,
        Some(schema @ Value::Object(_)) => schema,
        Some(_) => return Err(t.invalid("input_schema", "a JSON Schema object")),
    };
    if parameters.is_null() && kind.as_deref().is_none_or(|k| k == "custom") {
        return Err(format!("missing required field `{}`", t.path("input_schema")));
    }
    let cache_control = cache_control(&mut t, op)?;
    let strict = t.bool("strict")?;
    let mut extra = rest(t);
    if let Some(kind) = kind.filter(|k| k != "custom") {
        extra.insert("type".into(), json!(kind));
    }
    Ok(Tool { name, description, parameters, strict, cache_control, extra })
}

type ChoiceAndParallel = (Option<ToolChoice>, Option<bool>);

fn tool_choice(body: &mut Fields, op: &mut Vec<Opaque>) -> Result<Option<ChoiceAndParallel>, String> {
    let Some(mut choice) = body.object("tool_choice")? else { return Ok(None) };
    let kind = choice.req_str("type")?;
    let tool_choice = match kind.as_str() {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => ToolChoice::Tool(choice.req_str("name")?),
        other => {
            op.push(opaque(format!("tool_choice {other}"), choice.path("type"), false));
            return Ok(None);
        }
    };
    let parallel = choice.bool("disable_parallel_tool_use")?.map(|disable| !disable);
    untaken(choice, "tool_choice", false, op);
    Ok(Some((Some(tool_choice), parallel)))
}

/// `metadata.user_id` is the end user; a metadata object with more is kept whole.
fn metadata(body: &mut Fields, request: &mut ChatRequest) -> Result<(), String> {
    let Some(mut meta) = body.map("metadata")? else { return Ok(()) };
    match meta.get("user_id") {
        Some(Value::String(id)) if meta.len() == 1 => request.user = Some(id.clone()),
        None if meta.is_empty() => {}
        _ => {
            meta.retain(|_, v| !v.is_null());
            request.extra.insert("metadata".into(), Value::Object(meta));
        }
    }
    Ok(())
}

fn thinking(body: &mut Fields, request: &mut ChatRequest, op: &mut Vec<Opaque>) -> Result<(), String> {
    let Some(mut t) = body.object("thinking")? else { return Ok(()) };
    let kind = t.req_str("type")?;
    request.reasoning = match kind.as_str() {
        "enabled" if t.has_only(&["budget_tokens"]) => Some(Reasoning::Budget {
            budget_tokens: t.u32("budget_tokens")?.ok_or_else(|| t.invalid("budget_tokens", "an integer"))?,
        }),
        "disabled" if t.has_only(&[]) => Some(Reasoning::Disabled),
        "adaptive" if t.has_only(&["display"]) => {
            // whether the thinking is shown, not whether it happens
            if t.take("display").is_some() {
                op.push(opaque("thinking.display", "thinking.display", true));
            }
            Some(Reasoning::Adaptive { effort: None })
        }
        _ => {
            // a thinking mode this model has no place for: kept as sent
            let mut raw = t.rest();
            raw.insert("type".into(), json!(kind));
            request.extra.insert("thinking".into(), Value::Object(raw));
            None
        }
    };
    Ok(())
}

fn output_format(body: &mut Fields, request: &mut ChatRequest) -> Result<(), String> {
    let Some(mut f) = body.object("output_format")? else { return Ok(()) };
    if f.peek("type").and_then(Value::as_str) == Some("json_schema") && f.has_only(&["type", "schema"]) {
        f.take("type");
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: None,
            description: None,
            schema: f.require("schema")?,
            strict: None,
        });
    } else {
        request.extra.insert("output_format".into(), f.into_value());
    }
    Ok(())
}

/// `output_config`: its `effort` is how much the model should spend (on thinking above all: the
/// reasoning effort of the other wire), its `format` the answer's schema (`output_format`, made
/// general). Members this code does not know are carried opaque.
fn output_config(body: &mut Fields, request: &mut ChatRequest, op: &mut Vec<Opaque>) -> Result<(), String> {
    let Some(mut c) = body.object("output_config")? else { return Ok(()) };
    if let Some(effort) = c.str("effort")? {
        match &mut request.reasoning {
            Some(Reasoning::Adaptive { effort: e }) => *e = Some(effort),
            None => request.reasoning = Some(Reasoning::Effort { effort }),
            // a thinking budget already says how much to think
            Some(_) => op.push(opaque("output_config.effort", "output_config.effort", true)),
        }
    }
    if let Some(mut f) = c.object("format")? {
        if f.peek("type").and_then(Value::as_str) == Some("json_schema") && f.has_only(&["type", "schema"]) {
            f.take("type");
            let schema = f.require("schema")?;
            request.response_format =
                Some(ResponseFormat::JsonSchema { name: None, description: None, schema, strict: None });
        } else {
            op.push(opaque("output_config.format", "output_config.format", false));
        }
    }
    untaken(c, "output_config", false, op);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Encoding (what a target receives)
// ---------------------------------------------------------------------------------------------

/// Encodes `request` as a Messages body for `target`.
pub fn encode_request(request: &ChatRequest, target: Target<'_>, stream: bool) -> Result<Encoded, EncodeError> {
    let mut sink = Sink::new(request.dialect == Some(Protocol::Anthropic));
    let from_openai = request.dialect == Some(Protocol::Openai);
    let invalid = |why: String| EncodeError::Invalid(why);
    let headers = request_headers(request);
    let Limits { max_tokens, thinking, effort } = limits(request, target)?;
    let mut body = Map::new();
    body.insert("model".into(), json!(target.model));
    body.insert("max_tokens".into(), json!(max_tokens));
    if let Some(system) = encode_system(request, &mut sink) {
        body.insert("system".into(), system);
    }
    body.insert("messages".into(), Value::Array(turns(request, &mut sink).map_err(invalid)?));
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(k) = request.top_k {
        body.insert("top_k".into(), json!(k));
    }
    for (field, set) in [
        ("seed", request.seed.is_some()),
        ("presence_penalty", request.presence_penalty.is_some()),
        ("frequency_penalty", request.frequency_penalty.is_some()),
        ("logit_bias", request.logit_bias.is_some()),
        ("n", request.n.is_some_and(|n| n != 1)),
        ("logprobs", request.logprobs == Some(true)),
        ("top_logprobs", request.top_logprobs.is_some()),
        ("metadata", request.metadata.is_some()),
    ] {
        if set {
            sink.lossy(field, field);
        }
    }
    if let Some(u) = &request.user {
        body.insert("metadata".into(), json!({"user_id": u}));
    }
    if let Some(tier) = &request.service_tier {
        match (from_openai, tier.as_str()) {
            (false, _) | (true, "auto") => {
                body.insert("service_tier".into(), json!(tier));
            }
            (true, "default") => {
                body.insert("service_tier".into(), json!("standard_only"));
            }
            (true, _) => sink.lossy("service_tier", "service_tier"),
        }
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => sink.lossy("response_format", "response_format.type"),
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            body.insert("output_format".into(), json!({"type": "json_schema", "schema": schema}));
        }
    }
    if let Some(thinking) = thinking {
        body.insert("thinking".into(), thinking);
    }
    if let Some(effort) = effort {
        body.insert("output_config".into(), json!({"effort": effort}));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> =
            request.tools.iter().enumerate().map(|(i, t)| encode_tool(t, &format!("tools[{i}]"), &mut sink)).collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    let disable_parallel = request.parallel_tool_calls == Some(false);
    let choice = match &request.tool_choice {
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::Tool(name)) => Some(json!({"type": "tool", "name": name})),
        None if disable_parallel && !request.tools.is_empty() => Some(json!({"type": "auto"})),
        None => None,
    };
    if let Some(mut choice) = choice {
        if disable_parallel && let Some(c) = choice.as_object_mut() {
            c.insert("disable_parallel_tool_use".into(), json!(true));
        }
        body.insert("tool_choice".into(), choice);
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    sink.extra(&request.extra, "", &mut body);
    let dropped = sink.finish(target.unsupported)?;
    Ok(Encoded { body, headers, dropped })
}

/// What the body's limits are: `max_tokens` (the profile's when the caller set none: Anthropic
/// requires one), the `thinking` member and `output_config.effort`. Out-of-range values are
/// refused here, before any call, naming the field and the range.
struct Limits<'r> {
    max_tokens: u32,
    thinking: Option<Value>,
    effort: Option<&'r str>,
}

fn limits<'r>(request: &'r ChatRequest, target: Target<'_>) -> Result<Limits<'r>, EncodeError> {
    let invalid = |why: String| EncodeError::Invalid(why);
    let same_wire = request.dialect == Some(Protocol::Anthropic);
    let max_tokens = request
        .max_tokens
        .map(|n| super::super::cross_wire_cap(n, target, same_wire))
        .or_else(|| target.profile.map(|m| m.max_output_tokens))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    if let Some(t) = request.temperature
        && !(0.0..=1.0).contains(&t)
    {
        return Err(invalid(format!("`temperature` {t} is out of range for {}: 0 to 1", target.model)));
    }
    let mut thinking = None;
    let mut effort = None;
    let budget = match &request.reasoning {
        None => None,
        Some(Reasoning::Disabled) => {
            thinking = Some(json!({"type": "disabled"}));
            None
        }
        Some(Reasoning::Budget { budget_tokens }) => {
            Some((*budget_tokens, format!("`thinking.budget_tokens` {budget_tokens}")))
        }
        Some(Reasoning::Effort { effort }) if effort == "none" => {
            thinking = Some(json!({"type": "disabled"}));
            None
        }
        // the caller's own `output_config.effort`, without thinking
        Some(Reasoning::Effort { effort: e }) if same_wire => {
            effort = Some(e.as_str());
            None
        }
        Some(Reasoning::Adaptive { effort: e }) => {
            thinking = Some(json!({"type": "adaptive"}));
            effort = e.as_deref();
            None
        }
        Some(Reasoning::Effort { effort }) => match budget_for_effort(effort, target.profile) {
            Ok(b) => Some((b, format!("`reasoning_effort` `{effort}` (a thinking budget of {b} tokens)"))),
            Err(known) => {
                return Err(invalid(format!(
                    "`reasoning_effort` `{effort}` has no thinking budget for {}: one of {}",
                    target.model,
                    known.join(", ")
                )));
            }
        },
    };
    if let Some((b, what)) = budget {
        if b < MIN_THINKING_BUDGET || b >= max_tokens {
            return Err(invalid(format!(
                "{what} is out of range for {}: at least {MIN_THINKING_BUDGET} and below `max_tokens` ({max_tokens})",
                target.model
            )));
        }
        thinking = Some(json!({"type": "enabled", "budget_tokens": b}));
    }
    Ok(Limits { max_tokens, thinking, effort })
}

/// The headers a request needs: its beta features, and the structured-outputs beta for a schema.
fn request_headers(request: &ChatRequest) -> crate::wire::Headers {
    let mut headers: crate::wire::Headers = request.betas.iter().map(|beta| ("anthropic-beta", beta.clone())).collect();
    if matches!(request.response_format, Some(ResponseFormat::JsonSchema { .. })) {
        headers.push(("anthropic-beta", STRUCTURED_OUTPUTS_BETA.to_owned()));
    }
    headers
}

/// `original`, a caller's Messages body, for `target`: the caller's bytes with `model`, `stream`
/// and (when missing) `max_tokens` set, after the same range checks as [`encode_request`].
pub(crate) fn encode_original(
    original: &[u8],
    request: &ChatRequest,
    target: Target<'_>,
    stream: bool,
) -> Result<(Vec<u8>, crate::wire::Headers), EncodeError> {
    let Limits { max_tokens, .. } = limits(request, target)?;
    let edits = [
        Edit::set("model", json!(target.model)),
        if stream { Edit::set("stream", json!(true)) } else { Edit::replace("stream", json!(false)) },
        Edit::default_to("max_tokens", json!(max_tokens)),
    ];
    let body = splice(original, &edits).map_err(EncodeError::Invalid)?;
    Ok((body, request_headers(request)))
}

/// Every system and developer message, wherever it sits, lifted to the top-level `system`: one
/// string when it is plain text, text blocks when a block carries a cache mark or more.
fn encode_system(request: &ChatRequest, sink: &mut Sink) -> Option<Value> {
    let mut blocks = Vec::new();
    let mut plain = true;
    for (i, m) in request.messages.iter().enumerate().filter(|(_, m)| m.role.is_instruction()) {
        let path = format!("messages[{i}]");
        sink.extra(&m.extra, &path, &mut Map::new());
        for (j, part) in m.content.iter().enumerate() {
            if let Some(b) = encode_block(part, &format!("{path}.content[{j}]"), sink, &mut plain) {
                blocks.push(b);
            }
        }
    }
    if blocks.is_empty() {
        return None;
    }
    if plain {
        let texts: Vec<&str> =
            blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).filter(|t| !t.is_empty()).collect();
        return (!texts.is_empty()).then(|| json!(texts.join("\n\n")));
    }
    Some(Value::Array(blocks))
}

/// User and assistant turns, tool messages folded into user turns, consecutive same-role turns
/// merged (Anthropic rejects two user turns in a row, which is what tool results followed by a
/// user message would otherwise become).
fn turns(request: &ChatRequest, sink: &mut Sink) -> Result<Vec<Value>, String> {
    /// A turn being built: its role, blocks, whether they are all bare text, its extras.
    struct Turn(&'static str, Vec<Value>, bool, Map<String, Value>);
    let mut merged: Vec<Turn> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        let role = match message.role {
            Role::System | Role::Developer => continue,
            Role::Assistant => "assistant",
            Role::User | Role::Tool => "user",
        };
        let path = format!("messages[{i}]");
        let mut plain = true;
        let mut blocks = Vec::with_capacity(message.content.len());
        for (j, part) in message.content.iter().enumerate() {
            let ppath = format!("{path}.content[{j}]");
            if matches!(part, ContentPart::ToolCall(_)) && message.role != Role::Assistant {
                return Err(format!("{ppath}: tool calls can only appear in assistant messages"));
            }
            if let Some(b) = encode_block(part, &ppath, sink, &mut plain) {
                blocks.push(b);
            }
        }
        let mut extra = Map::new();
        sink.extra(&message.extra, &path, &mut extra);
        if blocks.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some(Turn(last, existing, all_plain, last_extra))
                if *last == role && extra.is_empty() && last_extra.is_empty() =>
            {
                existing.extend(blocks);
                *all_plain &= plain;
            }
            _ => merged.push(Turn(role, blocks, plain, extra)),
        }
    }
    Ok(merged
        .into_iter()
        .map(|Turn(role, blocks, plain, extra)| {
            let content = match blocks.as_slice() {
                [b] if plain => b.get("text").cloned().unwrap_or(Value::Null),
                _ => Value::Array(blocks),
            };
            let mut turn = extra;
            turn.insert("role".into(), json!(role));
            turn.insert("content".into(), content);
            Value::Object(turn)
        })
        .collect())
}

fn encode_cache(block: &mut Map<String, Value>, cache: &Option<CacheControl>) {
    if let Some(c) = cache {
        let mut v = Map::new();
        v.insert("type".into(), json!(c.kind));
        if let Some(ttl) = &c.ttl {
            v.insert("ttl".into(), json!(ttl));
        }
        block.insert("cache_control".into(), Value::Object(v));
    }
}

fn encode_source(source: &MediaSource, what: &str, path: &str, sink: &mut Sink) -> Option<Value> {
    Some(match source {
        MediaSource::Base64 { media_type, data } => json!({"type": "base64", "media_type": media_type, "data": data}),
        MediaSource::Url { url } => json!({"type": "url", "url": url}),
        // a file id names a file in one provider's store: only that provider can read it
        MediaSource::File { file_id } if sink.same_wire() => json!({"type": "file", "file_id": file_id}),
        MediaSource::File { .. } => {
            sink.lossy(&format!("{what} file_id"), at(path, "source"));
            return None;
        }
    })
}

/// One content block; `plain` turns false when it is more than bare text.
fn encode_block(part: &ContentPart, path: &str, sink: &mut Sink, plain: &mut bool) -> Option<Value> {
    let mut b = Map::new();
    match part {
        ContentPart::Text { text, cache_control, extra } => {
            if text.is_empty() && extra.is_empty() {
                // Anthropic rejects empty text blocks
                return None;
            }
            b.insert("type".into(), json!("text"));
            b.insert("text".into(), json!(text));
            encode_cache(&mut b, cache_control);
            sink.extra(extra, path, &mut b);
        }
        ContentPart::Image { source, detail, cache_control } => {
            if detail.is_some() {
                sink.harmless("detail", at(path, "image_url.detail"));
            }
            b.insert("type".into(), json!("image"));
            b.insert("source".into(), encode_source(source, "image", path, sink)?);
            encode_cache(&mut b, cache_control);
        }
        ContentPart::Document { source, name, cache_control, extra } => {
            b.insert("type".into(), json!("document"));
            b.insert("source".into(), encode_source(source, "document", path, sink)?);
            if let Some(n) = name {
                b.insert("title".into(), json!(n));
            }
            encode_cache(&mut b, cache_control);
            sink.extra(extra, path, &mut b);
        }
        ContentPart::Audio { .. } => {
            sink.lossy("input_audio", path.to_owned());
            return None;
        }
        ContentPart::ToolCall(call) => {
            b.insert("type".into(), json!("tool_use"));
            b.insert("id".into(), json!(call.id));
            b.insert("name".into(), json!(call.name));
            match tool_input(call) {
                Ok(input) => b.insert("input".into(), input),
                Err(why) => {
                    // the arguments themselves stay out of the message: they may be large or sensitive
                    sink.invalid(format!("arguments of tool call `{}` ({}) {why}", call.id, call.name));
                    return None;
                }
            };
        }
        ContentPart::ToolResult(r) => {
            b.insert("type".into(), json!("tool_result"));
            b.insert("tool_use_id".into(), json!(r.tool_call_id));
            let mut inner_plain = true;
            let inner: Vec<Value> = r
                .content
                .iter()
                .enumerate()
                .filter_map(|(j, p)| encode_block(p, &format!("{path}.content[{j}]"), sink, &mut inner_plain))
                .collect();
            let content = match inner.as_slice() {
                [] => json!(""),
                [one] if inner_plain => one.get("text").cloned().unwrap_or(Value::Null),
                _ if inner_plain && inner.len() > 1 => json!(r.text_content()),
                _ => Value::Array(inner),
            };
            b.insert("content".into(), content);
            if r.is_error {
                b.insert("is_error".into(), json!(true));
            }
            encode_cache(&mut b, &r.cache_control);
        }
        ContentPart::Thinking { thinking, signature } => {
            b.insert("type".into(), json!("thinking"));
            b.insert("thinking".into(), json!(thinking));
            if let Some(s) = signature {
                b.insert("signature".into(), json!(s));
            }
        }
        ContentPart::RedactedThinking { data } => {
            b.insert("type".into(), json!("redacted_thinking"));
            b.insert("data".into(), json!(data));
        }
        // what the model said in an earlier turn: text, to a wire with no refusal part
        ContentPart::Refusal { refusal } => {
            b.insert("type".into(), json!("text"));
            b.insert("text".into(), json!(refusal));
            return Some(Value::Object(b));
        }
        ContentPart::Native { value } => {
            *plain = false;
            if sink.same_wire() {
                return Some(value.clone());
            }
            let kind = value.get("type").and_then(Value::as_str).unwrap_or("unknown");
            sink.lossy(kind, path.to_owned());
            return None;
        }
    }
    if b.len() != 2 || b.get("type") != Some(&json!("text")) {
        *plain = false;
    }
    Some(Value::Object(b))
}

/// The arguments string as the object Anthropic expects; an empty string means no arguments.
fn tool_input(call: &ToolCall) -> Result<Value, String> {
    if call.arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(&call.arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("are not a JSON object".to_owned()),
        Err(e) => Err(format!("are not valid JSON: {e}")),
    }
}

fn encode_tool(t: &Tool, path: &str, sink: &mut Sink) -> Value {
    let mut b = Map::new();
    b.insert("name".into(), json!(t.name));
    if let Some(d) = &t.description {
        b.insert("description".into(), json!(d));
    }
    if !t.parameters.is_null() {
        b.insert("input_schema".into(), t.parameters.clone());
    }
    encode_cache(&mut b, &t.cache_control);
    // Claude's tools take `strict` as OpenAI's functions do: the input follows the schema exactly
    if t.strict == Some(true) {
        b.insert("strict".into(), json!(true));
    }
    sink.extra(&t.extra, path, &mut b);
    Value::Object(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::profile::ProviderProfile;

    fn body(request: &ChatRequest, model: &str, stream: bool) -> Value {
        let profile = ProviderProfile::builtin("anthropic");
        let target = Target { profile: profile.as_deref().and_then(|p| p.model(model)), ..Target::new(model) };
        let req = encode_request(request, target, stream).unwrap();
        // through bytes, as on the wire
        serde_json::from_slice(&serde_json::to_vec(&req.body).unwrap()).unwrap()
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
    }

    #[test]
    fn system_messages_are_lifted_and_joined() {
        let req = ChatRequest::new([
            Message::system("be brief"),
            Message::user("hi"),
            Message::system("answer in French"),
            Message::assistant("salut"),
        ])
        .max_tokens(100);
        assert_eq!(
            body(&req, "claude-sonnet-4-5", false),
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 100,
                "system": "be brief\n\nanswer in French",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "salut"},
                ],
            })
        );
    }

    #[test]
    fn no_system_field_without_system_messages() {
        let v = body(&ChatRequest::user("hi"), "claude-sonnet-4-5", false);
        assert!(v.get("system").is_none(), "{v}");
    }

    #[test]
    fn consecutive_same_role_turns_are_merged_into_blocks() {
        let req = ChatRequest::new([Message::user("one"), Message::user("two"), Message::assistant("three")]);
        assert_eq!(
            body(&req, "claude-sonnet-4-5", false)["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "three"},
            ])
        );
    }

    #[test]
    fn tool_calls_and_results_round_trip_between_string_and_object() {
        let mut result = Message::tool_result("toolu_2", "boom");
        if let ContentPart::ToolResult(r) = &mut result.content[0] {
            r.is_error = true;
        }
        let req = ChatRequest::new([
            Message::user("weather in Paris and Rome?"),
            Message::new(
                Role::Assistant,
                [
                    ContentPart::text("Checking."),
                    ContentPart::ToolCall(call("toolu_1", "weather", r#"{"city":"Paris","days":[1,2]}"#)),
                    ContentPart::ToolCall(call("toolu_2", "now", "")),
                ],
            ),
            Message::tool_result("toolu_1", "18C"),
            result,
            Message::user("thanks"),
        ]);
        assert_eq!(
            body(&req, "claude-sonnet-4-5", false)["messages"],
            json!([
                {"role": "user", "content": "weather in Paris and Rome?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris", "days": [1, 2]}},
                    {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": true},
                    {"type": "text", "text": "thanks"},
                ]},
            ])
        );
    }

    #[test]
    fn tool_arguments_that_are_not_a_json_object_are_rejected_before_sending() {
        for bad in [r#"{"city": "Par"#, "not json", "[1,2]", "3"] {
            let req = ChatRequest::new([Message::user("q"), Message::tool_calls([call("toolu_9", "weather", bad)])]);
            let err = encode_request(&req, Target::new("claude-sonnet-4-5"), false).unwrap_err();
            let EncodeError::Invalid(message) = err else { panic!("{bad}: {err:?}") };
            assert!(message.contains("toolu_9"), "{message}");
        }
    }

    #[test]
    fn tools_and_every_tool_choice() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
        let base = ChatRequest::user("q")
            .tool(Tool::new("weather", "Current weather", schema.clone()))
            .tool(Tool { description: None, ..Tool::new("now", "", json!({"type": "object"})) });
        let v = body(&base, "claude-sonnet-4-5", false);
        assert_eq!(
            v["tools"],
            json!([
                {"name": "weather", "description": "Current weather", "input_schema": schema},
                {"name": "now", "input_schema": {"type": "object"}},
            ])
        );
        assert!(v.get("tool_choice").is_none());
        let cases = [
            (ToolChoice::Auto, json!({"type": "auto"})),
            (ToolChoice::None, json!({"type": "none"})),
            (ToolChoice::Required, json!({"type": "any"})),
            (ToolChoice::Tool("weather".into()), json!({"type": "tool", "name": "weather"})),
        ];
        for (choice, expected) in cases {
            let req = base.clone().tool_choice(choice);
            assert_eq!(body(&req, "claude-sonnet-4-5", false)["tool_choice"], expected);
        }
    }

    #[test]
    fn max_tokens_comes_from_request_then_profile_then_default() {
        assert_eq!(body(&ChatRequest::user("q").max_tokens(7), "claude-sonnet-4-5", false)["max_tokens"], 7);
        assert_eq!(body(&ChatRequest::user("q"), "claude-sonnet-4-5", false)["max_tokens"], 64000);
        assert_eq!(body(&ChatRequest::user("q"), "claude-opus-4-1", false)["max_tokens"], 32000);
        assert_eq!(body(&ChatRequest::user("q"), "claude-unknown-9", false)["max_tokens"], 4096);
        let req = ChatRequest::user("q");
        let no_profile = encode_request(&req, Target::new("claude-sonnet-4-5"), false).unwrap();
        assert_eq!(no_profile.body["max_tokens"], 4096);
    }

    #[test]
    fn stop_temperature_and_stream() {
        let req = ChatRequest::user("q").stop("END").stop("\n\nHuman:").temperature(0.5).max_tokens(10);
        assert_eq!(
            body(&req, "claude-haiku-4-5", true),
            json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "q"}],
                "stop_sequences": ["END", "\n\nHuman:"],
                "temperature": 0.5,
                "stream": true,
            })
        );
    }

    #[test]
    fn temperature_is_sent_as_written() {
        let req = ChatRequest::user("q").temperature(0.7);
        let built = encode_request(&req, Target::new("m"), false).unwrap();
        let text = serde_json::to_string(&built.body).unwrap();
        assert!(text.contains("\"temperature\":0.7"), "{text}");
    }

    #[test]
    fn assistant_prefill_placed_last_is_sent_as_is() {
        let req = ChatRequest::new([Message::user("Count to 5"), Message::assistant("1, 2, 3")]).max_tokens(20);
        assert_eq!(
            body(&req, "claude-sonnet-4-5", false)["messages"],
            json!([
                {"role": "user", "content": "Count to 5"},
                {"role": "assistant", "content": "1, 2, 3"},
            ])
        );
    }

    #[test]
    fn adaptive_thinking_and_a_claude_callers_effort_are_written_back_as_it_sent_them() {
        let claude = |reasoning| ChatRequest {
            dialect: Some(Protocol::Anthropic),
            ..ChatRequest::user("q").max_tokens(2000).reasoning(reasoning)
        };
        let v = body(&claude(Reasoning::Adaptive { effort: Some("high".into()) }), "claude-sonnet-4-5", false);
        assert_eq!((&v["thinking"], &v["output_config"]), (&json!({"type": "adaptive"}), &json!({"effort": "high"})));
        let v = body(&claude(Reasoning::Adaptive { effort: None }), "claude-sonnet-4-5", false);
        assert!(v.get("output_config").is_none(), "{v}");
        let v = body(&claude(Reasoning::Effort { effort: "low".into() }), "claude-sonnet-4-5", false);
        assert!(v.get("thinking").is_none() && v["output_config"] == json!({"effort": "low"}), "{v}");
        // an OpenAI caller's effort is a thinking budget
        let v = body(
            &ChatRequest::user("q").max_tokens(8000).reasoning(Reasoning::Effort { effort: "low".into() }),
            "claude-sonnet-4-5",
            false,
        );
        assert_eq!(v["thinking"]["type"], "enabled");
        assert!(v.get("output_config").is_none(), "{v}");
    }

    #[test]
    fn messages_without_content_are_dropped() {
        let req = ChatRequest::new([Message::user("a"), Message::new(Role::Assistant, [])]);
        assert_eq!(body(&req, "m", false)["messages"], json!([{"role": "user", "content": "a"}]));
    }
}
