//! Real agent clients and the official Node SDKs, unchanged and configured only by their own
//! documented settings (base URL, key, model), against `switchyard serve` in front of the simulated
//! providers, on a same-wire route and across wires:
//!
//! - Claude Code (`claude -p`, npm `@anthropic-ai/claude-code`): a route named like a Claude model
//!   and an alias route, both to Claude; an alias route to an OpenAI Chat Completions target.
//! - Codex CLI (`codex exec`, npm `@openai/codex`): a custom model provider at the gateway's `/v1`
//!   with `wire_api = "responses"`, on a Responses target, a Chat Completions target and a Claude
//!   target.
//! - The OpenAI and Anthropic Node SDKs (`tests/agents/*.cjs`): chat, Responses and messages, whole
//!   and streamed, a tool round trip and a JSON schema, on every wire.
//! - The OpenAI Agents SDK for Python (`tests/agents/agents_sdk.py`): an agent with a function tool
//!   on an OpenAI route and on a Claude route.
//!
//! What the simulator answers is canned: `Hello from MODEL. You said: ...` (the first words of the
//! last user turn), and a call of the first tool offered when the request forces one or the user
//! text starts with `/tool`. Each test checks that the client finished its normal operation and
//! showed that answer, and what the simulator received: on the client's own wire, the members
//! switchyard has no type for, as the client sent them; across wires, a request on the other wire.
//!
//! The clients are installed by `scripts/test` (npm packages under `target/agents`, the Agents SDK
//! into `target/sdk-venv`), which exports `SWITCHYARD_AGENTS_DIR` and `SWITCHYARD_SDK_PYTHON`. A
//! test whose client is missing fails, saying how to install it. Each client runs its scenarios at
//! once; each scenario's outcome is printed (`cargo test --test agents -- --nocapture`) and every
//! failed one is named in the test's failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::TestGateway;
use switchyard::sim::{RecordedRequest, SimServer};

/// The gateway's one client key: every client sends it, as its own setting for an API key.
const KEY: &str = "sk-switchyard-agents";

/// How long one client run may take before it counts as hung.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// The pinned versions `scripts/test` installs (also in docs/clients.md).
const CLAUDE_CODE: &str = "@anthropic-ai/claude-code@2.1.337";
const CODEX: &str = "@openai/codex@0.171.0";
const OPENAI_NODE: &str = "openai@6.49.0";
const ANTHROPIC_NODE: &str = "@anthropic-ai/sdk@1.17.0";

/// The policy every test serves. Route names say what the clients see:
/// - `claude-sonnet-4-5` (a Claude model's name) and `chat` (an alias): Claude, same wire for Claude Code;
/// - `reasoner`: a Chat Completions reasoning model (Claude Code asks for thinking), no `drop`:
///   what Claude Code sends that Chat Completions lacks is all dropped as harmless;
/// - `gpt` (the same model) and `claude`: for Codex, with `unsupported = "drop"`, which Codex's
///   hosted `web_search` and `namespace` tools need on another wire;
/// - `native`: a Responses target;
/// - `sdk-gpt`, `sdk-claude`: models without reasoning, no `drop`, for the SDKs.
fn policy(sim: &SimServer) -> String {
    format!(
        r#"
[server]
keys_file = "keys.toml"
[defaults]
retry = {{ max_attempts = 1 }}
{providers}
{responses}
[routes."claude-sonnet-4-5"]
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
[routes.chat]
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
[routes.reasoner]
targets = [{{ provider = "openai", model = "o4-mini" }}]
[routes.gpt]
unsupported = "drop"
targets = [{{ provider = "openai", model = "o4-mini" }}]
[routes.claude]
unsupported = "drop"
targets = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
[routes.native]
targets = [{{ provider = "responses", model = "o4-mini" }}]
[routes.sdk-gpt]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}]
[routes.sdk-claude]
targets = [{{ provider = "anthropic", model = "claude-haiku-4-5" }}]
"#,
        providers = sim.providers_toml(),
        responses = support::responses_provider_toml(sim)
    )
}

