//! # switchyard
//!
//! Routes LLM requests across providers under a declarative, hot-reloaded TOML policy.
//!
//! This crate gives an application one [`Provider`] trait with OpenAI and Anthropic adapters that
//! translate every failure into one common [`ErrorClass`], and simulated providers ([`sim`]) to test
//! and demonstrate all of it without network or keys.

pub mod capability;
pub mod chat;
pub mod cost;
pub mod drill;
pub mod duration;
pub mod embed;
pub mod error;
pub mod policy;
pub mod profile;
pub mod provider;
pub mod router;
pub mod secret;
pub mod serve;
pub mod sim;
pub mod status_page;
mod sync;
pub mod tokens;
pub mod wire;

pub use chat::{
    CacheControl, ChatRequest, ChatResponse, ContentPart, Extra, FinishReason, MediaSource, Message, Reasoning,
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
