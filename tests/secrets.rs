//! The API key never leaves the request header: both adapters (and a router over them) are driven
//! with a canary key through success, a 401 that echoes the key, bodies that quote it, an in-stream
//! error that names it, and a reset, while every log record at TRACE is captured; then the canary is
//! looked for everywhere a key could leak.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{self, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use switchyard::sim::{Fault, FaultRule, SimServer};
use switchyard::{
    Anthropic, ApiKey, Call, CallTimeouts, ChatRequest, OpenAi, Policy, Protocol, Provider, ProviderConfig,
    ProviderError, Router,
};
use tracing_subscriber::util::SubscriberInitExt;

const CANARY: &str = "sk-SECRET-CANARY-1234567890";

// ---------------------------------------------------------------- captured logs

/// Every formatted log line of the process, tracing events and `log` records (reqwest's) alike.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The process-wide subscriber: global, so records from every runtime thread and blocking task are
/// caught; TRACE whatever RUST_LOG says.
fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
            .try_init()
            .expect("the only subscriber of this test binary");
        logs
    })
}

// ---------------------------------------------------------------- driving the adapters

fn adapter(protocol: Protocol, sim: &SimServer) -> (Arc<dyn Provider>, String) {
    let (base, name) = match protocol {
        Protocol::Openai => (sim.openai_base_url(), "oa"),
        _ => (sim.anthropic_base_url(), "an"),
    };
    let config = ProviderConfig::new(name, base).api_key(ApiKey::new(CANARY));
    let config_debug = format!("{config:?}");
    let provider: Arc<dyn Provider> = match protocol {
        Protocol::Openai => Arc::new(OpenAi::new(config).unwrap()),
        _ => Arc::new(Anthropic::new(config).unwrap()),
    };
    (provider, config_debug)
}

fn model(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Openai => "gpt-4o-mini",
        _ => "claude-sonnet-4-5",
    }
}

/// Everything a caller can see of one call: the answer's or the error's text, as the caller would
/// print, log or serialize it.
async fn drive(provider: &dyn Provider, protocol: Protocol, stream: bool) -> (String, Option<ProviderError>) {
    let request = ChatRequest::user("Tell me about the weather").max_tokens(32);
    let timeouts =
        CallTimeouts { first_token: Some(Duration::from_secs(3)), idle: Some(Duration::from_secs(3)), deadline: None };
    let call = Call::new(model(protocol), &request).timeouts(timeouts);
    if !stream {
        return match provider.chat(call).await {
            Ok(answer) => (format!("{answer:?} {}", serde_json::to_string(&answer).unwrap()), None),
            Err(e) => (String::new(), Some(e)),
        };
    }
    let mut events = match provider.chat_stream(call).await {
        Ok(events) => events,
        Err(e) => return (String::new(), Some(e)),
    };
    let mut seen = String::new();
    while let Some(item) = events.next().await {
        match item {
            Ok(event) => seen.push_str(&format!("{event:?} {}\n", serde_json::to_string(&event).unwrap())),
            Err(e) => return (seen, Some(e)),
        }
    }
    (seen, None)
}

/// The error as a caller would show it: Display, Debug, and the partial as JSON.
fn exposed(e: &ProviderError) -> String {
    format!("{e}\n{e:?}\n{}", serde_json::to_string(&e.partial()).unwrap())
}

