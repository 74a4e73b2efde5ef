//! Every failure of DESIGN.md §2 that the wire can produce, sent through each adapter to the
//! simulator on loopback, non-streaming and streaming: one table per adapter, each row a scripted
//! fault and the classified error (or answer) it must come back as.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{Ipv4Addr, TcpListener};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use switchyard::duration::DurationStr;
use switchyard::sim::{Fault, FaultRule, SimServer};
use switchyard::{
    Anthropic, ApiKey, Call, CallTimeouts, ChatRequest, ErrorClass, OpenAi, Protocol, Provider, ProviderConfig,
    ProviderError, StreamCollector, StreamEvent,
};

const PROMPT: &str = "What is the weather like today?";
/// Generous limits for rows that are not about timeouts: a row that hangs fails instead of blocking.
const RELAXED: Duration = Duration::from_secs(3);
/// The short limit timeout rows trip.
const SHORT: Duration = Duration::from_millis(200);
/// What the simulator waits in slow-first-token and stall rows: far beyond [`SHORT`].
const LONG: Duration = Duration::from_secs(2);
/// No row may take longer than this, whatever the adapter does.
const ROW_LIMIT: Duration = Duration::from_secs(6);

// ---------------------------------------------------------------- the table

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Stream,
}

const BOTH: &[Mode] = &[Mode::Plain, Mode::Stream];
const PLAIN: &[Mode] = &[Mode::Plain];
const STREAM: &[Mode] = &[Mode::Stream];

/// The `retry_after` a row expects.
#[derive(Debug, Clone, Copy)]
enum Wait {
    None,
    Exactly(Duration),
    /// An HTTP-date: the error must hold the time left until then (±50 ms).
    Until(SystemTime),
}

/// Whether the error must carry the request id the simulator answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rid {
    Yes,
    No,
    /// Only streams get their response headers before this failure.
    StreamOnly,
}

#[derive(Debug, Clone)]
struct Failure {
    class: ErrorClass,
    status: Option<u16>,
    retry_after: Wait,
    should_retry: Option<bool>,
    /// Lowercase substring of the error's message.
    contains: &'static str,
    /// Streams: words of the answer received before the failure (the checkpoint).
    partial_tokens: Option<usize>,
    request_id: Rid,
}

#[derive(Debug, Clone)]
enum Expect {
    /// A complete answer, within this long when given.
    Answer {
        within: Option<Duration>,
    },
    Fail(Failure),
}

#[derive(Debug, Clone)]
struct Row {
    name: &'static str,
    rule: Option<FaultRule>,
    /// Send to a closed port instead of the simulator.
    refused: bool,
    model: String,
    prompt: String,
    modes: &'static [Mode],
    timeouts: CallTimeouts,
    /// The call's deadline, this long after it starts.
    deadline_in: Option<Duration>,
    expect: Expect,
}

impl Row {
    fn new(protocol: Protocol, name: &'static str, fault: Option<Fault>) -> Row {
        Row {
            name,
            rule: fault.map(|f| FaultRule::new(protocol, f)),
            refused: false,
            model: default_model(protocol).to_owned(),
            prompt: PROMPT.to_owned(),
            modes: BOTH,
            timeouts: CallTimeouts { first_token: Some(RELAXED), idle: Some(RELAXED), deadline: None },
            deadline_in: None,
            expect: Expect::Answer { within: None },
        }
    }

    fn fails(mut self, class: ErrorClass, status: Option<u16>) -> Row {
        self.expect = Expect::Fail(Failure {
            class,
            status,
            retry_after: Wait::None,
            should_retry: None,
            contains: "",
            partial_tokens: None,
            request_id: Rid::Yes,
        });
        self
    }

    fn failure(&mut self) -> &mut Failure {
        match &mut self.expect {
            Expect::Fail(f) => f,
            Expect::Answer { .. } => panic!("{}: call fails() first", self.name),
        }
    }

    fn retry_after(mut self, wait: Wait) -> Row {
        self.failure().retry_after = wait;
        self
    }

    fn should_retry(mut self, value: bool) -> Row {
        self.failure().should_retry = Some(value);
        self
    }

