//! Which HTTP status a failure gets at the gateway.

use axum::http::StatusCode;

use crate::error::ErrorClass;

/// The status for a failure of `class`: 429 rate limits (with `Retry-After`), 503 overloaded,
/// 502 for upstream breakage, 504 timeouts, 400 for what the caller must change, 401/403/404 as
/// classified.
pub(crate) fn for_class(class: ErrorClass) -> StatusCode {
    use ErrorClass as C;
    match class {
        C::RateLimited | C::QuotaExhausted | C::BudgetExhausted => StatusCode::TOO_MANY_REQUESTS,
        C::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        C::ServerError | C::Connection | C::MalformedResponse | C::StreamInterrupted => StatusCode::BAD_GATEWAY,
        C::Timeout => StatusCode::GATEWAY_TIMEOUT,
        C::InvalidRequest | C::ContextLengthExceeded | C::ContentFiltered => StatusCode::BAD_REQUEST,
        C::Authentication => StatusCode::UNAUTHORIZED,
        C::PermissionDenied => StatusCode::FORBIDDEN,
        C::NotFound => StatusCode::NOT_FOUND,
        C::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(for_class(ErrorClass::RateLimited), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(for_class(ErrorClass::Overloaded), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(for_class(ErrorClass::ServerError), StatusCode::BAD_GATEWAY);
        assert_eq!(for_class(ErrorClass::Connection), StatusCode::BAD_GATEWAY);
        assert_eq!(for_class(ErrorClass::MalformedResponse), StatusCode::BAD_GATEWAY);
        assert_eq!(for_class(ErrorClass::Timeout), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(for_class(ErrorClass::ContextLengthExceeded), StatusCode::BAD_REQUEST);
        assert_eq!(for_class(ErrorClass::ContentFiltered), StatusCode::BAD_REQUEST);
        assert_eq!(for_class(ErrorClass::Authentication), StatusCode::UNAUTHORIZED);
        assert_eq!(for_class(ErrorClass::PermissionDenied), StatusCode::FORBIDDEN);
        assert_eq!(for_class(ErrorClass::NotFound), StatusCode::NOT_FOUND);
    }
}
