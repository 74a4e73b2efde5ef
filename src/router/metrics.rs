//! Metrics through the `metrics` facade: free when no recorder is installed (a library user who
//! does not want them pays a no-op), exported as Prometheus text by `switchyard serve`.

use std::sync::atomic::{AtomicBool, Ordering};

use super::breaker::BreakerState;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns on the router's metrics. Off by default, so that an application without a metrics
/// recorder does not pay for building label sets on every attempt; `switchyard serve` turns them on
/// when it installs its Prometheus recorder. Call it after installing a `metrics` recorder of your
/// own to get the same series.
pub fn enable_metrics() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}
use super::outcome::{Attempt, AttemptOutcome};

/// A provider's status page indicator: 0 none, 1 maintenance, 2 minor, 3 major, 4 critical; -1
/// unknown or unreadable.
pub(crate) fn status_page(provider: &str, indicator: Option<crate::status_page::Severity>) {
    if !enabled() {
        return;
    }
    use crate::status_page::Severity as S;
    let level = match indicator {
        Some(S::None) => 0.0,
        Some(S::Maintenance) => 1.0,
        Some(S::Minor) => 2.0,
        Some(S::Major) => 3.0,
        Some(S::Critical) => 4.0,
        _ => -1.0,
    };
    metrics::gauge!("switchyard_provider_status", "provider" => provider.to_owned()).set(level);
}

/// Whether the shared state is degraded (1) or answering (0).
pub(crate) fn shared_state(degraded: bool) {
    if enabled() {
        metrics::gauge!("switchyard_shared_state_degraded").set(if degraded { 1.0 } else { 0.0 });
    }
}

/// Counts one attempt (or skip) and its duration.
pub(crate) fn attempt(route: &str, operation: &'static str, a: &Attempt) {
    if !enabled() {
        return;
    }
    let outcome = a.outcome.as_str();
    let class = a.class.map_or("", |c| c.as_str());
    metrics::counter!(
        "switchyard_attempts_total",
        "route" => route.to_owned(),
        "operation" => operation,
        "provider" => a.provider.clone(),
        "model" => a.model.clone(),
        "outcome" => outcome,
        "class" => class,
    )
    .increment(1);
    if a.outcome == AttemptOutcome::Error {
        metrics::counter!(
            "switchyard_errors_total",
            "operation" => operation,
            "provider" => a.provider.clone(),
            "model" => a.model.clone(),
            "class" => class,
        )
        .increment(1);
    }
    if let Some(usd) = a.cost_usd {
        // a float that only grows: the `metrics` counters count whole numbers only
        metrics::gauge!(
            "switchyard_cost_usd_total",
            "route" => route.to_owned(),
            "provider" => a.provider.clone(),
            "model" => a.model.clone(),
            "outcome" => outcome,
        )
        .increment(usd);
    }
    if a.outcome != AttemptOutcome::Skipped {
        metrics::histogram!("switchyard_attempt_duration_seconds", "provider" => a.provider.clone(), "model" => a.model.clone())
            .record(a.elapsed.as_secs_f64());
    }
}

/// The breaker state as a gauge: 0 closed, 1 half-open, 2 open.
pub(crate) fn breaker(provider: &str, model: Option<&str>, state: BreakerState) {
    if !enabled() {
        return;
    }
    let value = match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    };
    metrics::gauge!("switchyard_breaker_state", "provider" => provider.to_owned(), "model" => model.unwrap_or("").to_owned())
        .set(value);
}

/// A reload: `applied` or `rejected`.
pub(crate) fn reload(result: &'static str, version: u64) {
    if !enabled() {
        return;
    }
    metrics::counter!("switchyard_reloads_total", "result" => result).increment(1);
    metrics::gauge!("switchyard_policy_version").set(version as f64);
}

/// The time from a streamed attempt's start to its first content (the preamble does not count).
pub(crate) fn first_token(route: &str, provider: &str, model: &str, elapsed: std::time::Duration) {
    if !enabled() {
        return;
    }
    metrics::histogram!(
        "switchyard_time_to_first_token_seconds",
        "route" => route.to_owned(),
        "provider" => provider.to_owned(),
        "model" => model.to_owned(),
    )
    .record(elapsed.as_secs_f64());
}

/// A probe of an open breaker's target: `ok` when the target answered.
pub(crate) fn probe(provider: &str, model: Option<&str>, ok: bool) {
    if !enabled() {
        return;
    }
    metrics::counter!(
        "switchyard_probes_total",
        "provider" => provider.to_owned(),
        "model" => model.unwrap_or("").to_owned(),
        "outcome" => if ok { "ok" } else { "error" },
    )
    .increment(1);
}
