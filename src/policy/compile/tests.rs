//! The compiler's tests: whole policies in, policies or diagnostics out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use super::drill::parse_until;
use super::*;
use crate::error::ErrorClass;
use crate::policy::InjectKind;
use crate::policy::config::{DEFAULT_RESUME, Holdback, Resume};
use crate::provider::Protocol;

const GOOD: &str = r#"
[defaults]
retry    = { max_attempts = 3, base = "500ms", max = "8s", retry_after_cap = "60s" }
timeouts = { connect = "5s", first_token = "10s", idle = "30s", attempt = "60s", total = "120s" }
breaker  = { consecutive_failures = 5, cooldown = "10s", max_cooldown = "40s" }

[providers.openai]
api_key_env = "SWITCHYARD_TEST_UNSET_KEY_1"
limits = { rpm = 500, tpm = 150000, concurrency = 64 }

[providers.anthropic]
api_key_env = "SWITCHYARD_TEST_UNSET_KEY_2"
timeouts = { first_token = "20s" }

[providers.local]
protocol = "openai"
base_url = "http://127.0.0.1:8000/v1/"

[routes.chat]
strategy = "priority"
targets = [
  { provider = "openai",    model = "gpt-4o", retry = { max_attempts = 2 } },
  { provider = "openai",    model = "gpt-4o-mini" },
  { provider = "anthropic", model = "claude-sonnet-4-5" },
]
on_context_overflow = "long"

[routes.chat.on.content_filtered]
failover = true

[routes.long]
targets = [{ provider = "anthropic", model = "claude-sonnet-4-5" }]

[[drill.faults]]
provider = "openai"
inject = "server_error"
rate = 1.0
until = "2026-12-01T12:00:00Z"
"#;

#[test]
fn a_good_policy_compiles_with_levels_merged() {
    let p = compile("p.toml", GOOD).unwrap();
    let chat = p.route("chat").unwrap();
    assert_eq!(chat.targets.len(), 3);
    assert_eq!(chat.targets[0].retry.max_attempts, 2);
    assert_eq!(chat.targets[1].retry.max_attempts, 3);
    assert_eq!(chat.targets[2].timeouts.first_token, Duration::from_secs(20));
    assert_eq!(chat.targets[0].timeouts.first_token, Duration::from_secs(10));
    assert!(chat.actions.get(ErrorClass::ContentFiltered).failover);
    assert_eq!(chat.on_context_overflow.as_deref(), Some("long"));
    assert_eq!(p.provider("local").unwrap().base_url, "http://127.0.0.1:8000/v1");
    assert_eq!(p.provider("openai").unwrap().limits.tpm, Some(150_000));
    assert_eq!(p.provider("anthropic").unwrap().protocol, Protocol::Anthropic);
    assert_eq!(p.drill_faults.len(), 1);
    assert_eq!(p.drill_faults[0].inject, InjectKind::Error(ErrorClass::ServerError));
    assert_eq!(p.drill_faults[0].until, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_126_400)));
    let offset = toml::Value::String("2026-12-01T14:00:00+02:00".into());
    assert_eq!(parse_until(&offset), p.drill_faults[0].until);
    assert_eq!(parse_until(&toml::Value::String("2026-12-01T12:00:00".into())), None);
    // unset key variables are warnings, not errors
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(p.warnings[0].message.contains("SWITCHYARD_TEST_UNSET_KEY_1"));
}

