//! The OpenAI Responses API wire (`POST /v1/responses`), defined by its translation to and from
//! the Chat Completions wire ([`super::openai_chat`]): requests, `response` objects and the event
//! stream, each both ways. The gateway answers Responses callers with it, the `openai_responses`
//! adapter talks to Responses targets with it, and the simulator speaks it; a caller's Responses
//! body goes to a Responses target unchanged.
//!
//! What the translation carries, and what it refuses by name, is in `docs/wire.md`.

mod request;
pub(crate) mod response;
pub(crate) mod stream;

pub(crate) use request::encode_original;
#[cfg(feature = "sim")]
pub(crate) use request::to_chat;
pub use request::{decode_request, encode_request};
