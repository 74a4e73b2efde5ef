//! The stated budget gate: the requests and tokens the provider's rate-limit headers said are
//! left to the target. A count passes: Anthropic meters counting apart, and OpenAI not at all.

use super::{Entry, Gate};
use crate::router::engine::plan::Tally;
use crate::router::engine::{Op, pause};
use crate::router::outcome::SkipReason;
use crate::router::quota::{Quota, QuotaHold};
use tokio::time::Instant;

/// The stated budget gate.
pub(super) struct StatedBudget;

impl Gate for StatedBudget {
    /// The request, in flight against that budget until the provider's next word.
    type Held = QuotaHold;

    async fn pass(&self, entry: &mut Entry<'_>, tally: &mut Tally) -> Result<QuotaHold, SkipReason> {
        if entry.op == Op::Count {
            return Ok(QuotaHold::default());
        }
        let now = entry.now;
        match Quota::try_take(entry.target_node, now, entry.estimate) {
            Ok(hold) => Ok(hold),
            Err(until) => {
                let wait = until.saturating_duration_since(now);
                if !entry.may_wait(now, wait) {
                    tally.note_free_at(until);
                    return Err(SkipReason::ProviderBudget);
                }
                pause(wait).await;
                entry.now = Instant::now();
                Quota::try_take(entry.target_node, entry.now, entry.estimate).map_err(|until| {
                    tally.note_free_at(until);
                    SkipReason::ProviderBudget
                })
            }
        }
    }
}
