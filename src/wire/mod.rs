//! One codec per wire: the OpenAI Chat Completions and Anthropic Messages bodies, decoded into the
//! normalized model ([`crate::chat`]) and encoded from it. The adapters encode requests with it, the
//! gateway decodes its callers' requests with it, the simulator reads what it receives with it.
//!
//! Nothing is lost on the way: a member the model has no typed place for is kept in an `extra`
//! map (or a [`crate::chat::ContentPart::Native`] part) in the request's
//! [`dialect`](crate::ChatRequest::dialect). Encoded for a target of the same wire, those pass
//! through unchanged; for another wire, every field with a faithful mapping is mapped, and the rest
//! is reported as [`Unsupported`]: the request is refused, or the field dropped and reported, as the
//! policy's `unsupported` setting says (`docs/wire.md` has the table).
//!
//! Each codec has both directions in the core, even though only the gateway and the simulator
//! encode answers, errors and streams: one definition of each wire, whatever the features.
#![cfg_attr(not(all(feature = "gateway", feature = "sim")), allow(dead_code))]

use serde_json::{Map, Value};

use crate::chat::ChatRequest;
use crate::profile::ModelProfile;
use crate::protocol::Protocol;

pub mod anthropic;
// used by the Bedrock adapter (issue 30)
#[allow(dead_code)]
pub(crate) mod bedrock;
pub(crate) mod fields;
pub mod openai_chat;
pub mod openai_responses;
mod original;
mod reasoning;
pub mod sse;
mod translate;

pub use original::Original;
pub use reasoning::{DEFAULT_EFFORT_BUDGETS, budget_for_effort, effort_for_budget};
pub use translate::{EncodeError, Unsupported, UnsupportedMode, dropped_header};

/// What an encoder needs to know of the target.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The model to ask.
    pub model: &'a str,
    /// The model's profile, if the provider's catalog has one.
    pub profile: Option<&'a ModelProfile>,
    /// What to do with fields this wire cannot carry.
    pub unsupported: UnsupportedMode,
}

impl<'a> Target<'a> {
    /// A target with no profile, refusing what its wire cannot carry.
    pub fn new(model: &'a str) -> Self {
        Target { model, profile: None, unsupported: UnsupportedMode::Error }
    }
}

/// The provider headers of a caller that a target of the caller's wire may be sent, by lower-case
/// name (each provider's `forward_headers` says which it is).
pub const CALLER_HEADERS: &[&str] = &["anthropic-beta", "anthropic-version", "openai-beta"];

/// Headers a body needs, by name.
pub type Headers = Vec<(&'static str, String)>;

/// A request encoded for one target's wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The JSON body.
    pub body: Map<String, Value>,
    /// Headers the body needs (`anthropic-beta` for a beta feature it uses).
    pub headers: Headers,
    /// Fields left out, each reported (harmless ones always; the rest under
    /// [`UnsupportedMode::Drop`]).
    pub dropped: Vec<Unsupported>,
}

/// A caller's request as a gateway endpoint decoded it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Decoded {
    /// The request's `model`: the name of a route.
    pub route: String,
    /// The request, normalized, its dialect set to the caller's wire.
    pub request: ChatRequest,
    /// Whether the caller asked for a stream.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage` (Anthropic streams always carry usage).
    pub include_usage: bool,
    /// The body as received: what a target of the same wire is sent (see [`Original`]). Set it
    /// to `None` after changing `request`, or the change does not reach such a target.
    pub original: Option<Original>,
}

/// Encodes `request` for a target speaking `protocol`.
pub fn encode(
    protocol: Protocol,
    request: &ChatRequest,
    target: Target<'_>,
    stream: bool,
) -> Result<Encoded, EncodeError> {
    let encoded = match protocol {
        Protocol::Openai => openai_chat::encode_request(request, target, stream),
        Protocol::Anthropic => anthropic::encode_request(request, target, stream),
        Protocol::OpenaiResponses => openai_responses::encode_request(request, target, stream),
    };
    if request.opaque.is_empty() { encoded } else { with_opaque(encoded, &request.opaque, target.unsupported) }
}

/// An encoding of the request carries none of what the caller's body carried opaque (only that
/// body does, to a target of its wire): each member is reported, and one that could change the
/// answer refuses the target under [`UnsupportedMode::Error`].
fn with_opaque(
    encoded: Result<Encoded, EncodeError>,
    opaque: &[crate::chat::Opaque],
    mode: UnsupportedMode,
) -> Result<Encoded, EncodeError> {
    let mut reported: Vec<Unsupported> = Vec::with_capacity(opaque.len());
    for o in opaque {
        // one report per name, where it first occurs (a cache scope on every block is one)
        if !reported.iter().any(|u| u.field == o.field) {
            reported.push(Unsupported::from(o));
        }
    }
    let refuse = mode == UnsupportedMode::Error && reported.iter().any(|u| !u.harmless);
    match encoded {
        Ok(mut e) if !refuse => {
            e.dropped.append(&mut reported);
            Ok(e)
        }
        Ok(_) => Err(EncodeError::Unsupported(reported.into_iter().filter(|u| !u.harmless).collect())),
        Err(EncodeError::Unsupported(mut fields)) => {
            fields.extend(reported.into_iter().filter(|u| !u.harmless));
            Err(EncodeError::Unsupported(fields))
        }
        Err(e) => Err(e),
    }
}