fn errors(text: &str) -> Vec<String> {
    match compile("bad.toml", text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn resume_lists_and_holdback_windows_are_checked_and_inherited() {
    let base = "[providers.local]\nprotocol = \"openai\"\nbase_url = \"http://x\"\n";
    let ok = compile(
        "ok.toml",
        &format!(
            "{base}[routes.a]\nresume = [\"holdback\", \"instructed\"]\nholdback = \"all\"\n\
             targets = [{{ provider = \"local\", model = \"m\" }}, {{ provider = \"local\", model = \"n\", resume = [\"none\"] }}]\n\
             [routes.b]\ntargets = [{{ provider = \"local\", model = \"m\" }}]\n"
        ),
    )
    .unwrap();
    let a = ok.route("a").unwrap();
    assert_eq!(a.targets[0].resume, [Resume::Holdback, Resume::Instructed]);
    assert_eq!(a.targets[0].holdback, Some(Holdback::All));
    assert_eq!(a.targets[1].resume, [Resume::None], "the target's own list wins");
    assert_eq!(a.targets[1].holdback, None, "its list has no holdback");
    let b = ok.route("b").unwrap();
    assert_eq!(b.targets[0].resume, DEFAULT_RESUME);
    assert_eq!(b.targets[0].holdback, None);
    // a route's window for the targets whose own lists hold back
    let inherit = compile(
        "ok.toml",
        &format!(
            "{base}[routes.a]\nholdback = 16\ntargets = [{{ provider = \"local\", model = \"m\", resume = [\"holdback\", \"instructed\"] }}, {{ provider = \"local\", model = \"n\" }}]\n"
        ),
    )
    .unwrap();
    let a = inherit.route("a").unwrap();
    assert_eq!((a.targets[0].holdback, a.targets[1].holdback), (Some(Holdback::Events(16)), None));

    for (route, message) in [
        ("resume = [\"prefill\", \"prefill\"]", "`prefill` is listed twice"),
        ("resume = [\"none\", \"prefill\"]", "cannot be listed with other strategies"),
        ("resume = []", "an empty list"),
        ("resume = [\"rewind\"]", "unknown variant `rewind`"),
        ("holdback = 16", "`resume` does not list \"holdback\""),
        ("resume = [\"none\", \"holdback\"]", "`[\"holdback\"]` alone holds back"),
        ("resume = [\"holdback\"]\nholdback = 0", "holds nothing back"),
        ("resume = [\"holdback\"]\nholdback = \"most\"", "expected a number of content events or \"all\""),
    ] {
        let text = format!("{base}[routes.a]\n{route}\ntargets = [{{ provider = \"local\", model = \"m\" }}]\n");
        let e = errors(&text);
        assert!(e.iter().any(|m| m.contains("routes.a.") && m.contains(message)), "{route}: {e:#?}");
    }
}

#[test]
fn every_error_is_reported_at_once_with_line_column_and_key() {
    let text = "[providers.local]\nprotocol = \"openai\"\nbase_url = \"http://x\"\n\n[routes.a]\ntargets = [{ provider = \"nope\", model = \"m\" }]\n\n[routes.b]\ntargets = [{ provider = \"local\", modle = \"m\" }]\n\n[routes.c]\ntargets = []\ntimeouts = { total = \"soon\" }\n";
    let e = errors(text);
    assert!(
        e.iter().any(|m| m.starts_with("bad.toml:6:25: `routes.a.targets[0].provider`: unknown provider `nope`")),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|m| m.starts_with("bad.toml:9:")
            && m.contains("`routes.b.targets[0].modle`")
            && m.contains("unknown field `modle`")),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|m| m.starts_with("bad.toml:13:")
            && m.contains("routes.c.timeouts.total")
            && m.contains("invalid duration")),
        "{e:#?}"
    );
}

#[test]
fn policy_models_extend_and_override_the_catalog() {
    let text = "[providers.openai]\napi_key_env = \"PATH\"\n[providers.openai.models.\"gpt-4o\"]\naccepts = [\"tools\"]\n[providers.openai.models.\"my-ft\"]\ncontext_window = 8000\nmax_output_tokens = 1000\naccepts = [\"tools\", \"vision\"]\n[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }, { provider = \"openai\", model = \"my-ft\" }]\n";
    let p = compile("ok.toml", text).unwrap();
    let route = p.route("a").unwrap();
    let gpt = route.targets[0].model_profile.as_ref().unwrap();
    // overridden field, kept fields
    assert_eq!(gpt.accepts, Some([crate::capability::Feature::Tools].into()));
    assert_eq!(gpt.context_window, 128_000);
    let ft = route.targets[1].model_profile.as_ref().unwrap();
    assert_eq!((ft.context_window, ft.max_output_tokens), (8000, 1000));
    // the adapters see the same catalog
    let profile = p.provider("openai").and_then(|p| p.profile.as_ref()).unwrap();
    assert_eq!(profile.model("my-ft").map(|m| m.context_window), Some(8000));
}

#[test]
fn a_new_model_needs_its_limits_and_features_have_names() {
    let e = errors(
        "[providers.openai.models.\"mine\"]\naccepts = [\"tools\"]\n[routes.a]\ntargets = [{ provider = \"openai\", model = \"mine\" }]\n",
    );
    assert!(
        e.iter().any(|m| m.starts_with("bad.toml:")
            && m.contains("`providers.openai.models.\"mine\"`")
            && m.contains("set `context_window` and `max_output_tokens`")),
        "{e:#?}"
    );
    let e = errors(
        "[providers.openai.models.\"gpt-4o\"]\naccepts = [\"telepathy\"]\n[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]\n",
    );
    assert!(e.iter().any(|m| m.starts_with("bad.toml:2:") && m.contains("telepathy")), "{e:#?}");
}

#[test]
fn syntax_errors_point_at_line_and_column() {
    let e = errors("[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }\n");
    assert!(e[0].starts_with("bad.toml:2:"), "{e:#?}");
}

#[test]
fn empty_and_half_written_files_are_rejected() {
    assert!(errors("")[0].contains("empty"));
    assert!(errors("   \n")[0].contains("empty"));
    assert!(!errors("[routes.a]\ntargets = [{ provider = \"ope").is_empty());
}

