//! OpenAI's error envelope both ways, and its `type` and `code` for each class with the HTTP status
//! OpenAI sends them with: the one table the gateway (answering its callers) and the simulator
//! (failing on purpose) write from, and the one reading of it the adapter classifies with.

use serde_json::{Value, json};

use crate::error::ErrorClass;

/// How OpenAI reports one class of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorKind {
    /// What it means.
    pub(crate) class: ErrorClass,
    /// The status it comes with.
    pub(crate) status: u16,
    /// `error.type`.
    pub(crate) kind: &'static str,
    /// `error.code`.
    pub(crate) code: Option<&'static str>,
}

/// `code` of a context overflow.
pub(crate) const CONTEXT_LENGTH_EXCEEDED: &str = "context_length_exceeded";
/// `type` and `code` of a spent quota.
pub(crate) const INSUFFICIENT_QUOTA: &str = "insufficient_quota";
/// `code` of a content refusal.
pub(crate) const CONTENT_POLICY_VIOLATION: &str = "content_policy_violation";
/// `code` of a 429 rate limit.
pub(crate) const RATE_LIMIT_EXCEEDED: &str = "rate_limit_exceeded";
/// `code` of a 503 overload.
pub(crate) const OVERLOADED: &str = "overloaded";

const fn row(class: ErrorClass, status: u16, kind: &'static str, code: Option<&'static str>) -> ErrorKind {
    ErrorKind { class, status, kind, code }
}

/// One row per class OpenAI reports; the first row of a status is what that status means when
/// nothing else is known.
pub(crate) const ERROR_KINDS: [ErrorKind; 13] = [
    row(ErrorClass::InvalidRequest, 400, "invalid_request_error", None),
    row(ErrorClass::ContextLengthExceeded, 400, "invalid_request_error", Some(CONTEXT_LENGTH_EXCEEDED)),
    row(ErrorClass::ContentFiltered, 400, "invalid_request_error", Some(CONTENT_POLICY_VIOLATION)),
    row(ErrorClass::Authentication, 401, "invalid_request_error", Some("invalid_api_key")),
    row(ErrorClass::PermissionDenied, 403, "invalid_request_error", Some("permission_denied")),
    row(ErrorClass::NotFound, 404, "invalid_request_error", Some("model_not_found")),
    row(ErrorClass::RequestTooLarge, 413, "invalid_request_error", Some("request_too_large")),
    row(ErrorClass::RateLimited, 429, "requests", Some(RATE_LIMIT_EXCEEDED)),
    row(ErrorClass::QuotaExhausted, 429, INSUFFICIENT_QUOTA, Some(INSUFFICIENT_QUOTA)),
    // the gateway's own (no provider sends it): a 429 the SDKs treat as a rate limit
    row(ErrorClass::BudgetExhausted, 429, "budget_exhausted", Some("budget_exhausted")),
    row(ErrorClass::ServerError, 500, "server_error", None),
    row(ErrorClass::Overloaded, 503, "server_error", Some(OVERLOADED)),
    row(ErrorClass::Timeout, 504, "server_error", None),
];

/// How a failure of `class` is reported: its own row, else a `server_error` (transport breakage,
/// a cut stream, a malformed answer).
pub(crate) fn for_class(class: ErrorClass) -> ErrorKind {
    ERROR_KINDS.iter().find(|k| k.class == class).copied().unwrap_or(row(class, 502, "server_error", None))
}

/// What OpenAI sends with `status`: the first row of that status, else a `server_error` (5xx) or
/// an `invalid_request_error`.
pub(crate) fn for_status(status: u16) -> ErrorKind {
    match ERROR_KINDS.iter().find(|k| k.status == status) {
        Some(k) => *k,
        None if status >= 500 => row(ErrorClass::ServerError, status, "server_error", None),
        None => row(ErrorClass::InvalidRequest, status, "invalid_request_error", None),
    }
}

/// The error envelope, `{"error": {"message", "type", "param", "code"}}`, in OpenAI's order (the
/// gateway adds its own member after these).
pub(crate) fn envelope(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// The members of an error envelope a reader classifies by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    /// `message`.
    pub(crate) message: Option<String>,
    /// `type`.
    pub(crate) kind: Option<String>,
    /// `code` (a number some compatible servers send, as text).
    pub(crate) code: Option<String>,
}

