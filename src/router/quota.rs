//! A target's budget as its provider states it: what the rate-limit headers of its last answer
//! said remains, and when it resets ([`crate::provider::RateLimit`]). Admission steers away from
//! a target whose budget is spent until its reset (or waits for it, when it is the last option),
//! instead of sending the request that would get the 429. Requests admitted since the last answer
//! are taken off locally, so that a burst does not overshoot what the headers said.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::provider::RateLimit;
use crate::sync::lock;

/// The most often a router tells the fleet what one target's rate-limit headers say (at once
/// when they say nothing is left).
pub(crate) const QUOTA_EVERY: Duration = Duration::from_millis(250);

/// What remains in one of the provider's windows, and when it is whole again.
#[derive(Debug, Clone, Copy)]
struct Window {
    remaining: u64,
    reset: Instant,
}

impl Window {
    fn of(remaining: Option<u64>, reset: Option<Duration>, now: Instant) -> Option<Window> {
        // a count without its reset cannot be waited out: it steers nothing
        Some(Window { remaining: remaining?, reset: now.checked_add(reset?)? })
    }

    fn live(self, now: Instant) -> Option<Window> {
        (self.reset > now).then_some(self)
    }

    /// What an answer said, over what was known: in the same window (the resets a second apart
    /// at most), the lower count, since an answer that arrives late says less than the requests
    /// taken off locally since.
    fn merge(known: Option<Window>, said: Option<Window>) -> Option<Window> {
        match (known, said) {
            (Some(k), Some(s)) if s.reset.max(k.reset) - s.reset.min(k.reset) <= Duration::from_secs(1) => {
                Some(Window { remaining: k.remaining.min(s.remaining), reset: s.reset })
            }
            (k, s) => s.or(k),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    requests: Option<Window>,
    tokens: Option<Window>,
}

/// A target's provider-stated budget.
#[derive(Debug, Default)]
pub(crate) struct Quota {
    state: Mutex<State>,
    /// Whether anything was learned and not yet seen expired: the common case reads no lock.
    known: AtomicBool,
    /// When this target's budget was last told to the fleet.
    shared_at: Mutex<Option<Instant>>,
}

/// A target's provider-stated budget, as `/admin/state` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaSnapshot {
    /// Requests left in the provider's window (after the ones sent since its last answer).
    pub requests_remaining: Option<u64>,
    /// Until the provider's request window resets.
    pub requests_reset_ms: Option<u64>,
    /// Tokens left in the provider's window.
    pub tokens_remaining: Option<u64>,
    /// Until the provider's token window resets.
    pub tokens_reset_ms: Option<u64>,
}

impl Quota {
    /// Takes what an answer's headers said, at `now`.
    pub(crate) fn learn(&self, limit: &RateLimit, now: Instant) {
        let requests = Window::of(limit.requests_remaining, limit.requests_reset, now);
        let tokens = Window::of(limit.tokens_remaining, limit.tokens_reset, now);
        if requests.is_none() && tokens.is_none() {
            return;
        }
        let mut s = lock(&self.state);
        s.requests = Window::merge(s.requests, requests);
        s.tokens = Window::merge(s.tokens, tokens);
        self.known.store(true, Ordering::Release);
    }

    /// Whether to tell the fleet what `limit` says now: at once when it says nothing is left, else
    /// at most every [`QUOTA_EVERY`].
    pub(crate) fn share_now(&self, now: Instant, limit: &RateLimit) -> bool {
        let spent = limit.requests_remaining == Some(0) || limit.tokens_remaining == Some(0);
        let mut last = lock(&self.shared_at);
        let due = spent || last.is_none_or(|t| now >= t + QUOTA_EVERY);
        if due {
            *last = Some(now);
        }
        due
    }

