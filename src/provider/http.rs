//! HTTP plumbing shared by the adapters: sending with time limits, classifying transport failures,
//! reading the provider's retry headers, and turning a response body into SSE events.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use tokio::time::{Instant, Sleep};

use super::timer::{self, Limit, Limits};
use super::{ChatStream, ProviderConfig};
use crate::error::{ErrorClass, ProviderError};
use crate::wire::sse::{SseDecoder, SseEvent};

/// Builds the HTTP client for one provider. Errors only when the TLS backend cannot start.
/// Idle upstream connections each provider's pool keeps at most: bounded, so that the gateway's
/// connection cap can reserve descriptors for them.
pub const POOL_MAX_IDLE_PER_HOST: usize = 64;

pub(crate) fn client(config: &ProviderConfig) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .build()
        .map_err(|e| {
            ProviderError::new(ErrorClass::Connection, config.name.clone(), format!("cannot build HTTP client: {e}"))
        })
}

/// The delay the server asked for: `retry-after-ms` (float milliseconds), else `retry-after` as float
/// seconds, else `retry-after` as an HTTP-date relative to `now`. Negative or unparsable values are
/// ignored.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header_str(headers, "retry-after")?;
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `x-should-retry` header: `Some(true)` / `Some(false)`, `None` when absent or not a boolean.
pub(crate) fn should_retry(headers: &HeaderMap) -> Option<bool> {
    match header_str(headers, "x-should-retry")?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A header's value as a string, when present and valid.
pub(crate) fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The API key as a header value marked sensitive (kept out of reqwest's and hyper's `Debug`),
/// after `prefix` (`"Bearer "` or `""`); `None` without a key.
pub(crate) fn key_header(
    config: &ProviderConfig,
    prefix: &str,
) -> Result<Option<reqwest::header::HeaderValue>, ProviderError> {
    let Some(key) = &config.api_key else { return Ok(None) };
    let mut value = reqwest::header::HeaderValue::from_str(&format!("{prefix}{}", key.expose())).map_err(|_| {
        ProviderError::new(
            ErrorClass::Authentication,
            config.name.clone(),
            "the API key contains characters not allowed in an HTTP header",
        )
    })?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Adds the config's headers: each name replaces a default of the same name, several values for one
/// name are all kept, and every value is marked sensitive (organization ids and custom auth headers
/// are credentials too). An invalid header is named, its value never shown.
pub(crate) fn add_config_headers(headers: &mut HeaderMap, config: &ProviderConfig) -> Result<(), ProviderError> {
    let mut overridden = Vec::new();
    for (name, value) in &config.headers {
        let invalid = || {
            ProviderError::new(
                ErrorClass::InvalidRequest,
                config.name.clone(),
                format!("invalid header `{name}` in the config"),
            )
        };
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|_| invalid())?;
        value.set_sensitive(true);
        if !overridden.contains(&name) {
            headers.remove(&name);
            overridden.push(name.clone());
        }
        headers.append(name, value);
    }
    Ok(())
}

/// Status and headers of an error response, filled into a [`ProviderError`].
pub(crate) fn error_with_response_meta(
    error: ProviderError,
    status: u16,
    headers: &HeaderMap,
    request_id_header: &str,
) -> ProviderError {
    let mut error = error.with_status(status);
    error.set_request_id(header_str(headers, request_id_header));
    error.set_retry_after(retry_after(headers, SystemTime::now()));
    error.set_should_retry(should_retry(headers));
    error.set_rate_limit(super::RateLimit::from_headers(headers, SystemTime::now()));
    error
}

/// What the response's rate-limit headers say, read before the body takes the response.
pub(crate) fn rate_limit_of(response: &reqwest::Response) -> Option<super::RateLimit> {
    super::RateLimit::from_headers(response.headers(), SystemTime::now())
}

/// A stream that first says what the response's rate-limit headers said, when they said anything
/// ([`crate::chat::StreamEvent::RateLimit`]).
pub(crate) fn with_rate_limit(stream: ChatStream, limit: Option<super::RateLimit>) -> ChatStream {
    match limit {
        Some(limit) => Box::pin(
            futures::stream::once(std::future::ready(Ok(crate::chat::StreamEvent::RateLimit(limit)))).chain(stream),
        ),
        None => stream,
    }
}

/// Classifies a reqwest error that happened before the response headers.
pub(crate) fn transport_error(provider: &str, error: &reqwest::Error) -> ProviderError {
    let class = if error.is_timeout() {
        ErrorClass::Timeout
    } else {
        // refused, reset before headers, DNS, TLS, closed before the status line
        ErrorClass::Connection
    };
    ProviderError::new(class, provider, describe(error))
}

/// The error's kind and its sources on one line, without the URL (it may carry query credentials).
fn describe(error: &reqwest::Error) -> String {
    let mut msg = String::from(if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_body() || error.is_decode() {
        "body failed"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Sends the request; the response headers must arrive within `limits` (the first-token limit and
/// the call's deadline), on `timer`, the call's one timer.
pub(crate) async fn send(
    provider: &str,
    request: reqwest::RequestBuilder,
    limits: &Limits,
    timer: Pin<&mut Option<Sleep>>,
) -> Result<reqwest::Response, ProviderError> {
    match timer::wait_for(timer, || limits.headers(), request.send()).await {
        Ok(result) => result.map_err(|e| transport_error(provider, &e)),
        Err(Limit::Deadline) => Err(timer::deadline_error(provider)),
        Err(_) => {
            Err(ProviderError::new(ErrorClass::Timeout, provider, "no response headers before the first-token timeout"))
        }
    }
}

/// Reads a whole (non-streaming) body; the idle limit bounds each gap between chunks and the
/// call's deadline the whole read, on `timer`, the call's one timer.
pub(crate) async fn read_body(
    provider: &str,
    response: reqwest::Response,
    limits: &Limits,
    mut timer: Pin<&mut Option<Sleep>>,
) -> Result<Bytes, ProviderError> {
    let mut stream = response.bytes_stream();
    let mut body: Vec<u8> = Vec::new();
    let mut single: Option<Bytes> = None;
    loop {
        let next = match timer::wait_for(timer.as_mut(), || limits.next_read(Instant::now()), stream.next()).await {
            Ok(next) => next,
            Err(limit) => {
                return Err(match (limit, limits.idle()) {
                    (Limit::Idle, Some(idle)) => ProviderError::new(
                        ErrorClass::Timeout,
                        provider,
                        format!("body stalled for more than {idle:?}"),
                    ),
                    _ => timer::deadline_error(provider),
                });
            }
        };
        match next {
            // most bodies come in one chunk: keep it without copying
            Some(Ok(chunk)) => match single.take() {
                None if body.is_empty() => single = Some(chunk),
                prev => {
                    if let Some(p) = prev {
                        body.extend_from_slice(&p);
                    }
                    body.extend_from_slice(&chunk);
                }
            },
            Some(Err(e)) => {
                return Err(ProviderError::new(
                    ErrorClass::Connection,
                    provider,
                    format!("connection lost while reading the body: {}", describe(&e)),
                ));
            }
            None => return Ok(single.unwrap_or_else(|| Bytes::from(body))),
        }
    }
}

/// Turns a streaming response body into SSE events. The first event must arrive within the
/// first-token limit, each later one within the idle limit of the previous, and all before the
/// call's deadline; a missed limit yields a `timeout` error, a transport failure a
/// `stream_interrupted` error, and the stream then ends. End of body simply ends the stream: the
/// adapter decides whether its terminal event was seen.
pub(crate) fn sse_events(
    provider: String,
    response: reqwest::Response,
    limits: Limits,
    content: ContentSeen,
) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send {
    struct State<S> {
        bytes: S,
        decoder: SseDecoder,
        pending: std::collections::VecDeque<SseEvent>,
        content: ContentSeen,
        done: bool,
        /// One timer for the whole stream, pushed back when a read has to wait (not one per chunk).
        timer: Pin<Box<Option<Sleep>>>,
    }
    let state = State {
        bytes: Box::pin(response.bytes_stream()),
        decoder: SseDecoder::new(),
        pending: Default::default(),
        content,
        done: false,
        timer: Box::pin(None),
    };
    futures::stream::unfold((state, provider), move |(mut st, provider)| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                return Some((Ok(ev), (st, provider)));
            }
            if st.done {
                return None;
            }
            // the preamble (Anthropic's message_start and pings, OpenAI's role chunk) is not a
            // token: the first-token limit holds until the answer's first content
            let seen = st.content.get();
            let limit = || if seen { limits.next_read(Instant::now()) } else { limits.first_event(Instant::now()) };
            let next = match timer::wait_for(st.timer.as_mut(), limit, st.bytes.next()).await {
                Ok(next) => next,
                Err(which) => {
                    st.done = true;
                    let what = match which {
                        Limit::Deadline => timer::DEADLINE_MESSAGE,
                        _ if seen => "stream stalled: no event within the idle timeout",
                        _ => "no answer content before the first-token timeout",
                    };
                    return Some((
                        Err(ProviderError::new(ErrorClass::Timeout, provider.clone(), what)),
                        (st, provider),
                    ));
                }
            };
            match next {
                Some(Ok(chunk)) => st.pending.extend(st.decoder.feed(&chunk)),
                Some(Err(e)) => {
                    st.done = true;
                    let err = ProviderError::new(
                        ErrorClass::StreamInterrupted,
                        provider.clone(),
                        format!("stream dropped: {}", describe(&e)),
                    );
                    return Some((Err(err), (st, provider)));
                }
                None => {
                    st.done = true;
                    st.pending.extend(st.decoder.finish());
                }
            }
        }
    })
}

/// Whether a streamed answer's first content (see [`crate::chat::StreamEvent::is_content`]) has come: set by
/// [`watch_content`] on the decoded stream, read by [`sse_events`] to know which limit holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContentSeen(Arc<AtomicBool>);

impl ContentSeen {
    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// `stream`, marking `seen` at its first content event.
pub(crate) fn watch_content(stream: ChatStream, seen: ContentSeen) -> ChatStream {
    Box::pin(stream.inspect(move |item| {
        if let Ok(event) = item
            && event.is_content()
            && !seen.get()
        {
            seen.0.store(true, Ordering::Relaxed);
        }
    }))
}

/// Most events read after an answer's terminal event to reach the end of the body.
const DRAIN_EVENTS: usize = 8;
/// Longest wait for the end of the body after an answer's terminal event.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Reads what follows an answer's terminal event (`[DONE]`, the chunked terminator) in the
/// background, so the connection goes back to the pool: a body dropped before its end takes its
/// connection with it, and every streamed call would then pay for a new one. Bounded in events and
/// time; a server that keeps talking loses the connection.
pub(crate) fn release<S>(mut events: Pin<Box<S>>)
where
    S: Stream + Send + ?Sized + 'static,
{
    // what has already arrived is read at once: usually the end came with the terminal event
    for _ in 0..DRAIN_EVENTS {
        match futures::FutureExt::now_or_never(events.next()) {
            Some(Some(_)) => {}
            Some(None) => return,
            None => break,
        }
    }
    tokio::spawn(async move {
        let drain = async {
            for _ in 0..DRAIN_EVENTS {
                if events.next().await.is_none() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    });
}

/// A source of SSE events that has ended: what a decoder keeps once it handed its source to
/// [`release`].
pub(crate) fn ended() -> Pin<Box<dyn Stream<Item = Result<SseEvent, ProviderError>> + Send>> {
    Box::pin(futures::stream::empty())
}

/// The body of `call` in `protocol`'s wire, as bytes, with the headers it needs. A request the
/// wire cannot carry fails here, before the network, as `invalid_request` naming the field.
pub(crate) fn encode_call(
    provider: &str,
    protocol: crate::provider::Protocol,
    call: &crate::provider::Call<'_>,
    profile: Option<&crate::profile::ProviderProfile>,
    stream: bool,
) -> Result<(Vec<u8>, crate::wire::Headers), ProviderError> {
    let invalid = |why: String| ProviderError::new(ErrorClass::InvalidRequest, provider, why);
    let target = crate::wire::Target {
        model: call.model,
        profile: profile.and_then(|p| p.model(call.model)),
        unsupported: call.unsupported,
    };
    crate::wire::encode_bytes(protocol, call.request, call.original, target, stream).map_err(|e| invalid(e.to_string()))
}

/// Adds a body's headers to a request's: a list the config already sets (`anthropic-beta`) gets
/// the new value appended; a single value (the caller's `anthropic-version`) replaces the default.
pub(crate) fn merge_headers(base: &HeaderMap, extra: &[(&'static str, String)]) -> HeaderMap {
    let mut headers = base.clone();
    for (name, value) in extra {
        let list = matches!(*name, "anthropic-beta" | "openai-beta");
        let joined = match headers.get(*name).and_then(|v| v.to_str().ok()) {
            Some(existing) if list && !existing.split(',').any(|v| v.trim() == value) => format!("{existing},{value}"),
            Some(_) if list => continue,
            _ => value.clone(),
        };
        if let Ok(v) = reqwest::header::HeaderValue::from_str(&joined) {
            headers.insert(*name, v);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(*k, v);
            }
        }
        h
    }

    #[test]
    fn retry_after_prefers_ms_then_seconds_then_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "1500.5"), ("retry-after", "9")]), now),
            Some(Duration::from_secs_f64(1.5005))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "2")]), now), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&headers(&[("retry-after", "0.25")]), now), Some(Duration::from_millis(250)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after(&headers(&[("retry-after", &date)]), now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_after(&headers(&[("retry-after", &past)]), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-3")]), now), None);
        assert_eq!(retry_after(&headers(&[]), now), None);
    }

    #[test]
    fn should_retry_reads_booleans_only() {
        assert_eq!(should_retry(&headers(&[("x-should-retry", "true")])), Some(true));
        assert_eq!(should_retry(&headers(&[("x-should-retry", "false")])), Some(false));
        assert_eq!(should_retry(&headers(&[("x-should-retry", "maybe")])), None);
        assert_eq!(should_retry(&headers(&[])), None);
    }
}
