//! The Responses event stream both ways: [`Writer`] turns stream events into it (the gateway's
//! Responses callers, the simulator), [`Reader`] turns it into Chat Completions chunks (the
//! adapter, whose one chunk decoder then applies every stream rule: cuts, errors, grace).

use bytes::Bytes;
use serde_json::{Value, json};

use super::response::{Head, object, status_for};
use crate::chat::{FinishReason, StreamEvent, Usage};

/// One output item as it grows.
#[derive(Debug)]
enum Item {
    Message { id: String, parts: Vec<Part> },
    Call { id: String, call_id: String, name: String, arguments: String },
    Reasoning { id: String, text: String },
}

#[derive(Debug)]
enum Part {
    Text(String),
    Refusal(String),
}

impl Part {
    fn body(&self) -> Value {
        match self {
            Part::Text(text) => json!({"type": "output_text", "text": text, "annotations": []}),
            Part::Refusal(r) => json!({"type": "refusal", "refusal": r}),
        }
    }
}

impl Item {
    fn id(&self) -> &str {
        match self {
            Item::Message { id, .. } | Item::Call { id, .. } | Item::Reasoning { id, .. } => id,
        }
    }

    fn body(&self, status: &str) -> Value {
        match self {
            Item::Message { id, parts } => json!({
                "id": id, "type": "message", "status": status, "role": "assistant",
                "content": parts.iter().map(Part::body).collect::<Vec<_>>(),
            }),
            Item::Call { id, call_id, name, arguments } => json!({
                "id": id, "type": "function_call", "status": status,
                "arguments": arguments, "call_id": call_id, "name": name,
            }),
            Item::Reasoning { id, text } => {
                let summary = if text.is_empty() { json!([]) } else { json!([{"type": "summary_text", "text": text}]) };
                json!({"id": id, "type": "reasoning", "summary": summary})
            }
        }
    }
}

/// Writes one answer as Responses events: `response.created`, `response.in_progress`, the
/// output items with their deltas, and `response.completed` (or `response.incomplete`), or, on a
/// failure, `error` and `response.failed`.
#[derive(Debug)]
pub(crate) struct Writer {
    id: String,
    created: u64,
    model: String,
    seq: u64,
    items: Vec<Item>,
    /// The item deltas go to, and whether its last content part is still open.
    open: Option<usize>,
    /// Output index of each tool call, by the stream's tool-call index.
    calls: Vec<(usize, usize)>,
    usage: Option<Usage>,
    started: bool,
    finished: bool,
}

impl Writer {
    /// A writer for the response `id` (`resp_…`) of `model`.
    pub(crate) fn new(id: String, created: u64, model: &str) -> Writer {
        Writer {
            id,
            created,
            model: model.to_owned(),
            seq: 0,
            items: Vec::new(),
            open: None,
            calls: Vec::new(),
            usage: None,
            started: false,
            finished: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<Bytes>, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.push(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")));
    }

    fn snapshot(&self, status: &str) -> Value {
        let head = Head { id: &self.id, created: self.created, model: &self.model };
        let item_status = if status == "in_progress" { "in_progress" } else { "completed" };
        let output = self.items.iter().map(|i| i.body(item_status)).collect();
        object(&head, status, output, self.usage.as_ref().filter(|_| status != "in_progress"))
    }

    /// `response.created` and `response.in_progress`, once.
    pub(crate) fn start(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            let response = self.snapshot("in_progress");
            self.emit(&mut out, "response.created", json!({"response": response}));
            self.emit(&mut out, "response.in_progress", json!({"response": response}));
        }
        out
    }

    /// The events of one stream event (none for what this wire has no place for: logprobs,
    /// thinking signatures, other answers than the first).
    pub(crate) fn event(&mut self, event: &StreamEvent) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        let mut out = self.start();
        match event {
            StreamEvent::TextDelta { text } if !text.is_empty() => self.text(&mut out, text, false),
            StreamEvent::RefusalDelta { refusal } if !refusal.is_empty() => self.text(&mut out, refusal, true),
            StreamEvent::ThinkingDelta { thinking } if !thinking.is_empty() => self.thinking(&mut out, thinking),
            StreamEvent::ToolCallDelta { index, id, name, arguments } => {
                self.call(&mut out, *index, id.as_deref(), name.as_deref(), arguments);
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Finish { reason } => self.finish(&mut out, *reason),
            _ => {}
        }
        out
    }

    /// `error` and `response.failed`, with the output so far: `code` and `message` say why.
    pub(crate) fn fail(&mut self, code: &str, message: &str) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        let mut out = self.start();
        self.finished = true;
        self.emit(&mut out, "error", json!({"code": code, "message": message, "param": null}));
        let mut response = self.snapshot("failed");
        response["error"] = json!({"code": code, "message": message});
        self.emit(&mut out, "response.failed", json!({"response": response}));
        out
    }

    fn open_item(&mut self, out: &mut Vec<Bytes>, item: Item) -> usize {
        self.close(out);
        let index = self.items.len();
        let body = item.body("in_progress");
        self.items.push(item);
        self.open = Some(index);
        self.emit(out, "response.output_item.added", json!({"output_index": index, "item": body}));
        index
    }

