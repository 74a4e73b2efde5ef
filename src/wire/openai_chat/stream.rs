//! The `chat.completion.chunk` stream both ways: [`Writer`] turns stream events into it (the
//! gateway's Chat Completions callers), [`Reader`] turns it back into stream events (the adapter,
//! which keeps the clock and words the errors).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ErrorBody;
use super::response::{WireLogprobs, WireUsage, finish_from, finish_reason, json_error, logprobs_body, usage_body};
use crate::chat::{FinishReason, StreamEvent, Usage};
use crate::protocol::Protocol;
use crate::wire::sse::{self, SseEvent};

/// Writes one answer as `chat.completion.chunk` SSE events: the role chunk, one chunk per delta,
/// the finish chunk, the usage chunk when asked for, `[DONE]`; or, on a failure, the error and no
/// terminator.
#[derive(Debug)]
pub(crate) struct Writer {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    usage: Option<Usage>,
    started: bool,
    /// Answers 1 and up whose role chunk was sent.
    alternatives: Vec<usize>,
    /// The upstream's own chunk members (same wire only): in every chunk, as OpenAI sends them.
    envelope: Map<String, Value>,
    /// After the terminator nothing more may be written.
    finished: bool,
}

impl Writer {
    /// A writer for the answer `id` (`chatcmpl-…`) of `model`, made at `created` (Unix time);
    /// `include_usage`: whether the caller asked for usage (`stream_options`).
    pub(crate) fn new(id: String, created: u64, model: &str, include_usage: bool) -> Writer {
        Writer {
            id,
            created,
            model: model.to_owned(),
            include_usage,
            usage: None,
            started: false,
            alternatives: Vec::new(),
            envelope: Map::new(),
            finished: false,
        }
    }

    /// One chunk. With `include_usage` every chunk carries `usage` (null until the last), as OpenAI's do.
    fn chunk(&self, choices: Value, usage: Option<Value>) -> Bytes {
        let mut c = Map::new();
        c.insert("id".into(), json!(self.id));
        c.insert("object".into(), json!("chat.completion.chunk"));
        c.insert("created".into(), json!(self.created));
        c.insert("model".into(), json!(self.model));
        c.insert("choices".into(), choices);
        for (k, v) in &self.envelope {
            c.insert(k.clone(), v.clone());
        }
        if self.include_usage {
            c.insert("usage".into(), usage.unwrap_or(Value::Null));
        }
        sse::data(Value::Object(c))
    }

    fn choice_delta(&self, choice: usize, delta: Value, finish_reason: Option<&str>) -> Bytes {
        self.chunk(json!([{"index": choice, "delta": delta, "finish_reason": finish_reason}]), None)
    }

    /// The chunk of one event of answer `choice`, if the event has one.
    fn choice_event(&mut self, choice: usize, event: &StreamEvent) -> Option<Bytes> {
        Some(match event {
            StreamEvent::TextDelta { text } if !text.is_empty() => {
                self.choice_delta(choice, json!({"content": text}), None)
            }
            StreamEvent::RefusalDelta { refusal } if !refusal.is_empty() => {
                self.choice_delta(choice, json!({"refusal": refusal}), None)
            }
            StreamEvent::ThinkingDelta { thinking } if !thinking.is_empty() => {
                self.choice_delta(choice, json!({"reasoning_content": thinking}), None)
            }
            StreamEvent::ToolCallDelta { index, id, name, arguments } => self.choice_delta(
                choice,
                json!({"tool_calls": [tool_call_delta(*index, id.as_deref(), name.as_deref(), arguments)]}),
                None,
            ),
            StreamEvent::Logprobs { content } => self.chunk(
                json!([{"index": choice, "delta": {}, "logprobs": logprobs_body(content), "finish_reason": null}]),
                None,
            ),
            _ => return None,
        })
    }

