//! The attempt loop: walk a route's targets in strategy order, admit each through breakers,
//! pauses and limits, retry or fail over per error class, all within the request's deadline.
//! Shared by `chat` and `chat_stream` (whose "success" is a stream that has produced content).
//!
//! This module is the orchestration: [`first_success`] (a request's route, and the routes its
//! context overflows go on to) and [`Plan::run`] (the walk of one route's order). The rooms:
//! [`plan`] (what a request knows and has done), [`fit`] (which targets can carry it), [`ask`]
//! (what a target is sent), [`admission`] (the gates before a call), [`attempt`] (one target's
//! calls), [`verdict`] (what a failed call leads to), [`lease`] (what a call holds until its
//! answer is settled), [`settle`] (what breakers and pauses hear), [`hedge`] (hedged requests).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use super::health::Node;
use super::outcome::{Attempt, AttemptOutcome, RouteFailure, RouterError};
use super::{Inner, Snapshot};
use crate::chat::ChatRequest;
use crate::error::{ErrorClass, ProviderError};
use crate::policy::{RoutePolicy, TargetPolicy};
use crate::provider::{Call, Provider};

mod admission;
mod ask;
mod attempt;
mod fit;
mod hedge;
mod lease;
mod plan;
mod settle;
mod verdict;

pub(crate) use ask::Ask;
pub(crate) use attempt::cancelled;
pub(crate) use lease::Success;
pub(crate) use plan::{Op, Plan};
pub(crate) use settle::emit_transition;
// only the fleet's breakers hear of another router's transitions
#[cfg(feature = "redis")]
pub(crate) use settle::emit_remote_transition;

/// A provider call for one attempt.
pub(crate) type AttemptFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// A health node, borrowed from the request's snapshot (no reference count to touch: every
/// request on every thread would write the same cache line), or owned in the rare case the
/// snapshot has none for a target.
type NodeRef<'s> = std::borrow::Cow<'s, std::sync::Arc<Node>>;

/// How a request ended without success.
pub(crate) enum Stop {
    /// Give up with this failure.
    Failed(Box<RouteFailure>),
    /// The prompt did not fit: continue on the route's `on_context_overflow` route.
    Overflow(String, Box<ProviderError>),
}

/// The refusal of a request on `route` when its budget is spent for this window.
fn route_budget_spent(inner: &Inner, route: &RoutePolicy) -> Option<RouteFailure> {
    let budget = route.budget.as_ref()?;
    let scope = super::budget::Scope::Route(route.name.clone());
    let resets_in = inner.budgets.exhausted_for(&scope, Some(budget), std::time::SystemTime::now())?;
    Some(RouteFailure {
        route: route.name.clone(),
        class: ErrorClass::BudgetExhausted,
        message: super::budget::describe(&scope, budget, resets_in),
        provider: None,
        model: None,
        status: None,
        retry_after: Some(resets_in),
        error: None,
        attempts: Vec::new(),
        mid_stream: false,
        provider_incidents: Vec::new(),
    })
}

/// The first phase of every request, streamed or not: its route's plan, run until an attempt
/// succeeds, following `on_context_overflow` to other routes (nothing has reached the caller yet,
/// so a hop starts clean, keeping the attempts so far). `op_for` makes the attempt of a route.
pub(crate) async fn first_success<'s, T, F>(
    inner: &Inner,
    snap: &'s Snapshot,
    route_name: &str,
    (request, original): (&ChatRequest, Option<&crate::wire::Original>),
    start: Instant,
    op_for: impl Fn(&'s RoutePolicy) -> F,
    op: Op,
) -> Result<(Plan<'s>, Success<'s, T>), RouterError>
where
    F: for<'a> Fn(&'a dyn Provider, Call<'a>, &'a TargetPolicy) -> AttemptFuture<'a, T>,
{
    let mut route_name = std::borrow::Cow::Borrowed(route_name);
    // boxed: rare (a context overflow), and it would make every request's future larger
    let mut carried: Option<Box<(Vec<Attempt>, Option<ProviderError>)>> = None;
    let mut hops = 0;
    loop {
        let route = snap
            .routes
            .get(route_name.as_ref())
            .ok_or_else(|| RouterError::UnknownRoute(route_name.clone().into_owned()))?;
        if op != Op::Count
            && let Some(f) = route_budget_spent(inner, &route.policy)
        {
            return Err(RouterError::Failed(Box::new(f)));
        }
        let deadline = start + route.policy.total_timeout;
        let mut plan = Plan::new(inner, snap, route, (request, original), deadline);
        if op != Op::Chat {
            plan.for_op(op, request);
        }
        match carried.take().map(|c| *c) {
            Some((attempts, last)) => plan.inherit(attempts, last),
            None => plan.started_at(start),
        }
        match plan.run(inner, Ask::Request(request, original), op_for(&route.policy)).await {
            Ok(success) => return Ok((plan, success)),
            Err(Stop::Failed(mut f)) => {
                inner.status.annotate(&mut f);
                return Err(RouterError::Failed(f));
            }
            Err(Stop::Overflow(next, e)) => {
                hops += 1;
                if hops > snap.policy.routes.len() {
                    let mut f = plan.failure();
                    f.message = format!("context overflow routes loop ({route_name} → {next}): {}", e.message());
                    inner.status.annotate(&mut f);
                    return Err(RouterError::Failed(Box::new(f)));
                }
                carried = Some(Box::new((plan.attempts.clone(), Some(*e))));
                route_name = std::borrow::Cow::Owned(next);
            }
        }
    }
}

