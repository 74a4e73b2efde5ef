//! Subcommands of the `switchyard` binary.

use std::future::Future;
use std::process::ExitCode;

pub(crate) mod chat;
pub(crate) mod check;
pub(crate) mod drill;
pub(crate) mod serve;
pub(crate) mod top;

/// Exit code for a route that failed.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code for a usage or policy error.
pub(crate) const EXIT_USAGE: u8 = 2;

/// Logs to stderr, filtered by `RUST_LOG` (else `default`); and, with `otel`, exports the
/// router's spans at INFO and above whatever `RUST_LOG` says.
pub(crate) fn init_tracing(default: &str, otel: Option<&switchyard::otel::Otel>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter);
    let spans = otel.and_then(|o| o.layer()).map(|l| {
        l.with_filter(tracing_subscriber::filter::Targets::new().with_target("switchyard", tracing::Level::INFO))
    });
    let _ = tracing_subscriber::registry().with(logs).with(spans).try_init();
}

/// Runs a subcommand on a tokio runtime.
pub(crate) fn runtime(fut: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
