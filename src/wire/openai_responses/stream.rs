//! The Responses event stream both ways: [`Writer`] turns stream events into it (the gateway's
//! Responses callers, the simulator), [`Reader`] turns it into Chat Completions chunks (the
//! adapter, whose one chunk decoder then applies every stream rule: cuts, errors, grace).

use bytes::Bytes;
use serde_json::{Value, json};

use serde_json::Map;

use super::response::{Head, apply_echo, chat_finish, chat_usage, extras, object, status_for};
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
    /// What an OpenAI upstream said beyond the model's members (`service_tier`, ...).
    envelope: Map<String, Value>,
    /// What the request said that a response repeats.
    echo: Option<Value>,
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
            envelope: Map::new(),
            echo: None,
            started: false,
            finished: false,
        }
    }

    /// Repeats the request's settings (`response::echo_of`) in every response snapshot.
    pub(crate) fn echoing(mut self, echo: Option<Value>) -> Writer {
        self.echo = echo;
        self
    }

    fn emit(&mut self, out: &mut Vec<Bytes>, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.push(crate::wire::sse::named(kind, &data));
    }

    fn snapshot(&self, status: &str) -> Value {
        let head = Head { id: &self.id, created: self.created, model: &self.model };
        // an item still open when the answer failed never completed
        let output = self
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| item.body(if self.open == Some(i) { "incomplete" } else { "completed" }))
            .collect();
        let mut response = object(&head, status, output, self.usage.as_ref().filter(|_| status != "in_progress"));
        apply_echo(&mut response, self.echo.as_ref());
        if let Value::Object(r) = &mut response {
            for (k, v) in &self.envelope {
                r.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        response
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
            StreamEvent::Envelope { dialect, extra } if dialect.is_openai() => {
                // what the upstream said beyond the model's members, as a whole answer carries it
                // (the chunk bookkeeping of Chat Completions is not the answer's)
                for (k, v) in extra {
                    if !matches!(k.as_str(), "id" | "object" | "created" | "model" | "obfuscation") {
                        self.envelope.insert(k.clone(), v.clone());
                    }
                }
            }
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
    /// The response's members beyond the translated ones, in every chunk (the chunk decoder
    /// hands them on as the stream's envelope).
    extra: Map<String, Value>,
    /// Output index of each function call, in order: its position is its chunk tool index.
    calls: Vec<u64>,
}

impl Reader {
    /// A reader before the first event.
    pub(crate) fn new() -> Reader {
        Reader::default()
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        self.frame(json!([{"index": 0, "delta": delta, "finish_reason": finish}]), None)
    }

    fn frame(&self, choices: Value, usage: Option<Value>) -> String {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": choices,
        });
        if let Value::Object(c) = &mut c {
            c.extend(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            if let Some(u) = usage {
                c.insert("usage".into(), u);
            }
        }
        c.to_string()
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
                self.extra = extras(r).map(|(k, v)| (k.clone(), v.clone())).collect();
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
            }
            "response.output_text.delta" => vec![self.chunk(json!({"content": text("delta")}), None)],
            "response.refusal.delta" => vec![self.chunk(json!({"refusal": text("delta")}), None)],
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                vec![self.chunk(json!({"reasoning_content": text("delta")}), None)]
            }
            // summaries after the first are paragraphs of their own
            "response.reasoning_summary_part.added" if data["summary_index"].as_u64().is_some_and(|i| i > 0) => {
                vec![self.chunk(json!({"reasoning_content": "\n\n"}), None)]
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
                        &json!({"code": "invalid_response"}),
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
                    None => vec![error_payload(
                        &json!({"code": "invalid_response"}),
                        "arguments for a function call never announced",
                    )],
                }
            }
            "response.completed" | "response.incomplete" => {
                let r = &data["response"];
                let finish = chat_finish(r, kind == "response.completed", !self.calls.is_empty());
                let mut out = vec![self.chunk(json!({}), Some(finish))];
                out.extend(chat_usage(r).map(|u| self.frame(json!([]), Some(u))));
                out.push("[DONE]".to_owned());
                out
            }
            "response.failed" => vec![error_payload(&data["response"]["error"], "the response failed")],
            "error" => vec![error_payload(data, "stream error")],
            _ => Vec::new(),
        }
    }
}

