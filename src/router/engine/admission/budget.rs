//! The spending budget gate: a provider whose `budget` is spent for this window takes no attempt
//! until it resets (a count costs nothing, and passes).

use super::{Entry, Gate};
use crate::router::budget::Scope;
use crate::router::engine::Op;
use crate::router::engine::plan::Tally;
use crate::router::outcome::SkipReason;

/// The spending budget gate.
pub(super) struct SpendingBudget;

impl Gate for SpendingBudget {
    type Held = ();

    async fn pass(&self, entry: &mut Entry<'_>, tally: &mut Tally) -> Result<(), SkipReason> {
        let inner = entry.inner;
        if entry.op != Op::Count
            && inner.has_budgets.load(std::sync::atomic::Ordering::Acquire)
            && let Some(budget) = entry.snap.policy.provider(&entry.target.provider).and_then(|p| p.budget)
        {
            let scope = Scope::Provider(entry.target.provider.clone());
            if let Some(resets_in) = inner.budgets.exhausted_for(&scope, Some(&budget), std::time::SystemTime::now()) {
                tally.note_free_at(entry.now + resets_in);
                return Err(SkipReason::Budget);
            }
        }
        Ok(())
    }
}