    fn text(&mut self, out: &mut Vec<Bytes>, delta: &str, refusal: bool) {
        let index = match self.open.filter(|&i| matches!(self.items[i], Item::Message { .. })) {
            Some(i) => i,
            None => {
                let id = format!("msg_{}_{}", self.id.trim_start_matches("resp_"), self.items.len());
                self.open_item(out, Item::Message { id, parts: Vec::new() })
            }
        };
        let Item::Message { id, parts } = &mut self.items[index] else { return };
        let item_id = id.clone();
        let same_part =
            matches!((parts.last(), refusal), (Some(Part::Text(_)), false) | (Some(Part::Refusal(_)), true));
        let mut events = Vec::new();
        if !same_part {
            if let Some(previous) = parts.last() {
                events.extend(part_done(&item_id, index, parts.len() - 1, previous));
            }
            parts.push(if refusal { Part::Refusal(String::new()) } else { Part::Text(String::new()) });
            let part = parts.last().map(Part::body).unwrap_or_default();
            events.push((
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": index, "content_index": parts.len() - 1, "part": part}),
            ));
        }
        let content_index = parts.len() - 1;
        match parts.last_mut() {
            Some(Part::Text(t) | Part::Refusal(t)) => t.push_str(delta),
            None => {}
        }
        let kind = if refusal { "response.refusal.delta" } else { "response.output_text.delta" };
        let mut data =
            json!({"item_id": item_id, "output_index": index, "content_index": content_index, "delta": delta});
        if !refusal {
            data["logprobs"] = json!([]);
        }
        events.push((kind, data));
        for (kind, data) in events {
            self.emit(out, kind, data);
        }
    }

    fn thinking(&mut self, out: &mut Vec<Bytes>, delta: &str) {
        let index = match self.open.filter(|&i| matches!(self.items[i], Item::Reasoning { .. })) {
            Some(i) => i,
            None => {
                let id = format!("rs_{}_{}", self.id.trim_start_matches("resp_"), self.items.len());
                let index = self.open_item(out, Item::Reasoning { id: id.clone(), text: String::new() });
                let part = json!({"type": "summary_text", "text": ""});
                self.emit(
                    out,
                    "response.reasoning_summary_part.added",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "part": part}),
                );
                index
            }
        };
        if let Item::Reasoning { id, text } = &mut self.items[index] {
            text.push_str(delta);
            let data = json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": delta});
            self.emit(out, "response.reasoning_summary_text.delta", data);
        }
    }

    fn call(&mut self, out: &mut Vec<Bytes>, tool: usize, id: Option<&str>, name: Option<&str>, arguments: &str) {
        let index = match self.calls.iter().find(|(t, _)| *t == tool) {
            Some(&(_, index)) => index,
            None => {
                let call_id = id.map_or_else(|| format!("call_{}_{tool}", self.id), str::to_owned);
                let item_id = format!("fc_{}_{}", self.id.trim_start_matches("resp_"), self.items.len());
                let item = Item::Call {
                    id: item_id,
                    call_id,
                    name: name.unwrap_or_default().to_owned(),
                    arguments: String::new(),
                };
                let index = self.open_item(out, item);
                self.calls.push((tool, index));
                index
            }
        };
        if arguments.is_empty() {
            return;
        }
        if let Item::Call { id, arguments: args, .. } = &mut self.items[index] {
            args.push_str(arguments);
            let data = json!({"item_id": id, "output_index": index, "delta": arguments});
            self.emit(out, "response.function_call_arguments.delta", data);
        }
    }

    /// The `.done` events of the open item.
    fn close(&mut self, out: &mut Vec<Bytes>) {
        let Some(index) = self.open.take() else { return };
        let mut events = Vec::new();
        let item = &self.items[index];
        let item_id = item.id().to_owned();
        match item {
            Item::Message { parts, .. } => {
                if let Some(last) = parts.last() {
                    events.extend(part_done(&item_id, index, parts.len() - 1, last));
                }
            }
            Item::Call { arguments, name, .. } => events.push((
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": index, "arguments": arguments, "name": name}),
            )),
            Item::Reasoning { text, .. } => {
                let part = json!({"type": "summary_text", "text": text});
                events.push((
                    "response.reasoning_summary_text.done",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0, "text": text}),
                ));
                events.push((
                    "response.reasoning_summary_part.done",
                    json!({"item_id": item_id, "output_index": index, "summary_index": 0, "part": part}),
                ));
            }
        }
        events.push(("response.output_item.done", json!({"output_index": index, "item": item.body("completed")})));
        for (kind, data) in events {
            self.emit(out, kind, data);
        }
    }

    fn finish(&mut self, out: &mut Vec<Bytes>, reason: FinishReason) {
        self.close(out);
        self.finished = true;
        let finish = match reason {
            FinishReason::Length | FinishReason::Incomplete => "length",
            FinishReason::ContentFilter => "content_filter",
            _ => "stop",
        };
        let (status, incomplete) = status_for(Some(finish));
        let mut response = self.snapshot(status);
        response["incomplete_details"] = incomplete;
        let kind = if status == "completed" { "response.completed" } else { "response.incomplete" };
        self.emit(out, kind, json!({"response": response}));
    }
}

