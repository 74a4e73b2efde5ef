//! Consecutive-failure circuit breaker, after linkerd2-proxy's: open after N counted failures in a
//! row, let exactly one probe through after the cooldown, close on its success, double the cooldown
//! (up to a cap) on its failure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::policy::{BreakerConfig, ProbeMode};

/// The breaker's state as reported by `health()` and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// No traffic until the cooldown ends.
    Open,
    /// The cooldown ended: one probe may go (or is in flight).
    HalfOpen,
}

impl BreakerState {
    /// The `snake_case` name.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    config: BreakerConfig,
    consecutive: u32,
    /// `Some` while open (or half-open): when the current cooldown ends.
    open_until: Option<Instant>,
    /// The cooldown that applies to the next opening.
    cooldown: Duration,
    probe_in_flight: bool,
    /// Identifies the current probe, so that a late drop of an older permit frees nothing.
    probe_gen: u64,
}

/// A consecutive-failure breaker. Cloning shares the state.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<Inner>,
    /// False while the breaker is closed with nothing counted: the common case is then read
    /// without taking the lock (no write to a line two cores share on every request).
    dirty: AtomicBool,
}

/// Closed, nothing counted, no probe, the configured cooldown: nothing to reset.
fn pristine(s: &Inner) -> bool {
    s.consecutive == 0 && s.open_until.is_none() && !s.probe_in_flight && s.cooldown == s.config.cooldown
}

/// A guard that republishes the `dirty` flag when it is dropped, after any change.
struct Locked<'a> {
    guard: MutexGuard<'a, Inner>,
    dirty: &'a AtomicBool,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.guard
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.dirty.store(!pristine(&self.guard), Ordering::Release);
    }
}

/// May a request go through?
#[derive(Debug)]
pub(crate) enum Admission {
    /// Yes: the breaker is closed.
    Pass,
    /// Yes, as the single probe. Drop the permit without a verdict (a cancelled request) and the
    /// probe slot is free again.
    Probe(ProbePermit),
    /// No, until this instant (or until the probe in flight resolves).
    Reject {
        /// When the cooldown ends (for a probe in flight: already past).
        until: Instant,
    },
}

/// The one probe slot of a half-open breaker. Record the verdict with [`Breaker::success`] or
/// [`Breaker::failure`], then drop it; dropping it without a verdict (a cancelled request, a
/// failure that does not count) frees the slot for the next request.
#[derive(Debug)]
pub(crate) struct ProbePermit {
    breaker: Breaker,
    generation: u64,
}

impl Drop for ProbePermit {
    fn drop(&mut self) {
        let mut s = self.breaker.lock();
        if s.probe_gen == self.generation {
            s.probe_in_flight = false;
        }
    }
}

/// What a verdict did to the breaker, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transition {
    /// State before.
    pub(crate) from: BreakerState,
    /// State after.
    pub(crate) to: BreakerState,
}