/// The simulator, the gateway in front of it, and a scratch directory for the clients' homes.
struct Rig {
    sim: SimServer,
    gateway: TestGateway,
}

impl Rig {
    async fn start() -> Rig {
        let sim = support::sim().await;
        // the gateway's directory is the scratch directory: outside the repository (the clients
        // read the git repository they run in); Codex warns that it does not set up its helper
        // binaries under the temporary directory, and goes on
        let keys = format!("[keys.agents]\nkey = \"{KEY}\"\n");
        let gateway = support::gateway_with(&policy(&sim), &[("keys.toml", &keys)]).await;
        Rig { sim, gateway }
    }

    fn base(&self) -> String {
        self.gateway.base.clone()
    }

    /// A fresh directory under the scratch directory.
    fn home(&self, name: &str) -> PathBuf {
        let home = self.gateway.dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        home
    }

    /// What the simulator received for `model` at `endpoint`.
    fn received(&self, endpoint: &str, model: &str) -> Vec<RecordedRequest> {
        self.sim.requests().into_iter().filter(|r| r.endpoint == endpoint && r.model == model).collect()
    }

    /// Every endpoint and model the simulator saw, for failure messages.
    fn seen(&self) -> Vec<String> {
        self.sim.requests().iter().map(|r| format!("{} {}", r.endpoint, r.model)).collect()
    }
}

/// The installed clients (`scripts/test` installs them and sets `SWITCHYARD_AGENTS_DIR`).
fn agents_dir() -> PathBuf {
    std::env::var_os("SWITCHYARD_AGENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/agents"))
}

/// The installed package's binary or module, or a failure saying how to install it.
fn installed(relative: &str, package: &str) -> PathBuf {
    let dir = agents_dir();
    let path = dir.join("node_modules").join(relative);
    assert!(
        path.exists(),
        "{package} is not installed ({} is missing): run `scripts/test`, which installs the pinned agent \
         clients, or `npm install --prefix {} --no-audit --no-fund {CLAUDE_CODE} {CODEX} {OPENAI_NODE} \
         {ANTHROPIC_NODE}` (and set SWITCHYARD_AGENTS_DIR to that directory)",
        path.display(),
        dir.display()
    );
    let version = std::fs::read_to_string(dir.join("node_modules").join(package_dir(package)).join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned));
    let pinned = package.rsplit_once('@').map(|(_, v)| v).unwrap_or_default();
    assert_eq!(
        version.as_deref(),
        Some(pinned),
        "{package}: another version is installed under {}: run `scripts/test`",
        dir.display()
    );
    path
}

/// `@scope/name@1.2.3` → `@scope/name`.
fn package_dir(package: &str) -> &str {
    package.rsplit_once('@').map_or(package, |(name, _)| name)
}

/// The Python that has the Agents SDK (`scripts/test` installs it into `target/sdk-venv`).
fn agents_python() -> String {
    let python = std::env::var("SWITCHYARD_SDK_PYTHON").unwrap_or_else(|_| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sdk-venv/bin/python");
        venv.to_string_lossy().into_owned()
    });
    let check = std::process::Command::new(&python).args(["-c", "import agents, openai"]).output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "{python} cannot import the OpenAI Agents SDK ({check:?}): run `scripts/test`, which installs \
         openai-agents into target/sdk-venv (or `pip install openai-agents==0.24.0` and point \
         SWITCHYARD_SDK_PYTHON at that python)"
    );
    python
}