/// Decodes a caller's request body in `protocol`'s wire, keeping the body itself as the
/// [`Decoded::original`] a target of the same wire is sent. The error names the offending member.
pub fn decode(protocol: Protocol, body: impl Into<bytes::Bytes>) -> Result<Decoded, String> {
    match protocol {
        Protocol::Openai => openai_chat::decode_request(body),
        Protocol::Anthropic => anthropic::decode_request(body),
        Protocol::OpenaiResponses => openai_responses::decode_request(body),
    }
}

/// `request`'s body for a target speaking `protocol`, as bytes, with the headers it needs: the
/// caller's own body (`original`, edited where the router must) when it is in the target's wire,
/// else the encoding of `request`. What the built-in adapters send; a [`crate::Provider`] of
/// either wire can call it with its [`crate::provider::Call`]'s `request` and `original`.
pub fn encode_bytes(
    protocol: Protocol,
    request: &ChatRequest,
    original: Option<&Original>,
    target: Target<'_>,
    stream: bool,
) -> Result<(Vec<u8>, Headers), EncodeError> {
    let (bytes, mut headers) = encode_body(protocol, request, original, target, stream)?;
    // the caller's provider headers belong to its own wire (a Responses caller's `openai-beta`
    // says nothing to Chat Completions), whose body is the caller's too
    if original.map(Original::protocol).or(request.dialect) == Some(protocol) {
        headers.extend(caller_headers(request));
    }
    Ok((bytes, headers))
}

/// The provider headers the caller sent (`anthropic-version`, `openai-beta`), for a target of its
/// wire.
fn caller_headers(request: &ChatRequest) -> impl Iterator<Item = (&'static str, String)> + '_ {
    request.headers.iter().filter_map(|(name, value)| {
        let name = CALLER_HEADERS.iter().find(|h| h.eq_ignore_ascii_case(name))?;
        (*name != "anthropic-beta").then(|| (*name, value.clone()))
    })
}

fn encode_body(
    protocol: Protocol,
    request: &ChatRequest,
    original: Option<&Original>,
    target: Target<'_>,
    stream: bool,
) -> Result<(Vec<u8>, Headers), EncodeError> {
    match (protocol, original.filter(|o| o.protocol() == protocol)) {
        (Protocol::Openai, Some(o)) => {
            Ok((openai_chat::encode_original(o.body(), request, target, stream)?, Vec::new()))
        }
        (Protocol::Anthropic, Some(o)) => anthropic::encode_original(o.body(), request, target, stream),
        (Protocol::OpenaiResponses, Some(o)) => {
            Ok((openai_responses::encode_original(o.body(), request, target, stream)?, Vec::new()))
        }
        (_, None) => {
            let encoded = encode(protocol, request, target, stream)?;
            let bytes = serde_json::to_vec(&encoded.body)
                .map_err(|e| EncodeError::Invalid(format!("cannot encode the request: {e}")))?;
            Ok((bytes, encoded.headers))
        }
    }
}

/// Whether every target, whatever its wire, can carry `request` with nothing to report: only the
/// fields both wires share, none of them out of either's range. For such a request the router
/// checks no target before calling it.
pub fn is_portable(request: &ChatRequest) -> bool {
    use crate::chat::ContentPart;
    let r = request;
    let shared_only = r.extra.is_empty()
        && r.opaque.is_empty()
        && r.betas.is_empty()
        && r.parallel_tool_calls.is_none()
        && r.top_p.is_none()
        && r.top_k.is_none()
        && r.seed.is_none()
        && r.presence_penalty.is_none()
        && r.frequency_penalty.is_none()
        && r.logit_bias.is_none()
        && r.n.is_none()
        && r.logprobs.is_none()
        && r.top_logprobs.is_none()
        && r.user.is_none()
        && r.metadata.is_none()
        && r.service_tier.is_none()
        && r.response_format.is_none()
        && r.reasoning.is_none()
        && r.temperature.is_none_or(|t| (0.0..=1.0).contains(&t))
        && r.tools.iter().all(|t| t.extra.is_empty() && t.strict.is_none() && t.cache_control.is_none());
    shared_only
        && r.messages.iter().all(|m| {
            m.extra.is_empty()
                && m.content.iter().all(|p| match p {
                    ContentPart::Text { cache_control, extra, .. } => cache_control.is_none() && extra.is_empty(),
                    ContentPart::ToolCall(_) => true,
                    ContentPart::ToolResult(t) => t.cache_control.is_none()
                        && t.content.iter().all(
                            |p| matches!(p, ContentPart::Text { cache_control: None, extra, .. } if extra.is_empty()),
                        ),
                    _ => false,
                })
        })
}

/// `max_tokens` for a target: the caller's on its own wire; across wires at most the model's
/// output limit, which no answer can pass anyway (a client of the other wire asks for what its own
/// models take: Claude Code sends 32,000 to whatever model it is routed to).
pub(crate) fn cross_wire_cap(max_tokens: u32, target: Target<'_>, same_wire: bool) -> u32 {
    match target.profile {
        Some(p) if !same_wire => max_tokens.min(p.max_output_tokens),
        _ => max_tokens,
    }
}

/// The path of member `field` under `base`.
pub(crate) fn at(base: &str, field: &str) -> String {
    if base.is_empty() { field.to_owned() } else { format!("{base}.{field}") }
}