impl Breaker {
    /// A closed breaker.
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Breaker {
            inner: Arc::new(Shared {
                state: Mutex::new(Inner {
                    config,
                    consecutive: 0,
                    open_until: None,
                    cooldown: config.cooldown,
                    probe_in_flight: false,
                    probe_gen: 0,
                }),
                dirty: AtomicBool::new(false),
            }),
        }
    }

    fn lock(&self) -> Locked<'_> {
        // the state stays consistent even if a holder panicked: every update is a plain assignment
        Locked { guard: crate::sync::lock(&self.inner.state), dirty: &self.inner.dirty }
    }

    /// Closed with nothing counted (read without the lock; a race with a concurrent failure lets
    /// one more request through, as taking the lock a moment earlier would have).
    fn is_pristine(&self) -> bool {
        !self.inner.dirty.load(Ordering::Acquire)
    }

    /// Applies new settings (a reload) without forgetting the state.
    pub(crate) fn reconfigure(&self, config: BreakerConfig) {
        let mut s = self.lock();
        if s.config != config {
            s.config = config;
            s.cooldown = s.cooldown.clamp(config.cooldown, config.max_cooldown.max(config.cooldown));
        }
    }

    /// The state at `now`.
    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        state_of(&self.lock(), now)
    }

    /// When the current cooldown ends, if open or half-open.
    pub(crate) fn open_until(&self) -> Option<Instant> {
        self.lock().open_until
    }

    /// Whether the router probes this breaker's target itself ([`ProbeMode::Active`]).
    pub(crate) fn is_active(&self) -> bool {
        self.probe_mode() == ProbeMode::Active
    }

    /// Who probes when the cooldown ends.
    pub(crate) fn probe_mode(&self) -> ProbeMode {
        self.lock().config.probe
    }

    /// Asks to send a request at `now`. With active probes a request is never the probe: it is
    /// turned away until the router's own probe closes the breaker.
    pub(crate) fn admit(&self, now: Instant) -> Admission {
        if self.is_pristine() {
            return Admission::Pass;
        }
        let mut s = self.lock();
        match s.open_until {
            None => Admission::Pass,
            Some(until) if now < until => Admission::Reject { until },
            Some(until) if s.probe_in_flight || s.config.probe == ProbeMode::Active => Admission::Reject { until },
            Some(_) => {
                s.probe_in_flight = true;
                s.probe_gen += 1;
                let generation = s.probe_gen;
                drop(s);
                Admission::Probe(ProbePermit { breaker: self.clone(), generation })
            }
        }
    }

    /// Lets a probe through now even though the cooldown has not ended: when every target of a route
    /// is open, the router probes the one whose cooldown ends first rather than refuse untried
    /// (whatever the probe mode). `None` when a probe is already in flight.
    pub(crate) fn force_probe(&self) -> Option<ProbePermit> {
        let mut s = self.lock();
        // with active probes too: a request with nowhere else to go tries rather than fails
        if s.probe_in_flight {
            return None;
        }
        s.probe_in_flight = true;
        s.probe_gen += 1;
        let generation = s.probe_gen;
        drop(s);
        Some(ProbePermit { breaker: self.clone(), generation })
    }

    /// The router's own probe: the slot of an open breaker whose cooldown has ended, whatever the
    /// mode. `None` when the breaker is closed, still cooling down, or a probe is in flight.
    pub(crate) fn probe_now(&self, now: Instant) -> Option<ProbePermit> {
        let mut s = self.lock();
        match s.open_until {
            Some(until) if now >= until && !s.probe_in_flight => {
                s.probe_in_flight = true;
                s.probe_gen += 1;
                let generation = s.probe_gen;
                drop(s);
                Some(ProbePermit { breaker: self.clone(), generation })
            }
            _ => None,
        }
    }

    /// A success: closes the breaker and resets the count and the cooldown.
    pub(crate) fn success(&self, now: Instant) -> Option<Transition> {
        if self.is_pristine() {
            return None; // nothing to reset
        }
        let mut s = self.lock();
        let from = state_of(&s, now);
        s.consecutive = 0;
        s.open_until = None;
        s.probe_in_flight = false;
        s.probe_gen += 1;
        s.cooldown = s.config.cooldown;
        (from != BreakerState::Closed).then_some(Transition { from, to: BreakerState::Closed })
    }

    /// A counted failure: opens after `consecutive_failures` in a row; a failed probe reopens with
    /// the cooldown doubled (up to `max_cooldown`).
    pub(crate) fn failure(&self, now: Instant) -> Option<Transition> {
        let mut s = self.lock();
        let from = state_of(&s, now);
        s.consecutive = s.consecutive.saturating_add(1);
        match s.open_until {
            Some(_) if s.probe_in_flight || now >= s.open_until.unwrap_or(now) => {
                // the probe failed (or a straggler failed after the cooldown): reopen, longer
                s.probe_in_flight = false;
                s.probe_gen += 1;
                s.cooldown = (s.cooldown * 2).min(s.config.max_cooldown.max(s.config.cooldown));
                s.open_until = Some(now + s.cooldown);
            }
            Some(_) => {} // already open: a straggler from before the opening
            None if s.consecutive >= s.config.consecutive_failures => {
                s.open_until = Some(now + s.cooldown);
            }
            None => {}
        }
        let to = state_of(&s, now);
        (from != to || from == BreakerState::HalfOpen).then_some(Transition { from, to })
    }

    /// Opens for `cooldown` from `now` (another router of the fleet opened it), or keeps it open
    /// that long at least; its own cooldown and count stay as they are.
    #[cfg(feature = "redis")]
    pub(crate) fn open_for(&self, now: Instant, cooldown: Duration) -> Option<Transition> {
        let mut s = self.lock();
        let from = state_of(&s, now);
        let until = now + cooldown;
        if s.open_until.is_some_and(|u| u >= until) {
            return None;
        }
        s.consecutive = s.consecutive.max(s.config.consecutive_failures);
        s.open_until = Some(until);
        let to = state_of(&s, now);
        (from != to).then_some(Transition { from, to })
    }

    /// Opens at once (authentication, quota, unknown model), whatever the count.
    pub(crate) fn trip(&self, now: Instant) -> Option<Transition> {
        let mut s = self.lock();
        let from = state_of(&s, now);
        if from == BreakerState::HalfOpen {
            drop(s);
            return self.failure(now);
        }
        if s.open_until.is_none() {
            s.consecutive = s.consecutive.max(s.config.consecutive_failures);
            s.open_until = Some(now + s.cooldown);
        }
        let to = state_of(&s, now);
        (from != to).then_some(Transition { from, to })
    }
}

