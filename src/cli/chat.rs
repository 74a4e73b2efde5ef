//! `switchyard chat`: one prompt through a route.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Value, json};
use switchyard::router::{Attempt, StreamOptions};
use switchyard::{ChatRequest, Policy, Router, RouterError, StreamCollector, StreamEvent};

use super::{EXIT_FAILED, EXIT_USAGE};

/// Arguments of `chat`.
#[derive(Debug, clap::Args)]
pub(crate) struct ChatArgs {
    /// The policy file.
    #[arg(long)]
    policy: PathBuf,
    /// The route to send the prompt along.
    #[arg(long)]
    route: String,
    /// Print the answer as it arrives.
    #[arg(long)]
    stream: bool,
    /// Print one JSON object at the end instead of the answer.
    #[arg(long)]
    json: bool,
    /// Maximum output tokens.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// A system prompt.
    #[arg(long)]
    system: Option<String>,
    /// The prompt.
    prompt: String,
}

pub(crate) async fn run(args: ChatArgs) -> ExitCode {
    let policy = match Policy::from_file(&args.policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // `[[drill.faults]]` in the policy sound as each provider's wire would
    let router = Router::builder(policy).fault_player(Arc::new(switchyard::sim::WireFaults::default())).build();
    let mut request = ChatRequest::user(args.prompt.clone());
    if let Some(s) = &args.system {
        request = request.system(s.clone());
    }
    request.max_tokens = args.max_tokens;
    let outcome = if args.stream { stream(&router, &args, request).await } else { once(&router, &args, request).await };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(RouterError::UnknownRoute(r)) => {
            let routes: Vec<String> = router.policy().routes.keys().cloned().collect();
            eprintln!("error: unknown route `{r}`; routes: {}", routes.join(", "));
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            if args.json {
                println!("{}", failure_json(&args.route, &e));
            } else {
                eprintln!("error: {e}");
                for a in e.attempts() {
                    eprintln!("  {}", describe(a));
                }
            }
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn once(router: &Router, args: &ChatArgs, request: ChatRequest) -> Result<(), RouterError> {
    let r = router.chat(&args.route, request).await?;
    if args.json {
        let v = json!({
            "ok": true,
            "route": r.route,
            "provider": r.response.provider,
            "model": r.response.model,
            "content": r.response.text,
            "finish_reason": r.response.finish_reason.as_str(),
            "usage": { "input_tokens": r.response.usage.input_tokens, "output_tokens": r.response.usage.output_tokens },
            "cost_usd": r.cost_usd(),
            "failed_cost_usd": r.failed_cost_usd(),
            "attempts": attempts_json(&r.attempts),
        });
        println!("{v}");
    } else {
        println!("{}", r.response.text);
        eprintln!("[served by {}/{}, {} attempt(s)]", r.response.provider, r.response.model, r.attempts.len());
    }
    Ok(())
}

async fn stream(router: &Router, args: &ChatArgs, request: ChatRequest) -> Result<(), RouterError> {
    // the CLI can take back what it printed (it says so), so it allows restarts
    let mut s = router.chat_stream_with(&args.route, request, StreamOptions { allow_restart: true }).await?;
    let mut collected = StreamCollector::new();
    let mut out = std::io::stdout();
    while let Some(item) = s.next().await {
        let event = item?;
        collected.push(&event);
        if args.json {
            continue;
        }
        match &event {
            StreamEvent::TextDelta { text } => {
                let _ = write!(out, "{text}");
                let _ = out.flush();
            }
            StreamEvent::Restart { reason } => {
                let _ = writeln!(out);
                eprintln!("[switchyard: discard the text above: {reason}]");
            }
            _ => {}
        }
    }
    let Some(summary) = s.summary().cloned() else {
        return Ok(());
    };
    if args.json {
        let usage = summary.usage.unwrap_or_default();
        let v = json!({
            "ok": true,
            "route": summary.route,
            "provider": summary.provider,
            "model": summary.model,
            "content": collected.text(),
            "finish_reason": summary.finish_reason.as_str(),
            "usage": { "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens },
            "cost_usd": summary.cost_usd(),
            "failed_cost_usd": summary.failed_cost_usd(),
            "attempts": attempts_json(&summary.attempts),
        });
        println!("{v}");
    } else {
        println!();
        eprintln!("[served by {}/{}, {} attempt(s)]", summary.provider, summary.model, summary.attempts.len());
    }
    Ok(())
}

fn attempts_json(attempts: &[Attempt]) -> Vec<Value> {
    attempts.iter().map(|a| serde_json::to_value(a).unwrap_or(Value::Null)).collect()
}

fn failure_json(route: &str, e: &RouterError) -> Value {
    let f = e.failure();
    json!({
        "ok": false,
        "route": route,
        "error": {
            "class": e.class(),
            "message": f.map_or_else(|| e.to_string(), |f| f.message.clone()),
            "provider": f.and_then(|f| f.provider.clone()),
            "model": f.and_then(|f| f.model.clone()),
            "status": f.and_then(|f| f.status),
            // the open incidents of the providers that failed, from their status pages
            "provider_incidents": f.map(|f| f.provider_incidents.clone()).unwrap_or_default(),
        },
        "cost_usd": f.and_then(switchyard::router::RouteFailure::cost_usd),
        "attempts": attempts_json(e.attempts()),
    })
}

fn describe(a: &Attempt) -> String {
    let mut s = format!("{}/{}: {:?}", a.provider, a.model, a.outcome);
    if let Some(c) = a.class {
        s.push_str(&format!(" {c}"));
    }
    if let Some(st) = a.status {
        s.push_str(&format!(" (HTTP {st})"));
    }
    if let Some(r) = &a.skip_reason {
        s.push_str(&format!(" [{r}]"));
    }
    s.push_str(&format!(" {} ms", a.elapsed.as_millis()));
    s
}
