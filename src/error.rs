//! The common error enum: every provider failure, whatever its dialect, becomes one [`ErrorClass`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::chat::Partial;

/// What kind of failure happened, independent of the provider's dialect.
///
/// Serialized in `snake_case` (`"rate_limited"`, `"overloaded"`, ...) in TOML and JSON. The set is
/// fixed: policies (`[on.CLASS]`), drills and reports name these variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// 429 rate limit (`rate_limit_error`, `rate_limit_exceeded`).
    RateLimited,
    /// The account's quota or credit is gone (429 `insufficient_quota`, 402 `billing_error`).
    QuotaExhausted,
    /// The provider is overloaded (529 `overloaded_error`, 503, in-stream `overloaded_error`).
    Overloaded,
    /// The provider failed internally (500, 502, in-stream `server_error` / `api_error`).
    ServerError,
    /// A client-side timeout (connect, first token, idle, attempt) or 408 / 504.
    Timeout,
    /// Connection refused, reset before headers, DNS or TLS failure.
    Connection,
    /// A stream ended without its terminal event or was dropped mid-stream.
    StreamInterrupted,
    /// A body or chunk that does not decode.
    MalformedResponse,
    /// 401: the API key is missing or wrong.
    Authentication,
    /// 403: the key may not use this resource.
    PermissionDenied,
    /// 404: usually an unknown model.
    NotFound,
    /// Any other 400 / 422.
    InvalidRequest,
    /// The prompt does not fit the model's context window.
    ContextLengthExceeded,
    /// The provider refused on content grounds (policy violation, refusal, `content_filter`).
    ContentFiltered,
    /// 413: the request body is too large.
    RequestTooLarge,
    /// A spending budget of the policy (a route's or a provider's) is spent until its window
    /// resets: raised by the router, never by a provider.
    BudgetExhausted,
}

impl ErrorClass {
    /// Every class, in declaration order.
    pub const ALL: [ErrorClass; 16] = [
        ErrorClass::RateLimited,
        ErrorClass::QuotaExhausted,
        ErrorClass::Overloaded,
        ErrorClass::ServerError,
        ErrorClass::Timeout,
        ErrorClass::Connection,
        ErrorClass::StreamInterrupted,
        ErrorClass::MalformedResponse,
        ErrorClass::Authentication,
        ErrorClass::PermissionDenied,
        ErrorClass::NotFound,
        ErrorClass::InvalidRequest,
        ErrorClass::ContextLengthExceeded,
        ErrorClass::ContentFiltered,
        ErrorClass::RequestTooLarge,
        ErrorClass::BudgetExhausted,
    ];

    /// The `snake_case` name used in policies, JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::QuotaExhausted => "quota_exhausted",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::ServerError => "server_error",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connection => "connection",
            ErrorClass::StreamInterrupted => "stream_interrupted",
            ErrorClass::MalformedResponse => "malformed_response",
            ErrorClass::Authentication => "authentication",
            ErrorClass::PermissionDenied => "permission_denied",
            ErrorClass::NotFound => "not_found",
            ErrorClass::InvalidRequest => "invalid_request",
            ErrorClass::ContextLengthExceeded => "context_length_exceeded",
            ErrorClass::ContentFiltered => "content_filtered",
            ErrorClass::RequestTooLarge => "request_too_large",
            ErrorClass::BudgetExhausted => "budget_exhausted",
        }
    }

    /// Whether the official SDKs would retry this class on the same target (DESIGN.md §2).
    ///
    /// The provider's `x-should-retry` header, when present, overrides this.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited | ErrorClass::Overloaded | ErrorClass::ServerError | ErrorClass::Connection
        )
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given was not one of the [`ErrorClass`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown error class `{0}` (expected one of: rate_limited, quota_exhausted, overloaded, server_error, timeout, connection, stream_interrupted, malformed_response, authentication, permission_denied, not_found, invalid_request, context_length_exceeded, content_filtered, request_too_large, budget_exhausted)"
)]
pub struct UnknownErrorClass(pub String);

impl FromStr for ErrorClass {
    type Err = UnknownErrorClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorClass::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownErrorClass(s.to_owned()))
    }
}

/// One failed call to a provider, classified.
///
/// Never contains an API key: adapters scrub the key from anything the upstream echoes back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
#[error("{provider}: {class}{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
pub struct ProviderError {
    /// The common class.
    pub class: ErrorClass,
    /// HTTP status, when the failure came with one (200 for errors inside a stream).
    pub status: Option<u16>,
    /// Name of the provider that failed (`openai`, `anthropic`, a policy's provider name).
    pub provider: String,
    /// The provider's own error type (`rate_limit_error`, `server_error`, ...).
    pub provider_type: Option<String>,
    /// The provider's own error code (`insufficient_quota`, `context_length_exceeded`, ...).
    pub provider_code: Option<String>,
    /// Human-readable message, from the provider when it sent one.
    pub message: String,
    /// The provider's request id (`x-request-id`, `request-id`).
    pub request_id: Option<String>,
    /// How long the provider asked us to wait (`retry-after-ms`, `retry-after`).
    pub retry_after: Option<Duration>,
    /// The provider's `x-should-retry` header, which overrides the class's retryability.
    pub should_retry: Option<bool>,
    /// What the provider's rate-limit headers said with the error (boxed, like `partial`: most
    /// errors have none).
    pub rate_limit: Option<Box<crate::rate_limit::RateLimit>>,
    /// For streams: what was received before the failure (boxed: most errors have none, and
    /// every `Result` that carries this error pays for its size).
    pub partial: Option<Box<Partial>>,
}

impl ProviderError {
    /// A new error with just a class, provider and message.
    pub fn new(class: ErrorClass, provider: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError {
            class,
            status: None,
            provider: provider.into(),
            provider_type: None,
            provider_code: None,
            message: message.into(),
            request_id: None,
            retry_after: None,
            should_retry: None,
            rate_limit: None,
            partial: None,
        }
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the partial output received before a stream failed.
    pub fn with_partial(mut self, partial: Partial) -> Self {
        self.partial = Some(Box::new(partial));
        self
    }

    /// Whether retrying on the same target makes sense: `x-should-retry` if the provider sent it,
    /// else the class's default.
    pub fn retryable(&self) -> bool {
        self.should_retry.unwrap_or_else(|| self.class.retryable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip_through_serde_and_from_str() {
        for class in ErrorClass::ALL {
            let json = serde_json::to_string(&class).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
            assert_eq!(class.as_str().parse::<ErrorClass>(), Ok(class));
        }
        assert!("overload".parse::<ErrorClass>().is_err());
    }

    #[test]
    fn should_retry_overrides_class() {
        let mut e = ProviderError::new(ErrorClass::ServerError, "openai", "boom");
        assert!(e.retryable());
        e.should_retry = Some(false);
        assert!(!e.retryable());
        let mut e = ProviderError::new(ErrorClass::InvalidRequest, "openai", "bad");
        assert!(!e.retryable());
        e.should_retry = Some(true);
        assert!(e.retryable());
    }

    #[test]
    fn display_names_provider_class_status_and_message() {
        let e = ProviderError::new(ErrorClass::Overloaded, "anthropic", "Overloaded").with_status(529);
        assert_eq!(e.to_string(), "anthropic: overloaded (HTTP 529): Overloaded");
    }
}
