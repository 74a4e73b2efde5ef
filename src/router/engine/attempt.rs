//! One target's attempts: the target checked against the request, then, until a verdict moves
//! on, its admission, its call (within the attempt's timeout, inside its span) and the verdict on
//! a failure.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{Instrument, Span};

use super::admission::{self, Entry};
use super::ask::Ask;
use super::fit::{Fit, on_anthropic};
use super::lease::{Lease, Success};
use super::verdict::{self, Failure, Verdict};
use super::{AttemptFuture, NodeRef, Op, Plan, Stop, pause};
use crate::chat::{ChatRequest, Usage};
use crate::error::{ErrorClass, ProviderError};
use crate::policy::{BreakerEffect, Resume, TargetPolicy};
use crate::provider::{Call, CallTimeouts, Provider};
use crate::router::events::RouterEvent;
use crate::router::health::Node;
use crate::router::outcome::{Attempt, AttemptOutcome, SkipReason};
use crate::router::{Inner, ProviderSlot};

impl<'s> Plan<'s> {
    /// Tries the target at `index` until it serves (`Some(Ok)`), the request must stop
    /// (`Some(Err)`), or the next target is to be tried (`None`). `first_retry` is the attempts it
    /// already had; `force_probe` probes its open breaker now.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn try_target<T, F>(
        &mut self,
        inner: &Inner,
        ask: Ask<'_>,
        (index, target): (usize, &'s TargetPolicy),
        is_last: bool,
        op: &F,
        (force_probe, first_retry): (bool, u32),
    ) -> Option<Result<Success<'s, T>, Stop>>
    where
        F: for<'a> Fn(&'a dyn Provider, Call<'a>, &'a TargetPolicy) -> AttemptFuture<'a, T>,
    {
        let (target_node, provider_node, slot) = match self.facts.targets.get(index) {
            Some(s) => (NodeRef::Borrowed(&s.node), NodeRef::Borrowed(&s.provider_node), s.provider.as_ref()),
            None => (
                NodeRef::Owned(inner.health.target(&target.provider, &target.model)),
                NodeRef::Owned(inner.health.provider(&target.provider)),
                self.snap.providers.get(&target.provider),
            ),
        };
        if let Some(reason) = self.ruled_out(index, target) {
            self.skip(inner, target, reason);
            return None;
        }
        let provider = match slot {
            Some(ProviderSlot::Ready(p)) => p,
            Some(ProviderSlot::Unavailable(e)) => {
                return self.unavailable(inner, target, [&target_node, &provider_node], e);
            }
            None => return None,
        };

        // borrowed from the snapshot, not from `self`, which is borrowed mutably below
        let route = self.route;
        let mut retry = first_retry;
        let anthropic = matches!(ask, Ask::Resume { .. }) && on_anthropic(self.snap, target);
        // this target refused the prefill of this continuation: its next strategy, not the prefill again
        let mut prefill_refused = false;
        loop {
            // a continuation takes the form of the first strategy this target can use, asked
            // anew each time round: a prefill the model refused moves it on to the next
            let (request, original, resumed) = match ask.form(target, &target_node, anthropic, prefill_refused) {
                Ok(form) => form,
                Err(reason) => {
                    self.skip(inner, target, reason);
                    return None;
                }
            };
            let now = self.cursor.now_hint.take().unwrap_or_else(Instant::now);
            let estimate = self.token_need(target, request, [&target_node, &provider_node]);
            // in a block of its own: the request's future need not keep the entry past admission
            let admitted = {
                let mut entry = Entry {
                    inner,
                    snap: self.snap,
                    route: self.route,
                    target,
                    target_node: &target_node,
                    provider_node: &provider_node,
                    op: self.facts.op,
                    estimate,
                    force_probe: force_probe && retry == first_retry,
                    is_last,
                    deadline: self.facts.deadline,
                    now,
                };
                admission::admit(&mut entry, &mut self.tally).await
            };
            let admitted = match admitted {
                Ok(admitted) => admitted,
                Err(reason) => {
                    self.skip(inner, target, reason);
                    return None;
                }
            };
            let started = admitted.at;
            if started >= self.facts.deadline {
                self.skip(inner, target, SkipReason::Deadline);
                return Some(Err(Stop::Failed(Box::new(self.failure()))));
            }
            let probe = !admitted.probes.is_empty();
            let attempt_deadline = (started + target.timeouts.attempt).min(self.facts.deadline);
            let timeouts = CallTimeouts {
                first_token: Some(target.timeouts.first_token),
                idle: Some(target.timeouts.idle),
                deadline: Some(attempt_deadline),
            };
            let call = Call { model: &target.model, request, timeouts, unsupported: target.unsupported, original };
            if self.unit.forked {
                self.unit.in_flight = Some((started, probe));
                if let Some(waited) = self.unit.hedge_waited.take() {
                    tracing::info!(route = %self.route.name, provider = %target.provider, model = %target.model, "hedging: no first token yet, starting the next target too");
                    let _ = inner.events.send(RouterEvent::Hedge {
                        route: self.route.name.clone(),
                        provider: target.provider.clone(),
                        model: target.model.clone(),
                        waited,
                    });
                }
            }
            let span = self.span(target, retry);
            // the call and its verdict in a block of their own: the attempt's result and error are
            // out of scope before the backoff below, so that the request's future need not hold
            // them while it waits (every request pays for its future's size in copies)
            let (class, verdict) = {
                // drills: only while a fault is in force does the call go through the fault layer
                let injecting;
                let callee: &dyn Provider = if inner.faults.is_empty() {
                    provider.as_ref()
                } else {
                    let profile = self.snap.policy.provider(&target.provider).and_then(|p| p.profile.clone());
                    injecting = inner.faults.wrap(provider.clone(), &target.provider, profile);
                    &injecting
                };
                // the built-in adapters end the call by the deadline on their own timer: a second timer
                // around the call would cost two more trips through the runtime's timer lock
                let enforced = callee.enforces_deadline();
                let mut abandoned = Abandoned {
                    call: Some((inner, self.route.name.as_str(), self.facts.op, target, request)),
                    // the request's own prompt when known (a continuation's is longer)
                    prompt: if resumed.is_none() { self.facts.prompt_tokens } else { None },
                    started,
                    probe,
                    hedge: self.unit.hedge,
                    cancel: self.unit.cancel.as_ref(),
                };
                let result = if enforced {
                    // no span (nobody records): no wrapper to enter and leave at every poll
                    let call = op(callee, call, target);
                    Ok(match &span {
                        Some(span) => call.instrument(span.clone()).await,
                        None => call.await,
                    })
                } else {
                    let timed = Box::pin(tokio::time::timeout_at(attempt_deadline, op(callee, call, target)));
                    timed.instrument(span.clone().unwrap_or_else(Span::none)).await
                };
                let ended = Instant::now();
                abandoned.call = None;
                drop(abandoned);
                self.unit.in_flight = None;
                let error = match result {
                    Ok(Ok(value)) => {
                        if self.facts.op == Op::Chat {
                            // a streamed answer's first content, or a whole answer
                            target_node.first_token.0.record(ended - started);
                        }
                        let lease = Lease {
                            route: self.route,
                            index,
                            target_node,
                            provider_node,
                            probes: admitted.probes,
                            _limits: admitted.limits,
                            quota: admitted.quota,
                            estimate,
                            started,
                            deadline: attempt_deadline,
                            deadline_enforced: enforced,
                            hedge: self.unit.hedge,
                        };
                        return Some(Ok(Success { value, lease, ended, resumed, retries: retry }));
                    }
                    // the adapter's timer ran into the deadline: say which limit that was
                    Ok(Err(e)) if e.class() == ErrorClass::Timeout && ended >= attempt_deadline => {
                        timed_out(target, attempt_deadline - started, Some(e))
                    }
                    Ok(Err(e)) => e,
                    Err(_) => timed_out(target, attempt_deadline - started, None),
                };
                if let Some(span) = &span {
                    crate::router::spans::failed(span, error.class());
                }
                drop(span);
                let action = self.route.actions.get(error.class());
                // a refused prefill is not the model failing: no breaker hears of it
                let effect =
                    if verdict::refuses_prefill(resumed, error.class()) { BreakerEffect::None } else { action.breaker };
                let elapsed = ended - started;
                self.record_error(inner, target, [&target_node, &provider_node], &error, elapsed, probe, effect);
                // the verdict is recorded: a failure that does not count frees the probe slot, and the
                // limits' slots are not held through a backoff
                drop(admitted);
                let failure = Failure {
                    class: error.class(),
                    should_retry: error.should_retry(),
                    retry_after: error.retry_after(),
                    action,
                    resumed,
                    instructed_next: target.resumes_with(Resume::Instructed),
                    retry: &target.retry,
                    retries: retry,
                    overflow_route: route.on_context_overflow.as_deref(),
                    now: Instant::now(),
                    deadline: self.facts.deadline,
                };
                let breaker_open =
                    || target_node.breaker.open_until().is_some() || provider_node.breaker.open_until().is_some();
                let verdict = verdict::verdict(&failure, breaker_open, rand::random::<f64>);
                if !matches!(verdict, Verdict::NextStrategy | Verdict::MoveOn) {
                    // (a refused prefill keeps the original failure)
                    self.tally.last_error = Some(error);
                }
                (failure.class, verdict)
            };
            match verdict {
                Verdict::NextStrategy | Verdict::MoveOn => {
                    // the model rejects prefill: learn it; the next strategy is tried on this
                    // target, or the next target
                    target_node.learn_prefill(false);
                    prefill_refused = true;
                    if verdict == Verdict::MoveOn {
                        return None;
                    }
                }
                Verdict::Retry(delay) => {
                    tracing::info!(
                        "gen_ai.provider.name" = %target.provider,
                        "gen_ai.request.model" = %target.model,
                        "error.type" = class.as_str(),
                        "switchyard.delay_ms" = delay.as_millis() as u64,
                        "retry"
                    );
                    pause(delay).await;
                    retry += 1;
                }
                Verdict::Overflow(next) => {
                    let e = self.tally.last_error.clone().unwrap_or_else(|| {
                        ProviderError::new(class, target.provider.clone(), "context length exceeded")
                    });
                    return Some(Err(Stop::Overflow(next.to_owned(), Box::new(e))));
                }
                Verdict::FailOver { narrow } => {
                    if narrow {
                        self.narrow_window(target);
                    }
                    tracing::info!(
                        "gen_ai.provider.name" = %target.provider,
                        "gen_ai.request.model" = %target.model,
                        "error.type" = class.as_str(),
                        "failover"
                    );
                    let _ = inner.events.send(RouterEvent::Failover {
                        route: self.route.name.clone(),
                        from_provider: target.provider.clone(),
                        from_model: target.model.clone(),
                        class,
                    });
                    return None;
                }
                Verdict::Stop { narrow } => {
                    if narrow {
                        self.narrow_window(target);
                    }
                    return Some(Err(Stop::Failed(Box::new(self.failure()))));
                }
            }
        }
    }

    /// Why the target at `index` is no option for this request, before anything is asked of it:
    /// its window is no larger than one the prompt overflowed, or it cannot carry the request.
    fn ruled_out(&self, index: usize, target: &TargetPolicy) -> Option<SkipReason> {
        if let Some(w) = self.tally.overflow_window
            && target.context_window().is_some_and(|cw| cw <= w)
        {
            return Some(SkipReason::ContextTooSmall);
        }
        match self.facts.fits.as_ref().and_then(|f| f.get(index)) {
            Some(Fit::Refuses(why)) => Some(SkipReason::Unsupported(why.clone())),
            _ => None,
        }
    }

    /// A target whose provider could not be built (a missing key, an unbuildable client) fails at
    /// once, with no network call; the next target is tried when its class fails over.
    fn unavailable<T>(
        &mut self,
        inner: &Inner,
        target: &TargetPolicy,
        nodes: [&Node; 2],
        e: &ProviderError,
    ) -> Option<Result<Success<'s, T>, Stop>> {
        let e = e.clone().with_provider(target.provider.clone());
        let action = self.route.actions.get(e.class());
        self.record_error(inner, target, nodes, &e, Duration::ZERO, false, action.breaker);
        self.tally.last_error = Some(e);
        if action.failover { None } else { Some(Err(Stop::Failed(Box::new(self.failure())))) }
    }

    /// From now on, skip targets whose window is no larger than `target`'s, which the prompt
    /// overflowed.
    fn narrow_window(&mut self, target: &TargetPolicy) {
        let window = &mut self.tally.overflow_window;
        *window = Some(target.context_window().unwrap_or(0).max(window.unwrap_or(0)));
    }

    /// The attempt's span, when anyone records it.
    fn span(&self, target: &TargetPolicy, retry: u32) -> Option<Span> {
        crate::router::spans::info(|| {
            tracing::info_span!(
                "gen_ai.attempt",
                "otel.name" = %format_args!("{} {}", self.facts.op.as_str(), target.model),
                "otel.kind" = "client",
                "otel.status_code" = tracing::field::Empty,
                "gen_ai.operation.name" = self.facts.op.as_str(),
                "gen_ai.provider.name" = self.snap.policy.genai_provider_name(&target.provider),
                "gen_ai.system" = %target.provider,
                "switchyard.provider" = %target.provider,
                "gen_ai.request.model" = %target.model,
                "error.type" = tracing::field::Empty,
                "switchyard.route" = %self.route.name,
                "switchyard.retry" = retry,
                "switchyard.hedge" = self.unit.hedge,
            )
        })
    }

    /// Records a failed call on `target` (its nodes: the target's, then its provider's): the
    /// attempt, what its rate-limit headers said, and `effect` on the breakers.
    #[allow(clippy::too_many_arguments)]
    fn record_error(
        &mut self,
        inner: &Inner,
        target: &TargetPolicy,
        [target_node, provider_node]: [&Node; 2],
        e: &ProviderError,
        elapsed: Duration,
        probe: bool,
        effect: BreakerEffect,
    ) {
        let a = Attempt {
            class: Some(e.class()),
            status: e.status(),
            probe,
            hedge: self.unit.hedge,
            ..Attempt::new(target, AttemptOutcome::Error, elapsed)
        };
        tracing::info!(provider = %target.provider, model = %target.model, class = %e.class(), status = ?e.status(), "attempt failed: {}", e.message());
        let op = self.facts.op;
        if op != Op::Count
            && let Some(limit) = e.rate_limit()
        {
            let now = Instant::now();
            let sent = now.checked_sub(elapsed).unwrap_or(now);
            inner.learn_quota(&target.provider, &target.model, target_node, limit, sent);
        }
        inner.emit_attempt(&self.route.name, op, &a);
        self.attempts.push(a);
        // a count says nothing of how the model answers: its counting endpoint has its own limits
        // (a 429 there must not pause chat) and may not exist at all (a 404 must not trip it)
        if op != Op::Count {
            super::settle::settle_failure(inner, target, target_node, provider_node, effect, e);
        }
    }
}

