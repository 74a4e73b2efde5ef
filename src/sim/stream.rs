//! Streamed answers: a [`Script`] written by a wire's own writer, with the fault's damage applied,
//! played out as a response body.

use std::io;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;

use super::fault::Fault;
use super::render::Steps;
use super::wire::{Dialect, Ids, Script};
use crate::chat::StreamEvent;
use crate::wire::sse::{self, SseDecoder};

/// The script of `steps`, each step's events written together by a wire's stream writer
/// (`write`); a Chat Completions stream's closing `[DONE]` is set apart as the sentinel.
pub(crate) fn script(steps: &Steps, mut write: impl FnMut(&[StreamEvent]) -> Vec<Bytes>) -> Script {
    let head = write(&steps.head);
    let tokens = steps.tokens.iter().map(|step| Bytes::from(write(step).concat())).collect();
    let mut tail = write(&steps.tail);
    let sentinel = if tail.last() == Some(&sse::data(sse::DONE)) { tail.pop() } else { None };
    Script { head, tokens, tail, sentinel }
}

/// One step of a streamed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Write these bytes (and flush).
    Send(Bytes),
    /// Go silent.
    Sleep(Duration),
    /// Drop the connection mid-body (no terminating chunk).
    Abort,
    /// Keep the connection open and silent until the client leaves.
    Hold,
}

/// How a stream ends.
enum End {
    /// Tail and sentinel.
    Complete,
    /// Connection dropped, no tail.
    Abort,
    /// An in-stream error event instead of the tail.
    Error(Bytes),
    /// Tail without the sentinel, then silence on an open connection.
    Hold,
}

/// The steps of a stream, with `fault` (if any) applied.
pub(crate) fn plan(script: Script, fault: Option<&Fault>, dialect: &dyn Dialect, ids: Ids) -> Vec<Step> {
    let Script { head, tokens, tail, sentinel } = script;
    let mut steps = Vec::with_capacity(head.len() + tokens.len() + tail.len() + 3);
    steps.extend(head.iter().cloned().map(Step::Send));
    // as real servers do: the preamble at once, the first token late
    if let Some(Fault::SlowFirstToken { delay }) = fault {
        steps.push(Step::Sleep(delay.get()));
    }
    let split = |after: usize| after.min(tokens.len());
    // (tokens before the injection, what is injected, tokens after it, how the stream ends)
    let (before, injected, after, end) = match fault {
        Some(Fault::Stall { after_tokens, duration }) => {
            let (b, a) = tokens.split_at(split(*after_tokens));
            (b, Some(Step::Sleep(duration.get())), a, End::Complete)
        }
        Some(Fault::MalformedChunk { after_tokens }) => {
            let (b, a) = tokens.split_at(split(*after_tokens));
            // the wire's own event, cut short: the next token's, else the last one written
            let sample = a.first().or(b.last()).or(head.last());
            (b, sample.map(|event| Step::Send(truncated(event))), a, End::Complete)
        }
        Some(Fault::Cut { after_tokens }) => (&tokens[..split(*after_tokens)], None, &[][..], End::Abort),
        Some(Fault::StreamError { after_tokens, error_type }) => {
            let error = dialect.stream_error(error_type.as_deref(), ids);
            (&tokens[..split(*after_tokens)], None, &[][..], End::Error(error))
        }
        Some(Fault::NoDone) => (&tokens[..], None, &[][..], End::Hold),
        _ => (&tokens[..], None, &[][..], End::Complete),
    };
    steps.extend(before.iter().cloned().map(Step::Send));
    steps.extend(injected);
    steps.extend(after.iter().cloned().map(Step::Send));
    match end {
        End::Complete => {
            steps.extend(tail.into_iter().map(Step::Send));
            steps.extend(sentinel.map(Step::Send));
        }
        End::Abort => steps.push(Step::Abort),
        End::Error(error) => steps.push(Step::Send(error)),
        End::Hold => {
            steps.extend(tail.into_iter().map(Step::Send));
            steps.push(Step::Hold);
        }
    }
    steps
}

