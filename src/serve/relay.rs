//! A routed stream relayed to the client as its dialect's SSE, ending with what the request
//! cost: an SSE comment every client can read and every SSE parser skips
//! (`: x-switchyard-cost-usd: 0.000123`, before the dialect's last event, or before the error
//! event of a stream that fails), and an HTTP trailer of the same name for a client that asked
//! for trailers (`TE: trailers`).

use std::convert::Infallible;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use futures::StreamExt;
use http_body::Frame;

use super::dialect::Encoder;
use super::handlers::{KeyCharge, failure_from, record_request};
use crate::chat::StreamEvent;
use crate::router::{RouteFailure, RoutedStream};

/// The header, trailer and comment that say what a request cost.
pub(crate) const COST: HeaderName = HeaderName::from_static("x-switchyard-cost-usd");

/// A cost as the gateway writes it: nine decimals hold a single token of the cheapest model;
/// trailing zeros say nothing.
pub(crate) fn cost_text(usd: f64) -> String {
    let text = format!("{usd:.9}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() { "0".to_owned() } else { text.to_owned() }
}

/// Whether the client reads trailers (`TE: trailers`): only then does HTTP/1.1 send them. The
/// token exactly, as hyper reads it (`trailers;q=0.5` is not it), so that a `Trailer` header is
/// announced only when the trailer will come.
pub(crate) fn wants_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// What a stream's end is recorded and charged under.
pub(crate) struct Ledger {
    pub(crate) endpoint: &'static str,
    /// The route as a metric label.
    pub(crate) route: String,
    pub(crate) key: String,
    pub(crate) router: crate::router::Router,
    /// The key's charge, made when the relay is dropped: after the stream, whose attempts it
    /// counts (a stream dropped mid-answer records its attempt as it goes).
    pub(crate) charge: KeyCharge,
    pub(crate) started: Instant,
    /// The key's concurrency slot, freed with the stream.
    #[expect(dead_code, reason = "held, never read: dropping it frees the slot")]
    pub(crate) permit: Option<crate::router::limiter::LimitPermit>,
}

/// Where the relay is.
struct Relay<E> {
    /// Dropped first (fields drop in order): a stream dropped mid-answer records its attempt
    /// before `ledger` charges the key.
    stream: RoutedStream,
    encoder: E,
    ledger: Ledger,
    /// Bytes ready to go out.
    pending: Option<Vec<Bytes>>,
    /// The dialect's closing bytes, held until the stream ends and its cost is known.
    finish: Option<Vec<Bytes>>,
    /// The stream is over: what may be left is the trailer.
    over: bool,
    /// The client reads trailers.
    trailer: bool,
    /// What the request cost, for the trailer.
    cost: Option<f64>,
}

/// The body relaying `stream`, whose first event `opening` was already taken from it.
pub(crate) fn body<E: Encoder>(
    stream: RoutedStream,
    encoder: E,
    opening: &StreamEvent,
    ledger: Ledger,
    trailer: bool,
) -> Body {
    let mut relay = Relay { stream, encoder, ledger, pending: None, finish: None, over: false, trailer, cost: None };
    relay.take(opening);
    let frames = futures::stream::unfold(relay, |mut relay| async move {
        let frame = relay.next_frame().await?;
        Some((Ok::<_, Infallible>(frame), relay))
    });
    Body::new(http_body_util::StreamBody::new(frames))
}

impl<E: Encoder> Relay<E> {
    fn take(&mut self, event: &StreamEvent) {
        let bytes = self.encoder.event(event);
        match event {
            StreamEvent::Finish { .. } => self.finish = Some(bytes),
            _ => self.pending = Some(bytes),
        }
    }

    async fn next_frame(&mut self) -> Option<Frame<Bytes>> {
        loop {
            if let Some(bytes) = self.pending.take().and_then(coalesce) {
                return Some(Frame::data(bytes));
            }
            if self.over {
                let usd = self.cost.take().filter(|_| self.trailer)?;
                let value = HeaderValue::from_str(&cost_text(usd)).ok()?;
                let mut trailers = HeaderMap::new();
                trailers.insert(COST, value);
                return Some(Frame::trailers(trailers));
            }
            let l = &self.ledger;
            match self.stream.next().await {
                Some(Ok(event)) => self.take(&event),
                Some(Err(e)) => {
                    record_request(l.endpoint, &l.route, &l.key, Some(e.class()), l.started);
                    let cost = e.failure().and_then(RouteFailure::cost_usd);
                    let mut bytes = self.encoder.error(&failure_from(&e));
                    // before the error: a reader (an SDK) that raises on the error has read it
                    if let Some(usd) = cost {
                        bytes.insert(0, comment(usd));
                    }
                    self.end(bytes, cost);
                }
                None => {
                    let cost = self.stream.summary().and_then(|summary| {
                        record_request(l.endpoint, &l.route, &l.key, None, l.started);
                        summary.cost_usd()
                    });
                    let mut bytes = self.finish.take().unwrap_or_default();
                    // before the dialect's last event (`[DONE]`, `message_stop`,
                    // `response.completed`): a reader that stops there has read it
                    if let Some(usd) = cost {
                        bytes.insert(bytes.len().saturating_sub(1), comment(usd));
                    }
                    self.end(bytes, cost);
                }
            }
        }
    }

    fn end(&mut self, bytes: Vec<Bytes>, cost: Option<f64>) {
        self.pending = Some(bytes);
        self.cost = cost;
        self.over = true;
    }
}

/// The SSE comment that carries a cost.
fn comment(usd: f64) -> Bytes {
    crate::wire::sse::comment(format_args!("{COST}: {}", cost_text(usd)))
}

/// The SSE events of one step as one body frame (one write, one packet): a client waiting for the
/// first token gets it with the opening events, not one round of the event loop later.
fn coalesce(mut events: Vec<Bytes>) -> Option<Bytes> {
    match events.len() {
        0 => None,
        1 => events.pop(),
        _ => Some(Bytes::from(events.concat())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_written_without_trailing_zeros() {
        assert_eq!(cost_text(0.0), "0");
        assert_eq!(cost_text(0.000_123), "0.000123");
        assert_eq!(cost_text(1.5), "1.5");
        assert_eq!(cost_text(2.0), "2");
        assert_eq!(cost_text(0.000_000_000_4), "0");
    }

    #[test]
    fn trailers_are_sent_only_to_a_client_that_asks() {
        let te = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.append(header::TE, HeaderValue::from_static(v));
            h
        };
        assert!(wants_trailers(&te("trailers")));
        assert!(wants_trailers(&te("gzip, Trailers")));
        assert!(wants_trailers(&te("deflate;q=0.5, trailers")));
        assert!(!wants_trailers(&te("trailers;q=0.5")), "not the token hyper sends trailers for");
        assert!(!wants_trailers(&te("gzip")));
        assert!(!wants_trailers(&te("trailersx")));
        assert!(!wants_trailers(&HeaderMap::new()));
    }

    #[test]
    fn the_comment_is_one_sse_comment() {
        assert_eq!(comment(0.25), Bytes::from_static(b": x-switchyard-cost-usd: 0.25\n\n"));
    }
}
