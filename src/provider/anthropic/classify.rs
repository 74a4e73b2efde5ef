//! Anthropic error bodies and statuses turned into [`ErrorClass`]es.
//!
//! The body's `error.type` decides first, because it is what Anthropic means (the same
//! `overloaded_error` arrives as a 529 or inside a 200 stream); the status decides when the body is
//! HTML from a proxy, empty, truncated, or names a type we do not know.

use reqwest::header::HeaderMap;

use crate::error::{ErrorClass, ProviderError};
use crate::provider::http;
use crate::provider::scrub::{MESSAGE_CHARS, SNIPPET_CHARS, one_line};
use crate::secret::ApiKey;
use crate::wire::anthropic::error::{ErrorBody, class_for_status, class_for_type};

/// A non-2xx response: class, status, provider type, message, request id and retry headers.
pub(super) fn classify_response(
    provider: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    key: Option<&ApiKey>,
) -> ProviderError {
    let by_status = class_for_status(status);
    let mut error = classify_body(provider, body, by_status, key);
    // the catch-all types say less than a status with a class of its own: a gateway answering 503 or
    // 408 in Anthropic's envelope must not turn an outage into a non-retryable invalid_request
    let generic = matches!(error.provider_type(), Some("api_error" | "invalid_request_error"));
    let specific =
        !matches!(by_status, ErrorClass::InvalidRequest | ErrorClass::ServerError | ErrorClass::MalformedResponse);
    if generic && specific {
        error = error.with_class(by_status);
    }
    let body_request_id = error.request_id().map(str::to_owned);
    let mut error = http::error_with_response_meta(error, status, headers, "request-id");
    if error.request_id().is_none() {
        error.set_request_id(body_request_id);
    }
    error
}

/// Classifies an error body by its `error.type`, else as `fallback`. Fills `provider_type`, the
/// message and the body's `request_id`; the caller adds the status and headers.
pub(super) fn classify_body(provider: &str, body: &[u8], fallback: ErrorClass, key: Option<&ApiKey>) -> ProviderError {
    let Some(parsed) = ErrorBody::parse(body) else {
        return ProviderError::new(fallback, provider, snippet(body, key));
    };
    let message = match &parsed.message {
        Some(m) => one_line(key, m, MESSAGE_CHARS),
        None => snippet(body, key),
    };
    let class = parsed.error_type.as_deref().and_then(|t| class_for_type(t, &message)).unwrap_or(fallback);
    let mut error = ProviderError::new(class, provider, message);
    // upstream text like the message: a server that echoes the key may put it anywhere
    error.set_provider_type(parsed.error_type.map(|t| one_line(key, &t, SNIPPET_CHARS)));
    error.set_request_id(parsed.request_id.map(|id| one_line(key, &id, SNIPPET_CHARS)));
    error
}

/// A body that is not Anthropic's JSON as one short line for the error message: proxies answer with
/// whole HTML pages.
pub(super) fn snippet(body: &[u8], key: Option<&ApiKey>) -> String {
    let line = one_line(key, &String::from_utf8_lossy(body), SNIPPET_CHARS);
    if line.is_empty() { "empty body".to_owned() } else { line }
}

