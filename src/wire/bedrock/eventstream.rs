//! AWS event-stream framing (`application/vnd.amazon.eventstream`), both ways: the [`Decoder`] the
//! Bedrock adapter reads `InvokeModelWithResponseStream` answers with, and the [`encode`] the
//! simulator writes them with, so the two directions share one definition of the format.
//!
//! A message is a prelude (total length, headers length, both u32 big-endian, and the CRC-32 of
//! those 8 bytes), typed headers, the payload, and the CRC-32 of everything before it. The decoder
//! is sans-IO and bounded: it holds at most one message (no more than its limit) beyond what it was
//! given, checks the prelude's checksum before trusting a length, and after an error yields
//! nothing more (a byte stream whose framing is lost cannot be resynchronized).

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The largest message the decoder accepts by default. Bedrock's chunks are a few kilobytes; a
/// declared length past this is corruption or hostility, and refusing it bounds the buffer.
pub(crate) const MAX_MESSAGE_LEN: usize = 16 << 20;
/// The largest headers section, as botocore's decoder allows.
const MAX_HEADERS_LEN: usize = 128 << 10;
const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;

/// A header's value, one variant per wire type (the type byte in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderValue {
    /// True \[0\] or false \[1\]: the type byte is the value.
    Bool(bool),
    /// \[2\]
    Byte(i8),
    /// \[3\]
    Int16(i16),
    /// \[4\]
    Int32(i32),
    /// \[5\]
    Int64(i64),
    /// \[6\] at most 65,535 bytes.
    Bytes(Bytes),
    /// \[7\] UTF-8, at most 65,535 bytes: all the headers Bedrock sends.
    String(String),
    /// \[8\] milliseconds since the epoch.
    Timestamp(i64),
    /// \[9\]
    Uuid([u8; 16]),
}

impl From<&str> for HeaderValue {
    fn from(s: &str) -> Self {
        HeaderValue::String(s.to_owned())
    }
}

/// One message of an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The headers, in their order on the wire (names are unique).
    pub(crate) headers: Vec<(String, HeaderValue)>,
    /// The payload: for Bedrock, JSON.
    pub(crate) payload: Bytes,
}

impl Message {
    /// The header named `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The string header named `name`; `None` when absent or of another type.
    pub(crate) fn string(&self, name: &str) -> Option<&str> {
        match self.header(name)? {
            HeaderValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// `:message-type`: `event`, `exception` (a modeled error, named by `:exception-type`) or
    /// `error` (an unmodeled one, with `:error-code` and `:error-message`).
    pub(crate) fn message_type(&self) -> Option<&str> {
        self.string(":message-type")
    }

    /// `:event-type` of an event: `chunk` for each piece of a Bedrock answer.
    pub(crate) fn event_type(&self) -> Option<&str> {
        self.string(":event-type")
    }

    /// `:exception-type` of an exception: `throttlingException`, `modelStreamErrorException`,
    /// `internalServerException`, `serviceUnavailableException`, `validationException`,
    /// `modelTimeoutException`…; its payload is JSON with a `message`.
    pub(crate) fn exception_type(&self) -> Option<&str> {
        self.string(":exception-type")
    }

    /// `:content-type` of the payload.
    pub(crate) fn content_type(&self) -> Option<&str> {
        self.string(":content-type")
    }

    /// `:error-code` of an error message.
    pub(crate) fn error_code(&self) -> Option<&str> {
        self.string(":error-code")
    }

    /// `:error-message` of an error message.
    pub(crate) fn error_message(&self) -> Option<&str> {
        self.string(":error-message")
    }
}

/// Why bytes are no event stream (or a message cannot be encoded as one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// A message longer than the limit.
    #[error("event-stream message of {len} bytes is over the limit of {max}")]
    TooLong {
        /// Its declared (or, encoding, actual) length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A prelude whose lengths cannot describe a message.
    #[error("event-stream prelude is invalid: {0}")]
    Prelude(String),
    /// The prelude's checksum does not match.
    #[error("event-stream prelude checksum mismatch")]
    PreludeCrc,
    /// The message's checksum does not match.
    #[error("event-stream message checksum mismatch")]
    MessageCrc,
    /// A header that cannot be read (or written).
    #[error("event-stream header: {0}")]
    Header(String),
    /// The stream ended inside a message.
    #[error("event stream ended inside a message ({0} bytes left over)")]
    Truncated(usize),
}

/// Reads messages from chunks of bytes split anywhere: [`Decoder::push`] each chunk, then take
/// messages with [`Iterator::next`] until `None`; at the end of the stream, [`Decoder::finish`]
/// says whether it ended between messages.
#[derive(Debug)]
pub(crate) struct Decoder {
    buf: BytesMut,
    max: usize,
    failed: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder refusing messages over [`MAX_MESSAGE_LEN`].
    pub(crate) fn new() -> Self {
        Decoder::with_max(MAX_MESSAGE_LEN)
    }

    /// A decoder refusing messages over `max` bytes.
    pub(crate) fn with_max(max: usize) -> Self {
        Decoder { buf: BytesMut::new(), max, failed: false }
    }

    /// Adds the next bytes of the stream.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Whether the stream ended cleanly, between two messages (call once there are no more bytes
    /// and `next` has returned `None`).
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(FrameError::Truncated(n)),
        }
    }

