//! The Messages streaming protocol: SSE events in, normalized [`StreamEvent`]s out. The wire's
//! reader reads the events; this adds the connection and the errors' wording with what was
//! received before them.

use std::collections::VecDeque;

use futures::{Stream, StreamExt};

use super::classify;
use crate::chat::{StreamCollector, StreamEvent};
use crate::error::{ErrorClass, ProviderError};
use crate::provider::{ChatStream, http};
use crate::secret::ApiKey;
use crate::wire::anthropic::stream::{ReadError, Reader, Step};
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
    let state = Decoder {
        events: Box::pin(events),
        ctx,
        reader: Reader::new(),
        collector: StreamCollector::new(),
        pending: VecDeque::new(),
        done: false,
    };
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
                Some(Ok(sse)) => st.reader.read(&sse).map_err(|e| in_body(st.read_error(&sse, e))),
                Some(Err(e)) => Err(e),
                None => Err(in_body(ProviderError::new(
                    ErrorClass::StreamInterrupted,
                    st.ctx.provider.clone(),
                    "stream ended without message_stop",
                ))),
            };
            match outcome {
                Ok(Step { events, finished }) => {
                    events.iter().for_each(|e| st.collector.push(e));
                    st.pending.extend(events);
                    st.done = finished;
                    if finished {
                        http::release(std::mem::replace(&mut st.events, http::ended()));
                    }
                }
                Err(e) => {
                    st.done = true;
                    let e = st.fail(e);
                    return Some((Err(e), st));
                }
            }
        }
    }))
}

/// The wire's reader with the connection and the call around it.
struct Decoder {
    events: std::pin::Pin<Box<dyn Stream<Item = Result<SseEvent, ProviderError>> + Send>>,
    ctx: StreamContext,
    reader: Reader,
    /// Everything yielded so far: the checkpoint carried by errors.
    collector: StreamCollector,
    pending: VecDeque<StreamEvent>,
    done: bool,
}

impl Decoder {
    /// The reader's error as this adapter words it.
    fn read_error(&self, sse: &SseEvent, error: ReadError) -> ProviderError {
        let key = self.ctx.key.as_ref();
        match error {
            // upstream text (serde's message may quote the data): scrubbed like any
            ReadError::Malformed(why) => ProviderError::new(
                ErrorClass::MalformedResponse,
                self.ctx.provider.clone(),
                classify::redact(key, &why),
            ),
            ReadError::Upstream => {
                classify::classify_body(&self.ctx.provider, sse.data.as_bytes(), ErrorClass::ServerError, key)
                    .with_status(200)
            }
        }
    }

    /// Adds the checkpoint and the request id to an error raised after the 200.
    fn fail(&self, error: ProviderError) -> ProviderError {
        let mut partial = self.collector.partial();
        if partial.usage.is_none() {
            partial.usage = self.reader.usage();
        }
        let mut error = error.with_partial(partial);
        if error.request_id().is_none() {
            error.set_request_id(self.ctx.request_id.clone().or_else(|| self.reader.message_id().map(str::to_owned)));
        }
        error
    }
}

/// An error found in the 200 response's body.
fn in_body(error: ProviderError) -> ProviderError {
    if error.status().is_none() { error.with_status(200) } else { error }
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
        assert_eq!(err.class(), ErrorClass::Overloaded);
        assert_eq!(err.status(), Some(200));
        assert_eq!(err.provider_type(), Some("overloaded_error"));
        assert_eq!(err.message(), "Overloaded");
        assert_eq!(err.request_id(), Some("req_hdr"));
        assert_eq!(
            err.partial(),
            Some(&Partial { text: "Hel".into(), tool_calls: vec![], usage: Some(usage(25, 1, Some(4))) })
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
            assert_eq!(err.class(), class, "{data}");
            assert_eq!(err.status(), Some(200));
            assert_eq!(err.partial(), Some(&Partial::default()));
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
        assert_eq!(err.class(), ErrorClass::StreamInterrupted);
        assert_eq!(err.status(), Some(200));
        assert_eq!(err.request_id(), Some("req_hdr"));
        let partial = err.partial().unwrap();
        assert_eq!(partial.text, "Hello");
        assert_eq!(partial.usage, Some(usage(25, 2, Some(4))));
    }

    #[tokio::test]
    async fn an_empty_body_is_interrupted() {
        let ctx = StreamContext { request_id: None, ..ctx() };
        let (events, err) = run_with(ctx, vec![]).await;
        assert!(events.is_empty());
        let err = err.unwrap();
        assert_eq!(err.class(), ErrorClass::StreamInterrupted);
        assert_eq!(err.partial(), Some(&Partial::default()));
        assert!(err.request_id().is_none());
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
            assert_eq!(err.class(), ErrorClass::MalformedResponse, "{data}");
            assert_eq!(err.status(), Some(200), "{data}");
            assert_eq!(err.partial().map(|p| p.text.as_str()), Some("ok"));
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
        assert_eq!(err.class(), ErrorClass::MalformedResponse);
        let partial = err.partial().unwrap();
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
        assert_eq!(err.class(), ErrorClass::Timeout);
        assert_eq!(err.status(), None, "a client-side timeout came with no status");
        assert_eq!(err.message(), "stream stalled");
        assert_eq!(err.partial().map(|p| p.text.as_str()), Some("Hel"));
    }

    #[tokio::test]
    async fn the_key_is_scrubbed_from_error_events() {
        let key = ApiKey::new("sk-ant-secret-123456");
        let ctx = StreamContext { key: Some(key), ..ctx() };
        let data =
            r#"{"type":"error","error":{"type":"authentication_error","message":"bad key sk-ant-secret-123456"}}"#;
        let (_, err) = run_with(ctx.clone(), vec![ev("error", data)]).await;
        let err = err.unwrap();
        assert_eq!(err.class(), ErrorClass::Authentication);
        assert_eq!(err.message(), "bad key ***");
        let data =
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":["sk-ant-secret-123456"]}}"#;
        let (_, err) = run_with(ctx, vec![ev("content_block_delta", data)]).await;
        let err = err.unwrap();
        assert!(!format!("{err} {err:?}").contains("sk-ant-secret-123456"));
    }
}
