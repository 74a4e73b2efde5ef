//! The gateway's endpoints.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;

use super::auth::{self, Caller, KeyLimiters, Refusal};
use super::dialect::{Dialect, Failure, Parsed};
use super::relay;
use super::status;
use crate::error::ErrorClass;
use crate::router::meter::Meter;
use crate::router::{RoutedResponse, Router, RouterError, StreamOptions};

/// What every handler shares.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) router: Router,
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub(crate) key_limiters: Arc<KeyLimiters>,
    /// What the dashboard shows.
    pub(crate) dashboard: Arc<super::dashboard::Dashboard>,
    /// Faults injected through `POST /admin/faults`.
    #[cfg(feature = "sim")]
    pub(crate) faults: Arc<super::faults::ApiFaults>,
    /// Turns true when the gateway shuts down (long-lived streams end then).
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
    /// The client connections of every listener.
    pub(crate) connections: Arc<super::conn::Registry>,
}

/// The caller, as `authenticate` found it.
pub(crate) type CallerOf = axum::Extension<Caller>;

pub(super) fn failure_from(e: &RouterError) -> Failure {
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
            provider_incidents: Vec::new(),
        },
        RouterError::Failed(f) => Failure {
            class: f.class,
            message: f.message.clone(),
            route: Some(f.route.clone()),
            provider: f.provider.clone(),
            model: f.model.clone(),
            attempts: f.attempts.clone(),
            mid_stream: f.mid_stream,
            provider_incidents: f.provider_incidents.clone(),
        },
    }
}

fn error_response<D: Dialect>(failure: &Failure, retry_after: Option<std::time::Duration>) -> Response {
    let mut response = (status::for_class(failure.class), axum::Json(D::error(failure))).into_response();
    if let Some(wait) =
        retry_after.filter(|_| matches!(failure.class, ErrorClass::RateLimited | ErrorClass::BudgetExhausted))
    {
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
        provider_incidents: Vec::new(),
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Why a request is beyond the `[server]` field limits, naming the field, the limit and its key.
fn over_limits(parsed: &Parsed, limits: &super::RequestLimits) -> Option<String> {
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

pub(super) fn record_request(
    endpoint: &'static str,
    route: &str,
    key: &str,
    class: Option<ErrorClass>,
    started: Instant,
) {
    metrics::counter!(
        "switchyard_requests_total",
        "endpoint" => endpoint,
        "route" => route.to_owned(),
        "key" => key.to_owned(),
        "outcome" => if class.is_none() { "ok" } else { "error" },
        "class" => class.map_or("", |c| c.as_str()),
    )
    .increment(1);
    metrics::histogram!("switchyard_request_duration_seconds", "endpoint" => endpoint, "route" => route.to_owned())
        .record(started.elapsed().as_secs_f64());
}

/// In front of the API endpoints: the key is checked from the headers, against the keys of the
/// policy in force, and a request without an accepted one gets its 401 (in the endpoint's
/// dialect) before any byte of its body is read: an unauthenticated upload costs the gateway
/// nothing.
pub(crate) async fn authenticate<D: Dialect>(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let keys = state.router.policy().server.client_keys.clone();
    match auth::identify(&keys, request.headers()) {
        Ok(caller) => {
            tracing::Span::current().record("key", tracing::field::display(caller.name()));
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refusal) => refused::<D>(refusal),
    }
}

/// In front of `/metrics` and `/admin/*`: an admin key, when the gateway has keys.
pub(crate) async fn admin_only(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let keys = state.router.policy().server.client_keys.clone();
    let reading = matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    match auth::admin(&keys, request.headers(), reading) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            let unknown = matches!(refusal, Refusal::Unknown);
            let mut response = refused::<OpenAiDialect>(refusal);
            if unknown {
                // a browser asks for the key then (the dashboard), and sends it with every request
                response.headers_mut().insert(
                    "www-authenticate",
                    axum::http::HeaderValue::from_static("Basic realm=\"switchyard admin\", charset=\"UTF-8\""),
                );
            }
            response
        }
    }
}

type OpenAiDialect = super::openai::OpenAiWire;
type AnthropicDialect = super::anthropic::AnthropicWire;

fn refused<D: Dialect>(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unknown => {
            error_response::<D>(&simple_failure(ErrorClass::Authentication, "missing or unknown API key"), None)
        }
        Refusal::Forbidden(message) => {
            error_response::<D>(&simple_failure(ErrorClass::PermissionDenied, message), None)
        }
        Refusal::Limited { message, wait } => {
            let mut failure = simple_failure(ErrorClass::RateLimited, message);
            failure.route = None;
            error_response::<D>(&failure, Some(wait.unwrap_or(std::time::Duration::from_secs(1))))
        }
    }
}

