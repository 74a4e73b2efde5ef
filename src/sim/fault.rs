//! Scripted faults for the simulated providers: what goes wrong, for which requests, how often.

use serde::{Deserialize, Serialize};

use crate::duration::DurationStr;
use crate::provider::Protocol;

/// One scripted fault and the requests it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Only requests on this wire (`openai` at `/v1`, `anthropic` at `/anthropic/v1`); `None`: both.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// Only requests for this model; `None`: every model.
    #[serde(default)]
    pub model: Option<String>,
    /// Which of the matching requests it hits.
    #[serde(default)]
    pub when: When,
    /// What happens to them.
    pub fault: Fault,
}

impl FaultRule {
    /// A rule that hits every request on `protocol` with `fault`.
    pub fn new(protocol: Protocol, fault: Fault) -> Self {
        FaultRule { protocol: Some(protocol), model: None, when: When::Always, fault }
    }

    /// Restricts the rule to one model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Only the first `n` matching requests ("fail the first 2").
    pub fn first(mut self, n: u32) -> Self {
        self.when = When::First { count: n };
        self
    }

    /// Each matching request with probability `rate` (0..=1).
    pub fn rate(mut self, rate: f64) -> Self {
        self.when = When::Rate { rate };
        self
    }
}

/// Which matching requests a rule hits.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum When {
    /// Every one.
    #[default]
    Always,
    /// The first `count` (then the rule is spent).
    First {
        /// How many.
        count: u32,
    },
    /// Each with probability `rate`.
    Rate {
        /// 0..=1.
        rate: f64,
    },
}

/// What goes wrong. Variants that only say what happens to a stream (`Stall`, `Cut`, `MalformedChunk`,
/// `StreamError`, `NoDone`) match streaming requests only (see [`Fault::streaming_only`]); a stream's
/// "tokens" are its content deltas (text words, or pieces of a tool call's arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// An HTTP error with the provider's real error body for that status (OpenAI
    /// `{"error":{message,type,param,code}}`, Anthropic `{"type":"error","error":{type,message},"request_id"}`).
    /// `error_type`, `code` and `message` override the defaults chosen from the status.
    Status {
        /// HTTP status.
        status: u16,
        /// Provider error type (`rate_limit_error`, `insufficient_quota`, ...).
        #[serde(default)]
        error_type: Option<String>,
        /// Provider error code (OpenAI `code`).
        #[serde(default)]
        code: Option<String>,
        /// Error message.
        #[serde(default)]
        message: Option<String>,
        /// `retry-after` header value, verbatim (seconds or an HTTP-date).
        #[serde(default)]
        retry_after: Option<String>,
        /// `retry-after-ms` header value, verbatim.
        #[serde(default)]
        retry_after_ms: Option<String>,
        /// `x-should-retry` header.
        #[serde(default)]
        should_retry: Option<bool>,
    },
    /// A raw body (an HTML page from a proxy, truncated JSON, an empty body).
    RawBody {
        /// HTTP status.
        status: u16,
        /// `content-type`.
        content_type: String,
        /// The body, verbatim.
        body: String,
    },
    /// Wait this long before the response headers, then answer normally.
    Latency {
        /// The delay.
        delay: DurationStr,
    },
    /// Streaming: headers and the preamble at once (Anthropic `message_start`, the first
    /// `content_block_start` and a `ping`; OpenAI's role chunk), then wait this long before the
    /// first content, as a real server that is slow to think does. Non-streaming: like
    /// [`Fault::Latency`].
    SlowFirstToken {
        /// The delay.
        delay: DurationStr,
    },
    /// Streaming: send `after_tokens` tokens, then go silent for `duration` (then continue).
    Stall {
        /// Tokens sent before the stall.
        after_tokens: usize,
        /// How long the stall lasts.
        duration: DurationStr,
    },
    /// Streaming: send `after_tokens` tokens, then close the connection without the terminal event.
    Cut {
        /// Tokens sent before the cut.
        after_tokens: usize,
    },
    /// Streaming: after `after_tokens` tokens, one event whose data is not valid JSON (the wire's own
    /// event for the next token, cut short), then the rest of the answer as usual.
    MalformedChunk {
        /// Tokens sent before the bad chunk.
        after_tokens: usize,
    },
    /// Streaming: after `after_tokens` tokens, an in-stream error event in the provider's dialect
    /// (OpenAI `data: {"error":{..}}`, Anthropic `event: error`), then the connection closes.
    StreamError {
        /// Tokens sent before the error.
        after_tokens: usize,
        /// Error type; default `server_error` (OpenAI) / `overloaded_error` (Anthropic).
        #[serde(default)]
        error_type: Option<String>,
    },
    /// OpenAI streaming: the last chunk has a `finish_reason` (and usage), but `[DONE]` never comes
    /// and the connection stays open. Anthropic streaming: the whole stream up to `message_stop`,
    /// then the connection stays open.
    NoDone,
    /// Accept the connection, then close it before any response headers.
    Reset,
    /// Accept the request and never answer.
    Hang,
}

impl Fault {
    /// The variant's name as written in JSON and TOML (`status`, `reset`, `no_done`, ...), which is
    /// also what the request log records as the fault applied.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Status { .. } => "status",
            Fault::RawBody { .. } => "raw_body",
            Fault::Latency { .. } => "latency",
            Fault::SlowFirstToken { .. } => "slow_first_token",
            Fault::Stall { .. } => "stall",
            Fault::Cut { .. } => "cut",
            Fault::MalformedChunk { .. } => "malformed_chunk",
            Fault::StreamError { .. } => "stream_error",
            Fault::NoDone => "no_done",
            Fault::Reset => "reset",
            Fault::Hang => "hang",
        }
    }

    /// Whether the fault only makes sense inside a stream. Such rules match streaming requests
    /// only, so a `First { count }` rule is not spent on non-streaming calls it could not affect.
    pub fn streaming_only(&self) -> bool {
        matches!(
            self,
            Fault::Stall { .. }
                | Fault::Cut { .. }
                | Fault::MalformedChunk { .. }
                | Fault::StreamError { .. }
                | Fault::NoDone
        )
    }

    /// An HTTP error status with the provider's default body for it.
    pub fn status(status: u16) -> Self {
        Fault::Status {
            status,
            error_type: None,
            code: None,
            message: None,
            retry_after: None,
            retry_after_ms: None,
            should_retry: None,
        }
    }

    /// An HTTP error status with a `retry-after` header (seconds).
    pub fn status_retry_after(status: u16, retry_after: impl Into<String>) -> Self {
        Fault::Status {
            status,
            error_type: None,
            code: None,
            message: None,
            retry_after: Some(retry_after.into()),
            retry_after_ms: None,
            should_retry: None,
        }
    }

    /// An HTTP error status with a specific provider error type and code.
    pub fn typed(status: u16, error_type: impl Into<String>, code: Option<&str>) -> Self {
        Fault::Status {
            status,
            error_type: Some(error_type.into()),
            code: code.map(str::to_owned),
            message: None,
            retry_after: None,
            retry_after_ms: None,
            should_retry: None,
        }
    }
}
