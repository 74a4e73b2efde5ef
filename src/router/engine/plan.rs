//! The plan of one request on one route: what is known of the request ([`Facts`]), where the walk
//! of the route's order is ([`Cursor`]), what stood in the way so far ([`Tally`]), and, for one
//! target's attempts inside a hedged request, the state of that unit ([`Unit`]).

use std::time::Duration;

use tokio::time::Instant;

use super::fit::Fit;
use super::{Stop, fit};
use crate::chat::ChatRequest;
use crate::error::{ErrorClass, ProviderError};
use crate::policy::{RoutePolicy, TargetPolicy};
use crate::router::health::Node;
use crate::router::outcome::{Attempt, AttemptOutcome, RouteFailure, SkipReason};
use crate::router::{Inner, RouteState, Snapshot, TargetState, strategy};

/// The longest prompt (by its estimate, in tokens) that token limits count with a tokenizer:
/// ~128 KB of text, a few milliseconds of counting.
const TOKENIZE_AT_MOST: u64 = 32_768;

/// The state of one request as it walks its route. It borrows the request's snapshot, which the
/// caller holds for the whole request.
pub(crate) struct Plan<'s> {
    /// The snapshot the request runs on.
    pub(super) snap: &'s Snapshot,
    /// The route walked (its callers read its name and actions).
    pub(crate) route: &'s RoutePolicy,
    /// Every attempt so far, skipped ones too; the caller adds the one that served.
    pub(crate) attempts: Vec<Attempt>,
    pub(super) facts: Facts<'s>,
    pub(super) cursor: Cursor,
    pub(super) tally: Tally,
    pub(super) unit: Unit,
}

/// What is known of the request: fixed when the plan is made, or measured once and kept.
#[derive(Clone)]
pub(super) struct Facts<'s> {
    /// The route's targets' health nodes and providers, resolved when the policy was applied.
    pub(super) targets: &'s [TargetState],
    pub(super) deadline: Instant,
    /// What the calls do (counting tokens spends no rate-limit budget).
    pub(super) op: Op,
    /// What each target's wire makes of a request that not every wire can carry (by target
    /// index); `None` for a request every wire carries as is.
    pub(super) fits: Option<Box<[Fit]>>,
    pub(super) max_tokens: Option<u32>,
    /// The prompt's token estimate, made the first time a token limit needs it.
    pub(super) prompt_tokens: Option<u64>,
    /// The prompt counted with a tokenizer (by its id), for the targets of that tokenizer; `None`
    /// inside when the tokenizer could not count it (an image, say).
    pub(super) tokenized: Option<(usize, Option<u64>)>,
}

/// Where the walk of the route's order is.
#[derive(Debug, Default)]
pub(super) struct Cursor {
    /// Target indices, in the order the strategy chose.
    order: strategy::Order,
    /// The next position in `order`.
    pos: usize,
    /// Where the continuation of a streamed answer started in the order, so that a restart may
    /// use the targets it skipped.
    phase_start: usize,
    /// A target to try again before the rest of the order (a streamed answer continued where it
    /// failed): its index, the attempts it already had, and the wait before.
    pub(super) revisit: Option<(usize, u32, Duration)>,
    /// Whether the target whose breaker reopens first was already probed out of turn.
    pub(super) forced_probe: bool,
    /// The clock as the request started, for its first admission: one clock read fewer.
    pub(super) now_hint: Option<Instant>,
}

/// What stood in the way of the request so far.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) last_error: Option<ProviderError>,
    /// After a context overflow: skip targets whose window is not larger than this.
    pub(super) overflow_window: Option<u64>,
    /// When the soonest gate that turned a target away opens again.
    soonest_free: Option<Instant>,
    /// The targets (by index) an open breaker turned away.
    pub(super) breaker_skips: Vec<usize>,
    /// Targets skipped for anything else than a breaker, or that they cannot carry the request.
    pub(super) other_skips: usize,
}