    /// Takes a request of `tokens` off the budget, checked and taken under one lock so that a
    /// burst cannot all pass on the last request left; or says until when the budget does not
    /// allow it (no requests left, or fewer tokens than it needs, before the window resets).
    pub(crate) fn try_take(&self, now: Instant, tokens: u64) -> Result<(), Instant> {
        if !self.known.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut s = lock(&self.state);
        s.requests = s.requests.and_then(|w| w.live(now));
        s.tokens = s.tokens.and_then(|w| w.live(now));
        if s.requests.is_none() && s.tokens.is_none() {
            self.known.store(false, Ordering::Release);
            return Ok(());
        }
        let requests = s.requests.filter(|w| w.remaining == 0).map(|w| w.reset);
        let short = s.tokens.filter(|w| tokens > 0 && w.remaining < tokens).map(|w| w.reset);
        if let Some(until) = requests.into_iter().chain(short).max() {
            return Err(until);
        }
        if let Some(w) = &mut s.requests {
            w.remaining -= 1;
        }
        if let Some(w) = &mut s.tokens {
            w.remaining = w.remaining.saturating_sub(tokens);
        }
        Ok(())
    }

    /// Whether a token budget is known (the request's tokens are then worth estimating).
    pub(crate) fn tracks_tokens(&self) -> bool {
        self.known.load(Ordering::Acquire) && lock(&self.state).tokens.is_some()
    }

    pub(crate) fn snapshot(&self, now: Instant) -> Option<QuotaSnapshot> {
        if !self.known.load(Ordering::Acquire) {
            return None;
        }
        let s = lock(&self.state);
        let (requests, tokens) = (s.requests.and_then(|w| w.live(now)), s.tokens.and_then(|w| w.live(now)));
        if requests.is_none() && tokens.is_none() {
            return None;
        }
        let ms = |w: Window| w.reset.saturating_duration_since(now).as_millis() as u64;
        Some(QuotaSnapshot {
            requests_remaining: requests.map(|w| w.remaining),
            requests_reset_ms: requests.map(ms),
            tokens_remaining: tokens.map(|w| w.remaining),
            tokens_reset_ms: tokens.map(ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u64, tokens: u64, reset: Duration) -> RateLimit {
        RateLimit {
            requests_remaining: Some(requests),
            requests_reset: Some(reset),
            tokens_remaining: Some(tokens),
            tokens_reset: Some(reset),
            ..RateLimit::default()
        }
    }

    #[test]
    fn a_spent_budget_blocks_until_its_reset() {
        let q = Quota::default();
        let now = Instant::now();
        assert_eq!(q.try_take(now, 10), Ok(()), "nothing learned, nothing blocked");
        q.learn(&limit(1, 1000, Duration::from_secs(2)), now);
        assert_eq!(q.try_take(now, 10), Ok(()), "the one request left");
        let reset = now + Duration::from_secs(2);
        assert_eq!(q.try_take(now, 10), Err(reset), "taken: the next waits for the reset");
        assert_eq!(q.snapshot(now).and_then(|s| s.requests_remaining), Some(0));
        // an answer of the same window that left before the last take says 1: the lower stays
        q.learn(&limit(1, 1000, Duration::from_millis(1900)), now + Duration::from_millis(100));
        assert_eq!(q.try_take(now + Duration::from_millis(100), 10), Err(reset + Duration::ZERO));
        assert_eq!(q.try_take(reset, 10), Ok(()), "whole again at the reset");
        assert_eq!(q.snapshot(reset), None);
    }

    #[test]
    fn too_few_tokens_block_a_large_request_only() {
        let q = Quota::default();
        let now = Instant::now();
        q.learn(&limit(50, 500, Duration::from_secs(6)), now);
        assert!(q.tracks_tokens());
        assert_eq!(q.try_take(now, 600), Err(now + Duration::from_secs(6)));
        assert_eq!(q.try_take(now, 400), Ok(()));
        assert_eq!(q.try_take(now, 400), Err(now + Duration::from_secs(6)), "100 tokens left");
        // a count without a reset is not waited on
        let q = Quota::default();
        q.learn(&RateLimit { requests_remaining: Some(0), ..RateLimit::default() }, now);
        assert_eq!(q.try_take(now, 1), Ok(()));
    }
}