/// A command with a clean environment: only `PATH` from ours (Codex's launcher needs `node`), so
/// that no key, base URL or setting of the machine's own reaches the client.
fn command(program: impl AsRef<std::ffi::OsStr>, home: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TERM", "dumb")
        .current_dir(home)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs a client to its end, or fails the scenario after [`CLIENT_TIMEOUT`].
async fn run(mut cmd: tokio::process::Command) -> Result<Output, String> {
    match tokio::time::timeout(CLIENT_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(format!("could not start {cmd:?}: {e}")),
        Err(_) => Err(format!("still running after {CLIENT_TIMEOUT:?}: {cmd:?}")),
    }
}

/// The end of a client's output, for failure messages.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let chars: Vec<char> = text.chars().collect();
    chars[chars.len().saturating_sub(3000)..].iter().collect()
}

/// What a scenario found wrong; empty when it passed.
type Problems = Vec<String>;

/// Prints each scenario's outcome and fails with every failed one.
fn report(client: &str, results: Vec<(String, Problems)>, started: Instant) {
    let mut failed = Vec::new();
    for (scenario, problems) in &results {
        if problems.is_empty() {
            eprintln!("PASS  {client} / {scenario}");
        } else {
            eprintln!("FAIL  {client} / {scenario}:\n  {}", problems.join("\n  "));
            failed.push(format!("{scenario}:\n  {}", problems.join("\n  ")));
        }
    }
    eprintln!("{client}: {} scenarios in {:.1}s", results.len(), started.elapsed().as_secs_f64());
    assert!(
        failed.is_empty(),
        "{client}: {} of {} scenarios failed:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n")
    );
}

/// Checks `cond`, recording `what` when it does not hold.
fn check(problems: &mut Problems, cond: bool, what: impl Into<String>) {
    if !cond {
        problems.push(what.into());
    }
}

/// The simulator's answer text for `model` starts with this.
fn hello(model: &str) -> String {
    format!("Hello from {model}.")
}

// ---------------------------------------------------------------------------------------------
// Claude Code

/// `claude -p` on `route`, at the gateway: what it printed (`--output-format json`) and the problems.
async fn claude_code(rig: &Rig, claude: &Path, route: &str) -> (Option<Value>, Problems) {
    let home = rig.home(&format!("claude-{route}"));
    let mut cmd = command(claude, &home);
    cmd.args(["-p", "Say hello", "--model", route, "--output-format", "json"])
        .env("ANTHROPIC_BASE_URL", rig.base())
        .env("ANTHROPIC_API_KEY", KEY)
        // no update checks, telemetry or error reports: there is no network, and they are not the gateway's
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    let mut problems = Vec::new();
    let out = match run(cmd).await {
        Ok(out) => out,
        Err(e) => return (None, vec![e]),
    };
    let printed = serde_json::from_slice::<Value>(&out.stdout).ok();
    match &printed {
        Some(v) if out.status.success() && v["is_error"] == false && v["subtype"] == "success" => {}
        Some(v) => problems.push(format!(
            "claude exited {:?}, is_error {}, result: {}\nstderr: {}",
            out.status.code(),
            v["is_error"],
            v["result"],
            tail(&out.stderr)
        )),
        None => problems.push(format!(
            "claude exited {:?} and printed no JSON result: {}\nstderr: {}",
            out.status.code(),
            tail(&out.stdout),
            tail(&out.stderr)
        )),
    }
    (printed, problems)
}

