//! The drill report as one self-contained HTML page (`switchyard drill --html FILE`): per phase,
//! the traffic share of each provider over time, the breakers' states as bands, the success ratio
//! and p99 over time, and each expectation with its verdict. Inline SVG and CSS: no script, no
//! network, so the file opens anywhere and can be attached to an incident ticket.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::report::{DrillReport, PhaseReport, Transition};
use crate::router::BreakerState;

/// Colours of the providers' series, in the route's order (a colour-blind-safe palette).
const PALETTE: &[&str] = &["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f"];
/// The share of requests that failed.
const FAILED: &str = "#bab0ac";

const WIDTH: f64 = 760.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 52.0;
const PLOT: f64 = WIDTH - LEFT - RIGHT;

impl DrillReport {
    /// The report as one self-contained HTML page.
    pub fn to_html(&self) -> String {
        let providers = self.chart_providers();
        let breakers = breaker_histories(self);
        let mut out = String::with_capacity(64 * 1024);
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        let _ = write!(
            out,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Drill: {} — {verdict}</title><style>{CSS}</style></head><body>\n",
            esc(&self.name)
        );
        let held: usize = self.phases.iter().map(|p| p.expectations.iter().filter(|v| v.pass).count()).sum();
        let total: usize = self.phases.iter().map(|p| p.expectations.len()).sum();
        let _ = write!(
            out,
            "<header><h1>{}</h1><p class=\"summary\"><span class=\"badge {}\">{verdict}</span> \
             {held} of {total} expectations held · {} · route <code>{}</code> · {:.1} s · \
             cost ${:.6}</p>",
            esc(&self.name),
            verdict.to_lowercase(),
            esc(&self.subject()),
            esc(&self.route),
            self.duration_ms as f64 / 1000.0,
            self.cost_usd
        );
        out.push_str("<p class=\"legend\">");
        for (i, p) in providers.iter().enumerate() {
            let _ = write!(out, "<span><i style=\"background:{}\"></i>{}</span>", colour(i), esc(p));
        }
        let _ = write!(out, "<span><i style=\"background:{FAILED}\"></i>failed</span>");
        for state in [BreakerState::Closed, BreakerState::HalfOpen, BreakerState::Open] {
            let _ = write!(out, "<span><i class=\"band-{0}\"></i>breaker {0}</span>", state.as_str());
        }
        out.push_str("</p></header>\n");
        for (i, phase) in self.phases.iter().enumerate() {
            phase_section(&mut out, i, self.phases.len(), phase, &providers, &breakers);
        }
        out.push_str("</body></html>\n");
        out
    }

