//! A target's budget as its provider states it: what the rate-limit headers of its last answer
//! said remains, and when it is whole again ([`crate::provider::RateLimit`]). Admission steers
//! away from a target whose budget is spent until enough of it is back (or waits for that, when it
//! is the last option), instead of sending the request that would get the 429.
//!
//! OpenAI and Anthropic refill their budgets continuously, and their reset is when the budget is
//! whole again: with the limit stated too, what is back at any time is read off the line from what
//! remained to the limit at the reset. Requests admitted and not yet answered are taken off what
//! the provider said: they are counted as in flight ([`QuotaHold`]) until their own answer says
//! what the provider counted, so neither a burst overshoots nor a steady flow drifts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::provider::RateLimit;
use crate::sync::lock;

/// The most often a router tells the fleet what one target's rate-limit headers say (at once
/// when they say nothing is left).
pub(crate) const QUOTA_EVERY: Duration = Duration::from_millis(250);

/// One of the provider's budgets, as an answer stated it.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// What remained.
    said: u64,
    /// The whole budget, when stated: the budget refills from `said` to it by `reset`.
    limit: Option<u64>,
    /// When the request that brought the answer was sent: a later answer to an earlier request
    /// says less than what is known.
    sent: Instant,
    /// When the answer came.
    at: Instant,
    /// When the budget is whole again.
    reset: Instant,
}

impl Window {
    fn of(
        said: Option<u64>,
        limit: Option<u64>,
        reset: Option<Duration>,
        (sent, now): (Instant, Instant),
    ) -> Option<Self> {
        // a count without its reset cannot be waited out: it steers nothing
        Some(Window { said: said?, limit, sent, at: now, reset: now.checked_add(reset?)? })
    }

    fn live(self, now: Instant) -> Option<Window> {
        (self.reset > now).then_some(self)
    }

    /// How far the budget refills by `reset`, and over how long: none when the limit is unknown.
    fn refill(&self) -> Option<(u64, f64)> {
        let span = self.reset.saturating_duration_since(self.at).as_secs_f64();
        let gap = self.limit?.checked_sub(self.said).filter(|&g| g > 0)?;
        (span > 0.0).then_some((gap, span))
    }

    /// What is back by `now`, whole units only.
    fn available(&self, now: Instant) -> u64 {
        match self.refill() {
            Some((gap, span)) => {
                let gone = now.saturating_duration_since(self.at).as_secs_f64().min(span);
                self.said + ((gap as f64) * gone / span).floor() as u64
            }
            None => self.said,
        }
    }

    /// When `n` will be available (more than the answer said remained): rounded up to the next
    /// millisecond, so that [`Window::available`] says so at that instant, whatever the floating
    /// point made of it.
    fn when(&self, n: u64) -> Instant {
        match self.refill() {
            Some((gap, span)) if n <= self.said + gap => {
                let share = n.saturating_sub(self.said) as f64 / gap as f64;
                let ms = (span * share * 1000.0).ceil() + 1.0;
                Duration::try_from_secs_f64(ms / 1000.0).map_or(self.reset, |d| (self.at + d).min(self.reset))
            }
            _ => self.reset,
        }
    }

