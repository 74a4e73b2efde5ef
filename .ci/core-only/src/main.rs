//! Checks what a build of the core alone does with a policy that needs a feature it lacks: the
//! policy is refused with an error naming the key and the feature, and a plain policy still runs.

use std::process::ExitCode;

use switchyard::{Policy, Router};

const PROVIDERS: &str = r#"
[providers.openai]
base_url = "http://127.0.0.1:9"
api_key_env = "OPENAI_API_KEY"

[routes.chat]
targets = [{ provider = "openai", model = "gpt-4o-mini" }]
"#;

fn refused(extra: &str, key: &str, feature: &str) -> Result<(), String> {
    let text = format!("{PROVIDERS}\n{extra}");
    match Policy::from_toml(&text, "core-only.toml") {
        Ok(_) => Err(format!("a policy with `{key}` was accepted by a build without `{feature}`")),
        Err(e) => {
            let message = e.to_string();
            if message.contains(key) && message.contains(&format!("`{feature}` feature")) {
                println!("ok: refused by name: {}", message.lines().find(|l| l.contains(key)).unwrap_or(""));
                Ok(())
            } else {
                Err(format!("the error does not name `{key}` and the `{feature}` feature:\n{message}"))
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let checks = [
        refused("[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n", "state.backend", "redis"),
        refused("[[drill.faults]]\nprovider = \"openai\"\ninject = \"server_error\"\n", "drill.faults[0]", "sim"),
        refused("[otel]\nendpoint = \"http://127.0.0.1:4318\"\n", "`otel`", "otel"),
        match Policy::from_toml(PROVIDERS, "core-only.toml") {
            Ok(policy) => {
                let health = Router::new(policy).health();
                println!("ok: a plain policy runs (shared state: {})", health.shared_state.status);
                Ok(())
            }
            Err(e) => Err(format!("a plain policy was refused: {e}")),
        },
    ];
    let mut failed = false;
    for check in checks {
        if let Err(e) = check {
            eprintln!("FAILED: {e}");
            failed = true;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
