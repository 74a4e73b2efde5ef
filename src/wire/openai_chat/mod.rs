//! The OpenAI Chat Completions wire (`POST /chat/completions`), and every OpenAI-compatible server.

pub(crate) mod error;
mod request;
pub(crate) mod response;
pub(crate) mod stream;

pub(crate) use request::check_ranges;
#[cfg(feature = "sim")]
pub(crate) use request::decode_value;
pub(crate) use request::encode_original;
pub(crate) use request::rest;
pub use request::{decode_request, encode_request};