    /// The role chunk of answer `choice` (1 and up), before its first event.
    fn start_alternative(&mut self, choice: usize, out: &mut Vec<Bytes>) {
        if !self.alternatives.contains(&choice) {
            self.alternatives.push(choice);
            out.push(self.choice_delta(choice, json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn finish(&mut self, reason: FinishReason) -> Vec<Bytes> {
        self.finished = true;
        let mut out = vec![self.choice_delta(0, json!({}), Some(finish_reason(reason)))];
        if self.include_usage {
            // a client that asked for usage gets the chunk even when no upstream reported any
            out.push(self.chunk(json!([]), Some(usage_body(&self.usage.unwrap_or_default()))));
        }
        out.push(sse::data(sse::DONE));
        out
    }

    /// The role chunk that opens the stream, once.
    pub(crate) fn start(&mut self) -> Vec<Bytes> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        vec![self.choice_delta(0, json!({"role": "assistant", "content": ""}), None)]
    }

    /// The chunks of one stream event (opening the stream first if it is not yet): `Finish`
    /// writes the terminal ones. Nothing after the end.
    pub(crate) fn event(&mut self, event: &StreamEvent) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        if let StreamEvent::Envelope { dialect, extra } = event {
            // only before the first chunk: every chunk of a stream has the same envelope
            if *dialect == Protocol::Openai && !self.started {
                self.envelope.clone_from(extra);
            }
            return Vec::new();
        }
        let mut out = self.start();
        match event {
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Finish { reason } => out.extend(self.finish(*reason)),
            StreamEvent::Alternative { index, event } => {
                self.start_alternative(*index, &mut out);
                match &**event {
                    StreamEvent::Finish { reason } => {
                        out.push(self.choice_delta(*index, json!({}), Some(finish_reason(*reason))));
                    }
                    event => out.extend(self.choice_event(*index, event)),
                }
            }
            // empty text says nothing; restarts never reach a written stream
            event => out.extend(self.choice_event(0, event)),
        }
        out
    }

    /// The error event of a failure after the stream started (`body` is the error envelope), and
    /// no terminator: nothing more is written.
    pub(crate) fn fail(&mut self, body: &Value) -> Vec<Bytes> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        vec![sse::data(body)]
    }
}

/// One piece of tool call `index` in a delta: `id`, `type` and `name` with its first piece, as
/// OpenAI sends them.
pub(crate) fn tool_call_delta(index: usize, id: Option<&str>, name: Option<&str>, arguments: &str) -> Value {
    let mut call = Map::new();
    call.insert("index".into(), json!(index));
    if let Some(id) = id {
        call.insert("id".into(), json!(id));
    }
    if id.is_some() || name.is_some() {
        call.insert("type".into(), json!("function"));
    }
    let mut function = Map::new();
    if let Some(name) = name {
        function.insert("name".into(), json!(name));
    }
    function.insert("arguments".into(), json!(arguments));
    call.insert("function".into(), Value::Object(function));
    Value::Object(call)
}

/// Why a stream cannot be read on (the adapter words it as its error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// An event that is not a chunk: why.
    Malformed(String),
    /// The upstream's own error, in the stream.
    Upstream(ErrorBody),
    /// The stream ended before the answer did: how.
    Interrupted(&'static str),
}

/// Reads `chat.completion.chunk` events into stream events, ending in exactly one `Finish`.
/// Sans IO: the adapter feeds it the events and keeps the clock (how long to wait for the usage
/// chunk or `[DONE]` once [`Reader::answered`]).
#[derive(Debug, Default)]
pub(crate) struct Reader {
    /// Wire tool-call indexes in order of appearance; a call's position here is its event index, so a
    /// server's sparse or huge indexes cannot make consumers allocate.
    tool_slots: Vec<usize>,
    /// Answers 1 and up when the request asked for `n > 1`: their tool-call slots, and whether
    /// they finished (the stream completes when every answer has).
    alternatives: Vec<Alternative>,
    /// Whether the first chunk's own members were passed on.
    envelope_sent: bool,
    finish: Option<FinishReason>,
    /// Held back so it is emitted once, just before `Finish`.
    usage: Option<Usage>,
    done: bool,
}

impl Reader {
    /// A reader before the first event.
    pub(crate) fn new() -> Reader {
        Reader::default()
    }

    /// The stream events of one SSE event (the terminal ones too, once nothing the answer needs
    /// is left).
    pub(crate) fn read(&mut self, event: &SseEvent) -> Result<Vec<StreamEvent>, ReadError> {
        if event.data.trim() == sse::DONE {
            if self.finish.is_none() {
                return Err(ReadError::Interrupted("[DONE] before any finish_reason"));
            }
            return Ok(self.complete());
        }
        let chunk = parse(event)?;
        let mut out = Vec::new();
        if !self.envelope_sent {
            self.envelope_sent = true;
            out.extend(envelope(event));
        }
        self.apply(chunk, &mut out);
        if self.finish.is_some() && self.usage.is_some() {
            // nothing the answer needs is left; [DONE] would add nothing
            out.extend(self.complete());
        }
        Ok(out)
    }

