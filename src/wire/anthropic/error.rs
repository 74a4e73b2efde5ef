//! Anthropic's error envelope both ways, and its error types with the HTTP status each comes with
//! and the class it means: the one table the adapter (classifying), the gateway (answering its
//! callers) and the simulator (failing on purpose) share.

use serde_json::{Value, json};

use crate::error::ErrorClass;

/// One error type of the Messages API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorType {
    /// `error.type`.
    pub(crate) name: &'static str,
    /// The status it comes with.
    pub(crate) status: u16,
    /// What it means.
    pub(crate) class: ErrorClass,
}

const fn row(name: &'static str, status: u16, class: ErrorClass) -> ErrorType {
    ErrorType { name, status, class }
}

/// Every error type Anthropic documents.
pub(crate) const ERROR_TYPES: [ErrorType; 10] = [
    row("invalid_request_error", 400, ErrorClass::InvalidRequest),
    row("authentication_error", 401, ErrorClass::Authentication),
    row("billing_error", 402, ErrorClass::QuotaExhausted),
    row("permission_error", 403, ErrorClass::PermissionDenied),
    row("not_found_error", 404, ErrorClass::NotFound),
    row("request_too_large", 413, ErrorClass::RequestTooLarge),
    row("rate_limit_error", 429, ErrorClass::RateLimited),
    row("api_error", 500, ErrorClass::ServerError),
    row("timeout_error", 504, ErrorClass::Timeout),
    row("overloaded_error", 529, ErrorClass::Overloaded),
];

/// The class `error.type` names; `None` for a type this table does not know. An
/// `invalid_request_error` may still be a context overflow or a refusal: only its message says.
pub(crate) fn class_of_type(name: &str) -> Option<ErrorClass> {
    ERROR_TYPES.iter().find(|t| t.name == name).map(|t| t.class)
}

/// The type a failure of `class` is reported as: its own row, else the nearest (a context
/// overflow or a refusal is an invalid request; transport breakage is an `api_error`).
pub(crate) fn type_for_class(class: ErrorClass) -> &'static str {
    // the gateway's own refusal, which no provider sends: a rate limit to an Anthropic client
    if class == ErrorClass::BudgetExhausted {
        return "rate_limit_error";
    }
    match ERROR_TYPES.iter().find(|t| t.class == class) {
        Some(t) => t.name,
        None if matches!(class, ErrorClass::ContextLengthExceeded | ErrorClass::ContentFiltered) => {
            "invalid_request_error"
        }
        None => "api_error",
    }
}

/// The type Anthropic sends with `status`.
pub(crate) fn type_for_status(status: u16) -> &'static str {
    match ERROR_TYPES.iter().find(|t| t.status == status) {
        Some(t) => t.name,
        None if status >= 500 => "api_error",
        None => "invalid_request_error",
    }
}

/// The error envelope, `{"type": "error", "error": {"type", "message"}, "request_id"}`, the
/// request id where the writer has one to give (Anthropic's own servers always do; the gateway
/// adds its own member after these).
pub(crate) fn envelope(kind: &str, message: &str, request_id: Option<&str>) -> Value {
    let mut body = json!({"type": "error", "error": {"type": kind, "message": message}});
    if let Some(id) = request_id {
        body["request_id"] = json!(id);
    }
    body
}

/// What an error envelope says, as far as it can be read.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ErrorBody {
    /// `error.type`.
    pub(crate) error_type: Option<String>,
    /// `error.message` (or a bare `message`).
    pub(crate) message: Option<String>,
    /// The body's `request_id`.
    pub(crate) request_id: Option<String>,
}

impl ErrorBody {
    /// `None` when the body is not a JSON object.
    pub(crate) fn parse(body: &[u8]) -> Option<ErrorBody> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let object = value.as_object()?;
        let error = object.get("error");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        Some(ErrorBody {
            error_type: text(error.and_then(|e| e.get("type"))),
            message: text(error.and_then(|e| e.get("message")))
                .or_else(|| text(error))
                .or_else(|| text(object.get("message"))),
            request_id: text(object.get("request_id")),
        })
    }
}

/// The class Anthropic's `error.type` names, told apart by `message` where only it says; `None`
/// for a type this table does not know.
pub(crate) fn class_for_type(error_type: &str, message: &str) -> Option<ErrorClass> {
    match class_of_type(error_type)? {
        ErrorClass::InvalidRequest => Some(invalid_request_class(message)),
        class => Some(class),
    }
}

/// Anthropic has no error codes: context overflow and content refusals are 400
/// `invalid_request_error`s told apart only by their message.
fn invalid_request_class(message: &str) -> ErrorClass {
    const CONTEXT: [&str; 4] = ["prompt is too long", "exceed context limit", "context window", "context length"];
    const CONTENT: [&str; 5] = ["content policy", "content filtering", "usage policy", "usage policies", "safety"];
    let lower = message.to_lowercase();
    if CONTEXT.iter().any(|p| lower.contains(p)) {
        ErrorClass::ContextLengthExceeded
    } else if CONTENT.iter().any(|p| lower.contains(p)) {
        ErrorClass::ContentFiltered
    } else {
        ErrorClass::InvalidRequest
    }
}

/// The class a status implies when the body does not say.
pub(crate) fn class_for_status(status: u16) -> ErrorClass {
    match status {
        401 => ErrorClass::Authentication,
        402 => ErrorClass::QuotaExhausted,
        403 => ErrorClass::PermissionDenied,
        404 => ErrorClass::NotFound,
        408 | 504 => ErrorClass::Timeout,
        413 => ErrorClass::RequestTooLarge,
        429 => ErrorClass::RateLimited,
        503 | 529 => ErrorClass::Overloaded,
        400..=499 => ErrorClass::InvalidRequest,
        500..=599 => ErrorClass::ServerError,
        // an unfollowed redirect or an informational status: not a Messages API answer
        _ => ErrorClass::MalformedResponse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_a_type_and_every_type_its_class_back() {
        for t in ERROR_TYPES {
            assert_eq!(class_of_type(t.name), Some(t.class));
            assert_eq!(type_for_class(t.class), t.name);
            assert_eq!(type_for_status(t.status), t.name);
        }
        assert_eq!(type_for_class(ErrorClass::ContextLengthExceeded), "invalid_request_error");
        assert_eq!(type_for_class(ErrorClass::StreamInterrupted), "api_error");
        assert_eq!(type_for_status(503), "api_error");
        assert_eq!(type_for_status(422), "invalid_request_error");
    }

    #[test]
    fn the_envelope_carries_a_request_id_where_there_is_one() {
        let error = json!({"type": "api_error", "message": "Internal server error"});
        assert_eq!(envelope("api_error", "Internal server error", None), json!({"type": "error", "error": error}));
        assert_eq!(
            envelope("api_error", "Internal server error", Some("req_1")),
            json!({"type": "error", "error": error, "request_id": "req_1"})
        );
    }
}