    fn contains(mut self, text: &'static str) -> Row {
        self.failure().contains = text;
        self
    }

    fn partial(mut self, tokens: usize) -> Row {
        self.failure().partial_tokens = Some(tokens);
        self
    }

    fn request_id(mut self, rid: Rid) -> Row {
        self.failure().request_id = rid;
        self
    }

    fn within(mut self, limit: Duration) -> Row {
        self.expect = Expect::Answer { within: Some(limit) };
        self
    }

    fn modes(mut self, modes: &'static [Mode]) -> Row {
        self.modes = modes;
        self
    }

    fn first_token(mut self, limit: Duration) -> Row {
        self.timeouts.first_token = Some(limit);
        self
    }

    fn idle(mut self, limit: Duration) -> Row {
        self.timeouts.idle = Some(limit);
        self
    }

    fn deadline_in(mut self, limit: Duration) -> Row {
        self.deadline_in = Some(limit);
        self
    }

    fn model(mut self, model: &str) -> Row {
        self.model = model.to_owned();
        self
    }

    fn prompt(mut self, prompt: String) -> Row {
        self.prompt = prompt;
        self
    }

    fn refused(mut self) -> Row {
        self.refused = true;
        self
    }
}

fn default_model(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Openai => "gpt-4o-mini",
        _ => "claude-sonnet-4-5",
    }
}

fn status(status: u16, f: impl FnOnce(&mut StatusFields)) -> Fault {
    let mut fields = StatusFields::default();
    f(&mut fields);
    Fault::Status {
        status,
        error_type: fields.error_type.map(str::to_owned),
        code: fields.code.map(str::to_owned),
        message: fields.message.map(str::to_owned),
        retry_after: fields.retry_after,
        retry_after_ms: fields.retry_after_ms.map(str::to_owned),
        should_retry: fields.should_retry,
    }
}

#[derive(Default)]
struct StatusFields {
    error_type: Option<&'static str>,
    code: Option<&'static str>,
    message: Option<&'static str>,
    retry_after: Option<String>,
    retry_after_ms: Option<&'static str>,
    should_retry: Option<bool>,
}

fn raw(status: u16, content_type: &str, body: &str) -> Fault {
    Fault::RawBody { status, content_type: content_type.to_owned(), body: body.to_owned() }
}

fn delay(d: Duration) -> DurationStr {
    DurationStr::new(d)
}