    fn decode(&mut self) -> Result<Option<Message>, FrameError> {
        if self.buf.len() < PRELUDE_LEN {
            return Ok(None);
        }
        let total = be32(&self.buf[0..4]) as usize;
        let headers_len = be32(&self.buf[4..8]) as usize;
        // before any length is trusted (and waited for)
        if crc32fast::hash(&self.buf[..8]) != be32(&self.buf[8..12]) {
            return Err(FrameError::PreludeCrc);
        }
        if total > self.max {
            return Err(FrameError::TooLong { len: total, max: self.max });
        }
        if total < PRELUDE_LEN + CRC_LEN || headers_len > total - PRELUDE_LEN - CRC_LEN {
            return Err(FrameError::Prelude(format!("{headers_len} bytes of headers in a message of {total}")));
        }
        if headers_len > MAX_HEADERS_LEN {
            return Err(FrameError::Prelude(format!("{headers_len} bytes of headers, over {MAX_HEADERS_LEN}")));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        let body_end = total - CRC_LEN;
        if crc32fast::hash(&frame[..body_end]) != be32(&frame[body_end..]) {
            return Err(FrameError::MessageCrc);
        }
        let headers = parse_headers(frame.slice(PRELUDE_LEN..PRELUDE_LEN + headers_len))?;
        Ok(Some(Message { headers, payload: frame.slice(PRELUDE_LEN + headers_len..body_end) }))
    }
}

impl Iterator for Decoder {
    type Item = Result<Message, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.decode() {
            Ok(message) => message.map(Ok),
            Err(e) => {
                self.failed = true;
                self.buf = BytesMut::new();
                Some(Err(e))
            }
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&b[..4]);
    u32::from_be_bytes(word)
}

fn parse_headers(mut b: Bytes) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    let short = |what: &str| FrameError::Header(format!("{what} runs past the headers"));
    let mut headers: Vec<(String, HeaderValue)> = Vec::new();
    while b.has_remaining() {
        let name_len = usize::from(b.get_u8());
        if b.remaining() < name_len {
            return Err(short("a header name"));
        }
        let name = String::from_utf8(b.split_to(name_len).to_vec())
            .map_err(|_| FrameError::Header("a header name is not UTF-8".to_owned()))?;
        if !b.has_remaining() {
            return Err(short(&name));
        }
        let fixed = |b: &Bytes, n: usize| if b.remaining() < n { Err(short(&name)) } else { Ok(()) };
        let value = match b.get_u8() {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => fixed(&b, 1).map(|_| HeaderValue::Byte(b.get_i8()))?,
            3 => fixed(&b, 2).map(|_| HeaderValue::Int16(b.get_i16()))?,
            4 => fixed(&b, 4).map(|_| HeaderValue::Int32(b.get_i32()))?,
            5 => fixed(&b, 8).map(|_| HeaderValue::Int64(b.get_i64()))?,
            8 => fixed(&b, 8).map(|_| HeaderValue::Timestamp(b.get_i64()))?,
            9 => {
                fixed(&b, 16)?;
                let mut uuid = [0; 16];
                b.copy_to_slice(&mut uuid);
                HeaderValue::Uuid(uuid)
            }
            kind @ (6 | 7) => {
                fixed(&b, 2)?;
                let len = usize::from(b.get_u16());
                fixed(&b, len)?;
                let bytes = b.split_to(len);
                if kind == 6 {
                    HeaderValue::Bytes(bytes)
                } else {
                    let s = String::from_utf8(bytes.to_vec())
                        .map_err(|_| FrameError::Header(format!("{name} is not UTF-8")))?;
                    HeaderValue::String(s)
                }
            }
            kind => return Err(FrameError::Header(format!("{name} has unknown type {kind}"))),
        };
        // as botocore: with two, which one a reader sees would depend on the reader
        if headers.iter().any(|(n, _)| *n == name) {
            return Err(FrameError::Header(format!("{name} is given twice")));
        }
        headers.push((name, value));
    }
    Ok(headers)
}

