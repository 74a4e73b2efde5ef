//! `switchyard check POLICY`: validate and print the resolved plan.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::duration::format_duration;
use switchyard::policy::{Limits, Policy, RoutePolicy};

use super::EXIT_USAGE;

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The policy file.
    policy: PathBuf,
    /// Print the resolved policy as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &CheckArgs) -> ExitCode {
    match Policy::from_file(&args.policy) {
        Ok(policy) => {
            if args.json {
                match serde_json::to_string_pretty(&policy) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(EXIT_USAGE);
                    }
                }
            } else {
                print!("{}", render(&policy));
            }
            for w in &policy.warnings {
                eprintln!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            let n = e.diagnostics().len().max(1);
            eprintln!("{} error{} in {}", n, if n == 1 { "" } else { "s" }, args.policy.display());
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `, budget $5.00 per 1day`, or nothing.
fn budget(b: Option<&switchyard::policy::Budget>) -> String {
    b.map_or(String::new(), |b| format!(", budget ${:.2} per {}", b.usd, format_duration(b.per)))
}

fn limits(l: &Limits) -> String {
    if l.is_unlimited() {
        return "none".into();
    }
    let mut parts = Vec::new();
    if let Some(v) = l.rpm {
        parts.push(format!("rpm={v}"));
    }
    if let Some(v) = l.tpm {
        parts.push(format!("tpm={v}"));
    }
    if let Some(v) = l.concurrency {
        parts.push(format!("concurrency={v}"));
    }
    parts.join(" ")
}

/// The resolved plan as text: what `check` prints.
pub(crate) fn render(policy: &Policy) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "policy {} (hash {}) is valid", policy.source, policy.hash);
    let _ = writeln!(out, "\nproviders:");
    for p in policy.providers.values() {
        let key = match &p.api_key_env {
            _ if p.auth == switchyard::profile::AuthScheme::None => "no key".into(),
            Some(var) if std::env::var(var).is_ok_and(|v| !v.trim().is_empty()) => format!("key ${var} (set)"),
            Some(var) => format!("key ${var} (NOT SET)"),
            None => "no key".into(),
        };
        let _ = writeln!(
            out,
            "  {:<12} {:<9} {}  {}  limits: {}  breaker: {} failures, cooldown {}..{}{}",
            p.name,
            p.protocol.as_str(),
            p.base_url,
            key,
            limits(&p.limits),
            p.breaker.consecutive_failures,
            format_duration(p.breaker.cooldown),
            format_duration(p.breaker.max_cooldown),
            budget(p.budget.as_ref())
        );
        if let Some(page) = &p.status_page {
            let on_incident = match page.on_incident {
                switchyard::policy::OnIncident::Deprioritize => "a major outage moves its targets last",
                _ => "incidents reported, order kept",
            };
            let _ = writeln!(
                out,
                "               status page {} every {} ({on_incident})",
                page.url,
                format_duration(page.interval)
            );
        }
    }
    let _ = writeln!(out, "\nroutes:");
    for r in policy.routes.values() {
        render_route(&mut out, r);
    }
    render_server(&mut out, &policy.server, policy.providers.len());
    if let switchyard::policy::StateBackend::Redis { url, .. } = &policy.state.backend {
        let _ = writeln!(
            out,
            "\nshared state: redis {} (fleet {}, timeout {}, {} when it does not answer)",
            url.redacted(),
            policy.state.fleet,
            format_duration(policy.state.timeout),
            match policy.state.on_state_error {
                switchyard::policy::OnStateError::FailClosed => "limited targets skipped",
                _ => "local limits decide",
            }
        );
    }
    if !policy.drill_faults.is_empty() {
        let _ = writeln!(out, "\nlive drill faults:");
        for f in &policy.drill_faults {
            let _ = writeln!(out, "  {} {} rate {}", f.provider, f.inject, f.rate);
        }
    }
    out
}

/// What `switchyard serve` would enforce: client keys, TLS, the limits with defaults filled in.
fn render_server(out: &mut String, server: &switchyard::policy::ServerSettings, providers: usize) {
    use switchyard::serve as d;
    let _ = writeln!(out, "\ngateway:");
    let keys = &server.client_keys;
    if keys.enabled() {
        let names: Vec<String> = keys
            .keys()
            .iter()
            .map(|k| {
                let routes = k.routes.as_ref().map_or("every route".to_owned(), |r| r.join(", "));
                let admin = if k.admin { ", admin" } else { "" };
                let limits = if k.limits.is_unlimited() { String::new() } else { format!(", {}", limits(&k.limits)) };
                format!("{} ({routes}{admin}{limits}{})", k.name, budget(k.budget.as_ref()))
            })
            .collect();
        let from = server.keys_file.as_ref().map_or(String::new(), |f| format!(" from {}", f.display()));
        let _ = writeln!(
            out,
            "  client keys{from}: {}",
            if names.is_empty() { "none (every request refused)".to_owned() } else { names.join("; ") }
        );
    } else {
        let _ = writeln!(out, "  client keys: none (every endpoint open; set keys_file)");
    }
    if let Some(tls) = &server.tls {
        let _ = writeln!(out, "  tls: {} / {}", tls.cert.display(), tls.key.display());
    }
    let time = |v: Option<std::time::Duration>, default| format_duration(v.unwrap_or(default));
    let n = |v: Option<u64>, default: usize| v.map_or(default.to_string(), |v| v.to_string());
    let _ = writeln!(
        out,
        "  timeouts: header_read {}, body_read {}, keepalive {}, write {}",
        time(server.header_read_timeout, d::DEFAULT_HEADER_READ_TIMEOUT),
        time(server.body_read_timeout, d::DEFAULT_BODY_READ_TIMEOUT),
        time(server.keepalive_timeout, d::DEFAULT_KEEPALIVE_TIMEOUT),
        time(server.write_timeout, d::DEFAULT_WRITE_TIMEOUT),
    );
    let _ = writeln!(
        out,
        "  limits: max_connections {}, max_header_bytes {}, max_body {}, max_in_flight_per_key {}, max_model_bytes {}, max_messages {}, max_tools {}",
        n(server.max_connections, d::DEFAULT_MAX_CONNECTIONS),
        n(server.max_header_bytes, d::DEFAULT_MAX_HEADER_BYTES),
        n(server.max_body, d::DEFAULT_MAX_BODY),
        n(server.max_in_flight_per_key, d::DEFAULT_MAX_IN_FLIGHT_PER_KEY as usize),
        n(server.max_model_bytes, d::DEFAULT_MAX_MODEL_BYTES),
        n(server.max_messages, d::DEFAULT_MAX_MESSAGES),
        n(server.max_tools, d::DEFAULT_MAX_TOOLS),
    );
    // as `serve` will run: its soft descriptor limit raised to the hard one
    let max = server.max_connections.map_or(d::DEFAULT_MAX_CONNECTIONS, |v| usize::try_from(v).unwrap_or(usize::MAX));
    let cap = d::fd_limit::ConnectionCap::fit(max, d::fd_limit::FdLimit::at_start(), providers);
    let _ = writeln!(out, "  connections: cap {} ({})", cap.effective, cap.why);
}

