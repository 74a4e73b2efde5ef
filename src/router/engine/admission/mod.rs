//! The gates an attempt passes before its call, in order: the breakers, the pauses, the provider's
//! spending budget, the budget its headers stated, and the rate and concurrency limits. Each gate
//! lets the attempt through (holding what it took until the verdict), or says why not and when it
//! may open. Only for the last option does a gate wait, and then only within the target's
//! `retry_after_cap` and the request's deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Op;
use super::plan::Tally;
use crate::policy::{RoutePolicy, TargetPolicy};
use crate::router::breaker::ProbePermit;
use crate::router::health::Node;
use crate::router::limiter::LimitPermit;
use crate::router::outcome::SkipReason;
use crate::router::quota::QuotaHold;
use crate::router::{Inner, Snapshot};

mod breakers;
mod budget;
mod limits;
mod pause;
mod quota;

/// One gate. Called on its concrete type (no dynamic dispatch on the per-attempt path); a gate
/// that turns the attempt away notes in the tally when it may open.
pub(super) trait Gate {
    /// What passing holds until the attempt's verdict.
    type Held;

    /// Lets the attempt through, or says why not; waits only as [`Entry::may_wait`] allows,
    /// moving `entry.now` on when it does.
    async fn pass(&self, entry: &mut Entry<'_>, tally: &mut Tally) -> Result<Self::Held, SkipReason>;
}

/// What the gates are asked about: one attempt on one target, and the clock as last read.
pub(super) struct Entry<'a> {
    pub(super) inner: &'a Inner,
    pub(super) snap: &'a Snapshot,
    pub(super) route: &'a RoutePolicy,
    pub(super) target: &'a TargetPolicy,
    pub(super) target_node: &'a Arc<Node>,
    pub(super) provider_node: &'a Node,
    pub(super) op: Op,
    /// The tokens the attempt may need, for token limits and stated budgets.
    pub(super) estimate: u64,
    /// Probe an open breaker now, rather than wait for its cooldown.
    pub(super) force_probe: bool,
    /// Whether this is the last option: only then is a gate waited out.
    pub(super) is_last: bool,
    pub(super) deadline: Instant,
    pub(super) now: Instant,
}

impl Entry<'_> {
    /// Whether a gate that opens `wait` after `now` is waited out: for the last option only,
    /// within the target's `retry_after_cap`, and when it opens before the deadline.
    fn may_wait(&self, now: Instant, wait: Duration) -> bool {
        self.is_last && wait <= self.target.retry.retry_after_cap && now + wait < self.deadline
    }
}

/// What an attempt took at the gates, held until its verdict is recorded.
pub(super) struct Admitted {
    pub(super) probes: Vec<ProbePermit>,
    /// The provider's, then the target's.
    pub(super) limits: [LimitPermit; 2],
    pub(super) quota: QuotaHold,
    /// When the attempt was let through.
    pub(super) at: Instant,
}

/// Takes the attempt through every gate, in order.
pub(super) async fn admit(entry: &mut Entry<'_>, tally: &mut Tally) -> Result<Admitted, SkipReason> {
    let probes = breakers::Breakers.pass(entry, tally).await?;
    pause::Pauses.pass(entry, tally).await?;
    budget::SpendingBudget.pass(entry, tally).await?;
    let quota = quota::StatedBudget.pass(entry, tally).await?;
    let limits = limits::Limits.pass(entry, tally).await?;
    Ok(Admitted { probes, limits, quota, at: entry.now })
}
