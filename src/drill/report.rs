//! The drill report: per phase what happened and whether each expectation held.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::router::BreakerState;

/// One breaker transition seen during a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// Milliseconds since the drill started.
    pub at_ms: u64,
    /// Provider.
    pub provider: String,
    /// Model (`None`: the provider-wide breaker).
    pub model: Option<String>,
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
}

/// What one slice of a phase's time did (the charts of the HTML report are drawn from these).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Where the slice starts, milliseconds since the drill started.
    pub at_ms: u64,
    /// Requests that ended in the slice.
    pub requests: usize,
    /// Those that succeeded.
    pub successes: usize,
    /// Those served, by provider.
    pub served_by: BTreeMap<String, usize>,
    /// 99th percentile latency of those requests, ms (`None`: no request ended in the slice).
    pub p99_ms: Option<f64>,
}

/// One expectation and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// What was expected, e.g. `success_ratio >= 0.99`.
    pub expectation: String,
    /// What was measured, e.g. `0.96`.
    pub actual: String,
    /// By how much it missed, when it failed and the gap is a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed_by: Option<String>,
    /// Whether it held.
    pub pass: bool,
}

/// What one phase did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseReport {
    /// Phase name.
    pub name: String,
    /// Requests sent.
    pub requests: usize,
    /// Requests that succeeded.
    pub successes: usize,
    /// Requests served, by `provider/model`.
    pub served_by: BTreeMap<String, usize>,
    /// Failed requests by error class.
    pub errors: BTreeMap<String, usize>,
    /// Attempts retried on the same target.
    pub retries: usize,
    /// Requests that moved to another target.
    pub failovers: usize,
    /// Streams that failed midway and were finished by a continuation (`resume`).
    pub resumed: usize,
    /// Hedged attempts started (a route's `hedge`), and how many of them served the answer.
    pub hedges: usize,
    /// Hedged attempts that served the answer.
    pub hedges_won: usize,
    /// Breaker transitions, with timestamps.
    pub transitions: Vec<Transition>,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Phase duration, ms.
    pub duration_ms: u64,
    /// What the phase's requests cost in USD at the model profiles' prices, every attempt
    /// included.
    pub cost_usd: f64,
    /// The part of `cost_usd` billed for attempts that did not serve (streams cut after content,
    /// cancelled hedges).
    pub failed_cost_usd: f64,
    /// Every expectation with its verdict.
    pub expectations: Vec<Verdict>,
    /// When the phase started, milliseconds since the drill started.
    pub started_ms: u64,
    /// The phase in slices of equal time (a quarter of a second, or longer so that a phase has at
    /// most 60).
    pub timeline: Vec<TimelinePoint>,
}

impl PhaseReport {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.expectations.iter().all(|v| v.pass)
    }
}

/// The whole drill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillReport {
    /// Drill name.
    pub name: String,
    /// `simulated`, `live`, or `gateway URL` (`--against`).
    pub mode: String,
    /// The route under load.
    pub route: String,
    /// The providers of the route's targets, in the route's order.
    pub providers: Vec<String>,
    /// Whether every expectation of every phase held.
    pub passed: bool,
    /// Total duration, ms.
    pub duration_ms: u64,
    /// What the drill's requests cost in USD at the model profiles' prices (simulated providers
    /// report real-looking usage, so a simulated drill shows what its traffic would cost).
    pub cost_usd: f64,
    /// The phases.
    pub phases: Vec<PhaseReport>,
}

impl DrillReport {
    /// The report of `phases`: it passed when every phase did, and cost what they did.
    pub(crate) fn of_phases(
        drill: &super::file::Drill,
        mode: String,
        providers: Vec<String>,
        duration_ms: u64,
        phases: Vec<PhaseReport>,
    ) -> DrillReport {
        DrillReport {
            name: drill.name.clone(),
            mode,
            route: drill.route.clone(),
            providers,
            passed: phases.iter().all(PhaseReport::passed),
            duration_ms,
            cost_usd: crate::stats::sum(phases.iter().map(|p| p.cost_usd)),
            phases,
        }
    }

    /// What was drilled: `simulated providers`, `live providers`, or `the gateway at URL`.
    pub fn subject(&self) -> String {
        match self.mode.strip_prefix("gateway ") {
            Some(url) => format!("the gateway at {url}"),
            None => format!("{} providers", self.mode),
        }
    }

    /// The report as text tables.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "drill: {} ({}, route {})", self.name, self.subject(), self.route);
        for (i, p) in self.phases.iter().enumerate() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "phase {}/{}: {}  [{}]  {:.1}s",
                i + 1,
                self.phases.len(),
                p.name,
                if p.passed() { "PASS" } else { "FAIL" },
                p.duration_ms as f64 / 1000.0
            );
            let _ = writeln!(
                out,
                "  requests {:>4}   ok {:>4}   retries {:>4}   failovers {:>4}   p50 {:>7.1} ms   p99 {:>7.1} ms",
                p.requests, p.successes, p.retries, p.failovers, p.p50_ms, p.p99_ms
            );
            let _ = writeln!(out, "  cost ${:.6}   of which failed attempts ${:.6}", p.cost_usd, p.failed_cost_usd);
            if p.hedges > 0 {
                let _ = writeln!(
                    out,
                    "  hedges {:>4}   won {:>4}  (started beside an attempt slow to its first token)",
                    p.hedges, p.hedges_won
                );
            }
            if p.resumed > 0 {
                let _ =
                    writeln!(out, "  resumed streams {:>4}  (failed midway, finished from the checkpoint)", p.resumed);
            }
            for (who, n) in &p.served_by {
                let share = if p.requests == 0 { 0.0 } else { 100.0 * *n as f64 / p.requests as f64 };
                let _ = writeln!(out, "  served by {who:<34} {n:>4}  ({share:5.1}%)");
            }
            for (class, n) in &p.errors {
                let _ = writeln!(out, "  failed with {class:<32} {n:>4}");
            }
            for t in &p.transitions {
                let who = match &t.model {
                    Some(m) => format!("{}/{}", t.provider, m),
                    None => format!("{} (provider)", t.provider),
                };
                let _ = writeln!(
                    out,
                    "  breaker {who:<32} {} -> {}  at {:.2}s",
                    t.from.as_str(),
                    t.to.as_str(),
                    t.at_ms as f64 / 1000.0
                );
            }
            for v in &p.expectations {
                let missed = v.missed_by.as_ref().map(|m| format!(" (missed by {m})")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {}  {:<46} actual {}{}",
                    if v.pass { "PASS" } else { "FAIL" },
                    v.expectation,
                    v.actual,
                    missed
                );
            }
        }
        let failed: usize = self.phases.iter().map(|p| p.expectations.iter().filter(|v| !v.pass).count()).sum();
        let total: usize = self.phases.iter().map(|p| p.expectations.len()).sum();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "result: {}  ({} of {} expectations held, {:.1}s, cost ${:.6})",
            if self.passed { "PASS" } else { "FAIL" },
            total - failed,
            total,
            self.duration_ms as f64 / 1000.0,
            self.cost_usd
        );
        out
    }
}
