//! A drill against a running gateway (`switchyard drill FILE --against URL`): the phases' load goes
//! to the gateway's OpenAI-compatible endpoint, the phases' faults are injected through its admin
//! API (`POST /admin/faults`, each expiring by itself a while after its phase, should the drill
//! die), and what the router did comes from its admin stream (`/admin/events`): breaker
//! transitions, failovers, attempts, and the breakers' states at the end of each phase. The
//! report, and its charts, are those of any drill.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::file::{Drill, Operation};
use super::report::{DrillReport, PhaseReport};
use super::runner::{Breakers, DrillError, Progress, Record, Send1, load, ms_since, phase_report};
use crate::error::ErrorClass;
use crate::policy::LiveFault;
use crate::router::RouterEvent;
use crate::sync::lock;
use crate::wire::sse::SseDecoder;

/// How long an injected fault outlives its phase if the drill cannot lift it.
const FAULT_SLACK: Duration = Duration::from_secs(30);

/// What the admin stream told, as it arrived.
#[derive(Default)]
struct Observed {
    events: Vec<(f64, RouterEvent)>,
    /// The last snapshot's routes and health.
    snapshot: Option<Value>,
    /// Why the stream ended, if it did.
    ended: Option<String>,
    /// Events the gateway said this reader missed (it fell behind).
    missed: u64,
}

/// Aborts the admin stream's reader when the drill ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A gateway under drill.
#[derive(Clone)]
struct Gateway {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Gateway {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }
}

/// A name as the admin stream writes it (`open`, `half_open`, `error`, ...), read back.
fn named<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    T::deserialize(v).ok()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn millis(v: &Value) -> Duration {
    Duration::from_millis(v.as_u64().unwrap_or(0))
}

/// The router events a drill reads, from their JSON on the admin stream.
fn event_of(v: &Value) -> Option<RouterEvent> {
    let class = |v: &Value| v.as_str().and_then(|c| c.parse::<ErrorClass>().ok());
    match v["event"].as_str()? {
        "breaker" => Some(RouterEvent::Breaker {
            provider: text(&v["provider"]),
            model: v["model"].as_str().map(str::to_owned),
            from: named(&v["from"])?,
            to: named(&v["to"])?,
            cooldown: v["cooldown_ms"].as_u64().map(Duration::from_millis),
        }),
        "failover" => Some(RouterEvent::Failover {
            route: text(&v["route"]),
            from_provider: text(&v["from_provider"]),
            from_model: text(&v["from_model"]),
            class: class(&v["class"])?,
        }),
        "resume" => Some(RouterEvent::Resume {
            route: text(&v["route"]),
            provider: text(&v["provider"]),
            model: text(&v["model"]),
            strategy: named(&v["strategy"]),
            carried_chars: v["carried_chars"].as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or(0),
        }),
        "hedge" => Some(RouterEvent::Hedge {
            route: text(&v["route"]),
            provider: text(&v["provider"]),
            model: text(&v["model"]),
            waited: millis(&v["waited_ms"]),
        }),
        "attempt" => Some(RouterEvent::Attempt {
            route: text(&v["route"]),
            operation: "chat",
            provider: text(&v["provider"]),
            model: text(&v["model"]),
            outcome: named(&v["outcome"])?,
            class: class(&v["class"]),
            status: v["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
            elapsed: millis(&v["elapsed_ms"]),
            skip_reason: None,
            probe: v["probe"].as_bool().unwrap_or(false),
            hedge: v["hedge"].as_bool().unwrap_or(false),
            cost_usd: v["cost_usd"].as_f64(),
        }),
        _ => None,
    }
}

/// Reads the admin stream into `observed` until it ends, keeping the events of `route` (and the
/// breakers', which have none); `ready` once it is open.
async fn watch(
    gateway: Gateway,
    route: String,
    started: Instant,
    observed: Arc<Mutex<Observed>>,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
) {
    let response = gateway.request(reqwest::Method::GET, "/admin/events?attempts=true").send().await;
    let mut response = match response {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            let _ = ready.send(Err(format!("{}/admin/events answered HTTP {}", gateway.base, r.status().as_u16())));
            return;
        }
        Err(e) => {
            let _ = ready.send(Err(format!("cannot read {}/admin/events: {e}", gateway.base)));
            return;
        }
    };
    let mut ready = Some(ready);
    let mut decoder = SseDecoder::new();
    let why = loop {
        let chunk = match response.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break "the admin stream ended".to_owned(),
            Err(e) => break format!("the admin stream failed: {e}"),
        };
        for event in decoder.feed(&chunk) {
            let Ok(value) = serde_json::from_str::<Value>(&event.data) else { continue };
            let mut seen = lock(&observed);
            match event.event.as_str() {
                "snapshot" => {
                    seen.snapshot = Some(value);
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                "router" => {
                    let ours = value.get("route").is_none_or(|r| r == route.as_str());
                    if let Some(e) = event_of(&value).filter(|_| ours) {
                        seen.events.push((ms_since(started), e));
                    }
                }
                "lagged" => seen.missed += value["missed"].as_u64().unwrap_or(1),
                _ => {}
            }
        }
    };
    lock(&observed).ended = Some(why);
}

