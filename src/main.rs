//! The `switchyard` command: check a policy, chat through a route, run the simulated providers.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Routes LLM requests across providers under a declarative, hot-reloaded TOML policy.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a policy and print the resolved plan (exit 2 with every error otherwise).
    Check(cli::check::CheckArgs),
    /// Send one prompt through a route and print the answer.
    Chat(cli::chat::ChatArgs),
    /// Run a failover drill (the built-in one against simulated providers without FILE).
    Drill(cli::drill::DrillArgs),
    /// Run the gateway: OpenAI- and Anthropic-compatible HTTP endpoints in front of the router.
    Serve(cli::serve::ServeArgs),
    /// Watch a running gateway in the terminal: routes, breakers, traffic, recent events.
    Top(cli::top::TopArgs),
    /// Run the simulated OpenAI and Anthropic providers (no keys, no network).
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    // the commands print their own account of failures: logs only when asked with RUST_LOG
    // `serve` sets its own up, once it has read the policy's `[otel]`
    if !matches!(args.command, Command::Serve(_)) {
        cli::init_tracing(if matches!(args.command, Command::Sim { .. }) { "info" } else { "error" }, None);
    }
    match args.command {
        Command::Check(a) => cli::check::run(&a),
        Command::Chat(a) => cli::runtime(cli::chat::run(a)),
        Command::Drill(a) => cli::runtime(cli::drill::run(a)),
        Command::Serve(a) => cli::runtime(cli::serve::run(a)),
        Command::Top(a) => cli::runtime(cli::top::run(a)),
        Command::Sim { listen } => cli::runtime(async move {
            match switchyard::sim::run(listen).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot run the simulator on {listen}: {e}");
                    ExitCode::from(cli::EXIT_USAGE)
                }
            }
        }),
    }
}
