//! Runs a drill: the policy under test behind a router (pointed at an in-process simulator in
//! simulated mode), each phase's faults injected, its load sent, its expectations checked.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::file::{Drill, DrillMode, Expect, Phase};
use super::report::{DrillReport, PhaseReport, TimelinePoint, Transition, Verdict};
use crate::chat::{ChatRequest, StreamEvent};
use crate::error::ErrorClass;
use crate::policy::{Policy, ProviderPolicy};
use crate::profile::AuthScheme;
use crate::router::{Attempt, AttemptOutcome, BreakerState, Health, Router, RouterEvent, StreamOptions};
use crate::sim::SimServer;
use crate::sync::lock;

/// Progress of a running drill, for a progress line or bar.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// A phase begins.
    PhaseStarted {
        /// 0-based.
        index: usize,
        /// Number of phases.
        total: usize,
        /// The phase.
        phase: &'a Phase,
    },
    /// A request of the current phase finished.
    RequestDone {
        /// Finished so far in this phase.
        done: usize,
        /// Requests in this phase.
        total: usize,
    },
    /// A phase ended.
    PhaseFinished(&'a PhaseReport),
}

/// The drill could not run at all (a failing expectation is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrillError {
    /// The in-process simulator did not start.
    #[error("cannot start the simulated providers: {0}")]
    Simulator(std::io::Error),
    /// The gateway drilled (`--against`) could not be drilled.
    #[error("{0}")]
    Gateway(String),
}

/// How one request of the load ended.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub(super) ended_ms: f64,
    pub(super) latency: Duration,
    pub(super) ok: bool,
    pub(super) served: Option<(String, String)>,
    pub(super) class: Option<ErrorClass>,
    /// Every attempt, in full (a router's own requests).
    pub(super) attempts: Vec<Attempt>,
    /// How many attempts it took: `attempts.len()`, or what a gateway's answer said.
    pub(super) attempt_count: usize,
    /// What the gateway said it cost, when its attempts are not known in full.
    pub(super) billed_usd: f64,
    /// A stream that failed midway and was finished by a continuation.
    pub(super) resumed: bool,
}

/// How a request ended: ok, what served it, the class it failed with, its attempts.
type Outcome = (bool, Option<(String, String)>, Option<ErrorClass>, Vec<Attempt>);

impl Record {
    /// A request of the drill's own router, which began at `t0` and has just ended.
    fn of_router(started: Instant, t0: Instant, (ok, served, class, attempts): Outcome, resumed: bool) -> Record {
        let attempt_count = attempts.len();
        let (ended_ms, latency) = (ms_since(started), t0.elapsed());
        Record { ended_ms, latency, ok, served, class, attempts, attempt_count, billed_usd: 0.0, resumed }
    }
}

/// Events as they arrived, stamped with milliseconds since the drill started.
type EventLog = Arc<Mutex<Vec<(f64, RouterEvent)>>>;

/// Points every provider of `policy` at the simulator, with no key.
fn simulated(policy: &Policy, sim: &SimServer) -> Policy {
    let mut p = policy.clone();
    for provider in p.providers.values_mut() {
        let mut pp: ProviderPolicy = (**provider).clone();
        pp.base_url = sim.base_url(pp.protocol);
        pp.auth = AuthScheme::None;
        *provider = Arc::new(pp);
    }
    p
}

