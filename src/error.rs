//! The common error enum: every provider failure, whatever its dialect, becomes one [`ErrorClass`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::chat::Partial;
use crate::rate_limit::RateLimit;

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
/// Read through its accessors ([`class`](ProviderError::class), [`status`](ProviderError::status),
/// ...); built with [`ProviderError::new`] and the `with_*` methods. The data lives behind one box
/// so that every `Result` carrying this error stays one pointer wide on its success path.
///
/// Never contains an API key: adapters scrub the key from anything the upstream echoes back.
#[derive(Clone, PartialEq)]
pub struct ProviderError {
    inner: Box<Inner>,
}

#[derive(Clone, PartialEq)]
struct Inner {
    class: ErrorClass,
    status: Option<u16>,
    provider: String,
    provider_type: Option<String>,
    provider_code: Option<String>,
    message: String,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    should_retry: Option<bool>,
    rate_limit: Option<RateLimit>,
    partial: Option<Partial>,
}

impl ProviderError {
    /// A new error with just a class, provider and message.
    pub fn new(class: ErrorClass, provider: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError {
            inner: Box::new(Inner {
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
            }),
        }
    }

    /// The common class.
    pub fn class(&self) -> ErrorClass {
        self.inner.class
    }

    /// HTTP status, when the failure came with one (200 for errors inside a stream).
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// Name of the provider that failed (`openai`, `anthropic`, a policy's provider name).
    pub fn provider(&self) -> &str {
        &self.inner.provider
    }

    /// The provider's own error type (`rate_limit_error`, `server_error`, ...).
    pub fn provider_type(&self) -> Option<&str> {
        self.inner.provider_type.as_deref()
    }

    /// The provider's own error code (`insufficient_quota`, `context_length_exceeded`, ...).
    pub fn provider_code(&self) -> Option<&str> {
        self.inner.provider_code.as_deref()
    }

    /// Human-readable message, from the provider when it sent one.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The provider's request id (`x-request-id`, `request-id`).
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// How long the provider asked us to wait (`retry-after-ms`, `retry-after`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The provider's `x-should-retry` header, which overrides the class's retryability.
    pub fn should_retry(&self) -> Option<bool> {
        self.inner.should_retry
    }

    /// What the provider's rate-limit headers said with the error.
    pub fn rate_limit(&self) -> Option<&RateLimit> {
        self.inner.rate_limit.as_ref()
    }

    /// For streams: what was received before the failure.
    pub fn partial(&self) -> Option<&Partial> {
        self.inner.partial.as_ref()
    }

    /// Whether retrying on the same target makes sense: `x-should-retry` if the provider sent it,
    /// else the class's default.
    pub fn retryable(&self) -> bool {
        self.inner.should_retry.unwrap_or_else(|| self.inner.class.retryable())
    }

    /// Replaces the class.
    pub fn with_class(mut self, class: ErrorClass) -> Self {
        self.inner.class = class;
        self
    }

    /// Replaces the provider's name.
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.inner.provider = provider.into();
        self
    }

    /// Replaces the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.inner.message = message.into();
        self
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Sets the provider's own error type.
    pub fn with_provider_type(mut self, provider_type: impl Into<String>) -> Self {
        self.inner.provider_type = Some(provider_type.into());
        self
    }

    /// Sets the provider's own error code.
    pub fn with_provider_code(mut self, provider_code: impl Into<String>) -> Self {
        self.inner.provider_code = Some(provider_code.into());
        self
    }

    /// Sets the provider's request id.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.inner.request_id = Some(request_id.into());
        self
    }

    /// Sets how long the provider asked us to wait.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.inner.retry_after = Some(retry_after);
        self
    }

    /// Sets the provider's `x-should-retry` answer.
    pub fn with_should_retry(mut self, should_retry: bool) -> Self {
        self.inner.should_retry = Some(should_retry);
        self
    }

    /// Sets what the provider's rate-limit headers said.
    pub fn with_rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.inner.rate_limit = Some(rate_limit);
        self
    }

    /// Sets the partial output received before a stream failed.
    pub fn with_partial(mut self, partial: Partial) -> Self {
        self.inner.partial = Some(partial);
        self
    }
}

/// In-place setters for the crate's own adapters and router, which overwrite a field with whatever
/// they read (`None` included); an embedding application builds with `new` and `with_*`.
impl ProviderError {
    pub(crate) fn set_provider_type(&mut self, provider_type: Option<String>) {
        self.inner.provider_type = provider_type;
    }

    pub(crate) fn set_provider_code(&mut self, provider_code: Option<String>) {
        self.inner.provider_code = provider_code;
    }

