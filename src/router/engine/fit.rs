//! Whether each target can carry a request, checked once per request before any call: what its
//! wire would drop or refuses, what its model's profile lacks, and what an operation other than
//! chat rules out.

use std::collections::BTreeSet;

use super::Op;
use crate::capability::{self, Feature};
use crate::chat::ChatRequest;
use crate::policy::{RoutePolicy, TargetPolicy};
use crate::router::{ProviderSlot, Snapshot, TargetState};

/// Whether a target can carry a request, checked once per request before any call.
#[derive(Debug, Clone)]
pub(crate) enum Fit {
    /// It can, leaving out these fields (reported to the caller).
    Carries(Vec<crate::wire::Unsupported>),
    /// It cannot: why, naming the field.
    Refuses(String),
}

/// Checks `request` against each target without sending it. A request that is not `portable` is
/// encoded for each target of another wire, to learn what it would drop or why it cannot take it
/// (targets of the wire of the caller's own body, `origin`, carry it as it is); then a model whose
/// profile lacks a feature the request `needs` cannot take it.
pub(super) fn fits(
    snap: &Snapshot,
    route: &RoutePolicy,
    targets: &[TargetState],
    (request, origin): (&ChatRequest, Option<crate::provider::Protocol>),
    portable: bool,
    needs: &BTreeSet<Feature>,
) -> Box<[Fit]> {
    route
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let wire =
                if portable { Fit::Carries(Vec::new()) } else { wire_fit(snap, targets.get(i), t, request, origin) };
            let wire = match wire {
                Fit::Carries(mut dropped) => {
                    dropped.extend(betas_dropped(snap, t, request));
                    Fit::Carries(dropped)
                }
                refused => return refused,
            };
            let accepts = t.model_profile.as_ref().and_then(|m| m.accepts.as_ref());
            let mut lacks = capability::missing(needs, accepts);
            if let Fit::Carries(dropped) = &wire {
                // what the target drops, it need not honour
                lacks.retain(|f| !dropped.iter().any(|u| Feature::of_field(&u.field) == Some(*f)));
            }
            if lacks.is_empty() { wire } else { Fit::Refuses(capability::describe(&lacks)) }
        })
        .collect()
}

/// The fits of a plan for `op`, from the ones made for chat (`chat`, `None` when every target
/// carries the request as is): a target that cannot do `op` refuses it, for the first reason
/// that applies.
pub(super) fn for_op(
    snap: &Snapshot,
    route: &RoutePolicy,
    chat: Option<&[Fit]>,
    op: Op,
    request: &ChatRequest,
) -> Box<[Fit]> {
    use crate::provider::Protocol;
    let refuses = |t: &TargetPolicy| -> Option<String> {
        let protocol = snap.policy.provider(&t.provider).map(|p| p.protocol);
        match op {
            Op::Chat => None,
            Op::Count if !protocol.is_some_and(Protocol::is_openai) => None,
            Op::Count if !crate::tokens::knows(&t.model) => {
                Some(format!("no tokenizer is known for `{}`: its tokens cannot be counted", t.model))
            }
            Op::Count => crate::tokens::uncountable(request),
            Op::Embed if protocol == Some(Protocol::Anthropic) => {
                Some("the anthropic wire has no embeddings".to_owned())
            }
            Op::Embed => t
                .model_profile
                .as_ref()
                .is_some_and(|m| m.embedding_dimensions.is_none())
                .then(|| format!("`{}` is a chat model, not an embedding model", t.model)),
        }
    };
    route
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let fit = chat.and_then(|f| f.get(i)).cloned().unwrap_or(Fit::Carries(Vec::new()));
            match refuses(t) {
                Some(why) if !matches!(fit, Fit::Refuses(_)) => Fit::Refuses(why),
                _ => fit,
            }
        })
        .collect()
}

/// What target `t`'s wire makes of `request`: nothing to report when it is sent the caller's own
/// body (`origin` is its wire), or an encoding of the request that carries everything (the
/// request's dialect, nothing opaque).
fn wire_fit(
    snap: &Snapshot,
    state: Option<&TargetState>,
    t: &TargetPolicy,
    request: &ChatRequest,
    origin: Option<crate::provider::Protocol>,
) -> Fit {
    use crate::wire::{EncodeError, Target, encode};
    let protocol = match state.and_then(|s| s.provider.as_ref()) {
        Some(ProviderSlot::Ready(p)) => Some(p.protocol()),
        _ => snap.policy.provider(&t.provider).map(|p| p.protocol),
    };
    let Some(protocol) = protocol else { return Fit::Carries(Vec::new()) };
    if origin == Some(protocol) || (request.dialect == Some(protocol) && request.opaque.is_empty()) {
        return Fit::Carries(Vec::new());
    }
    let target = Target { model: &t.model, profile: t.model_profile.as_ref(), unsupported: t.unsupported };
    match encode(protocol, request, target, false) {
        Ok(e) => Fit::Carries(e.dropped),
        Err(EncodeError::Unsupported(fields)) => {
            let names: Vec<String> = fields.iter().map(|u| format!("`{}`", u.field)).collect();
            Fit::Refuses(format!("{} on the {} wire", names.join(", "), protocol.as_str()))
        }
        Err(EncodeError::Invalid(why)) => Fit::Refuses(why),
    }
}

/// The caller's beta features target `t`'s provider is not sent (`drop_betas`, or no
/// `anthropic-beta` in its `forward_headers`): dropped and reported, never a reason to skip it.
fn betas_dropped(snap: &Snapshot, t: &TargetPolicy, request: &ChatRequest) -> Vec<crate::wire::Unsupported> {
    if request.betas.is_empty() {
        return Vec::new();
    }
    match snap.policy.provider(&t.provider) {
        Some(p) if on_anthropic(snap, t) => {
            p.caller_headers.dropped_betas(request).map(crate::wire::Unsupported::beta).collect()
        }
        _ => Vec::new(),
    }
}

/// Whether target `t`'s provider speaks Anthropic's wire.
pub(super) fn on_anthropic(snap: &Snapshot, t: &TargetPolicy) -> bool {
    snap.policy.provider(&t.provider).is_some_and(|p| p.protocol == crate::provider::Protocol::Anthropic)
}
