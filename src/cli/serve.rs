//! `switchyard serve`: the gateway, with hot reload (file changes and SIGHUP) and graceful shutdown
//! (SIGTERM, ctrl-c).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use switchyard::serve::{Gateway, ServeOptions};

use super::EXIT_USAGE;

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The policy file (watched: edits take effect without a restart).
    #[arg(long)]
    policy: PathBuf,
    /// Address for the API (default: `[server] listen`, else 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Separate address for /metrics and /admin/state (default: `[server] admin_listen`, else the API address).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// How long shutdown waits for requests and streams in flight, e.g. "30s".
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    switchyard::duration::parse_duration(s)
}

pub(crate) async fn run(args: ServeArgs) -> ExitCode {
    // OpenTelemetry: the policy's `[otel]`, else the OTEL_EXPORTER_OTLP_* variables (read at start)
    let otel_settings = switchyard::Policy::from_file(&args.policy).ok().and_then(|p| p.otel);
    let otel = match switchyard::otel::OtelConfig::from_policy(otel_settings.as_ref()) {
        Ok(Some(config)) => match switchyard::otel::Otel::start(&config) {
            Ok(o) => Some((o, config)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        Ok(None) => None,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    super::init_tracing("info", otel.as_ref().map(|(o, _)| o));
    if let Some((_, config)) = &otel {
        let to = config.endpoint.clone().unwrap_or_else(|| "the OTEL_EXPORTER_OTLP_* endpoint".into());
        eprintln!("exporting OpenTelemetry {} to {to}", config.protocol.as_str());
    }
    let options = ServeOptions {
        policy: args.policy,
        listen: args.listen,
        admin_listen: args.admin_listen,
        shutdown_grace: args.shutdown_grace,
    };
    let gateway = match Gateway::start(options).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    eprintln!("switchyard serving on http://{}", gateway.addr());
    eprintln!("  OpenAI SDKs:    base_url = \"http://{}/v1\"", gateway.addr());
    eprintln!("  Anthropic SDKs: base_url = \"http://{}\"", gateway.addr());
    if let Some(admin) = gateway.admin_addr() {
        eprintln!("  admin:          http://{admin}/metrics, http://{admin}/admin/state");
    }
    let router = gateway.router().clone();
    if let Some((o, _)) = &otel {
        router.observe(o.observer());
    }
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                // reading, parsing and applying a policy blocks: off the runtime's workers, as the
                // file watcher does, so that requests in flight are not held up behind it
                let reloading = router.clone();
                match tokio::task::spawn_blocking(move || reloading.reload()).await {
                    Ok(Ok(outcome)) => tracing::info!(?outcome, "SIGHUP: policy reloaded"),
                    Ok(Err(e)) => tracing::error!("SIGHUP: policy rejected, keeping the one in force: {e}"),
                    Err(e) => tracing::error!("SIGHUP: the reload did not finish: {e}"),
                }
            }
        }
        #[cfg(not(unix))]
        let _ = router;
    });
    gateway.run_until(shutdown_signal()).await;
    if let Some((o, _)) = otel {
        // what is buffered goes out before the process ends (off the async threads: it blocks)
        let _ = tokio::task::spawn_blocking(move || o.shutdown()).await;
    }
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
