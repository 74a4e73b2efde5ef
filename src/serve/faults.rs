//! Faults injected into a running gateway over its admin API (a drill against it: `switchyard
//! drill --against URL`, or a script): `POST /admin/faults` with a fault written as a
//! `[[drill.faults]]` entry (as JSON) injects it and answers its id; `DELETE /admin/faults/{id}`
//! lifts it. `/admin/state` lists them with the policy's. Needs the `sim` feature (the simulator
//! plays the fault as the provider's own wire answer).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::handlers::AppState;
use crate::router::FaultGuard;
use crate::sync::lock;

/// Faults injected through the API at once (each holds a guard; a script that never lifts its
/// faults cannot grow this without bound).
pub(crate) const MAX_FAULTS: usize = 64;

/// The guards of the faults injected through the API, by id.
#[derive(Debug, Default)]
pub(crate) struct ApiFaults {
    guards: Mutex<HashMap<u64, FaultGuard>>,
}

fn refused(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "type": "invalid_request"}}))).into_response()
}

/// `POST /admin/faults` (`content-type: application/json` only: a form another site posts is not
/// a fault).
pub(crate) async fn inject(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a fault is sent as `content-type: application/json`".into(),
        );
    }
    let fault: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return refused(StatusCode::BAD_REQUEST, "a fault is a JSON object".into()),
        Err(e) => return refused(StatusCode::BAD_REQUEST, format!("not JSON: {e}")),
    };
    // the same keys, checks and messages as a policy's `[[drill.faults]]`
    let text = match toml::to_string(&fault) {
        Ok(t) => t,
        Err(e) => return refused(StatusCode::BAD_REQUEST, format!("not a fault: {e}")),
    };
    let policy = state.router.policy();
    let fault = match crate::policy::compile::fault_from_toml(&policy, &text) {
        Ok(f) => f,
        Err(e) => return refused(StatusCode::BAD_REQUEST, e.to_string()),
    };
    // faults that ran out (their duration, count or `until`) give their place back
    let live: std::collections::HashSet<u64> =
        state.router.health().faults.iter().filter(|f| f.active).map(|f| f.id).collect();
    let mut guards = lock(&state.faults.guards);
    guards.retain(|id, _| live.contains(id));
    if guards.len() >= MAX_FAULTS {
        return refused(
            StatusCode::CONFLICT,
            format!("{MAX_FAULTS} faults are injected through the API already: DELETE /admin/faults/ID some"),
        );
    }
    tracing::warn!(provider = %fault.provider, inject = ?fault.inject, "fault injected through the admin API");
    let shown = serde_json::to_value(&fault).unwrap_or(Value::Null);
    let guard = state.router.inject(fault);
    let id = guard.id();
    guards.insert(id, guard);
    (StatusCode::CREATED, axum::Json(json!({"id": id, "fault": shown}))).into_response()
}

/// `DELETE /admin/faults/{id}`.
pub(crate) async fn lift(State(state): State<AppState>, Path(id): Path<u64>) -> Response {
    match lock(&state.faults.guards).remove(&id) {
        Some(guard) => {
            drop(guard);
            StatusCode::NO_CONTENT.into_response()
        }
        None => refused(StatusCode::NOT_FOUND, format!("no fault {id} was injected through the API")),
    }
}