/// A plan of one target that runs beside others: a hedged request's attempts, each forked from
/// the request's plan and merged back into it.
#[derive(Debug, Default)]
pub(super) struct Unit {
    /// This plan is such a unit: it notes the call in flight, so that a cancelled one is still
    /// accounted.
    pub(super) forked: bool,
    /// This unit was started as a hedge.
    pub(super) hedge: bool,
    /// For a hedge not yet called: how long the attempt in flight had waited when it started
    /// (its `hedge` event goes out with its call, not for a hedge ruled out before any).
    pub(super) hedge_waited: Option<Duration>,
    /// The call this unit has in flight: when it started, and whether it is a breaker probe.
    pub(super) in_flight: Option<(Instant, bool)>,
    /// A unit's cancellation: a call it cancels this way, the unit records itself.
    pub(super) cancel: Option<tokio_util::sync::CancellationToken>,
}

/// What a plan's calls do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Chat, streamed or not.
    Chat,
    /// Count a request's tokens.
    Count,
    /// Embeddings.
    Embed,
}

impl Op {
    /// The name metrics and events use: `chat`, `count_tokens`, `embeddings`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Chat => "chat",
            Op::Count => "count_tokens",
            Op::Embed => "embeddings",
        }
    }
}

impl<'s> Plan<'s> {
    pub(crate) fn new(
        inner: &Inner,
        snap: &'s Snapshot,
        state: &'s RouteState,
        (request, original): (&ChatRequest, Option<&crate::wire::Original>),
        deadline: Instant,
    ) -> Self {
        let (route, targets) = (&*state.policy, state.targets.as_slice());
        // the shared round-robin counter is touched only by the strategy that uses it
        let rr = if route.strategy == crate::policy::Strategy::RoundRobin {
            inner.health.next_round_robin(&route.name)
        } else {
            0
        };
        // (a priority route already sends every request to its first healthy target)
        let affinity =
            route.cache_affinity && route.targets.len() > 1 && route.strategy != crate::policy::Strategy::Priority;
        let mut order = match if affinity { request.cache_prefix_hash() } else { None } {
            Some(prefix) => strategy::by_affinity(route, prefix),
            None => {
                strategy::order(route, rr, |i| targets.get(i).and_then(|t| t.node.latency_ms()), rand::random::<f64>)
            }
        };
        if state.deprioritizes {
            // a provider whose status page reports a major outage goes last, never away
            let outage: strategy::Order = (0..targets.len())
                .map(|i| usize::from(targets[i].incident_watch.as_ref().is_some_and(|p| p.is_outage())))
                .collect();
            order.sort_by_key(|&i| outage.get(i).copied().unwrap_or(0));
        }
        Plan {
            snap,
            route,
            attempts: Vec::new(),
            facts: Facts {
                targets,
                deadline,
                op: Op::Chat,
                fits: {
                    let (portable, needs) = (crate::wire::is_portable(request), crate::capability::required(request));
                    let origin = original.map(crate::wire::Original::protocol);
                    (!portable || !needs.is_empty())
                        .then(|| fit::fits(snap, route, targets, (request, origin), portable, &needs))
                },
                max_tokens: request.max_tokens,
                prompt_tokens: None,
                tokenized: None,
            },
            cursor: Cursor::new(order),
            tally: Tally::default(),
            unit: Unit::default(),
        }
    }

    /// What the plan's calls do.
    pub(crate) fn op(&self) -> Op {
        self.facts.op
    }

    /// Makes this a plan for another operation than chat. Counting tokens: targets that cannot
    /// count (an OpenAI-wire model with no known tokenizer) are skipped as unsupported, and no
    /// rate-limit budget is spent (a count generates nothing; Anthropic meters its counting
    /// endpoint apart from messages). Embeddings: only OpenAI-wire targets that are not known
    /// chat models.
    pub(super) fn for_op(&mut self, op: Op, request: &ChatRequest) {
        self.facts.op = op;
        let fits = fit::for_op(self.snap, self.route, self.facts.fits.as_deref(), op, request);
        self.facts.fits = Some(fits);
    }

