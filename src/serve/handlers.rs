//! The gateway's endpoints.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;

use super::auth::ClientKeys;
use super::dialect::{Dialect, Encoder, Failure, Parsed};
use super::status;
use crate::error::ErrorClass;
use crate::router::{RoutedResponse, Router, RouterError, StreamOptions};

/// What every handler shares.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) router: Router,
    pub(crate) keys: Arc<ClientKeys>,
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub(crate) limits: super::FieldLimits,
}

fn failure_from(_route: &str, e: &RouterError) -> Failure {
    match e {
        RouterError::UnknownRoute(r) => Failure {
            class: ErrorClass::NotFound,
            message: format!(
                "The model `{r}` does not exist: it names no route of this gateway (GET /v1/models lists them)"
            ),
            route: Some(r.clone()),
            provider: None,
            model: None,
            attempts: Vec::new(),
            mid_stream: false,
        },
        RouterError::Failed(f) => Failure {
            class: f.class,
            message: f.message.clone(),
            route: Some(f.route.clone()),
            provider: f.provider.clone(),
            model: f.model.clone(),
            attempts: f.attempts.clone(),
            mid_stream: f.mid_stream,
        },
    }
}

fn error_response<D: Dialect>(failure: &Failure, retry_after: Option<std::time::Duration>) -> Response {
    let mut response = (status::for_class(failure.class), axum::Json(D::error(failure))).into_response();
    if let Some(wait) = retry_after.filter(|_| failure.class == ErrorClass::RateLimited) {
        // whole seconds, rounded up: the soonest a target frees up
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

fn simple_failure(class: ErrorClass, message: impl Into<String>) -> Failure {
    Failure {
        class,
        message: message.into(),
        route: None,
        provider: None,
        model: None,
        attempts: Vec::new(),
        mid_stream: false,
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Why a request is beyond the `[server]` field limits, naming the field, the limit and its key.
fn over_limits(parsed: &Parsed, limits: super::FieldLimits) -> Option<String> {
    let checks = [
        ("model", "bytes", parsed.route.len(), limits.model_bytes, "max_model_bytes"),
        ("messages", "messages", parsed.request.messages.len(), limits.messages, "max_messages"),
        ("tools", "tools", parsed.request.tools.len(), limits.tools, "max_tools"),
    ];
    checks.into_iter().find(|c| c.2 > c.3).map(|(field, unit, n, max, key)| {
        format!("`{field}` has {n} {unit}: this gateway takes at most {max} (`[server] {key}`)")
    })
}

/// The route as a metric label: a route of the policy in force, or `unknown`. A label never
/// comes from what a client wrote: 20,000 made-up model names must not make 20,000 series.
fn route_label(router: &Router, route: &str) -> String {
    if router.has_route(route) { route.to_owned() } else { "unknown".to_owned() }
}

fn record_request(endpoint: &'static str, route: &str, class: Option<ErrorClass>, started: Instant) {
    metrics::counter!(
        "switchyard_requests_total",
        "endpoint" => endpoint,
        "route" => route.to_owned(),
        "outcome" => if class.is_none() { "ok" } else { "error" },
        "class" => class.map_or("", |c| c.as_str()),
    )
    .increment(1);
    metrics::histogram!("switchyard_request_duration_seconds", "endpoint" => endpoint, "route" => route.to_owned())
        .record(started.elapsed().as_secs_f64());
}

/// In front of `POST /v1/chat/completions` and `POST /v1/messages`: the key is checked from the
/// headers, and a request without an accepted one gets its 401 (in the endpoint's dialect) before
/// any byte of its body is read: an unauthenticated upload costs the gateway nothing.
pub(crate) async fn authenticate<D: Dialect>(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !state.keys.accepts(request.headers()) {
        return error_response::<D>(&simple_failure(ErrorClass::Authentication, "missing or unknown API key"), None);
    }
    next.run(request).await
}

/// `POST /v1/chat/completions` and `POST /v1/messages`.
pub(crate) async fn chat<D: Dialect>(
    endpoint: &'static str,
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    // (the key was checked by `authenticate`, before the body was read)
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let class = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ErrorClass::RequestTooLarge
            } else {
                ErrorClass::InvalidRequest
            };
            return error_response::<D>(&simple_failure(class, rejection.body_text()), None);
        }
    };
    let mut parsed = match D::parse(body) {
        Ok(p) => p,
        Err(message) => {
            record_request(endpoint, "", Some(ErrorClass::InvalidRequest), started);
            return error_response::<D>(&simple_failure(ErrorClass::InvalidRequest, message), None);
        }
    };
    if let Some(message) = over_limits(&parsed, state.limits) {
        record_request(endpoint, "", Some(ErrorClass::InvalidRequest), started);
        return error_response::<D>(&simple_failure(ErrorClass::InvalidRequest, message), None);
    }
    D::read_headers(&mut parsed, &headers);
    if parsed.stream {
        stream::<D>(endpoint, &state.router, parsed, started).await
    } else {
        let route = parsed.route.clone();
        let label = route_label(&state.router, &route);
        match state.router.chat_decoded(parsed).await {
            Ok(r) => {
                record_request(endpoint, &label, None, started);
                ok_response::<D>(&r)
            }
            Err(e) => {
                record_request(endpoint, &label, Some(e.class()), started);
                let retry_after = e.failure().and_then(|f| f.retry_after);
                error_response::<D>(&failure_from(&route, &e), retry_after)
            }
        }
    }
}

fn ok_response<D: Dialect>(r: &RoutedResponse) -> Response {
    let mut response = (StatusCode::OK, axum::Json(D::response(r))).into_response();
    let h = response.headers_mut();
    set(h, "x-switchyard-provider", &r.response.provider);
    set(h, "x-switchyard-model", &r.response.model);
    set(h, "x-switchyard-attempts", &r.attempts.len().to_string());
    if let Some(id) = &r.response.request_id {
        set(h, "x-switchyard-upstream-request-id", id);
    }
    if !r.dropped.is_empty() {
        set(h, "x-switchyard-dropped", &crate::wire::dropped_header(&r.dropped));
    }
    response
}

async fn stream<D: Dialect>(endpoint: &'static str, router: &Router, parsed: Parsed, started: Instant) -> Response {
    let route = parsed.route.clone();
    let label = route_label(router, &route);
    let include_usage = parsed.include_usage;
    // the gateway cannot take back what a client has shown: no restarts, an error event instead
    let mut s = match router.chat_stream_decoded(parsed, StreamOptions { allow_restart: false }).await {
        Ok(s) => s,
        Err(e) => {
            record_request(endpoint, &label, Some(e.class()), started);
            return error_response::<D>(&failure_from(&route, &e), e.failure().and_then(|f| f.retry_after));
        }
    };
    // wait for the first event: until then a failure is still an ordinary HTTP error
    let first = match s.next().await {
        Some(Ok(event)) => event,
        Some(Err(e)) => {
            record_request(endpoint, &label, Some(e.class()), started);
            return error_response::<D>(&failure_from(&route, &e), e.failure().and_then(|f| f.retry_after));
        }
        None => {
            record_request(endpoint, &label, Some(ErrorClass::StreamInterrupted), started);
            return error_response::<D>(
                &simple_failure(ErrorClass::StreamInterrupted, "the stream ended before any event"),
                None,
            );
        }
    };
    let (provider, model) = s.served_by().map(|(p, m)| (p.to_owned(), m.to_owned())).unwrap_or_default();
    let dropped = crate::wire::dropped_header(s.dropped());
    let mut encoder = D::encoder(include_usage, &provider, &model);
    // an envelope before the first content opens nothing: the stream opens with the content
    let opening = encoder.event(&first);
    let body = futures::stream::unfold(
        (s, encoder, Some(opening), false, label.clone()),
        // the state carries the route's metric label
        move |(mut s, mut encoder, pending, done, label)| async move {
            if let Some(bytes) = pending {
                return Some((coalesce(bytes), (s, encoder, None, done, label)));
            }
            if done {
                return None;
            }
            match s.next().await {
                Some(Ok(event)) => {
                    let bytes = encoder.event(&event);
                    Some((coalesce(bytes), (s, encoder, None, false, label)))
                }
                Some(Err(e)) => {
                    record_request(endpoint, &label, Some(e.class()), started);
                    let bytes = encoder.error(&failure_from(&label, &e));
                    Some((coalesce(bytes), (s, encoder, None, true, label)))
                }
                None => {
                    if s.summary().is_some() {
                        record_request(endpoint, &label, None, started);
                    }
                    None
                }
            }
        },
    )
    .filter_map(|bytes| std::future::ready(bytes.map(Ok::<Bytes, std::convert::Infallible>)));
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    set(h, "x-switchyard-provider", &provider);
    set(h, "x-switchyard-model", &model);
    if !dropped.is_empty() {
        set(h, "x-switchyard-dropped", &dropped);
    }
    response
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

/// `GET /v1/models`: the routes, as models.
pub(crate) async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.keys.accepts(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"message": "missing or unknown API key", "type": "authentication_error"}})),
        )
            .into_response();
    }
    let policy = state.router.policy();
    let data: Vec<_> = policy
        .routes
        .values()
        .map(|r| {
            let targets: Vec<String> = r.targets.iter().map(|t| format!("{}/{}", t.provider, t.model)).collect();
            json!({ "id": r.name, "object": "model", "created": 0, "owned_by": "switchyard", "targets": targets })
        })
        .collect();
    axum::Json(json!({ "object": "list", "data": data })).into_response()
}

/// `GET /healthz`.
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let h = state.router.health();
    axum::Json(json!({ "status": "ok", "policy_version": h.policy_version, "policy_hash": h.policy_hash }))
        .into_response()
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.keys.accepts(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match &state.metrics {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder not installed in this process\n").into_response(),
    }
}

/// `GET /admin/state`: policy version and hash, last reload error, breakers, pauses, limiters, faults.
pub(crate) async fn admin_state(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.keys.accepts(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(state.router.health()).into_response()
}