/// How a target finishes a stream that fails midway: its `resume` strategies, with the
/// holdback window and whether its model takes a prefill.
fn resume(t: &switchyard::policy::TargetPolicy) -> String {
    use switchyard::policy::{Holdback, Resume};
    let steps: Vec<String> = t
        .resume
        .iter()
        .map(|r| match (r, t.holdback) {
            (Resume::Holdback, Some(Holdback::Events(n))) => format!("holdback {n} deltas"),
            (Resume::Holdback, Some(Holdback::All)) => "holdback all".to_owned(),
            (Resume::Prefill, _) => match t.supports_prefill() {
                Some(false) => "prefill (the model refuses it: skipped)".to_owned(),
                Some(true) => "prefill".to_owned(),
                None => "prefill (untried)".to_owned(),
            },
            (r, _) => r.as_str().to_owned(),
        })
        .collect();
    steps.join(", then ")
}

/// What the catalog says of a target's model: its context window and what it accepts.
fn model(t: &switchyard::policy::TargetPolicy) -> String {
    let Some(m) = &t.model_profile else { return "not in the catalog (nothing checked before a call)".to_owned() };
    let accepts = match &m.accepts {
        Some(features) if features.is_empty() => "text only".to_owned(),
        Some(features) => features.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", "),
        None => "not declared (not checked)".to_owned(),
    };
    format!("context {} tokens, accepts: {accepts}", m.context_window)
}

fn hedge(h: Option<&switchyard::policy::Hedge>) -> String {
    let Some(h) = h else { return String::new() };
    let after = match h.after {
        switchyard::policy::HedgeAfter::Fixed(d) => format_duration(d),
        switchyard::policy::HedgeAfter::Percentile(p) => format!("the target's p{p} time to first token"),
    };
    let hedges = if h.max == 1 { "1 hedge".to_owned() } else { format!("up to {} hedges", h.max) };
    format!(", hedged after {after} ({hedges})")
}

fn render_route(out: &mut String, r: &RoutePolicy) {
    let _ = writeln!(
        out,
        "  {} (strategy {}, total timeout {}{}{}{})",
        r.name,
        r.strategy.as_str(),
        format_duration(r.total_timeout),
        budget(r.budget.as_ref()),
        if r.cache_affinity { ", cache affinity" } else { "" },
        hedge(r.hedge.as_ref())
    );
    for (i, t) in r.targets.iter().enumerate() {
        let weight = if r.strategy == switchyard::policy::Strategy::Weighted {
            format!(" weight {}", t.weight)
        } else {
            String::new()
        };
        let _ = writeln!(out, "    {}. {}/{}{}", i + 1, t.provider, t.model, weight);
        let _ = writeln!(
            out,
            "       retry: {} attempts, backoff {}..{}, retry-after cap {}",
            t.retry.max_attempts,
            format_duration(t.retry.base),
            format_duration(t.retry.max),
            format_duration(t.retry.retry_after_cap)
        );
        let _ = writeln!(
            out,
            "       timeouts: connect {}, first token {}, idle {}, attempt {}",
            format_duration(t.timeouts.connect),
            format_duration(t.timeouts.first_token),
            format_duration(t.timeouts.idle),
            format_duration(t.timeouts.attempt)
        );
        let _ = writeln!(
            out,
            "       breaker: {} failures, cooldown {}..{}; limits: {}",
            t.breaker.consecutive_failures,
            format_duration(t.breaker.cooldown),
            format_duration(t.breaker.max_cooldown),
            limits(&t.limits)
        );
        let _ = writeln!(out, "       model: {}; unsupported fields: {}", model(t), t.unsupported.as_str());
        let _ = writeln!(out, "       streams cut midway: {}", resume(t));
    }
    let defaults = switchyard::policy::ClassActions::default();
    for class in switchyard::ErrorClass::ALL {
        let (a, d) = (r.actions.get(class), defaults.get(class));
        if a != d {
            let _ = writeln!(out, "    on {class}: retry={} failover={} breaker={:?}", a.retry, a.failover, a.breaker);
        }
    }
    if let Some(o) = &r.on_context_overflow {
        let _ = writeln!(out, "    on context overflow → route {o}");
    }
}