    /// The fields the target at `index` leaves out of this request.
    pub(crate) fn dropped(&self, index: usize) -> Vec<crate::wire::Unsupported> {
        match self.facts.fits.as_ref().and_then(|f| f.get(index)) {
            Some(Fit::Carries(dropped)) => dropped.clone(),
            _ => Vec::new(),
        }
    }

    /// When no target can carry the request: one `invalid_request` failure naming why for each,
    /// before any provider is called.
    pub(super) fn refused_everywhere(&mut self, inner: &Inner) -> Option<Stop> {
        let fits = self.facts.fits.as_ref()?;
        if self.cursor.pos != 0 || !self.attempts.is_empty() || !fits.iter().all(|f| matches!(f, Fit::Refuses(_))) {
            return None;
        }
        let route = self.route;
        let refusals: Vec<(&TargetPolicy, String)> = route
            .targets
            .iter()
            .zip(fits.iter())
            .filter_map(|(t, fit)| match fit {
                Fit::Refuses(why) => Some((t, why.clone())),
                Fit::Carries(_) => None,
            })
            .collect();
        let mut reasons = Vec::new();
        for (t, why) in refusals {
            reasons.push(format!("{}/{} cannot take {why}", t.provider, t.model));
            self.skip(inner, t, SkipReason::Unsupported(why));
        }
        let first = route.targets.first().map_or_else(String::new, |t| t.provider.clone());
        self.tally.last_error = Some(ProviderError::new(
            ErrorClass::InvalidRequest,
            first,
            format!("no target of route `{}` can carry this request: {}", route.name, reasons.join("; ")),
        ));
        Some(Stop::Failed(Box::new(self.failure())))
    }

    /// The request started at `now`, just before this plan was made.
    pub(crate) fn started_at(&mut self, now: Instant) {
        self.cursor.now_hint = Some(now);
    }

    /// Carries the attempts of a route that overflowed into this one.
    pub(crate) fn inherit(&mut self, attempts: Vec<Attempt>, last_error: Option<ProviderError>) {
        let mut all = attempts;
        all.append(&mut self.attempts);
        self.attempts = all;
        if self.tally.last_error.is_none() {
            self.tally.last_error = last_error;
        }
    }

    /// Starts what follows a streamed answer that failed on the target at `index` after
    /// `attempts` attempts there: that target is tried again first after `again`'s wait (its
    /// class is retried and it has attempts left), then the rest of the order when `failover`.
    /// A restart begins after the failed target, not with it.
    pub(crate) fn resume_after(&mut self, index: usize, attempts: u32, again: Option<Duration>, failover: bool) {
        self.cursor.resume_after(index, attempts, again, failover);
    }

    /// Goes back to where the continuation started, so that a restart may use the targets it
    /// skipped because they could not continue.
    pub(crate) fn rewind_for_restart(&mut self) {
        self.cursor.rewind_for_restart();
    }

    /// Tokens this request may need on `target`, for its token limits, only when a `tpm` applies
    /// (either way the whole prompt is read; rpm and concurrency need no count): counted with the
    /// model's tokenizer when one is known (OpenAI models, [`crate::tokens`]; ~0.3 ms for a
    /// 9.5 KB agent turn), else estimated (~4 µs). Each is computed once per request.
    pub(super) fn token_need(&mut self, target: &TargetPolicy, request: &ChatRequest, nodes: [&Node; 2]) -> u64 {
        let facts = &mut self.facts;
        let tpm = |n: &&Node| n.limiter_if_limited().is_some_and(|l| l.limits().tpm.is_some());
        // (nodes[0] is the target's: a token budget its provider stated needs the count too)
        if facts.op == Op::Count || !(nodes.iter().any(tpm) || nodes[0].quota.tracks_tokens()) {
            return 0;
        }
        let openai = self.snap.policy.provider(&target.provider).is_some_and(|p| p.protocol.is_openai());
        let estimate = *facts.prompt_tokens.get_or_insert_with(|| request.estimated_prompt_tokens());
        // a prompt this long is counted by its estimate: a real count would hold this worker
        // thread for tens of milliseconds
        let countable = openai && estimate <= TOKENIZE_AT_MOST;
        let counted = match crate::tokens::tokenizer_id(&target.model).filter(|_| countable) {
            Some(id) => match facts.tokenized {
                Some((seen, n)) if seen == id => n,
                _ => {
                    let n = crate::tokens::count_openai(&target.model, request).ok();
                    facts.tokenized = Some((id, n));
                    n
                }
            },
            None => None,
        };
        target.token_need(counted.unwrap_or(estimate), facts.max_tokens)
    }