/// Claude Code on a Claude target: its answer is the simulator's, and Claude received Claude
/// Code's own request, members switchyard has no type for included.
async fn claude_code_same_wire(rig: &Rig, claude: &Path, route: &str) -> Problems {
    let (printed, mut problems) = claude_code(rig, claude, route).await;
    let model = "claude-sonnet-4-5";
    if let Some(v) = &printed {
        let result = v["result"].as_str().unwrap_or_default();
        if problems.is_empty() {
            check(
                &mut problems,
                result.starts_with(&hello(model)),
                format!("result is not the simulator's answer: {v}"),
            );
        }
    }
    let received = rig.received("/v1/messages", model);
    check(&mut problems, !received.is_empty(), format!("Claude received nothing; the simulator saw {:?}", rig.seen()));
    if let Some(r) = received.iter().find(|r| r.body.get("context_management").is_some()) {
        let body = &r.body;
        // Claude Code's own members, as 2.1.337 sends them (its thinking settings depend on the model)
        let edits = serde_json::json!({ "edits": [{ "type": "clear_thinking_20251015", "keep": "all" }] });
        check(
            &mut problems,
            body["context_management"] == edits,
            format!("context_management: {}", body["context_management"]),
        );
        check(&mut problems, body["thinking"]["type"].is_string(), format!("thinking: {}", body["thinking"]));
        check(&mut problems, body["metadata"]["user_id"].is_string(), format!("metadata: {}", body["metadata"]));
        check(
            &mut problems,
            body["system"].is_array() && body["tools"].is_array(),
            "system or tools missing".to_owned(),
        );
        let betas = r.header("anthropic-beta").unwrap_or_default();
        check(
            &mut problems,
            betas.contains("claude-code-20250219"),
            format!("anthropic-beta not forwarded: {betas:?}"),
        );
    } else if !received.is_empty() {
        problems.push("no request to Claude carried Claude Code's context_management".to_owned());
    }
    problems
}

/// Claude Code on an OpenAI target: served by Chat Completions, nothing sent to Claude.
async fn claude_code_cross_wire(rig: &Rig, claude: &Path, route: &str) -> Problems {
    let (printed, mut problems) = claude_code(rig, claude, route).await;
    let model = "o4-mini";
    if let Some(v) = &printed {
        let result = v["result"].as_str().unwrap_or_default();
        if problems.is_empty() {
            check(
                &mut problems,
                result.starts_with(&hello(model)),
                format!("result is not the simulator's answer: {v}"),
            );
        }
    }
    let received = rig.received("/v1/chat/completions", model);
    check(
        &mut problems,
        !received.is_empty(),
        format!("the OpenAI target received nothing; the simulator saw {:?}", rig.seen()),
    );
    if let Some(r) = received.first() {
        // Claude Code's system blocks became a system message, its tools functions
        let messages = r.body["messages"].as_array().cloned().unwrap_or_default();
        check(
            &mut problems,
            messages.first().is_some_and(|m| m["role"] == "system" || m["role"] == "developer"),
            "no system message".to_owned(),
        );
        check(
            &mut problems,
            r.body["tools"].as_array().is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["type"] == "function")),
            "tools not mapped to functions".to_owned(),
        );
    }
    problems
}

#[tokio::test]
async fn claude_code_works_through_the_gateway() {
    let claude = installed(".bin/claude", CLAUDE_CODE);
    let started = Instant::now();
    // one rig per scenario: each checks what its own simulator received
    let (a, b, c) = tokio::join!(Rig::start(), Rig::start(), Rig::start());
    let (named, alias, cross) = tokio::join!(
        claude_code_same_wire(&a, &claude, "claude-sonnet-4-5"),
        claude_code_same_wire(&b, &claude, "chat"),
        claude_code_cross_wire(&c, &claude, "reasoner"),
    );
    report(
        "Claude Code",
        vec![
            ("route `claude-sonnet-4-5` → Claude (same wire)".into(), named),
            ("alias route `chat` → Claude (same wire)".into(), alias),
            ("alias route `reasoner` → OpenAI Chat Completions (cross wire)".into(), cross),
        ],
        started,
    );
}

// ---------------------------------------------------------------------------------------------
// Codex CLI