/// Removes the key from upstream text (some servers echo the header they rejected).
pub(super) fn redact(key: Option<&ApiKey>, text: &str) -> String {
    match key {
        Some(k) => k.redact(text),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::time::Duration;

    fn envelope(error_type: &str, message: &str) -> String {
        serde_json::json!({"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_body"})
            .to_string()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    struct Case {
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        body: String,
        class: ErrorClass,
    }

    fn case(status: u16, body: impl Into<String>, class: ErrorClass) -> Case {
        Case { status, headers: &[], body: body.into(), class }
    }

    #[test]
    fn classification_table() {
        use ErrorClass::*;
        let cases = [
            // by error.type
            case(400, envelope("invalid_request_error", "messages: field required"), InvalidRequest),
            case(
                400,
                envelope("invalid_request_error", "prompt is too long: 210266 tokens > 200000 maximum"),
                ContextLengthExceeded,
            ),
            case(
                400,
                envelope(
                    "invalid_request_error",
                    "input length and `max_tokens` exceed context limit: 197626 + 8192 > 200000",
                ),
                ContextLengthExceeded,
            ),
            case(400, envelope("invalid_request_error", "Request exceeds the context window"), ContextLengthExceeded),
            case(400, envelope("invalid_request_error", "Output blocked by content filtering policy"), ContentFiltered),
            case(
                400,
                envelope("invalid_request_error", "This request violates our Usage Policy (safety)"),
                ContentFiltered,
            ),
            case(401, envelope("authentication_error", "invalid x-api-key"), Authentication),
            case(402, envelope("billing_error", "Your credit balance is too low"), QuotaExhausted),
            case(403, envelope("permission_error", "no access to this model"), PermissionDenied),
            case(404, envelope("not_found_error", "model: claude-nope"), NotFound),
            case(413, envelope("request_too_large", "Request exceeds the maximum allowed size"), RequestTooLarge),
            case(429, envelope("rate_limit_error", "Number of requests has exceeded your rate limit"), RateLimited),
            case(500, envelope("api_error", "Internal server error"), ServerError),
            case(504, envelope("timeout_error", "Request timed out"), Timeout),
            case(529, envelope("overloaded_error", "Overloaded"), Overloaded),
            // the type wins over a status that says otherwise
            case(500, envelope("overloaded_error", "Overloaded"), Overloaded),
            case(400, envelope("rate_limit_error", "slow down"), RateLimited),
            // a catch-all type defers to a status that says more
            case(503, envelope("api_error", "Internal server error"), Overloaded),
            case(504, envelope("api_error", "Internal server error"), Timeout),
            case(408, envelope("invalid_request_error", "Request timeout"), Timeout),
            case(413, envelope("invalid_request_error", "Request too large"), RequestTooLarge),
            case(502, envelope("api_error", "Bad gateway"), ServerError),
            case(
                422,
                envelope("invalid_request_error", "prompt is too long: 9 tokens > 8 maximum"),
                ContextLengthExceeded,
            ),
            // an unknown type falls back to the status
            case(503, envelope("brand_new_error", "?"), Overloaded),
            case(418, envelope("brand_new_error", "?"), InvalidRequest),
            // no usable body: by status
            case(400, "", InvalidRequest),
            case(422, "", InvalidRequest),
            case(401, "", Authentication),
            case(402, "", QuotaExhausted),
            case(403, "", PermissionDenied),
            case(404, "", NotFound),
            case(408, "", Timeout),
            case(413, "<html>413 Request Entity Too Large</html>", RequestTooLarge),
            case(429, "", RateLimited),
            case(409, "", InvalidRequest),
            case(500, "", ServerError),
            case(502, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", ServerError),
            case(501, "", ServerError),
            case(503, "", Overloaded),
            case(529, "", Overloaded),
            case(504, "upstream timed out", Timeout),
            case(500, r#"{"type":"error","error":{"type":"api_er"#, ServerError),
            case(529, r#"{"type":"error","error":{"type":"overloaded_error","mess"#, Overloaded),
            case(400, r#"{"error":{"message":"no type here"}}"#, InvalidRequest),
            case(500, "[1,2,3]", ServerError),
            case(302, "", MalformedResponse),
        ];
        for c in &cases {
            let e = classify_response("anthropic", c.status, &headers(c.headers), c.body.as_bytes(), None);
            assert_eq!(e.class(), c.class, "{} {:?}", c.status, c.body);
            assert_eq!(e.status(), Some(c.status));
            assert_eq!(e.provider(), "anthropic");
            assert!(!e.message().is_empty());
            assert!(!e.message().contains('\n'));
        }
    }

    #[test]
    fn type_message_and_request_id_come_from_the_body() {
        let body = envelope("rate_limit_error", "Number of requests has exceeded your rate limit");
        let e = classify_response("anthropic", 429, &headers(&[]), body.as_bytes(), None);
        assert_eq!(e.provider_type(), Some("rate_limit_error"));
        assert_eq!(e.message(), "Number of requests has exceeded your rate limit");
        assert_eq!(e.request_id(), Some("req_body"));
        assert!(e.provider_code().is_none());
    }

    #[test]
    fn header_request_id_and_retry_headers_are_kept() {
        let body = envelope("rate_limit_error", "slow down");
        let h = headers(&[("request-id", "req_header"), ("retry-after", "7")]);
        let e = classify_response("anthropic", 429, &h, body.as_bytes(), None);
        assert_eq!(e.request_id(), Some("req_header"));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(e.retryable());

        let h = headers(&[("retry-after-ms", "250"), ("retry-after", "7")]);
        let e = classify_response("anthropic", 429, &h, b"", None);
        assert_eq!(e.retry_after(), Some(Duration::from_millis(250)));

        let h = headers(&[("x-should-retry", "false")]);
        let e = classify_response("anthropic", 529, &h, envelope("overloaded_error", "Overloaded").as_bytes(), None);
        assert_eq!(e.class(), ErrorClass::Overloaded);
        assert_eq!(e.should_retry(), Some(false));
        assert!(!e.retryable());

        let h = headers(&[("x-should-retry", "true")]);
        let e = classify_response("anthropic", 400, &h, b"", None);
        assert!(e.retryable());
    }

    #[test]
    fn non_json_bodies_become_a_short_single_line() {
        let html = format!(
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\n<body>\n{}\n</body></html>",
            "x".repeat(5000)
        );
        let e = classify_response("anthropic", 502, &headers(&[]), html.as_bytes(), None);
        assert!(
            e.message().starts_with("<html> <head><title>502 Bad Gateway</title></head> <body>"),
            "{}",
            e.message()
        );
        assert!(e.message().chars().count() <= SNIPPET_CHARS);
        assert!(e.provider_type().is_none());

        let e = classify_response("anthropic", 503, &headers(&[]), b"", None);
        assert_eq!(e.message(), "empty body");
        let e = classify_response("anthropic", 500, &headers(&[]), b"\xff\xfe garbage", None);
        assert!(e.message().ends_with("garbage"));
    }

    #[test]
    fn the_key_is_redacted_from_messages_and_snippets() {
        let key = ApiKey::new("sk-ant-api03-secret-value");
        let body = envelope("authentication_error", "invalid x-api-key: sk-ant-api03-secret-value");
        let e = classify_response("anthropic", 401, &headers(&[]), body.as_bytes(), Some(&key));
        assert_eq!(e.message(), "invalid x-api-key: ***");
        let echoed = r#"{"type":"error","error":{"type":"sk-ant-api03-secret-value","message":"no"},"request_id":"sk-ant-api03-secret-value"}"#;
        let e = classify_response("anthropic", 401, &headers(&[]), echoed.as_bytes(), Some(&key));
        assert!(!format!("{e:?}").contains("secret"), "{e:?}");
        let html = format!("<p>{} bad key sk-ant-api03-secret-value</p>", " ".repeat(300));
        let e = classify_response("anthropic", 401, &headers(&[]), html.as_bytes(), Some(&key));
        assert!(!e.message().contains("secret"), "{}", e.message());
        let long = format!("{}sk-ant-api03-secret-value", "y".repeat(190));
        let e = classify_response("anthropic", 401, &headers(&[]), long.as_bytes(), Some(&key));
        assert!(!e.message().contains("sk-ant-api03-secr"), "{}", e.message());
    }

    #[test]
    fn upstream_text_in_an_error_envelope_is_one_bounded_line() {
        let key = ApiKey::new("sk-ant-api03-secret-value");
        let message = format!("first line\nsecond\tline {} {}", "word ".repeat(1000), key.expose());
        let body = envelope("api_error", &message);
        let e = classify_response("anthropic", 500, &headers(&[]), body.as_bytes(), Some(&key));
        assert_eq!(e.class(), ErrorClass::ServerError);
        assert!(e.message().starts_with("first line second line word"), "{}", e.message());
        assert!(!e.message().contains(['\n', '\t']));
        assert_eq!(e.message().chars().count(), MESSAGE_CHARS);
        assert!(e.message().ends_with('…'));
        let odd_type = envelope(&format!("weird\n{}", "t".repeat(500)), "m");
        let e = classify_response("anthropic", 500, &headers(&[]), odd_type.as_bytes(), Some(&key));
        let kind = e.provider_type().unwrap();
        assert!(!kind.contains('\n') && kind.chars().count() <= SNIPPET_CHARS, "{kind}");
    }
}
