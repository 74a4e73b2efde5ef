//! The gateway's side of the client connection: its own accept loop over hyper, so that a client
//! cannot hold the gateway's sockets for free.
//!
//! - **Header read timeout**: a connection must deliver a request's headers within
//!   `[server] header_read_timeout` of opening (or of its first byte, once idle), else it is
//!   closed (slowloris).
//! - **Keep-alive idle timeout**: a connection with no request in flight and no byte of a new one
//!   is closed after `keepalive_timeout`.
//! - **Write timeout**: a connection whose client has stopped reading (the socket refuses writes)
//!   for `write_timeout` is closed, whatever is in flight: a stream to a client that never reads
//!   must not hold a slot, a key's concurrency and an upstream call forever.
//! - **Connection cap**: at `max_connections`, a new connection takes the place of the one idle the
//!   longest (nothing in flight: idle or still sending headers), as nginx reuses keep-alive
//!   connections; when every one is busy, the new one is served in overflow mode: `/healthz`
//!   answered, anything else a 503 at once, then closed. Overflow connections are capped too;
//!   beyond, a connection is closed unread.
//!
//! A request counts as in flight from its head until its response body is finished or dropped
//! and every byte of it was taken by the socket, so a long stream is never cut by the idle timeout
//! and no answer is cut by an eviction.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::fd_limit::{self, FdLimit};
use super::request_id;
use crate::policy::Policy;
use crate::router::Router;

/// Default `[server] header_read_timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `[server] body_read_timeout`.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `[server] keepalive_timeout`.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `[server] write_timeout`.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `[server] max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default `[server] max_header_bytes`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The pause after `accept` fails for want of descriptors, once a connection was closed to free one.
const FD_BACKOFF: Duration = Duration::from_millis(5);
/// The pause after any other failed `accept`, or when nothing could be closed: never a spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How often running out of descriptors is logged while it lasts.
const FD_WARN_EVERY: Duration = Duration::from_secs(10);
/// How long an overflow connection may take to send its headers.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection settings of `[server]`, defaults filled in. Read again for every connection,
/// so a reload applies to the connections that open after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnSettings {
    pub(crate) header_read_timeout: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_header_bytes: usize,
}

impl ConnSettings {
    /// The settings of `policy` for a process whose descriptor limit is `limit`: the connection
    /// cap is the smaller of `max_connections` and what the limit holds.
    pub(crate) fn of(policy: &Policy, limit: FdLimit) -> Self {
        let server = &policy.server;
        let size = |v: Option<u64>, default: usize| v.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX));
        ConnSettings {
            header_read_timeout: server.header_read_timeout.unwrap_or(DEFAULT_HEADER_READ_TIMEOUT),
            keepalive_timeout: server.keepalive_timeout.unwrap_or(DEFAULT_KEEPALIVE_TIMEOUT),
            write_timeout: server.write_timeout.unwrap_or(DEFAULT_WRITE_TIMEOUT),
            max_connections: fd_limit::effective(
                size(server.max_connections, DEFAULT_MAX_CONNECTIONS),
                limit,
                policy.providers.len(),
            ),
            max_header_bytes: size(server.max_header_bytes, DEFAULT_MAX_HEADER_BYTES).max(1),
        }
    }

    /// Overflow connections allowed beyond the cap: enough for health checks and a few 503s.
    fn overflow(&self) -> usize {
        fd_limit::overflow(self.max_connections)
    }

    /// How long a connection has for its request's headers (and TLS handshake).
    fn head_timeout(&self, overflow: bool) -> Duration {
        if overflow { self.header_read_timeout.min(OVERFLOW_HEADER_TIMEOUT) } else { self.header_read_timeout }
    }
}

/// What one connection is doing, as its watchdog sees it.
#[derive(Debug)]
struct ConnState {
    /// Requests whose response body is not finished.
    in_flight: AtomicUsize,
    /// A byte of a new request arrived since the connection went idle.
    reading: AtomicBool,
    /// The socket refused the last write (the client is not reading).
    write_blocked: AtomicBool,
    activity: Mutex<Activity>,
    changed: Notify,
    close: CancellationToken,
}