impl ErrorBody {
    /// Reads `{"error":{...}}`, `{"error":"text"}` or a bare `{message,type,code}` (vLLM-style servers);
    /// `None` for anything else.
    pub(crate) fn parse(body: &[u8]) -> Option<ErrorBody> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let obj = value.as_object()?;
        match obj.get("error") {
            Some(Value::Object(e)) => Some(Self::from_fields(e)),
            Some(Value::String(s)) => Some(ErrorBody { message: Some(s.clone()), ..Self::from_fields(obj) }),
            _ if obj.contains_key("message") => Some(Self::from_fields(obj)),
            _ => None,
        }
    }

    /// Reads the value of an in-stream `error` field (an object, or a bare message).
    pub(crate) fn from_value(value: &Value) -> ErrorBody {
        match value {
            Value::Object(e) => Self::from_fields(e),
            Value::String(s) => ErrorBody { message: Some(s.clone()), ..ErrorBody::default() },
            other => ErrorBody { message: Some(other.to_string()), ..ErrorBody::default() },
        }
    }

    fn from_fields(obj: &serde_json::Map<String, Value>) -> ErrorBody {
        let text = |k: &str| match obj.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            // some compatible servers send numeric codes
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        ErrorBody { message: text("message"), kind: text("type"), code: text("code") }
    }

    /// Whether the type or the code is `name`.
    fn is(&self, name: &str) -> bool {
        self.kind.as_deref() == Some(name) || self.code.as_deref() == Some(name)
    }

    fn is_context_overflow(&self) -> bool {
        self.code.as_deref() == Some(CONTEXT_LENGTH_EXCEEDED)
            || self.message.as_deref().is_some_and(|m| m.to_ascii_lowercase().contains("maximum context length"))
    }

    fn is_content_filter(&self) -> bool {
        self.is(CONTENT_POLICY_VIOLATION) || self.is("content_filter")
    }

    fn is_rate_limit(&self) -> bool {
        // OpenAI's 429 types are `requests` / `tokens`; compatible servers use Anthropic's name
        [RATE_LIMIT_EXCEEDED, "rate_limit_error", "requests", "tokens"].iter().any(|n| self.is(n))
    }
}

/// The class of a non-2xx response with `body`.
pub(crate) fn class_for_status(status: u16, body: &ErrorBody) -> ErrorClass {
    match status {
        400 if body.is_context_overflow() => ErrorClass::ContextLengthExceeded,
        400 if body.is_content_filter() => ErrorClass::ContentFiltered,
        400 | 422 => ErrorClass::InvalidRequest,
        401 => ErrorClass::Authentication,
        402 => ErrorClass::QuotaExhausted,
        403 => ErrorClass::PermissionDenied,
        404 => ErrorClass::NotFound,
        408 | 504 => ErrorClass::Timeout,
        409 => ErrorClass::ServerError,
        413 => ErrorClass::RequestTooLarge,
        429 if body.is(INSUFFICIENT_QUOTA) => ErrorClass::QuotaExhausted,
        429 => ErrorClass::RateLimited,
        503 | 529 => ErrorClass::Overloaded,
        500..=599 => ErrorClass::ServerError,
        400..=499 => ErrorClass::InvalidRequest,
        // a 1xx/3xx that reqwest did not resolve: not an API answer at all (wrong base_url, captive proxy)
        _ => ErrorClass::MalformedResponse,
    }
}

/// The class of an `error` object inside a 200 stream.
pub(crate) fn class_in_stream(body: &ErrorBody) -> ErrorClass {
    if body.is_context_overflow() {
        ErrorClass::ContextLengthExceeded
    } else if body.is_content_filter() {
        ErrorClass::ContentFiltered
    } else if body.is(INSUFFICIENT_QUOTA) {
        ErrorClass::QuotaExhausted
    } else if body.is(OVERLOADED) || body.is("overloaded_error") {
        ErrorClass::Overloaded
    } else if body.is_rate_limit() {
        ErrorClass::RateLimited
    } else {
        ErrorClass::ServerError
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_one_row_and_statuses_their_first() {
        for k in ERROR_KINDS {
            assert_eq!(for_class(k.class), k);
            assert_eq!(ERROR_KINDS.iter().filter(|o| o.class == k.class).count(), 1);
        }
        assert_eq!(for_status(429).class, ErrorClass::RateLimited);
        assert_eq!(for_status(400).class, ErrorClass::InvalidRequest);
        assert_eq!(for_status(502).kind, "server_error");
        assert_eq!(for_class(ErrorClass::StreamInterrupted).kind, "server_error");
        assert_eq!(for_class(ErrorClass::StreamInterrupted).code, None);
    }
}
