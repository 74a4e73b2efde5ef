//! OpenAI's error `type` and `code` for each class, with the HTTP status OpenAI sends them with:
//! the one table the gateway (answering its callers) and the simulator (failing on purpose) share,
//! and whose names the adapter's classifier looks for.

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
