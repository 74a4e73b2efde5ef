//! Streaming: Chat Completions SSE chunks → [`StreamEvent`]s, ending in exactly one `Finish` or
//! one error. The wire's reader reads the chunks; this adds the clock (the grace for the usage
//! chunk), the connection, and the errors' wording with what was received before them.
//!
//! The decoder is a plain function of a stream of SSE events, so every rule (prompt finish without
//! `[DONE]`, cuts, in-stream errors, garbage) is unit-tested with synthetic events.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::classify;
use crate::chat::{StreamCollector, StreamEvent};
use crate::error::{ErrorClass, Partial, ProviderError};
use crate::provider::{ChatStream, http};
use crate::secret::ApiKey;
use crate::wire::openai_chat::stream::{ReadError, Reader};
use crate::wire::sse::SseEvent;

/// Longest wait for the usage chunk or `[DONE]` once the answer is complete.
pub(super) const MAX_FINISH_GRACE: Duration = Duration::from_millis(500);

/// What the decoder needs to know about the call.
#[derive(Debug, Clone)]
pub(super) struct StreamContext {
    /// Provider name for errors.
    pub(super) provider: String,
    /// Scrubbed from any upstream text kept in an error.
    pub(super) key: Option<ApiKey>,
    /// The response's request id, put on errors raised after the 200.
    pub(super) request_id: Option<String>,
    /// How long to wait for usage / `[DONE]` after `finish_reason`.
    pub(super) grace: Duration,
}

impl StreamContext {
    /// The grace after `finish_reason`: [`MAX_FINISH_GRACE`], or the idle timeout if shorter.
    pub(super) fn grace_for(idle: Option<Duration>) -> Duration {
        idle.map_or(MAX_FINISH_GRACE, |i| i.min(MAX_FINISH_GRACE))
    }
}

/// Decodes OpenAI SSE events into a [`ChatStream`].
pub(super) fn decode<S>(events: S, ctx: StreamContext) -> ChatStream
where
    S: Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static,
{
    let decoder = Decoder {
        events: Box::pin(events),
        ctx,
        collector: StreamCollector::new(),
        reader: Reader::new(),
        queue: VecDeque::new(),
        finish_deadline: None,
        done: false,
    };
    Box::pin(futures::stream::unfold(decoder, |mut d| async move { d.next_item().await.map(|item| (item, d)) }))
}

type Events = Pin<Box<dyn Stream<Item = Result<SseEvent, ProviderError>> + Send>>;

/// The wire's reader, with the clock and the errors' wording around it.
struct Decoder {
    events: Events,
    ctx: StreamContext,
    /// Everything yielded so far: the checkpoint carried by errors.
    collector: StreamCollector,
    reader: Reader,
    queue: VecDeque<StreamEvent>,
    finish_deadline: Option<Instant>,
    done: bool,
}

