//! The operators' dashboard: `GET /admin` serves one self-contained page (no CDN, no build step),
//! and `GET /admin/events` a Server-Sent Events stream that feeds it: a snapshot of the gateway's
//! state (the routes and their targets, breakers, limits, budgets, status pages, the fleet, and
//! what traffic did over the last minutes) every second and at once after anything notable, and
//! each router event but attempts as it happens.
//!
//! What traffic did comes from the router's events, gathered from the gateway's start into
//! five-second slices (ten minutes kept): per provider, the attempts served and failed, failures
//! by class, and the p50/p99 of served attempts. Memory is bounded whatever the traffic: a fixed
//! number of slices, latency samples capped per slice, a capped list of recent events, and a cap
//! on open streams.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::handlers::AppState;
use crate::router::{AttemptOutcome, Observer, Router, RouterEvent, SeenAttempt};
use crate::sync::lock;

/// The width of one slice of the traffic series.
const SLICE: Duration = Duration::from_secs(5);
/// Slices kept: ten minutes.
const SLICES: usize = 120;
/// Latency samples kept per provider and slice (enough for a p99; later ones are sampled).
const SAMPLES: usize = 512;
/// Recent notable events kept.
const RECENT: usize = 100;
/// Dashboard streams open at once (each holds a task and a broadcast receiver).
pub(crate) const MAX_STREAMS: usize = 16;
/// How often a stream sends a snapshot when nothing happens.
const EVERY: Duration = Duration::from_secs(1);
/// How long after a notable event its snapshot follows (events in between share it).
const AFTER_EVENT: Duration = Duration::from_millis(250);
/// How long a snapshot serves every stream before it is made again.
const REUSE: Duration = Duration::from_millis(200);

/// The page.
const PAGE: &str = include_str!("dashboard.html");

/// What the gateway's traffic did, and the recent notable events.
#[derive(Debug, Default)]
pub(crate) struct Dashboard {
    series: Mutex<Series>,
    streams: AtomicUsize,
    /// The last snapshot, as sent, and when it was made: every stream shares it.
    last: Mutex<Option<(tokio::time::Instant, Arc<str>)>>,
}

#[derive(Debug, Default)]
struct Series {
    slices: VecDeque<Slice>,
    recent: VecDeque<Recent>,
}

#[derive(Debug)]
struct Slice {
    /// Start, ms since the Unix epoch.
    at: u64,
    providers: BTreeMap<String, ProviderSlice>,
}

#[derive(Debug, Default)]
struct ProviderSlice {
    served: u64,
    failed: u64,
    errors: BTreeMap<&'static str, u64>,
    latencies_ms: Vec<f64>,
    /// Served attempts seen, for sampling once `latencies_ms` is full.
    seen: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Recent {
    /// ms since the Unix epoch.
    at: u64,
    #[serde(flatten)]
    event: RouterEvent,
}

/// One slice as the page reads it.
#[derive(Debug, Serialize)]
struct SliceView<'a> {
    at: u64,
    providers: BTreeMap<&'a str, ProviderView<'a>>,
}

#[derive(Debug, Serialize)]
struct ProviderView<'a> {
    served: u64,
    failed: u64,
    errors: &'a BTreeMap<&'static str, u64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The dashboard's observer: it must not keep the dashboard alive.
struct Attempts(std::sync::Weak<Dashboard>);

impl Observer for Attempts {
    fn attempt(&self, seen: &SeenAttempt<'_>) {
        if let Some(dashboard) = self.0.upgrade() {
            dashboard.record_attempt(seen.attempt, now_ms());
        }
    }
}