#[derive(Debug, Clone, Copy)]
struct Activity {
    /// When the current phase (opened, idle, reading a head) began.
    since: Instant,
    /// Requests answered on this connection.
    served: u64,
    /// Since when writes have been blocked, while they are.
    blocked_since: Instant,
}

/// Why the gateway closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    HeaderTimeout,
    IdleTimeout,
    WriteTimeout,
    Evicted,
}

impl Closed {
    fn as_str(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::WriteTimeout => "write_timeout",
            Closed::Evicted => "evicted",
        }
    }
}

impl ConnState {
    fn new() -> Arc<Self> {
        Arc::new(ConnState {
            in_flight: AtomicUsize::new(0),
            reading: AtomicBool::new(false),
            write_blocked: AtomicBool::new(false),
            activity: Mutex::new(Activity { since: Instant::now(), served: 0, blocked_since: Instant::now() }),
            changed: Notify::new(),
            close: CancellationToken::new(),
        })
    }

    fn activity(&self) -> Activity {
        *self.activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut Activity)) {
        f(&mut self.activity.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        self.changed.notify_one();
    }

    fn on_bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && !self.reading.swap(true, Ordering::AcqRel) {
            // the head timer of a request on a kept-alive connection starts at its first byte
            self.update(|a| {
                if a.served > 0 {
                    a.since = Instant::now();
                }
            });
        }
    }

    fn on_write(&self, blocked: bool) {
        if self.write_blocked.swap(blocked, Ordering::AcqRel) != blocked {
            self.update(|a| {
                if blocked {
                    a.blocked_since = Instant::now();
                }
            });
        }
    }

    /// Nothing in flight and nothing waiting to be written: the connection may be closed or
    /// evicted without cutting an answer.
    fn is_quiet(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.write_blocked.load(Ordering::Acquire)
    }

    fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.reading.store(false, Ordering::Release);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// When the connection must close unless something happens first, and why: a client that
    /// stops reading, whatever is in flight; else none while a request is in flight; else the
    /// header or the idle timeout.
    fn deadline(&self, settings: &ConnSettings, overflow: bool) -> Option<(Instant, Closed)> {
        if self.write_blocked.load(Ordering::Acquire) {
            return Some((self.activity().blocked_since + settings.write_timeout, Closed::WriteTimeout));
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let a = self.activity();
        if a.served == 0 || self.reading.load(Ordering::Acquire) {
            Some((a.since + settings.head_timeout(overflow), Closed::HeaderTimeout))
        } else {
            Some((a.since + settings.keepalive_timeout, Closed::IdleTimeout))
        }
    }

    /// Resolves when the connection is past its deadline.
    async fn expired(&self, settings: ConnSettings, overflow: bool) -> Closed {
        loop {
            let changed = self.changed.notified();
            match self.deadline(&settings, overflow) {
                None => changed.await,
                Some((at, why)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {
                            // re-read: a byte or a request may have come in the meantime
                            if self.deadline(&settings, overflow).is_some_and(|(d, _)| d <= Instant::now()) {
                                return why;
                            }
                        }
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// A request in flight on a connection, ended when its response body is done or dropped.
#[derive(Debug)]
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        if state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            state.reading.store(false, Ordering::Release);
            state.update(|a| {
                a.since = Instant::now();
                a.served += 1;
            });
        } else {
            state.changed.notify_one();
        }
    }
}

/// The open connections of every listener of a gateway, for the cap and for eviction: one
/// descriptor limit holds them all.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
    overflow: AtomicUsize,
    next: AtomicU64,
}

enum Admission {
    Admitted(u64, Arc<ConnState>),
    Overflow,
    Refused,
}

impl Registry {
    fn admit(&self, settings: &ConnSettings) -> Admission {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.len() >= settings.max_connections && !Self::evict(&mut open) {
            drop(open);
            if self.overflow.fetch_add(1, Ordering::AcqRel) < settings.overflow() {
                return Admission::Overflow;
            }
            self.overflow.fetch_sub(1, Ordering::AcqRel);
            return Admission::Refused;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let state = ConnState::new();
        open.insert(id, state.clone());
        Admission::Admitted(id, state)
    }

    /// Closes the connection idle (or dawdling over its headers) the longest, if one is quiet.
    fn evict(open: &mut HashMap<u64, Arc<ConnState>>) -> bool {
        let victim =
            open.iter().filter(|(_, c)| c.is_quiet()).min_by_key(|(_, c)| c.activity().since).map(|(id, _)| *id);
        match victim.and_then(|id| open.remove(&id)) {
            Some(c) => {
                c.close.cancel();
                true
            }
            None => false,
        }
    }

    /// Out of descriptors: makes room as the cap does, by the quietest connection.
    fn evict_quietest(&self) -> bool {
        Self::evict(&mut self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn release(&self, id: u64) {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    }

    /// Connections open now, overflow ones included.
    pub(crate) fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
            + self.overflow.load(Ordering::Acquire)
    }
}

pin_project_lite::pin_project! {
    /// The socket, telling the watchdog when bytes arrive.
    struct Watched<T> {
        #[pin]
        io: T,
        state: Arc<ConnState>,
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.state.on_bytes_read();
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.io.poll_write(cx, buf);
        this.state.on_write(polled.is_pending());
        polled
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let polled = this.io.poll_flush(cx);
        this.state.on_write(polled.is_pending());
        polled
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.io.poll_write_vectored(cx, bufs);
        this.state.on_write(polled.is_pending());
        polled
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Serves `app` on `listener` until `stop` turns true; then lets each connection finish what it
/// has in flight (closing it after), until `abort` is cancelled.
pub(crate) fn spawn_server(
    listener: TcpListener,
    app: axum::Router,
    router: Router,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
    abort: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let limit = fd_limit::raise();
        let tracker = TaskTracker::new();
        let mut warned: Option<Instant> = None;
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                a = listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) if fd_limit::exhausted(&e) => {
                    // the cap should prevent it (other descriptors may not be ours to count): make
                    // room as at the cap, and give the closed socket a moment to be released
                    let evicted = registry.evict_quietest();
                    if evicted {
                        metrics::counter!("switchyard_connections_closed_total", "reason" => "fd_limit").increment(1);
                    }
                    if warned.is_none_or(|at| at.elapsed() >= FD_WARN_EVERY) {
                        warned = Some(Instant::now());
                        tracing::warn!(evicted, open = registry.open(), "accept failed: out of file descriptors: {e}");
                    }
                    tokio::time::sleep(if evicted { FD_BACKOFF } else { ACCEPT_BACKOFF }).await;
                    continue;
                }
                Err(e) => {
                    // a connection reset before it was accepted and the like
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            // streams are many small writes: Nagle would hold each back until the client's
            // delayed ACK (~40 ms)
            let _ = tcp.set_nodelay(true);
            let policy = router.policy();
            let settings = ConnSettings::of(&policy, limit);
            let tls = policy.server.tls_acceptor();
            drop(policy);
            let admission = registry.admit(&settings);
            let (app, registry, stop, abort) = (app.clone(), registry.clone(), stop.clone(), abort.clone());
            tracker.spawn(async move {
                match admission {
                    Admission::Admitted(id, state) => {
                        metrics::gauge!("switchyard_connections_open").increment(1.0);
                        serve_connection(tcp, peer, tls, app, state, settings, false, stop, abort).await;
                        registry.release(id);
                        metrics::gauge!("switchyard_connections_open").decrement(1.0);
                    }
                    Admission::Overflow => {
                        let state = ConnState::new();
                        serve_connection(tcp, peer, tls, app, state, settings, true, stop, abort).await;
                        registry.overflow.fetch_sub(1, Ordering::AcqRel);
                    }
                    Admission::Refused => {
                        metrics::counter!("switchyard_connections_closed_total", "reason" => "refused").increment(1);
                        drop(tcp);
                    }
                }
            });
        }
        drop(listener);
        tracker.close();
        tracker.wait().await;
    })
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    state: Arc<ConnState>,
    settings: ConnSettings,
    overflow: bool,
    stop: watch::Receiver<bool>,
    abort: CancellationToken,
) {
    match tls {
        None => drive(tcp, app, state, settings, overflow, stop, abort).await,
        Some(acceptor) => {
            // the handshake is part of what must happen within the header timeout
            let handshake = tokio::time::timeout(settings.header_read_timeout, acceptor.accept(tcp));
            match handshake.await {
                Ok(Ok(stream)) => drive(stream, app, state, settings, overflow, stop, abort).await,
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    metrics::counter!("switchyard_connections_closed_total", "reason" => "header_timeout").increment(1);
                }
            }
        }
    }
}

async fn drive<T>(
    io: T,
    app: axum::Router,
    state: Arc<ConnState>,
    settings: ConnSettings,
    overflow: bool,
    mut stop: watch::Receiver<bool>,
    abort: CancellationToken,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched { io, state: state.clone() });
    let service_state = state.clone();
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let guard = service_state.begin_request();
        let app = app.clone();
        async move {
            let request = request.map(Body::new);
            let response =
                if overflow { overflow_answer(request, app).await } else { request_id::serve(request, app).await };
            // the request stays in flight until its body is finished (a stream) or dropped
            Ok::<_, std::convert::Infallible>(response.map(|b| {
                Body::new(b.map_frame(move |f| {
                    let _ = &guard;
                    f
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_header_size(settings.max_header_bytes).keep_alive(!overflow).header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    let closed = loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
                break None;
            }
            why = state.expired(settings, overflow) => break Some(why),
            () = state.close.cancelled() => break Some(Closed::Evicted),
            () = abort.cancelled() => break None,
            _ = stop.wait_for(|s| *s), if !stopping => {
                // finish what is in flight, then close; an idle connection closes now
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    if let Some(why) = closed {
        tracing::debug!(reason = why.as_str(), "closing a client connection");
        metrics::counter!("switchyard_connections_closed_total", "reason" => why.as_str()).increment(1);
    }
}

/// An overflow connection's one answer: `/healthz` as usual, anything else a 503 at once.
async fn overflow_answer(request: Request<Body>, app: axum::Router) -> Response<Body> {
    if request.method() == Method::GET && request.uri().path() == "/healthz" {
        return match app.oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
    }
    metrics::counter!("switchyard_connections_closed_total", "reason" => "overflow").increment(1);
    let body = serde_json::json!({"error": {
        "message": "the gateway is at its connection limit (`[server] max_connections`, or what its file-descriptor limit holds): retry shortly",
        "type": "overloaded_error",
    }});
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn settings() -> ConnSettings {
        ConnSettings {
            header_read_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_millis(200),
            max_connections: 4,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }

    /// A client that asks for a large answer and never reads it: its connection is closed after
    /// the write timeout, though its request is still in flight.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
        let app = axum::Router::new().route("/big", axum::routing::get(|| async { "x".repeat(1 << 20) }));
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap_or_else(|_| unreachable!());
        let state = ConnState::new();
        let (_stop_tx, stop) = watch::channel(false);
        let served = drive(server, app, state.clone(), settings(), false, stop, CancellationToken::new());
        let closed = tokio::time::timeout(Duration::from_secs(30), served).await;
        assert!(closed.is_ok(), "still open with its client not reading");
        assert!(state.write_blocked.load(Ordering::Acquire), "closed while the socket refused writes");
        drop(client);
    }

    /// At the cap, a quiet connection makes room; one busy answering, or whose answer the socket
    /// has not taken yet, does not.
    #[test]
    fn eviction_takes_only_quiet_connections() {
        let registry = Registry::default();
        let s = ConnSettings { max_connections: 2, ..settings() };
        let Admission::Admitted(_, busy) = registry.admit(&s) else { unreachable!() };
        let Admission::Admitted(_, writing) = registry.admit(&s) else { unreachable!() };
        let _in_flight = busy.begin_request();
        writing.write_blocked.store(true, Ordering::Release);
        assert!(matches!(registry.admit(&s), Admission::Overflow), "nothing quiet to evict");
        writing.write_blocked.store(false, Ordering::Release);
        assert!(matches!(registry.admit(&s), Admission::Admitted(..)), "the quiet one made room");
        assert!(writing.close.is_cancelled() && !busy.close.is_cancelled());
    }
}
