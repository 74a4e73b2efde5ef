//! The Anthropic Messages wire (`POST /v1/messages`).

pub(crate) mod error;
mod request;
pub(crate) mod response;
pub(crate) mod stream;

#[cfg(feature = "sim")]
pub(crate) use request::decode_value;
pub(crate) use request::encode_original;
pub use request::{DEFAULT_MAX_TOKENS, MIN_THINKING_BUDGET, STRUCTURED_OUTPUTS_BETA, decode_request, encode_request};