const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// The rows for one adapter. `when` is a whole second about 30 s ahead, for the HTTP-date row.
fn rows(p: Protocol, when: SystemTime) -> Vec<Row> {
    use ErrorClass::*;
    let openai = p == Protocol::Openai;
    let by = |o: &'static str, a: &'static str| if openai { o } else { a };
    let row = |name, fault| Row::new(p, name, Some(fault));
    let date = httpdate::fmt_http_date(when);
    let tiny = format!("{}-tiny", default_model(p));
    let (quota_name, quota) = if openai {
        ("429 insufficient_quota", Fault::typed(429, "insufficient_quota", Some("insufficient_quota")))
    } else {
        ("402 billing_error", Fault::status(402))
    };
    let content_filter = if openai {
        status(400, |s| {
            s.error_type = Some("invalid_request_error");
            s.code = Some("content_policy_violation");
            s.message = Some("Your request was rejected as a result of our safety system.");
        })
    } else {
        status(400, |s| {
            s.error_type = Some("invalid_request_error");
            s.message = Some("Output blocked by content filtering policy");
        })
    };
    let wrong_types = by(
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":"yesterday","model":7,"choices":"none"}"#,
        r#"{"id":"msg_1","type":"message","role":"assistant","model":7,"content":"hi","stop_reason":3,"usage":"lots"}"#,
    );
    let truncated = by(
        r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hel"#,
        r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Hel"#,
    );
    let stream_error_class = if openai { ServerError } else { Overloaded };

    vec![
        // the baseline: the table's plumbing works
        Row::new(p, "no fault", None),
        row("latency below the limits", Fault::Latency { delay: delay(Duration::from_millis(50)) }),
        // rate limits and their waits
        row("429 retry-after seconds", Fault::status_retry_after(429, "7"))
            .fails(RateLimited, Some(429))
            .retry_after(Wait::Exactly(Duration::from_secs(7)))
            .contains("rate limit"),
        row(
            "429 retry-after-ms wins over retry-after",
            status(429, |s| {
                s.retry_after_ms = Some("1500");
                s.retry_after = Some("9".into());
            }),
        )
        .fails(RateLimited, Some(429))
        .retry_after(Wait::Exactly(Duration::from_millis(1500))),
        row("429 retry-after HTTP-date", status(429, |s| s.retry_after = Some(date)))
            .fails(RateLimited, Some(429))
            .retry_after(Wait::Until(when)),
        row(quota_name, quota)
            .fails(QuotaExhausted, Some(if openai { 429 } else { 402 }))
            .contains(by("quota", "credit")),
        // the provider is down
        row("529 overloaded", Fault::status(529)).fails(Overloaded, Some(529)).contains(by("", "overloaded")),
        row("503", Fault::status(503)).fails(Overloaded, Some(503)),
        row("500", Fault::status(500)).fails(ServerError, Some(500)).contains(by("server had an error", "internal")),
        row("502", Fault::status(502)).fails(ServerError, Some(502)),
        row("504", Fault::status(504)).fails(Timeout, Some(504)),
        row("408", Fault::status(408)).fails(Timeout, Some(408)),
        // the request or the key is wrong
        row("401", Fault::status(401)).fails(Authentication, Some(401)).contains(by("incorrect api key", "x-api-key")),
        row("403", Fault::status(403)).fails(PermissionDenied, Some(403)),
        row("404", Fault::status(404)).fails(NotFound, Some(404)),
        Row::new(p, "unknown model", None).model("missing-model").fails(NotFound, Some(404)).contains("missing-model"),
        Row::new(p, "context overflow on a -tiny model", None)
            .model(&tiny)
            .prompt("word ".repeat(80))
            .fails(ContextLengthExceeded, Some(400))
            .contains(by("maximum context length", "prompt is too long")),
        row("400 content policy", content_filter).fails(ContentFiltered, Some(400)),
        row("400 other", Fault::status(400)).fails(InvalidRequest, Some(400)),
        row("422", Fault::status(422)).fails(InvalidRequest, Some(422)),
        row("413", Fault::status(413)).fails(RequestTooLarge, Some(413)),
        // x-should-retry overrides the class either way
        row("500 x-should-retry false", status(500, |s| s.should_retry = Some(false)))
            .fails(ServerError, Some(500))
            .should_retry(false),
        row("400 x-should-retry true", status(400, |s| s.should_retry = Some(true)))
            .fails(InvalidRequest, Some(400))
            .should_retry(true),
        // the connection
        row("reset before headers", Fault::Reset).fails(Connection, None).request_id(Rid::No),
        Row::new(p, "connection refused", None).refused().fails(Connection, None).request_id(Rid::No),
        // client-side limits
        row("hang", Fault::Hang).first_token(SHORT).fails(Timeout, None).contains("first-token").request_id(Rid::No),
        row("slow first token", Fault::SlowFirstToken { delay: delay(LONG) })
            .first_token(SHORT)
            .fails(Timeout, None)
            .contains("first-token")
            .request_id(Rid::StreamOnly),
        row("stall", Fault::Stall { after_tokens: 2, duration: delay(LONG) })
            .modes(STREAM)
            .idle(SHORT)
            .fails(Timeout, None)
            .contains("idle")
            .partial(2),
        // the caller's deadline for the whole call, under far looser first-token and idle limits
        row("hang past the deadline", Fault::Hang)
            .deadline_in(SHORT)
            .fails(Timeout, None)
            .contains("deadline")
            .request_id(Rid::No),
        row("slow first token past the deadline", Fault::SlowFirstToken { delay: delay(LONG) })
            .deadline_in(SHORT)
            .fails(Timeout, None)
            .contains("deadline")
            .request_id(Rid::StreamOnly),
        row("stall past the deadline", Fault::Stall { after_tokens: 2, duration: delay(LONG) })
            .modes(STREAM)
            .deadline_in(SHORT)
            .fails(Timeout, None)
            .contains("deadline")
            .partial(2),
        // streams that go wrong after the 200
        row("cut", Fault::Cut { after_tokens: 3 }).modes(STREAM).fails(StreamInterrupted, None).partial(3),
        row("malformed chunk", Fault::MalformedChunk { after_tokens: 2 })
            .modes(STREAM)
            .fails(MalformedResponse, Some(200))
            .partial(2),
        row("in-stream error, default type", Fault::StreamError { after_tokens: 3, error_type: None })
            .modes(STREAM)
            .fails(stream_error_class, Some(200))
            .contains(by("server had an error", "overloaded"))
            .partial(3),
        row(
            "in-stream error, the other type",
            Fault::StreamError { after_tokens: 1, error_type: Some(by("overloaded_error", "api_error").into()) },
        )
        .modes(STREAM)
        .fails(if openai { Overloaded } else { ServerError }, Some(200))
        .partial(1),
        row("no [DONE] / held open after message_stop", Fault::NoDone).modes(STREAM).within(Duration::from_secs(1)),
        // bodies that are not what they should be
        row("HTML 502 from a proxy", raw(502, "text/html", HTML_502))
            .fails(ServerError, Some(502))
            .contains("502 bad gateway")
            .request_id(Rid::No),
        row("truncated JSON with 200", raw(200, "application/json", truncated))
            .modes(PLAIN)
            .fails(MalformedResponse, Some(200))
            .request_id(Rid::No),
        row("wrong types with 200", raw(200, "application/json", wrong_types))
            .modes(PLAIN)
            .fails(MalformedResponse, Some(200))
            .request_id(Rid::No),
        row("empty body 200", raw(200, "application/json", ""))
            .modes(PLAIN)
            .fails(MalformedResponse, Some(200))
            .request_id(Rid::No),
        row("empty event stream 200", raw(200, "text/event-stream", ""))
            .modes(STREAM)
            .fails(StreamInterrupted, Some(200))
            .partial(0)
            .request_id(Rid::No),
        row("empty body 500", raw(500, "application/json", "")).fails(ServerError, Some(500)).request_id(Rid::No),
    ]
}

