//! # switchyard
//!
//! Routes LLM requests across providers under a declarative, hot-reloaded TOML policy.
//!
//! This crate gives an application one [`Provider`] trait with OpenAI and Anthropic adapters that
//! translate every failure into one common [`ErrorClass`], a [`Router`] that follows a policy, and
//! simulated providers (`sim`) to test and demonstrate all of it without network or keys.
//!
//! ## Features
//!
//! The core (policy, providers, router, drill files) is all a default build has. The rest is
//! opt-in, so an application compiles only what it uses:
//!
//! | feature   | adds                                                                          |
//! |-----------|-------------------------------------------------------------------------------|
//! | `gateway` | `switchyard::serve`: the OpenAI- and Anthropic-compatible HTTP gateway (axum), its admin API and Prometheus metrics; implies `watch` |
//! | `sim`     | `switchyard::sim` (simulated providers), the drill runner (`drill::run`), and `sim::WireFaults`, which plays injected faults (`Router::inject`, `[[drill.faults]]`) on each provider's wire |
//! | `redis`   | `[state] backend = "redis"`: limits, breakers and budgets shared by a fleet    |
//! | `watch`   | `Router::watch`: reload the policy when its file changes (notify)             |
//! | `otel`    | `switchyard::otel`: OpenTelemetry export of traces and metrics over OTLP/HTTP  |
//! | `cli`     | the `switchyard` command, and all of the above                                |
//!
//! A policy that needs a feature the build lacks (`backend = "redis"`, `[[drill.faults]]`, `[otel]`) is
//! refused with an error that names the key and the feature.

pub mod capability;
pub mod chat;
pub mod cost;
pub mod drill;
pub mod duration;
pub mod embed;
pub mod error;
#[cfg(feature = "otel")]
pub mod otel;
pub mod policy;
pub mod profile;
pub mod protocol;
pub mod provider;
pub mod rate_limit;
pub mod router;
pub mod secret;
#[cfg(feature = "gateway")]
pub mod serve;
#[cfg(feature = "sim")]
pub mod sim;
mod stable_hash;
#[cfg(any(feature = "sim", feature = "gateway"))]
mod stats;
pub mod status_page;
mod sync;
pub mod tokens;
pub mod wire;

pub use chat::{
    CacheControl, ChatRequest, ChatResponse, ContentPart, Extra, FinishReason, MediaSource, Message, Opaque, Reasoning,
    ResponseFormat, Role, StreamCollector, StreamEvent, Tool, ToolCall, ToolChoice, ToolResult, Usage,
};
pub use error::{ErrorClass, Partial, ProviderError};
pub use policy::{Policy, PolicyError};
pub use profile::{ModelProfile, ProviderProfile};
pub use provider::{
    Anthropic, Call, CallTimeouts, ChatStream, OpenAi, Protocol, Provider, ProviderConfig, RateLimit, TokenCount,
};
pub use router::{RoutedResponse, RoutedStream, Router, RouterError, RouterEvent};
pub use secret::ApiKey;
