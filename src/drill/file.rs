//! Drill files: the policy under test, the load, and phases with faults and expectations.
//! Errors name file, line, column and key, like policy errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::duration::DurationStr;
use crate::policy::compile::{compile_table, section};
use crate::policy::diagnostic::Collector;
use crate::policy::{InjectKind, LiveFault, Policy, PolicyError};

/// Whether the drill runs against simulated providers or the real ones the policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillMode {
    /// Every provider is pointed at an in-process simulator (no keys, no network).
    #[default]
    Simulated,
    /// The providers as the policy names them (keys from the environment).
    Live,
}

/// `[load]`: the traffic of each phase.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Requests per phase.
    #[serde(default = "default_requests")]
    pub requests: usize,
    /// Requests started per second; 0 sends as fast as `concurrency` allows.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Requests in flight at most.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Share of requests that stream (0..=1).
    #[serde(default)]
    pub stream_share: f64,
    /// The prompt.
    #[serde(default = "default_prompt")]
    pub prompt: String,
    /// `max_tokens` of each request.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// What each request asks: chat (default), embeddings of the prompt, or a count of its tokens.
    #[serde(default)]
    pub operation: Operation,
}

/// `[load] operation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// `Router::chat` (or a stream, for `stream_share`).
    #[default]
    Chat,
    /// `Router::embed` of the prompt.
    Embeddings,
    /// `Router::count_tokens` of the prompt.
    CountTokens,
}

fn default_requests() -> usize {
    50
}
fn default_rate() -> f64 {
    25.0
}
fn default_concurrency() -> usize {
    4
}
fn default_prompt() -> String {
    "Say hello in five words".into()
}

impl Default for Load {
    fn default() -> Self {
        Load {
            requests: default_requests(),
            rate: default_rate(),
            concurrency: default_concurrency(),
            stream_share: 0.0,
            prompt: default_prompt(),
            max_tokens: None,
            operation: Operation::Chat,
        }
    }
}

/// What must hold at the end of a phase. Every entry is checked and reported PASS or FAIL.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Minimum share of successful requests.
    pub success_ratio: Option<f64>,
    /// Minimum share of requests served by a provider (`openai`) or a target (`openai/gpt-4o`).
    #[serde(default)]
    pub served_by: BTreeMap<String, f64>,
    /// Maximum share of requests served by a provider or target.
    #[serde(default)]
    pub served_by_at_most: BTreeMap<String, f64>,
    /// Breaker state at the end of the phase: `open`, `closed` or `half_open`, by provider
    /// (`openai`: the provider-wide breaker, or any of its targets' when `open`) or target
    /// (`openai/gpt-4o`).
    #[serde(default)]
    pub breaker: BTreeMap<String, String>,
    /// Traffic is back on a provider or target within this long after the phase starts.
    #[serde(default)]
    pub recovered_within: BTreeMap<String, DurationStr>,
    /// Largest p99 latency of the phase's requests.
    pub p99_latency: Option<DurationStr>,
    /// At least this many streams failed midway and were finished by a continuation.
    pub resumed: Option<usize>,
    /// No request reaches these providers while one of their breakers is open (probes excepted).
    #[serde(default)]
    pub no_requests_while_open: Vec<String>,
}

/// One fault of a phase: the same fields as `[[drill.faults]]` in a policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseFaultSpec {
    provider: Spanned<String>,
    model: Option<String>,
    inject: Spanned<String>,
    rate: Option<Spanned<f64>>,
    count: Option<u64>,
    retry_after: Option<DurationStr>,
    delay: Option<DurationStr>,
    after_tokens: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseSpec {
    name: String,
    requests: Option<usize>,
    #[serde(default)]
    faults: Vec<PhaseFaultSpec>,
    #[serde(default)]
    expect: Expect,
}

/// A phase: its faults, its traffic and its expectations.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Its name.
    pub name: String,
    /// Requests in this phase.
    pub requests: usize,
    /// Faults in effect during the phase (lifted at its end).
    pub faults: Vec<LiveFault>,
    /// What must hold.
    pub expect: Expect,
}

/// A parsed, validated drill.
#[derive(Debug, Clone)]
pub struct Drill {
    /// Its name.
    pub name: String,
    /// Where it was read from.
    pub source: String,
    /// Simulated or live.
    pub mode: DrillMode,
    /// The route the load is sent along.
    pub route: String,
    /// The policy under test.
    pub policy: Policy,
    /// The load.
    pub load: Load,
    /// The phases, in order.
    pub phases: Vec<Phase>,
}

/// The drill that `switchyard drill` runs without a file.
pub const BUILTIN: &str = include_str!("../../policies/drills/builtin.toml");