/// A body that could not be read (too large, too slow, broken), answered and counted.
fn unread<D: Dialect>(
    endpoint: &'static str,
    key: &str,
    started: Instant,
    (status, class, message): (StatusCode, ErrorClass, String),
) -> Response {
    record_request(endpoint, "", key, Some(class), started);
    let mut response = error_response::<D>(&simple_failure(class, message), None);
    *response.status_mut() = status;
    response
}

/// The body, within `[server] max_body` and `body_read_timeout`.
async fn read_body(body: Body, limits: &super::RequestLimits) -> Result<Bytes, (StatusCode, ErrorClass, String)> {
    match tokio::time::timeout(limits.body_timeout, axum::body::to_bytes(body, limits.body_bytes)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                let message = format!("the request body is over {} bytes (`[server] max_body`)", limits.body_bytes);
                Err((StatusCode::PAYLOAD_TOO_LARGE, ErrorClass::RequestTooLarge, message))
            } else {
                Err((StatusCode::BAD_REQUEST, ErrorClass::InvalidRequest, format!("cannot read the request body: {e}")))
            }
        }
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            ErrorClass::InvalidRequest,
            format!(
                "the request body did not arrive within {} (`[server] body_read_timeout`)",
                crate::duration::format_duration(limits.body_timeout)
            ),
        )),
    }
}

/// A request read and parsed in the endpoint's dialect, within the `[server]` limits in force
/// (also returned); else the error answer, counted.
async fn read_request<D: Dialect>(
    endpoint: &'static str,
    state: &AppState,
    key: &str,
    started: Instant,
    body: Body,
) -> Result<(Parsed, super::RequestLimits), Response> {
    let limits = super::RequestLimits::of(&state.router.policy().server);
    let body = read_body(body, &limits).await.map_err(|why| unread::<D>(endpoint, key, started, why))?;
    let invalid = |message: String| {
        record_request(endpoint, "", key, Some(ErrorClass::InvalidRequest), started);
        error_response::<D>(&simple_failure(ErrorClass::InvalidRequest, message), None)
    };
    let parsed = D::parse(body).map_err(invalid)?;
    match over_limits(&parsed, &limits) {
        Some(message) => Err(invalid(message)),
        None => Ok((parsed, limits)),
    }
}

/// `POST /v1/chat/completions` and `POST /v1/messages`.
pub(crate) async fn chat<D: Dialect>(
    endpoint: &'static str,
    state: AppState,
    axum::Extension(caller): CallerOf,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    // (the key was checked by `authenticate`, before the body was read)
    let key = caller.name();
    let (mut parsed, limits) = match read_request::<D>(endpoint, &state, key, started, body).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let label = route_label(&state.router, &parsed.route);
    // the keys in force now, not when the body started (a reload may have come in between)
    let keys = state.router.policy().server.client_keys.clone();
    let tokens = || {
        let prompt = parsed.request.estimated_prompt_tokens();
        let output = parsed.request.max_tokens.unwrap_or(crate::policy::DEFAULT_OUTPUT_RESERVATION);
        prompt + u64::from(output)
    };
    // held until the answer is over (a stream's last event)
    let admitted = admit_key::<D>(&state, &keys, &caller, &parsed.route, tokens, &limits, (endpoint, &label, started));
    let permit = match admitted {
        Ok(p) => p,
        Err(response) => return *response,
    };
    D::read_headers(&mut parsed, &headers);
    let echo = D::echo(&parsed);
    let charge = KeyCharge::new(&state.router, &caller);
    if parsed.stream {
        let router = state.router.clone();
        let ledger = relay::Ledger { endpoint, route: label, key: key.to_owned(), router, charge, started, permit };
        stream::<D>(parsed, ledger, echo, relay::wants_trailers(&headers)).await
    } else {
        let result = charge.metered(state.router.chat_decoded(parsed)).await;
        drop(permit);
        match result {
            Ok(r) => {
                record_request(endpoint, &label, key, None, started);
                ok_response::<D>(&r, echo.as_ref())
            }
            Err(e) => failed::<D>(&e, (endpoint, &label, key, started)),
        }
    }
}