// ---------------------------------------------------------------- running a row

struct Harness {
    protocol: Protocol,
    sim: SimServer,
    provider: Arc<dyn Provider>,
    /// The same adapter pointed at a port nobody listens on.
    refused: Arc<dyn Provider>,
}

async fn harness(protocol: Protocol) -> Harness {
    let sim = support::sim().await;
    let closed = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let adapter = |base: String| -> Arc<dyn Provider> {
        let config = ProviderConfig::new(protocol.as_str(), base)
            .api_key(ApiKey::new("sk-fault-table-0123456789"))
            .connect_timeout(Duration::from_secs(1));
        match protocol {
            Protocol::Openai => Arc::new(OpenAi::new(config).unwrap()),
            _ => Arc::new(Anthropic::new(config).unwrap()),
        }
    };
    let (base, closed_base) = match protocol {
        Protocol::Openai => (sim.openai_base_url(), format!("http://127.0.0.1:{closed}/v1")),
        _ => (sim.anthropic_base_url(), format!("http://127.0.0.1:{closed}/anthropic")),
    };
    Harness { protocol, provider: adapter(base), refused: adapter(closed_base), sim }
}

/// What one call came back with.
#[derive(Debug)]
struct Outcome {
    result: Result<Answer, ProviderError>,
    /// Streams: the text deltas yielded before the end or the error.
    streamed: String,
    elapsed: Duration,
}

#[derive(Debug)]
struct Answer {
    text: String,
    request_id: Option<String>,
}

async fn call(
    provider: Arc<dyn Provider>,
    model: String,
    request: ChatRequest,
    timeouts: CallTimeouts,
    deadline_in: Option<Duration>,
    mode: Mode,
) -> Outcome {
    let start = Instant::now();
    let deadline = deadline_in.map(|d| tokio::time::Instant::now() + d);
    let call = Call::new(&model, &request).timeouts(CallTimeouts { deadline, ..timeouts });
    let (result, streamed) = match mode {
        Mode::Plain => {
            let result = provider.chat(call).await.map(|r| Answer { text: r.text, request_id: r.request_id });
            (result, String::new())
        }
        Mode::Stream => match provider.chat_stream(call).await {
            Err(e) => (Err(e), String::new()),
            Ok(stream) => consume(stream).await,
        },
    };
    Outcome { result, streamed, elapsed: start.elapsed() }
}

