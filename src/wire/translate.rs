//! What happens to a field the target's wire cannot carry: the encoder reports it here, and the
//! policy's `unsupported` setting decides whether that refuses the request or drops the field.

use serde::{Deserialize, Serialize};

use crate::chat::Extra;

/// What to do with a request field the chosen target's wire has no place for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsupportedMode {
    /// Skip the target; when no target of the route can carry the request, refuse it with a 400
    /// naming the field (the default).
    #[default]
    Error,
    /// Send the request without the field and report it (`x-switchyard-dropped`,
    /// [`crate::RoutedResponse::dropped`]).
    Drop,
}

impl UnsupportedMode {
    /// The name used in policies (`error`, `drop`).
    pub fn as_str(self) -> &'static str {
        match self {
            UnsupportedMode::Error => "error",
            UnsupportedMode::Drop => "drop",
        }
    }
}

/// A request field that a target's wire cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Unsupported {
    /// The field as the caller's wire names it (`seed`, `top_k`, `cache_control`, `input_audio`).
    pub field: String,
    /// Where it first occurs (`messages[1].content[0].cache_control`).
    pub path: String,
    /// Whether leaving it out cannot change the answer (a prompt-cache mark, an image `detail`
    /// hint, thinking blocks of earlier turns sent to a wire without them). Such fields are always
    /// dropped, and reported like any other.
    pub harmless: bool,
}

impl Unsupported {
    /// A beta feature (`anthropic-beta`) a provider is not sent.
    pub(crate) fn beta(name: &str) -> Self {
        Unsupported { field: format!("anthropic-beta {name}"), path: "anthropic-beta".into(), harmless: true }
    }
}

impl From<&crate::chat::Opaque> for Unsupported {
    fn from(o: &crate::chat::Opaque) -> Self {
        Unsupported { field: o.field.clone(), path: o.path.clone(), harmless: o.harmless }
    }
}

/// Members of either wire whose absence cannot change the answer: records kept for the caller
/// (`store`, `client_metadata`, `safety_identifier`), hints about caches and context
/// (`prompt_cache_key`, `prompt_cache_retention`, `context_management`: without it the target
/// reads the whole context the caller sent), a tool offered deferred rather than loaded
/// (`defer_loading`). Another wire drops and reports them; it is never skipped for them.
pub(crate) const HARMLESS_MEMBERS: &[&str] = &[
    "store",
    "client_metadata",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "context_management",
    "defer_loading",
];

/// Why a request cannot be encoded for a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Fields the wire cannot carry, under [`UnsupportedMode::Error`].
    #[error("{}", describe(.0))]
    Unsupported(Vec<Unsupported>),
    /// A value outside what the target accepts (a temperature of 1.7 for a 0–1 target), or a
    /// conversation the wire cannot express.
    #[error("{0}")]
    Invalid(String),
}

fn describe(fields: &[Unsupported]) -> String {
    let names: Vec<String> = fields.iter().map(|u| format!("`{}` (at `{}`)", u.field, u.path)).collect();
    format!("not supported by this target's wire: {}", names.join(", "))
}

/// Collects what an encoder could not carry.
#[derive(Debug)]
pub(crate) struct Sink {
    /// Whether the request's extras are in the target's wire.
    same_wire: bool,
    issues: Vec<Unsupported>,
    /// The first value the wire cannot take at all (found deep in a conversation).
    invalid: Option<String>,
}

impl Sink {
    pub(crate) fn new(same_wire: bool) -> Sink {
        Sink { same_wire, issues: Vec::new(), invalid: None }
    }

    /// Whether extras and native parts pass through.
    pub(crate) fn same_wire(&self) -> bool {
        self.same_wire
    }

    fn push(&mut self, field: &str, path: String, harmless: bool) {
        if self.issues.iter().any(|u| u.field == field) {
            return;
        }
        self.issues.push(Unsupported { field: field.to_owned(), path, harmless });
    }

    /// A field that changes the answer and has no place on this wire.
    pub(crate) fn lossy(&mut self, field: &str, path: impl Into<String>) {
        self.push(field, path.into(), false);
    }

    /// A field whose absence cannot change the answer.
    pub(crate) fn harmless(&mut self, field: &str, path: impl Into<String>) {
        self.push(field, path.into(), true);
    }

    /// A value the wire cannot take at all: the request is refused whatever the mode.
    pub(crate) fn invalid(&mut self, why: String) {
        self.invalid.get_or_insert(why);
    }

    /// Extras of the request's dialect: merged into `out` on the same wire, reported otherwise.
    /// Members `out` already has are not overwritten: what the router set wins.
    pub(crate) fn extra(&mut self, extra: &Extra, base: &str, out: &mut Extra) {
        if extra.is_empty() {
            return;
        }
        if self.same_wire {
            for (k, v) in extra {
                if !out.contains_key(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
        } else {
            for k in extra.keys() {
                let path = if base.is_empty() { k.clone() } else { format!("{base}.{k}") };
                self.push(k, path, HARMLESS_MEMBERS.contains(&k.as_str()));
            }
        }
    }

    /// The fields reported, or the refusal under [`UnsupportedMode::Error`] when one of them
    /// would change the answer.
    pub(crate) fn finish(self, mode: UnsupportedMode) -> Result<Vec<Unsupported>, EncodeError> {
        if let Some(why) = self.invalid {
            return Err(EncodeError::Invalid(why));
        }
        if mode == UnsupportedMode::Error && self.issues.iter().any(|u| !u.harmless) {
            return Err(EncodeError::Unsupported(self.issues.into_iter().filter(|u| !u.harmless).collect()));
        }
        Ok(self.issues)
    }
}

/// Names as the header `x-switchyard-dropped` lists them: `seed,top_k`.
pub fn dropped_header(dropped: &[Unsupported]) -> String {
    let names: Vec<&str> = dropped.iter().map(|u| u.field.as_str()).collect();
    names.join(",")
}
