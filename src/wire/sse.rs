//! Server-sent events framing, both ways: the one writer every wire's streams are framed with
//! (gateway, simulator) and the one reader the adapters read them with.
//!
//! The reader is correct however the bytes are split: events across chunks, UTF-8 characters
//! across chunks, `\r\n`, `\r` or `\n` line ends, comments, multi-line `data:`. It implements the
//! WHATWG event-stream parsing rules that matter here (fields `event` and `data`; `id` and `retry`
//! are ignored).

use std::fmt::Display;

use bytes::Bytes;

/// The sentinel that ends a Chat Completions stream.
pub(crate) const DONE: &str = "[DONE]";

/// An event with only a `data:` line (Chat Completions). `data` is one line: JSON as
/// `serde_json` writes it, or the sentinel.
pub(crate) fn data(data: impl Display) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// A named event (Anthropic Messages, Responses): its `event:` line, then its one `data:` line.
pub(crate) fn named(name: &str, data: impl Display) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// A comment: every reader skips it (the reader here too).
pub(crate) fn comment(text: impl Display) -> Bytes {
    Bytes::from(format!(": {text}\n\n"))
}

/// One decoded server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty when the server sent none (OpenAI sends none).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE decoder: feed it bytes as they arrive, take events as they complete.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// The last byte was `\r`: a `\n` right after it belongs to the same line end.
    pending_cr: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    /// A new decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                // the `\n` of a `\r\n` pair, possibly split across chunks
                b'\n' if self.pending_cr => self.pending_cr = false,
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.end_line(&mut out);
                    self.pending_cr = true;
                }
                _ => {
                    self.pending_cr = false;
                    self.buf.push(b);
                }
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.buf);
        let line = String::from_utf8_lossy(&line);
        self.process_line(&line, out);
    }

    fn process_line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent { event: std::mem::take(&mut self.event), data: std::mem::take(&mut self.data) });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return; // comment
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }

    /// Call at end of input: returns an event left without its blank line, if any. Servers that
    /// close right after the last `data:` line do exist; the adapters still decide from the events'
    /// content whether the stream was complete.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buf.is_empty() {
            let mut out = Vec::new();
            self.end_line(&mut out);
        }
        if self.has_data {
            self.has_data = false;
            return Some(SseEvent { event: std::mem::take(&mut self.event), data: std::mem::take(&mut self.data) });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(d.feed(c));
        }
        out.extend(d.finish());
        out
    }

    const SAMPLE: &str = "event: message_start\r\ndata: {\"a\":1}\r\n\r\n: keep-alive comment\n\nevent: content_block_delta\ndata: {\"text\":\"h\u{e9}llo \u{1F600}\"}\n\ndata: line one\ndata: line two\n\ndata:no-space\r\rdata: [DONE]\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent { event: "message_start".into(), data: "{\"a\":1}".into() },
            SseEvent { event: "content_block_delta".into(), data: "{\"text\":\"h\u{e9}llo \u{1F600}\"}".into() },
            SseEvent { event: String::new(), data: "line one\nline two".into() },
            SseEvent { event: String::new(), data: "no-space".into() },
            SseEvent { event: String::new(), data: "[DONE]".into() },
        ]
    }

    #[test]
    fn decodes_crlf_cr_comments_multiline_and_event_names() {
        assert_eq!(decode_all(&[SAMPLE.as_bytes()]), expected());
    }

    #[test]
    fn byte_at_a_time_gives_the_same_events() {
        let chunks: Vec<&[u8]> = SAMPLE.as_bytes().chunks(1).collect();
        assert_eq!(decode_all(&chunks), expected());
    }

    #[test]
    fn trailing_event_without_blank_line_is_returned_by_finish() {
        assert_eq!(
            decode_all(&[b"data: {\"x\":1}"]),
            vec![SseEvent { event: String::new(), data: "{\"x\":1}".into() }]
        );
    }

    #[test]
    fn what_the_writer_frames_the_reader_reads_back() {
        let mut bytes = data("{\"a\":1}").to_vec();
        bytes.extend_from_slice(&comment("x-cost: 1"));
        bytes.extend_from_slice(&named("message_stop", "{}"));
        bytes.extend_from_slice(&data(DONE));
        assert_eq!(
            decode_all(&[&bytes]),
            vec![
                SseEvent { event: String::new(), data: "{\"a\":1}".into() },
                SseEvent { event: "message_stop".into(), data: "{}".into() },
                SseEvent { event: String::new(), data: DONE.into() },
            ]
        );
    }

    #[test]
    fn event_name_without_data_dispatches_nothing() {
        assert!(decode_all(&[b"event: ping\n\n"]).is_empty());
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_events(cuts in proptest::collection::vec(0usize..SAMPLE.len(), 0..12)) {
            let bytes = SAMPLE.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            cuts.dedup();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for c in cuts {
                chunks.push(&bytes[prev..c]);
                prev = c;
            }
            chunks.push(&bytes[prev..]);
            prop_assert_eq!(decode_all(&chunks), expected());
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), split in 0usize..512) {
            let split = split.min(data.len());
            let _ = decode_all(&[&data[..split], &data[split..]]);
        }
    }
}
