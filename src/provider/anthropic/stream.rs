//! The Messages streaming protocol: SSE events in, normalized [`StreamEvent`]s out.

use std::collections::{HashMap, VecDeque};

use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use super::classify;
use super::wire::{WireUsage, finish_reason};
use crate::chat::{StreamCollector, StreamEvent};
use crate::error::{ErrorClass, ProviderError};
use crate::provider::{ChatStream, http};
use crate::secret::ApiKey;
use crate::wire::sse::SseEvent;

/// What the decoder knows of the call besides the events.
#[derive(Debug, Clone)]
pub(super) struct StreamContext {
    /// The provider's name, for errors.
    pub(super) provider: String,
    /// The `request-id` header, for errors.
    pub(super) request_id: Option<String>,
    /// Scrubbed from any upstream text put in an error.
    pub(super) key: Option<ApiKey>,
}

/// Decodes Anthropic's SSE events into a [`ChatStream`]. The stream ends after
/// [`StreamEvent::Finish`] (on `message_stop`) or after its first error; every error carries what was
/// received before it.
pub(super) fn decode<S>(ctx: StreamContext, events: S) -> ChatStream
where
    S: Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static,
{
    struct State {
        events: std::pin::Pin<Box<dyn Stream<Item = Result<SseEvent, ProviderError>> + Send>>,
        decoder: Decoder,
        pending: VecDeque<StreamEvent>,
        done: bool,
    }
    let state = State { events: Box::pin(events), decoder: Decoder::new(ctx), pending: VecDeque::new(), done: false };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if st.done {
                return None;
            }
            // what the 200 body itself got wrong carries its status, as in the OpenAI adapter; transport
            // failures and client-side timeouts have none
            let outcome = match st.events.next().await {
                Some(Ok(sse)) => st.decoder.on_event(&sse).map_err(in_body),
                Some(Err(e)) => Err(e),
                None => Err(in_body(ProviderError::new(
                    ErrorClass::StreamInterrupted,
                    st.decoder.ctx.provider.clone(),
                    "stream ended without message_stop",
                ))),
            };
            match outcome {
                Ok(Step { events, finished }) => {
                    st.pending.extend(events);
                    st.done = finished;
                    if finished {
                        http::release(std::mem::replace(&mut st.events, http::ended()));
                    }
                }
                Err(e) => {
                    st.done = true;
                    let e = st.decoder.fail(e);
                    return Some((Err(e), st));
                }
            }
        }
    }))
}

/// An error found in the 200 response's body.
fn in_body(mut error: ProviderError) -> ProviderError {
    error.status.get_or_insert(200);
    error
}

/// What one SSE event produced.
#[derive(Debug, Default)]
struct Step {
    events: Vec<StreamEvent>,
    /// `message_stop` was seen: nothing more to read.
    finished: bool,
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

#[derive(Debug)]
struct Decoder {
    ctx: StreamContext,
    collector: StreamCollector,
    blocks: HashMap<u64, Block>,
    tool_calls: usize,
    usage: Option<WireUsage>,
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
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

impl Decoder {
    fn new(ctx: StreamContext) -> Self {
        Decoder {
            ctx,
            collector: StreamCollector::new(),
            blocks: HashMap::new(),
            tool_calls: 0,
            usage: None,
            stop_reason: None,
            stop_sequence: None,
        }
    }

    fn on_event(&mut self, sse: &SseEvent) -> Result<Step, ProviderError> {
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
                    self.emit(
                        StreamEvent::Envelope { dialect: crate::provider::Protocol::Anthropic, extra },
                        &mut step,
                    );
                }
                if self.ctx.request_id.is_none() {
                    self.ctx.request_id = message.id;
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
                let reason = finish_reason(self.stop_reason.as_deref());
                self.emit(StreamEvent::Finish { reason }, &mut step);
                step.finished = true;
            }
            WireEvent::Error => {
                let key = self.ctx.key.as_ref();
                let error =
                    classify::classify_body(&self.ctx.provider, sse.data.as_bytes(), ErrorClass::ServerError, key);
                return Err(error.with_status(200));
            }
            WireEvent::Other => {}
        }
        Ok(step)
    }

    /// The event's JSON, typed by its `type` field (else by the SSE event name).
    fn parse(&self, sse: &SseEvent) -> Result<WireEvent, ProviderError> {
        let mut value: Value = serde_json::from_str(&sse.data).map_err(|e| self.malformed(sse, &e))?;
        if let Value::Object(object) = &mut value
            && !object.contains_key("type")
            && !sse.event.is_empty()
        {
            object.insert("type".to_owned(), Value::String(sse.event.clone()));
        }
        serde_json::from_value(value).map_err(|e| self.malformed(sse, &e))
    }