impl<'s> Plan<'s> {
    /// Runs attempts until one succeeds or the plan is exhausted. Resumable: a later call continues
    /// with the next target in order.
    pub(crate) async fn run<T, F>(&mut self, inner: &Inner, ask: Ask<'_>, op: F) -> Result<Success<'s, T>, Stop>
    where
        F: for<'a> Fn(&'a dyn Provider, Call<'a>, &'a TargetPolicy) -> AttemptFuture<'a, T>,
    {
        if let Some(stop) = self.refused_everywhere(inner) {
            return Err(stop);
        }
        if let Some((idx, attempts, wait)) = self.cursor.revisit.take() {
            let route = self.route;
            // the wait of a retry, as on any retry of the same target, within the deadline
            let target = route.targets.get(idx).filter(|_| Instant::now() + wait < self.facts.deadline);
            if !wait.is_zero() && target.is_some() {
                pause(wait).await;
            }
            if let Some(target) = target {
                let is_last = self.cursor.exhausted();
                if let Some(result) = self.try_target(inner, ask, (idx, target), is_last, &op, (false, attempts)).await
                {
                    return result;
                }
            }
        }
        let hedge = self.route.hedge.filter(|_| self.facts.op == Op::Chat && matches!(ask, Ask::Request(..)));
        if let Some(hedge) = hedge
            && let Some(result) = self.run_hedged(inner, ask, &op, hedge).await
        {
            return result;
        }
        while let Some(idx) = self.cursor.peek() {
            // the last option is the last target this phase may use: a pause is waited out for
            // the only target that can continue a stream even when others that cannot follow it
            // (only a continuation rules targets out: the caller's request costs no lookup here)
            let snap = self.snap;
            let resuming = matches!(ask, Ask::Resume { .. });
            let ruled_out = |t: &TargetPolicy, n: &Node| ask.form(t, n, fit::on_anthropic(snap, t), false).is_err();
            let is_last = self.cursor.after_next().iter().all(|&i| {
                match (self.route.targets.get(i), self.facts.targets.get(i)) {
                    (Some(t), Some(state)) => resuming && ruled_out(t, &state.node),
                    (Some(t), None) => resuming && ruled_out(t, &inner.health.target(&t.provider, &t.model)),
                    (None, _) => true,
                }
            });
            self.cursor.advance();
            // borrowed from the snapshot, not from `self`, which is borrowed mutably below
            let route = self.route;
            let Some(target) = route.targets.get(idx) else { continue };
            if let Some(result) = self.try_target(inner, ask, (idx, target), is_last, &op, (false, 0)).await {
                return result;
            }
        }
        // every target was ruled out by an open breaker: probe the one whose cooldown ends first
        if !self.cursor.forced_probe
            && self.tally.other_skips == 0
            && self.attempts.iter().all(|a| a.outcome == AttemptOutcome::Skipped)
            && !self.tally.breaker_skips.is_empty()
        {
            self.cursor.forced_probe = true;
            let soonest = self.tally.breaker_skips.iter().copied().min_by_key(|&i| {
                self.route.targets.get(i).map(|t| {
                    let t_until = inner.health.target(&t.provider, &t.model).breaker.open_until();
                    let p_until = inner.health.provider(&t.provider).breaker.open_until();
                    t_until.max(p_until)
                })
            });
            let route = self.route;
            if let Some((i, target)) = soonest.and_then(|i| route.targets.get(i).map(|t| (i, t)))
                && let Some(result) = self.try_target(inner, ask, (i, target), true, &op, (true, 0)).await
            {
                return result;
            }
        }
        Err(Stop::Failed(Box::new(self.failure())))
    }
}

/// Waits out a backoff, a pause or a rate limit. Boxed: these waits are rare, and a timer inline
/// would make every request's future larger, which every request pays for in copies.
async fn pause(wait: Duration) {
    Box::pin(tokio::time::sleep(wait)).await;
}