    /// Records `target` as skipped for `reason`.
    pub(super) fn skip(&mut self, inner: &Inner, target: &TargetPolicy, reason: SkipReason) {
        self.tally.count_skip(&reason);
        let a = Attempt {
            skip_reason: Some(reason),
            hedge: self.unit.hedge,
            ..Attempt::new(target, AttemptOutcome::Skipped, Duration::ZERO)
        };
        inner.emit_attempt(&self.route.name, self.facts.op, &a);
        self.attempts.push(a);
    }

    /// The failure that ends this plan: the last provider error, or why nothing could be tried.
    pub(crate) fn failure(&self) -> RouteFailure {
        let budget_only =
            !self.attempts.is_empty() && self.attempts.iter().all(|a| a.skip_reason == Some(SkipReason::Budget));
        let tally = &self.tally;
        let (class, message, retry_after) = match &tally.last_error {
            Some(e) => (e.class(), e.message().to_owned(), None),
            None if budget_only => {
                let mut spent: Vec<&str> = self.attempts.iter().map(|a| a.provider.as_str()).collect();
                spent.sort_unstable();
                spent.dedup();
                let message = format!(
                    "every target's provider spent its budget for this window ({}); the soonest resets in {}",
                    spent.join(", "),
                    crate::duration::format_duration(tally.wait_hint().unwrap_or_default())
                );
                (ErrorClass::BudgetExhausted, message, tally.wait_hint())
            }
            None if tally.other_skips == 0 && !tally.breaker_skips.is_empty() => (
                ErrorClass::Overloaded,
                "every target's breaker is open (the router probes them; or a probe is in flight)".to_owned(),
                tally.wait_hint(),
            ),
            None if Instant::now() >= self.facts.deadline => {
                (ErrorClass::Timeout, "the request's total timeout ran out before any attempt".to_owned(), None)
            }
            None => (
                ErrorClass::RateLimited,
                "every target is paused or at its local rate limit".to_owned(),
                tally.wait_hint(),
            ),
        };
        let last = self.attempts.iter().rev().find(|a| a.outcome == AttemptOutcome::Error).or(self.attempts.last());
        let last_error = tally.last_error.as_ref();
        RouteFailure {
            route: self.route.name.clone(),
            class,
            message,
            provider: last_error.map(|e| e.provider().to_owned()).or_else(|| last.map(|a| a.provider.clone())),
            model: last.map(|a| a.model.clone()),
            status: last_error.and_then(|e| e.status()),
            retry_after: retry_after.or_else(|| last_error.and_then(|e| e.retry_after())),
            error: tally.last_error.clone(),
            attempts: self.attempts.clone(),
            mid_stream: false,
            provider_incidents: Vec::new(),
        }
    }
}

impl Cursor {
    /// A cursor at the start of `order`.
    pub(super) fn new(order: strategy::Order) -> Self {
        Cursor { order, ..Cursor::default() }
    }

    /// The target index at the cursor, if the order has one left.
    pub(super) fn peek(&self) -> Option<usize> {
        self.order.get(self.pos).copied()
    }

    /// The target indices after the one at the cursor.
    pub(super) fn after_next(&self) -> &[usize] {
        self.order.get(self.pos + 1..).unwrap_or_default()
    }

    /// The target indices not yet taken.
    pub(super) fn rest(&self) -> &[usize] {
        self.order.get(self.pos..).unwrap_or_default()
    }

    /// Moves past the target at the cursor.
    pub(super) fn advance(&mut self) {
        self.pos += 1;
    }