/// `POST /v1/messages/count_tokens` (Anthropic's dialect): the route's first target that can
/// count answers (an Anthropic target is asked, an OpenAI model with a known tokenizer is
/// counted here), with failover; the caller's key must be allowed the route, and spends none of
/// its rate budget.
pub(crate) async fn count_tokens(
    State(state): State<AppState>,
    axum::Extension(caller): CallerOf,
    headers: HeaderMap,
    body: Body,
) -> Response {
    type D = super::anthropic::AnthropicWire;
    let (endpoint, started) = ("count_tokens", Instant::now());
    let key = caller.name();
    let (mut parsed, _) = match read_request::<D>(endpoint, &state, key, started, body).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let label = route_label(&state.router, &parsed.route);
    if let Caller::Key(k) = &caller
        && !k.allows(&parsed.route)
    {
        record_request(endpoint, &label, key, Some(ErrorClass::PermissionDenied), started);
        let message = format!("the key `{}` may not use the route `{}`", k.name, parsed.route);
        return refused::<D>(Refusal::Forbidden(message));
    }
    D::read_headers(&mut parsed, &headers);
    match state.router.count_tokens_decoded(parsed).await {
        Ok(c) => {
            record_request(endpoint, &label, key, None, started);
            let mut body = c.count.extra.clone();
            body.insert("input_tokens".into(), json!(c.count.input_tokens));
            let mut response = axum::Json(body).into_response();
            let h = response.headers_mut();
            set(h, "x-switchyard-provider", &c.provider);
            set(h, "x-switchyard-model", &c.model);
            set(h, "x-switchyard-attempts", &c.attempts.len().to_string());
            set(h, "x-switchyard-counted", if c.count.local { "locally" } else { "by-provider" });
            response
        }
        Err(e) => {
            record_request(endpoint, &label, key, Some(e.class()), started);
            error_response::<D>(&failure_from(&e), e.failure().and_then(|f| f.retry_after))
        }
    }
}