    /// Whether the first answer finished: a cut or an error after it loses only the usage.
    pub(crate) fn finished(&self) -> bool {
        self.finish.is_some()
    }

    /// Whether every answer finished: what is left to wait for is the usage chunk or `[DONE]`.
    pub(crate) fn answered(&self) -> bool {
        self.finish.is_some() && self.alternatives.iter().all(|a| a.finished)
    }

    /// Whether the terminal events were given: nothing more to read.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The usage reported and not given yet (a partial answer's).
    pub(crate) fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The terminal events: usage if any, then the one `Finish`; none once given.
    pub(crate) fn complete(&mut self) -> Vec<StreamEvent> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let mut out: Vec<StreamEvent> = self.usage.take().map(StreamEvent::Usage).into_iter().collect();
        out.push(StreamEvent::Finish { reason: self.finish.unwrap_or(FinishReason::Incomplete) });
        out
    }

    fn apply(&mut self, chunk: Chunk, out: &mut Vec<StreamEvent>) {
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        for choice in chunk.choices.unwrap_or_default() {
            match choice.index.unwrap_or(0) {
                0 => {
                    let finish = choice_events(choice, &mut self.tool_slots, out);
                    if self.finish.is_none() {
                        self.finish = finish;
                    }
                }
                index => self.apply_alternative(index, choice, out),
            }
        }
    }

    fn apply_alternative(&mut self, index: usize, choice: ChunkChoice, out: &mut Vec<StreamEvent>) {
        let slot = match self.alternatives.iter().position(|a| a.index == index) {
            Some(slot) => slot,
            None => {
                self.alternatives.push(Alternative { index, tool_slots: Vec::new(), finished: false });
                self.alternatives.len() - 1
            }
        };
        let alternative = &mut self.alternatives[slot];
        let mut events = Vec::new();
        if let Some(reason) = choice_events(choice, &mut alternative.tool_slots, &mut events) {
            if !alternative.finished {
                events.push(StreamEvent::Finish { reason });
            }
            alternative.finished = true;
        }
        out.extend(events.into_iter().map(|event| StreamEvent::Alternative { index, event: Box::new(event) }));
    }
}

/// One event's chunk, or why it is none.
fn parse(event: &SseEvent) -> Result<Chunk, ReadError> {
    let data = event.data.trim();
    // a struct also deserializes from a JSON array: demand an object
    if !data.starts_with('{') {
        return Err(ReadError::Malformed("a stream chunk is not a JSON object".to_owned()));
    }
    let chunk: Chunk = serde_json::from_str(data)
        .map_err(|e| ReadError::Malformed(format!("a stream chunk does not decode: {}", json_error(&e))))?;
    if let Some(error) = &chunk.error {
        return Err(ReadError::Upstream(ErrorBody::from_value(error)));
    }
    if event.event == "error" {
        let whole: Value = serde_json::from_str(data).unwrap_or(Value::Null);
        return Err(ReadError::Upstream(ErrorBody::from_value(&whole)));
    }
    Ok(chunk)
}

/// The first chunk's members the answer has no place for (`id`, `created`,
/// `system_fingerprint`, `service_tier`, ...), read once: later chunks repeat them.
fn envelope(event: &SseEvent) -> Option<StreamEvent> {
    let Ok(Value::Object(mut members)) = serde_json::from_str(event.data.trim()) else { return None };
    // `obfuscation` is padding that differs per chunk: not the stream's
    for known in ["object", "model", "choices", "usage", "error", "obfuscation"] {
        members.remove(known);
    }
    (!members.is_empty()).then_some(StreamEvent::Envelope { dialect: Protocol::Openai, extra: members })
}

