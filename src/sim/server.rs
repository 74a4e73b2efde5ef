//! The HTTP side: an accept loop that can drop a single connection, the routes, the handlers.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::answer;
use super::anthropic::AnthropicWire;
use super::fault::{Fault, FaultRule};
use super::openai::OpenAiWire;
use super::responses::ResponsesWire;
use super::state::{RecordedRequest, SimState};
use super::stream;
use super::wire::{Dialect, Ids, StatusOverrides, WireError};
use crate::provider::Protocol;

/// Largest request body accepted (prompts in context-overflow tests are big).
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Lets a handler drop the connection its request came on (the `Reset` fault).
#[derive(Debug, Clone)]
struct Connection {
    kill: CancellationToken,
}

/// Accepts connections until `shutdown`, then drops every open one (hung and held ones too).
pub(crate) async fn serve(listener: TcpListener, state: Arc<SimState>, shutdown: CancellationToken) {
    let router = router(state.clone());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, router.clone(), state.clone(), shutdown.child_token()));
                }
                // out of file descriptors and the like: give open connections a moment to close
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

async fn connection(stream: TcpStream, router: Router, state: Arc<SimState>, kill: CancellationToken) {
    let _open = state.connection_guard();
    // one small write per event: do not let Nagle hold them back
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(router.layer(Extension(Connection { kill: kill.clone() })));
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    // dropping `conn` closes the socket with nothing written
    tokio::select! {
        _ = conn => {}
        () = kill.cancelled() => {}
    }
}

fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/responses", post(openai_responses))
        .route("/anthropic/v1/messages", post(anthropic_chat))
        .route("/anthropic/v1/messages/count_tokens", post(anthropic_count))
        .route("/status/{page}/api/v2/summary.json", axum::routing::get(status_page))
        .route("/_sim/faults", post(add_fault).get(list_faults).delete(clear_faults))
        .route("/_sim/faults/{id}", delete(remove_fault))
        .route("/_sim/requests", axum::routing::get(list_requests).delete(clear_requests))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn status_page(State(state): State<Arc<SimState>>, Path(page): Path<String>) -> Response {
    let (status, body, delay) = state.status_pages.answer(&page);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn openai_chat(
    State(state): State<Arc<SimState>>,
    Extension(conn): Extension<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat(&OpenAiWire, &state, &conn, &headers, &body).await
}

async fn openai_responses(
    State(state): State<Arc<SimState>>,
    Extension(conn): Extension<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat(&ResponsesWire, &state, &conn, &headers, &body).await
}

async fn anthropic_chat(
    State(state): State<Arc<SimState>>,
    Extension(conn): Extension<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    chat(&AnthropicWire, &state, &conn, &headers, &body).await
}

/// A request as every endpoint takes it in: its ids, its JSON, its model, the fault that hits it
/// (one named by the request itself, the router's fault injection, comes first), logged.
struct Arrival {
    ids: Ids,
    parsed: Option<Value>,
    model: Option<String>,
    fault: Option<Fault>,
}

fn arrive(
    state: &SimState,
    headers: &HeaderMap,
    raw: &Bytes,
    protocol: Protocol,
    endpoint: &str,
    stream_key: bool,
) -> Arrival {
    let ids = Ids { seq: state.next_request(), created: unix_now() };
    let parsed: Option<Value> = serde_json::from_slice(raw).ok();
    let model = parsed.as_ref().and_then(|b| b.get("model")).and_then(Value::as_str).map(str::to_owned);
    let stream = stream_key && parsed.as_ref().and_then(|b| b.get("stream")).and_then(Value::as_bool) == Some(true);
    let fault = headers
        .get(super::FAULT_HEADER)
        .and_then(|v| serde_json::from_slice::<Fault>(v.as_bytes()).ok())
        .or_else(|| state.pick_fault(protocol, model.as_deref(), stream));
    state.record(RecordedRequest {
        protocol,
        model: model.clone().unwrap_or_default(),
        stream,
        headers: header_pairs(headers),
        body: parsed.clone().unwrap_or_else(|| Value::String(String::from_utf8_lossy(raw).into_owned())),
        fault: fault.as_ref().map(|f| f.kind().to_owned()),
        request_id: ids.request_id(),
        endpoint: endpoint.into(),
    });
    Arrival { ids, parsed, model, fault }
}

/// The faults that answer in place of the endpoint (a reset, a hang, a status, a raw body); the
/// others are handed back for the endpoint to apply.
async fn answered_by_fault(
    fault: Option<Fault>,
    dialect: &dyn Dialect,
    conn: &Connection,
    model: Option<&str>,
    ids: Ids,
) -> Result<Option<Fault>, Response> {
    match fault {
        Some(Fault::Reset) => {
            conn.kill.cancel();
            std::future::pending().await
        }
        Some(Fault::Hang) => std::future::pending().await,
        Some(fault @ Fault::Status { .. }) => Err(status_fault(dialect, &fault, model.unwrap_or_default(), ids)),
        Some(Fault::RawBody { status, content_type, body }) => {
            let mut response = (status_code(status), body).into_response();
            set_header(&mut response, header::CONTENT_TYPE.as_str(), Some(&content_type));
            Err(response)
        }
        other => Ok(other),
    }
}

async fn chat(
    dialect: &dyn Dialect,
    state: &SimState,
    conn: &Connection,
    headers: &HeaderMap,
    raw: &Bytes,
) -> Response {
    let Arrival { ids, parsed, model, fault } =
        arrive(state, headers, raw, dialect.protocol(), dialect.endpoint(), true);
    let stream = parsed.as_ref().and_then(|b| b.get("stream")).and_then(Value::as_bool) == Some(true);
    let body = parsed.unwrap_or(Value::Null);
    let fault = match answered_by_fault(fault, dialect, conn, model.as_deref(), ids).await {
        Ok(f) => f,
        Err(response) => return response,
    };
    let quota = model.as_deref().and_then(|m| state.quotas.take(dialect.protocol(), m));
    let mut response = match (quota, fault) {
        (Some(q), _) if !q.allowed => {
            // whole seconds, rounded up, as the providers write `retry-after`
            let secs = q.next.as_secs() + u64::from(q.next.subsec_nanos() > 0);
            let limited = Fault::status_retry_after(429, secs.to_string());
            status_fault(dialect, &limited, model.as_deref().unwrap_or_default(), ids)
        }
        (_, Some(Fault::Latency { delay })) => {
            tokio::time::sleep(delay.get()).await;
            respond(dialect, &body, (stream, None), &state.prompt_cache, ids)
        }
        (_, Some(Fault::SlowFirstToken { delay })) if !stream => {
            tokio::time::sleep(delay.get()).await;
            respond(dialect, &body, (stream, None), &state.prompt_cache, ids)
        }
        (_, fault) => respond(dialect, &body, (stream, fault.as_ref()), &state.prompt_cache, ids),
    };
    for (name, value) in quota.map(|q| super::quota::headers(dialect.protocol(), q)).unwrap_or_default() {
        set_header(&mut response, name, Some(&value));
    }
    response
}

/// Anthropic's `POST /v1/messages/count_tokens`: the same fault rules as the model's messages
/// (a rule for a model applies to both), the endpoint's own validation (no `max_tokens`, no
/// `stream`: it refuses what it does not take), and a count that is a pure function of the body
/// (a token per four characters of its text, at least one per message), so tests can predict it.
async fn anthropic_count(
    State(state): State<Arc<SimState>>,
    Extension(conn): Extension<Connection>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let dialect = &AnthropicWire;
    let arrival = arrive(&state, &headers, &raw, Protocol::Anthropic, "/v1/messages/count_tokens", false);
    let Arrival { ids, parsed, model, fault } = arrival;
    match answered_by_fault(fault, dialect, &conn, model.as_deref(), ids).await {
        Ok(Some(Fault::Latency { delay })) => tokio::time::sleep(delay.get()).await,
        Ok(_) => {}
        Err(response) => return response,
    }
    let invalid = |message: String| invalid_request(dialect, message, ids);
    let Some(Value::Object(body)) = parsed else { return invalid("the body is not a JSON object".into()) };
    let generation =
        ["max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata", "service_tier"];
    if let Some(extra) = body.keys().find(|k| generation.contains(&k.as_str())) {
        return invalid(format!("{extra}: Extra inputs are not permitted"));
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return invalid("messages: Field required".into());
    };
    let mut chars = 0usize;
    let mut text = |v: &Value| chars += strings(v);
    text(&body["messages"]);
    body.get("system").into_iter().for_each(&mut text);
    body.get("tools").into_iter().for_each(&mut text);
    let count = (chars / 4).max(messages.len());
    let mut response = Json(serde_json::json!({ "input_tokens": count })).into_response();
    set_header(&mut response, dialect.request_id_header(), Some(&ids.request_id()));
    response
}

/// OpenAI's `POST /v1/embeddings`: the same fault rules as the model's chat, and vectors that
/// are a pure function of each input and the model (unit length; `dimensions` when asked, else
/// the model's own length), floats or base64 as `encoding_format` asks.
async fn openai_embeddings(
    State(state): State<Arc<SimState>>,
    Extension(conn): Extension<Connection>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let dialect = &OpenAiWire;
    let Arrival { ids, parsed, model, fault } =
        arrive(&state, &headers, &raw, Protocol::Openai, "/v1/embeddings", false);
    match answered_by_fault(fault, dialect, &conn, model.as_deref(), ids).await {
        Ok(Some(Fault::Latency { delay })) => tokio::time::sleep(delay.get()).await,
        Ok(_) => {}
        Err(response) => return response,
    }
    let invalid = |message: &str| invalid_request(dialect, message, ids);
    let Some(body) = parsed else { return invalid("We could not parse the JSON body of your request.") };
    let model = model.unwrap_or_default();
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned)).collect()
        }
        _ => return invalid("'input' is a required property"),
    };
    let native = match model.as_str() {
        "text-embedding-3-large" => 3072,
        "mistral-embed" => 1024,
        "text-embedding-3-small" | "text-embedding-ada-002" => 1536,
        _ => 8,
    };
    let dims = body.get("dimensions").and_then(Value::as_u64).map_or(native, |d| d as usize);
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let vector = sim_vector(&model, text, dims);
            let embedding = if base64 {
                use base64::Engine;
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.chars().count().div_ceil(4)).sum();
    let answer = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    let mut response = Json(answer).into_response();
    set_header(&mut response, dialect.request_id_header(), Some(&ids.request_id()));
    response
}