/// One message: `headers` in this order, then `payload`.
pub(crate) fn encode(headers: &[(&str, HeaderValue)], payload: &[u8]) -> Result<Bytes, FrameError> {
    let mut encoded = BytesMut::new();
    for (name, value) in headers {
        let name_len = u8::try_from(name.len())
            .map_err(|_| FrameError::Header(format!("a header name of {} bytes is over 255", name.len())))?;
        encoded.put_u8(name_len);
        encoded.put_slice(name.as_bytes());
        let variable = |kind: u8, bytes: &[u8], encoded: &mut BytesMut| {
            let len = u16::try_from(bytes.len())
                .map_err(|_| FrameError::Header(format!("{name}'s value of {} bytes is over 65535", bytes.len())))?;
            encoded.put_u8(kind);
            encoded.put_u16(len);
            encoded.put_slice(bytes);
            Ok::<_, FrameError>(())
        };
        match value {
            HeaderValue::Bool(true) => encoded.put_u8(0),
            HeaderValue::Bool(false) => encoded.put_u8(1),
            HeaderValue::Byte(v) => {
                encoded.put_u8(2);
                encoded.put_i8(*v);
            }
            HeaderValue::Int16(v) => {
                encoded.put_u8(3);
                encoded.put_i16(*v);
            }
            HeaderValue::Int32(v) => {
                encoded.put_u8(4);
                encoded.put_i32(*v);
            }
            HeaderValue::Int64(v) => {
                encoded.put_u8(5);
                encoded.put_i64(*v);
            }
            HeaderValue::Bytes(v) => variable(6, v, &mut encoded)?,
            HeaderValue::String(v) => variable(7, v.as_bytes(), &mut encoded)?,
            HeaderValue::Timestamp(v) => {
                encoded.put_u8(8);
                encoded.put_i64(*v);
            }
            HeaderValue::Uuid(v) => {
                encoded.put_u8(9);
                encoded.put_slice(v);
            }
        }
    }
    if encoded.len() > MAX_HEADERS_LEN {
        return Err(FrameError::Header(format!("{} bytes of headers, over {MAX_HEADERS_LEN}", encoded.len())));
    }
    let total = PRELUDE_LEN + encoded.len() + payload.len() + CRC_LEN;
    if total > MAX_MESSAGE_LEN {
        return Err(FrameError::TooLong { len: total, max: MAX_MESSAGE_LEN });
    }
    let mut out = BytesMut::with_capacity(total);
    // both fit a u32: they are under MAX_MESSAGE_LEN
    out.put_u32(total as u32);
    out.put_u32(encoded.len() as u32);
    out.put_u32(crc32fast::hash(&out[..8]));
    out.put_slice(&encoded);
    out.put_slice(payload);
    out.put_u32(crc32fast::hash(&out));
    Ok(out.freeze())
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Chunk {
    bytes: String,
}

/// The Anthropic stream event a Bedrock `chunk` event carries: its payload is
/// `{"bytes":"<base64 of the event's JSON>","p":"<padding>"}`.
pub(crate) fn chunk_event(payload: &[u8]) -> Result<Vec<u8>, String> {
    let chunk: Chunk =
        serde_json::from_slice(payload).map_err(|e| format!("a Bedrock chunk is not {{\"bytes\": …}}: {e}"))?;
    base64::engine::general_purpose::STANDARD
        .decode(chunk.bytes.as_bytes())
        .map_err(|e| format!("a Bedrock chunk's bytes are not base64: {e}"))
}

/// The payload of a `chunk` event carrying `event` (without Bedrock's `p` padding, which readers
/// ignore).
pub(crate) fn chunk_payload(event: &[u8]) -> Vec<u8> {
    let bytes = base64::engine::general_purpose::STANDARD.encode(event);
    // a struct of one string member always serializes
    serde_json::to_vec(&Chunk { bytes }).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn decode_all(bytes: &[u8]) -> Vec<Result<Message, FrameError>> {
        let mut d = Decoder::new();
        d.push(bytes);
        d.collect()
    }

    fn string_headers(headers: &[(&str, &str)]) -> Vec<(String, HeaderValue)> {
        headers.iter().map(|(n, v)| (n.to_string(), HeaderValue::from(*v))).collect()
    }

    // From botocore's own decoder tests (tests/unit/test_eventstream.py), byte for byte.
    const BOTOCORE_EMPTY: &[u8] = b"\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2H\xeb}\x98\xc8\xff";
    const BOTOCORE_ONE_STRING_HEADER: &[u8] = b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent-type\x07\x00\x10application/json{'foo':'bar'}\x8d\x9c\x08\xb1";
    const BOTOCORE_ALL_HEADER_TYPES: &[u8] = b"\x00\x00\x00\x62\x00\x00\x00\x52\x03\xb5\xcb\x9c\
        \x010\x00\x011\x01\x012\x02\x02\x013\x03\x00\x03\
        \x014\x04\x00\x00\x00\x04\x015\x05\x00\x00\x00\x00\x00\x00\x00\x05\
        \x016\x06\x00\x05bytes\x017\x07\x00\x04utf8\
        \x018\x08\x00\x00\x00\x00\x00\x00\x00\x08\x019\x090123456789abcdef\
        \x63\x35\x36\x71";
    const BOTOCORE_ERROR: &[u8] = b"\x00\x00\x00\x52\x00\x00\x00\x42\xbf\x23\x63\x7e\
        \x0d:message-type\x07\x00\x05error\x0b:error-code\x07\x00\x04code\x0e:error-message\x07\x00\x07message\
        \x6b\x6c\xea\x3d";
    const BOTOCORE_NEGATIVE_INT8: &[u8] = b"\x00\x00\x00\x17\x00\x00\x00\x07)\x86\x01X\x04byte\x02\xff\xc2\xf8i\xdc";
    const BOTOCORE_DUPLICATE_HEADER: &[u8] =
        b"\x00\x00\x00\x24\x00\x00\x00\x14\x4b\xb9\x82\xd0\x04test\x04asdf\x04test\x04asdf\xf3\xf4\x75\x63";

    // Generated by scripts/aws-vectors.py: built from the format's description in Python and
    // decoded by botocore's EventStreamBuffer to these headers and payloads.
    const CHUNK_FRAME: &str = "000001ca0000004becd564ae0b3a6576656e742d747970650700056368756e6b0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b226279746573223a2265794a306558426c496a6f696257567a6332466e5a56397a6447467964434973496d316c63334e685a3255694f6e7369615751694f694a7463326466596d5279613138774d534973496e5235634755694f694a745a584e7a5957646c49697769636d39735a534936496d467a63326c7a6447467564434973496d31765a475673496a6f69593278686457526c4c584e76626d356c644330304c5455744d6a41794e5441354d6a6b694c434a6a623235305a573530496a70625853776963335276634639795a57467a623234694f6d353162477773496e4e30623342666332567864575675593255694f6d353162477773496e567a5957646c496a7037496d6c75634856305833527661325675637949364f43776962335630634856305833527661325675637949364d58313966513d3d222c2270223a226162636465666768696a6b6c6d6e6f707172737475767778797a4142434445464748494a4b4c4d4e4f505152227dae3d6bdb";
    const CHUNK_PAYLOAD: &str = "{\"bytes\":\"eyJ0eXBlIjoibWVzc2FnZV9zdGFydCIsIm1lc3NhZ2UiOnsiaWQiOiJtc2dfYmRya18wMSIsInR5cGUiOiJtZXNzYWdlIiwicm9sZSI6ImFzc2lzdGFudCIsIm1vZGVsIjoiY2xhdWRlLXNvbm5ldC00LTUtMjAyNTA5MjkiLCJjb250ZW50IjpbXSwic3RvcF9yZWFzb24iOm51bGwsInN0b3Bfc2VxdWVuY2UiOm51bGwsInVzYWdlIjp7ImlucHV0X3Rva2VucyI6OCwib3V0cHV0X3Rva2VucyI6MX19fQ==\",\"p\":\"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR\"}";
    const CHUNK_INNER: &str = "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_bdrk_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":8,\"output_tokens\":1}}}";
    const THROTTLING_FRAME: &str = "000000b2000000613590d5d30f3a657863657074696f6e2d747970650700137468726f74746c696e67457863657074696f6e0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d74797065070009657863657074696f6e7b226d657373616765223a22546f6f206d616e792072657175657374732c20706c656173652077616974206265666f726520747279696e6720616761696e2e227de8ffb26a";
    const THROTTLING_PAYLOAD: &str = "{\"message\":\"Too many requests, please wait before trying again.\"}";

    #[test]
    fn decodes_botocores_test_frames() {
        let messages: Vec<Message> = [
            BOTOCORE_EMPTY,
            BOTOCORE_ONE_STRING_HEADER,
            BOTOCORE_ALL_HEADER_TYPES,
            BOTOCORE_ERROR,
            BOTOCORE_NEGATIVE_INT8,
        ]
        .concat()
        .chunks(7)
        .fold(Decoder::new(), |mut d, c| {
            d.push(c);
            d
        })
        .map(Result::unwrap)
        .collect();
        assert_eq!(messages.len(), 5);
        assert_eq!(messages[0], Message { headers: vec![], payload: Bytes::new() });
        assert_eq!(messages[1].content_type(), None); // `content-type`, not `:content-type`
        assert_eq!(messages[1].string("content-type"), Some("application/json"));
        assert_eq!(&messages[1].payload[..], b"{'foo':'bar'}");
        let all = vec![
            ("0", HeaderValue::Bool(true)),
            ("1", HeaderValue::Bool(false)),
            ("2", HeaderValue::Byte(2)),
            ("3", HeaderValue::Int16(3)),
            ("4", HeaderValue::Int32(4)),
            ("5", HeaderValue::Int64(5)),
            ("6", HeaderValue::Bytes(Bytes::from_static(b"bytes"))),
            ("7", HeaderValue::from("utf8")),
            ("8", HeaderValue::Timestamp(8)),
            ("9", HeaderValue::Uuid(*b"0123456789abcdef")),
        ];
        let named: Vec<(String, HeaderValue)> = all.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
        assert_eq!(messages[2].headers, named);
        assert_eq!((messages[3].message_type(), messages[3].error_code()), (Some("error"), Some("code")));
        assert_eq!(messages[3].error_message(), Some("message"));
        assert_eq!(messages[4].header("byte"), Some(&HeaderValue::Byte(-1)));
        // and the encoder writes them byte for byte
        assert_eq!(&encode(&[], b"").unwrap()[..], BOTOCORE_EMPTY);
        assert_eq!(&encode(&all, b"").unwrap()[..], BOTOCORE_ALL_HEADER_TYPES);
        let error =
            [(":message-type", "error".into()), (":error-code", "code".into()), (":error-message", "message".into())];
        assert_eq!(&encode(&error, b"").unwrap()[..], BOTOCORE_ERROR);
    }

    #[test]
    fn bedrock_frames_match_botocore() {
        let chunk = unhex(CHUNK_FRAME);
        let headers = [
            (":event-type", "chunk".into()),
            (":content-type", "application/json".into()),
            (":message-type", "event".into()),
        ];
        assert_eq!(encode(&headers, CHUNK_PAYLOAD.as_bytes()).unwrap(), chunk);
        let decoded = decode_all(&chunk);
        let [Ok(m)] = &decoded[..] else { panic!("one message: {decoded:?}") };
        assert_eq!(
            (m.message_type(), m.event_type(), m.content_type()),
            (Some("event"), Some("chunk"), Some("application/json"))
        );
        assert_eq!(chunk_event(&m.payload).unwrap(), CHUNK_INNER.as_bytes());
        let event = chunk_event(&chunk_payload(CHUNK_INNER.as_bytes())).unwrap();
        assert_eq!(event, CHUNK_INNER.as_bytes());

        let throttling = unhex(THROTTLING_FRAME);
        let headers = [
            (":exception-type", "throttlingException".into()),
            (":content-type", "application/json".into()),
            (":message-type", "exception".into()),
        ];
        assert_eq!(encode(&headers, THROTTLING_PAYLOAD.as_bytes()).unwrap(), throttling);
        let decoded = decode_all(&throttling);
        let [Ok(m)] = &decoded[..] else { panic!("one message: {decoded:?}") };
        assert_eq!((m.message_type(), m.exception_type()), (Some("exception"), Some("throttlingException")));
        assert_eq!(
            m.headers,
            string_headers(&[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception")
            ])
        );
    }

    #[test]
    fn corrupt_frames_are_errors_and_end_the_stream() {
        let one = BOTOCORE_ONE_STRING_HEADER;
        // botocore's negative cases: a length, a header byte, a payload byte changed
        let mut length = one.to_vec();
        length[0] = 1;
        let mut header = one.to_vec();
        header[20] = b'+';
        let mut payload = one.to_vec();
        payload[52] = 0x8d;
        let mut crc = one.to_vec();
        *crc.last_mut().unwrap() ^= 1;
        for (bytes, error) in [
            (length, FrameError::PreludeCrc),
            (header, FrameError::MessageCrc),
            (payload, FrameError::MessageCrc),
            (crc, FrameError::MessageCrc),
        ] {
            let mut d = Decoder::new();
            d.push(&bytes);
            d.push(BOTOCORE_EMPTY);
            assert_eq!(d.next(), Some(Err(error)));
            // framing lost: nothing after it is read, nothing more is kept
            d.push(BOTOCORE_EMPTY);
            assert_eq!(d.next(), None);
            assert_eq!(d.finish(), Ok(()));
        }
        assert!(
            matches!(&decode_all(BOTOCORE_DUPLICATE_HEADER)[..], [Err(FrameError::Header(m))] if m == "test is given twice")
        );
    }

    /// A prelude with a valid checksum, declaring these lengths.
    fn prelude(total: u32, headers: u32) -> Vec<u8> {
        let mut p = [total.to_be_bytes(), headers.to_be_bytes()].concat();
        p.extend(crc32fast::hash(&p).to_be_bytes());
        p
    }

    #[test]
    fn lengths_are_checked_before_any_wait() {
        // a declared length over the limit is refused from the prelude alone
        let mut d = Decoder::new();
        d.push(&prelude(u32::MAX, 0));
        assert_eq!(d.next(), Some(Err(FrameError::TooLong { len: u32::MAX as usize, max: MAX_MESSAGE_LEN })));
        let mut d = Decoder::with_max(64);
        d.push(&prelude(65, 0));
        assert_eq!(d.next(), Some(Err(FrameError::TooLong { len: 65, max: 64 })));
        for (total, headers) in [(15, 0), (16, 1), (0, 0), (100, 200_000)] {
            let mut d = Decoder::new();
            d.push(&prelude(total, headers));
            assert!(matches!(d.next(), Some(Err(FrameError::Prelude(_)))), "{total} {headers}");
        }
        // botocore's over-long headers length, checksums valid
        let invalid_headers_length = b"\x00\x00\x00\x3d\xff\x00\x01\x02\x15\x83\xf5\xc2";
        let mut d = Decoder::new();
        d.push(invalid_headers_length);
        assert!(matches!(d.next(), Some(Err(FrameError::Prelude(_)))));
    }

    #[test]
    fn a_stream_cut_inside_a_message_is_truncated() {
        let mut d = Decoder::new();
        d.push(&BOTOCORE_ONE_STRING_HEADER[..30]);
        assert_eq!(d.next(), None);
        assert_eq!(d.finish(), Err(FrameError::Truncated(30)));
        d.push(&BOTOCORE_ONE_STRING_HEADER[30..]);
        assert!(matches!(d.next(), Some(Ok(_))));
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn malformed_headers_are_errors() {
        // each a headers section with valid checksums around it
        for (headers, why) in [
            (&b"\x04name"[..], "name runs past the headers"),
            (b"\x04na", "a header name runs past the headers"),
            (b"\x01a\x07\x00\x05abc", "a runs past the headers"),
            (b"\x01a\x04\x00\x00", "a runs past the headers"),
            (b"\x01a\x0a", "a has unknown type 10"),
            (b"\x01a\x07\x00\x01\xff", "a is not UTF-8"),
            (b"\x01\xff\x00", "a header name is not UTF-8"),
        ] {
            let total = (PRELUDE_LEN + headers.len() + CRC_LEN) as u32;
            let mut frame = prelude(total, headers.len() as u32);
            frame.extend_from_slice(headers);
            frame.extend(crc32fast::hash(&frame).to_be_bytes());
            assert_eq!(decode_all(&frame), vec![Err(FrameError::Header(why.to_owned()))], "{headers:?}");
        }
    }

    #[test]
    fn what_cannot_be_framed_is_refused() {
        let long = "x".repeat(256);
        assert!(matches!(encode(&[(long.as_str(), HeaderValue::Bool(true))], b""), Err(FrameError::Header(_))));
        let big = HeaderValue::String("x".repeat(65_536));
        assert!(matches!(encode(&[("a", big)], b""), Err(FrameError::Header(_))));
        assert!(matches!(encode(&[], &vec![0; MAX_MESSAGE_LEN]), Err(FrameError::TooLong { .. })));
        assert!(chunk_event(b"{\"bytes\":\"not base64!\"}").unwrap_err().contains("base64"));
        assert!(chunk_event(b"{\"p\":\"x\"}").unwrap_err().contains("bytes"));
    }

    fn arb_value() -> impl Strategy<Value = HeaderValue> {
        prop_oneof![
            any::<bool>().prop_map(HeaderValue::Bool),
            any::<i8>().prop_map(HeaderValue::Byte),
            any::<i16>().prop_map(HeaderValue::Int16),
            any::<i32>().prop_map(HeaderValue::Int32),
            any::<i64>().prop_map(HeaderValue::Int64),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| HeaderValue::Bytes(b.into())),
            ".{0,20}".prop_map(HeaderValue::String),
            any::<i64>().prop_map(HeaderValue::Timestamp),
            any::<[u8; 16]>().prop_map(HeaderValue::Uuid),
        ]
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            proptest::collection::btree_map("[:a-z-]{1,12}", arb_value(), 0..6),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(headers, payload)| Message { headers: headers.into_iter().collect(), payload: payload.into() })
    }

    proptest! {
        /// However the bytes of a stream are split, the same messages come out, and the stream
        /// ends cleanly.
        #[test]
        fn any_split_decodes_to_the_same_messages(
            messages in proptest::collection::vec(arb_message(), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut stream = Vec::new();
            for m in &messages {
                let headers: Vec<(&str, HeaderValue)> = m.headers.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
                stream.extend_from_slice(&encode(&headers, &m.payload).unwrap());
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            cuts.push(0);
            cuts.push(stream.len());
            cuts.sort_unstable();
            let mut d = Decoder::new();
            let mut decoded = Vec::new();
            for w in cuts.windows(2) {
                d.push(&stream[w[0]..w[1]]);
                decoded.extend(d.by_ref().map(Result::unwrap));
            }
            prop_assert_eq!(decoded, messages);
            prop_assert_eq!(d.finish(), Ok(()));
        }

        /// Arbitrary bytes never panic the decoder, and it never keeps more than it was given.
        #[test]
        fn any_bytes_are_read_without_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut d = Decoder::with_max(128);
            d.push(&bytes);
            for _ in d.by_ref() {}
            prop_assert!(d.buf.len() <= bytes.len());
        }
    }
}
