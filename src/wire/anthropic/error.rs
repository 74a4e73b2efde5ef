//! Anthropic's error types, the HTTP status each comes with and the class it means: the one table
//! the adapter (classifying), the gateway (answering its callers) and the simulator (failing on
//! purpose) share.

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
}
