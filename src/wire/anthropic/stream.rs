//! The Messages event stream both ways: [`Writer`] turns stream events into it (the gateway's
//! Anthropic callers), [`Reader`] turns it back into stream events (the adapter, which keeps the
//! connection and words the errors).

use std::collections::HashMap;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::response::{WireUsage, finish_from, stop_reason, usage_body};
use crate::chat::{FinishReason, StreamEvent, Usage};
use crate::protocol::Protocol;
use crate::wire::sse::SseEvent;

/// The content block being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// A text block at this index.
    Text(usize),
    /// The tool_use block of this tool call (normalized index) at this block index.
    Tool { call: usize, block: usize },
    /// A thinking (or redacted thinking) block; `signed` once its signature was sent.
    Thinking { block: usize, signed: bool },
}

/// Writes one answer as Messages stream events in Anthropic's shape: `message_start`, content
/// blocks with their deltas (a `ping` after the first block opens), `message_delta` and
/// `message_stop`; or, on a failure, the `error` event and nothing after it.
#[derive(Debug)]
pub(crate) struct Writer {
    id: String,
    model: String,
    usage: Option<Usage>,
    stop_sequence: Option<String>,
    /// The upstream's own `message_start` members (same wire only).
    envelope: Map<String, Value>,
    /// The index the next content block gets.
    next_block: usize,
    open: Option<Open>,
    /// Block index of every tool call started, by normalized index.
    tool_blocks: HashMap<usize, usize>,
    started: bool,
    /// After `message_stop` or an error nothing more may be written.
    finished: bool,
}

impl Writer {
    /// A writer for the message `id` (`msg_…`) of `model`.
    pub(crate) fn new(id: String, model: &str) -> Self {
        Writer {
            id,
            model: model.to_owned(),
            usage: None,
            stop_sequence: None,
            envelope: Map::new(),
            next_block: 0,
            open: None,
            tool_blocks: HashMap::new(),
            started: false,
            finished: false,
        }
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some(open) = self.open.take() {
            let index = match open {
                Open::Text(i) | Open::Tool { block: i, .. } | Open::Thinking { block: i, .. } => i,
            };
            out.push(event("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        }
    }

    fn open_block(&mut self, block: Value, out: &mut Vec<Bytes>) -> usize {
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        if index == 0 {
            // Anthropic's servers ping once the first block is open
            out.push(event("ping", json!({"type": "ping"})));
        }
        index
    }

    /// A text delta; an empty one opens the text block and says nothing more (Anthropic's servers
    /// open it before the first token comes).
    fn text(&mut self, text: &str, out: &mut Vec<Bytes>) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                let i = self.open_block(json!({"type": "text", "text": ""}), out);
                self.open = Some(Open::Text(i));
                i
            }
        };
        if !text.is_empty() {
            out.push(delta(index, json!({"type": "text_delta", "text": text})));
        }
    }

    /// The open thinking block that has no signature yet, or a new one.
    fn thinking_block(&mut self, out: &mut Vec<Bytes>) -> usize {
        match self.open {
            Some(Open::Thinking { block, signed: false }) => block,
            _ => {
                let i = self.open_block(json!({"type": "thinking", "thinking": "", "signature": ""}), out);
                self.open = Some(Open::Thinking { block: i, signed: false });
                i
            }
        }
    }

    fn thinking(&mut self, thinking: &str, out: &mut Vec<Bytes>) {
        let index = self.thinking_block(out);
        if !thinking.is_empty() {
            out.push(delta(index, json!({"type": "thinking_delta", "thinking": thinking})));
        }
    }

    fn signature(&mut self, signature: &str, out: &mut Vec<Bytes>) {
        let index = self.thinking_block(out);
        out.push(delta(index, json!({"type": "signature_delta", "signature": signature})));
        self.open = Some(Open::Thinking { block: index, signed: true });
    }

    fn redacted(&mut self, data: &str, out: &mut Vec<Bytes>) {
        let i = self.open_block(json!({"type": "redacted_thinking", "data": data}), out);
        self.open = Some(Open::Thinking { block: i, signed: true });
    }