impl Decoder {
    async fn next_item(&mut self) -> Option<Result<StreamEvent, ProviderError>> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                self.collector.push(&event);
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let step = match self.finish_deadline {
                Some(at) => match tokio::time::timeout_at(at, self.events.next()).await {
                    Ok(step) => step,
                    Err(_) => {
                        // the answer is complete; a server that never sends [DONE] must not hold it
                        self.complete();
                        continue;
                    }
                },
                None => self.events.next().await,
            };
            if let Some(error) = self.on_step(step) {
                return Some(Err(error));
            }
        }
    }

    /// Handles one item from the SSE source; returns the error that ends the stream, if any.
    fn on_step(&mut self, step: Option<Result<SseEvent, ProviderError>>) -> Option<ProviderError> {
        let result = match step {
            None => Err(self.error(ErrorClass::StreamInterrupted, "stream ended before a finish_reason")),
            Some(Err(e)) => Err(e),
            Some(Ok(event)) => self.on_event(&event),
        };
        match result {
            Ok(()) => None,
            Err(_) if self.reader.finished() => {
                // after finish_reason the answer is whole: a cut or error only loses the usage chunk
                self.complete();
                None
            }
            Err(e) => {
                self.done = true;
                Some(self.with_checkpoint(e))
            }
        }
    }

    fn on_event(&mut self, event: &SseEvent) -> Result<(), ProviderError> {
        let events = self.reader.read(event).map_err(|e| self.read_error(e))?;
        self.queue.extend(events);
        if self.reader.is_done() {
            self.end();
        } else if self.reader.answered() && self.finish_deadline.is_none() {
            self.finish_deadline = Some(Instant::now() + self.ctx.grace);
        }
        Ok(())
    }

    /// Queues the terminal events: usage if any, then the one `Finish`.
    fn complete(&mut self) {
        let events = self.reader.complete();
        self.queue.extend(events);
        self.end();
    }

    /// Nothing more is read: the connection goes back.
    fn end(&mut self) {
        if !self.done {
            self.done = true;
            http::release(std::mem::replace(&mut self.events, http::ended()));
        }
    }

    fn read_error(&self, error: ReadError) -> ProviderError {
        match error {
            ReadError::Malformed(why) => self.error(ErrorClass::MalformedResponse, &why),
            ReadError::Upstream(body) => classify::stream_error(&self.ctx.provider, self.ctx.key.as_ref(), &body),
            ReadError::Interrupted(why) => self.error(ErrorClass::StreamInterrupted, why),
        }
    }

    fn error(&self, class: ErrorClass, message: &str) -> ProviderError {
        ProviderError::new(class, self.ctx.provider.clone(), message).with_status(200)
    }

    fn with_checkpoint(&self, mut error: ProviderError) -> ProviderError {
        if error.request_id().is_none() {
            error.set_request_id(self.ctx.request_id.clone());
        }
        error.with_partial(self.partial())
    }

    fn partial(&self) -> Partial {
        let mut partial = self.collector.partial();
        if let Some(usage) = self.reader.usage() {
            partial.usage = Some(usage);
        }
        partial
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::chat::{FinishReason, ToolCall, Usage};

    const KEY: &str = "sk-stream-secret-0123456789";
    const SHORT_GRACE: Duration = Duration::from_millis(60);

    fn ctx() -> StreamContext {
        StreamContext {
            provider: "openai".into(),
            key: Some(ApiKey::new(KEY)),
            request_id: Some("req_stream".into()),
            grace: MAX_FINISH_GRACE,
        }
    }

    fn data(d: &str) -> Result<SseEvent, ProviderError> {
        Ok(SseEvent { event: String::new(), data: d.to_owned() })
    }

    fn text_chunk(t: &str) -> Result<SseEvent, ProviderError> {
        data(&format!(
            r#"{{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{{"index":0,"delta":{{"content":{}}},"finish_reason":null}}],"usage":null}}"#,
            serde_json::to_string(t).unwrap()
        ))
    }

    fn finish_chunk(reason: &str) -> Result<SseEvent, ProviderError> {
        data(&format!(r#"{{"choices":[{{"index":0,"delta":{{}},"finish_reason":"{reason}"}}],"usage":null}}"#))
    }

    fn usage_chunk() -> Result<SseEvent, ProviderError> {
        data(
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0}}}"#,
        )
    }

    fn role_chunk() -> Result<SseEvent, ProviderError> {
        data(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#)
    }

    fn usage() -> Usage {
        Usage { input_tokens: 9, output_tokens: 2, cached_input_tokens: Some(0), ..Usage::default() }
    }

    /// The decoded items, the envelope left out (it has its own test).
    async fn collect(events: Vec<Result<SseEvent, ProviderError>>) -> Vec<Result<StreamEvent, ProviderError>> {
        without_envelope(decode(futures::stream::iter(events), ctx()).collect().await)
    }

    fn without_envelope(items: Vec<Result<StreamEvent, ProviderError>>) -> Vec<Result<StreamEvent, ProviderError>> {
        items.into_iter().filter(|i| !matches!(i, Ok(StreamEvent::Envelope { .. }))).collect()
    }

    /// Events followed by a connection that stays open and silent; `grace` replaces the 500 ms default
    /// so the test stays fast (tokio's paused clock needs a feature the crate does not enable).
    async fn collect_then_hang(
        events: Vec<Result<SseEvent, ProviderError>>,
        grace: Duration,
    ) -> Vec<Result<StreamEvent, ProviderError>> {
        let ctx = StreamContext { grace, ..ctx() };
        without_envelope(decode(futures::stream::iter(events).chain(futures::stream::pending()), ctx).collect().await)
    }

    fn text(t: &str) -> StreamEvent {
        StreamEvent::TextDelta { text: t.into() }
    }

    fn finish(reason: FinishReason) -> StreamEvent {
        StreamEvent::Finish { reason }
    }

    fn oks(items: &[Result<StreamEvent, ProviderError>]) -> Vec<StreamEvent> {
        items.iter().filter_map(|i| i.as_ref().ok().cloned()).collect()
    }

    fn last_error(items: &[Result<StreamEvent, ProviderError>]) -> ProviderError {
        items.last().unwrap().clone().unwrap_err()
    }

    #[tokio::test]
    async fn normal_stream_with_usage_and_done() {
        let items = collect(vec![
            role_chunk(),
            text_chunk("Hel"),
            text_chunk("lo!"),
            finish_chunk("stop"),
            usage_chunk(),
            data("[DONE]"),
        ])
        .await;
        assert_eq!(
            items.into_iter().collect::<Result<Vec<_>, _>>().unwrap(),
            vec![text("Hel"), text("lo!"), StreamEvent::Usage(usage()), finish(FinishReason::Stop)]
        );
    }

    #[tokio::test]
    async fn done_after_finish_without_usage_finishes() {
        let items = collect(vec![text_chunk("Hi"), finish_chunk("length"), data("[DONE]")]).await;
        assert_eq!(oks(&items), vec![text("Hi"), finish(FinishReason::Length)]);
        assert!(items.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn finish_reason_without_done_completes_within_the_grace() {
        let start = Instant::now();
        let items = collect_then_hang(vec![text_chunk("Hi"), finish_chunk("stop")], SHORT_GRACE).await;
        assert_eq!(oks(&items), vec![text("Hi"), finish(FinishReason::Stop)]);
        assert!(items.iter().all(Result::is_ok));
        let waited = start.elapsed();
        assert!(waited >= SHORT_GRACE && waited < SHORT_GRACE + Duration::from_millis(250), "{waited:?}");
    }

    #[tokio::test]
    async fn usage_after_finish_ends_at_once_even_without_done() {
        let start = Instant::now();
        let items =
            collect_then_hang(vec![text_chunk("Hi"), finish_chunk("stop"), usage_chunk()], Duration::from_secs(5))
                .await;
        assert_eq!(oks(&items), vec![text("Hi"), StreamEvent::Usage(usage()), finish(FinishReason::Stop)]);
        assert!(start.elapsed() < Duration::from_millis(250), "{:?}", start.elapsed());
    }

    #[test]
    fn grace_is_at_most_500ms_and_capped_by_the_idle_timeout() {
        assert_eq!(StreamContext::grace_for(None), MAX_FINISH_GRACE);
        assert_eq!(MAX_FINISH_GRACE, Duration::from_millis(500));
        assert_eq!(StreamContext::grace_for(Some(Duration::from_secs(30))), MAX_FINISH_GRACE);
        assert_eq!(StreamContext::grace_for(Some(Duration::from_millis(80))), Duration::from_millis(80));
    }

    #[tokio::test]
    async fn cut_before_finish_is_interrupted_with_partial_text() {
        let items = collect(vec![role_chunk(), text_chunk("Hel"), text_chunk("lo")]).await;
        assert_eq!(oks(&items), vec![text("Hel"), text("lo")]);
        let e = last_error(&items);
        assert_eq!(e.class(), ErrorClass::StreamInterrupted);
        assert_eq!(e.partial().map(|p| p.text.as_str()), Some("Hello"));
        assert_eq!(e.request_id(), Some("req_stream"));
        assert_eq!(items.len(), 3);
    }

    #[tokio::test]
    async fn done_without_finish_is_interrupted() {
        let items = collect(vec![text_chunk("Hel"), data("[DONE]"), text_chunk("never")]).await;
        let e = last_error(&items);
        assert_eq!(e.class(), ErrorClass::StreamInterrupted);
        assert_eq!(e.partial().unwrap().text, "Hel");
    }

    #[tokio::test]
    async fn empty_stream_is_interrupted() {
        let items = collect(vec![]).await;
        assert_eq!(items.len(), 1);
        let e = last_error(&items);
        assert_eq!(e.class(), ErrorClass::StreamInterrupted);
        assert!(e.partial().unwrap().is_empty());
    }

    #[tokio::test]
    async fn in_stream_error_is_classified_with_partial_and_ends_the_stream() {
        let items = collect(vec![
            text_chunk("Hel"),
            usage_chunk(),
            data(&format!(r#"{{"error":{{"message":"Overloaded, key {KEY}","type":"overloaded_error","param":null,"code":null}}}}"#)),
            text_chunk("never"),
        ])
        .await;
        assert_eq!(items.len(), 2);
        let e = last_error(&items);
        assert_eq!(e.class(), ErrorClass::Overloaded);
        assert_eq!(e.status(), Some(200));
        assert_eq!(e.provider_type(), Some("overloaded_error"));
        assert!(!format!("{e} {e:?}").contains(KEY));
        let partial = e.partial().unwrap();
        assert_eq!(partial.text, "Hel");
        assert_eq!(partial.usage, Some(usage()));
    }

    #[tokio::test]
    async fn in_stream_server_error_defaults_to_server_error() {
        let items = collect(vec![
            text_chunk("a"),
            data(r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#),
        ])
        .await;
        assert_eq!(last_error(&items).class(), ErrorClass::ServerError);
        let named = collect(vec![Ok(SseEvent {
            event: "error".into(),
            data: r#"{"message":"slow","type":"rate_limit_error"}"#.into(),
        })])
        .await;
        assert_eq!(last_error(&named).class(), ErrorClass::RateLimited);
    }

    #[tokio::test]
    async fn malformed_chunks_end_the_stream_without_leaking_into_text() {
        let garbage = [
            "{\"choices\":[{\"delta\":{\"content\":\"trunc",
            "<html>502</html>",
            "not json at all",
            "[1,2]",
            "{\"choices\":\"nope\"}",
            "{\"choices\":[{\"index\":0,\"delta\":{\"content\":42}}]}",
        ];
        for g in garbage {
            let items = collect(vec![text_chunk("ok "), data(g), text_chunk("after")]).await;
            assert_eq!(oks(&items), vec![text("ok ")], "{g}");
            let e = last_error(&items);
            assert_eq!(e.class(), ErrorClass::MalformedResponse, "{g}");
            assert!(!e.message().contains(g), "{g}: {}", e.message());
            assert_eq!(e.partial().unwrap().text, "ok ");
        }
    }

    #[tokio::test]
    async fn transport_errors_pass_through_with_partial() {
        let cut = ProviderError::new(ErrorClass::Timeout, "openai", "stream stalled");
        let items = collect(vec![text_chunk("Hel"), Err(cut)]).await;
        let e = last_error(&items);
        assert_eq!(e.class(), ErrorClass::Timeout);
        assert_eq!(e.message(), "stream stalled");
        assert_eq!(e.partial().unwrap().text, "Hel");
    }

    #[tokio::test]
    async fn errors_and_cuts_after_finish_do_not_fail_the_answer() {
        let after: [Vec<Result<SseEvent, ProviderError>>; 3] = [
            vec![Err(ProviderError::new(ErrorClass::StreamInterrupted, "openai", "reset"))],
            vec![data("garbage")],
            vec![data(r#"{"error":{"message":"late","type":"server_error"}}"#)],
        ];
        for tail in after {
            let mut events = vec![text_chunk("Hi"), finish_chunk("stop")];
            events.extend(tail);
            let items = collect(events).await;
            assert_eq!(oks(&items), vec![text("Hi"), finish(FinishReason::Stop)]);
            assert!(items.iter().all(Result::is_ok));
        }
        // a plain end of body after finish_reason is complete too
        let items = collect(vec![text_chunk("Hi"), finish_chunk("content_filter")]).await;
        assert_eq!(oks(&items), vec![text("Hi"), finish(FinishReason::ContentFilter)]);
    }

    #[tokio::test]
    async fn tool_call_deltas_are_assembled_with_ids_across_chunks() {
        let items = collect(vec![
            role_chunk(),
            data(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#),
            data(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}"#),
            data(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":7,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"finish_reason":null}]}"#),
            data(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}"#),
            finish_chunk("tool_calls"),
            usage_chunk(),
            data("[DONE]"),
        ])
        .await;
        let events = items.into_iter().collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(
            events[0],
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("call_a".into()),
                name: Some("get_weather".into()),
                arguments: String::new()
            }
        );
        // the server's sparse index 7 becomes the second call
        assert_eq!(
            events[2],
            StreamEvent::ToolCallDelta {
                index: 1,
                id: Some("call_b".into()),
                name: Some("get_time".into()),
                arguments: "{}".into()
            }
        );
        let mut c = StreamCollector::new();
        for e in &events {
            c.push(e);
        }
        let r = c.finish("openai", "m", None).unwrap();
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            r.tool_calls,
            vec![
                ToolCall { id: "call_a".into(), name: "get_weather".into(), arguments: "{\"city\":\"Paris\"}".into() },
                ToolCall { id: "call_b".into(), name: "get_time".into(), arguments: "{}".into() },
            ]
        );
    }

    #[tokio::test]
    async fn partial_carries_tool_calls_so_far() {
        let items = collect(vec![data(
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","function":{"name":"f","arguments":"{\"a\""}}]},"finish_reason":null}]}"#,
        )])
        .await;
        let error = last_error(&items);
        let partial = error.partial().unwrap();
        assert_eq!(
            partial.tool_calls,
            vec![ToolCall { id: "call_a".into(), name: "f".into(), arguments: "{\"a\"".into() }]
        );
    }

    #[tokio::test]
    async fn other_choices_are_alternatives_and_keepalive_objects_are_ignored() {
        let items = collect(vec![
            data("{}"),
            data(r#"{"choices":[{"index":1,"delta":{"content":"other"},"finish_reason":null}]}"#),
            text_chunk("mine"),
            data(r#"{"choices":[{"index":0,"delta":{"content":null},"finish_reason":"stop"}]}"#),
            // the stream is not over while another answer is open
            data(r#"{"choices":[{"index":1,"delta":{"refusal":"no"},"finish_reason":"content_filter"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#),
        ])
        .await;
        let alternative = |event| StreamEvent::Alternative { index: 1, event: Box::new(event) };
        assert_eq!(
            oks(&items),
            vec![
                alternative(text("other")),
                text("mine"),
                alternative(StreamEvent::RefusalDelta { refusal: "no".into() }),
                alternative(finish(FinishReason::ContentFilter)),
                StreamEvent::Usage(Usage {
                    input_tokens: 1,
                    output_tokens: 1,
                    cached_input_tokens: None,
                    ..Usage::default()
                }),
                finish(FinishReason::Stop)
            ]
        );
    }
}