/// Runs `drill`, reporting progress as it goes.
pub async fn run(drill: &Drill, progress: &(dyn Fn(Progress<'_>) + Sync)) -> Result<DrillReport, DrillError> {
    let started = Instant::now();
    let (policy, _sim) = match drill.mode {
        DrillMode::Simulated => {
            let sim = SimServer::start().await.map_err(DrillError::Simulator)?;
            (simulated(&drill.policy, &sim), Some(sim))
        }
        DrillMode::Live => (drill.policy.clone(), None),
    };
    let router = Router::builder(policy).fault_player(Arc::new(crate::sim::WireFaults::default())).build();
    let log: EventLog = Arc::default();
    let collector = {
        let mut rx = router.subscribe();
        let log = log.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => lock(&log).push((ms_since(started), e)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "drill event log fell behind");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    };

    let send = router_load(&router, drill, started);
    let mut phases = Vec::new();
    for (index, phase) in drill.phases.iter().enumerate() {
        progress(Progress::PhaseStarted { index, total: drill.phases.len(), phase });
        let guards: Vec<_> = phase.faults.iter().map(|f| router.inject(f.clone())).collect();
        let phase_start = ms_since(started);
        let records = load(&*send, drill, phase, progress).await;
        let phase_end = ms_since(started);
        // the breaker states "by the end of the phase": before its faults are lifted
        let health = router.health();
        drop(guards);
        // let the last events of the phase arrive
        tokio::task::yield_now().await;
        let events = lock(&log).clone();
        let report = phase_report(phase, &records, &breakers_of(&health), &events, phase_start, phase_end);
        progress(Progress::PhaseFinished(&report));
        phases.push(report);
    }
    collector.abort();
    let mode = match drill.mode {
        DrillMode::Simulated => "simulated".into(),
        DrillMode::Live => "live".into(),
    };
    let providers = route_providers(&drill.policy, &drill.route);
    Ok(DrillReport::of_phases(drill, mode, providers, started.elapsed().as_millis() as u64, phases))
}

pub(super) fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// One request of the load: whether it streams, in, its record out.
pub(super) type Send1 = dyn Fn(bool) -> futures::future::BoxFuture<'static, Record> + Sync;

/// A phase's requests to the router.
fn router_load(router: &Router, drill: &Drill, started: Instant) -> Box<Send1> {
    let mut request = ChatRequest::user(drill.load.prompt.clone());
    request.max_tokens = drill.load.max_tokens;
    let (router, route, operation, prompt) =
        (router.clone(), drill.route.clone(), drill.load.operation, drill.load.prompt.clone());
    Box::new(move |stream| {
        let (router, route, request, prompt) = (router.clone(), route.clone(), request.clone(), prompt.clone());
        Box::pin(async move {
            match operation {
                super::file::Operation::Chat => one(&router, &route, request, stream, started).await,
                other => other_op(&router, &route, other, prompt, request, started).await,
            }
        })
    })
}

/// Sends a phase's requests at the drill's rate and concurrency.
pub(super) async fn load(
    send: &Send1,
    drill: &Drill,
    phase: &Phase,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Vec<Record> {
    let sem = Arc::new(Semaphore::new(drill.load.concurrency.max(1)));
    let interval = (drill.load.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / drill.load.rate));
    let phase_start = Instant::now();
    let mut tasks = futures::stream::FuturesUnordered::new();
    let mut records = Vec::with_capacity(phase.requests);
    let share = drill.load.stream_share;
    for i in 0..phase.requests {
        if let Some(iv) = interval {
            tokio::time::sleep_until(phase_start + iv * i as u32).await;
        }
        // drain what finished meanwhile, for the progress bar
        while let Some(Some(r)) = futures::FutureExt::now_or_never(tasks.next()) {
            records.push(r);
            progress(Progress::RequestDone { done: records.len(), total: phase.requests });
        }
        let Ok(permit) = sem.clone().acquire_owned().await else { break };
        // exactly floor(n * share) requests stream, spread evenly
        let stream = ((i + 1) as f64 * share).floor() > (i as f64 * share).floor();
        let request = send(stream);
        tasks.push(tokio::spawn(async move {
            let r = request.await;
            drop(permit);
            r
        }));
    }
    while let Some(r) = tasks.next().await {
        records.push(r);
        progress(Progress::RequestDone { done: records.len(), total: phase.requests });
    }
    records.into_iter().flatten().collect()
}

async fn one(router: &Router, route: &str, request: ChatRequest, stream: bool, started: Instant) -> Record {
    let t0 = Instant::now();
    let mut resumed = false;
    let (ok, served, class, attempts) = if stream {
        match router.chat_stream_with(route, request, StreamOptions::default()).await {
            Ok(mut s) => {
                let mut error = None;
                let mut finished = false;
                while let Some(item) = s.next().await {
                    match item {
                        Ok(StreamEvent::Finish { .. }) => finished = true,
                        Ok(_) => {}
                        Err(e) => error = Some(e),
                    }
                }
                match (s.summary().cloned(), error) {
                    (Some(sum), None) if finished => {
                        resumed = sum.continued;
                        (true, Some((sum.provider, sum.model)), None, sum.attempts)
                    }
                    (_, Some(e)) => (false, None, Some(e.class()), e.attempts().to_vec()),
                    _ => (false, None, Some(ErrorClass::StreamInterrupted), Vec::new()),
                }
            }
            Err(e) => (false, None, Some(e.class()), e.attempts().to_vec()),
        }
    } else {
        match router.chat(route, request).await {
            Ok(r) => (true, Some((r.response.provider.clone(), r.response.model.clone())), None, r.attempts),
            Err(e) => (false, None, Some(e.class()), e.attempts().to_vec()),
        }
    };
    Record::of_router(started, t0, (ok, served, class, attempts), resumed)
}

/// One request of another operation than chat.
async fn other_op(
    router: &Router,
    route: &str,
    operation: super::file::Operation,
    prompt: String,
    request: ChatRequest,
    started: Instant,
) -> Record {
    let t0 = Instant::now();
    let (ok, served, class, attempts) = match operation {
        super::file::Operation::Embeddings => {
            match router.embed(route, crate::embed::EmbeddingRequest::new(prompt)).await {
                Ok(e) => (true, Some((e.provider, e.model)), None, e.attempts),
                Err(e) => (false, None, Some(e.class()), e.attempts().to_vec()),
            }
        }
        _ => match router.count_tokens(route, request).await {
            Ok(c) => (true, Some((c.provider, c.model)), None, c.attempts),
            Err(e) => (false, None, Some(e.class()), e.attempts().to_vec()),
        },
    };
    Record::of_router(started, t0, (ok, served, class, attempts), false)
}

/// The providers of `route`'s targets, each once, in the route's order.
fn route_providers(policy: &Policy, route: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in policy.routes.get(route).map(|r| r.targets.as_slice()).unwrap_or_default() {
        if !out.contains(&t.provider) {
            out.push(t.provider.clone());
        }
    }
    out
}

/// `records` in slices of a quarter of a second, or of a sixtieth of the phase when it is longer
/// than 15 s.
fn timeline(records: &[Record], start_ms: f64, end_ms: f64) -> Vec<TimelinePoint> {
    let span = (end_ms - start_ms).max(1.0);
    let width = (span / 60.0).max(250.0);
    let slices = (span / width).ceil().max(1.0) as usize;
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); slices];
    let mut points: Vec<TimelinePoint> = (0..slices)
        .map(|i| TimelinePoint {
            at_ms: (start_ms + i as f64 * width) as u64,
            requests: 0,
            successes: 0,
            served_by: BTreeMap::new(),
            p99_ms: None,
        })
        .collect();
    for r in records {
        let i = (((r.ended_ms - start_ms) / width).floor().max(0.0) as usize).min(slices - 1);
        let point = &mut points[i];
        point.requests += 1;
        point.successes += usize::from(r.ok);
        if let Some((provider, _)) = &r.served {
            *point.served_by.entry(provider.clone()).or_insert(0) += 1;
        }
        latencies[i].push(r.latency.as_secs_f64() * 1000.0);
    }
    for (point, mut l) in points.iter_mut().zip(latencies) {
        if !l.is_empty() {
            l.sort_by(f64::total_cmp);
            point.p99_ms = crate::stats::nearest_rank(&l, 0.99);
        }
    }
    points
}