    fn tool_call(&mut self, call: usize, id: Option<&str>, name: Option<&str>, arguments: &str, out: &mut Vec<Bytes>) {
        let index = match (self.open, self.tool_blocks.get(&call)) {
            (Some(Open::Tool { call: open, block }), _) if open == call => block,
            // a late piece of a call whose block is closed: upstreams send calls one after the
            // other, so this is best effort (SDKs accumulate deltas by index)
            (_, Some(&block)) => block,
            _ => {
                let (id, name) = (id.unwrap_or_default(), name.unwrap_or_default());
                let i = self.open_block(json!({"type": "tool_use", "id": id, "name": name, "input": {}}), out);
                self.open = Some(Open::Tool { call, block: i });
                self.tool_blocks.insert(call, i);
                i
            }
        };
        if !arguments.is_empty() {
            out.push(delta(index, json!({"type": "input_json_delta", "partial_json": arguments})));
        }
    }

    fn finish(&mut self, reason: FinishReason, out: &mut Vec<Bytes>) {
        self.close(out);
        self.finished = true;
        // message_start said 0 input tokens (unknown then); clients that read input_tokens from
        // message_delta (as Anthropic now sends it) get the real count
        let usage = match &self.usage {
            Some(u) => usage_body(u),
            None => json!({"output_tokens": 0}),
        };
        out.push(event(
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason(reason, self.stop_sequence.is_some()),
                    "stop_sequence": self.stop_sequence,
                },
                "usage": usage,
            }),
        ));
        out.push(event("message_stop", json!({"type": "message_stop"})));
    }

    /// `message_start`, once.
    pub(crate) fn start(&mut self) -> Vec<Bytes> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        // a usage known before the stream opens (a server knows its prompt) is stated at once
        let usage = self.usage.as_ref().map_or_else(|| json!({"input_tokens": 0, "output_tokens": 0}), usage_body);
        let message = json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage,
        });
        let mut message = message;
        if let Value::Object(m) = &mut message {
            m.extend(self.envelope.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        vec![event("message_start", json!({"type": "message_start", "message": message}))]
    }

    /// The events of one stream event (opening the stream first if it is not yet): `Finish`
    /// writes the terminal ones. Nothing after the end. `Usage` and `Envelope` open nothing: what
    /// they say before the stream opens, `message_start` states.
    pub(crate) fn event(&mut self, event: &StreamEvent) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        match event {
            StreamEvent::Envelope { dialect, extra } => {
                if *dialect == Protocol::Anthropic && !self.started {
                    self.envelope.clone_from(extra);
                }
                return Vec::new();
            }
            StreamEvent::Usage(u) => {
                self.usage = Some(*u);
                return Vec::new();
            }
            _ => {}
        }
        let mut out = self.start();
        match event {
            StreamEvent::TextDelta { text } => self.text(text, &mut out),
            StreamEvent::ToolCallDelta { index, id, name, arguments } => {
                self.tool_call(*index, id.as_deref(), name.as_deref(), arguments, &mut out);
            }
            StreamEvent::ThinkingDelta { thinking } => self.thinking(thinking, &mut out),
            StreamEvent::SignatureDelta { signature } => self.signature(signature, &mut out),
            StreamEvent::RedactedThinking { data } => self.redacted(data, &mut out),
            // Anthropic has no refusal field: a refusal is the answer's text
            StreamEvent::RefusalDelta { refusal } if !refusal.is_empty() => self.text(refusal, &mut out),
            StreamEvent::StopSequence { sequence } => self.stop_sequence = Some(sequence.clone()),
            StreamEvent::Finish { reason } => self.finish(*reason, &mut out),
            // restarts never reach a written stream
            _ => {}
        }
        out
    }

    /// The `error` event of a failure after the stream started (`body` is the error envelope),
    /// and nothing after it.
    pub(crate) fn fail(&mut self, body: &Value) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        vec![event("error", body)]
    }
}

fn delta(index: usize, delta: Value) -> Bytes {
    event("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": delta}))
}

/// A named SSE event.
fn event(name: &str, data: impl std::fmt::Display) -> Bytes {
    crate::wire::sse::named(name, data)
}

