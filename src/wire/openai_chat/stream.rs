//! The `chat.completion.chunk` stream both ways: [`Writer`] turns stream events into it (the
//! gateway's Chat Completions callers), [`Reader`] turns it back into stream events (the adapter,
//! which keeps the clock and words the errors).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ErrorBody;
use super::response::{
    Details, WireLogprobs, WireUsage, finish_from, finish_reason, json_error, logprobs_body, usage_body,
};
use crate::chat::{FinishReason, StreamEvent, TokenLogprob, Usage};
use crate::protocol::Protocol;
use crate::wire::sse::{self, SseEvent};

/// Writes one answer as `chat.completion.chunk` SSE events in OpenAI's shape: each answer's first
/// chunk with the role, one chunk per delta, the finish chunk, the usage chunk when asked for,
/// `[DONE]`; or, on a failure, the error and no terminator.
#[derive(Debug)]
pub(crate) struct Writer {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    details: Details,
    usage: Option<Usage>,
    /// Answers whose first chunk (the one with the role) was sent.
    opened: Vec<usize>,
    /// The upstream's own chunk members (same wire only): in every chunk, as OpenAI sends them.
    envelope: Map<String, Value>,
    /// After the terminator nothing more may be written.
    finished: bool,
}

impl Writer {
    /// A writer for the answer `id` (`chatcmpl-…`) of `model`, made at `created` (Unix time);
    /// `include_usage`: whether the caller asked for usage (`stream_options`); `details`: what the
    /// usage chunk states.
    pub(crate) fn new(id: String, created: u64, model: &str, include_usage: bool, details: Details) -> Writer {
        Writer {
            id,
            created,
            model: model.to_owned(),
            include_usage,
            details,
            usage: None,
            opened: Vec::new(),
            envelope: Map::new(),
            finished: false,
        }
    }

    /// One chunk, its members in OpenAI's order. With `include_usage` every chunk carries `usage`
    /// (null until the last), as OpenAI's do.
    fn chunk(&self, choices: Value, usage: Option<Value>) -> Bytes {
        let mut c = Map::new();
        c.insert("id".into(), json!(self.id));
        c.insert("object".into(), json!("chat.completion.chunk"));
        c.insert("created".into(), json!(self.created));
        c.insert("model".into(), json!(self.model));
        for (k, v) in &self.envelope {
            c.insert(k.clone(), v.clone());
        }
        c.insert("choices".into(), choices);
        if self.include_usage {
            c.insert("usage".into(), usage.unwrap_or(Value::Null));
        }
        sse::data(Value::Object(c))
    }

    /// The chunk of one delta of answer `choice`: `logprobs` on every choice, null when none.
    fn choice_delta(
        &self,
        choice: usize,
        delta: Value,
        logprobs: Option<&[TokenLogprob]>,
        finish_reason: Option<&str>,
    ) -> Bytes {
        let logprobs = logprobs.map_or(Value::Null, logprobs_body);
        self.chunk(
            json!([{"index": choice, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]),
            None,
        )
    }

    /// The first chunk of answer `choice` (the first answer's before any other's), once: the role,
    /// and `call` when the answer starts with a tool call, as OpenAI sends a call's start. Whether
    /// `call` went into it.
    fn open(&mut self, choice: usize, call: Option<Value>, out: &mut Vec<Bytes>) -> bool {
        if choice != 0 {
            self.open(0, None, out);
        }
        if self.opened.contains(&choice) {
            return false;
        }
        self.opened.push(choice);
        let delta = match &call {
            Some(call) => json!({"role": "assistant", "content": null, "tool_calls": [call], "refusal": null}),
            None => json!({"role": "assistant", "content": "", "refusal": null}),
        };
        out.push(self.choice_delta(choice, delta, None, None));
        call.is_some()
    }

    fn finish(&mut self, reason: FinishReason, out: &mut Vec<Bytes>) {
        self.open(0, None, out);
        self.finished = true;
        out.push(self.choice_delta(0, json!({}), None, Some(finish_reason(reason))));
        if self.include_usage {
            // a client that asked for usage gets the chunk even when no upstream reported any
            let usage = usage_body(&self.usage.unwrap_or_default(), self.details);
            out.push(self.chunk(json!([]), Some(usage)));
        }
        out.push(sse::data(sse::DONE));
    }

    /// The chunks of one stream event (opening the stream first if it is not yet): `Finish`
    /// writes the terminal ones. Nothing after the end.
    pub(crate) fn event(&mut self, event: &StreamEvent) -> Vec<Bytes> {
        self.events(std::slice::from_ref(event))
    }

    /// The chunks of stream events that came together (one upstream chunk's): a text delta and
    /// the log probabilities of its tokens right after it go in one chunk, as OpenAI sends them.
    /// `Usage` and `Envelope` open nothing: a usage known early is the usage chunk's all the same.
    pub(crate) fn events(&mut self, events: &[StreamEvent]) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut rest = events;
        while let Some((event, after)) = rest.split_first() {
            rest = after;
            if self.finished {
                break;
            }
            let (choice, event) = match event {
                StreamEvent::Alternative { index, event } => (*index, &**event),
                event => (0, event),
            };
            match event {
                StreamEvent::Envelope { dialect, extra } => {
                    // only before the first chunk: every chunk of a stream has the same envelope
                    if *dialect == Protocol::Openai && self.opened.is_empty() {
                        self.envelope.clone_from(extra);
                    }
                }
                StreamEvent::Usage(u) => self.usage = Some(*u),
                StreamEvent::Finish { reason } if choice == 0 => self.finish(*reason, &mut out),
                StreamEvent::Finish { reason } => {
                    self.open(choice, None, &mut out);
                    out.push(self.choice_delta(choice, json!({}), None, Some(finish_reason(*reason))));
                }
                event => {
                    let logprobs = match rest.first().map(|next| logprobs_of(next, choice)) {
                        Some(Some(content)) if matches!(event, StreamEvent::TextDelta { .. }) => {
                            rest = &rest[1..];
                            Some(content)
                        }
                        _ => None,
                    };
                    self.content(choice, event, logprobs, &mut out);
                }
            }
        }
        out
    }

