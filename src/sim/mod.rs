//! Simulated OpenAI and Anthropic providers on loopback, with scripted faults.
//!
//! One server speaks both wires: OpenAI Chat Completions at `/v1/chat/completions` and Anthropic
//! Messages at `/anthropic/v1/messages`, so the adapters' base URLs are
//! [`SimServer::openai_base_url`] and [`SimServer::anthropic_base_url`]. It needs no key and
//! accepts any.
//!
//! The model is deterministic: it answers `Hello from {model}. You said: {first 12 words of the
//! last user text}`, one token per whitespace-separated word (streamed one per event, each word
//! with its leading space), ended before the first stop sequence if any, cut to `max_tokens` words
//! with finish `length`. Usage: input tokens
//! are `ceil(characters of all text content / 4)`, output tokens the words sent. With tools, it
//! calls one when `tool_choice` forces it (a named tool; the first for `required` / `any`) or the
//! last user text starts with `/tool`: its arguments are values for the tool's schema, or
//! `{"input": "<last user text>"}` when the schema names no property. Asked for structured output
//! (Chat Completions `response_format`, Responses `text.format`, Anthropic `output_format`), it
//! answers compact JSON instead of its sentence: valid for a `json_schema` (generated from the
//! schema, its strings the prompt's words; see `schema.rs` for the keywords followed and the caps
//! that keep a hostile schema cheap), `{"answer": "<the sentence>"}` for `json_object`; streamed and
//! counted in tokens of four characters, and cut by `max_tokens` like any text (finish `length`,
//! the JSON then incomplete, as a model's is). Anthropic assistant prefill is continued (Claude
//! 4.6 and later reject it, as the real API does). Models have their catalog context window (`*-tiny`: 64
//! tokens; unknown: 128,000); `missing-model` does not exist.
//!
//! Prompt caches work as each provider bills them, per model: Claude writes what a request marks
//! (up to its last `cache_control`) on the first request with that prefix
//! (`cache_creation_input_tokens`) and reads it on the next ones (`cache_read_input_tokens`);
//! OpenAI caches a prompt of 1,024 tokens or more by itself, and a later prompt with the same
//! start reads it in 128-token blocks (`cached_tokens`). A model can be given a request limit
//! ([`SimServer::set_rate_limit`]), stated in each answer's rate-limit headers.
//!
//! What it says is written by each wire's own encoders in [`crate::wire`], the ones the gateway
//! answers its callers with: the simulator decides what its model answers, not how a wire spells it.
//!
//! Faults ([`FaultRule`]) script what goes wrong, by protocol and model: error statuses with the
//! provider's real bodies and retry headers, raw bodies, latency, slow first tokens, stalls, cut
//! streams, malformed chunks, in-stream errors, a missing `[DONE]`, connection resets and hangs.
//! Every request is logged ([`SimServer::requests`]).
//!
//! A small control API on the same server drives it from outside the process:
//! `POST /_sim/faults` (a [`FaultRule`] as JSON → `{"id":N}`), `GET /_sim/faults`,
//! `DELETE /_sim/faults`, `DELETE /_sim/faults/{id}`, `GET /_sim/requests` (credentials masked),
//! `DELETE /_sim/requests`.
//!
//! It also serves status pages in the Statuspage format, at `/status/{page}/api/v2/summary.json`,
//! operational until a test scripts them ([`SimServer::set_status_page`]).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchyard::Protocol;
//! use switchyard::sim::{Fault, FaultRule, SimServer};
//!
//! let sim = SimServer::start().await?;
//! // the first two OpenAI requests get a 429 with `retry-after: 1`
//! sim.add_fault(FaultRule::new(Protocol::Openai, Fault::status_retry_after(429, "1")).first(2));
//! let base_url = sim.openai_base_url(); // "http://127.0.0.1:PORT/v1"
//! # let _ = base_url;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::provider::Protocol;

/// A request header carrying a [`Fault`] as JSON: the simulator applies it to that request, before
/// any scripted rule. The router's fault injection uses it to have a fault produced on the real wire.
pub const FAULT_HEADER: &str = "x-switchyard-fault";

mod answer;
mod anthropic;
mod cache;
mod fault;
mod faults;
mod openai;
mod quota;
mod render;
mod responses;
mod schema;
mod server;
mod state;
mod status;
mod stream;
mod wire;

pub use fault::{Fault, FaultRule, When};
pub use faults::WireFaults;
pub use state::RecordedRequest;
pub use status::StatusPageScript;

use state::SimState;

/// A running simulated provider server. Dropping it shuts the server down and closes every open
/// connection.
pub struct SimServer {
    addr: SocketAddr,
    state: Arc<SimState>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for SimServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimServer")
            .field("addr", &self.addr)
            .field("faults", &self.state.faults().len())
            .field("open_connections", &self.state.connections())
            .finish()
    }
}