const TOP_LEVEL: &[&str] = &["name", "description", "mode", "route", "policy", "policy_file", "load", "phases"];

impl Drill {
    /// The built-in drill: OpenAI fails, then Anthropic degrades too, then both recover.
    pub fn builtin() -> Result<Drill, PolicyError> {
        Drill::from_toml(BUILTIN, "<built-in drill>", None)
    }

    /// Reads a drill file; a `policy_file` in it is resolved relative to the file.
    pub fn from_file(path: &Path) -> Result<Drill, PolicyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::Io { file: file.clone(), message: e.to_string() })?;
        Drill::from_toml(&text, &file, path.parent())
    }

    /// Parses a drill from TOML text.
    pub fn from_toml(text: &str, source: &str, base_dir: Option<&Path>) -> Result<Drill, PolicyError> {
        let mut c = Collector::new(source, text);
        let (root, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            for e in syntax {
                c.error(&e.span().unwrap_or(0..0), "", e.message().trim().to_owned());
            }
            return Err(PolicyError::Invalid(c.errors));
        }
        let root = root.get_ref();
        for (k, _) in root.iter() {
            if !TOP_LEVEL.contains(&k.get_ref().as_ref()) {
                c.error(
                    &k.span(),
                    k.get_ref().to_string(),
                    format!("unknown key; expected one of: {}", TOP_LEVEL.join(", ")),
                );
            }
        }
        let get = |k: &str| root.iter().find(|(key, _)| key.get_ref() == k).map(|(key, v)| (key.span(), v.clone()));
        let name: Option<String> = get("name").and_then(|(_, v)| section(&mut c, "name", &v));
        let mode: DrillMode = get("mode").and_then(|(_, v)| section(&mut c, "mode", &v)).unwrap_or_default();
        let route: Option<Spanned<String>> = get("route").and_then(|(_, v)| section(&mut c, "route", &v));
        let load: Load = get("load").and_then(|(_, v)| section(&mut c, "load", &v)).unwrap_or_default();
        if !(0.0..=1.0).contains(&load.stream_share) {
            let span = get("load").map_or(0..0, |(s, _)| s);
            c.error(&span, "load.stream_share", "must be between 0 and 1");
        }
        if load.operation != Operation::Chat && load.stream_share > 0.0 {
            let span = get("load").map_or(0..0, |(s, _)| s);
            c.error(&span, "load.stream_share", "only chat streams: set it to 0 with `operation` other than chat");
        }
        if load.concurrency == 0 {
            let span = get("load").map_or(0..0, |(s, _)| s);
            c.error(&span, "load.concurrency", "must be at least 1");
        }
        let phases_spec: Vec<Spanned<PhaseSpec>> = match get("phases") {
            Some((_, v)) => section(&mut c, "phases", &v).unwrap_or_default(),
            None => {
                c.error(&(0..0), "phases", "a drill needs at least one [[phases]]");
                Vec::new()
            }
        };

        // the policy: inline `[policy]` or `policy_file = "..."`
        let policy = match (get("policy"), get("policy_file")) {
            (Some((span, v)), None) => match v.get_ref() {
                DeValue::Table(t) => {
                    let mut pc = Collector::new(source, text);
                    pc.prefix = "policy.".into();
                    match compile_table(pc, t, text) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            c.errors.extend(e.diagnostics().iter().cloned());
                            None
                        }
                    }
                }
                _ => {
                    c.error(&span, "policy", "expected a table (the policy itself)");
                    None
                }
            },
            (None, Some((span, v))) => {
                let rel: Option<String> = section(&mut c, "policy_file", &v);
                rel.and_then(|rel| {
                    let path: PathBuf = base_dir.map_or_else(|| PathBuf::from(&rel), |d| d.join(&rel));
                    match Policy::from_file(&path) {
                        Ok(p) => Some(p),
                        Err(PolicyError::Io { message, .. }) => {
                            c.error(&span, "policy_file", format!("cannot read `{}`: {message}", path.display()));
                            None
                        }
                        Err(e) => {
                            c.errors.extend(e.diagnostics().iter().cloned());
                            None
                        }
                    }
                })
            }
            (Some((span, _)), Some(_)) => {
                c.error(&span, "policy", "give either [policy] or policy_file, not both");
                None
            }
            (None, None) => {
                c.error(&(0..0), "policy", "a drill needs the policy under test: [policy] or policy_file = \"...\"");
                None
            }
        };

        let route_name = route.as_ref().map_or_else(|| "chat".to_owned(), |r| r.get_ref().clone());
        if let Some(p) = &policy
            && p.route(&route_name).is_none()
        {
            let span = route.as_ref().map_or(0..0, |r| r.span());
            let routes: Vec<&str> = p.routes.keys().map(String::as_str).collect();
            c.error(&span, "route", format!("the policy has no route `{route_name}`; routes: {}", routes.join(", ")));
        }
        let mut phases = Vec::new();
        for (i, spec) in phases_spec.iter().enumerate() {
            let key = format!("phases[{i}]");
            let s = spec.get_ref();
            let mut faults = Vec::new();
            for (j, f) in s.faults.iter().enumerate() {
                let fkey = format!("{key}.faults[{j}]");
                if let Some(p) = &policy
                    && p.provider(f.provider.get_ref()).is_none()
                {
                    c.error(
                        &f.provider.span(),
                        format!("{fkey}.provider"),
                        format!("the policy has no provider `{}`", f.provider.get_ref()),
                    );
                }
                let Some(inject) = InjectKind::parse(f.inject.get_ref()) else {
                    c.error(&f.inject.span(), format!("{fkey}.inject"), format!("unknown fault `{}`: use an error class (server_error, overloaded, rate_limited, ...) or latency, slow_first_token, stall, cut", f.inject.get_ref()));
                    continue;
                };
                let rate = f.rate.as_ref().map_or(1.0, |r| *r.get_ref());
                if !(0.0..=1.0).contains(&rate) {
                    let span = f.rate.as_ref().map_or_else(|| f.inject.span(), |r| r.span());
                    c.error(&span, format!("{fkey}.rate"), format!("rate must be between 0 and 1, found {rate}"));
                }
                let mut fault = LiveFault::new(f.provider.get_ref().clone(), inject).rate(rate);
                fault.model.clone_from(&f.model);
                fault.count = f.count;
                fault.retry_after = f.retry_after.map(|d| d.get());
                fault.delay = f.delay.map(|d| d.get());
                fault.after_tokens = f.after_tokens;
                faults.push(fault);
            }
            check_expect(&mut c, &key, spec.span(), &s.expect, policy.as_ref());
            phases.push(Phase {
                name: s.name.clone(),
                requests: s.requests.unwrap_or(load.requests),
                faults,
                expect: s.expect.clone(),
            });
        }
        if !c.errors.is_empty() {
            c.errors.sort_by_key(|d| (d.location.line, d.location.column));
            return Err(PolicyError::Invalid(c.errors));
        }
        let Some(policy) = policy else { return Err(PolicyError::Invalid(c.errors)) };
        Ok(Drill {
            name: name.unwrap_or_else(|| source.to_owned()),
            source: source.to_owned(),
            mode,
            route: route_name,
            policy,
            load,
            phases,
        })
    }

    /// Roughly how long the drill takes at its configured rate.
    pub fn planned_duration(&self) -> Duration {
        if self.load.rate <= 0.0 {
            return Duration::ZERO;
        }
        let total: usize = self.phases.iter().map(|p| p.requests).sum();
        Duration::from_secs_f64(total as f64 / self.load.rate)
    }
}