/// `codex exec --json` on `route`, with a `CODEX_HOME` whose config.toml makes the gateway its
/// model provider: the agent's messages and the problems.
async fn codex(rig: &Rig, codex: &Path, route: &str) -> (Vec<String>, Problems) {
    let home = rig.home(&format!("codex-{route}"));
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    let config = format!(
        r#"model = "{route}"
model_provider = "switchyard"

[model_providers.switchyard]
name = "switchyard"
base_url = "{base}/v1"
env_key = "SWITCHYARD_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#,
        base = rig.base()
    );
    std::fs::write(codex_home.join("config.toml"), config).unwrap();
    let mut cmd = command(codex, &home);
    cmd.args(["exec", "--skip-git-repo-check", "--json", "Say hello"])
        .env("CODEX_HOME", &codex_home)
        .env("SWITCHYARD_API_KEY", KEY);
    let out = match run(cmd).await {
        Ok(out) => out,
        Err(e) => return (Vec::new(), vec![e]),
    };
    let mut problems = Vec::new();
    let events: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let messages: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "item.completed" && e["item"]["type"] == "agent_message")
        .filter_map(|e| e["item"]["text"].as_str().map(str::to_owned))
        .collect();
    // `error` events (a failed request, each retry) and the `turn.failed` that ends the turn
    let failures: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "turn.failed" || e["type"] == "error")
        .map(|e| e["message"].as_str().or(e["error"]["message"].as_str()).unwrap_or_default().to_owned())
        .collect();
    if !out.status.success() || !failures.is_empty() {
        problems.push(format!(
            "codex exited {:?}: {}\nstderr: {}",
            out.status.code(),
            failures.first().map_or("(no error event)", String::as_str),
            tail(&out.stderr)
        ));
    } else if !events.iter().any(|e| e["type"] == "turn.completed") {
        problems.push(format!("no turn.completed event: {}", tail(&out.stdout)));
    }
    (messages, problems)
}

/// Codex's answer is the simulator's for `model`.
fn codex_answered(problems: &mut Problems, messages: &[String], model: &str) {
    if !problems.is_empty() {
        return;
    }
    check(
        problems,
        messages.iter().any(|m| m.starts_with(&hello(model))),
        format!("no agent message from the simulator's {model}: {messages:?}"),
    );
}

/// Codex on a Responses target: its own request arrived, members switchyard has no type for
/// (`client_metadata`, `prompt_cache_key`, hosted and namespace tools) included.
async fn codex_same_wire(rig: &Rig, bin: &Path) -> Problems {
    let (messages, mut problems) = codex(rig, bin, "native").await;
    codex_answered(&mut problems, &messages, "o4-mini");
    let received = rig.received("/v1/responses", "o4-mini");
    check(
        &mut problems,
        !received.is_empty(),
        format!("the Responses target received nothing; the simulator saw {:?}", rig.seen()),
    );
    if let Some(r) = received.first() {
        let body = &r.body;
        let metadata = &body["client_metadata"];
        check(
            &mut problems,
            metadata["thread_id"].is_string() && metadata["x-codex-turn-metadata"].is_string(),
            format!("client_metadata: {metadata}"),
        );
        check(
            &mut problems,
            body["prompt_cache_key"].is_string(),
            format!("prompt_cache_key: {}", body["prompt_cache_key"]),
        );
        let tools = body["tools"].as_array().cloned().unwrap_or_default();
        let kinds: Vec<&str> = tools.iter().filter_map(|t| t["type"].as_str()).collect();
        check(
            &mut problems,
            kinds.contains(&"web_search") && kinds.contains(&"namespace"),
            format!("hosted and namespace tools not carried: {kinds:?}"),
        );
        check(&mut problems, body["include"].is_array(), format!("include: {}", body["include"]));
    }
    problems
}