fn state_of(s: &Inner, now: Instant) -> BreakerState {
    match s.open_until {
        None => BreakerState::Closed,
        Some(until) if now < until => BreakerState::Open,
        Some(_) => BreakerState::HalfOpen,
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// The passive breaker these tests were written for: the first request after the cooldown
    /// probes.
    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(40),
            probe: ProbeMode::Passive,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_active_breaker_never_lets_a_request_probe_but_gives_the_router_its_slot() {
        let b = Breaker::new(BreakerConfig { probe: ProbeMode::Active, ..config() });
        let now = Instant::now();
        for _ in 0..3 {
            b.failure(now);
        }
        assert!(b.probe_now(now).is_none(), "still cooling down");
        let later = now + Duration::from_secs(10);
        assert!(matches!(b.admit(later), Admission::Reject { .. }), "a request is not the probe");
        let permit = b.probe_now(later).expect("the router's probe");
        assert!(b.force_probe().is_none(), "one probe at a time, forced or not");
        assert!(b.probe_now(later).is_none(), "one probe at a time");
        assert!(b.success(later).is_some());
        drop(permit);
        assert!(matches!(b.admit(later), Admission::Pass));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_n_consecutive_failures_and_success_resets_the_count() {
        let b = Breaker::new(config());
        let now = Instant::now();
        b.failure(now);
        b.failure(now);
        b.success(now);
        b.failure(now);
        b.failure(now);
        assert_eq!(b.state(now), BreakerState::Closed);
        let t = b.failure(now);
        assert_eq!(t, Some(Transition { from: BreakerState::Closed, to: BreakerState::Open }));
        assert!(matches!(b.admit(now), Admission::Reject { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn exactly_one_probe_after_cooldown_and_doubling_on_failure() {
        let b = Breaker::new(config());
        let t0 = Instant::now();
        for _ in 0..3 {
            b.failure(t0);
        }
        let t1 = t0 + Duration::from_secs(10);
        let probe = match b.admit(t1) {
            Admission::Probe(p) => p,
            other => panic!("expected a probe, got {other:?}"),
        };
        assert!(matches!(b.admit(t1), Admission::Reject { .. }), "a second probe must wait");
        b.failure(t1);
        drop(probe);
        // cooldown doubled to 20s
        assert!(matches!(b.admit(t1 + Duration::from_secs(19)), Admission::Reject { .. }));
        let t2 = t1 + Duration::from_secs(20);
        let probe = match b.admit(t2) {
            Admission::Probe(p) => p,
            other => panic!("expected a probe, got {other:?}"),
        };
        b.failure(t2);
        drop(probe);
        let t3 = t2 + Duration::from_secs(40);
        let probe = match b.admit(t3) {
            Admission::Probe(p) => p,
            other => panic!("expected a probe, got {other:?}"),
        };
        b.failure(t3);
        drop(probe);
        // capped at 40s, not 80s
        assert_eq!(b.open_until(), Some(t3 + Duration::from_secs(40)));
        let t4 = t3 + Duration::from_secs(40);
        let probe = match b.admit(t4) {
            Admission::Probe(p) => p,
            other => panic!("expected a probe, got {other:?}"),
        };
        assert_eq!(b.success(t4), Some(Transition { from: BreakerState::HalfOpen, to: BreakerState::Closed }));
        drop(probe);
        assert!(matches!(b.admit(t4), Admission::Pass));
        // the cooldown is back to 10s for the next opening
        for _ in 0..3 {
            b.failure(t4);
        }
        assert_eq!(b.open_until(), Some(t4 + Duration::from_secs(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_the_slot() {
        let b = Breaker::new(config());
        let t0 = Instant::now();
        b.trip(t0);
        let t1 = t0 + Duration::from_secs(10);
        let probe = b.admit(t1);
        assert!(matches!(probe, Admission::Probe(_)));
        drop(probe); // the request was cancelled before a verdict
        assert!(matches!(b.admit(t1), Admission::Probe(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn force_probe_goes_before_the_cooldown_but_only_once() {
        let b = Breaker::new(config());
        let t0 = Instant::now();
        b.trip(t0);
        let p = b.force_probe();
        assert!(p.is_some());
        assert!(b.force_probe().is_none());
        drop(p);
        assert!(b.force_probe().is_some());
    }
}
