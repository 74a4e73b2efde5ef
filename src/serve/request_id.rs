//! `x-request-id`: taken from the client when it sends a sane one, made otherwise; echoed on the
//! response and carried by a span around the whole request, its streamed body included, so every
//! log line of a request names it.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tower::ServiceExt;
use tracing::Instrument;

/// The header.
pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A client's id, if it is one we can log and echo safely: short, and only characters that
/// cannot forge a log line or a header.
fn acceptable(value: &HeaderValue) -> Option<&str> {
    let s = value.to_str().ok()?;
    let sane = |c: char| c.is_ascii_alphanumeric() || "-_.:/+=".contains(c);
    (!s.is_empty() && s.len() <= 128 && s.chars().all(sane)).then_some(s)
}

fn make() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Runs `request` through `app` inside the request's span, with `x-request-id` on both sides.
pub(crate) async fn serve(mut request: Request<Body>, app: axum::Router) -> Response<Body> {
    let id = match request.headers().get(&HEADER).and_then(acceptable) {
        Some(given) => given.to_owned(),
        None => make(),
    };
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(HEADER, value.clone());
    let span = tracing::info_span!("request", request_id = %id, key = tracing::field::Empty);
    let response = match app.oneshot(request).instrument(span.clone()).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(HEADER, value);
    Response::from_parts(parts, Body::new(InSpan { body, span }))
}

pin_project_lite::pin_project! {
    /// A response body polled inside the request's span (a stream's router work happens there).
    struct InSpan {
        #[pin]
        body: Body,
        span: tracing::Span,
    }
}

impl HttpBody for InSpan {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let _entered = this.span.enter();
        this.body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_ids_are_taken() {
        let ok = HeaderValue::from_static("req-1234_abc.def:9/x+y=");
        assert_eq!(acceptable(&ok), Some("req-1234_abc.def:9/x+y="));
        for bad in ["", "a b", "a\"b", "x;y"] {
            assert_eq!(acceptable(&HeaderValue::from_static(bad)), None, "{bad:?}");
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap_or_else(|_| unreachable!());
        assert_eq!(acceptable(&long), None);
        assert_eq!(make().len(), 32);
        assert_ne!(make(), make());
    }
}
