//! The simulated server's shared state: the fault script and the request log.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::fault::{Fault, FaultRule, When};
use crate::provider::Protocol;
use crate::sync::lock;

/// Requests the log keeps; older ones are dropped first.
pub(crate) const LOG_CAPACITY: usize = 10_000;

/// One request the simulated server received, as the log keeps it.
///
/// `headers` are verbatim (tests check the adapters' auth headers); `Debug` and the control API
/// (`GET /_sim/requests`) mask credential headers.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Which wire it came in on.
    pub protocol: Protocol,
    /// The body's `model` (empty when missing).
    pub model: String,
    /// Whether the body asked for a stream.
    pub stream: bool,
    /// Request headers, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (a string holding the raw text when it was not JSON).
    pub body: serde_json::Value,
    /// The kind of fault applied (`status`, `reset`, ... as in [`Fault::kind`]), if any.
    pub fault: Option<String>,
    /// The request id the server answered with (`req_sim_N`).
    pub request_id: String,
    /// The endpoint, as the provider names it (`/v1/messages`, `/v1/messages/count_tokens`, ...).
    #[serde(default)]
    pub endpoint: String,
}

impl RecordedRequest {
    /// The value of header `name` (case-insensitive), verbatim.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A copy whose credential headers (`authorization`, `x-api-key`, ...) are masked.
    pub fn redacted(&self) -> RecordedRequest {
        let headers = self.headers.iter().map(|(k, v)| (k.clone(), mask_header(k, v))).collect();
        RecordedRequest { headers, ..self.clone() }
    }
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = self.redacted();
        f.debug_struct("RecordedRequest")
            .field("protocol", &masked.protocol)
            .field("model", &masked.model)
            .field("stream", &masked.stream)
            .field("headers", &masked.headers)
            .field("body", &masked.body)
            .field("fault", &masked.fault)
            .field("request_id", &masked.request_id)
            .finish()
    }
}

fn mask_header(name: &str, value: &str) -> String {
    const CREDENTIALS: &[&str] = &["authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"];
    if !CREDENTIALS.iter().any(|c| name.eq_ignore_ascii_case(c)) {
        return value.to_owned();
    }
    // keep the scheme so a reader still sees how the key was sent
    match value.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} ***"),
        None => "***".to_owned(),
    }
}

/// A fault rule with its id, as `GET /_sim/faults` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct LiveRule {
    /// The id `add_fault` returned.
    pub(crate) id: u64,
    /// The rule; a `First` rule's count is what is left of it.
    #[serde(flatten)]
    pub(crate) rule: FaultRule,
}

#[derive(Debug, Default)]
struct Script {
    rules: Vec<LiveRule>,
    next_id: u64,
}

/// State shared by the accept loop, the handlers and the [`super::SimServer`] handle.
#[derive(Debug, Default)]
pub(crate) struct SimState {
    script: Mutex<Script>,
    log: Mutex<VecDeque<RecordedRequest>>,
    requests: AtomicU64,
    connections: AtomicUsize,
    accepted: AtomicUsize,
    /// Request limits set with `SimServer::set_rate_limit`.
    pub(crate) quotas: super::quota::Quotas,
    /// Status pages scripted with `SimServer::set_status_page`.
    pub(crate) status_pages: super::status::StatusPages,
    /// What the providers' prompt caches hold.
    pub(crate) prompt_cache: super::cache::PromptCache,
}

impl SimState {
    /// Adds a rule at the end of the script; returns its id.
    pub(crate) fn add_fault(&self, rule: FaultRule) -> u64 {
        let mut script = lock(&self.script);
        script.next_id += 1;
        let id = script.next_id;
        script.rules.push(LiveRule { id, rule });
        id
    }

    /// Removes one rule; whether it existed.
    pub(crate) fn remove_fault(&self, id: u64) -> bool {
        let mut script = lock(&self.script);
        let before = script.rules.len();
        script.rules.retain(|r| r.id != id);
        script.rules.len() != before
    }

    /// Removes every rule; how many there were.
    pub(crate) fn clear_faults(&self) -> usize {
        std::mem::take(&mut lock(&self.script).rules).len()
    }

    /// The script as it stands.
    pub(crate) fn faults(&self) -> Vec<LiveRule> {
        lock(&self.script).rules.clone()
    }