impl Dashboard {
    /// Gathers `router`'s attempts (as they end, in their requests' tasks) and its other events
    /// (from its channel) until the router is gone.
    pub(crate) fn follow(self: &Arc<Self>, router: &Router) {
        router.observe(Arc::new(Attempts(Arc::downgrade(self))));
        let mut rx = router.subscribe_notable();
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                let Some(this) = this.upgrade() else { return };
                this.record(event, now_ms());
            }
        });
    }

    /// One attempt that ended at `at` (probes are the router's, not traffic).
    fn record_attempt(&self, a: &crate::router::Attempt, at: u64) {
        if a.probe {
            return;
        }
        let mut series = lock(&self.series);
        let slice = series.slice(at);
        // the provider's name is copied once per slice, not per attempt
        if !slice.providers.contains_key(&a.provider) {
            slice.providers.insert(a.provider.clone(), ProviderSlice::default());
        }
        let Some(p) = slice.providers.get_mut(&a.provider) else { return };
        match a.outcome {
            AttemptOutcome::Ok => {
                p.served += 1;
                p.seen += 1;
                let ms = a.elapsed.as_secs_f64() * 1000.0;
                if p.latencies_ms.len() < SAMPLES {
                    p.latencies_ms.push(ms);
                } else {
                    // reservoir sampling keeps the samples a fair draw of the slice
                    let i = rand::random_range(0..p.seen) as usize;
                    if i < SAMPLES {
                        p.latencies_ms[i] = ms;
                    }
                }
            }
            AttemptOutcome::Error => {
                p.failed += 1;
                let class = a.class.map_or("unknown", |c| c.as_str());
                *p.errors.entry(class).or_insert(0) += 1;
            }
            _ => {}
        }
    }

    /// A notable event (attempts come through [`Dashboard::record_attempt`]).
    fn record(&self, event: RouterEvent, at: u64) {
        if matches!(event, RouterEvent::Attempt { .. }) {
            return;
        }
        let mut series = lock(&self.series);
        if series.recent.len() == RECENT {
            series.recent.pop_front();
        }
        series.recent.push_back(Recent { at, event });
    }

    /// The snapshot as sent: made at most every [`REUSE`], whatever the number of streams.
    pub(crate) fn snapshot_text(&self, router: &Router) -> Arc<str> {
        let now = tokio::time::Instant::now();
        if let Some((made, text)) = lock(&self.last).as_ref()
            && now.duration_since(*made) < REUSE
        {
            return text.clone();
        }
        let text: Arc<str> = self.snapshot(router).to_string().into();
        *lock(&self.last) = Some((now, text.clone()));
        text
    }

    /// What the page shows: the routes, the router's health, the traffic series and the recent
    /// events.
    pub(crate) fn snapshot(&self, router: &Router) -> Value {
        // the router's state before the series' lock: recording events never waits for it
        let health = router.health();
        let policy = router.policy();
        let routes: Vec<Value> = policy
            .routes
            .values()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "strategy": r.strategy,
                    "hedge": r.hedge.is_some(),
                    "targets": r.targets.iter().map(|t| serde_json::json!({
                        "provider": t.provider,
                        "model": t.model,
                        "weight": t.weight,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let series = lock(&self.series);
        let slices: Vec<SliceView<'_>> = series
            .slices
            .iter()
            .map(|s| SliceView {
                at: s.at,
                providers: s
                    .providers
                    .iter()
                    .map(|(name, p)| {
                        let mut l = p.latencies_ms.clone();
                        l.sort_by(f64::total_cmp);
                        let view = ProviderView {
                            served: p.served,
                            failed: p.failed,
                            errors: &p.errors,
                            p50_ms: crate::stats::nearest_rank(&l, 0.50),
                            p99_ms: crate::stats::nearest_rank(&l, 0.99),
                        };
                        (name.as_str(), view)
                    })
                    .collect(),
            })
            .collect();
        serde_json::json!({
            "now": now_ms(),
            "slice_ms": SLICE.as_millis() as u64,
            "routes": routes,
            "health": health,
            "series": slices,
            "recent": series.recent,
        })
    }
}

impl Series {
    /// The slice `at` falls in, made (and the oldest dropped) when it is new.
    fn slice(&mut self, at: u64) -> &mut Slice {
        let width = SLICE.as_millis() as u64;
        let start = at - at % width;
        if self.slices.back().is_none_or(|s| s.at < start) {
            if self.slices.len() == SLICES {
                self.slices.pop_front();
            }
            self.slices.push_back(Slice { at: start, providers: BTreeMap::new() });
        }
        // a late event (its slice already closed) counts in the newest one
        let last = self.slices.len() - 1;
        &mut self.slices[last]
    }
}

/// `GET /admin`: the page.
pub(crate) async fn page() -> Response {
    let mut response = Html(PAGE).into_response();
    // everything the page needs is in it: nothing else may load, nor may it be framed
    response.headers_mut().insert(
        "content-security-policy",
        axum::http::HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'",
        ),
    );
    response.headers_mut().insert("cache-control", axum::http::HeaderValue::from_static("no-store"));
    response
}

/// Gives back a stream's place when the stream ends.
struct StreamSlot(Arc<Dashboard>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The query of `GET /admin/events`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct EventsQuery {
    /// Also send every attempt (a drill against the gateway counts them).
    #[serde(default)]
    attempts: bool,
}

/// `GET /admin/events`: snapshots every second and after each notable event, and the events
/// (attempts too with `?attempts=true`).
pub(crate) async fn events(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<EventsQuery>,
) -> Response {
    let dashboard = state.dashboard.clone();
    if dashboard.streams.fetch_add(1, Ordering::AcqRel) >= MAX_STREAMS {
        dashboard.streams.fetch_sub(1, Ordering::AcqRel);
        let body = serde_json::json!({"error": {"message": format!("too many dashboard streams open (at most {MAX_STREAMS})"), "type": "overloaded"}});
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    let slot = StreamSlot(dashboard.clone());
    let router = state.router.clone();
    let mut shutdown = state.shutdown.clone();
    // attempts only for a reader that asks: others leave requests without events to build
    let mut rx = if query.attempts { router.subscribe() } else { router.subscribe_notable() };
    let stream = channel_stream(move |tx| async move {
        let _slot = slot;
        let snapshot = |d: &Dashboard| Event::default().event("snapshot").data(&*d.snapshot_text(&router));
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // after a notable event, one snapshot a moment later (a burst of events makes one)
        let mut after_event: Option<tokio::time::Instant> = None;
        loop {
            let pending = after_event;
            let event = tokio::select! {
                _ = tick.tick() => snapshot(&dashboard),
                () = async { tokio::time::sleep_until(pending.unwrap_or_else(tokio::time::Instant::now)).await }, if pending.is_some() => {
                    after_event = None;
                    tick.reset();
                    snapshot(&dashboard)
                }
                _ = shutdown.changed() => return,
                e = rx.recv() => match e {
                    Err(RecvError::Lagged(missed)) => {
                        // a reader that counts events (a drill) must know it missed some
                        let lagged = Event::default().event("lagged").data(format!("{{\"missed\":{missed}}}"));
                        if tx.send(Ok(lagged)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok(e @ RouterEvent::Attempt { .. }) => {
                        // sent as they come, without a snapshot each
                        if query.attempts
                            && let Ok(ev) = Event::default().event("router").json_data(&e)
                            && tx.send(Ok(ev)).await.is_err()
                        {
                            return;
                        }
                        continue;
                    }
                    Ok(e) => {
                        // the event itself now, the state it changed a moment later
                        if let Ok(ev) = Event::default().event("router").json_data(&e)
                            && tx.send(Ok(ev)).await.is_err()
                        {
                            return;
                        }
                        after_event.get_or_insert_with(|| tokio::time::Instant::now() + AFTER_EVENT);
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                },
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// A stream fed by `body` through a small channel (the sender waits for the client: a slow one
/// holds one snapshot, not a backlog).
fn channel_stream<F, Fut>(body: F) -> impl futures::Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(body(tx));
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;

    fn attempt(provider: &str, outcome: AttemptOutcome, class: Option<ErrorClass>, ms: u64) -> crate::router::Attempt {
        crate::router::Attempt {
            provider: provider.into(),
            model: "m".into(),
            outcome,
            class,
            status: None,
            elapsed: Duration::from_millis(ms),
            skip_reason: None,
            probe: false,
            hedge: false,
            output_tokens: None,
            cost_usd: None,
        }
    }

    #[test]
    fn attempts_fall_into_five_second_slices_and_ten_minutes_are_kept() {
        let d = Dashboard::default();
        let t0 = 1_700_000_000_000;
        d.record_attempt(&attempt("openai", AttemptOutcome::Ok, None, 10), t0);
        d.record_attempt(&attempt("openai", AttemptOutcome::Error, Some(ErrorClass::ServerError), 5), t0 + 1000);
        d.record_attempt(&attempt("anthropic", AttemptOutcome::Ok, None, 30), t0 + 6000);
        {
            let s = lock(&d.series);
            assert_eq!(s.slices.len(), 2);
            let first = &s.slices[0].providers["openai"];
            assert_eq!((first.served, first.failed), (1, 1));
            assert_eq!(first.errors["server_error"], 1);
            assert_eq!(s.slices[1].providers["anthropic"].served, 1);
        }
        for i in 0..200 {
            d.record_attempt(&attempt("openai", AttemptOutcome::Ok, None, 1), t0 + 10_000 + i * 5000);
        }
        assert_eq!(lock(&d.series).slices.len(), SLICES);
    }

    #[test]
    fn latency_samples_and_recent_events_are_bounded() {
        let d = Dashboard::default();
        for i in 0..5000 {
            d.record_attempt(&attempt("openai", AttemptOutcome::Ok, None, i % 100), 1000);
        }
        for _ in 0..500 {
            d.record(RouterEvent::PolicyRejected { error: "bad".into() }, 1000);
        }
        let s = lock(&d.series);
        let p = &s.slices[0].providers["openai"];
        assert_eq!(p.served, 5000);
        assert_eq!(p.latencies_ms.len(), SAMPLES);
        assert_eq!(s.recent.len(), RECENT);
    }
}