fn check_expect(c: &mut Collector<'_>, key: &str, span: std::ops::Range<usize>, e: &Expect, policy: Option<&Policy>) {
    let known = |who: &str| -> bool {
        let Some(p) = policy else { return true };
        match who.split_once('/') {
            Some((prov, model)) => {
                p.routes.values().any(|r| r.targets.iter().any(|t| t.provider == prov && t.model == model))
            }
            None => p.provider(who).is_some(),
        }
    };
    for (who, share) in e.served_by.iter().chain(e.served_by_at_most.iter()) {
        if !known(who) {
            c.error(
                &span,
                format!("{key}.expect.served_by.{who}"),
                format!("the policy has no provider or target `{who}`"),
            );
        }
        if !(0.0..=1.0).contains(share) {
            c.error(&span, format!("{key}.expect.served_by.{who}"), "a share is between 0 and 1");
        }
    }
    for (who, state) in &e.breaker {
        if !known(who) {
            c.error(
                &span,
                format!("{key}.expect.breaker.{who}"),
                format!("the policy has no provider or target `{who}`"),
            );
        }
        if !["open", "closed", "half_open"].contains(&state.as_str()) {
            c.error(
                &span,
                format!("{key}.expect.breaker.{who}"),
                format!("unknown state `{state}`: open, closed or half_open"),
            );
        }
    }
    for who in e.recovered_within.keys().chain(e.no_requests_while_open.iter()) {
        if !known(who) {
            c.error(&span, format!("{key}.expect"), format!("the policy has no provider or target `{who}`"));
        }
    }
    if let Some(r) = e.success_ratio
        && !(0.0..=1.0).contains(&r)
    {
        c.error(&span, format!("{key}.expect.success_ratio"), "a ratio is between 0 and 1");
    }
}