    /// The route's providers, then any other that served.
    fn chart_providers(&self) -> Vec<String> {
        let mut out = self.providers.clone();
        for point in self.phases.iter().flat_map(|p| &p.timeline) {
            for p in point.served_by.keys() {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
        out
    }
}

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Every breaker that changed state during the drill, with all its transitions in order.
fn breaker_histories(report: &DrillReport) -> BTreeMap<String, Vec<&Transition>> {
    let mut out: BTreeMap<String, Vec<&Transition>> = BTreeMap::new();
    for t in report.phases.iter().flat_map(|p| &p.transitions) {
        let who = match &t.model {
            Some(m) => format!("{}/{m}", t.provider),
            None => format!("{} (provider)", t.provider),
        };
        out.entry(who).or_default().push(t);
    }
    for history in out.values_mut() {
        history.sort_by_key(|t| t.at_ms);
    }
    out
}

/// The state of a breaker at `ms`: after its last transition before then, else before its first.
fn state_at(history: &[&Transition], ms: u64) -> BreakerState {
    match history.iter().rev().find(|t| t.at_ms <= ms) {
        Some(t) => t.to,
        None => history.first().map_or(BreakerState::Closed, |t| t.from),
    }
}

fn phase_section(
    out: &mut String,
    index: usize,
    total: usize,
    phase: &PhaseReport,
    providers: &[String],
    breakers: &BTreeMap<String, Vec<&Transition>>,
) {
    let verdict = if phase.passed() { "PASS" } else { "FAIL" };
    let _ = write!(
        out,
        "<section class=\"phase\" data-phase=\"{}\"><h2><span class=\"badge {}\">{verdict}</span> Phase {}/{total}: {}</h2>\
         <p class=\"summary\">{} requests · {} ok · {} retries · {} failovers · p50 {:.1} ms · p99 {:.1} ms · {:.1} s · \
         cost ${:.6}</p>",
        esc(&phase.name),
        verdict.to_lowercase(),
        index + 1,
        esc(&phase.name),
        phase.requests,
        phase.successes,
        phase.retries,
        phase.failovers,
        phase.p50_ms,
        phase.p99_ms,
        phase.duration_ms as f64 / 1000.0,
        phase.cost_usd
    );
    let (start, end) = (phase.started_ms, phase.started_ms + phase.duration_ms.max(1));
    traffic_chart(out, phase, providers, start, end);
    breaker_chart(out, breakers, start, end);
    health_chart(out, phase, start, end);
    out.push_str(
        "<table class=\"expectations\"><thead><tr><th></th><th>expectation</th><th>actual</th></tr></thead><tbody>",
    );
    for v in &phase.expectations {
        let missed = v.missed_by.as_ref().map(|m| format!(" (missed by {})", esc(m))).unwrap_or_default();
        let _ = write!(
            out,
            "<tr class=\"{}\"><td><span class=\"badge {0}\">{}</span></td><td>{}</td><td>{}{missed}</td></tr>",
            if v.pass { "pass" } else { "fail" },
            if v.pass { "PASS" } else { "FAIL" },
            esc(&v.expectation),
            esc(&v.actual)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

/// The x of `ms` in a chart of the phase from `start` to `end`.
fn x_of(ms: f64, start: u64, end: u64) -> f64 {
    LEFT + PLOT * ((ms - start as f64) / (end - start) as f64).clamp(0.0, 1.0)
}

/// The time axis under a chart at `y`: seconds since the drill started.
fn time_axis(out: &mut String, y: f64, start: u64, end: u64) {
    let _ = write!(out, "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>", LEFT + PLOT);
    let span = (end - start) as f64 / 1000.0;
    let step = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0].into_iter().find(|s| span / s <= 8.0);
    let step = step.unwrap_or(span / 8.0);
    let mut s = (start as f64 / 1000.0 / step).ceil() * step;
    while s <= end as f64 / 1000.0 + 1e-9 {
        let x = x_of(s * 1000.0, start, end);
        let _ = write!(
            out,
            "<line class=\"tick\" x1=\"{x:.1}\" y1=\"{y}\" x2=\"{x:.1}\" y2=\"{}\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{s}s</text>",
            y + 4.0,
            y + 15.0
        );
        s += step;
    }
}

/// A stacked bar per slice: the share of the slice's requests each provider served, and the
/// share that failed.
fn traffic_chart(out: &mut String, phase: &PhaseReport, providers: &[String], start: u64, end: u64) {
    let (top, height) = (8.0, 120.0);
    let _ = write!(
        out,
        "<figure><figcaption>Traffic share by provider</figcaption><svg class=\"chart traffic\" viewBox=\"0 0 {WIDTH} {}\" \
         data-series=\"{}\" role=\"img\" aria-label=\"traffic share by provider over time\">",
        top + height + 22.0,
        esc(&providers.join(" "))
    );
    for (share, label) in [(1.0, "100%"), (0.5, "50%"), (0.0, "0%")] {
        let y = top + height * (1.0 - share);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/><text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>",
            LEFT + PLOT,
            LEFT - 4.0,
            y + 3.0
        );
    }
    let width = |i: usize| {
        let a = phase.timeline[i].at_ms as f64;
        let b = phase.timeline.get(i + 1).map_or(end as f64, |p| p.at_ms as f64);
        (x_of(a, start, end), (x_of(b, start, end) - x_of(a, start, end) - 1.0).max(0.5))
    };
    // one group per series, bottom to top: the providers in order, then the failures
    let mut base = vec![0.0_f64; phase.timeline.len()];
    let series = providers.iter().enumerate().map(|(i, p)| (p.as_str(), colour(i))).chain([("failed", FAILED)]);
    for (name, fill) in series {
        let _ = write!(out, "<g class=\"series\" data-series=\"{}\" fill=\"{fill}\">", esc(name));
        for (i, point) in phase.timeline.iter().enumerate() {
            if point.requests == 0 {
                continue;
            }
            let n = if name == "failed" {
                point.requests - point.successes
            } else {
                point.served_by.get(name).copied().unwrap_or(0)
            };
            if n == 0 {
                continue;
            }
            let share = n as f64 / point.requests as f64;
            let (x, w) = width(i);
            let y = top + height * (1.0 - base[i] - share);
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>{}: {n} of {} requests at {:.2}s</title></rect>",
                height * share,
                esc(name),
                point.requests,
                point.at_ms as f64 / 1000.0
            );
            base[i] += share;
        }
        out.push_str("</g>");
    }
    time_axis(out, top + height, start, end);
    out.push_str("</svg></figure>");
}

/// One band per breaker that changed state during the drill, coloured by its state over the phase.
fn breaker_chart(out: &mut String, breakers: &BTreeMap<String, Vec<&Transition>>, start: u64, end: u64) {
    if breakers.is_empty() {
        out.push_str("<p class=\"note\">No breaker changed state during the drill.</p>");
        return;
    }
    let (row, top) = (18.0, 4.0);
    let height = top + row * breakers.len() as f64 + 22.0;
    let _ = write!(
        out,
        "<figure><figcaption>Breakers</figcaption><svg class=\"chart breakers\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"breaker states over time\">"
    );
    for (r, (who, history)) in breakers.iter().enumerate() {
        let y = top + row * r as f64;
        let _ = write!(out, "<g class=\"band\" data-breaker=\"{}\">", esc(who));
        // the state at the start, then one segment per transition within the phase
        let mut cuts: Vec<(u64, BreakerState)> = vec![(start, state_at(history, start))];
        cuts.extend(history.iter().filter(|t| t.at_ms > start && t.at_ms < end).map(|t| (t.at_ms, t.to)));
        for (k, (at, state)) in cuts.iter().enumerate() {
            let until = cuts.get(k + 1).map_or(end, |c| c.0);
            let (x0, x1) = (x_of(*at as f64, start, end), x_of(until as f64, start, end));
            let _ = write!(
                out,
                "<rect class=\"band-{}\" x=\"{x0:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\"><title>{}: {} from {:.2}s</title></rect>",
                state.as_str(),
                (x1 - x0).max(0.5),
                row - 4.0,
                esc(who),
                state.as_str(),
                *at as f64 / 1000.0
            );
        }
        let _ =
            write!(out, "<text class=\"label\" x=\"{}\" y=\"{}\">{}</text></g>", LEFT + 4.0, y + row - 8.0, esc(who));
    }
    time_axis(out, top + row * breakers.len() as f64, start, end);
    out.push_str("</svg></figure>");
}

/// The success ratio (left axis, 0 to 1) and the p99 latency (right axis, ms) per slice.
fn health_chart(out: &mut String, phase: &PhaseReport, start: u64, end: u64) {
    let (top, height) = (8.0, 100.0);
    let max_p99 = phase.timeline.iter().filter_map(|p| p.p99_ms).fold(0.0_f64, f64::max).max(1.0);
    let _ = write!(
        out,
        "<figure><figcaption>Success ratio <span class=\"key ok\"></span> and p99 latency <span class=\"key p99\"></span></figcaption>\
         <svg class=\"chart health\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"success ratio and p99 latency over time\">",
        top + height + 22.0
    );
    for (share, label) in [(1.0, "1.0"), (0.5, "0.5"), (0.0, "0")] {
        let y = top + height * (1.0 - share);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/><text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>\
             <text class=\"tick p99\" x=\"{}\" y=\"{}\">{:.0} ms</text>",
            LEFT + PLOT,
            LEFT - 4.0,
            y + 3.0,
            LEFT + PLOT + 4.0,
            y + 3.0,
            max_p99 * share
        );
    }
    let mid = |i: usize| {
        let a = phase.timeline[i].at_ms as f64;
        let b = phase.timeline.get(i + 1).map_or(end as f64, |p| p.at_ms as f64);
        x_of((a + b) / 2.0, start, end)
    };
    let mut ok = Vec::new();
    let mut p99 = Vec::new();
    for (i, point) in phase.timeline.iter().enumerate() {
        if point.requests > 0 {
            let ratio = point.successes as f64 / point.requests as f64;
            ok.push(format!("{:.1},{:.1}", mid(i), top + height * (1.0 - ratio)));
        }
        if let Some(ms) = point.p99_ms {
            p99.push(format!("{:.1},{:.1}", mid(i), top + height * (1.0 - ms / max_p99)));
        }
    }
    let _ = write!(
        out,
        "<polyline class=\"line ok\" data-series=\"success_ratio\" points=\"{}\"/><polyline class=\"line p99\" data-series=\"p99_ms\" points=\"{}\"/>",
        ok.join(" "),
        p99.join(" ")
    );
    time_axis(out, top + height, start, end);
    out.push_str("</svg></figure>");
}

/// Text for HTML: the five characters that could end it escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:800px;padding:16px;color:#1d232a;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:0 0 4px}
section.phase{border-top:1px solid #d8dde3;padding:14px 0 6px}
.summary{color:#4a5561;margin:2px 0 8px}
.badge{display:inline-block;font-weight:600;font-size:12px;padding:1px 7px;border-radius:9px;color:#fff}
.badge.pass{background:#2e7d32}.badge.fail{background:#c62828}
.legend span{margin-right:14px;white-space:nowrap}.legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
figure{margin:6px 0 10px}figcaption{font-size:12px;color:#4a5561;margin-bottom:2px}
svg.chart{width:100%;height:auto;display:block}
.axis{stroke:#8a949e}.grid{stroke:#e6e9ed}.tick{stroke:#8a949e;font-size:10px;fill:#6b7682}text.tick{stroke:none}
text.label{font-size:11px;fill:#fff;paint-order:stroke;stroke:#0006;stroke-width:2px}
.band-closed{fill:#66bb6a;background:#66bb6a}.band-half_open{fill:#ffb300;background:#ffb300}.band-open{fill:#e53935;background:#e53935}
.line{fill:none;stroke-width:2}.line.ok{stroke:#2e7d32}.line.p99{stroke:#6a1b9a;stroke-dasharray:4 3}text.p99{fill:#6a1b9a}
.key{display:inline-block;width:16px;height:0;border-top:2px solid;vertical-align:middle}.key.ok{border-color:#2e7d32}.key.p99{border-color:#6a1b9a;border-top-style:dashed}
.note{color:#6b7682;font-size:12px}
table.expectations{border-collapse:collapse;width:100%;font-size:13px}
table.expectations td,table.expectations th{text-align:left;padding:3px 6px;border-bottom:1px solid #eef0f2}
tr.fail td{background:#fdecea}
code{font-size:13px}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn a_breaker_state_follows_its_transitions() {
        let t = |at_ms, from, to| Transition { at_ms, provider: "openai".into(), model: None, from, to };
        let (open, half, closed) = (BreakerState::Open, BreakerState::HalfOpen, BreakerState::Closed);
        let a = t(1000, closed, open);
        let b = t(2000, open, half);
        let history = vec![&a, &b];
        assert_eq!(state_at(&history, 500), closed);
        assert_eq!(state_at(&history, 1000), open);
        assert_eq!(state_at(&history, 1999), open);
        assert_eq!(state_at(&history, 2500), half);
    }
}