/// `POST /v1/embeddings` (OpenAI's dialect): the route's embedding models, with failover; the
/// caller's body goes to each target with only `model` replaced, and the answer comes back as
/// the provider sent it.
pub(crate) async fn embeddings(
    State(state): State<AppState>,
    axum::Extension(caller): CallerOf,
    body: Body,
) -> Response {
    type D = super::openai::OpenAiWire;
    let (endpoint, started) = ("embeddings", Instant::now());
    let limits = super::RequestLimits::of(&state.router.policy().server);
    let key = caller.name();
    let fail = |class: ErrorClass, message: String| error_response::<D>(&simple_failure(class, message), None);
    let body = match read_body(body, &limits).await {
        Ok(b) => b,
        Err(why) => return unread::<D>(endpoint, key, started, why),
    };
    let (route, request) = match crate::embed::EmbeddingRequest::decode(&body) {
        Ok(r) => r,
        Err(message) => {
            record_request(endpoint, "", key, Some(ErrorClass::InvalidRequest), started);
            return fail(ErrorClass::InvalidRequest, message);
        }
    };
    if route.len() > limits.model_bytes {
        record_request(endpoint, "", key, Some(ErrorClass::InvalidRequest), started);
        let message = format!(
            "`model` has {} bytes: this gateway takes at most {} (`[server] max_model_bytes`)",
            route.len(),
            limits.model_bytes
        );
        return fail(ErrorClass::InvalidRequest, message);
    }
    let label = route_label(&state.router, &route);
    let keys = state.router.policy().server.client_keys.clone();
    let tokens = || request.as_chat().estimated_prompt_tokens();
    let permit = match admit_key::<D>(&state, &keys, &caller, &route, tokens, &limits, (endpoint, &label, started)) {
        Ok(p) => p,
        Err(response) => return *response,
    };
    let charge = KeyCharge::new(&state.router, &caller);
    let result = charge.metered(state.router.embed(&route, request)).await;
    drop(permit);
    match result {
        Ok(e) => {
            record_request(endpoint, &label, key, None, started);
            let mut response = (StatusCode::OK, axum::Json(&e.response.body)).into_response();
            let h = response.headers_mut();
            set(h, "x-switchyard-provider", &e.provider);
            set(h, "x-switchyard-model", &e.model);
            set(h, "x-switchyard-attempts", &e.attempts.len().to_string());
            if let Some(id) = &e.response.request_id {
                set(h, "x-switchyard-upstream-request-id", id);
            }
            set_cost(h, e.cost_usd());
            response
        }
        Err(e) => {
            record_request(endpoint, &label, key, Some(e.class()), started);
            error_response::<D>(&failure_from(&e), e.failure().and_then(|f| f.retry_after))
        }
    }
}