/// The error of an attempt that ran out of time, `budget` after it started: the adapter's own
/// (`e`), or a new one, saying which limit that was.
fn timed_out(target: &TargetPolicy, budget: Duration, e: Option<ProviderError>) -> ProviderError {
    let which = if budget < target.timeouts.attempt { "the request's total timeout" } else { "the attempt timeout" };
    let message = format!("no complete answer within {which} ({budget:?})");
    match e {
        Some(e) => e.with_message(message),
        None => ProviderError::new(ErrorClass::Timeout, target.provider.clone(), message),
    }
}

/// A call in flight, until it returns. When the request is dropped first (its caller went
/// away), the attempt is still accounted, `cancelled`: metrics and spending budgets count the
/// prompt the provider read, as they count a cancelled hedge's.
struct Abandoned<'a> {
    call: Option<(&'a Inner, &'a str, Op, &'a TargetPolicy, &'a ChatRequest)>,
    /// The prompt's tokens, when already counted.
    prompt: Option<u64>,
    started: Instant,
    probe: bool,
    hedge: bool,
    /// A hedged unit's cancellation: when that is what dropped the call, the unit records it.
    cancel: Option<&'a tokio_util::sync::CancellationToken>,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        let Some((inner, route, op, target, request)) = self.call.take() else { return };
        if self.cancel.is_some_and(tokio_util::sync::CancellationToken::is_cancelled) {
            return;
        }
        let prompt = self.prompt.unwrap_or_else(|| request.estimated_prompt_tokens());
        let a = cancelled(target, (self.probe, self.hedge), self.started.elapsed(), op, Usage::new(prompt, 0));
        tracing::info!(provider = %target.provider, model = %target.model, "attempt cancelled: the request was dropped while its call was in flight");
        inner.emit_attempt(route, op, &a);
    }
}

/// The record of a call on `target` cancelled after `elapsed` (its request dropped, or a hedge
/// that lost): billed `usage`, what the provider read and generated until then. A count costs
/// nothing.
pub(crate) fn cancelled(
    target: &TargetPolicy,
    (probe, hedge): (bool, bool),
    elapsed: Duration,
    op: Op,
    usage: Usage,
) -> Attempt {
    let a = Attempt { probe, hedge, ..Attempt::new(target, AttemptOutcome::Cancelled, elapsed) };
    match op {
        Op::Chat | Op::Embed => a.priced(target, &usage),
        Op::Count => a,
    }
}