fn matches(who: &str, provider: &str, model: &str) -> bool {
    match who.split_once('/') {
        Some((p, m)) => p == provider && m == model,
        None => who == provider,
    }
}

pub(super) fn phase_report(
    phase: &Phase,
    records: &[Record],
    breakers: &Breakers,
    events: &[(f64, RouterEvent)],
    start_ms: f64,
    end_ms: f64,
) -> PhaseReport {
    let requests = records.len();
    let successes = records.iter().filter(|r| r.ok).count();
    let mut served_by = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let (mut retries, mut failovers) = (0, 0);
    for r in records {
        if let Some((p, m)) = &r.served {
            *served_by.entry(format!("{p}/{m}")).or_insert(0) += 1;
        }
        if let Some(c) = r.class {
            *errors.entry(c.as_str().to_owned()).or_insert(0) += 1;
        }
        // a cancelled hedge is neither a retry nor a failover
        let tried: Vec<&Attempt> = r
            .attempts
            .iter()
            .filter(|a| !matches!(a.outcome, AttemptOutcome::Skipped | AttemptOutcome::Cancelled))
            .collect();
        for pair in tried.windows(2) {
            if (&pair[0].provider, &pair[0].model) == (&pair[1].provider, &pair[1].model) {
                retries += 1;
            } else {
                failovers += 1;
            }
        }
    }
    // a gateway's requests (`--against`) carry no attempts: its events of the route tell
    let from_events = records.iter().any(|r| r.attempts.len() != r.attempt_count);
    // the events of this phase, with when they came
    let phase_events = || events.iter().filter(|(t, _)| *t >= start_ms && *t <= end_ms);
    let in_phase = |which: &dyn Fn(&RouterEvent) -> bool| phase_events().filter(|(_, e)| which(e)).count();
    if from_events {
        failovers = in_phase(&|e| matches!(e, RouterEvent::Failover { .. }));
        let tried = in_phase(&|e| {
            matches!(e, RouterEvent::Attempt { outcome, probe: false, .. }
                if !matches!(outcome, AttemptOutcome::Skipped | AttemptOutcome::Cancelled))
        });
        retries = tried.saturating_sub(records.len()).saturating_sub(failovers);
    }
    let mut latencies: Vec<f64> = records.iter().map(|r| r.latency.as_secs_f64() * 1000.0).collect();
    latencies.sort_by(f64::total_cmp);
    let transitions = phase_events()
        .filter_map(|(t, e)| match e {
            RouterEvent::Breaker { provider, model, from, to, .. } => Some(Transition {
                at_ms: *t as u64,
                provider: provider.clone(),
                model: model.clone(),
                from: *from,
                to: *to,
            }),
            _ => None,
        })
        .collect();
    let mut report = PhaseReport {
        name: phase.name.clone(),
        requests,
        successes,
        served_by,
        errors,
        retries,
        failovers,
        resumed: if from_events {
            in_phase(&|e| matches!(e, RouterEvent::Resume { .. }))
        } else {
            records.iter().filter(|r| r.resumed).count()
        },
        hedges: if from_events {
            in_phase(&|e| matches!(e, RouterEvent::Hedge { .. }))
        } else {
            hedged(records, |a| a.outcome != AttemptOutcome::Skipped)
        },
        hedges_won: if from_events {
            in_phase(&|e| matches!(e, RouterEvent::Attempt { outcome: AttemptOutcome::Ok, hedge: true, .. }))
        } else {
            hedged(records, |a| a.outcome == AttemptOutcome::Ok)
        },
        transitions,
        p50_ms: crate::stats::nearest_rank(&latencies, 0.50).unwrap_or(0.0),
        p99_ms: crate::stats::nearest_rank(&latencies, 0.99).unwrap_or(0.0),
        duration_ms: (end_ms - start_ms).max(0.0) as u64,
        cost_usd: cost(records, |_| true) + crate::stats::sum(records.iter().map(|r| r.billed_usd)),
        failed_cost_usd: if from_events {
            crate::stats::sum(phase_events().filter_map(|(_, e)| match e {
                RouterEvent::Attempt { outcome, cost_usd, .. } if *outcome != AttemptOutcome::Ok => *cost_usd,
                _ => None,
            }))
        } else {
            cost(records, |a| a.outcome != AttemptOutcome::Ok)
        },
        expectations: Vec::new(),
        started_ms: start_ms as u64,
        timeline: timeline(records, start_ms, end_ms),
    };
    report.expectations = verdicts(&phase.expect, records, breakers, events, start_ms, end_ms, &report);
    report
}