    /// Whether every target of the order was taken.
    pub(super) fn exhausted(&self) -> bool {
        self.pos >= self.order.len()
    }

    /// See [`Plan::resume_after`].
    fn resume_after(&mut self, index: usize, attempts: u32, again: Option<Duration>, failover: bool) {
        self.phase_start = self.pos;
        self.revisit = again.map(|wait| (index, attempts, wait));
        if !failover {
            self.pos = self.order.len();
        }
    }

    /// See [`Plan::rewind_for_restart`].
    fn rewind_for_restart(&mut self) {
        self.revisit = None;
        self.pos = self.phase_start.min(self.pos);
    }

    /// A unit's cursor: no order of its own (its one target is given), the clock hint handed on.
    pub(super) fn fork(&mut self) -> Cursor {
        Cursor { forced_probe: self.forced_probe, now_hint: self.now_hint.take(), ..Cursor::default() }
    }
}

impl Tally {
    /// A unit's tally: nothing stood in its way yet but the request's context overflow.
    pub(super) fn fork(&self) -> Tally {
        Tally { overflow_window: self.overflow_window, ..Tally::default() }
    }

    /// Notes that a gate opens again at `at`.
    pub(super) fn note_free_at(&mut self, at: Instant) {
        self.soonest_free = Some(self.soonest_free.map_or(at, |s| s.min(at)));
    }