impl SimServer {
    /// Starts a server on `127.0.0.1` at a free port.
    pub async fn start() -> io::Result<SimServer> {
        SimServer::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).await
    }

    /// Starts a server on `addr`.
    pub async fn bind(addr: SocketAddr) -> io::Result<SimServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server::serve(listener, state.clone(), shutdown.clone()));
        Ok(SimServer { addr, state, shutdown, task: Some(task) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/v1`: the OpenAI adapter's base URL.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.url_authority())
    }

    /// `http://ADDR/anthropic`: the Anthropic adapter's base URL.
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}/anthropic", self.url_authority())
    }

    /// The base URL of the adapter for `protocol` (the Responses API is served beside Chat
    /// Completions, under [`SimServer::openai_base_url`]).
    pub fn base_url(&self, protocol: Protocol) -> String {
        match protocol {
            Protocol::Anthropic => self.anthropic_base_url(),
            _ => self.openai_base_url(),
        }
    }

    /// `http://ADDR`: the root, where the control API lives under `/_sim`.
    pub fn url(&self) -> String {
        format!("http://{}", self.url_authority())
    }

    /// A policy's `[providers.openai]` and `[providers.anthropic]` tables pointed at this
    /// simulator (their profiles, no key): what a test's or an example's policy starts with.
    pub fn providers_toml(&self) -> String {
        format!(
            "[providers.openai]\nprofile = \"openai\"\nauth = \"none\"\nbase_url = \"{}\"\n\n\
             [providers.anthropic]\nprofile = \"anthropic\"\nauth = \"none\"\nbase_url = \"{}\"\n",
            self.openai_base_url(),
            self.anthropic_base_url()
        )
    }

    /// Adds a fault rule after the existing ones; returns its id.
    pub fn add_fault(&self, rule: FaultRule) -> u64 {
        self.state.add_fault(rule)
    }

    /// Removes a fault rule (no-op for an unknown id).
    pub fn remove_fault(&self, id: u64) {
        self.state.remove_fault(id);
    }

    /// Limits `model` on `protocol` to `requests` per `window`, from now, as the provider would:
    /// a bucket of `requests`, full now, refilled continuously at `requests` per `window`; each
    /// answer states what is left and when the bucket is whole again in the provider's rate-limit
    /// headers, and a request beyond the limit gets a 429 with `retry-after` (until one request is
    /// back; recorded like any request).
    pub fn set_rate_limit(&self, protocol: Protocol, model: &str, requests: u64, window: std::time::Duration) {
        self.state.quotas.set(protocol, model, requests, window);
    }

    /// Scripts the status page `page`, served at [`SimServer::status_page_url`] (every page is
    /// operational until scripted).
    pub fn set_status_page(&self, page: &str, script: StatusPageScript) {
        self.state.status_pages.set(page, script);
    }

    /// How many times the simulated status page `page` was read.
    pub fn status_page_reads(&self, page: &str) -> usize {
        self.state.status_pages.reads(page)
    }

    /// The address of the simulated status page `page`, for a provider's `status_page`.
    pub fn status_page_url(&self, page: &str) -> String {
        format!("http://{}/status/{page}", self.addr)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.state.clear_faults();
    }

    /// The fault rules with their ids, in matching order (`First` rules show what is left).
    pub fn faults(&self) -> Vec<(u64, FaultRule)> {
        self.state.faults().into_iter().map(|live| (live.id, live.rule)).collect()
    }

    /// The request log (the last 10,000 chat requests), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Logged requests on `protocol`, only those for `model` if given.
    pub fn request_count(&self, protocol: Protocol, model: Option<&str>) -> usize {
        self.state.request_count(protocol, model)
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.state.clear_requests();
    }

    /// Connections open right now (a held or hung one stays open until the client leaves).
    pub fn open_connections(&self) -> usize {
        self.state.connections()
    }

    /// Connections accepted since the server started: a client that reuses its connections keeps
    /// this low.
    pub fn accepted_connections(&self) -> usize {
        self.state.accepted()
    }

    /// Stops accepting, closes every connection, and waits until the server is gone.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn url_authority(&self) -> SocketAddr {
        // a wildcard bind is reachable on loopback; a URL cannot point at 0.0.0.0 portably
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.addr.port())
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Runs a simulated server on `addr` for `switchyard sim --listen ADDR`: prints the two base URLs
/// and the control API, then serves until Ctrl-C.
pub async fn run(addr: SocketAddr) -> io::Result<()> {
    let server = SimServer::bind(addr).await?;
    println!("switchyard sim listening on {}", server.addr());
    println!("  openai base url:    {}", server.openai_base_url());
    println!("  anthropic base url: {}", server.anthropic_base_url());
    println!("  control api:        {}/_sim/faults, {}/_sim/requests", server.url(), server.url());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