/// How many hedged attempts of `records` `which` selects.
fn hedged(records: &[Record], which: impl Fn(&Attempt) -> bool) -> usize {
    records.iter().flat_map(|r| &r.attempts).filter(|a| a.hedge && which(a)).count()
}

/// What the attempts of `records` that `which` selects cost, in USD.
fn cost(records: &[Record], which: impl Fn(&Attempt) -> bool) -> f64 {
    crate::stats::sum(records.iter().flat_map(|r| &r.attempts).filter(|a| which(a)).filter_map(|a| a.cost_usd))
}

fn min_verdict(expectation: String, actual: f64, min: f64) -> Verdict {
    let pass = actual + 1e-9 >= min;
    Verdict {
        expectation,
        actual: format!("{actual:.3}"),
        missed_by: (!pass).then(|| format!("{:.3}", min - actual)),
        pass,
    }
}

/// Every breaker's state: (provider, model for a target's, state).
pub(super) type Breakers = Vec<(String, Option<String>, BreakerState)>;

fn breakers_of(health: &Health) -> Breakers {
    let providers = health.providers.iter().map(|p| (p.provider.clone(), None, p.state.breaker));
    let targets = health.targets.iter().map(|t| (t.provider.clone(), Some(t.model.clone()), t.state.breaker));
    providers.chain(targets).collect()
}