/// What one SSE event produced.
#[derive(Debug, Default)]
pub(crate) struct Step {
    /// Its stream events.
    pub(crate) events: Vec<StreamEvent>,
    /// `message_stop` was seen: nothing more to read.
    pub(crate) finished: bool,
}

/// Why a stream cannot be read on (the adapter words it as its error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// An event that does not decode, or breaks the block rules: why.
    Malformed(String),
    /// An `error` event: its data is the upstream's error envelope.
    Upstream,
}

/// The content blocks Anthropic numbers by `index`.
#[derive(Debug)]
enum Block {
    Text,
    Tool {
        /// The normalized tool call index (tool calls only, in order).
        call: usize,
        /// `input_json_delta` pieces so far.
        json: String,
        /// `content_block_start`'s `input` (empty in practice: the input comes in deltas).
        start_input: Option<Value>,
    },
    /// Thinking (passed on as events as it comes) and blocks not part of the normalized answer.
    Other,
}

/// Reads Messages events into stream events, ending in `Finish` on `message_stop`. Sans IO: the
/// adapter feeds it the events and words its errors.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    blocks: HashMap<u64, Block>,
    tool_calls: usize,
    usage: Option<WireUsage>,
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
    /// `message_start`'s id.
    message_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: u64,
        delta: Delta,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error,
    /// `ping` and events added after this was written.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// `id` again, and members the answer has no place for, for callers of the same wire.
    #[serde(flatten)]
    extra: crate::chat::Extra,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Option<Value>,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: String },
    #[serde(rename = "signature_delta")]
    Signature { signature: String },
    /// `citations_delta`, ...
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
}

impl Reader {
    /// A reader before the first event.
    pub(crate) fn new() -> Reader {
        Reader::default()
    }

    /// The message id `message_start` gave, if it came.
    pub(crate) fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// The usage reported so far, normalized (a partial answer's).
    pub(crate) fn usage(&self) -> Option<Usage> {
        self.usage.map(WireUsage::normalized)
    }