/// Reads a stream to its end, holding the adapter to the stream contract: one `Finish`, last; or one
/// error, last.
async fn consume(mut stream: switchyard::ChatStream) -> (Result<Answer, ProviderError>, String) {
    let mut collector = StreamCollector::new();
    while let Some(item) = stream.next().await {
        assert!(!collector.is_finished(), "an item after Finish: {item:?}");
        match item {
            Ok(event) => {
                assert!(!matches!(event, StreamEvent::Restart { .. }), "adapters never restart");
                collector.push(&event);
            }
            Err(e) => {
                assert!(stream.next().await.is_none(), "the stream must end after its error");
                return (Err(e), collector.text().to_owned());
            }
        }
    }
    let streamed = collector.text().to_owned();
    let text = collector.finish("-", "-", None).expect("a stream that ends without an error must end with Finish").text;
    (Ok(Answer { text, request_id: None }), streamed)
}

/// The first `n` words of the simulated model's answer: what a stream had delivered after `n` tokens.
fn answer_prefix(model: &str, prompt: &str, n: usize) -> String {
    let full = format!("Hello from {model}. You said: {prompt}");
    full.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

/// Runs one row in each of its modes; returns the labels of the modes that failed (their panic
/// messages are already on stderr), so one run reports every broken row.
async fn run(h: &Harness, row: &Row) -> Vec<String> {
    let mut failed = Vec::new();
    for &mode in row.modes {
        let label = format!("{} {:?} `{}`", h.protocol.as_str(), mode, row.name);
        h.sim.clear_faults();
        h.sim.clear_requests();
        if let Some(rule) = &row.rule {
            h.sim.add_fault(rule.clone());
        }
        let provider = if row.refused { h.refused.clone() } else { h.provider.clone() };
        let request = ChatRequest::user(row.prompt.clone()).max_tokens(64);
        // its own task, so a panic in the adapter is reported against the row
        let task = tokio::spawn(call(provider, row.model.clone(), request, row.timeouts, row.deadline_in, mode));
        let outcome = match tokio::time::timeout(ROW_LIMIT, task).await {
            Err(_) => panic!("{label}: no outcome within {ROW_LIMIT:?}"),
            Ok(Err(e)) => panic!("{label}: the call panicked: {e}"),
            Ok(Ok(outcome)) => outcome,
        };
        let checked = std::panic::catch_unwind(AssertUnwindSafe(|| check(h, row, mode, &label, &outcome)));
        if checked.is_err() {
            failed.push(label);
        }
    }
    failed
}

fn check(h: &Harness, row: &Row, mode: Mode, label: &str, outcome: &Outcome) {
    let log = h.sim.requests();
    if row.refused {
        assert!(log.is_empty(), "{label}: nothing may reach the simulator");
    } else {
        assert_eq!(log.len(), 1, "{label}: exactly one request, no retries inside the adapter");
        // the fault really applied: a row cannot pass because its fault did not fire
        let applied = row.rule.as_ref().map(|r| r.fault.kind().to_owned());
        assert_eq!(log[0].fault, applied, "{label}");
        assert_eq!(log[0].stream, mode == Mode::Stream, "{label}");
    }
    let sim_request_id = log.first().map(|r| r.request_id.clone());
    match (&row.expect, &outcome.result) {
        (Expect::Answer { within }, Ok(answer)) => {
            let expected = answer_prefix(&row.model, &row.prompt, usize::MAX);
            assert_eq!(answer.text, expected, "{label}");
            if mode == Mode::Plain {
                assert_eq!(answer.request_id, sim_request_id, "{label}");
            } else {
                assert_eq!(outcome.streamed, expected, "{label}");
            }
            if let Some(limit) = within {
                assert!(outcome.elapsed < *limit, "{label}: took {:?}, limit {limit:?}", outcome.elapsed);
            }
        }
        (Expect::Answer { .. }, Err(e)) => panic!("{label}: expected an answer, got {e:?}"),
        (Expect::Fail(f), Ok(answer)) => panic!("{label}: expected {}, got an answer {answer:?}", f.class),
        (Expect::Fail(f), Err(e)) => {
            assert_eq!(e.provider(), h.protocol.as_str(), "{label}");
            if let Some(deadline) = row.deadline_in {
                // ended by the deadline, long before the fault's own delay would have
                assert!(outcome.elapsed >= deadline, "{label}: ended at {:?}, before its deadline", outcome.elapsed);
                assert!(outcome.elapsed < LONG, "{label}: ended at {:?}, deadline {deadline:?}", outcome.elapsed);
            }
            check_error(f, e, mode, label, &row.model, &row.prompt, outcome, sim_request_id);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_error(
    f: &Failure,
    e: &ProviderError,
    mode: Mode,
    label: &str,
    model: &str,
    prompt: &str,
    outcome: &Outcome,
    sim_request_id: Option<String>,
) {
    let label = format!("{label}: {e:?}");
    assert_eq!(e.class(), f.class, "{label}");
    assert_eq!(e.status(), f.status, "{label}");
    assert!(!e.message().is_empty() && !e.message().contains('\n'), "{label}");
    assert!(e.message().to_lowercase().contains(f.contains), "{label}: message lacks {:?}", f.contains);
    assert_eq!(e.should_retry(), f.should_retry, "{label}");
    match f.retry_after {
        Wait::None => assert_eq!(e.retry_after(), None, "{label}"),
        Wait::Exactly(d) => assert_eq!(e.retry_after(), Some(d), "{label}"),
        Wait::Until(when) => {
            let left = when.duration_since(SystemTime::now()).unwrap().as_secs_f64();
            let got = e.retry_after().expect("a retry-after").as_secs_f64();
            assert!((got - left).abs() <= 0.05, "{label}: retry_after {got}s, {left}s left until the date");
        }
    }
    let wants_id = match f.request_id {
        Rid::Yes => true,
        Rid::No => false,
        Rid::StreamOnly => mode == Mode::Stream,
    };
    let expected_id = if wants_id { sim_request_id } else { None };
    assert_eq!(e.request_id(), expected_id.as_deref(), "{label}");
    match f.partial_tokens {
        Some(n) => {
            let expected = answer_prefix(model, prompt, n);
            let partial = e.partial().expect("a checkpoint");
            assert_eq!(partial.text, expected, "{label}");
            assert_eq!(outcome.streamed, expected, "{label}: the stream yielded other text than its checkpoint");
        }
        None => {
            assert!(e.partial().is_none_or(|p| p.is_empty()), "{label}");
            assert!(outcome.streamed.is_empty(), "{label}");
        }
    }
}

async fn run_table(protocol: Protocol) {
    let h = harness(protocol).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let when = UNIX_EPOCH + Duration::from_secs(now + 31);
    let rows = rows(protocol, when);
    let mut failed = Vec::new();
    for row in &rows {
        failed.extend(run(&h, row).await);
    }
    assert!(failed.is_empty(), "{} failing rows:\n{}", failed.len(), failed.join("\n"));
    // every class the wire can produce was seen at least once
    let seen: std::collections::BTreeSet<ErrorClass> = rows
        .iter()
        .filter_map(|r| match &r.expect {
            Expect::Fail(f) => Some(f.class),
            Expect::Answer { .. } => None,
        })
        .collect();
    // (`budget_exhausted` is the router's own: no provider answers it)
    let wire_classes: Vec<ErrorClass> =
        ErrorClass::ALL.into_iter().filter(|c| *c != ErrorClass::BudgetExhausted).collect();
    assert_eq!(seen.len(), wire_classes.len(), "classes never produced: {:?}", {
        wire_classes.iter().filter(|c| !seen.contains(c)).collect::<Vec<_>>()
    });
}

#[tokio::test]
async fn openai_fault_table() {
    run_table(Protocol::Openai).await;
}

#[tokio::test]
async fn anthropic_fault_table() {
    run_table(Protocol::Anthropic).await;
}
