//! `switchyard drill [FILE] [--json] [--html FILE]`: run a failover drill and report PASS/FAIL per expectation.

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::drill::{Drill, Progress};

use super::{EXIT_FAILED, EXIT_USAGE};

/// Arguments of `drill`.
#[derive(Debug, clap::Args)]
pub(crate) struct DrillArgs {
    /// The drill file; without one, the built-in drill runs against simulated providers.
    file: Option<PathBuf>,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
    /// Also write the report as one self-contained HTML page with charts per phase.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Drill a running gateway instead: its route takes the load, its admin API the faults, its
    /// admin stream says what happened (the drill's own policy is not used).
    #[arg(long, value_name = "URL")]
    against: Option<String>,
    /// With --against: the environment variable holding an admin key of the gateway.
    #[arg(long, value_name = "VAR", default_value = "SWITCHYARD_ADMIN_KEY")]
    key_env: String,
}

pub(crate) async fn run(args: DrillArgs) -> ExitCode {
    let drill = match &args.file {
        Some(path) => Drill::from_file(path),
        None => Drill::builtin(),
    };
    let drill = match drill {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // made before the drill runs, so that a path that cannot be written fails at once
    let mut html = match &args.html {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some((path, f)),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => None,
    };
    let tty = std::io::stderr().is_terminal() && !args.json;
    let against = match &args.against {
        Some(url) => format!("the gateway at {url}"),
        None if drill.mode == switchyard::drill::DrillMode::Simulated => "simulated providers".into(),
        None => "live providers".into(),
    };
    eprintln!(
        "running drill `{}`: {} phases, {against}, about {:.0}s",
        drill.name,
        drill.phases.len(),
        drill.planned_duration().as_secs_f64()
    );
    let progress = move |p: Progress<'_>| match p {
        Progress::PhaseStarted { index, total, phase } => {
            let faults: Vec<String> = phase
                .faults
                .iter()
                .map(|f| {
                    if f.rate < 1.0 {
                        format!("{} {} at rate {}", f.provider, f.inject, f.rate)
                    } else {
                        format!("{} {}", f.provider, f.inject)
                    }
                })
                .collect();
            let faults =
                if faults.is_empty() { "no faults".to_owned() } else { format!("faults: {}", faults.join(", ")) };
            eprintln!("phase {}/{} {}: {} requests, {}", index + 1, total, phase.name, phase.requests, faults);
        }
        Progress::RequestDone { done, total } if tty => {
            let width = 30;
            let filled = done * width / total.max(1);
            eprint!("\r  [{}{}] {done}/{total}", "#".repeat(filled), " ".repeat(width - filled));
            let _ = std::io::stderr().flush();
            if done == total {
                eprint!("\r{}\r", " ".repeat(width + 20));
            }
        }
        Progress::PhaseFinished(r) => {
            let failed = r.expectations.iter().filter(|v| !v.pass).count();
            eprintln!(
                "  done: {}/{} ok, {} retries, {} failovers, p99 {:.0} ms, {}",
                r.successes,
                r.requests,
                r.retries,
                r.failovers,
                r.p99_ms,
                if failed == 0 {
                    "all expectations held".to_owned()
                } else {
                    format!("{failed} expectation(s) FAILED")
                }
            );
        }
        _ => {}
    };
    let result = match &args.against {
        Some(url) => {
            let key = std::env::var(&args.key_env).ok().filter(|k| !k.is_empty());
            switchyard::drill::run_against(&drill, url, key, &progress).await
        }
        None => switchyard::drill::run(&drill, &progress).await,
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        print!("{}", report.render());
    }
    if let Some((path, file)) = &mut html {
        if let Err(e) = file.write_all(report.to_html().as_bytes()) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(EXIT_FAILED);
        }
        eprintln!("HTML report: {}", path.display());
    }
    if report.passed { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILED) }
}
