//! `switchyard top URL`: the dashboard's live state in a terminal, for operators who live in a
//! shell. Reads the gateway's `/admin/events` stream and redraws on every snapshot: the routes with
//! their targets and breakers, each provider's traffic and failures over the last minute (with the
//! highest p99 of its five-second slices), and the latest events.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use switchyard::wire::sse::SseDecoder;

use super::{EXIT_FAILED, EXIT_USAGE};

/// Arguments of `top`.
#[derive(Debug, clap::Args)]
pub(crate) struct TopArgs {
    /// The gateway (or its admin address), e.g. http://127.0.0.1:8080.
    url: String,
    /// The environment variable holding an admin key, when the gateway has client keys.
    #[arg(long, value_name = "VAR", default_value = "SWITCHYARD_ADMIN_KEY")]
    key_env: String,
    /// Print one view and exit (for scripts).
    #[arg(long)]
    once: bool,
}

/// Slices summed for "the last minute" (the gateway's slices are five seconds).
const LAST_MINUTE_MS: u64 = 60_000;

pub(crate) async fn run(args: TopArgs) -> ExitCode {
    let base = args.url.trim_end_matches('/').to_owned();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        eprintln!("error: `{}` is not a gateway address (http://HOST:PORT)", args.url);
        return ExitCode::from(EXIT_USAGE);
    }
    let key = std::env::var(&args.key_env).ok().filter(|k| !k.is_empty());
    let color = std::io::stdout().is_terminal();
    let http = match reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    loop {
        let mut request = http.get(format!("{base}/admin/events"));
        if let Some(k) = &key {
            request = request.bearer_auth(k);
        }
        let failure = match request.send().await {
            Ok(r) if r.status().is_success() => match follow(r, color, args.once).await {
                Ok(()) => return ExitCode::SUCCESS,
                Err(why) => why,
            },
            Ok(r) if r.status() == 401 || r.status() == 403 => {
                eprintln!(
                    "error: {base} refused the admin stream (HTTP {}): put an admin key in ${}",
                    r.status().as_u16(),
                    args.key_env
                );
                return ExitCode::from(EXIT_USAGE);
            }
            Ok(r) => format!("HTTP {}", r.status().as_u16()),
            Err(e) => e.to_string(),
        };
        if args.once {
            eprintln!("error: cannot read {base}/admin/events: {failure}");
            return ExitCode::from(EXIT_FAILED);
        }
        eprintln!("{base}: {failure}; trying again in 2 s");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Redraws on every snapshot until the stream ends (an error) or, with `once`, after the first.
async fn follow(mut response: reqwest::Response, color: bool, once: bool) -> Result<(), String> {
    let mut decoder = SseDecoder::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => return Err("the stream ended".into()),
            Err(e) => return Err(e.to_string()),
        };
        for event in decoder.feed(&chunk) {
            if event.event != "snapshot" {
                continue;
            }
            let Ok(snapshot) = serde_json::from_str::<Value>(&event.data) else { continue };
            let view = render(&snapshot, color);
            let mut out = std::io::stdout().lock();
            if color && !once {
                let _ = write!(out, "\x1b[H\x1b[2J");
            }
            let _ = write!(out, "{view}");
            let _ = out.flush();
            if once {
                return Ok(());
            }
        }
    }
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
}

fn breaker(state: &str, color: bool) -> String {
    let code = match state {
        "open" => "1;31",
        "half_open" => "1;33",
        _ => "32",
    };
    paint(&format!("{state:<9}"), code, color)
}