fn verdicts(
    e: &Expect,
    records: &[Record],
    breakers: &Breakers,
    events: &[(f64, RouterEvent)],
    start_ms: f64,
    end_ms: f64,
    report: &PhaseReport,
) -> Vec<Verdict> {
    let mut out = Vec::new();
    let n = records.len().max(1) as f64;
    if let Some(min) = e.success_ratio {
        out.push(min_verdict(format!("success_ratio >= {min}"), report.successes as f64 / n, min));
    }
    let share = |who: &str| {
        records.iter().filter(|r| r.served.as_ref().is_some_and(|(p, m)| matches(who, p, m))).count() as f64 / n
    };
    for (who, min) in &e.served_by {
        out.push(min_verdict(format!("served_by {who} >= {min}"), share(who), *min));
    }
    for (who, max) in &e.served_by_at_most {
        let actual = share(who);
        let pass = actual <= *max + 1e-9;
        out.push(Verdict {
            expectation: format!("served_by {who} <= {max}"),
            actual: format!("{actual:.3}"),
            missed_by: (!pass).then(|| format!("{:.3}", actual - max)),
            pass,
        });
    }
    for (who, want) in &e.breaker {
        let states: Vec<BreakerState> = match who.split_once('/') {
            Some((p, m)) => breakers.iter().filter(|b| b.0 == p && b.1.as_deref() == Some(m)).map(|b| b.2).collect(),
            None => breakers.iter().filter(|b| b.0 == *who).map(|b| b.2).collect(),
        };
        let actual = if states.contains(&BreakerState::Open) {
            "open"
        } else if states.contains(&BreakerState::HalfOpen) {
            "half_open"
        } else {
            "closed"
        };
        out.push(Verdict {
            expectation: format!("breaker {who} is {want}"),
            actual: actual.to_owned(),
            missed_by: None,
            pass: actual == want,
        });
    }
    for (who, within) in &e.recovered_within {
        let first = records
            .iter()
            .filter(|r| r.served.as_ref().is_some_and(|(p, m)| matches(who, p, m)))
            .map(|r| r.ended_ms - start_ms)
            .min_by(f64::total_cmp);
        let limit = within.get().as_secs_f64() * 1000.0;
        let (actual, pass, missed) = match first {
            Some(t) => (
                format!("{:.2}s", t / 1000.0),
                t <= limit,
                (t > limit).then(|| format!("{:.2}s", (t - limit) / 1000.0)),
            ),
            None => ("never".to_owned(), false, None),
        };
        out.push(Verdict {
            expectation: format!("traffic back on {who} within {within}"),
            actual,
            missed_by: missed,
            pass,
        });
    }
    if let Some(at_least) = e.resumed {
        let pass = report.resumed >= at_least;
        out.push(Verdict {
            expectation: format!("resumed streams >= {at_least}"),
            actual: format!("{}", report.resumed),
            missed_by: (!pass).then(|| format!("{}", at_least - report.resumed)),
            pass,
        });
    }
    if let Some(max) = e.p99_latency {
        let limit = max.get().as_secs_f64() * 1000.0;
        let pass = report.p99_ms <= limit;
        out.push(Verdict {
            expectation: format!("p99 latency <= {max}"),
            actual: format!("{:.1}ms", report.p99_ms),
            missed_by: (!pass).then(|| format!("{:.1}ms", report.p99_ms - limit)),
            pass,
        });
    }
    for who in &e.no_requests_while_open {
        let n = requests_while_open(who, events, start_ms, end_ms);
        out.push(Verdict {
            expectation: format!("no requests to {who} while its breaker is open (probes excepted)"),
            actual: format!("{n} requests"),
            missed_by: (n > 0).then(|| format!("{n} requests")),
            pass: n == 0,
        });
    }
    out
}

/// Attempts (not probes) that started while a breaker of `who` was open.
fn requests_while_open(who: &str, events: &[(f64, RouterEvent)], start_ms: f64, end_ms: f64) -> usize {
    // events arrive a little after the fact: an attempt is counted only when it clearly started
    // inside the open interval
    const SLACK_MS: f64 = 20.0;
    let mut open: Vec<(Option<&str>, f64, f64)> = Vec::new();
    for (t, e) in events {
        if let RouterEvent::Breaker { provider, model, to: BreakerState::Open, cooldown, .. } = e
            && provider == who
        {
            let until = t + cooldown.map_or(0.0, |c| c.as_secs_f64() * 1000.0);
            open.push((model.as_deref(), *t, until));
        }
    }
    events
        .iter()
        .filter(|(t, _)| *t >= start_ms && *t <= end_ms)
        .filter(|(t, e)| match e {
            RouterEvent::Attempt { provider, model, outcome, elapsed, probe, .. }
                if provider == who && *outcome != AttemptOutcome::Skipped && !probe =>
            {
                let began = t - elapsed.as_secs_f64() * 1000.0;
                open.iter()
                    .any(|(m, from, until)| m.is_none_or(|m| m == model) && began > from + SLACK_MS && began < *until)
            }
            _ => false,
        })
        .count()
}