/// The faults each adapter is driven through, with whether the call must fail.
fn scenarios(protocol: Protocol) -> Vec<(&'static str, Option<Fault>, bool, bool)> {
    let echo_401 = Fault::Status {
        status: 401,
        error_type: None,
        // OpenAI's body carries a code as well; Anthropic's has none
        code: Some(format!("invalid_api_key {CANARY}")),
        message: Some(format!("Incorrect API key provided: {CANARY}. You can find your API key at ...")),
        retry_after: None,
        retry_after_ms: None,
        should_retry: None,
    };
    let html_401 = Fault::RawBody {
        status: 401,
        content_type: "text/html".into(),
        body: format!("<html><body><h1>401</h1><p>key {CANARY} rejected by the gateway</p></body></html>"),
    };
    // serde quotes the value it could not use
    let quoting_200 = Fault::RawBody {
        status: 200,
        content_type: "application/json".into(),
        body: match protocol {
            Protocol::Openai => format!(r#"{{"id":"x","object":"chat.completion","choices":"{CANARY}"}}"#),
            _ => format!(r#"{{"id":"x","type":"message","content":"{CANARY}"}}"#),
        },
    };
    let in_stream = Fault::StreamError { after_tokens: 2, error_type: Some(CANARY.into()) };
    //   (name, fault, streaming, fails)
    vec![
        ("success", None, false, false),
        ("success", None, true, false),
        ("401 echoing the key", Some(echo_401.clone()), false, true),
        ("401 echoing the key", Some(echo_401), true, true),
        ("HTML 401 echoing the key", Some(html_401.clone()), false, true),
        ("HTML 401 echoing the key", Some(html_401), true, true),
        ("200 body quoting the key", Some(quoting_200), false, true),
        ("in-stream error naming the key", Some(in_stream), true, true),
        ("reset", Some(Fault::Reset), false, true),
        ("reset", Some(Fault::Reset), true, true),
    ]
}

/// Runs every scenario on one adapter; returns everything the caller saw.
async fn exercise(sim: &SimServer, protocol: Protocol) -> Vec<(String, String)> {
    let (provider, config_debug) = adapter(protocol, sim);
    let mut seen = vec![
        (format!("{protocol:?} config Debug"), config_debug),
        (format!("{protocol:?} adapter Debug"), format!("{provider:?}")),
    ];
    for (name, fault, stream, fails) in scenarios(protocol) {
        sim.clear_faults();
        if let Some(fault) = fault {
            sim.add_fault(FaultRule::new(protocol, fault));
        }
        let label = format!("{protocol:?} {name} (stream: {stream})");
        let (output, error) = drive(provider.as_ref(), protocol, stream).await;
        assert_eq!(error.is_some(), fails, "{label}: {error:?}");
        let error = error.map(|e| {
            // the scan must not pass because the text was dropped: the echo is there, redacted
            if name.contains("echoing") {
                assert!(e.message().contains("***"), "{label}: {}", e.message());
            }
            exposed(&e)
        });
        seen.push((label, format!("{output}\n{}", error.unwrap_or_default())));
    }
    sim.clear_faults();
    seen
}

/// A router over both adapters, every target failing with the echoing 401: the router logs each
/// attempt's message, so the captured logs hold what the adapters made of the echoed key.
async fn exercise_router(sim: &SimServer) -> String {
    let policy: Policy = format!(
        r#"
[defaults]
retry = {{ max_attempts = 1 }}
[providers.oa]
protocol = "openai"
base_url = "{}"
[providers.an]
protocol = "anthropic"
base_url = "{}"
[routes.chat]
targets = [{{ provider = "oa", model = "gpt-4o-mini" }}, {{ provider = "an", model = "claude-sonnet-4-5" }}]
"#,
        sim.openai_base_url(),
        sim.anthropic_base_url()
    )
    .parse()
    .unwrap();
    let router = Router::builder(policy)
        .provider("oa", adapter(Protocol::Openai, sim).0)
        .provider("an", adapter(Protocol::Anthropic, sim).0)
        .build();
    sim.add_fault(FaultRule {
        protocol: None,
        model: None,
        when: Default::default(),
        fault: Fault::Status {
            status: 401,
            error_type: None,
            code: None,
            message: Some(format!("Incorrect API key provided: {CANARY}.")),
            retry_after: None,
            retry_after_ms: None,
            should_retry: None,
        },
    });
    let error = router.chat("chat", ChatRequest::user("hi").max_tokens(8)).await.unwrap_err();
    sim.clear_faults();
    assert_eq!(error.attempts().len(), 2, "both targets were tried: {error:?}");
    format!("{error}\n{error:?}\n{router:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_leaks() {
    let logs = logs();
    tracing::trace!("capture self-check");
    let sim = support::sim().await;

    let mut seen = exercise(&sim, Protocol::Openai).await;
    seen.extend(exercise(&sim, Protocol::Anthropic).await);
    seen.push(("router error".to_owned(), exercise_router(&sim).await));

    // the canary really went out: the scan below looks at real traffic
    let log = sim.requests();
    let openai: Vec<_> = log.iter().filter(|r| r.protocol == Protocol::Openai).collect();
    let anthropic: Vec<_> = log.iter().filter(|r| r.protocol == Protocol::Anthropic).collect();
    assert!(openai.len() >= 10 && anthropic.len() >= 10, "{} + {} requests", openai.len(), anthropic.len());
    let bearer = format!("Bearer {CANARY}");
    assert!(openai.iter().all(|r| r.header("authorization") == Some(bearer.as_str())));
    assert!(anthropic.iter().all(|r| r.header("x-api-key") == Some(CANARY)));

    // the simulator's own views of its log are masked
    let listing = reqwest::get(format!("{}/_sim/requests", sim.url())).await.unwrap();
    assert_eq!(listing.status(), 200);
    let listing = listing.text().await.unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    assert_eq!(entries.len(), log.len(), "the listing is the log that carried the key");
    assert!(listing.contains("Bearer ***"), "{listing}");
    seen.push(("GET /_sim/requests".to_owned(), listing));
    seen.push(("RecordedRequest Debug".to_owned(), format!("{log:?}")));

    // the logs caught the traffic, at TRACE, with the redacted echoes in them
    let logs = logs.text();
    assert!(logs.contains("capture self-check"), "TRACE records are captured:\n{logs}");
    assert!(logs.contains("attempt failed: Incorrect API key provided: ***"), "the router logged the 401s:\n{logs}");
    seen.push(("captured logs".to_owned(), logs));

    let leaks: Vec<&str> =
        seen.iter().filter(|(_, text)| text.contains(CANARY)).map(|(what, _)| what.as_str()).collect();
    for (what, text) in seen.iter().filter(|(_, text)| text.contains(CANARY)) {
        eprintln!("---- {what} leaks the key:\n{text}");
    }
    assert!(leaks.is_empty(), "the key leaked through: {leaks:?}");
    // and not even a long piece of it
    let piece = &CANARY[3..20];
    assert!(seen.iter().all(|(_, text)| !text.contains(piece)), "a piece of the key leaked");
}