/// An in-stream error (`error` event data, or a failed response's `error`) as a Chat Completions
/// stream carries it: `type`, `code` and `message` where the event has them, top-level or under
/// `error`.
fn error_payload(e: &Value, default_message: &str) -> String {
    let field = |k: &str| {
        e.get(k).and_then(Value::as_str).or_else(|| e.pointer(&format!("/error/{k}")).and_then(Value::as_str))
    };
    let code = field("code");
    // `type` is the event's own name at the top level (`error`): only a nested one is the kind
    let kind = e.pointer("/error/type").and_then(Value::as_str).or(code).unwrap_or("server_error");
    let message = field("message").unwrap_or(default_message);
    json!({"error": {"message": message, "type": kind, "code": code, "param": field("param")}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[Bytes]) -> Vec<Value> {
        let text: String = bytes.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
        text.split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads_back() {
        let mut w = Writer::new("resp_1".into(), 7, "gpt-4.1");
        let mut out = w.start();
        for e in [
            StreamEvent::ThinkingDelta { thinking: "hmm".into() },
            StreamEvent::TextDelta { text: "Hel".into() },
            StreamEvent::TextDelta { text: "lo".into() },
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("c1".into()),
                name: Some("f".into()),
                arguments: String::new(),
            },
            StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: "{\"a\":".into() },
            StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: "1}".into() },
            StreamEvent::Usage(Usage::new(5, 3)),
            StreamEvent::Finish { reason: FinishReason::ToolCalls },
        ] {
            out.extend(w.event(&e));
        }
        let events = parse(&out);
        let seq: Vec<u64> = events.iter().filter_map(|e| e["sequence_number"].as_u64()).collect();
        assert_eq!(seq, (0..events.len() as u64).collect::<Vec<_>>());
        let done = &events.last().map(|e| e["response"].clone()).unwrap_or_default();
        assert_eq!(done["output"][1]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][2]["arguments"], "{\"a\":1}");
        assert!(done["output"].as_array().is_some_and(|o| o.iter().all(|i| i["status"] != "incomplete")));
        let mut reader = Reader::new();
        let chunks: Vec<Value> =
            events.iter().flat_map(|e| reader.read(e)).filter_map(|c| serde_json::from_str(&c).ok()).collect();
        let delta = |k: &str| -> String {
            chunks.iter().filter_map(|c| c.pointer(&format!("/choices/0/delta/{k}")).and_then(Value::as_str)).collect()
        };
        assert_eq!((delta("content"), delta("reasoning_content")), ("Hello".to_owned(), "hmm".to_owned()));
        let args: String = chunks
            .iter()
            .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments").and_then(Value::as_str))
            .collect();
        assert_eq!(args, "{\"a\":1}");
        let finish = chunks.iter().find_map(|c| c.pointer("/choices/0/finish_reason").and_then(Value::as_str));
        assert_eq!(finish, Some("tool_calls"));
        assert!(chunks.iter().any(|c| c["usage"]["prompt_tokens"] == 5));
    }

    #[test]
    fn a_failure_marks_the_open_item_incomplete() {
        let mut w = Writer::new("resp_1".into(), 7, "m");
        let _ = w.event(&StreamEvent::TextDelta { text: "Hel".into() });
        let events = parse(&w.fail("server_error", "boom"));
        assert_eq!(events[0]["type"], "error");
        assert_eq!(events[1]["response"]["output"][0]["status"], "incomplete");
        assert!(w.event(&StreamEvent::TextDelta { text: "more".into() }).is_empty(), "nothing after the end");
    }

    proptest::proptest! {
        /// Whatever an upstream sends as events, in whatever order, the reader never panics and
        /// every chunk it makes is JSON (or the `[DONE]` sentinel).
        #[test]
        fn any_events_are_read_without_a_panic(
            events in proptest::collection::vec((0usize..12, proptest::prelude::any::<u8>(), "[a-z{}\":,]{0,12}"), 0..24)
        ) {
            const KINDS: [&str; 12] = ["response.created", "response.output_item.added", "response.output_text.delta",
                "response.function_call_arguments.delta", "response.completed", "response.incomplete", "response.failed",
                "error", "response.refusal.delta", "response.reasoning_summary_part.added", "response.reasoning_text.delta", "x"];
            let mut r = Reader::new();
            for (kind, n, text) in events {
                let item = match n % 3 { 0 => json!({"type": "function_call"}), 1 => json!({"type": "web_search_call"}), _ => json!(text) };
                let e = json!({"type": KINDS[kind], "output_index": n, "summary_index": n, "delta": text, "item": item,
                               "response": {"usage": n, "error": text, "incomplete_details": {"reason": text}}});
                for chunk in r.read(&e) {
                    proptest::prop_assert!(chunk == "[DONE]" || serde_json::from_str::<Value>(&chunk).is_ok());
                }
            }
        }
    }

    #[test]
    fn errors_are_read_wherever_the_event_puts_them() {
        let mut r = Reader::new();
        let nested = json!({"type": "error", "error": {"type": "too_many_requests", "code": "rate_limit_exceeded", "message": "slow down"}});
        let flat = json!({"type": "error", "code": "server_error", "message": "oops", "param": null});
        let failed = json!({"type": "response.failed", "response": {"error": {"code": "rate_limit_exceeded", "message": "later"}}});
        let read = |r: &mut Reader, e: &Value| serde_json::from_str::<Value>(&r.read(e)[0]).unwrap_or_default();
        assert_eq!(
            read(&mut r, &nested)["error"],
            json!({"type": "too_many_requests", "code": "rate_limit_exceeded", "message": "slow down", "param": null})
        );
        assert_eq!(read(&mut r, &flat)["error"]["type"], "server_error");
        assert_eq!(read(&mut r, &failed)["error"]["message"], "later");
        // no usage is made up when a response reports none
        let done = json!({"type": "response.completed", "response": {"status": "completed", "output": []}});
        assert_eq!(r.read(&done).len(), 2, "the finish chunk and [DONE], no usage chunk");
    }
}