/// The `.done` events of one content part: its text's, then the part's.
fn part_done(item_id: &str, index: usize, content_index: usize, part: &Part) -> [(&'static str, Value); 2] {
    let mut text = json!({"item_id": item_id, "output_index": index, "content_index": content_index});
    let kind = match part {
        Part::Text(t) => {
            text["text"] = json!(t);
            "response.output_text.done"
        }
        Part::Refusal(r) => {
            text["refusal"] = json!(r);
            "response.refusal.done"
        }
    };
    let done = json!({"item_id": item_id, "output_index": index, "content_index": content_index, "part": part.body()});
    [(kind, text), ("response.content_part.done", done)]
}

/// Reads Responses events into Chat Completions chunk payloads (`data:` values, `[DONE]` last),
/// for the one chunk decoder.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    id: Value,
    created: Value,
    model: Value,
    /// Output index of each function call, in order: its position is its chunk tool index.
    calls: Vec<u64>,
}

impl Reader {
    /// A reader before the first event.
    pub(crate) fn new() -> Reader {
        Reader::default()
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
        .to_string()
    }

    /// The chunk payloads of one event (`kind` is its `type`).
    pub(crate) fn read(&mut self, data: &Value) -> Vec<String> {
        let kind = data.get("type").and_then(Value::as_str).unwrap_or("");
        let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        match kind {
            "response.created" => {
                let r = &data["response"];
                self.id = r["id"].clone();
                self.created = r["created_at"].clone();
                self.model = r["model"].clone();
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
            }
            "response.output_text.delta" => vec![self.chunk(json!({"content": text("delta")}), None)],
            "response.refusal.delta" => vec![self.chunk(json!({"refusal": text("delta")}), None)],
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                vec![self.chunk(json!({"reasoning_content": text("delta")}), None)]
            }
            "response.output_item.added" => {
                let item = &data["item"];
                match item.get("type").and_then(Value::as_str).unwrap_or("") {
                    "message" | "reasoning" => Vec::new(),
                    "function_call" => {
                        let index = self.calls.len();
                        self.calls.push(data["output_index"].as_u64().unwrap_or(u64::MAX));
                        let call = json!({"index": index, "id": item["call_id"], "type": "function",
                                          "function": {"name": item["name"], "arguments": item.get("arguments").cloned().unwrap_or(json!(""))}});
                        vec![self.chunk(json!({"tool_calls": [call]}), None)]
                    }
                    other => vec![error_payload(
                        "invalid_response",
                        &format!("an output item of type `{other}` has no place in a chat answer"),
                    )],
                }
            }
            "response.function_call_arguments.delta" => {
                let output = data["output_index"].as_u64().unwrap_or(u64::MAX);
                match self.calls.iter().position(|&o| o == output) {
                    Some(index) => {
                        let call = json!({"index": index, "function": {"arguments": text("delta")}});
                        vec![self.chunk(json!({"tool_calls": [call]}), None)]
                    }
                    None => vec![error_payload("invalid_response", "arguments for a function call never announced")],
                }
            }
            "response.completed" | "response.incomplete" => {
                let r = &data["response"];
                let finish = match r.pointer("/incomplete_details/reason").and_then(Value::as_str) {
                    _ if kind == "response.completed" && !self.calls.is_empty() => "tool_calls",
                    _ if kind == "response.completed" => "stop",
                    Some("content_filter") => "content_filter",
                    _ => "length",
                };
                let count = |p: &str| r.pointer(p).and_then(Value::as_u64).unwrap_or(0);
                let usage = json!({
                    "prompt_tokens": count("/usage/input_tokens"),
                    "completion_tokens": count("/usage/output_tokens"),
                    "total_tokens": count("/usage/total_tokens"),
                    "prompt_tokens_details": {"cached_tokens": count("/usage/input_tokens_details/cached_tokens")},
                    "completion_tokens_details": {"reasoning_tokens": count("/usage/output_tokens_details/reasoning_tokens")},
                });
                let usage_chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                         "model": self.model, "choices": [], "usage": usage});
                vec![self.chunk(json!({}), Some(finish)), usage_chunk.to_string(), "[DONE]".to_owned()]
            }
            "response.failed" => {
                let e = &data["response"]["error"];
                let code = e.get("code").and_then(Value::as_str).unwrap_or("server_error");
                vec![error_payload(code, e.get("message").and_then(Value::as_str).unwrap_or("the response failed"))]
            }
            "error" => {
                let code = data.get("code").and_then(Value::as_str).unwrap_or("server_error");
                vec![error_payload(code, data.get("message").and_then(Value::as_str).unwrap_or("stream error"))]
            }
            _ => Vec::new(),
        }
    }
}

/// An in-stream error as a Chat Completions stream carries it.
fn error_payload(code: &str, message: &str) -> String {
    json!({"error": {"message": message, "type": code, "code": code, "param": null}}).to_string()
}