    /// The chunk of one content event of answer `choice` (its `logprobs`: those of its tokens),
    /// after the answer's first chunk; nothing more for what says nothing (empty text, restarts).
    fn content(&mut self, choice: usize, event: &StreamEvent, logprobs: Option<&[TokenLogprob]>, out: &mut Vec<Bytes>) {
        let (delta, logprobs) = match event {
            StreamEvent::TextDelta { text } if !text.is_empty() => (json!({"content": text}), logprobs),
            StreamEvent::RefusalDelta { refusal } if !refusal.is_empty() => (json!({"refusal": refusal}), None),
            StreamEvent::ThinkingDelta { thinking } if !thinking.is_empty() => {
                (json!({"reasoning_content": thinking}), None)
            }
            StreamEvent::ToolCallDelta { index, id, name, arguments } => {
                let call = tool_call_delta(*index, id.as_deref(), name.as_deref(), arguments);
                if self.open(choice, Some(call.clone()), out) {
                    return;
                }
                (json!({"tool_calls": [call]}), None)
            }
            StreamEvent::Logprobs { content } => (json!({}), Some(content.as_slice())),
            _ => {
                self.open(choice, None, out);
                return;
            }
        };
        self.open(choice, None, out);
        out.push(self.choice_delta(choice, delta, logprobs, None));
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

/// The log probabilities `event` carries for answer `choice`.
fn logprobs_of(event: &StreamEvent, choice: usize) -> Option<&[TokenLogprob]> {
    match event {
        StreamEvent::Logprobs { content } if choice == 0 => Some(content),
        StreamEvent::Alternative { index, event } if *index == choice => match &**event {
            StreamEvent::Logprobs { content } => Some(content),
            _ => None,
        },
        _ => None,
    }
}

/// One piece of tool call `index` in a delta: `id`, `type` and `name` with its first piece, as
/// OpenAI sends them.
fn tool_call_delta(index: usize, id: Option<&str>, name: Option<&str>, arguments: &str) -> Value {
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
        let read = round_trip(&mut Writer::new("chatcmpl-1".into(), 7, "m", true, Details::Known), &events);
        let (mut sent, mut got) = (StreamCollector::new(), StreamCollector::new());
        events.iter().for_each(|e| sent.push(e));
        read.iter().filter(|e| !matches!(e, StreamEvent::Envelope { .. })).for_each(|e| got.push(e));
        assert_eq!(got.finish("p", "m", None), sent.finish("p", "m", None));
    }

    #[test]
    fn each_answer_opens_with_its_role_in_chunks_of_one_choice_its_text_with_its_logprobs() {
        let logprobs = vec![TokenLogprob { token: "Hi".into(), logprob: -0.5, bytes: None, top_logprobs: Vec::new() }];
        let other = |event| StreamEvent::Alternative { index: 1, event: Box::new(event) };
        let text = |t: &str| StreamEvent::TextDelta { text: t.into() };
        let stop = || StreamEvent::Finish { reason: FinishReason::Stop };
        let events = [
            StreamEvent::Usage(Usage::new(1, 1)),
            text(""),
            other(text("")),
            text("Hi"),
            StreamEvent::Logprobs { content: logprobs.clone() },
            other(text("Hi")),
            other(StreamEvent::Logprobs { content: logprobs }),
            other(stop()),
            stop(),
        ];
        let mut writer = Writer::new("chatcmpl-1".into(), 7, "m", false, Details::Known);
        let bytes: Vec<u8> = writer.events(&events).concat();
        let chunks: Vec<Value> = SseDecoder::new()
            .feed(&bytes)
            .iter()
            .filter(|e| e.data != sse::DONE)
            .map(|e| serde_json::from_str(&e.data).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let choices: Vec<(u64, Value, bool, Value)> = chunks
            .iter()
            .map(|c| {
                let [choice] = c["choices"].as_array().map(Vec::as_slice).unwrap_or_default() else {
                    panic!("one choice a chunk: {c}")
                };
                let index = choice["index"].as_u64().unwrap_or(99);
                (index, choice["delta"].clone(), choice["logprobs"].is_null(), choice["finish_reason"].clone())
            })
            .collect();
        let role = json!({"role": "assistant", "content": "", "refusal": null});
        assert_eq!(
            choices,
            [
                (0, role.clone(), true, Value::Null),
                (1, role, true, Value::Null),
                (0, json!({"content": "Hi"}), false, Value::Null),
                (1, json!({"content": "Hi"}), false, Value::Null),
                (1, json!({}), true, json!("stop")),
                (0, json!({}), true, json!("stop")),
            ]
        );
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
