//! The OpenAI Chat Completions wire (`POST /chat/completions`), and every OpenAI-compatible server.

mod request;

pub(crate) use request::rest;
pub use request::{decode_request, encode_request};