    /// What an answer said, over what was known: the answer to the later request.
    fn merge(known: Option<Window>, said: Option<Window>) -> Option<Window> {
        match (known, said) {
            (Some(k), Some(s)) if s.sent < k.sent => Some(k),
            (k, s) => s.or(k),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    requests: Option<Window>,
    tokens: Option<Window>,
    /// Requests admitted since a budget was known whose answers have not said what the provider
    /// counted.
    in_flight: u64,
    /// Their tokens.
    in_flight_tokens: u64,
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

/// A request counted in flight against a target's budget: given back when its answer is learned
/// from ([`QuotaHold::release`]) or when the attempt ends without one.
#[derive(Debug, Default)]
pub(crate) struct QuotaHold(Option<(Arc<super::health::Node>, u64)>);

impl QuotaHold {
    /// The request's answer came: what the provider says from now on counts it.
    pub(crate) fn release(&mut self) {
        if let Some((node, tokens)) = self.0.take() {
            node.quota.give_back(tokens);
        }
    }
}

impl Drop for QuotaHold {
    fn drop(&mut self) {
        self.release();
    }
}

/// A target's provider-stated budget, as `/admin/state` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaSnapshot {
    /// Requests left in the provider's budget now: what its last answer said, refilled since,
    /// less the requests sent and not yet answered.
    pub requests_remaining: Option<u64>,
    /// Until the provider's request budget is whole again.
    pub requests_reset_ms: Option<u64>,
    /// Tokens left in the provider's budget now.
    pub tokens_remaining: Option<u64>,
    /// Until the provider's token budget is whole again.
    pub tokens_reset_ms: Option<u64>,
}

impl Quota {
    /// Takes what an answer's headers said at `now`, the answer to a request sent at `sent`.
    pub(crate) fn learn(&self, limit: &RateLimit, sent: Instant, now: Instant) {
        let times = (sent.min(now), now);
        let requests = Window::of(limit.requests_remaining, limit.requests_limit, limit.requests_reset, times);
        let tokens = Window::of(limit.tokens_remaining, limit.tokens_limit, limit.tokens_reset, times);
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

    /// Admits a request of `tokens` to `node`'s budget, checked and counted under one lock so that
    /// a burst cannot all pass on the last request left; or says when the budget allows it (a
    /// request back, or tokens enough for it).
    pub(crate) fn try_take(node: &Arc<super::health::Node>, now: Instant, tokens: u64) -> Result<QuotaHold, Instant> {
        let quota = &node.quota;
        if !quota.known.load(Ordering::Acquire) {
            return Ok(QuotaHold::default());
        }
        let mut s = lock(&quota.state);
        s.requests = s.requests.and_then(|w| w.live(now));
        s.tokens = s.tokens.and_then(|w| w.live(now));
        if s.requests.is_none() && s.tokens.is_none() {
            quota.known.store(false, Ordering::Release);
            return Ok(QuotaHold::default());
        }
        let need = s.in_flight + 1;
        let requests = s.requests.filter(|w| w.available(now) < need).map(|w| w.when(need));
        let need_tokens = s.in_flight_tokens.saturating_add(tokens);
        let short = s.tokens.filter(|w| tokens > 0 && w.available(now) < need_tokens).map(|w| w.when(need_tokens));
        if let Some(until) = requests.into_iter().chain(short).max() {
            return Err(until);
        }
        s.in_flight += 1;
        s.in_flight_tokens = need_tokens;
        Ok(QuotaHold(Some((Arc::clone(node), tokens))))
    }

    fn give_back(&self, tokens: u64) {
        let mut s = lock(&self.state);
        s.in_flight = s.in_flight.saturating_sub(1);
        s.in_flight_tokens = s.in_flight_tokens.saturating_sub(tokens);
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
            requests_remaining: requests.map(|w| w.available(now).saturating_sub(s.in_flight)),
            requests_reset_ms: requests.map(ms),
            tokens_remaining: tokens.map(|w| w.available(now).saturating_sub(s.in_flight_tokens)),
            tokens_reset_ms: tokens.map(ms),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::router::health::Node;

    fn requests(said: u64, limit: Option<u64>, reset: Duration) -> RateLimit {
        RateLimit {
            requests_limit: limit,
            requests_remaining: Some(said),
            requests_reset: Some(reset),
            ..RateLimit::default()
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_spent_budget_without_its_limit_blocks_until_its_reset() {
        let node = Node::for_test();
        let now = Instant::now();
        assert!(Quota::try_take(&node, now, 10).is_ok(), "nothing learned, nothing blocked");
        node.quota.learn(&requests(1, None, 2 * SEC), now, now);
        let _held = Quota::try_take(&node, now, 10).unwrap();
        let reset = now + 2 * SEC;
        assert_eq!(Quota::try_take(&node, now, 10).err(), Some(reset), "the one left is in flight");
        assert_eq!(node.quota.snapshot(now).and_then(|s| s.requests_remaining), Some(0));
        assert!(Quota::try_take(&node, reset, 10).is_ok(), "whole again at the reset");
        assert_eq!(node.quota.snapshot(reset), None);
    }

    #[test]
    fn a_budget_with_its_limit_refills_continuously() {
        let node = Node::for_test();
        let t0 = Instant::now();
        // none of 60 left, whole in a minute: one is back every second
        node.quota.learn(&requests(0, Some(60), 60 * SEC), t0, t0);
        let ms = Duration::from_millis(1);
        assert_eq!(Quota::try_take(&node, t0, 0).err(), Some(t0 + SEC + ms));
        let _first = Quota::try_take(&node, t0 + SEC + ms, 0).unwrap();
        assert_eq!(Quota::try_take(&node, t0 + SEC + ms, 0).err(), Some(t0 + 2 * SEC + ms), "one in flight");
        assert_eq!(node.quota.snapshot(t0 + 30 * SEC).and_then(|s| s.requests_remaining), Some(29));
    }

    #[test]
    fn what_a_wait_was_told_is_there_when_it_ends() {
        // odd limits and resets, whose shares floating point cannot hold exactly
        for (limit, reset_ms) in [(3u64, 1_000u64), (7, 999), (60, 60_000), (1_000, 7_777), (13, 1)] {
            let node = Node::for_test();
            let t0 = Instant::now();
            node.quota.learn(&requests(0, Some(limit), Duration::from_millis(reset_ms)), t0, t0);
            let mut held = Vec::new();
            for k in 0..limit.min(50) {
                // with k in flight, the (k+1)th is told when; then, it is let through
                let at = Quota::try_take(&node, t0, 0).expect_err("nothing is back at first");
                if at >= t0 + Duration::from_millis(reset_ms) {
                    break; // whole again: the window is over (and forgotten once seen so)
                }
                let hold = Quota::try_take(&node, at, 0);
                held.push(hold.unwrap_or_else(|_| panic!("{limit} per {reset_ms} ms, request {k}: refused at {at:?}")));
            }
        }
    }

    #[test]
    fn a_steady_flow_does_not_drift_to_empty() {
        // answers a fraction of a second apart, each saying 59 of 60 remain and whole in a second:
        // counting down from the known count (and keeping the lower of two close answers) would
        // spend the budget after 59 requests although the provider never ran short
        let node = Node::for_test();
        let t0 = Instant::now();
        for i in 0..1_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 300);
            let mut held = Quota::try_take(&node, now, 0).unwrap_or_else(|_| panic!("request {i} held back"));
            held.release();
            node.quota.learn(&requests(59, Some(60), SEC), now, now + Duration::from_millis(200));
        }
    }

    #[test]
    fn a_late_answer_to_an_earlier_request_says_less_than_what_is_known() {
        let node = Node::for_test();
        let t0 = Instant::now();
        node.quota.learn(&requests(2, Some(60), 60 * SEC), t0 + SEC, t0 + 2 * SEC);
        node.quota.learn(&requests(40, Some(60), 60 * SEC), t0, t0 + 2 * SEC);
        assert_eq!(node.quota.snapshot(t0 + 2 * SEC).and_then(|s| s.requests_remaining), Some(2));
    }

    #[test]
    fn a_request_given_back_counts_no_more() {
        let node = Node::for_test();
        let now = Instant::now();
        node.quota.learn(&requests(1, Some(10), 60 * SEC), now, now);
        let held = Quota::try_take(&node, now, 0).unwrap();
        assert!(Quota::try_take(&node, now, 0).is_err());
        // refused later in admission, or ended without an answer
        drop(held);
        assert!(Quota::try_take(&node, now, 0).is_ok());
    }

    #[test]
    fn too_few_tokens_block_a_large_request_only() {
        let node = Node::for_test();
        let now = Instant::now();
        let limit = RateLimit { tokens_remaining: Some(500), tokens_reset: Some(6 * SEC), ..RateLimit::default() };
        node.quota.learn(&limit, now, now);
        assert!(node.quota.tracks_tokens());
        assert_eq!(Quota::try_take(&node, now, 600).err(), Some(now + 6 * SEC));
        let _held = Quota::try_take(&node, now, 400).unwrap();
        assert_eq!(Quota::try_take(&node, now, 400).err(), Some(now + 6 * SEC), "100 tokens left");
        // a count without a reset is not waited on
        let node = Node::for_test();
        node.quota.learn(&RateLimit { requests_remaining: Some(0), ..RateLimit::default() }, now, now);
        assert!(Quota::try_take(&node, now, 1).is_ok());
    }
}