    /// The stream events of one SSE event.
    pub(crate) fn read(&mut self, sse: &SseEvent) -> Result<Step, ReadError> {
        let event = self.parse(sse)?;
        let mut step = Step::default();
        match event {
            WireEvent::MessageStart { message } => {
                let mut extra = message.extra;
                for known in ["type", "role", "content", "model", "stop_reason", "stop_sequence"] {
                    extra.remove(known);
                }
                if let Some(id) = &message.id {
                    extra.insert("id".into(), serde_json::Value::String(id.clone()));
                }
                if !extra.is_empty() {
                    self.emit(StreamEvent::Envelope { dialect: Protocol::Anthropic, extra }, &mut step);
                }
                if self.message_id.is_none() {
                    self.message_id = message.id;
                }
                let usage = self.usage.get_or_insert_with(WireUsage::default);
                if let Some(u) = message.usage {
                    usage.merge(u);
                }
            }
            WireEvent::ContentBlockStart { index, content_block } => {
                self.start_block(index, content_block, &mut step);
            }
            WireEvent::ContentBlockDelta { index, delta } => self.delta(index, delta, &mut step)?,
            WireEvent::ContentBlockStop { index } => self.stop_block(index, &mut step)?,
            WireEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                if delta.stop_sequence.is_some() {
                    self.stop_sequence = delta.stop_sequence;
                }
                if let Some(u) = usage {
                    self.usage.get_or_insert_with(WireUsage::default).merge(u);
                }
            }
            WireEvent::MessageStop => {
                self.emit(StreamEvent::Usage(self.usage.unwrap_or_default().normalized()), &mut step);
                if let Some(sequence) = self.stop_sequence.take() {
                    self.emit(StreamEvent::StopSequence { sequence }, &mut step);
                }
                let reason = finish_from(self.stop_reason.as_deref());
                self.emit(StreamEvent::Finish { reason }, &mut step);
                step.finished = true;
            }
            WireEvent::Error => return Err(ReadError::Upstream),
            WireEvent::Other => {}
        }
        Ok(step)
    }

    /// The event's JSON, typed by its `type` field (else by the SSE event name).
    fn parse(&self, sse: &SseEvent) -> Result<WireEvent, ReadError> {
        let mut value: Value = serde_json::from_str(&sse.data).map_err(|e| malformed(sse, &e))?;
        if let Value::Object(object) = &mut value
            && !object.contains_key("type")
            && !sse.event.is_empty()
        {
            object.insert("type".to_owned(), Value::String(sse.event.clone()));
        }
        serde_json::from_value(value).map_err(|e| malformed(sse, &e))
    }

    fn start_block(&mut self, index: u64, block: StartBlock, step: &mut Step) {
        let block = match block {
            StartBlock::Text { text } => {
                if !text.is_empty() {
                    self.emit(StreamEvent::TextDelta { text }, step);
                }
                Block::Text
            }
            StartBlock::ToolUse { id, name, input } => {
                let call = self.tool_calls;
                self.tool_calls += 1;
                let event = StreamEvent::ToolCallDelta {
                    index: call,
                    id: Some(id),
                    name: Some(name),
                    arguments: String::new(),
                };
                self.emit(event, step);
                Block::Tool { call, json: String::new(), start_input: input }
            }
            StartBlock::Thinking { thinking, signature } => {
                // even empty, the first delta marks where a thinking block starts
                self.emit(StreamEvent::ThinkingDelta { thinking }, step);
                // Anthropic opens the block with `"signature": ""`: the signature comes as a delta,
                // and an empty one here would close the block before its text
                if let Some(signature) = signature.filter(|s| !s.is_empty()) {
                    self.emit(StreamEvent::SignatureDelta { signature }, step);
                }
                Block::Other
            }
            StartBlock::RedactedThinking { data } => {
                self.emit(StreamEvent::RedactedThinking { data }, step);
                Block::Other
            }
            StartBlock::Other => Block::Other,
        };
        self.blocks.insert(index, block);
    }

    fn delta(&mut self, index: u64, delta: Delta, step: &mut Step) -> Result<(), ReadError> {
        match delta {
            Delta::Text { text } => {
                if !text.is_empty() {
                    self.emit(StreamEvent::TextDelta { text }, step);
                }
            }
            Delta::InputJson { partial_json } => {
                let Some(Block::Tool { call, json, .. }) = self.blocks.get_mut(&index) else {
                    return Err(ReadError::Malformed(format!(
                        "input_json_delta for content block {index}, which is not a tool_use block"
                    )));
                };
                json.push_str(&partial_json);
                let call = *call;
                if !partial_json.is_empty() {
                    self.emit(
                        StreamEvent::ToolCallDelta { index: call, id: None, name: None, arguments: partial_json },
                        step,
                    );
                }
            }
            Delta::Thinking { thinking } => self.emit(StreamEvent::ThinkingDelta { thinking }, step),
            Delta::Signature { signature } => self.emit(StreamEvent::SignatureDelta { signature }, step),
            Delta::Other => {}
        }
        Ok(())
    }

    /// A tool_use block is complete: its input must parse now, not in the caller's tool runner.
    fn stop_block(&mut self, index: u64, step: &mut Step) -> Result<(), ReadError> {
        let Some(Block::Tool { call, json, start_input }) = self.blocks.remove(&index) else {
            return Ok(());
        };
        if json.trim().is_empty() {
            // no deltas: a tool without arguments; keep `arguments` a JSON document
            let input = start_input.filter(|v| v.as_object().is_some_and(|o| !o.is_empty()));
            let arguments = input.map_or_else(|| "{}".to_owned(), |v| v.to_string());
            self.emit(StreamEvent::ToolCallDelta { index: call, id: None, name: None, arguments }, step);
            return Ok(());
        }
        serde_json::from_str::<Value>(&json)
            .map(drop)
            .map_err(|e| ReadError::Malformed(format!("tool_use block {index}: its input JSON does not parse: {e}")))
    }

    fn emit(&mut self, event: StreamEvent, step: &mut Step) {
        step.events.push(event);
    }
}