/// What the caller's key allows a request on `route` of `tokens`: its route, rate limits,
/// concurrency (the permit, held until the answer is over) and spending budget; else the refusal
/// in the endpoint's dialect, counted under `(endpoint, route label, start)`. (The refusal is boxed:
/// a `Response` is larger than everything the admitted path returns.)
fn admit_key<D: Dialect>(
    state: &AppState,
    keys: &crate::policy::ClientKeys,
    caller: &Caller,
    route: &str,
    tokens: impl FnOnce() -> u64,
    limits: &super::RequestLimits,
    (endpoint, label, started): (&'static str, &str, Instant),
) -> Result<Option<crate::router::limiter::LimitPermit>, Box<Response>> {
    let permit =
        state.key_limiters.admit(keys, caller, route, tokens, limits.in_flight_per_key).map_err(|refusal| {
            let class = if matches!(refusal, Refusal::Forbidden(_)) {
                ErrorClass::PermissionDenied
            } else {
                ErrorClass::RateLimited
            };
            record_request(endpoint, label, caller.name(), Some(class), started);
            Box::new(refused::<D>(refusal))
        })?;
    if let Caller::Key(k) = caller
        && let Some((message, wait)) = state.router.key_budget_spent(k)
    {
        record_request(endpoint, label, caller.name(), Some(ErrorClass::BudgetExhausted), started);
        return Err(Box::new(error_response::<D>(&simple_failure(ErrorClass::BudgetExhausted, message), Some(wait))));
    }
    Ok(permit)
}

/// A request's charge to its client key's budget: what the request's attempts cost, counted by
/// the meter the router call runs with, charged when the request is over (answered, failed, or
/// dropped by a client that went away: its cancelled attempts are billed too). Nothing is counted
/// for a caller without a budget.
pub(super) struct KeyCharge(Option<(Router, crate::policy::ClientKey, Arc<Meter>)>);

impl KeyCharge {
    pub(super) fn new(router: &Router, caller: &Caller) -> Self {
        KeyCharge(match caller {
            Caller::Key(k) if k.budget.is_some() => Some((router.clone(), k.clone(), Arc::default())),
            _ => None,
        })
    }

    /// Runs a router call with this request's meter, if it has one.
    pub(super) async fn metered<F: std::future::Future>(&self, f: F) -> F::Output {
        match &self.0 {
            Some((_, _, meter)) => crate::router::meter::metered(meter.clone(), f).await,
            None => f.await,
        }
    }
}

impl Drop for KeyCharge {
    fn drop(&mut self) {
        if let Some((router, key, meter)) = &self.0 {
            router.charge_key(key, meter.total_usd());
        }
    }
}

fn ok_response<D: Dialect>(r: &RoutedResponse, echo: Option<&serde_json::Value>) -> Response {
    let mut response = (StatusCode::OK, axum::Json(D::response_echoing(r, echo))).into_response();
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
    set_cost(h, r.cost_usd());
    response
}

/// A chat request that failed before any answer reached the caller: recorded under `endpoint`,
/// `route` and `key`, answered in the caller's dialect with its retry-after and what it cost.
fn failed<D: Dialect>(
    e: &RouterError,
    (endpoint, route, key, started): (&'static str, &str, &str, Instant),
) -> Response {
    record_request(endpoint, route, key, Some(e.class()), started);
    let mut response = error_response::<D>(&failure_from(e), e.failure().and_then(|f| f.retry_after));
    set_cost(response.headers_mut(), e.failure().and_then(crate::router::RouteFailure::cost_usd));
    response
}

/// `x-switchyard-cost-usd`: what the request cost, every attempt included, when the models
/// have prices.
fn set_cost(h: &mut HeaderMap, usd: Option<f64>) {
    if let Some(v) = usd.and_then(|usd| HeaderValue::from_str(&relay::cost_text(usd)).ok()) {
        h.insert(relay::COST, v);
    }
}

async fn stream<D: Dialect>(
    parsed: Parsed,
    ledger: relay::Ledger,
    echo: Option<serde_json::Value>,
    trailers: bool,
) -> Response {
    let include_usage = parsed.include_usage;
    let l = &ledger;
    // before the first event a failure is still an ordinary HTTP error
    let refuse = |e: RouterError| failed::<D>(&e, (l.endpoint, &l.route, &l.key, l.started));
    // the gateway cannot take back what a client has shown: no restarts, an error event instead
    let opened = l.charge.metered(l.router.chat_stream_decoded(parsed, StreamOptions { allow_restart: false }));
    let mut s = match opened.await {
        Ok(s) => s,
        Err(e) => return refuse(e),
    };
    let first = match s.next().await {
        Some(Ok(event)) => event,
        Some(Err(e)) => return refuse(e),
        None => {
            record_request(l.endpoint, &l.route, &l.key, Some(ErrorClass::StreamInterrupted), l.started);
            return error_response::<D>(
                &simple_failure(ErrorClass::StreamInterrupted, "the stream ended before any event"),
                None,
            );
        }
    };
    let (provider, model) = s.served_by().map(|(p, m)| (p.to_owned(), m.to_owned())).unwrap_or_default();
    let dropped = crate::wire::dropped_header(s.dropped());
    let encoder = D::encoder_echoing(include_usage, &provider, &model, echo);
    let mut response = Response::new(relay::body(s, encoder, &first, ledger, trailers));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if trailers {
        h.insert(header::TRAILER, HeaderValue::from_name(relay::COST));
    }
    set(h, "x-switchyard-provider", &provider);
    set(h, "x-switchyard-model", &model);
    if !dropped.is_empty() {
        set(h, "x-switchyard-dropped", &dropped);
    }
    response
}

/// Which SDK calls `/v1/models`, where both wires' SDKs look for the models: Anthropic's clients
/// send `anthropic-version` with every request, OpenAI's never do. (Not `x-api-key`: OpenAI-shaped
/// callers may present their key that way too.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelsShape {
    OpenAi,
    Anthropic,
}

impl ModelsShape {
    fn of(headers: &HeaderMap) -> Self {
        if headers.contains_key("anthropic-version") { ModelsShape::Anthropic } else { ModelsShape::OpenAi }
    }

    /// A failure in the caller's dialect.
    fn error(self, failure: &Failure) -> Response {
        match self {
            ModelsShape::OpenAi => error_response::<OpenAiDialect>(failure, None),
            ModelsShape::Anthropic => error_response::<AnthropicDialect>(failure, None),
        }
    }

    /// A refusal in the caller's dialect.
    fn refused(self, refusal: Refusal) -> Response {
        match self {
            ModelsShape::OpenAi => refused::<OpenAiDialect>(refusal),
            ModelsShape::Anthropic => refused::<AnthropicDialect>(refusal),
        }
    }
}

/// In front of `/v1/models`: [`authenticate`], refusing in the dialect of the SDK that asks.
pub(crate) async fn authenticate_models(
    state: State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match ModelsShape::of(request.headers()) {
        ModelsShape::OpenAi => authenticate::<OpenAiDialect>(state, request, next).await,
        ModelsShape::Anthropic => authenticate::<AnthropicDialect>(state, request, next).await,
    }
}

/// Anthropic's page size when the caller names none, and the largest it takes.
const MODELS_PAGE: (usize, usize) = (20, 1000);

/// `GET /v1/models`: the routes the caller's key may use, as models, in the shape of the SDK that
/// asks: OpenAI's list, or Anthropic's page (`limit`, `after_id`, `before_id`; routes in name
/// order).
pub(crate) async fn models(
    State(state): State<AppState>,
    axum::Extension(caller): CallerOf,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let shape = ModelsShape::of(&headers);
    let policy = state.router.policy();
    let allowed = |r: &&Arc<crate::policy::RoutePolicy>| match &caller {
        Caller::Anonymous => true,
        Caller::Key(k) => k.allows(&r.name),
    };
    if shape == ModelsShape::OpenAi {
        let data: Vec<_> = policy.routes.values().filter(allowed).map(|r| model_entry(&policy, r, shape)).collect();
        return axum::Json(json!({ "object": "list", "data": data })).into_response();
    }
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => MODELS_PAGE.0,
        Some(Ok(n)) if (1..=MODELS_PAGE.1).contains(&n) => n,
        Some(_) => {
            let message = format!("limit: Input should be an integer from 1 to {}", MODELS_PAGE.1);
            return shape.error(&simple_failure(ErrorClass::InvalidRequest, message));
        }
    };
    let (after, before) = (query.get("after_id"), query.get("before_id"));
    // the routes are in name order, so a page boundary needs no route of that name
    let routes: Vec<_> = policy
        .routes
        .values()
        .filter(allowed)
        .filter(|r| after.is_none_or(|a| r.name > *a) && before.is_none_or(|b| r.name < *b))
        .collect();
    // `before_id` alone pages backwards: the routes just before it
    let backwards = before.is_some() && after.is_none();
    let (start, end) =
        if backwards { (routes.len().saturating_sub(limit), routes.len()) } else { (0, limit.min(routes.len())) };
    let page = &routes[start..end];
    let data: Vec<_> = page.iter().map(|r| model_entry(&policy, r, shape)).collect();
    axum::Json(json!({
        "data": data,
        "has_more": if backwards { start > 0 } else { end < routes.len() },
        "first_id": page.first().map(|r| &r.name),
        "last_id": page.last().map(|r| &r.name),
    }))
    .into_response()
}