    /// The fault for one request: the first live rule that matches and hits. A `First` rule counts
    /// down only when it hits; streaming-only faults skip non-streaming requests.
    pub(crate) fn pick_fault(&self, protocol: Protocol, model: Option<&str>, stream: bool) -> Option<Fault> {
        let mut script = lock(&self.script);
        for live in &mut script.rules {
            let rule = &mut live.rule;
            let matches = rule.protocol.is_none_or(|p| p == protocol)
                && rule.model.as_deref().is_none_or(|m| Some(m) == model)
                && (stream || !rule.fault.streaming_only());
            if matches && hits(&mut rule.when) {
                return Some(rule.fault.clone());
            }
        }
        None
    }

    /// The next request's sequence number (1, 2, ...).
    pub(crate) fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Appends to the log, dropping the oldest entry when full.
    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut log = lock(&self.log);
        if log.len() >= LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(request);
    }

    /// The log, oldest first.
    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).iter().cloned().collect()
    }

    /// Logged requests on `protocol`, for `model` if given.
    pub(crate) fn request_count(&self, protocol: Protocol, model: Option<&str>) -> usize {
        lock(&self.log).iter().filter(|r| r.protocol == protocol && model.is_none_or(|m| r.model == m)).count()
    }

    /// Empties the log.
    pub(crate) fn clear_requests(&self) {
        lock(&self.log).clear();
    }

    /// Connections open right now.
    /// Connections accepted since the start.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Counts a connection until the guard drops.
    pub(crate) fn connection_guard(&self) -> ConnectionGuard<'_> {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(&self.connections)
    }
}

/// Decrements the open-connection count when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionGuard<'a>(&'a AtomicUsize);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn hits(when: &mut When) -> bool {
    match when {
        When::Always => true,
        When::First { count } if *count > 0 => {
            *count -= 1;
            true
        }
        When::First { .. } => false,
        When::Rate { rate } => rand::random::<f64>() < *rate,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn first_rule_counts_down_only_on_hits_then_later_rules_apply() {
        let state = SimState::default();
        state.add_fault(FaultRule::new(Protocol::Openai, Fault::Reset).model("a").first(2));
        state.add_fault(FaultRule::new(Protocol::Openai, Fault::Hang));
        assert_eq!(state.pick_fault(Protocol::Openai, Some("b"), false), Some(Fault::Hang));
        assert_eq!(state.pick_fault(Protocol::Anthropic, Some("a"), false), None);
        assert_eq!(state.pick_fault(Protocol::Openai, Some("a"), false), Some(Fault::Reset));
        assert_eq!(state.pick_fault(Protocol::Openai, Some("a"), false), Some(Fault::Reset));
        assert_eq!(state.pick_fault(Protocol::Openai, Some("a"), false), Some(Fault::Hang));
    }

    #[test]
    fn streaming_faults_skip_plain_requests() {
        let state = SimState::default();
        state.add_fault(FaultRule::new(Protocol::Openai, Fault::NoDone).first(1));
        assert_eq!(state.pick_fault(Protocol::Openai, None, false), None);
        assert_eq!(state.pick_fault(Protocol::Openai, None, true), Some(Fault::NoDone));
        assert_eq!(state.pick_fault(Protocol::Openai, None, true), None);
    }

    #[test]
    fn log_is_bounded() {
        let state = SimState::default();
        let req = |n: usize| RecordedRequest {
            protocol: Protocol::Openai,
            model: n.to_string(),
            stream: false,
            headers: vec![],
            body: serde_json::Value::Null,
            fault: None,
            request_id: String::new(),
            endpoint: String::new(),
        };
        for n in 0..LOG_CAPACITY + 5 {
            state.record(req(n));
        }
        let log = state.requests();
        assert_eq!(log.len(), LOG_CAPACITY);
        assert_eq!(log[0].model, "5");
    }

    #[test]
    fn debug_masks_credentials() {
        let r = RecordedRequest {
            protocol: Protocol::Anthropic,
            model: "m".into(),
            stream: false,
            headers: vec![
                ("authorization".into(), "Bearer sk-secret-1".into()),
                ("x-api-key".into(), "sk-ant-secret-2".into()),
                ("anthropic-version".into(), "2023-06-01".into()),
            ],
            body: serde_json::Value::Null,
            fault: None,
            request_id: String::new(),
            endpoint: String::new(),
        };
        let s = format!("{r:?}");
        assert!(!s.contains("secret"), "{s}");
        assert!(s.contains("Bearer ***") && s.contains("2023-06-01"), "{s}");
        assert_eq!(r.header("X-Api-Key"), Some("sk-ant-secret-2"));
    }
}