/// The events of one choice of a chunk, in order; returns its finish reason, if it came.
fn choice_events(choice: ChunkChoice, tool_slots: &mut Vec<usize>, out: &mut Vec<StreamEvent>) -> Option<FinishReason> {
    if let Some(delta) = choice.delta {
        if let Some(thinking) = delta.reasoning_content.filter(|t| !t.is_empty()) {
            out.push(StreamEvent::ThinkingDelta { thinking });
        }
        if let Some(refusal) = delta.refusal.filter(|t| !t.is_empty()) {
            out.push(StreamEvent::RefusalDelta { refusal });
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            out.push(StreamEvent::TextDelta { text });
        }
        for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
            out.extend(tool_call(tool_slots, position, call));
        }
    }
    if let Some(content) = choice.logprobs.and_then(|l| l.content).filter(|c| !c.is_empty()) {
        out.push(StreamEvent::Logprobs { content });
    }
    choice.finish_reason.map(|reason| finish_from(Some(&reason)))
}

/// One tool-call piece, its wire index made its position in `tool_slots`.
fn tool_call(tool_slots: &mut Vec<usize>, position: usize, call: ToolCallChunk) -> Option<StreamEvent> {
    let wire_index = call.index.unwrap_or(position);
    let index = match tool_slots.iter().position(|&w| w == wire_index) {
        Some(i) => i,
        None => {
            tool_slots.push(wire_index);
            tool_slots.len() - 1
        }
    };
    let (name, arguments) = call.function.map_or((None, None), |f| (f.name, f.arguments));
    let arguments = arguments.unwrap_or_default();
    if call.id.is_none() && name.is_none() && arguments.is_empty() {
        return None;
    }
    Some(StreamEvent::ToolCallDelta { index, id: call.id, name, arguments })
}

/// What the reader tracks of an answer other than the first.
#[derive(Debug)]
struct Alternative {
    index: usize,
    tool_slots: Vec<usize>,
    finished: bool,
}

/// One `chat.completion.chunk` (or an error object). Unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<ChunkChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<WireLogprobs>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    /// Reasoning text of OpenAI-compatible servers (DeepSeek, vLLM, ...).
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallChunk>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallChunk {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionChunk>,
}

#[derive(Debug, Deserialize)]
struct FunctionChunk {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::StreamCollector;
    use crate::wire::openai_chat::error;
    use crate::wire::sse::SseDecoder;

    /// What `writer` writes of `events`, read back by the reader.
    fn round_trip(writer: &mut Writer, events: &[StreamEvent]) -> Vec<StreamEvent> {
        let bytes: Vec<u8> = events.iter().flat_map(|e| writer.event(e)).flat_map(|b| b.to_vec()).collect();
        let mut reader = Reader::new();
        let mut read = Vec::new();
        for sse in SseDecoder::new().feed(&bytes) {
            read.extend(reader.read(&sse).unwrap_or_else(|e| panic!("{e:?}")));
        }
        assert!(reader.is_done(), "the writer's stream is whole");
        read
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads_back() {
        let events = vec![
            StreamEvent::TextDelta { text: "Let me".into() },
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("c1".into()),
                name: Some("f".into()),
                arguments: String::new(),
            },
            StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: "{\"a\":1}".into() },
            StreamEvent::Usage(Usage::new(5, 3)),
            StreamEvent::Finish { reason: FinishReason::ToolCalls },
        ];
        let read = round_trip(&mut Writer::new("chatcmpl-1".into(), 7, "m", true), &events);
        let (mut sent, mut got) = (StreamCollector::new(), StreamCollector::new());
        events.iter().for_each(|e| sent.push(e));
        read.iter().filter(|e| !matches!(e, StreamEvent::Envelope { .. })).for_each(|e| got.push(e));
        assert_eq!(got.finish("p", "m", None), sent.finish("p", "m", None));
    }

    #[test]
    fn errors_and_early_ends_are_the_readers_to_name() {
        let mut reader = Reader::new();
        let event = |data: &str| SseEvent { event: String::new(), data: data.into() };
        assert_eq!(reader.read(&event(sse::DONE)), Err(ReadError::Interrupted("[DONE] before any finish_reason")));
        assert!(matches!(reader.read(&event("[1]")), Err(ReadError::Malformed(_))));
        let upstream = reader.read(&event(&error::envelope("slow down", "requests", None, None).to_string()));
        assert!(matches!(upstream, Err(ReadError::Upstream(b)) if b.message.as_deref() == Some("slow down")));
    }
}