/// `GET /v1/models/{id}`: one route as a model, in the shape of the SDK that asks; 404 in its
/// dialect when no route has that name, 403 when the caller's key may not use it (as a chat
/// request for it would get).
pub(crate) async fn model(
    State(state): State<AppState>,
    axum::Extension(caller): CallerOf,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let shape = ModelsShape::of(&headers);
    let policy = state.router.policy();
    let Some(route) = policy.routes.get(&id) else {
        return shape.error(&failure_from(&RouterError::UnknownRoute(id)));
    };
    if let Caller::Key(k) = &caller
        && !k.allows(&id)
    {
        return shape.refused(Refusal::Forbidden(format!("the key `{}` may not use the route `{id}`", k.name)));
    }
    axum::Json(model_entry(&policy, route, shape)).into_response()
}

/// One route as a model, in `shape`: OpenAI's model with the gateway's own members beside its
/// `object`, `created` and `owned_by`, or Anthropic's (`type`, `display_name`, `created_at`,
/// `lifecycle`, the largest context window and output limit of the route's profiled models as
/// `max_input_tokens` and `max_tokens`) with the gateway's members under `switchyard`. A route
/// has no date: both say the epoch. The gateway's members: the route's targets, what each model
/// can do (from the profiles), and what the route can serve: a feature any of its profiled models
/// accepts (the router sends a request needing it to those), the largest context window among them.
fn model_entry(
    policy: &crate::policy::Policy,
    r: &crate::policy::RoutePolicy,
    shape: ModelsShape,
) -> serde_json::Value {
    let targets: Vec<String> = r.targets.iter().map(|t| format!("{}/{}", t.provider, t.model)).collect();
    let mut accepts = std::collections::BTreeSet::new();
    let mut context_window: Option<u64> = None;
    let mut max_output: Option<u32> = None;
    let models: Vec<_> = r
        .targets
        .iter()
        .map(|t| {
            let protocol = policy.provider(&t.provider).map(|p| p.protocol);
            let counts = match protocol {
                Some(crate::protocol::Protocol::Anthropic) => true,
                Some(p) if p.is_openai() => crate::tokens::knows(&t.model),
                _ => false,
            };
            let profile = t.model_profile.as_ref();
            if let Some(m) = profile {
                context_window = Some(context_window.map_or(m.context_window, |c| c.max(m.context_window)));
                max_output = Some(max_output.map_or(m.max_output_tokens, |c| c.max(m.max_output_tokens)));
                accepts.extend(m.accepts.iter().flatten().map(|f| f.as_str()));
            }
            json!({
                "provider": t.provider,
                "model": t.model,
                "protocol": protocol.map(crate::protocol::Protocol::as_str),
                "context_window": profile.map(|m| m.context_window),
                "max_output_tokens": profile.map(|m| m.max_output_tokens),
                // null: no profile says, so the router assumes the model takes what is sent
                "accepts": profile.and_then(|m| m.accepts.as_ref()).map(|a| a.iter().map(|f| f.as_str()).collect::<Vec<_>>()),
                "counts_tokens": counts,
                "embedding_dimensions": profile.and_then(|m| m.embedding_dimensions),
            })
        })
        .collect();
    let capabilities = json!({ "accepts": accepts, "context_window": context_window });
    match shape {
        ModelsShape::OpenAi => json!({
            "id": r.name,
            "object": "model",
            "created": 0,
            "owned_by": "switchyard",
            "targets": targets,
            "models": models,
            "capabilities": capabilities,
        }),
        // Anthropic's `capabilities` is its own map, every key of which its clients may read: the
        // gateway cannot fill it, so null (which the API allows), and its own beside it
        ModelsShape::Anthropic => json!({
            "type": "model",
            "id": r.name,
            "display_name": r.name,
            "created_at": "1970-01-01T00:00:00Z",
            "lifecycle": "active",
            "max_input_tokens": context_window,
            "max_tokens": max_output,
            "capabilities": null,
            "switchyard": { "targets": targets, "models": models, "capabilities": capabilities },
        }),
    }
}

