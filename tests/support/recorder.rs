//! A provider stand-in that records each request as it arrived and answers with a canned reply,
//! for the adapters' wire tests: what exactly went out, and what the adapter made of a given answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// What the server answers: status, headers, body pieces (each written as it comes), an optional
/// wait before answering, and optionally a connection kept open after the body.
#[derive(Debug, Clone, Default)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub chunks: Vec<String>,
    pub hang_after_body: bool,
    pub delay: Duration,
}

impl Canned {
    /// `status` with `body` as it is, no headers.
    pub fn new(status: u16, body: impl Into<String>) -> Canned {
        Canned { status, chunks: vec![body.into()], ..Canned::default() }
    }

    /// A JSON answer with an `x-request-id`.
    pub fn json(status: u16, body: Value) -> Canned {
        Canned::new(status, body.to_string())
            .header("content-type", "application/json")
            .header("x-request-id", "req_wire_1")
    }

    /// An OpenAI-style event stream: each of `events` as one `data:` event.
    pub fn sse(events: &[&str]) -> Canned {
        Canned {
            status: 200,
            headers: vec![("content-type", "text/event-stream".into()), ("x-request-id", "req_sse_1".into())],
            chunks: events.iter().map(|e| format!("data: {e}\n\n")).collect(),
            ..Canned::default()
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Canned {
        self.headers.push((name, value.into()));
        self
    }
}

type Log = Arc<Mutex<Vec<Recorded>>>;

/// A recording server on a free loopback port.
pub struct Recorder {
    pub addr: SocketAddr,
    log: Log,
}

impl Recorder {
    /// Starts the server; every request gets `canned`.
    pub async fn start(canned: Canned) -> Recorder {
        let log: Log = Arc::default();
        let app = axum::Router::new().fallback(answer).with_state((log.clone(), Arc::new(canned)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Recorder { addr, log }
    }

    /// `http://ADDR`, no trailing slash.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What arrived so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

async fn answer(State((log, canned)): State<(Log, Arc<Canned>)>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    log.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body,
    });
    tokio::time::sleep(canned.delay).await;
    let pieces = canned.chunks.clone().into_iter().map(|c| Ok::<_, Infallible>(Bytes::from(c)));
    let body = if canned.hang_after_body {
        Body::from_stream(futures::stream::iter(pieces).chain(futures::stream::pending()))
    } else {
        Body::from_stream(futures::stream::iter(pieces))
    };
    let mut response = Response::builder().status(canned.status);
    for (name, value) in &canned.headers {
        response = response.header(*name, value);
    }
    response.body(body).unwrap()
}