    fn malformed(&self, sse: &SseEvent, error: &serde_json::Error) -> ProviderError {
        let what = if sse.event.is_empty() { "an event" } else { sse.event.as_str() };
        // serde's message may quote the data: scrub it like any upstream text
        let message = classify::redact(self.ctx.key.as_ref(), &format!("undecodable {what}: {error}"));
        ProviderError::new(ErrorClass::MalformedResponse, self.ctx.provider.clone(), message)
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

    fn delta(&mut self, index: u64, delta: Delta, step: &mut Step) -> Result<(), ProviderError> {
        match delta {
            Delta::Text { text } => {
                if !text.is_empty() {
                    self.emit(StreamEvent::TextDelta { text }, step);
                }
            }
            Delta::InputJson { partial_json } => {
                let Some(Block::Tool { call, json, .. }) = self.blocks.get_mut(&index) else {
                    return Err(ProviderError::new(
                        ErrorClass::MalformedResponse,
                        self.ctx.provider.clone(),
                        format!("input_json_delta for content block {index}, which is not a tool_use block"),
                    ));
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
    fn stop_block(&mut self, index: u64, step: &mut Step) -> Result<(), ProviderError> {
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
        serde_json::from_str::<Value>(&json).map(drop).map_err(|e| {
            ProviderError::new(
                ErrorClass::MalformedResponse,
                self.ctx.provider.clone(),
                format!("tool_use block {index}: its input JSON does not parse: {e}"),
            )
        })
    }

    fn emit(&mut self, event: StreamEvent, step: &mut Step) {
        self.collector.push(&event);
        step.events.push(event);
    }

    /// Adds the checkpoint and the request id to an error raised after the 200.
    fn fail(&self, mut error: ProviderError) -> ProviderError {
        let mut partial = self.collector.partial();
        if partial.usage.is_none() {
            partial.usage = self.usage.map(WireUsage::normalized);
        }
        error.partial = Some(Box::new(partial));
        if error.request_id.is_none() {
            error.request_id.clone_from(&self.ctx.request_id);
        }
        error
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::chat::{FinishReason, ToolCall, Usage};
    use crate::error::Partial;

    fn ev(name: &str, data: &str) -> Result<SseEvent, ProviderError> {
        Ok(SseEvent { event: name.into(), data: data.into() })
    }

    fn ctx() -> StreamContext {
        StreamContext { provider: "anthropic".into(), request_id: Some("req_hdr".into()), key: None }
    }

    async fn run(events: Vec<Result<SseEvent, ProviderError>>) -> (Vec<StreamEvent>, Option<ProviderError>) {
        run_with(ctx(), events).await
    }

    async fn run_with(
        ctx: StreamContext,
        events: Vec<Result<SseEvent, ProviderError>>,
    ) -> (Vec<StreamEvent>, Option<ProviderError>) {
        let mut stream = decode(ctx, futures::stream::iter(events));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                // the envelope has its own test
                Ok(StreamEvent::Envelope { .. }) => {}
                Ok(e) => out.push(e),
                Err(e) => {
                    assert!(stream.next().await.is_none(), "the stream must end after an error");
                    return (out, Some(e));
                }
            }
        }
        (out, None)
    }

    const START: &str = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1,"cache_read_input_tokens":4}}}"#;

    fn text_block_start(index: u64) -> Result<SseEvent, ProviderError> {
        ev(
            "content_block_start",
            &format!(r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#),
        )
    }

    fn text_delta(index: u64, text: &str) -> Result<SseEvent, ProviderError> {
        let data = serde_json::json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}});
        ev("content_block_delta", &data.to_string())
    }

    fn block_stop(index: u64) -> Result<SseEvent, ProviderError> {
        ev("content_block_stop", &format!(r#"{{"type":"content_block_stop","index":{index}}}"#))
    }

    fn message_delta(stop: &str, output: u64) -> Result<SseEvent, ProviderError> {
        let data = serde_json::json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output}});
        ev("message_delta", &data.to_string())
    }

    fn message_stop() -> Result<SseEvent, ProviderError> {
        ev("message_stop", r#"{"type":"message_stop"}"#)
    }

    /// The normalized usage of a stream whose wire usage said `input` uncached tokens and `cached`
    /// read from the cache: the normalized input counts both.
    fn usage(input: u64, output: u64, cached: Option<u64>) -> Usage {
        let input = input + cached.unwrap_or(0);
        Usage { input_tokens: input, output_tokens: output, cached_input_tokens: cached, ..Usage::default() }
    }

    #[tokio::test]
    async fn text_stream() {
        let (events, err) = run(vec![
            ev("message_start", START),
            text_block_start(0),
            ev("ping", r#"{"type": "ping"}"#),
            text_delta(0, "Hello"),
            text_delta(0, ", world"),
            block_stop(0),
            message_delta("end_turn", 12),
            message_stop(),
            // nothing after message_stop is read
            ev("garbage", "not json"),
        ])
        .await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            events,
            vec![
                StreamEvent::TextDelta { text: "Hello".into() },
                StreamEvent::TextDelta { text: ", world".into() },
                StreamEvent::Usage(usage(25, 12, Some(4))),
                StreamEvent::Finish { reason: FinishReason::Stop },
            ]
        );
    }

    #[tokio::test]
    async fn tool_use_arguments_are_assembled_from_input_json_deltas() {
        let json_delta = |index: u64, piece: &str| {
            let data = serde_json::json!({"type": "content_block_delta", "index": index,
                                          "delta": {"type": "input_json_delta", "partial_json": piece}});
            ev("content_block_delta", &data.to_string())
        };
        let tool_start = |index: u64, id: &str, name: &str| {
            let data = serde_json::json!({"type": "content_block_start", "index": index,
                                          "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}});
            ev("content_block_start", &data.to_string())
        };
        let (events, err) = run(vec![
            ev("message_start", START),
            ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            ),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"abc"}}"#,
            ),
            block_stop(0),
            text_block_start(1),
            text_delta(1, "Checking."),
            block_stop(1),
            tool_start(2, "toolu_1", "weather"),
            json_delta(2, ""),
            json_delta(2, r#"{"city": "Pa"#),
            json_delta(2, r#"ris"}"#),
            block_stop(2),
            tool_start(3, "toolu_2", "now"),
            block_stop(3),
            message_delta("tool_use", 40),
            message_stop(),
        ])
        .await;
        assert!(err.is_none(), "{err:?}");
        let mut collector = StreamCollector::new();
        for e in &events {
            collector.push(e);
        }
        let response = collector.finish("anthropic", "m", None).unwrap();
        assert_eq!(response.text, "Checking.");
        assert_eq!(
            response.tool_calls,
            vec![
                ToolCall { id: "toolu_1".into(), name: "weather".into(), arguments: r#"{"city": "Paris"}"#.into() },
                ToolCall { id: "toolu_2".into(), name: "now".into(), arguments: "{}".into() },
            ]
        );
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        assert_eq!(response.usage, usage(25, 40, Some(4)));
        // the thinking block comes through whole, signature included
        assert_eq!(
            response.reasoning,
            vec![crate::chat::ContentPart::Thinking { thinking: "hmm".into(), signature: Some("abc".into()) }]
        );
        assert_eq!(events[0], StreamEvent::ThinkingDelta { thinking: String::new() });
        assert_eq!(
            events[4],
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("toolu_1".into()),
                name: Some("weather".into()),
                arguments: String::new()
            }
        );
    }

    #[tokio::test]
    async fn ping_unknown_events_and_event_name_fallback() {
        let (events, err) = run(vec![
            ev("message_start", START),
            ev("ping", r#"{"type":"ping"}"#),
            ev("brand_new_event", r#"{"type":"brand_new_event","x":[1,2]}"#),
            ev("", r#"{"type":"another_unknown"}"#),
            // no `type` field: the SSE event name says what it is
            ev("content_block_delta", r#"{"index":0,"delta":{"type":"text_delta","text":"Hi"}}"#),
            message_delta("max_tokens", 3),
            ev("message_stop", "{}"),
        ])
        .await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            events,
            vec![
                StreamEvent::TextDelta { text: "Hi".into() },
                StreamEvent::Usage(usage(25, 3, Some(4))),
                StreamEvent::Finish { reason: FinishReason::Length },
            ]
        );
    }

    #[tokio::test]
    async fn error_event_after_text_is_classified_with_the_partial() {
        let (events, err) = run(vec![
            ev("message_start", START),
            text_block_start(0),
            text_delta(0, "Hel"),
            ev("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            text_delta(0, "never seen"),
        ])
        .await;
        assert_eq!(events, vec![StreamEvent::TextDelta { text: "Hel".into() }]);
        let err = err.unwrap();
        assert_eq!(err.class, ErrorClass::Overloaded);
        assert_eq!(err.status, Some(200));
        assert_eq!(err.provider_type.as_deref(), Some("overloaded_error"));
        assert_eq!(err.message, "Overloaded");
        assert_eq!(err.request_id.as_deref(), Some("req_hdr"));
        assert_eq!(
            err.partial,
            Some(Box::new(Partial { text: "Hel".into(), tool_calls: vec![], usage: Some(usage(25, 1, Some(4))) }))
        );
    }

    #[tokio::test]
    async fn error_events_use_the_type_then_default_to_server_error() {
        let cases = [
            (r#"{"type":"error","error":{"type":"api_error","message":"Internal"}}"#, ErrorClass::ServerError),
            (r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#, ErrorClass::RateLimited),
            (r#"{"type":"error","error":{"type":"who_knows","message":"?"}}"#, ErrorClass::ServerError),
            (r#"{"type":"error","error":{"message":"no type"}}"#, ErrorClass::ServerError),
        ];
        for (data, class) in cases {
            let (_, err) = run(vec![ev("error", data)]).await;
            let err = err.unwrap();
            assert_eq!(err.class, class, "{data}");
            assert_eq!(err.status, Some(200));
            assert_eq!(err.partial, Some(Box::default()));
        }
    }

    #[tokio::test]
    async fn missing_message_stop_is_interrupted_even_after_message_delta() {
        let (events, err) = run(vec![
            ev("message_start", START),
            text_block_start(0),
            text_delta(0, "Hello"),
            block_stop(0),
            message_delta("end_turn", 2),
        ])
        .await;
        assert_eq!(events, vec![StreamEvent::TextDelta { text: "Hello".into() }]);
        let err = err.unwrap();
        assert_eq!(err.class, ErrorClass::StreamInterrupted);
        assert_eq!(err.status, Some(200));
        assert_eq!(err.request_id.as_deref(), Some("req_hdr"));
        let partial = err.partial.unwrap();
        assert_eq!(partial.text, "Hello");
        assert_eq!(partial.usage, Some(usage(25, 2, Some(4))));
    }

    #[tokio::test]
    async fn an_empty_body_is_interrupted() {
        let ctx = StreamContext { request_id: None, ..ctx() };
        let (events, err) = run_with(ctx, vec![]).await;
        assert!(events.is_empty());
        let err = err.unwrap();
        assert_eq!(err.class, ErrorClass::StreamInterrupted);
        assert_eq!(err.partial, Some(Box::default()));
        assert!(err.request_id.is_none());
    }

    #[tokio::test]
    async fn malformed_events_fail_with_the_partial() {
        let bad = [
            ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","te"#),
            ("content_block_delta", "not json at all"),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":5}}"#,
            ),
            ("message_delta", r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":"lots"}}"#),
            ("", r#"{"no_type":true}"#),
            ("", "[1,2]"),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":7,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
            ),
        ];
        for (name, data) in bad {
            let (events, err) = run(vec![text_delta(0, "ok"), ev(name, data), message_stop()]).await;
            assert_eq!(events, vec![StreamEvent::TextDelta { text: "ok".into() }], "{data}");
            let err = err.unwrap();
            assert_eq!(err.class, ErrorClass::MalformedResponse, "{data}");
            assert_eq!(err.status, Some(200), "{data}");
            assert_eq!(err.partial.map(|p| p.text).as_deref(), Some("ok"));
        }
    }

    #[tokio::test]
    async fn tool_input_that_does_not_parse_at_block_stop_is_malformed() {
        let (_, err) = run(vec![
            ev("message_start", START),
            ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#,
            ),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\": 1"}}"#,
            ),
            block_stop(0),
            message_stop(),
        ])
        .await;
        let err = err.unwrap();
        assert_eq!(err.class, ErrorClass::MalformedResponse);
        let partial = err.partial.unwrap();
        assert_eq!(
            partial.tool_calls,
            vec![ToolCall { id: "toolu_1".into(), name: "f".into(), arguments: "{\"a\": 1".into() }]
        );
    }

    #[tokio::test]
    async fn transport_errors_pass_through_with_the_partial() {
        let timeout = ProviderError::new(ErrorClass::Timeout, "anthropic", "stream stalled");
        let (events, err) = run(vec![text_delta(0, "Hel"), Err(timeout), text_delta(0, "lo")]).await;
        assert_eq!(events.len(), 1);
        let err = err.unwrap();
        assert_eq!(err.class, ErrorClass::Timeout);
        assert_eq!(err.status, None, "a client-side timeout came with no status");
        assert_eq!(err.message, "stream stalled");
        assert_eq!(err.partial.map(|p| p.text).as_deref(), Some("Hel"));
    }

    #[tokio::test]
    async fn the_key_is_scrubbed_from_error_events() {
        let key = ApiKey::new("sk-ant-secret-123456");
        let ctx = StreamContext { key: Some(key), ..ctx() };
        let data =
            r#"{"type":"error","error":{"type":"authentication_error","message":"bad key sk-ant-secret-123456"}}"#;
        let (_, err) = run_with(ctx.clone(), vec![ev("error", data)]).await;
        let err = err.unwrap();
        assert_eq!(err.class, ErrorClass::Authentication);
        assert_eq!(err.message, "bad key ***");
        let data =
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":["sk-ant-secret-123456"]}}"#;
        let (_, err) = run_with(ctx, vec![ev("content_block_delta", data)]).await;
        let err = err.unwrap();
        assert!(!format!("{err} {err:?}").contains("sk-ant-secret-123456"));
    }
}
