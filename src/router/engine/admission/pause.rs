//! The pause gate: a provider, or a target, that a rate limit paused (its `retry-after`, here or
//! told by the fleet) takes no attempt until the pause ends.

use super::{Entry, Gate};
use crate::router::engine::pause;
use crate::router::engine::plan::Tally;
use crate::router::outcome::SkipReason;
use tokio::time::Instant;

/// The pause gate.
pub(super) struct Pauses;

impl Gate for Pauses {
    type Held = ();

    async fn pass(&self, entry: &mut Entry<'_>, tally: &mut Tally) -> Result<(), SkipReason> {
        for node in [entry.provider_node, &**entry.target_node] {
            let now = entry.now;
            if let Some(until) = node.paused_until(now) {
                let wait = until - now;
                if entry.may_wait(now, wait) {
                    pause(wait).await;
                    entry.now = Instant::now();
                } else {
                    tally.note_free_at(until);
                    return Err(SkipReason::Paused);
                }
            }
        }
        Ok(())
    }
}