/// A unit vector that depends only on the model and the text.
fn sim_vector(model: &str, text: &str, dims: usize) -> Vec<f32> {
    use std::hash::{Hash, Hasher};
    let mut raw: Vec<f32> = (0..dims)
        .map(|i| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (model, text, i).hash(&mut h);
            (h.finish() % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    raw.iter_mut().for_each(|x| *x /= norm);
    raw
}

/// The characters of every string in `v`.
fn strings(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.iter().map(strings).sum(),
        Value::Object(o) => o.values().map(strings).sum(),
        _ => 0,
    }
}

/// The model's answer (or its 4xx), streamed with `fault` applied when asked to stream.
fn respond(
    dialect: &dyn Dialect,
    body: &Value,
    (stream, fault): (bool, Option<&Fault>),
    cache: &super::cache::PromptCache,
    ids: Ids,
) -> Response {
    let answered = dialect.prompt(body).and_then(|prompt| {
        let mut answer = answer::answer(dialect.protocol(), &prompt)?;
        cache.apply(dialect.protocol(), &prompt, &mut answer);
        Ok(answer)
    });
    let answer = match answered {
        Ok(answer) => answer,
        Err(reject) => return error_response(dialect, &dialect.reject(&reject), ids),
    };
    let mut response = if stream {
        let steps = stream::plan(dialect.script(&answer, body, ids), fault, dialect, ids);
        let mut response = stream::body(steps).into_response();
        set_header(&mut response, header::CONTENT_TYPE.as_str(), Some("text/event-stream; charset=utf-8"));
        set_header(&mut response, header::CACHE_CONTROL.as_str(), Some("no-cache"));
        response
    } else {
        Json(dialect.response(&answer, ids)).into_response()
    };
    set_header(&mut response, dialect.request_id_header(), Some(&ids.request_id()));
    response
}

/// A [`Fault::Status`]: the dialect's error body for the status, and the retry headers asked for.
fn status_fault(dialect: &dyn Dialect, fault: &Fault, model: &str, ids: Ids) -> Response {
    let Fault::Status { status, error_type, code, message, retry_after, retry_after_ms, should_retry } = fault else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let overrides =
        StatusOverrides { error_type: error_type.as_deref(), code: code.as_deref(), message: message.as_deref() };
    let mut response = error_response(dialect, &dialect.status_error(*status, overrides, model), ids);
    set_header(&mut response, "retry-after", retry_after.as_deref());
    set_header(&mut response, "retry-after-ms", retry_after_ms.as_deref());
    set_header(&mut response, "x-should-retry", should_retry.map(|r| if r { "true" } else { "false" }));
    response
}

/// A 400 `invalid_request_error` in the dialect's shape.
fn invalid_request(dialect: &dyn Dialect, message: impl Into<String>, ids: Ids) -> Response {
    let error = WireError {
        status: 400,
        error_type: "invalid_request_error".into(),
        code: None,
        message: message.into(),
        param: None,
    };
    error_response(dialect, &error, ids)
}

fn error_response(dialect: &dyn Dialect, error: &WireError, ids: Ids) -> Response {
    let mut response = (status_code(error.status), Json(dialect.error_body(error, ids))).into_response();
    set_header(&mut response, dialect.request_id_header(), Some(&ids.request_id()));
    response
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Sets a header; a value that cannot be a header (from a hand-written fault) is left out.
fn set_header(response: &mut Response, name: &str, value: Option<&str>) {
    let (Ok(name), Some(Ok(value))) = (HeaderName::try_from(name), value.map(HeaderValue::from_str)) else {
        return;
    };
    response.headers_mut().insert(name, value);
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers.iter().map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

async fn add_fault(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultRule>(&body) {
        Ok(rule) => Json(json!({ "id": state.add_fault(rule) })).into_response(),
        Err(e) => {
            (StatusCode::BAD_REQUEST, Json(json!({ "error": format!("invalid fault rule: {e}") }))).into_response()
        }
    }
}

async fn list_faults(State(state): State<Arc<SimState>>) -> Response {
    Json(state.faults()).into_response()
}

async fn clear_faults(State(state): State<Arc<SimState>>) -> Response {
    Json(json!({ "removed": state.clear_faults() })).into_response()
}

async fn remove_fault(State(state): State<Arc<SimState>>, Path(id): Path<u64>) -> Response {
    if state.remove_fault(id) {
        Json(json!({ "removed": 1 })).into_response()
    } else {
        (StatusCode::NOT_FOUND, Json(json!({ "error": format!("no fault rule {id}") }))).into_response()
    }
}

async fn list_requests(State(state): State<Arc<SimState>>) -> Response {
    let log: Vec<RecordedRequest> = state.requests().iter().map(RecordedRequest::redacted).collect();
    Json(log).into_response()
}

async fn clear_requests(State(state): State<Arc<SimState>>) -> Response {
    state.clear_requests();
    StatusCode::NO_CONTENT.into_response()
}
