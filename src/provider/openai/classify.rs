//! Error classification: OpenAI's status codes and error bodies (`{"error":{message,type,param,code}}`,
//! or HTML, empty, truncated) become one [`ErrorClass`](crate::error::ErrorClass).

use reqwest::header::HeaderMap;

use crate::error::ProviderError;
use crate::provider::http;
use crate::provider::scrub::{MESSAGE_CHARS, SNIPPET_CHARS, one_line};
use crate::secret::ApiKey;
use crate::wire::openai_chat::error::{ErrorBody, class_for_status, class_in_stream};

/// The header OpenAI puts its request id in.
pub(super) const REQUEST_ID_HEADER: &str = "x-request-id";

/// A classified error for a non-2xx response, with the body's type/code/message and the response's
/// status, request id, retry-after and x-should-retry.
pub(super) fn http_error(
    provider: &str,
    key: Option<&ApiKey>,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> ProviderError {
    let parsed = ErrorBody::parse(body);
    let class = class_for_status(status, parsed.as_ref().unwrap_or(&ErrorBody::default()));
    let message = match parsed.as_ref().and_then(|p| p.message.as_deref()) {
        Some(m) => one_line(key, m, MESSAGE_CHARS),
        None => body_snippet(key, status, body),
    };
    let error = with_body_fields(ProviderError::new(class, provider, message), key, parsed.as_ref());
    http::error_with_response_meta(error, status, headers, REQUEST_ID_HEADER)
}

/// A classified error for an `error` object that arrived inside a 200 stream.
pub(super) fn stream_error(provider: &str, key: Option<&ApiKey>, body: &ErrorBody) -> ProviderError {
    let message = match body.message.as_deref() {
        Some(m) => one_line(key, m, MESSAGE_CHARS),
        None => "error event in the stream".to_owned(),
    };
    with_body_fields(ProviderError::new(class_in_stream(body), provider, message), key, Some(body)).with_status(200)
}

fn with_body_fields(mut error: ProviderError, key: Option<&ApiKey>, body: Option<&ErrorBody>) -> ProviderError {
    if let Some(b) = body {
        error.set_provider_type(b.kind.as_deref().map(|t| one_line(key, t, SNIPPET_CHARS)));
        error.set_provider_code(b.code.as_deref().map(|c| one_line(key, c, SNIPPET_CHARS)));
    }
    error
}

/// The message for a body that is not a JSON error: a short single-line snippet, tags stripped.
fn body_snippet(key: Option<&ApiKey>, status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = if text.trim_start().starts_with('<') { strip_tags(&text) } else { text.into_owned() };
    let snippet = one_line(key, &text, SNIPPET_CHARS);
    if snippet.is_empty() { format!("HTTP {status} with an empty body") } else { snippet }
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use reqwest::header::HeaderValue;

    use super::*;
    use crate::error::ErrorClass;

    const KEY: &str = "sk-test-secret-key-0123456789";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn err(msg: &str, kind: &str, code: Option<&str>) -> String {
        serde_json::json!({"error": {"message": msg, "type": kind, "param": null, "code": code}}).to_string()
    }

    struct Case {
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        body: String,
        class: ErrorClass,
        kind: Option<&'static str>,
        code: Option<&'static str>,
        message: &'static str,
        retry_after: Option<Duration>,
        should_retry: Option<bool>,
    }

    fn case(status: u16, body: String, class: ErrorClass) -> Case {
        Case {
            status,
            headers: &[],
            body,
            class,
            kind: None,
            code: None,
            message: "",
            retry_after: None,
            should_retry: None,
        }
    }

    fn cases() -> Vec<Case> {
        use ErrorClass::*;
        let ctx = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9631 tokens.";
        vec![
            Case {
                kind: Some("invalid_request_error"),
                code: Some("context_length_exceeded"),
                message: ctx,
                ..case(400, err(ctx, "invalid_request_error", Some("context_length_exceeded")), ContextLengthExceeded)
            },
            Case {
                message: "This model's Maximum Context Length is 4096 tokens.",
                ..case(
                    400,
                    err("This model's Maximum Context Length is 4096 tokens.", "invalid_request_error", None),
                    ContextLengthExceeded,
                )
            },
            Case {
                code: Some("content_policy_violation"),
                ..case(400, err("unsafe", "invalid_request_error", Some("content_policy_violation")), ContentFiltered)
            },
            Case { kind: Some("content_filter"), ..case(400, err("filtered", "content_filter", None), ContentFiltered) },
            Case {
                message: "Invalid value for 'temperature'",
                ..case(400, err("Invalid value for 'temperature'", "invalid_request_error", None), InvalidRequest)
            },
            case(422, err("unprocessable", "invalid_request_error", None), InvalidRequest),
            Case {
                code: Some("invalid_api_key"),
                ..case(401, err("Incorrect API key provided: sk-...abcd.", "invalid_request_error", Some("invalid_api_key")), Authentication)
            },
            case(402, err("billing", "billing_error", None), QuotaExhausted),
            case(403, err("Country not supported", "invalid_request_error", Some("unsupported_country_region_territory")), PermissionDenied),
            Case {
                code: Some("model_not_found"),
                ..case(404, err("The model `x` does not exist", "invalid_request_error", Some("model_not_found")), NotFound)
            },
            case(408, err("timeout", "server_error", None), Timeout),
            case(409, err("conflict", "server_error", None), ServerError),
            case(413, String::new(), RequestTooLarge),
            Case {
                headers: &[("retry-after", "2"), ("x-should-retry", "true")],
                kind: Some("requests"),
                code: Some("rate_limit_exceeded"),
                retry_after: Some(Duration::from_secs(2)),
                should_retry: Some(true),
                ..case(429, err("Rate limit reached. Please try again in 644ms.", "requests", Some("rate_limit_exceeded")), RateLimited)
            },
            Case {
                headers: &[("retry-after-ms", "644"), ("retry-after", "1")],
                retry_after: Some(Duration::from_millis(644)),
                ..case(429, err("slow down", "tokens", Some("rate_limit_exceeded")), RateLimited)
            },
            Case {
                kind: Some("insufficient_quota"),
                code: Some("insufficient_quota"),
                ..case(429, err("You exceeded your current quota", "insufficient_quota", Some("insufficient_quota")), QuotaExhausted)
            },
            Case { code: Some("insufficient_quota"), ..case(429, err("quota", "requests", Some("insufficient_quota")), QuotaExhausted) },
            Case {
                headers: &[("x-should-retry", "false")],
                should_retry: Some(false),
                kind: Some("server_error"),
                ..case(500, err("The server had an error", "server_error", None), ServerError)
            },
            Case {
                message: "502 Bad Gateway 502 Bad Gateway nginx",
                ..case(
                    502,
                    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n".into(),
                    ServerError,
                )
            },
            Case {
                code: Some("overloaded"),
                ..case(503, err("The engine is currently overloaded.", "server_error", Some("overloaded")), Overloaded)
            },
            Case { message: "HTTP 503 with an empty body", ..case(503, String::new(), Overloaded) },
            case(529, err("Overloaded", "overloaded_error", None), Overloaded),
            case(504, "upstream request timeout".into(), Timeout),
            case(599, String::new(), ServerError),
            Case {
                message: "{\"error\":{\"message\":\"Rate limit",
                ..case(429, "{\"error\":{\"message\":\"Rate limit".into(), RateLimited)
            },
            Case {
                message: "{\"error\":{\"message\":\"Incorrect API key",
                ..case(400, "{\"error\":{\"message\":\"Incorrect API key".into(), InvalidRequest)
            },
            case(418, "I'm a teapot".into(), InvalidRequest),
            case(451, String::new(), InvalidRequest),
            Case { code: Some("400"), ..case(400, r#"{"object":"error","message":"bad","type":"BadRequestError","code":400}"#.into(), InvalidRequest) },
            case(302, String::new(), MalformedResponse),
        ]
    }

    #[test]
    fn classification_table() {
        let key = ApiKey::new(KEY);
        for c in cases() {
            let h = headers(&[c.headers, &[("x-request-id", "req_abc")]].concat());
            let e = http_error("openai", Some(&key), c.status, &h, c.body.as_bytes());
            let label = format!("{} {}", c.status, c.body);
            assert_eq!(e.class(), c.class, "{label}");
            assert_eq!(e.status(), Some(c.status), "{label}");
            assert_eq!(e.provider(), "openai");
            assert_eq!(e.request_id(), Some("req_abc"), "{label}");
            assert_eq!(e.retry_after(), c.retry_after, "{label}");
            assert_eq!(e.should_retry(), c.should_retry, "{label}");
            if c.kind.is_some() {
                assert_eq!(e.provider_type(), c.kind, "{label}");
            }
            if c.code.is_some() {
                assert_eq!(e.provider_code(), c.code, "{label}");
            }
            if !c.message.is_empty() {
                assert_eq!(e.message(), c.message, "{label}");
            }
            assert!(!e.message().contains('\n') && e.message().chars().count() <= MESSAGE_CHARS, "{label}");
            assert!(!e.message().is_empty(), "{label}");
        }
    }

    #[test]
    fn non_json_bodies_become_short_single_line_snippets() {
        let page = format!("<html><body>{}</body></html>", "Service temporarily unavailable. ".repeat(40));
        let e = http_error("openai", None, 502, &HeaderMap::new(), page.as_bytes());
        assert!(e.message().chars().count() <= SNIPPET_CHARS, "{}", e.message().len());
        assert!(e.message().starts_with("Service temporarily unavailable."), "{}", e.message());
        assert!(!e.message().contains('<'));
        let binary = [0xff, 0xfe, 0x00, b'\n', b'x'];
        let e = http_error("openai", None, 500, &HeaderMap::new(), &binary);
        assert!(!e.message().contains('\0') && !e.message().contains('\n'), "{:?}", e.message());
    }

    #[test]
    fn the_key_is_redacted_from_messages_types_codes_and_snippets() {
        let key = ApiKey::new(KEY);
        let bodies = [
            err(&format!("Incorrect API key provided: {KEY}."), KEY, Some(KEY)),
            format!("<html><body>bad key {KEY}</body></html>"),
            format!("{{\"error\":\"bad key {KEY}\"}}"),
            format!("{{\"error\":{{\"message\":\"bad key {KEY}"),
        ];
        for body in bodies {
            let e = http_error("openai", Some(&key), 401, &HeaderMap::new(), body.as_bytes());
            assert_eq!(e.class(), ErrorClass::Authentication);
            let all = format!("{e} {e:?}");
            assert!(!all.contains(KEY), "{all}");
            assert!(all.contains("***"), "{all}");
        }
    }

    #[test]
    fn in_stream_errors_classify_by_type_and_code() {
        use ErrorClass::*;
        let cases = [
            (serde_json::json!({"message":"boom","type":"server_error","code":null}), ServerError),
            (serde_json::json!({"message":"busy","type":"overloaded_error"}), Overloaded),
            (serde_json::json!({"message":"busy","type":"server_error","code":"overloaded"}), Overloaded),
            (serde_json::json!({"message":"slow","type":"requests","code":"rate_limit_exceeded"}), RateLimited),
            (serde_json::json!({"message":"slow","type":"rate_limit_error"}), RateLimited),
            (serde_json::json!({"message":"quota","type":"insufficient_quota"}), QuotaExhausted),
            (serde_json::json!({"message":"x","code":"context_length_exceeded"}), ContextLengthExceeded),
            (serde_json::json!({"message":"x","code":"content_filter"}), ContentFiltered),
            (serde_json::json!({"message":"something odd","type":"weird"}), ServerError),
            (serde_json::json!("bare message"), ServerError),
        ];
        for (value, class) in cases {
            let e = stream_error("openai", None, &ErrorBody::from_value(&value));
            assert_eq!(e.class(), class, "{value}");
            assert_eq!(e.status(), Some(200), "{value}");
        }
    }
}