/// One view of a snapshot of `/admin/events`.
pub(crate) fn render(snap: &Value, color: bool) -> String {
    let health = &snap["health"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  policy v{} {}  shared state {}",
        paint("switchyard", "1", color),
        health["policy_version"],
        str_of(&health["policy_hash"]),
        str_of(&health["shared_state"]["status"])
    );
    if let Some(err) = health["last_reload_error"].as_str() {
        let first = str_of(&Value::from(err.lines().next().unwrap_or(err)));
        let _ = writeln!(out, "{}", paint(&format!("last reload rejected: {first}"), "31", color));
    }
    let targets: BTreeMap<(String, String), &Value> = health["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| ((str_of(&t["provider"]), str_of(&t["model"])), t))
        .collect();
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<44} {:<9} {:>9} {:>8}", "ROUTE / TARGET", "BREAKER", "LATENCY", "COOLDOWN");
    for route in snap["routes"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "{} ({})", paint(&str_of(&route["name"]), "1", color), str_of(&route["strategy"]));
        for t in route["targets"].as_array().into_iter().flatten() {
            let (p, m) = (str_of(&t["provider"]), str_of(&t["model"]));
            let h = targets.get(&(p.clone(), m.clone()));
            let state = h.and_then(|h| h["breaker"].as_str()).unwrap_or("closed");
            let latency = h
                .and_then(|h| h["latency_ewma_ms"].as_f64())
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms"));
            let cooldown = h
                .and_then(|h| h["cooldown_remaining_ms"].as_u64())
                .map_or_else(String::new, |ms| format!("{:.1} s", ms as f64 / 1000.0));
            let _ =
                writeln!(out, "  {:<42} {} {:>9} {:>8}", format!("{p}/{m}"), breaker(state, color), latency, cooldown);
        }
    }

    // the last minute, per provider
    let now = snap["now"].as_u64().unwrap_or(0);
    let mut traffic: BTreeMap<String, (u64, u64, f64, BTreeMap<String, u64>)> = BTreeMap::new();
    for slice in snap["series"].as_array().into_iter().flatten() {
        if slice["at"].as_u64().unwrap_or(0) + LAST_MINUTE_MS < now {
            continue;
        }
        for (provider, v) in slice["providers"].as_object().into_iter().flatten() {
            let e = traffic.entry(str_of(&Value::from(provider.as_str()))).or_default();
            e.0 += v["served"].as_u64().unwrap_or(0);
            e.1 += v["failed"].as_u64().unwrap_or(0);
            e.2 = e.2.max(v["p99_ms"].as_f64().unwrap_or(0.0));
            for (class, n) in v["errors"].as_object().into_iter().flatten() {
                *e.3.entry(str_of(&Value::from(class.as_str()))).or_insert(0) += n.as_u64().unwrap_or(0);
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<16} {:>8} {:>8} {:>10}  ERRORS", "LAST MINUTE", "SERVED", "FAILED", "P99");
    if traffic.is_empty() {
        let _ = writeln!(out, "  no attempts");
    }
    for (provider, (served, failed, p99, errors)) in &traffic {
        let errors: Vec<String> = errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let p99 = if *served > 0 { format!("{p99:.0} ms") } else { "-".to_owned() };
        let _ = writeln!(
            out,
            "{provider:<16} {served:>8} {:>8} {p99:>10}  {}",
            if *failed > 0 { paint(&format!("{failed:>8}"), "31", color) } else { format!("{failed:>8}") },
            errors.join(", ")
        );
    }

    let _ = writeln!(out);
    let _ = writeln!(out, "RECENT");
    let recent: Vec<&Value> = snap["recent"].as_array().into_iter().flatten().rev().take(8).collect();
    if recent.is_empty() {
        let _ = writeln!(out, "  nothing yet");
    }
    for e in recent {
        let what = match e["event"].as_str().unwrap_or("") {
            "breaker" => format!(
                "breaker {}{}: {} -> {}",
                str_of(&e["provider"]),
                e["model"].as_str().map(|m| format!("/{m}")).unwrap_or_default(),
                str_of(&e["from"]),
                str_of(&e["to"])
            ),
            "failover" => format!(
                "failover on {}: {}/{} failed ({})",
                str_of(&e["route"]),
                str_of(&e["from_provider"]),
                str_of(&e["from_model"]),
                str_of(&e["class"])
            ),
            "resume" => format!(
                "stream resumed on {} at {}/{}",
                str_of(&e["route"]),
                str_of(&e["provider"]),
                str_of(&e["model"])
            ),
            "policy_applied" => format!("policy v{} applied", e["version"]),
            "policy_rejected" => {
                let error = e["error"].as_str().unwrap_or("").lines().next().unwrap_or("");
                format!("policy edit rejected: {}", str_of(&Value::from(error)))
            }
            other => other.replace('_', " "),
        };
        let _ = writeln!(out, "  {what}");
    }
    out
}

/// A string of the gateway's, fit for a terminal: control characters (an escape sequence in a
/// reload error, say) shown as `?`.
fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or("").chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}