/// `GET /` and `HEAD /`: a connectivity probe, which clients send to a base URL before anything
/// else; open, like `/healthz`, and as small.
pub(crate) async fn root() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// `GET /healthz`.
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let h = state.router.health();
    axum::Json(json!({ "status": "ok", "policy_version": h.policy_version, "policy_hash": h.policy_hash }))
        .into_response()
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder not installed in this process\n").into_response(),
    }
}

/// `GET /admin/state`: policy version and hash, last reload error, breakers, pauses, limiters, faults.
/// Beside the router's health, the gateway's own: its connection cap, what set it, and the
/// connections open now.
pub(crate) async fn admin_state(State(state): State<AppState>) -> Response {
    let mut body = serde_json::to_value(state.router.health()).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        let policy = state.router.policy();
        let max = policy
            .server
            .max_connections
            .map_or(super::DEFAULT_MAX_CONNECTIONS, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let cap = super::fd_limit::ConnectionCap::fit(max, super::fd_limit::raise(), policy.providers.len());
        let mut connections = serde_json::to_value(cap).unwrap_or_default();
        if let Some(c) = connections.as_object_mut() {
            c.insert("open".into(), state.connections.open().into());
        }
        map.insert("connections".into(), connections);
    }
    axum::Json(body).into_response()
}
