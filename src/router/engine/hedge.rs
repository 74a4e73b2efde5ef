//! Hedged requests (`hedge = { after, max }`): when the attempt in flight has produced no first
//! token (or, not streamed, no answer) by `after`, the next target starts too; the first to
//! produce content serves and the others are cancelled.
//!
//! Each target runs as a unit: a plan of its own, forked from the request's and merged back into
//! it when the unit ends, with the same admission, retries and verdicts as any attempt. A unit
//! that is cancelled still records its attempt (`cancelled`, with the prompt it was billed for).

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::plan::Unit;
use super::{Ask, AttemptFuture, Plan, Stop, Success};
use crate::chat::Usage;
use crate::policy::{Hedge, HedgeAfter, TargetPolicy};
use crate::provider::{Call, Provider};
use crate::router::Inner;
use crate::router::outcome::AttemptOutcome;

/// How a unit ended: its plan, and its result (`None` when it was cancelled).
type Ended<'s, T> = (Plan<'s>, Option<Option<Result<Success<'s, T>, Stop>>>);

impl<'s> Plan<'s> {
    /// Runs the rest of the order with hedging: `None` once every target was tried (or ruled out)
    /// with nothing in flight, like the plain loop in [`Plan::run`] ending.
    pub(super) async fn run_hedged<T, F>(
        &mut self,
        inner: &Inner,
        ask: Ask<'_>,
        op: &F,
        hedge: Hedge,
    ) -> Option<Result<Success<'s, T>, Stop>>
    where
        F: for<'a> Fn(&'a dyn Provider, Call<'a>, &'a TargetPolicy) -> AttemptFuture<'a, T>,
    {
        let cancel = CancellationToken::new();
        let mut units = FuturesUnordered::new();
        let mut hedges = 0;
        let mut hedge_at: Option<Instant> = None;
        // when the oldest attempt in flight started
        let mut since = Instant::now();
        // a unit's final failure, held while others may still answer, with its error
        let mut held: Option<(Stop, Option<crate::error::ProviderError>)> = None;
        loop {
            if units.is_empty() {
                if let Some((stop, error)) = held.take() {
                    // nothing else answered: the failure that stopped the request, every
                    // unit's attempts in it
                    self.tally.last_error = error.or(self.tally.last_error.take());
                    return Some(Err(match stop {
                        Stop::Failed(_) => Stop::Failed(Box::new(self.failure())),
                        overflow => overflow,
                    }));
                }
                // nothing in flight: the next target, as an ordinary failover
                let (sub, index, target, is_last) = self.fork_next(false)?;
                units.push(Plan::unit(sub, inner, ask, (index, target), is_last, op, cancel.clone()));
                since = Instant::now();
                hedge_at = self.hedge_at(index, hedge, hedges);
            }
            let at = hedge_at.filter(|_| held.is_none() && hedges < hedge.max && !self.cursor.exhausted());
            let timer = async move {
                match at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some((sub, ended)) = units.next() => {
                    let (was_hedge, tried) =
                        (sub.unit.hedge, sub.attempts.iter().any(|a| a.outcome != AttemptOutcome::Skipped));
                    self.absorb(sub);
                    match ended {
                        Some(Some(Ok(success))) => {
                            self.cancel_all(&cancel, &mut units).await;
                            return Some(Ok(success));
                        }
                        // a final failure: the others in flight may still answer (a target of
                        // another provider may take what this one refused); no new one starts
                        Some(Some(Err(stop))) if held.is_none() => held = Some((stop, self.tally.last_error.clone())),
                        Some(Some(Err(_))) => {}
                        // it failed over: those in flight go on
                        _ if was_hedge && !tried => {
                            // its target was ruled out before any call: the next one hedges instead
                            hedges -= 1;
                            hedge_at = Some(Instant::now());
                        }
                        _ => {}
                    }
                }
                () = timer => {
                    hedge_at = None;
                    if let Some((mut sub, index, target, is_last)) = self.fork_next(true) {
                        hedges += 1;
                        sub.unit.hedge_waited = Some(since.elapsed());
                        units.push(Plan::unit(sub, inner, ask, (index, target), is_last, op, cancel.clone()));
                        hedge_at = self.hedge_at(index, hedge, hedges);
                    }
                }
            }
        }
    }

    /// One target's attempts, as a unit of a hedged request; cancelled by `cancel`.
    async fn unit<T, F>(
        mut sub: Plan<'s>,
        inner: &Inner,
        ask: Ask<'_>,
        (index, target): (usize, &'s TargetPolicy),
        is_last: bool,
        op: &F,
        cancel: CancellationToken,
    ) -> Ended<'s, T>
    where
        F: for<'a> Fn(&'a dyn Provider, Call<'a>, &'a TargetPolicy) -> AttemptFuture<'a, T>,
    {
        sub.unit.cancel = Some(cancel.clone());
        let ended = {
            let attempts = sub.try_target(inner, ask, (index, target), is_last, op, (false, 0));
            tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                ended = attempts => Some(ended),
            }
        };
        if ended.is_none() {
            sub.record_cancelled(inner, target, ask);
        }
        (sub, ended)
    }

    /// Cancels the units still in flight and takes in what they did.
    async fn cancel_all<T>(
        &mut self,
        cancel: &CancellationToken,
        units: &mut FuturesUnordered<impl std::future::Future<Output = Ended<'s, T>>>,
    ) {
        cancel.cancel();
        while let Some((sub, _)) = units.next().await {
            self.absorb(sub);
        }
    }

    /// The next target in order as a unit of its own, and whether it is the last option.
    fn fork_next(&mut self, hedge: bool) -> Option<(Plan<'s>, usize, &'s TargetPolicy, bool)> {
        let route = self.route;
        while let Some(index) = self.cursor.peek() {
            self.cursor.advance();
            let Some(target) = route.targets.get(index) else { continue };
            let is_last = self.cursor.rest().iter().all(|&i| route.targets.get(i).is_none());
            return Some((self.fork(hedge), index, target, is_last));
        }
        None
    }

    /// A plan for one unit: what the request knows so far, and nothing of its attempts.
    fn fork(&mut self, hedge: bool) -> Plan<'s> {
        Plan {
            snap: self.snap,
            route: self.route,
            attempts: Vec::new(),
            facts: self.facts.clone(),
            cursor: self.cursor.fork(),
            tally: self.tally.fork(),
            unit: Unit { forked: true, hedge, ..Unit::default() },
        }
    }

    /// Merges what a unit did into the request's plan.
    fn absorb(&mut self, mut sub: Plan<'s>) {
        self.attempts.append(&mut sub.attempts);
        self.tally.absorb(sub.tally);
        self.facts.prompt_tokens = self.facts.prompt_tokens.or(sub.facts.prompt_tokens);
        self.facts.tokenized = self.facts.tokenized.or(sub.facts.tokenized);
    }

    /// When the next hedge starts, the target at `index` having started now: after the route's
    /// `after`, or the target's observed percentile (none until it has enough answers); none once
    /// `hedges` reached the route's `max`.
    fn hedge_at(&self, index: usize, hedge: Hedge, hedges: u32) -> Option<Instant> {
        if hedges >= hedge.max {
            return None;
        }
        let delay: Duration = match hedge.after {
            HedgeAfter::Fixed(d) => d,
            HedgeAfter::Percentile(p) => self.facts.targets.get(index)?.node.first_token.0.percentile(p)?,
        };
        Instant::now().checked_add(delay)
    }

    /// Records the call this unit had in flight when it was cancelled: the provider read the
    /// prompt, and bills at least that.
    fn record_cancelled(&mut self, inner: &Inner, target: &TargetPolicy, ask: Ask<'_>) {
        let Some((started, probe)) = self.unit.in_flight.take() else { return };
        let prompt = match ask {
            Ask::Request(request, _) => {
                *self.facts.prompt_tokens.get_or_insert_with(|| request.estimated_prompt_tokens())
            }
            // a continuation's prompt: the question and the answer so far (either form's size)
            Ask::Resume { prefill, .. } => prefill.estimated_prompt_tokens(),
        };
        let (hedge, op) = (self.unit.hedge, self.facts.op);
        let a = super::cancelled(target, (probe, hedge), started.elapsed(), op, Usage::new(prompt, 0));
        tracing::info!(provider = %target.provider, model = %target.model, "attempt cancelled: another attempt of the hedged request answered first");
        inner.emit_attempt(&self.route.name, op, &a);
        self.attempts.push(a);
    }
}
