//! The limits gate: the provider's rate and concurrency limits, then the target's. A fleet's are
//! taken from the state it shares (when it answers in time), else from this router's own. A
//! count spends no rate budget but holds a concurrency slot like any call.

use std::time::Duration;

use tokio::time::Instant;

use super::{Entry, Gate};
use crate::policy::{Limits as LimitConfig, OnStateError};
use crate::router::engine::plan::Tally;
use crate::router::engine::{Op, pause};
use crate::router::limiter::{Denied, LimitPermit, Limiter};
use crate::router::outcome::SkipReason;
use crate::router::shared::{Shared, SharedSlot};

/// The limits gate.
pub(super) struct Limits;

impl Gate for Limits {
    /// The provider's permit, then the target's (an array, not a vector, on this per-attempt path).
    type Held = [LimitPermit; 2];

    async fn pass(&self, entry: &mut Entry<'_>, tally: &mut Tally) -> Result<Self::Held, SkipReason> {
        let mut permits: [LimitPermit; 2] = Default::default();
        let models = [None, Some(entry.target.model.as_str())];
        let nodes = [entry.provider_node, &**entry.target_node];
        for ((slot, node), model) in permits.iter_mut().zip(nodes).zip(models) {
            let Some(limiter) = node.limiter_if_limited() else { continue };
            if entry.op == Op::Count {
                *slot = limiter.try_slot().map_err(|_| SkipReason::Concurrency)?;
                continue;
            }
            let limits = limiter.limits();
            if let Some(shared) = entry.inner.shared.load_full() {
                if limits.tpm.is_some_and(|tpm| entry.estimate > u64::from(tpm)) {
                    return Err(SkipReason::TooLarge);
                }
                let taken = take_shared(entry, tally, &shared, model, limits).await?;
                entry.now = Instant::now();
                if let Some(taken) = taken {
                    *slot = LimitPermit::shared(taken);
                    continue;
                }
            }
            *slot = take_local(entry, tally, &limiter).await?;
        }
        Ok(permits)
    }
}

/// Takes a slot of the fleet's limits for `model` (`None`: the provider's) from the shared state:
/// `None` when the state could not say in time and fails open, for the local limits to decide.
async fn take_shared(
    entry: &Entry<'_>,
    tally: &mut Tally,
    shared: &std::sync::Arc<Shared>,
    model: Option<&str>,
    limits: LimitConfig,
) -> Result<Option<Option<SharedSlot>>, SkipReason> {
    let target = entry.target;
    // a crashed router's slot comes back once its attempt could not last any longer
    let lease = target.timeouts.attempt + Duration::from_secs(10);
    let mut waited = false;
    loop {
        match shared.take(&target.provider, model, limits, entry.estimate, lease).await {
            Ok(Ok(slot)) => return Ok(Some(slot)),
            Ok(Err(Denied::Rate { wait, .. })) => {
                let now = Instant::now();
                if !waited && entry.may_wait(now, wait) {
                    waited = true;
                    pause(wait).await;
                } else {
                    tally.note_free_at(now + wait);
                    return Err(SkipReason::RateLimit);
                }
            }
            Ok(Err(Denied::Concurrency)) => return Err(SkipReason::Concurrency),
            Ok(Err(_)) => return Err(SkipReason::RateLimit),
            Err(_) if shared.on_error() == OnStateError::FailClosed => {
                return Err(SkipReason::SharedStateUnavailable);
            }
            // Redis could not say in time: the local limits decide
            Err(_) => return Ok(None),
        }
    }
}

/// Takes a permit of this router's own `limiter`, waiting out a rate limit once when allowed.
async fn take_local(entry: &mut Entry<'_>, tally: &mut Tally, limiter: &Limiter) -> Result<LimitPermit, SkipReason> {
    let mut waited = false;
    loop {
        match limiter.try_acquire(entry.estimate) {
            Ok(p) => return Ok(p),
            Err(Denied::TooLarge { .. }) => return Err(SkipReason::TooLarge),
            Err(Denied::Concurrency) => return Err(SkipReason::Concurrency),
            Err(Denied::Rate { wait, .. }) => {
                entry.now = Instant::now();
                if !waited && entry.may_wait(entry.now, wait) {
                    waited = true;
                    pause(wait).await;
                    entry.now = Instant::now();
                } else {
                    tally.note_free_at(entry.now + wait);
                    return Err(SkipReason::RateLimit);
                }
            }
        }
    }
}