    pub(crate) fn set_request_id(&mut self, request_id: Option<String>) {
        self.inner.request_id = request_id;
    }

    pub(crate) fn set_retry_after(&mut self, retry_after: Option<Duration>) {
        self.inner.retry_after = retry_after;
    }

    pub(crate) fn set_should_retry(&mut self, should_retry: Option<bool>) {
        self.inner.should_retry = should_retry;
    }

    pub(crate) fn set_rate_limit(&mut self, rate_limit: Option<RateLimit>) {
        self.inner.rate_limit = rate_limit;
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Inner { provider, class, message, .. } = &*self.inner;
        write!(f, "{provider}: {class}")?;
        if let Some(status) = self.inner.status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {message}")
    }
}

impl std::error::Error for ProviderError {}

impl fmt::Debug for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so that a field added to `Inner` cannot be silently left out of the output.
        let Inner {
            class,
            status,
            provider,
            provider_type,
            provider_code,
            message,
            request_id,
            retry_after,
            should_retry,
            rate_limit,
            partial,
        } = &*self.inner;
        f.debug_struct("ProviderError")
            .field("class", class)
            .field("status", status)
            .field("provider", provider)
            .field("provider_type", provider_type)
            .field("provider_code", provider_code)
            .field("message", message)
            .field("request_id", request_id)
            .field("retry_after", retry_after)
            .field("should_retry", should_retry)
            .field("rate_limit", rate_limit)
            .field("partial", partial)
            .finish()
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
        let e = ProviderError::new(ErrorClass::ServerError, "openai", "boom");
        assert!(e.retryable());
        assert!(!e.with_should_retry(false).retryable());
        let e = ProviderError::new(ErrorClass::InvalidRequest, "openai", "bad");
        assert!(!e.retryable());
        assert!(e.with_should_retry(true).retryable());
    }

    #[test]
    fn the_error_is_one_pointer_wide() {
        // every `Result<_, ProviderError>` and every `Option<ProviderError>` (`RouteFailure::error`)
        // pays this size, success or not
        assert_eq!(std::mem::size_of::<ProviderError>(), std::mem::size_of::<usize>());
        assert_eq!(std::mem::size_of::<Result<(), ProviderError>>(), std::mem::size_of::<usize>());
        assert_eq!(std::mem::size_of::<Option<ProviderError>>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn builders_fill_what_the_accessors_read() {
        let limit = RateLimit { requests_remaining: Some(0), ..RateLimit::default() };
        let partial = Partial { text: "Hel".into(), ..Partial::default() };
        let e = ProviderError::new(ErrorClass::ServerError, "openai", "boom")
            .with_class(ErrorClass::RateLimited)
            .with_provider("fallback")
            .with_message("slow down")
            .with_status(429)
            .with_provider_type("requests")
            .with_provider_code("rate_limit_exceeded")
            .with_request_id("req_1")
            .with_retry_after(Duration::from_secs(2))
            .with_should_retry(false)
            .with_rate_limit(limit)
            .with_partial(partial.clone());
        assert_eq!(e.class(), ErrorClass::RateLimited);
        assert_eq!(e.provider(), "fallback");
        assert_eq!(e.message(), "slow down");
        assert_eq!(e.status(), Some(429));
        assert_eq!(e.provider_type(), Some("requests"));
        assert_eq!(e.provider_code(), Some("rate_limit_exceeded"));
        assert_eq!(e.request_id(), Some("req_1"));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(e.should_retry(), Some(false));
        assert_eq!(e.rate_limit(), Some(&limit));
        assert_eq!(e.partial(), Some(&partial));
    }

    #[test]
    fn debug_shows_every_field_under_the_public_name() {
        let e = ProviderError::new(ErrorClass::Overloaded, "anthropic", "Overloaded").with_status(529);
        assert_eq!(
            format!("{e:?}"),
            "ProviderError { class: Overloaded, status: Some(529), provider: \"anthropic\", provider_type: None, \
             provider_code: None, message: \"Overloaded\", request_id: None, retry_after: None, should_retry: None, \
             rate_limit: None, partial: None }"
        );
    }

    #[test]
    fn display_names_provider_class_status_and_message() {
        let e = ProviderError::new(ErrorClass::Overloaded, "anthropic", "Overloaded").with_status(529);
        assert_eq!(e.to_string(), "anthropic: overloaded (HTTP 529): Overloaded");
        let e = ProviderError::new(ErrorClass::Connection, "openai", "cannot connect");
        assert_eq!(e.to_string(), "openai: connection: cannot connect");
    }
}