/// The breakers' states in a snapshot of the admin stream.
fn breakers_in(snapshot: &Value) -> Breakers {
    let health = &snapshot["health"];
    let providers = health["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((text(&p["provider"]), None, named(&p["breaker"])?)));
    let targets = health["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((text(&t["provider"]), Some(text(&t["model"])), named(&t["breaker"])?)));
    providers.chain(targets).collect()
}

/// A fault as the admin API takes it: a `[[drill.faults]]` entry, expiring after `lasts`.
fn fault_body(f: &LiveFault, lasts: Duration) -> Value {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let mut body = json!({
        "provider": f.provider,
        "inject": f.inject.to_string(),
        "rate": f.rate,
        "duration": ms(f.duration.map_or(lasts, |d| d.min(lasts))),
    });
    let extra = [
        ("model", f.model.clone().map(Value::from)),
        ("count", f.count.map(Value::from)),
        ("retry_after", f.retry_after.map(|d| Value::from(ms(d)))),
        ("delay", f.delay.map(|d| Value::from(ms(d)))),
        ("after_tokens", f.after_tokens.map(Value::from)),
    ];
    for (key, value) in extra {
        if let Some(v) = value {
            body[key] = v;
        }
    }
    body
}

/// One chat request through the gateway, as the OpenAI SDKs send it.
async fn one(
    gateway: Gateway,
    route: String,
    prompt: String,
    max_tokens: Option<u32>,
    stream: bool,
    started: Instant,
) -> Record {
    let t0 = Instant::now();
    let mut body = json!({"model": route, "messages": [{"role": "user", "content": prompt}], "stream": stream});
    if let Some(n) = max_tokens {
        body["max_completion_tokens"] = n.into();
    }
    let mut record = Record {
        ended_ms: 0.0,
        latency: Duration::ZERO,
        ok: false,
        served: None,
        class: None,
        attempts: Vec::new(),
        attempt_count: 1,
        billed_usd: 0.0,
        resumed: false,
    };
    match gateway.request(reqwest::Method::POST, "/v1/chat/completions").json(&body).send().await {
        Ok(response) => {
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            record.attempt_count = header("x-switchyard-attempts").and_then(|n| n.parse().ok()).unwrap_or(1);
            record.billed_usd = header("x-switchyard-cost-usd").and_then(|c| c.parse().ok()).unwrap_or(0.0);
            let served = header("x-switchyard-provider").zip(header("x-switchyard-model"));
            let status = response.status();
            let bytes = read_all(response).await;
            if stream {
                // a stream's cost comes at its end, in a comment
                record.billed_usd = streamed_cost(&bytes).unwrap_or(record.billed_usd);
            }
            if status.is_success() {
                let complete = !stream || bytes.windows(12).any(|w| w == b"data: [DONE]");
                let failed_inside = stream && bytes.windows(9).any(|w| w == b"\"error\":{");
                record.ok = complete && !failed_inside;
                if record.ok {
                    record.served = served;
                } else {
                    record.class = Some(ErrorClass::StreamInterrupted);
                }
            } else {
                let error: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let switchyard = &error["switchyard"];
                record.class =
                    switchyard["class"].as_str().and_then(|c| c.parse().ok()).or(Some(ErrorClass::ServerError));
                if let Some(n) = switchyard["attempts"].as_array().map(Vec::len) {
                    record.attempt_count = n.max(1);
                }
            }
        }
        Err(_) => record.class = Some(ErrorClass::Connection),
    }
    record.ended_ms = ms_since(started);
    record.latency = t0.elapsed();
    record
}

/// What a streamed answer says it cost: its `: x-switchyard-cost-usd: N` comment.
fn streamed_cost(body: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(body).ok()?;
    text.lines().find_map(|l| l.strip_prefix(": x-switchyard-cost-usd: ")).and_then(|c| c.trim().parse().ok())
}

/// The whole body (a drill's answers are small; a stream's is read to its end).
async fn read_all(response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        body.extend_from_slice(&chunk);
    }
    body
}

/// Runs `drill` against the gateway at `url` (its API and admin endpoints on that address), with
/// `key` for both when it has client keys (an admin key).
pub async fn run_against(
    drill: &Drill,
    url: &str,
    key: Option<String>,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<DrillReport, DrillError> {
    if drill.load.operation != Operation::Chat {
        return Err(DrillError::Gateway("a drill against a gateway sends chat requests only".into()));
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| DrillError::Gateway(e.to_string()))?;
    let gateway = Gateway { http, base: url.trim_end_matches('/').to_owned(), key };
    let started = Instant::now();
    let observed: Arc<Mutex<Observed>> = Arc::default();
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    let _watcher =
        AbortOnDrop(tokio::spawn(watch(gateway.clone(), drill.route.clone(), started, observed.clone(), ready)));
    match tokio::time::timeout(Duration::from_secs(10), is_ready).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(why))) => return Err(DrillError::Gateway(why)),
        _ => return Err(DrillError::Gateway(format!("{}/admin/events sent no snapshot", gateway.base))),
    }
    // the route must be the gateway's
    let providers = {
        let seen = lock(&observed);
        let routes = seen.snapshot.as_ref().map(|s| s["routes"].clone()).unwrap_or(Value::Null);
        let route = routes.as_array().into_iter().flatten().find(|r| r["name"] == drill.route.as_str());
        let Some(route) = route else {
            return Err(DrillError::Gateway(format!("the gateway has no route `{}`", drill.route)));
        };
        let mut providers: Vec<String> = Vec::new();
        for t in route["targets"].as_array().into_iter().flatten() {
            let p = text(&t["provider"]);
            if !providers.contains(&p) {
                providers.push(p);
            }
        }
        providers
    };

    let send: Box<Send1> = {
        let (gateway, route, prompt, max_tokens) =
            (gateway.clone(), drill.route.clone(), drill.load.prompt.clone(), drill.load.max_tokens);
        Box::new(move |stream| {
            Box::pin(one(gateway.clone(), route.clone(), prompt.clone(), max_tokens, stream, started))
        })
    };
    let mut phases: Vec<PhaseReport> = Vec::new();
    for (index, phase) in drill.phases.iter().enumerate() {
        progress(Progress::PhaseStarted { index, total: drill.phases.len(), phase });
        let planned = if drill.load.rate > 0.0 {
            Duration::from_secs_f64(phase.requests as f64 / drill.load.rate)
        } else {
            Duration::ZERO
        };
        let mut injected = Vec::new();
        for f in &phase.faults {
            let r = gateway
                .request(reqwest::Method::POST, "/admin/faults")
                .json(&fault_body(f, planned + FAULT_SLACK))
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => {
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    injected.extend(v["id"].as_u64());
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let why = r.text().await.unwrap_or_default();
                    lift(&gateway, &injected).await;
                    return Err(DrillError::Gateway(format!(
                        "the gateway refused the fault on {} (HTTP {status}): {why}",
                        f.provider
                    )));
                }
                Err(e) => {
                    lift(&gateway, &injected).await;
                    return Err(DrillError::Gateway(format!("cannot inject the fault on {}: {e}", f.provider)));
                }
            }
        }
        let phase_start = ms_since(started);
        let records = load(&*send, drill, phase, progress).await;
        let phase_end = ms_since(started);
        // the breakers "by the end of the phase": the next snapshot, before the faults are lifted
        let taken_at = |seen: &Observed| seen.snapshot.as_ref().and_then(|s| s["now"].as_u64()).unwrap_or(0);
        let before = taken_at(&lock(&observed));
        let deadline = Instant::now() + Duration::from_secs(3);
        let breakers = loop {
            {
                let seen = lock(&observed);
                if taken_at(&seen) > before || seen.ended.is_some() || Instant::now() >= deadline {
                    break seen.snapshot.as_ref().map(breakers_in).unwrap_or_default();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        lift(&gateway, &injected).await;
        let (events, missed, ended) = {
            let seen = lock(&observed);
            (seen.events.clone(), seen.missed, seen.ended.clone())
        };
        // a report from a partial account would be wrong, and could pass
        if let Some(why) = ended {
            return Err(DrillError::Gateway(format!("{why} during phase `{}`", phase.name)));
        }
        if missed > 0 {
            return Err(DrillError::Gateway(format!(
                "the admin stream fell behind and lost {missed} events during phase `{}`",
                phase.name
            )));
        }
        let report = phase_report(phase, &records, &breakers, &events, phase_start, phase_end);
        progress(Progress::PhaseFinished(&report));
        phases.push(report);
    }
    let mode = format!("gateway {}", gateway.base);
    Ok(DrillReport::of_phases(drill, mode, providers, started.elapsed().as_millis() as u64, phases))
}

async fn lift(gateway: &Gateway, ids: &[u64]) {
    for id in ids {
        let _ = gateway.request(reqwest::Method::DELETE, &format!("/admin/faults/{id}")).send().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::router::{AttemptOutcome, BreakerState};

    #[test]
    fn a_streams_cost_is_read_from_its_closing_comment() {
        let body = b"data: {\"choices\":[]}\n\n: x-switchyard-cost-usd: 0.000123\n\ndata: [DONE]\n\n";
        assert_eq!(streamed_cost(body), Some(0.000_123));
        assert_eq!(streamed_cost(b"data: [DONE]\n\n"), None);
        assert_eq!(streamed_cost(b": x-switchyard-cost-usd: nonsense\n\n"), None);
    }

    /// What the admin stream sends is what the drill reads back.
    #[test]
    fn router_events_round_trip_through_their_json() {
        let events = [
            RouterEvent::Breaker {
                provider: "openai".into(),
                model: Some("gpt-4o-mini".into()),
                from: BreakerState::Closed,
                to: BreakerState::Open,
                cooldown: Some(Duration::from_millis(500)),
            },
            RouterEvent::Failover {
                route: "chat".into(),
                from_provider: "openai".into(),
                from_model: "gpt-4o-mini".into(),
                class: ErrorClass::ServerError,
            },
            RouterEvent::Attempt {
                route: "chat".into(),
                operation: "chat",
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
                outcome: AttemptOutcome::Error,
                class: Some(ErrorClass::Overloaded),
                status: Some(529),
                elapsed: Duration::from_millis(12),
                skip_reason: None,
                probe: true,
                hedge: true,
                cost_usd: Some(0.000_25),
            },
        ];
        let more = [
            RouterEvent::Resume {
                route: "chat".into(),
                provider: "anthropic".into(),
                model: "claude-sonnet-4-5".into(),
                strategy: Some(crate::policy::Resume::Prefill),
                carried_chars: 42,
            },
            RouterEvent::Hedge {
                route: "chat".into(),
                provider: "anthropic".into(),
                model: "claude-sonnet-4-5".into(),
                waited: Duration::from_millis(2000),
            },
        ];
        for e in events.into_iter().chain(more) {
            let json = serde_json::to_value(&e).unwrap();
            assert_eq!(event_of(&json), Some(e));
        }
        assert_eq!(event_of(&json!({"event": "policy_rejected", "error": "x"})), None);
    }

    #[test]
    fn a_fault_expires_by_itself_after_its_phase() {
        let fault = LiveFault::error("openai", ErrorClass::RateLimited).rate(0.5);
        let body = fault_body(&fault, Duration::from_secs(32));
        assert_eq!(body["inject"], "rate_limited");
        assert_eq!(body["duration"], "32000ms");
        assert_eq!(body["rate"], 0.5);
    }
}
