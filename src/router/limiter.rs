//! Local rate limits: requests per minute and tokens per minute (governor, on tokio's clock so
//! paused-time tests work) and a concurrency cap (a semaphore).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::policy::Limits;

/// governor's clock, read from tokio's (pausable) time.
#[derive(Debug, Clone)]
pub(crate) struct TokioClock {
    base: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.base)
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// Why a request may not go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// `rpm` or `tpm` exhausted: capacity returns after this wait.
    Rate {
        /// How long until the request would fit.
        wait: Duration,
        /// Which limit (`rpm` or `tpm`).
        limit: &'static str,
    },
    /// The request needs more tokens than `tpm` allows in a minute: it never fits.
    TooLarge {
        /// Tokens needed.
        need: u64,
        /// The tpm.
        tpm: u32,
    },
    /// `concurrency` requests already in flight.
    Concurrency,
}

/// The limits of one provider or target.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: Limits,
    clock: TokioClock,
    rpm: Option<Gcra>,
    tpm: Option<Gcra>,
    concurrency: Option<Arc<Semaphore>>,
}

/// What an admitted request holds: its concurrency slot, released on drop (a local one, or one
/// of the fleet's, `[state] backend = "redis"`).
#[derive(Debug, Default)]
pub(crate) struct LimitPermit {
    _slot: Option<OwnedSemaphorePermit>,
    _shared: Option<super::shared::SharedSlot>,
}

impl LimitPermit {
    /// A fleet-wide slot (or none, with no concurrency limit).
    pub(crate) fn shared(slot: Option<super::shared::SharedSlot>) -> Self {
        LimitPermit { _slot: None, _shared: slot }
    }
}

/// A snapshot for `health()`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LimiterSnapshot {
    /// The configured limits.
    pub limits: Limits,
    /// Free concurrency slots, when capped.
    pub concurrency_available: Option<usize>,
}

fn per_minute(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_minute)
}

impl Limiter {
    /// A limiter for `limits`.
    pub(crate) fn new(limits: Limits) -> Self {
        let clock = TokioClock { base: Instant::now() };
        Limiter {
            limits,
            rpm: limits.rpm.and_then(per_minute).map(|q| RateLimiter::direct_with_clock(q, clock.clone())),
            tpm: limits.tpm.and_then(per_minute).map(|q| RateLimiter::direct_with_clock(q, clock.clone())),
            concurrency: limits.concurrency.map(|n| Arc::new(Semaphore::new(n as usize))),
            clock,
        }
    }

    /// The limits it enforces.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes capacity for one request needing `tokens`, or says why not (and takes nothing).
    pub(crate) fn try_acquire(&self, tokens: u64) -> Result<LimitPermit, Denied> {
        let slot = match &self.concurrency {
            Some(sem) => Some(sem.clone().try_acquire_owned().map_err(|_| Denied::Concurrency)?),
            None => None,
        };
        if let (Some(_), Some(limit)) = (&self.tpm, self.limits.tpm)
            && tokens > u64::from(limit)
        {
            return Err(Denied::TooLarge { need: tokens, tpm: limit });
        }
        // check rpm before spending tokens; a tpm refusal then costs one rpm cell, which errs on
        // the side of sending less
        if let Some(rpm) = &self.rpm
            && let Err(not_until) = rpm.check()
        {
            let wait = not_until.wait_time_from(self.clock.now());
            return Err(Denied::Rate { wait, limit: "rpm" });
        }
        if let Some(tpm) = &self.tpm {
            let n = NonZeroU32::new(u32::try_from(tokens.max(1)).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
            match tpm.check_n(n) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    return Err(Denied::Rate { wait, limit: "tpm" });
                }
                Err(_) => return Err(Denied::TooLarge { need: tokens, tpm: self.limits.tpm.unwrap_or(0) }),
            }
        }
        Ok(LimitPermit { _slot: slot, _shared: None })
    }

    /// Takes only a concurrency slot (for calls that spend no rate budget, such as a token count).
    pub(crate) fn try_slot(&self) -> Result<LimitPermit, Denied> {
        let slot = match &self.concurrency {
            Some(sem) => Some(sem.clone().try_acquire_owned().map_err(|_| Denied::Concurrency)?),
            None => None,
        };
        Ok(LimitPermit { _slot: slot, _shared: None })
    }

    /// Charges tokens the provider reported beyond the estimate (best effort: never waits).
    pub(crate) fn charge_extra(&self, tokens: u64) {
        if let (Some(tpm), Some(n)) = (&self.tpm, NonZeroU32::new(u32::try_from(tokens).unwrap_or(u32::MAX))) {
            let _ = tpm.check_n(n);
        }
    }

    /// A snapshot for `health()`.
    pub(crate) fn snapshot(&self) -> LimiterSnapshot {
        LimiterSnapshot {
            limits: self.limits,
            concurrency_available: self.concurrency.as_ref().map(|s| s.available_permits()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rpm_allows_a_burst_then_refills() {
        let l = Limiter::new(Limits { rpm: Some(2), tpm: None, concurrency: None });
        assert!(l.try_acquire(1).is_ok());
        assert!(l.try_acquire(1).is_ok());
        let Err(Denied::Rate { wait, limit }) = l.try_acquire(1) else { panic!("third request must wait") };
        assert_eq!(limit, "rpm");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30), "{wait:?}");
        tokio::time::advance(wait).await;
        assert!(l.try_acquire(1).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn tpm_counts_tokens_and_rejects_what_never_fits() {
        let l = Limiter::new(Limits { rpm: None, tpm: Some(1000), concurrency: None });
        assert!(l.try_acquire(600).is_ok());
        assert!(matches!(l.try_acquire(600), Err(Denied::Rate { limit: "tpm", .. })));
        assert_eq!(l.try_acquire(5000).err(), Some(Denied::TooLarge { need: 5000, tpm: 1000 }));
    }

    #[tokio::test]
    async fn concurrency_slot_is_released_on_drop() {
        let l = Limiter::new(Limits { rpm: None, tpm: None, concurrency: Some(1) });
        let p = l.try_acquire(1);
        assert!(p.is_ok());
        assert_eq!(l.try_acquire(1).err(), Some(Denied::Concurrency));
        drop(p);
        assert!(l.try_acquire(1).is_ok());
    }
}