#[test]
fn empty_route_unknown_top_level_and_class_are_errors() {
    let e = errors("[routes.a]\ntargets = []\n[routes.a.on.overload]\nretry = false\n[extra]\nx = 1\n");
    assert!(e.iter().any(|m| m.contains("`routes.a.targets`: a route needs at least one target")), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("`routes.a.on.overload`: unknown error class")), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("`extra`: unknown table")), "{e:#?}");
}

#[test]
fn a_hedge_names_when_and_how_many_and_needs_a_second_target() {
    let two = "targets = [{ provider = \"openai\", model = \"gpt-4o\" }, { provider = \"openai\", model = \"gpt-4o-mini\" }]\n";
    let p = compile(
        "ok.toml",
        &format!(
            "[routes.a]\nhedge = {{ after = \"1.5s\", max = 1 }}\n{two}[routes.b]\nhedge = {{ after = \"p95\" }}\n{two}"
        ),
    )
    .unwrap();
    let a = p.route("a").unwrap().hedge.unwrap();
    assert_eq!((a.after, a.max), (super::super::HedgeAfter::Fixed(Duration::from_millis(1500)), 1));
    assert_eq!(p.route("b").unwrap().hedge.unwrap().after, super::super::HedgeAfter::Percentile(95));
    let e = errors(&format!(
        "[routes.a]\nhedge = {{ after = \"soon\" }}\n{two}[routes.b]\nhedge = {{ after = \"p100\" }}\n{two}[routes.c]\nhedge = {{ after = \"1s\", max = 0 }}\n{two}[routes.d]\nhedge = {{ after = \"1s\" }}\ntargets = [{{ provider = \"openai\", model = \"gpt-4o\" }}]\n"
    ));
    assert!(e.iter().any(|m| m.contains("`routes.a.hedge.after`") && m.contains("`soon`")), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("`routes.b.hedge.after`") && m.contains("p99")), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("`routes.c.hedge.max`") && m.contains("1 to 3")), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("`routes.d.hedge`") && m.contains("two targets")), "{e:#?}");
}

#[test]
fn a_budget_needs_a_positive_amount_and_a_window_of_a_minute() {
    let e = errors(
        "[providers.openai]\nbudget = { usd = -1, per = \"1d\" }\n[routes.a]\nbudget = { usd = 5, per = \"10s\" }\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]\n",
    );
    assert!(e.iter().any(|m| m.contains("`providers.openai.budget.usd`") && m.contains("positive")), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("`routes.a.budget.per`") && m.contains("a minute")), "{e:#?}");
    let e = errors(
        "[providers.openai.models.\"gpt-4o\"]\ninput_price = nan\ncache_write_price = -1.0\n[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]\n",
    );
    assert!(e.iter().any(|m| m.contains("gpt-4o\".input_price`") && m.contains("finite")), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("gpt-4o\".cache_write_price`")), "{e:#?}");
}

#[test]
fn tpm_smaller_than_a_request_is_an_error() {
    let e = errors(
        "[routes.a]\ntargets = [{ provider = \"anthropic\", model = \"claude-sonnet-4-5\", limits = { tpm = 1000 } }]\n",
    );
    assert!(e.iter().any(|m| m.contains("limits.tpm") && m.contains("64000")), "{e:#?}");
}

#[test]
fn provider_without_protocol_or_url_is_explained() {
    let e = errors(
        "[providers.mine]\nbase_url = \"http://x\"\n[routes.a]\ntargets = [{ provider = \"mine\", model = \"m\" }]\n",
    );
    assert!(e.iter().any(|m| m.contains("needs `protocol")), "{e:#?}");
    let e = errors(
        "[providers.mine]\nprotocol = \"openai\"\n[routes.a]\ntargets = [{ provider = \"mine\", model = \"m\" }]\n",
    );
    assert!(e.iter().any(|m| m.contains("missing `base_url`")), "{e:#?}");
}

#[test]
fn builtin_providers_can_be_named_directly() {
    let p = compile("p.toml", "[routes.a]\ntargets = [{ provider = \"groq\", model = \"llama-3.1-8b-instant\" }]\n")
        .unwrap();
    assert_eq!(p.provider("groq").unwrap().base_url, "https://api.groq.com/openai/v1");
}

#[test]
fn drill_faults_are_validated() {
    let e = errors(
        "[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]\n[[drill.faults]]\nprovider = \"openai\"\ninject = \"explode\"\nrate = 2.0\n[[drill.faults]]\nprovider = \"x\"\ninject = \"latency\"\n",
    );
    assert!(e.iter().any(|m| m.contains("drill.faults[0].inject")), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("drill.faults[0].rate")), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("drill.faults[1].provider")), "{e:#?}");
    assert!(e.iter().any(|m| m.contains("drill.faults[1].delay")), "{e:#?}");
}