    /// How long until the soonest gate that turned a target away opens again.
    pub(super) fn wait_hint(&self) -> Option<Duration> {
        self.soonest_free.map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Counts a skip: a target that cannot carry the request is no option at all, and one an open
    /// breaker turned away may yet be probed; neither stands in the way of probing the targets
    /// whose breakers are open.
    fn count_skip(&mut self, reason: &SkipReason) {
        if !matches!(
            reason,
            SkipReason::BreakerOpen
                | SkipReason::ProviderBreakerOpen
                | SkipReason::ProbeInFlight
                | SkipReason::Unsupported(_)
        ) {
            self.other_skips += 1;
        }
    }

    /// Takes in what stood in the way of a unit.
    pub(super) fn absorb(&mut self, mut sub: Tally) {
        if sub.last_error.is_some() {
            self.last_error = sub.last_error;
        }
        if let Some(at) = sub.soonest_free {
            self.note_free_at(at);
        }
        self.breaker_skips.append(&mut sub.breaker_skips);
        self.other_skips += sub.other_skips;
        self.overflow_window = self.overflow_window.max(sub.overflow_window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(order: &[usize]) -> Cursor {
        Cursor::new(order.iter().copied().collect())
    }

    /// Walks the cursor to its end, as the plain loop does.
    fn walk(c: &mut Cursor) -> Vec<usize> {
        let mut seen = Vec::new();
        while let Some(i) = c.peek() {
            c.advance();
            seen.push(i);
        }
        seen
    }

    #[test]
    fn a_cursor_walks_its_order_once() {
        let mut c = cursor(&[2, 0, 1]);
        assert!(!c.exhausted());
        assert_eq!(c.peek(), Some(2));
        assert_eq!(c.after_next(), &[0, 1]);
        assert_eq!(c.rest(), &[2, 0, 1]);
        c.advance();
        assert_eq!(c.after_next(), &[1]);
        assert_eq!(walk(&mut c), vec![0, 1]);
        assert!(c.exhausted());
        assert_eq!(c.peek(), None);
        assert_eq!(c.after_next(), &[] as &[usize]);
        assert_eq!(c.rest(), &[] as &[usize]);
    }

    #[test]
    fn a_continuation_revisits_the_failed_target_then_goes_on_when_it_fails_over() {
        let mut c = cursor(&[0, 1, 2]);
        c.advance();
        let wait = Duration::from_millis(250);
        c.resume_after(0, 1, Some(wait), true);
        assert_eq!(c.revisit, Some((0, 1, wait)));
        assert_eq!(walk(&mut c), vec![1, 2]);
    }

    #[test]
    fn a_continuation_that_does_not_fail_over_has_nothing_after_its_revisit() {
        let mut c = cursor(&[0, 1, 2]);
        c.advance();
        c.resume_after(0, 1, Some(Duration::ZERO), false);
        assert!(c.exhausted());
        assert_eq!(c.revisit, Some((0, 1, Duration::ZERO)));
        c.resume_after(0, 1, None, false);
        assert_eq!(c.revisit, None);
    }

    #[test]
    fn a_restart_rewinds_to_where_the_continuation_began() {
        let mut c = cursor(&[0, 1, 2, 3]);
        c.advance();
        c.resume_after(0, 1, Some(Duration::ZERO), true);
        // the continuation skipped the rest: a restart may use them
        assert_eq!(walk(&mut c), vec![1, 2, 3]);
        c.rewind_for_restart();
        assert_eq!(c.revisit, None);
        assert_eq!(walk(&mut c), vec![1, 2, 3]);
    }

    #[test]
    fn a_restart_never_moves_the_cursor_forward() {
        let mut c = cursor(&[0, 1, 2]);
        c.advance();
        c.advance();
        c.resume_after(1, 1, None, true);
        c.rewind_for_restart();
        assert_eq!(c.peek(), Some(2));
    }

    #[test]
    fn a_fork_takes_the_clock_hint_and_the_forced_probe_but_no_order() {
        let mut c = cursor(&[0, 1]);
        let now = Instant::now();
        c.now_hint = Some(now);
        c.forced_probe = true;
        let f = c.fork();
        assert_eq!(c.now_hint, None, "the hint serves one admission");
        assert_eq!(f.now_hint, Some(now));
        assert!(f.forced_probe);
        assert!(f.exhausted());
        assert_eq!(c.peek(), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_tally_keeps_the_soonest_free_gate() {
        let mut t = Tally::default();
        assert_eq!(t.wait_hint(), None);
        let now = Instant::now();
        t.note_free_at(now + Duration::from_secs(5));
        t.note_free_at(now + Duration::from_secs(2));
        t.note_free_at(now + Duration::from_secs(9));
        assert_eq!(t.wait_hint(), Some(Duration::from_secs(2)));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(t.wait_hint(), Some(Duration::ZERO));
    }

    #[test]
    fn only_skips_that_rule_out_probing_are_counted() {
        let mut t = Tally::default();
        for reason in [
            SkipReason::BreakerOpen,
            SkipReason::ProviderBreakerOpen,
            SkipReason::ProbeInFlight,
            SkipReason::Unsupported("images".into()),
        ] {
            t.count_skip(&reason);
        }
        assert_eq!(t.other_skips, 0);
        for reason in [SkipReason::Paused, SkipReason::RateLimit, SkipReason::Budget, SkipReason::Deadline] {
            t.count_skip(&reason);
        }
        assert_eq!(t.other_skips, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_unit_tally_merges_into_the_request() {
        let now = Instant::now();
        let mut request = Tally { overflow_window: Some(8_000), other_skips: 1, ..Tally::default() };
        request.note_free_at(now + Duration::from_secs(4));
        request.breaker_skips.push(0);
        let mut unit = request.fork();
        assert_eq!(unit.overflow_window, Some(8_000));
        assert!(unit.breaker_skips.is_empty() && unit.other_skips == 0 && unit.wait_hint().is_none());
        unit.overflow_window = Some(16_000);
        unit.note_free_at(now + Duration::from_secs(1));
        unit.breaker_skips.push(2);
        unit.other_skips = 2;
        unit.last_error = Some(ProviderError::new(ErrorClass::Overloaded, "a", "busy"));
        request.absorb(unit);
        assert_eq!(request.overflow_window, Some(16_000));
        assert_eq!(request.wait_hint(), Some(Duration::from_secs(1)));
        assert_eq!(request.breaker_skips, vec![0, 2]);
        assert_eq!(request.other_skips, 3);
        assert_eq!(request.last_error.as_ref().map(|e| e.class()), Some(ErrorClass::Overloaded));
        // a unit with no error of its own keeps the request's
        request.absorb(Tally::default());
        assert!(request.last_error.is_some());
    }
}