/// An event whose data does not decode. (serde's message may quote the data: the adapter scrubs
/// it like any upstream text.)
fn malformed(sse: &SseEvent, error: &serde_json::Error) -> ReadError {
    let what = if sse.event.is_empty() { "an event" } else { sse.event.as_str() };
    ReadError::Malformed(format!("undecodable {what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::StreamCollector;
    use crate::wire::sse::SseDecoder;

    #[test]
    fn what_the_writer_writes_the_reader_reads_back() {
        let events = [
            StreamEvent::ThinkingDelta { thinking: "hmm".into() },
            StreamEvent::SignatureDelta { signature: "sig".into() },
            StreamEvent::TextDelta { text: "Let me".into() },
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("t1".into()),
                name: Some("f".into()),
                arguments: String::new(),
            },
            StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: "{\"a\":1}".into() },
            StreamEvent::Usage(Usage::new(5, 3)),
            StreamEvent::Finish { reason: FinishReason::ToolCalls },
        ];
        let mut writer = Writer::new("msg_1".into(), "m");
        let bytes: Vec<u8> = events.iter().flat_map(|e| writer.event(e)).flat_map(|b| b.to_vec()).collect();
        let mut reader = Reader::new();
        let mut read = Vec::new();
        let mut finished = false;
        for sse in SseDecoder::new().feed(&bytes) {
            let step = reader.read(&sse).unwrap_or_else(|e| panic!("{e:?}"));
            read.extend(step.events);
            finished = step.finished;
        }
        assert!(finished, "the writer's stream is whole");
        assert_eq!(reader.message_id(), Some("msg_1"));
        let (mut sent, mut got) = (StreamCollector::new(), StreamCollector::new());
        events.iter().for_each(|e| sent.push(e));
        read.iter().filter(|e| !matches!(e, StreamEvent::Envelope { .. })).for_each(|e| got.push(e));
        assert_eq!(got.finish("p", "m", None), sent.finish("p", "m", None));
    }

    #[test]
    fn the_stream_opens_as_anthropic_opens_it() {
        let names = |bytes: Vec<Bytes>| -> Vec<(String, Value)> {
            let bytes = bytes.concat();
            let events = SseDecoder::new().feed(&bytes);
            events.into_iter().map(|e| (e.event, serde_json::from_str(&e.data).unwrap_or(Value::Null))).collect()
        };
        let mut writer = Writer::new("msg_1".into(), "m");
        // what is known before the stream opens, message_start states
        let usage = Usage::new(12, 1).with_cached_input_tokens(2);
        assert!(writer.event(&StreamEvent::Usage(usage)).is_empty());
        let opening = names(writer.event(&StreamEvent::TextDelta { text: String::new() }));
        let kinds: Vec<&str> = opening.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(kinds, ["message_start", "content_block_start", "ping"]);
        assert_eq!(opening[0].1["message"]["usage"], usage_body(&usage));
        assert_eq!(opening[1].1["content_block"], json!({"type": "text", "text": ""}));
        let text = names(writer.event(&StreamEvent::TextDelta { text: "Hi".into() }));
        assert_eq!(text.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["content_block_delta"]);
        // one ping: the later blocks open without
        let call = StreamEvent::ToolCallDelta {
            index: 0,
            id: Some("t".into()),
            name: Some("f".into()),
            arguments: String::new(),
        };
        let kinds: Vec<String> = names(writer.event(&call)).into_iter().map(|(n, _)| n).collect();
        assert_eq!(kinds, ["content_block_stop", "content_block_start"]);
        // a thinking block opens with its empty signature, as Anthropic's do
        let mut writer = Writer::new("msg_2".into(), "m");
        let opening = names(writer.event(&StreamEvent::ThinkingDelta { thinking: "hmm".into() }));
        assert_eq!(opening[1].1["content_block"], json!({"type": "thinking", "thinking": "", "signature": ""}));
        assert_eq!(opening[0].1["message"]["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
    }

    #[test]
    fn errors_are_the_readers_to_name() {
        let mut reader = Reader::new();
        let event = |name: &str, data: &str| SseEvent { event: name.into(), data: data.into() };
        let error = super::super::error::envelope("overloaded_error", "Overloaded", None).to_string();
        assert_eq!(reader.read(&event("error", &error)).err(), Some(ReadError::Upstream));
        assert!(matches!(reader.read(&event("message_start", "{")), Err(ReadError::Malformed(_))));
        let stray =
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{"}}"#;
        assert!(matches!(reader.read(&event("content_block_delta", stray)), Err(ReadError::Malformed(_))));
    }
}
