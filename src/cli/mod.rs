//! Subcommands of the `switchyard` binary.

use std::future::Future;
use std::process::ExitCode;

pub(crate) mod chat;
pub(crate) mod check;
pub(crate) mod drill;
pub(crate) mod serve;

/// Exit code for a route that failed.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code for a usage or policy error.
pub(crate) const EXIT_USAGE: u8 = 2;

/// Logs to stderr, filtered by `RUST_LOG` (else `default`).
pub(crate) fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
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