/// The last event of `events` with its data cut in half: an event whose data is not JSON.
fn truncated(events: &Bytes) -> Bytes {
    let mut decoder = SseDecoder::new();
    let mut decoded = decoder.feed(events);
    decoded.extend(decoder.finish());
    let Some(last) = decoded.pop() else { return Bytes::from_static(b"data: {\n\n") };
    let half = last.data.char_indices().nth(last.data.chars().count() / 2).map_or(0, |(at, _)| at);
    let data = &last.data[..half];
    if last.event.is_empty() { sse::data(data) } else { sse::named(&last.event, data) }
}

/// Plays `steps` out as a response body, each event written on its own.
pub(crate) fn body(steps: Vec<Step>) -> Body {
    let stream = futures::stream::unfold(steps.into_iter(), |mut steps| async move {
        loop {
            match steps.next()? {
                Step::Send(bytes) => {
                    // hand control back so hyper flushes the previous event before this one
                    tokio::task::yield_now().await;
                    return Some((Ok(bytes), steps));
                }
                Step::Sleep(duration) => tokio::time::sleep(duration).await,
                Step::Abort => {
                    // let hyper flush what was sent: the cut must come after the last token, not eat it
                    tokio::task::yield_now().await;
                    let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "simulated cut");
                    return Some((Err(cut), steps));
                }
                Step::Hold => std::future::pending::<()>().await,
            }
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::duration::DurationStr;
    use crate::sim::openai::OpenAiWire;

    fn script() -> Script {
        let event = |s: &str| sse::data(format_args!("\"{s}\""));
        Script {
            head: vec![event("H")],
            tokens: vec![event("1"), event("2"), event("3")],
            tail: vec![event("F")],
            sentinel: Some(event("D")),
        }
    }

    fn shape(steps: &[Step]) -> String {
        steps
            .iter()
            .map(|s| match s {
                Step::Send(b) => {
                    let data = SseDecoder::new().feed(b).pop().map(|e| e.data).unwrap_or_default();
                    match serde_json::from_str::<serde_json::Value>(&data) {
                        Ok(serde_json::Value::String(s)) => s,
                        Ok(v) if v.get("error").is_some() => "E".into(),
                        _ => "M".into(),
                    }
                }
                Step::Sleep(_) => "z".into(),
                Step::Abort => "!".into(),
                Step::Hold => "~".into(),
            })
            .collect()
    }

    fn run(fault: Option<Fault>) -> String {
        let ids = Ids { seq: 1, created: 0 };
        shape(&plan(script(), fault.as_ref(), &OpenAiWire, ids))
    }

    #[test]
    fn faults_reshape_the_stream() {
        let d = DurationStr::new(Duration::from_millis(5));
        assert_eq!(run(None), "H123FD");
        assert_eq!(run(Some(Fault::SlowFirstToken { delay: d })), "Hz123FD");
        assert_eq!(run(Some(Fault::Stall { after_tokens: 1, duration: d })), "H1z23FD");
        assert_eq!(run(Some(Fault::Stall { after_tokens: 9, duration: d })), "H123zFD");
        assert_eq!(run(Some(Fault::Cut { after_tokens: 2 })), "H12!");
        assert_eq!(run(Some(Fault::MalformedChunk { after_tokens: 0 })), "HM123FD");
        assert_eq!(run(Some(Fault::MalformedChunk { after_tokens: 9 })), "H123MFD");
        assert_eq!(run(Some(Fault::StreamError { after_tokens: 1, error_type: None })), "H1E");
        assert_eq!(run(Some(Fault::NoDone)), "H123F~");
    }

    #[test]
    fn a_malformed_event_is_a_real_one_cut_short() {
        let named = sse::named("content_block_delta", r#"{"type":"content_block_delta","index":0}"#);
        assert_eq!(truncated(&named), sse::named("content_block_delta", r#"{"type":"content_blo"#));
        let two = Bytes::from([sse::data("{\"a\":1}"), sse::data("{\"bb\":22}")].concat());
        assert_eq!(truncated(&two), sse::data("{\"bb"));
    }
}