/// Codex on a target of another wire: served there, the tools that wire cannot carry dropped.
async fn codex_cross_wire(rig: &Rig, bin: &Path, route: &str, endpoint: &str, model: &str) -> Problems {
    let (messages, mut problems) = codex(rig, bin, route).await;
    codex_answered(&mut problems, &messages, model);
    let received = rig.received(endpoint, model);
    check(
        &mut problems,
        !received.is_empty(),
        format!("{endpoint} received nothing; the simulator saw {:?}", rig.seen()),
    );
    check(
        &mut problems,
        rig.received("/v1/responses", model).is_empty(),
        "a Responses request reached the simulator".to_owned(),
    );
    if let Some(r) = received.first() {
        let tools = r.body["tools"].as_array().cloned().unwrap_or_default();
        check(&mut problems, !tools.is_empty(), "Codex's function tools did not arrive".to_owned());
        let text = r.body.to_string();
        check(
            &mut problems,
            !text.contains("\"web_search\""),
            "the hosted web_search tool reached the other wire".to_owned(),
        );
    }
    problems
}

#[tokio::test]
async fn codex_works_through_the_gateway() {
    let bin = installed(".bin/codex", CODEX);
    let started = Instant::now();
    let (a, b, c) = tokio::join!(Rig::start(), Rig::start(), Rig::start());
    let (native, chat, claude) = tokio::join!(
        codex_same_wire(&a, &bin),
        codex_cross_wire(&b, &bin, "gpt", "/v1/chat/completions", "o4-mini"),
        codex_cross_wire(&c, &bin, "claude", "/v1/messages", "claude-sonnet-4-5"),
    );
    report(
        "Codex",
        vec![
            ("route `native` → Responses target (same wire)".into(), native),
            ("route `gpt` → Chat Completions target (cross wire, unsupported = drop)".into(), chat),
            ("route `claude` → Claude (cross wire, unsupported = drop)".into(), claude),
        ],
        started,
    );
}

// ---------------------------------------------------------------------------------------------
// The official Node SDKs

