//! The `switchyard` binary: exit codes, output contracts, error messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::TestGateway;
use switchyard::Protocol;
use switchyard::sim::{Fault, FaultRule, SimServer};

fn switchyard(args: &[&str]) -> Output {
    Command::new(support::binary())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn check_prints_the_resolved_plan_of_a_valid_policy() {
    let out = switchyard(&["check", "policies/model-downgrade.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("1. openai/gpt-4o"), "{stdout}");
    assert!(stdout.contains("2. openai/gpt-4o-mini"), "{stdout}");
    assert!(stdout.contains("retry: 2 attempts"), "{stdout}");
    assert!(stdout.contains("on context overflow → route long"), "{stdout}");
    // what the gateway would enforce, defaults filled in
    assert!(stdout.contains("client keys: none (every endpoint open; set keys_file)"), "{stdout}");
    assert!(stdout.contains("timeouts: header_read 10s, body_read 30s, keepalive 1m, write 1m"), "{stdout}");
    // what each model accepts, as the router checks it before a call
    assert!(
        stdout.contains("model: context 128000 tokens, accepts: vision, pdf, tools, json_schema, logprobs, n"),
        "{stdout}"
    );
    // how a stream cut midway is finished: OpenAI chat models take no prefill
    assert!(
        stdout.contains("streams cut midway: prefill (the model refuses it: skipped), then instructed"),
        "{stdout}"
    );
}

#[test]
fn every_invalid_fixture_gives_a_precise_message_and_exit_2() {
    let cases = [
        ("unknown_key", "unknown_key.toml:3:29: `providers.openai.retry.bsae`: unknown field `bsae`"),
        (
            "unknown_provider",
            "unknown_provider.toml:4:16: `routes.chat.targets[1].provider`: unknown provider `antropic`",
        ),
        ("empty_route", "empty_route.toml:2:11: `routes.chat.targets`: a route needs at least one target"),
        ("bad_duration", "bad_duration.toml:2:22: `defaults.timeouts.total`: invalid duration `two minutes`"),
        ("tpm_too_small", "tpm_too_small.toml:2:10: `providers.anthropic.limits.tpm`: provider tpm 2000 is smaller"),
        ("syntax", "syntax.toml:3:"),
        ("bad_strategy", "bad_strategy.toml:2:12: `routes.chat.strategy`: unknown variant `fastest`"),
        ("overflow_route", "overflow_route.toml:3:23: `routes.chat.on_context_overflow`: unknown route `longer`"),
        (
            "shared_target",
            "shared_target.toml:5:43: `routes.fast.targets[0]`: `openai/gpt-4o-mini` is also a target of `routes.chat.targets[0]`, with other limits",
        ),
    ];
    for (name, expected) in cases {
        let path = format!("tests/fixtures/invalid/{name}.toml");
        let out = switchyard(&["check", &path]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{name}: expected `{expected}` in:\n{stderr}");
    }
}

fn sim_policy(dir: &Path, sim: &SimServer) -> String {
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        format!(
            "[defaults]\nretry = {{ max_attempts = 2, base = \"10ms\" }}\n{providers}[routes.chat]\ntargets = [{{ provider = \"openai\", model = \"gpt-4o-mini\" }}, {{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }}]\n[routes.solo]\ntargets = [{{ provider = \"openai\", model = \"gpt-4o-mini\" }}]\n",
            providers = sim.providers_toml()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_json_reports_the_serving_model_usage_and_attempts() {
    let sim = support::sim().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = sim_policy(dir.path(), &sim);
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)));
    for stream in [false, true] {
        let mut args: Vec<String> =
            ["chat", "--policy", &policy, "--route", "chat", "--json", "--max-tokens", "20"].map(String::from).to_vec();
        if stream {
            args.push("--stream".into());
        }
        args.push("Hello there".into());
        let out = tokio::task::spawn_blocking(move || switchyard(&args.iter().map(String::as_str).collect::<Vec<_>>()))
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["route"], "chat");
        assert_eq!(v["provider"], "anthropic");
        assert_eq!(v["model"], "claude-sonnet-4-5");
        assert_eq!(v["content"], "Hello from claude-sonnet-4-5. You said: Hello there");
        assert_eq!(v["finish_reason"], "stop");
        assert_eq!(v["usage"]["output_tokens"], 7);
        assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
        let attempts = v["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 3);
        assert_eq!(attempts[0]["provider"], "openai");
        assert_eq!(attempts[0]["outcome"], "error");
        assert_eq!(attempts[0]["class"], "server_error");
        assert_eq!(attempts[0]["status"], 500);
        assert!(attempts[0]["elapsed_ms"].is_u64());
        assert_eq!(attempts[2]["outcome"], "ok");
        // what it cost: Claude Sonnet 4.5's answer at $3 / $15 per million tokens
        let (input, output) =
            (v["usage"]["input_tokens"].as_f64().unwrap(), v["usage"]["output_tokens"].as_f64().unwrap());
        let cost = v["cost_usd"].as_f64().unwrap();
        assert!((cost - (input * 3.0 + output * 15.0) / 1e6).abs() < 1e-12, "{cost} for {}", v["usage"]);
        assert!((attempts[2]["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12, "{}", attempts[2]);
        assert!(v["failed_cost_usd"].is_null(), "OpenAI's 500s are billed nothing: {}", v["failed_cost_usd"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_failure_is_exit_1_with_the_error_in_json_and_unknown_route_is_exit_2() {
    let sim = support::sim().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = sim_policy(dir.path(), &sim);
    sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(529)));
    let p = policy.clone();
    let out =
        tokio::task::spawn_blocking(move || switchyard(&["chat", "--policy", &p, "--route", "solo", "--json", "hi"]))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["route"], "solo");
    assert_eq!(v["error"]["class"], "overloaded");
    assert_eq!(v["error"]["provider"], "openai");
    assert_eq!(v["error"]["model"], "gpt-4o-mini");
    assert_eq!(v["error"]["status"], 529);
    assert_eq!(v["error"]["provider_incidents"], serde_json::json!([]), "no status page, no incident");
    assert_eq!(v["attempts"].as_array().unwrap().len(), 2);
    let out = tokio::task::spawn_blocking(move || switchyard(&["chat", "--policy", &policy, "--route", "nope", "hi"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown route `nope`; routes: chat, solo"));
}

#[test]
fn the_builtin_drill_passes_and_draws_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let html_path = dir.path().join("report.html");
    let out = switchyard(&["drill", "--json", "--html", html_path.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report["passed"], true);
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 4);
    // traffic really moved: OpenAI served the baseline, Anthropic the outage
    assert_eq!(phases[0]["served_by"]["openai/gpt-4o-mini"], 50);
    assert_eq!(phases[1]["served_by"]["anthropic/claude-sonnet-4-5"], 50);
    assert!(phases[1]["transitions"].as_array().unwrap().iter().any(|t| t["to"] == "open"));
    assert!(phases[3]["transitions"].as_array().unwrap().iter().any(|t| t["to"] == "closed"));
    // the timeline adds up to the phase's totals
    for phase in phases {
        let points = phase["timeline"].as_array().unwrap();
        assert!(!points.is_empty());
        let sum = |key: &str| points.iter().map(|p| p[key].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("requests"), phase["requests"].as_u64().unwrap());
        assert_eq!(sum("successes"), phase["successes"].as_u64().unwrap());
    }

    // the HTML report: one section per phase, each with a traffic chart holding both providers'
    // series, the breaker bands, the health lines and every verdict
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "self-contained");
    let sections: Vec<&str> = html.split("<section class=\"phase\"").skip(1).collect();
    assert_eq!(sections.len(), 4);
    let series = |section: &str, name: &str| -> Vec<f64> {
        let start = section.find(&format!("<g class=\"series\" data-series=\"{name}\"")).unwrap();
        let group = &section[start..start + section[start..].find("</g>").unwrap()];
        group.split("height=\"").skip(1).map(|h| h[..h.find('"').unwrap()].parse().unwrap()).collect()
    };
    for (section, phase) in sections.iter().zip(phases) {
        let name = phase["name"].as_str().unwrap();
        assert!(section.starts_with(&format!(" data-phase=\"{name}\"")), "{section}");
        assert_eq!(section.matches("<svg class=\"chart traffic\"").count(), 1, "{name}");
        assert!(section.contains("data-series=\"openai anthropic\""), "{name}");
        assert!(section.contains("<svg class=\"chart breakers\""), "{name}");
        assert!(section.contains("data-series=\"success_ratio\"") && section.contains("data-series=\"p99_ms\""));
        let verdicts = phase["expectations"].as_array().unwrap().len();
        assert_eq!(section.matches("<span class=\"badge pass\">PASS</span></td>").count(), verdicts, "{name}");
    }
    // what was drawn is what happened: OpenAI's bars fill the baseline, Anthropic's the outage
    let total = |v: Vec<f64>| v.iter().sum::<f64>();
    assert!(total(series(sections[0], "openai")) > 0.0 && total(series(sections[0], "anthropic")) == 0.0);
    assert!(total(series(sections[1], "anthropic")) > 0.0);
    // OpenAI's breaker shows open in the outage and closed again by the end of the recovery
    let band = |section: &str| {
        let start = section.find("data-breaker=\"openai/gpt-4o-mini\"").unwrap();
        section[start..start + section[start..].find("</g>").unwrap()].to_owned()
    };
    assert!(band(sections[1]).contains("band-open"));
    assert!(band(sections[3]).rfind("band-closed") > band(sections[3]).rfind("band-half_open"));
}

#[test]
fn a_drill_that_cannot_hold_fails_with_exit_1_and_says_by_how_much() {
    let out = switchyard(&["drill", "tests/fixtures/drills/impossible.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("FAIL  served_by openai >= 0.9"), "{stdout}");
    assert!(stdout.contains("actual 0.000 (missed by 0.900)"), "{stdout}");
    assert!(stdout.contains("PASS  success_ratio >= 1"), "{stdout}");
    assert!(stdout.contains("result: FAIL  (1 of 2 expectations held"), "{stdout}");
}

#[test]
fn a_drill_whose_only_target_is_faulted_reports_failure_honestly() {
    let out = switchyard(&["drill", "--json", "tests/fixtures/drills/only_target.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let phase = &report["phases"][0];
    assert_eq!(phase["requests"], 8);
    assert_eq!(phase["successes"], 0);
    assert_eq!(phase["errors"]["overloaded"], 8);
    assert_eq!(phase["expectations"][0]["pass"], false);
    assert_eq!(phase["expectations"][0]["missed_by"], "0.500");
}

#[test]
fn a_drill_expects_streams_cut_midway_to_be_resumed() {
    let out = switchyard(&["drill", "--json", "tests/fixtures/drills/resumed.toml"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let phase = &report["phases"][0];
    assert_eq!(phase["successes"], 8);
    assert_eq!(phase["resumed"], 4, "four cuts, each continued");
    assert_eq!(phase["expectations"][1]["expectation"], "resumed streams >= 4");
    assert_eq!(phase["expectations"][1]["pass"], true);
}

#[test]
fn a_malformed_drill_file_names_file_line_and_key() {
    let out = switchyard(&["drill", "tests/fixtures/drills/malformed.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("malformed.toml:5:1: `load.concurency`: unknown field `concurency`"), "{stderr}");
    assert!(
        stderr.contains("malformed.toml:10:24: `phases[0].faults[0].provider`: the policy has no provider `openia`"),
        "{stderr}"
    );
    assert!(stderr.contains("`phases[0].expect.breaker.openai`: unknown state `ajar`"), "{stderr}");
}

#[test]
fn drills_drive_embeddings_token_counts_and_responses_targets_through_a_failover() {
    for (file, served) in [
        ("embeddings", "backup/text-embedding-3-small"),
        ("count_tokens", "anthropic/claude-haiku-4-5"),
        ("responses", "anthropic/claude-sonnet-4-5"),
    ] {
        let out = switchyard(&["drill", "--json", &format!("tests/fixtures/drills/{file}.toml")]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let phase = &report["phases"][0];
        assert_eq!((phase["requests"].as_u64(), phase["successes"].as_u64()), (Some(12), Some(12)), "{file}: {phase}");
        assert!(phase.to_string().contains(served), "{file}: {phase}");
        // the report says what the traffic cost (counting tokens costs nothing)
        let cost = report["cost_usd"].as_f64().unwrap();
        assert!(if file == "count_tokens" { cost == 0.0 } else { cost > 0.0 }, "{file}: {cost}");
        assert_eq!(phase["cost_usd"].as_f64(), Some(cost));
    }
}

#[test]
fn a_drill_shows_hedges_winning_against_a_slow_first_token() {
    let out = switchyard(&["drill", "--json", "tests/fixtures/drills/hedged.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let phase = &report["phases"][0];
    assert_eq!((phase["requests"].as_u64(), phase["successes"].as_u64()), (Some(12), Some(12)), "{phase}");
    assert_eq!((phase["hedges"].as_u64(), phase["hedges_won"].as_u64()), (Some(12), Some(12)), "{phase}");
    // a hedge is not a failover, and the cancelled attempts were billed
    assert_eq!(phase["failovers"].as_u64(), Some(0), "{phase}");
    assert!(phase["failed_cost_usd"].as_f64().unwrap() > 0.0, "{phase}");
    assert!(phase["expectations"].as_array().unwrap().iter().all(|e| e["pass"] == true), "{phase}");
}

/// `check` shows the connection cap `serve` would run with: under a soft descriptor limit below
/// the hard one, the raised limit; under a low hard limit, the lower cap and why.
#[test]
fn check_shows_the_connection_cap_the_descriptor_limit_holds() {
    let under = |limit: &str| {
        let out = Command::new("prlimit")
            .args([limit, "--", support::binary(), "check", "policies/openai-to-claude.toml"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run prlimit ({e}): it comes with util-linux: apt-get install util-linux")
            });
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout).lines().find(|l| l.contains("connections: cap")).map(str::to_owned).unwrap_or_default()
    };
    let raised = under("--nofile=200:4096");
    assert!(raised.contains("cap 1024 ("), "{raised}");
    assert!(raised.contains("raised at start from 200"), "{raised}");
    let low = under("--nofile=256:256");
    assert!(low.contains("descriptor limit 256 less a reserve of 192"), "{low}");
    assert!(low.contains("below `max_connections` 1024, so the cap is 24"), "{low}");
}

#[test]
fn check_shows_budgets_and_cache_affinity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        "[providers.openai]\nbudget = { usd = 20, per = \"1d\" }\n[routes.chat]\nstrategy = \"round_robin\"\ncache_affinity = true\nbudget = { usd = 5, per = \"1h\" }\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }, { provider = \"openai\", model = \"gpt-4o-mini\" }]\n",
    )
    .unwrap();
    let out = switchyard(&["check", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("budget $20.00 per 1day"), "{stdout}");
    assert!(
        stdout.contains("chat (strategy round_robin, total timeout 2m, budget $5.00 per 1h, cache affinity)"),
        "{stdout}"
    );
}

/// A gateway in front of a simulator of its own: route `chat` is OpenAI, then Anthropic, one
/// attempt each, with a breaker that opens on the second failure in a row and `cooldown` (the
/// rest of its table).
async fn sim_gateway(cooldown: &str) -> (SimServer, TestGateway) {
    let sim = support::sim().await;
    let policy = format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
breaker = {{ consecutive_failures = 2, {cooldown} }}
{providers}
[routes.chat]
targets = [{{ provider = "openai", model = "gpt-4o-mini" }}, {{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
"#,
        providers = sim.providers_toml()
    );
    (sim, support::gateway_with(&policy, &[]).await)
}

#[test]
fn top_shows_the_routes_breakers_traffic_and_events_of_a_running_gateway() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sim, gateway) = runtime.block_on(async {
        let (sim, gateway) = sim_gateway(r#"cooldown = "60s""#).await;
        sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status(500)));
        let body = serde_json::json!({"model": "chat", "messages": [{"role": "user", "content": "Hello"}]});
        for _ in 0..3 {
            let r = reqwest::Client::new()
                .post(format!("http://{}/v1/chat/completions", gateway.addr()))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        (sim, gateway)
    });
    let url = format!("http://{}", gateway.addr());
    let out = switchyard(&["top", &url, "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let view = text(&out.stdout);
    assert!(view.contains("policy v1"), "{view}");
    assert!(view.contains("chat (priority)"), "{view}");
    let row = |who: &str| view.lines().find(|l| l.trim_start().starts_with(who)).unwrap_or_default().to_owned();
    assert!(row("openai/gpt-4o-mini").contains("open"), "{view}");
    assert!(row("anthropic/claude-sonnet-4-5").contains("closed"), "{view}");
    // the last minute: anthropic served all three, openai failed twice before its breaker opened
    let traffic = |who: &str| {
        let line = view.lines().find(|l| l.starts_with(who) && !l.contains('/')).unwrap_or_default();
        line.split_whitespace().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(traffic("anthropic")[1], "3", "{view}");
    assert_eq!(traffic("openai")[2], "2", "{view}");
    assert!(view.contains("server_error 2"), "{view}");
    assert!(view.contains("breaker openai/gpt-4o-mini: closed -> open"), "{view}");
    assert!(view.contains("failover on chat: openai/gpt-4o-mini failed (server_error)"), "{view}");
    assert!(!view.contains('\x1b'), "no colours when stdout is not a terminal");

    // a gateway that is not there: exit 1 and why
    runtime.block_on(gateway.shutdown());
    let out = switchyard(&["top", &url, "--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read"), "{}", text(&out.stderr));
    drop(sim);
}

#[test]
fn a_drill_against_a_running_gateway_injects_through_its_admin_api_and_reads_its_stream() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sim, gateway) = runtime.block_on(sim_gateway(r#"cooldown = "500ms", max_cooldown = "500ms""#));
    // next to the gateway's policy: the drill names it
    let dir = &gateway.dir;
    std::fs::write(
        dir.path().join("drill.toml"),
        r#"
name = "OpenAI outage on the gateway"
route = "chat"
policy_file = "policy.toml"
[load]
requests = 30
rate = 30
concurrency = 2
stream_share = 0.3
[[phases]]
name = "baseline"
[phases.expect]
success_ratio = 1.0
served_by = { openai = 1.0 }
[[phases]]
name = "openai_500s"
faults = [{ provider = "openai", inject = "server_error" }]
[phases.expect]
success_ratio = 1.0
served_by = { anthropic = 0.9 }
breaker = { "openai/gpt-4o-mini" = "open" }
no_requests_while_open = ["openai"]
[[phases]]
name = "recovery"
[phases.expect]
success_ratio = 1.0
recovered_within = { openai = "3s" }
"#,
    )
    .unwrap();
    let url = format!("http://{}", gateway.addr());
    let html = dir.path().join("report.html");
    let drill = dir.path().join("drill.toml");
    let out =
        switchyard(&["drill", drill.to_str().unwrap(), "--against", &url, "--json", "--html", html.to_str().unwrap()]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report["mode"], format!("gateway {url}"));
    assert_eq!(report["providers"], serde_json::json!(["openai", "anthropic"]));
    let phases = report["phases"].as_array().unwrap();
    // the load went through the gateway: every request reached the simulator through it
    let served = |i: usize, who: &str| phases[i]["served_by"][who].as_u64().unwrap_or(0);
    assert_eq!(served(0, "openai/gpt-4o-mini"), 30);
    assert!(served(1, "anthropic/claude-sonnet-4-5") >= 27);
    // the breaker's transitions came from the admin stream, the failovers too
    assert!(phases[1]["transitions"].as_array().unwrap().iter().any(|t| t["to"] == "open"), "{:#}", phases[1]);
    assert!(phases[1]["failovers"].as_u64().unwrap() >= 2, "{:#}", phases[1]);
    // one attempt per target (max_attempts = 1): a primary skipped at its open breaker is no retry
    assert_eq!(phases[1]["retries"], 0, "{:#}", phases[1]);
    assert_eq!(phases[0]["failovers"], 0, "{:#}", phases[0]);
    // the fault was lifted: none left on the gateway
    assert!(gateway.router().health().faults.iter().all(|f| !f.active), "{:?}", gateway.router().health().faults);
    // the same charts as any drill
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg class=\"chart traffic\"").count(), 3);
    assert!(page.contains(&format!("the gateway at {url}")));
    runtime.block_on(gateway.shutdown());
    drop(sim);
}
