//! What an attempt asks a target: the caller's request, or the continuation of a streamed answer
//! in the form the target can take.

use crate::chat::ChatRequest;
use crate::policy::{Resume, TargetPolicy};
use crate::router::health::Node;
use crate::router::outcome::SkipReason;

/// What an attempt asks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ask<'r> {
    /// The caller's request, with the body it came in if it is unchanged since.
    Request(&'r ChatRequest, Option<&'r crate::wire::Original>),
    /// The continuation of a streamed answer that failed midway, in the two forms a target may
    /// take it: with the partial answer as an assistant prefill, or with it in the conversation
    /// and an instruction to go on. Each target uses the first of its `resume` strategies it can.
    Resume { prefill: &'r ChatRequest, instructed: &'r ChatRequest },
}

/// The request a target is sent, the caller's body when it is unchanged, and the strategy of a
/// continuation.
pub(super) type Form<'r> = (&'r ChatRequest, Option<&'r crate::wire::Original>, Option<Resume>);

impl<'r> Ask<'r> {
    /// What `target` is sent: the caller's request, or the continuation its first usable
    /// `resume` strategy (in the order written) makes; or why it cannot take part. A prefill is
    /// usable where the model takes one: as its profile or a past 400 says, and when neither says,
    /// only on Anthropic's wire (an OpenAI-compatible server answers a trailing assistant turn
    /// afresh instead of continuing it), never with extended thinking on (Claude refuses it then),
    /// and not once `prefill_refused` by this target for this request.
    pub(super) fn form(
        self,
        target: &TargetPolicy,
        node: &Node,
        anthropic: bool,
        prefill_refused: bool,
    ) -> Result<Form<'r>, SkipReason> {
        let Ask::Resume { prefill, instructed } = self else {
            let Ask::Request(request, original) = self else { unreachable!() };
            return Ok((request, original, None));
        };
        let thinking = matches!(
            &prefill.reasoning,
            Some(crate::chat::Reasoning::Budget { .. })
                | Some(crate::chat::Reasoning::Effort { .. })
                | Some(crate::chat::Reasoning::Adaptive { .. })
        ) && !matches!(&prefill.reasoning, Some(crate::chat::Reasoning::Effort { effort }) if effort == "none");
        let takes_prefill =
            !prefill_refused && !thinking && node.learned_prefill().or(target.supports_prefill()).unwrap_or(anthropic);
        for strategy in &target.resume {
            match strategy {
                Resume::Prefill if takes_prefill => return Ok((prefill, None, Some(Resume::Prefill))),
                Resume::Instructed => return Ok((instructed, None, Some(Resume::Instructed))),
                _ => {}
            }
        }
        Err(if target.resumes_with(Resume::Prefill) { SkipReason::NoPrefill } else { SkipReason::NoResume })
    }
}