/// Runs a script of `tests/agents/` with the installed packages, on `routes`: its JSON.
async fn node_script(rig: &Rig, script: &str, routes: &[&str]) -> Result<Value, String> {
    let home = rig.home(script);
    let mut cmd = command("node", &home);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agents").join(script))
        .env("NODE_PATH", agents_dir().join("node_modules"))
        .env("SWITCHYARD_BASE", rig.base())
        .env("SWITCHYARD_KEY", KEY)
        .env("SWITCHYARD_ROUTES", routes.join(","));
    let out = run(cmd).await?;
    if !out.status.success() {
        return Err(format!("{script} exited {:?}: {}", out.status.code(), tail(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{script} printed no JSON ({e}): {}", tail(&out.stdout)))
}

/// A step's problems: its error, else what `f` finds.
fn step(v: &Value, name: &str, f: impl FnOnce(&Value, &mut Problems)) -> Problems {
    let mut problems = Vec::new();
    let s = &v[name];
    if let Some(e) = s["error"].as_str() {
        problems.push(format!("{name}: {e}"));
    } else {
        f(s, &mut problems);
        for p in &mut problems {
            *p = format!("{name}: {p}: {s}");
        }
    }
    problems
}

fn text_is(s: &Value, key: &str, model: &str, problems: &mut Problems) {
    check(
        problems,
        s[key].as_str().is_some_and(|t| t.starts_with(&hello(model))),
        format!("{key} is not the simulator's answer"),
    );
}

/// The answer to a request for JSON of the scripts' schema (`{"answer": string}`, no other member):
/// the simulator answers such a request with a value of the schema.
fn schema_answer(s: &Value, key: &str, problems: &mut Problems) {
    let value = s[key].as_str().and_then(|t| serde_json::from_str::<Value>(t).ok());
    check(
        problems,
        value.as_ref().and_then(Value::as_object).is_some_and(|o| o.len() == 1 && o["answer"].is_string()),
        format!("{key} is not JSON of the schema"),
    );
}

#[tokio::test]
async fn the_openai_node_sdk_works_through_the_gateway() {
    installed("openai/package.json", OPENAI_NODE);
    let started = Instant::now();
    let rig = Rig::start().await;
    let routes = [("sdk-gpt", "gpt-4o-mini"), ("native", "o4-mini"), ("sdk-claude", "claude-haiku-4-5")];
    let out = node_script(&rig, "openai_sdk.cjs", &routes.map(|r| r.0)).await;
    let v = match out {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let mut results = Vec::new();
    for (route, model) in routes {
        let r = &v[route];
        let mut p = Vec::new();
        p.extend(step(r, "chat", |s, p| {
            text_is(s, "text", model, p);
            check(p, s["model"] == model, "model");
        }));
        p.extend(step(r, "chat_stream", |s, p| {
            text_is(s, "text", model, p);
            check(p, s["finish"] == "stop", "finish");
            check(p, s["usage"].as_u64().is_some_and(|n| n > 0), "usage");
        }));
        p.extend(step(r, "chat_tools", |s, p| {
            check(p, s["name"] == "weather" && s["finish"] == "tool_calls", "tool call");
            check(p, s["args"].is_object(), "arguments");
            text_is(s, "text", model, p);
        }));
        p.extend(step(r, "chat_schema", |s, p| schema_answer(s, "text", p)));
        p.extend(step(r, "responses", |s, p| {
            text_is(s, "text", model, p);
            check(p, s["status"] == "completed" && s["model"] == model, "status or model");
        }));
        p.extend(step(r, "responses_stream", |s, p| {
            check(p, s["first"] == "response.created" && s["last"] == "response.completed", "event sequence");
            text_is(s, "text", model, p);
            check(p, s["text"] == s["output_text"], "deltas and final text differ");
        }));
        p.extend(step(r, "responses_tools", |s, p| {
            check(p, s["name"] == "weather" && s["args"].is_object(), "tool call");
            text_is(s, "text", model, p);
        }));
        p.extend(step(r, "responses_schema", |s, p| {
            check(p, s["status"] == "completed", "status");
            schema_answer(s, "text", p);
        }));
        results.push((format!("route `{route}` → {model}"), p));
    }
    // the JSON schemas reached each target in its own wire's terms
    let mut schemas = Vec::new();
    let openai_schema = rig
        .received("/v1/chat/completions", "gpt-4o-mini")
        .iter()
        .filter(|r| r.body["response_format"]["type"] == "json_schema")
        .count();
    check(
        &mut schemas,
        openai_schema == 2,
        format!("gpt-4o-mini received {openai_schema} json_schema requests, not 2"),
    );
    let responses_schema = rig
        .received("/v1/responses", "o4-mini")
        .iter()
        .filter(|r| r.body["text"]["format"]["type"] == "json_schema")
        .count();
    check(
        &mut schemas,
        responses_schema == 2,
        format!("the Responses target received {responses_schema} json_schema requests, not 2"),
    );
    let claude_schema = rig
        .received("/v1/messages", "claude-haiku-4-5")
        .iter()
        .filter(|r| {
            r.body["output_format"]["type"] == "json_schema"
                || r.body["output_config"]["format"]["type"] == "json_schema"
        })
        .count();
    check(&mut schemas, claude_schema == 2, format!("Claude received {claude_schema} JSON-schema requests, not 2"));
    results.push(("JSON schemas reach every target".into(), schemas));
    report("OpenAI Node SDK", results, started);
}

#[tokio::test]
async fn the_anthropic_node_sdk_works_through_the_gateway() {
    installed("@anthropic-ai/sdk/package.json", ANTHROPIC_NODE);
    let started = Instant::now();
    let rig = Rig::start().await;
    let routes = [("sdk-claude", "claude-haiku-4-5"), ("sdk-gpt", "gpt-4o-mini"), ("native", "o4-mini")];
    let out = node_script(&rig, "anthropic_sdk.cjs", &routes.map(|r| r.0)).await;
    let v = match out {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let mut results = Vec::new();
    for (route, model) in routes {
        let r = &v[route];
        let mut p = Vec::new();
        p.extend(step(r, "messages", |s, p| {
            text_is(s, "text", model, p);
            check(p, s["model"] == model && s["stop_reason"] == "end_turn", "model or stop_reason");
        }));
        p.extend(step(r, "messages_stream", |s, p| {
            check(p, s["first"] == "message_start" && s["last"] == "message_stop", "event sequence");
            text_is(s, "text", model, p);
            check(p, s["text"] == s["final_text"], "deltas and final text differ");
        }));
        p.extend(step(r, "messages_tools", |s, p| {
            check(p, s["name"] == "weather" && s["stop_reason"] == "tool_use" && s["input"].is_object(), "tool call");
            text_is(s, "text", model, p);
        }));
        p.extend(step(r, "messages_schema", |s, p| schema_answer(s, "text", p)));
        results.push((format!("route `{route}` → {model}"), p));
    }
    let mut schemas = Vec::new();
    let claude = rig.received("/v1/messages", "claude-haiku-4-5");
    let same = claude.iter().filter(|r| r.body["output_config"]["format"]["type"] == "json_schema").count();
    check(&mut schemas, same == 1, format!("Claude received {same} output_config.format requests, not 1 (unchanged)"));
    let openai = rig.received("/v1/chat/completions", "gpt-4o-mini");
    let mapped = openai.iter().filter(|r| r.body["response_format"]["type"] == "json_schema").count();
    check(&mut schemas, mapped == 1, format!("gpt-4o-mini received {mapped} json_schema requests, not 1"));
    results.push(("JSON schemas reach every target".into(), schemas));
    report("Anthropic Node SDK", results, started);
}

// ---------------------------------------------------------------------------------------------
// The OpenAI Agents SDK for Python

#[tokio::test]
async fn the_openai_agents_sdk_works_through_the_gateway() {
    let python = agents_python();
    let started = Instant::now();
    let rig = Rig::start().await;
    let routes = [("sdk-gpt", "gpt-4o-mini"), ("sdk-claude", "claude-haiku-4-5")];
    let home = rig.home("agents");
    let mut cmd = command(&python, &home);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agents/agents_sdk.py"))
        .env("SWITCHYARD_BASE", rig.base())
        .env("SWITCHYARD_KEY", KEY)
        .env("SWITCHYARD_ROUTES", routes.map(|r| r.0).join(","));
    let out = match run(cmd).await {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    };
    assert!(out.status.success(), "agents_sdk.py exited {:?}: {}", out.status.code(), tail(&out.stderr));
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {}", tail(&out.stdout)));
    let mut results = Vec::new();
    for (route, model) in routes {
        for api in ["responses", "responses_stream", "chat"] {
            let p = step(&v[route], api, |s, p| {
                // the model called the tool, the SDK ran it and handed the result back, the model answered
                check(p, s["tool_calls"].as_array().is_some_and(|c| c.len() == 1), "the tool ran once");
                text_is(s, "final", model, p);
            });
            results.push((format!("route `{route}` → {model}, {api}"), p));
        }
    }
    // the function tool arrived strict on every wire
    let mut strict = Vec::new();
    let gpt = rig.received("/v1/chat/completions", "gpt-4o-mini");
    check(
        &mut strict,
        !gpt.is_empty() && gpt.iter().all(|r| r.body["tools"][0]["function"]["strict"] == true),
        format!("gpt-4o-mini: tools {:?}", gpt.iter().map(|r| r.body["tools"].clone()).collect::<Vec<_>>()),
    );
    let claude = rig.received("/v1/messages", "claude-haiku-4-5");
    check(
        &mut strict,
        !claude.is_empty() && claude.iter().all(|r| r.body["tools"][0]["strict"] == true),
        format!("claude-haiku-4-5: tools {:?}", claude.iter().map(|r| r.body["tools"].clone()).collect::<Vec<_>>()),
    );
    results.push(("the function tool arrives strict".into(), strict));
    report("OpenAI Agents SDK", results, started);
}
