//! The attempt loop: walk a route's targets in strategy order, admit each through breakers,
//! pauses and limits, retry or fail over per error class, all within the request's deadline.
//! Shared by `chat` and `chat_stream` (whose "success" is a stream that has produced content).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{Instrument, Span};

use super::breaker::{Admission, ProbePermit, Transition};
use super::events::RouterEvent;
use super::health::Node;
use super::limiter::{Denied, LimitPermit};
use super::outcome::{Attempt, AttemptOutcome, RouteFailure, RouterError, SkipReason};
use super::quota::{Quota, QuotaHold};
use super::{Inner, ProviderSlot, RouteState, Snapshot, TargetState};
use crate::capability::{self, Feature};
use crate::chat::{ChatRequest, Usage};
use crate::error::{ErrorClass, ProviderError};
use crate::policy::{BreakerEffect, Resume, RoutePolicy, TargetPolicy};
use crate::provider::{Call, CallTimeouts, Provider};

mod hedge;

/// A provider call for one attempt.
pub(crate) type AttemptFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// A health node, borrowed from the request's snapshot (no reference count to touch: every
/// request on every thread would write the same cache line), or owned in the rare case the
/// snapshot has none for a target.
type NodeRef<'s> = std::borrow::Cow<'s, Arc<Node>>;

/// Holds what an attempt took (probe slots, limiter permits) until its verdict is recorded.
#[derive(Debug)]
pub(crate) struct Lease<'s> {
    route: &'s RoutePolicy,
    index: usize,
    target_node: NodeRef<'s>,
    provider_node: NodeRef<'s>,
    probes: Vec<ProbePermit>,
    _limits: [LimitPermit; 2],
    /// The request in flight against its provider's stated budget.
    quota: QuotaHold,
    estimate: u64,
    pub(crate) started: Instant,
    /// When this attempt must be over (its attempt timeout, capped by the request's deadline).
    pub(crate) deadline: Instant,
    /// Whether the provider ends the attempt (and its stream) by `deadline` itself.
    pub(crate) deadline_enforced: bool,
    /// Whether the attempt was started as a hedge.
    hedge: bool,
}

/// A successful attempt: the value and the lease to settle when the answer is complete.
pub(crate) struct Success<'s, T> {
    pub(crate) value: T,
    pub(crate) lease: Lease<'s>,
    /// When the provider call returned.
    pub(crate) ended: Instant,
    /// How the attempt continued a streamed answer, if it did.
    pub(crate) resumed: Option<Resume>,
    /// Attempts on this target before this one, in this run of the plan (its retry number).
    pub(crate) retries: u32,
}

/// The request a target is sent, the caller's body when it is unchanged, and the strategy of a
/// continuation.
type Form<'r> = (&'r ChatRequest, Option<&'r crate::wire::Original>, Option<Resume>);

impl<'r> Ask<'r> {
    /// What `target` is sent: the caller's request, or the continuation its first usable
    /// `resume` strategy (in the order written) makes; or why it cannot take part. A prefill is
    /// usable where the model takes one: as its profile or a past 400 says, and when neither says,
    /// only on Anthropic's wire (an OpenAI-compatible server answers a trailing assistant turn
    /// afresh instead of continuing it), never with extended thinking on (Claude refuses it then),
    /// and not once `prefill_refused` by this target for this request.
    fn form(
        self,
        target: &TargetPolicy,
        node: &Node,
        anthropic: bool,
        prefill_refused: bool,
    ) -> Result<Form<'r>, SkipReason> {
        let Ask::Resume { prefill, instructed } = self else {
            let Ask::Request(request, original) = self else { unreachable!() };
            return Ok((request, original, None));
        };
        let thinking = matches!(
            &prefill.reasoning,
            Some(crate::chat::Reasoning::Budget { .. })
                | Some(crate::chat::Reasoning::Effort { .. })
                | Some(crate::chat::Reasoning::Adaptive { .. })
        ) && !matches!(&prefill.reasoning, Some(crate::chat::Reasoning::Effort { effort }) if effort == "none");
        let takes_prefill =
            !prefill_refused && !thinking && node.learned_prefill().or(target.supports_prefill()).unwrap_or(anthropic);
        for strategy in &target.resume {
            match strategy {
                Resume::Prefill if takes_prefill => return Ok((prefill, None, Some(Resume::Prefill))),
                Resume::Instructed => return Ok((instructed, None, Some(Resume::Instructed))),
                _ => {}
            }
        }
        Err(if target.resumes_with(Resume::Prefill) { SkipReason::NoPrefill } else { SkipReason::NoResume })
    }
}

/// What an attempt asks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ask<'r> {
    /// The caller's request, with the body it came in if it is unchanged since.
    Request(&'r ChatRequest, Option<&'r crate::wire::Original>),
    /// The continuation of a streamed answer that failed midway, in the two forms a target may
    /// take it: with the partial answer as an assistant prefill, or with it in the conversation
    /// and an instruction to go on. Each target uses the first of its `resume` strategies it can.
    Resume { prefill: &'r ChatRequest, instructed: &'r ChatRequest },
}

/// How a request ended without success.
pub(crate) enum Stop {
    /// Give up with this failure.
    Failed(Box<RouteFailure>),
    /// The prompt did not fit: continue on the route's `on_context_overflow` route.
    Overflow(String, Box<ProviderError>),
}

/// The state of one request as it walks its route. It borrows the request's snapshot, which the
/// caller holds for the whole request.
pub(crate) struct Plan<'s> {
    pub(crate) snap: &'s Snapshot,
    pub(crate) route: &'s RoutePolicy,
    /// The route's targets' health nodes and providers, resolved when the policy was applied.
    targets: &'s [TargetState],
    order: super::strategy::Order,
    pos: usize,
    pub(crate) deadline: Instant,
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) last_error: Option<ProviderError>,
    /// After a context overflow: skip targets whose window is not larger than this.
    overflow_window: Option<u64>,
    soonest_free: Option<Instant>,
    breaker_skips: Vec<usize>,
    other_skips: usize,
    forced_probe: bool,
    /// The prompt's token estimate, made the first time a token limit needs it.
    prompt_tokens: Option<u64>,
    /// The prompt counted with a tokenizer (by its id), for the targets of that tokenizer; `None`
    /// inside when the tokenizer could not count it (an image, say).
    tokenized: Option<(usize, Option<u64>)>,
    max_tokens: Option<u32>,
    /// Where the continuation of a streamed answer started in the order, so that a restart may
    /// use the targets it skipped.
    phase_start: usize,
    /// A target to try again before the rest of the order (a streamed answer continued where it
    /// failed): its index, the attempts it already had, and the wait before.
    revisit: Option<(usize, u32, Duration)>,
    /// The clock as the request started, for its first admission: one clock read fewer.
    now_hint: Option<Instant>,
    /// What each target's wire makes of a request that not every wire can carry (by target
    /// index); `None` for a request every wire carries as is.
    fits: Option<Box<[Fit]>>,
    /// What the calls do (counting tokens spends no rate-limit budget).
    op: Op,
    /// A plan of one target that runs beside others (a hedged request's attempts, each forked
    /// from the request's plan and merged back into it): it notes the call in flight, so that a
    /// cancelled one is still accounted.
    unit: bool,
    /// This unit was started as a hedge.
    hedge_unit: bool,
    /// For a hedge not yet called: how long the attempt in flight had waited when it started
    /// (its `hedge` event goes out with its call, not for a hedge ruled out before any).
    hedge_waited: Option<Duration>,
    /// The call this unit has in flight: when it started, and whether it is a breaker probe.
    in_flight: Option<(Instant, bool)>,
    /// A unit's cancellation: a call it cancels this way, the unit records itself.
    cancel: Option<tokio_util::sync::CancellationToken>,
}

/// The longest prompt (by its estimate, in tokens) that token limits count with a tokenizer:
/// ~128 KB of text, a few milliseconds of counting.
const TOKENIZE_AT_MOST: u64 = 32_768;

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

/// Whether a target can carry a request, checked once per request before any call.
#[derive(Debug, Clone)]
pub(crate) enum Fit {
    /// It can, leaving out these fields (reported to the caller).
    Carries(Vec<crate::wire::Unsupported>),
    /// It cannot: why, naming the field.
    Refuses(String),
}

/// Checks `request` against each target without sending it. A request that is not `portable` is
/// encoded for each target of another wire, to learn what it would drop or why it cannot take it
/// (targets of the wire of the caller's own body, `origin`, carry it as it is); then a model whose
/// profile lacks a feature the request `needs` cannot take it.
fn fits(
    snap: &Snapshot,
    route: &RoutePolicy,
    targets: &[TargetState],
    (request, origin): (&ChatRequest, Option<crate::provider::Protocol>),
    portable: bool,
    needs: &BTreeSet<Feature>,
) -> Box<[Fit]> {
    route
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let wire =
                if portable { Fit::Carries(Vec::new()) } else { wire_fit(snap, targets.get(i), t, request, origin) };
            let wire = match wire {
                Fit::Carries(mut dropped) => {
                    dropped.extend(betas_dropped(snap, t, request));
                    Fit::Carries(dropped)
                }
                refused => return refused,
            };
            let accepts = t.model_profile.as_ref().and_then(|m| m.accepts.as_ref());
            let mut lacks = capability::missing(needs, accepts);
            if let Fit::Carries(dropped) = &wire {
                // what the target drops, it need not honour
                lacks.retain(|f| !dropped.iter().any(|u| Feature::of_field(&u.field) == Some(*f)));
            }
            if lacks.is_empty() { wire } else { Fit::Refuses(capability::describe(&lacks)) }
        })
        .collect()
}

/// What target `t`'s wire makes of `request`: nothing to report when it is sent the caller's own
/// body (`origin` is its wire), or an encoding of the request that carries everything (the
/// request's dialect, nothing opaque).
fn wire_fit(
    snap: &Snapshot,
    state: Option<&TargetState>,
    t: &TargetPolicy,
    request: &ChatRequest,
    origin: Option<crate::provider::Protocol>,
) -> Fit {
    use crate::wire::{EncodeError, Target, encode};
    let protocol = match state.and_then(|s| s.provider.as_ref()) {
        Some(ProviderSlot::Ready(p)) => Some(p.protocol()),
        _ => snap.policy.provider(&t.provider).map(|p| p.protocol),
    };
    let Some(protocol) = protocol else { return Fit::Carries(Vec::new()) };
    if origin == Some(protocol) || (request.dialect == Some(protocol) && request.opaque.is_empty()) {
        return Fit::Carries(Vec::new());
    }
    let target = Target { model: &t.model, profile: t.model_profile.as_ref(), unsupported: t.unsupported };
    match encode(protocol, request, target, false) {
        Ok(e) => Fit::Carries(e.dropped),
        Err(EncodeError::Unsupported(fields)) => {
            let names: Vec<String> = fields.iter().map(|u| format!("`{}`", u.field)).collect();
            Fit::Refuses(format!("{} on the {} wire", names.join(", "), protocol.as_str()))
        }
        Err(EncodeError::Invalid(why)) => Fit::Refuses(why),
    }
}

/// The caller's beta features target `t`'s provider is not sent (`drop_betas`, or no
/// `anthropic-beta` in its `forward_headers`): dropped and reported, never a reason to skip it.
fn betas_dropped(snap: &Snapshot, t: &TargetPolicy, request: &ChatRequest) -> Vec<crate::wire::Unsupported> {
    if request.betas.is_empty() {
        return Vec::new();
    }
    match snap.policy.provider(&t.provider) {
        Some(p) if on_anthropic(snap, t) => {
            p.caller_headers.dropped_betas(request).map(crate::wire::Unsupported::beta).collect()
        }
        _ => Vec::new(),
    }
}

/// Whether target `t`'s provider speaks Anthropic's wire.
fn on_anthropic(snap: &Snapshot, t: &TargetPolicy) -> bool {
    snap.policy.provider(&t.provider).is_some_and(|p| p.protocol == crate::provider::Protocol::Anthropic)
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
                    f.message = format!("context overflow routes loop ({route_name} → {next}): {}", e.message);
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
            Some(prefix) => super::strategy::by_affinity(route, prefix),
            None => super::strategy::order(
                route,
                rr,
                |i| targets.get(i).and_then(|t| t.node.latency_ms()),
                rand::random::<f64>,
            ),
        };
        if state.deprioritizes {
            // a provider whose status page reports a major outage goes last, never away
            let outage: super::strategy::Order = (0..targets.len())
                .map(|i| usize::from(targets[i].incident_watch.as_ref().is_some_and(|p| p.is_outage())))
                .collect();
            order.sort_by_key(|&i| outage.get(i).copied().unwrap_or(0));
        }
        Plan {
            snap,
            route,
            targets,
            order,
            pos: 0,
            deadline,
            attempts: Vec::new(),
            last_error: None,
            overflow_window: None,
            soonest_free: None,
            breaker_skips: Vec::new(),
            other_skips: 0,
            forced_probe: false,
            prompt_tokens: None,
            tokenized: None,
            max_tokens: request.max_tokens,
            phase_start: 0,
            revisit: None,
            now_hint: None,
            fits: {
                let (portable, needs) = (crate::wire::is_portable(request), capability::required(request));
                let origin = original.map(crate::wire::Original::protocol);
                (!portable || !needs.is_empty())
                    .then(|| fits(snap, route, targets, (request, origin), portable, &needs))
            },
            op: Op::Chat,
            unit: false,
            hedge_unit: false,
            hedge_waited: None,
            in_flight: None,
            cancel: None,
        }
    }

    /// Makes this a plan for another operation than chat. Counting tokens: targets that cannot
    /// count (an OpenAI-wire model with no known tokenizer) are skipped as unsupported, and no
    /// rate-limit budget is spent (a count generates nothing; Anthropic meters its counting
    /// endpoint apart from messages). Embeddings: only OpenAI-wire targets that are not known
    /// chat models.
    /// What the plan's calls do.
    pub(crate) fn op(&self) -> Op {
        self.op
    }

    fn for_op(&mut self, op: Op, request: &ChatRequest) {
        use crate::provider::Protocol;
        self.op = op;
        let snap = self.snap;
        let refuses = |t: &TargetPolicy| -> Option<String> {
            let protocol = snap.policy.provider(&t.provider).map(|p| p.protocol);
            match op {
                Op::Chat => None,
                Op::Count if !protocol.is_some_and(Protocol::is_openai) => None,
                Op::Count if !crate::tokens::knows(&t.model) => {
                    Some(format!("no tokenizer is known for `{}`: its tokens cannot be counted", t.model))
                }
                Op::Count => crate::tokens::uncountable(request),
                Op::Embed if protocol == Some(Protocol::Anthropic) => {
                    Some("the anthropic wire has no embeddings".to_owned())
                }
                Op::Embed => t
                    .model_profile
                    .as_ref()
                    .is_some_and(|m| m.embedding_dimensions.is_none())
                    .then(|| format!("`{}` is a chat model, not an embedding model", t.model)),
            }
        };
        let fits: Box<[Fit]> = self
            .route
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let fit = self.fits.as_ref().and_then(|f| f.get(i)).cloned().unwrap_or(Fit::Carries(Vec::new()));
                match refuses(t) {
                    Some(why) if !matches!(fit, Fit::Refuses(_)) => Fit::Refuses(why),
                    _ => fit,
                }
            })
            .collect();
        self.fits = Some(fits);
    }

    /// The fields the target at `index` leaves out of this request.
    pub(crate) fn dropped(&self, index: usize) -> Vec<crate::wire::Unsupported> {
        match self.fits.as_ref().and_then(|f| f.get(index)) {
            Some(Fit::Carries(dropped)) => dropped.clone(),
            _ => Vec::new(),
        }
    }

    /// When no target can carry the request: one `invalid_request` failure naming why for each,
    /// before any provider is called.
    fn refused_everywhere(&mut self, inner: &Inner) -> Option<Stop> {
        let fits = self.fits.as_ref()?;
        if self.pos != 0 || !self.attempts.is_empty() || !fits.iter().all(|f| matches!(f, Fit::Refuses(_))) {
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
        self.last_error = Some(ProviderError::new(
            ErrorClass::InvalidRequest,
            first,
            format!("no target of route `{}` can carry this request: {}", route.name, reasons.join("; ")),
        ));
        Some(Stop::Failed(Box::new(self.failure())))
    }

    /// The request started at `now`, just before this plan was made.
    pub(crate) fn started_at(&mut self, now: Instant) {
        self.now_hint = Some(now);
    }

    /// Carries the attempts of a route that overflowed into this one.
    pub(crate) fn inherit(&mut self, attempts: Vec<Attempt>, last_error: Option<ProviderError>) {
        let mut all = attempts;
        all.append(&mut self.attempts);
        self.attempts = all;
        if self.last_error.is_none() {
            self.last_error = last_error;
        }
    }

    /// Starts what follows a streamed answer that failed on the target at `index` after
    /// `attempts` attempts there: that target is tried again first after `again`'s wait (its
    /// class is retried and it has attempts left), then the rest of the order when `failover`.
    /// A restart begins after the failed target, not with it.
    pub(crate) fn resume_after(&mut self, index: usize, attempts: u32, again: Option<Duration>, failover: bool) {
        self.phase_start = self.pos;
        self.revisit = again.map(|wait| (index, attempts, wait));
        if !failover {
            self.pos = self.order.len();
        }
    }

    /// Goes back to where the continuation started, so that a restart may use the targets it
    /// skipped because they could not continue.
    pub(crate) fn rewind_for_restart(&mut self) {
        self.revisit = None;
        self.pos = self.phase_start.min(self.pos);
    }

    /// Runs attempts until one succeeds or the plan is exhausted. Resumable: a later call continues
    /// with the next target in order.
    pub(crate) async fn run<T, F>(&mut self, inner: &Inner, ask: Ask<'_>, op: F) -> Result<Success<'s, T>, Stop>
    where
        F: for<'a> Fn(&'a dyn Provider, Call<'a>, &'a TargetPolicy) -> AttemptFuture<'a, T>,
    {
        if let Some(stop) = self.refused_everywhere(inner) {
            return Err(stop);
        }
        if let Some((idx, attempts, wait)) = self.revisit.take() {
            let route = self.route;
            // the wait of a retry, as on any retry of the same target, within the deadline
            let target = route.targets.get(idx).filter(|_| Instant::now() + wait < self.deadline);
            if !wait.is_zero() && target.is_some() {
                pause(wait).await;
            }
            if let Some(target) = target {
                let is_last = self.pos >= self.order.len();
                if let Some(result) = self.try_target(inner, ask, (idx, target), is_last, &op, (false, attempts)).await
                {
                    return result;
                }
            }
        }
        let hedge = self.route.hedge.filter(|_| self.op == Op::Chat && matches!(ask, Ask::Request(..)));
        if let Some(hedge) = hedge
            && let Some(result) = self.run_hedged(inner, ask, &op, hedge).await
        {
            return result;
        }
        while self.pos < self.order.len() {
            let idx = self.order[self.pos];
            // the last option is the last target this phase may use: a pause is waited out for
            // the only target that can continue a stream even when others that cannot follow it
            // (only a continuation rules targets out: the caller's request costs no lookup here)
            let snap = self.snap;
            let resuming = matches!(ask, Ask::Resume { .. });
            let ruled_out = |t: &TargetPolicy, n: &Node| ask.form(t, n, on_anthropic(snap, t), false).is_err();
            let is_last =
                self.order[self.pos + 1..].iter().all(|&i| match (self.route.targets.get(i), self.targets.get(i)) {
                    (Some(t), Some(state)) => resuming && ruled_out(t, &state.node),
                    (Some(t), None) => resuming && ruled_out(t, &inner.health.target(&t.provider, &t.model)),
                    (None, _) => true,
                });
            self.pos += 1;
            // borrowed from the snapshot, not from `self`, which is borrowed mutably below
            let route = self.route;
            let Some(target) = route.targets.get(idx) else { continue };
            if let Some(result) = self.try_target(inner, ask, (idx, target), is_last, &op, (false, 0)).await {
                return result;
            }
        }
        // every target was ruled out by an open breaker: probe the one whose cooldown ends first
        if !self.forced_probe
            && self.other_skips == 0
            && self.attempts.iter().all(|a| a.outcome == AttemptOutcome::Skipped)
            && !self.breaker_skips.is_empty()
        {
            self.forced_probe = true;
            let soonest = self.breaker_skips.iter().copied().min_by_key(|&i| {
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

    #[allow(clippy::too_many_arguments)]
    async fn try_target<T, F>(
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
        let (target_node, provider_node, slot) = match self.targets.get(index) {
            Some(s) => (NodeRef::Borrowed(&s.node), NodeRef::Borrowed(&s.provider_node), s.provider.as_ref()),
            None => (
                NodeRef::Owned(inner.health.target(&target.provider, &target.model)),
                NodeRef::Owned(inner.health.provider(&target.provider)),
                self.snap.providers.get(&target.provider),
            ),
        };
        if let Some(w) = self.overflow_window
            && target.context_window().is_some_and(|cw| cw <= w)
        {
            self.skip(inner, target, SkipReason::ContextTooSmall);
            return None;
        }
        if let Some(Fit::Refuses(why)) = self.fits.as_ref().and_then(|f| f.get(index)) {
            let reason = SkipReason::Unsupported(why.clone());
            self.skip(inner, target, reason);
            return None;
        }
        let provider = match slot {
            Some(ProviderSlot::Ready(p)) => p,
            Some(ProviderSlot::Unavailable(e)) => {
                // no network call: a missing key or an unbuildable client fails this target at once
                let mut e = (**e).clone();
                e.provider.clone_from(&target.provider);
                let effect = self.route.actions.get(e.class).breaker;
                self.record_error(inner, target, &target_node, &provider_node, &e, Duration::ZERO, false, effect);
                let action = self.route.actions.get(e.class);
                self.last_error = Some(e);
                return if action.failover { None } else { Some(Err(Stop::Failed(Box::new(self.failure())))) };
            }
            None => return None,
        };

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
            let now = self.now_hint.take().unwrap_or_else(Instant::now);
            let force = force_probe && retry == first_retry;
            let estimate = self.token_need(target, request, [&target_node, &provider_node]);
            let (admitted, started) =
                match self.admit(inner, target, &target_node, &provider_node, is_last, force, now, estimate).await {
                    Ok((probes, limits, quota, now)) => ((probes, limits, quota), now),
                    Err(reason) => {
                        self.skip(inner, target, reason);
                        return None;
                    }
                };
            if started >= self.deadline {
                self.skip(inner, target, SkipReason::Deadline);
                return Some(Err(Stop::Failed(Box::new(self.failure()))));
            }
            let probe = !admitted.0.is_empty();
            let attempt_deadline = (started + target.timeouts.attempt).min(self.deadline);
            let timeouts = CallTimeouts {
                first_token: Some(target.timeouts.first_token),
                idle: Some(target.timeouts.idle),
                deadline: Some(attempt_deadline),
            };
            let call = Call { model: &target.model, request, timeouts, unsupported: target.unsupported, original };
            if self.unit {
                self.in_flight = Some((started, probe));
                if let Some(waited) = self.hedge_waited.take() {
                    tracing::info!(route = %self.route.name, provider = %target.provider, model = %target.model, "hedging: no first token yet, starting the next target too");
                    let _ = inner.events.send(RouterEvent::Hedge {
                        route: self.route.name.clone(),
                        provider: target.provider.clone(),
                        model: target.model.clone(),
                        waited,
                    });
                }
            }
            let span = super::spans::info(|| {
                tracing::info_span!(
                    "gen_ai.attempt",
                    "otel.name" = %format_args!("{} {}", self.op.as_str(), target.model),
                    "otel.kind" = "client",
                    "otel.status_code" = tracing::field::Empty,
                    "gen_ai.operation.name" = self.op.as_str(),
                    "gen_ai.provider.name" = self.snap.policy.genai_provider_name(&target.provider),
                    "gen_ai.system" = %target.provider,
                    "switchyard.provider" = %target.provider,
                    "gen_ai.request.model" = %target.model,
                    "error.type" = tracing::field::Empty,
                    "switchyard.route" = %self.route.name,
                    "switchyard.retry" = retry,
                    "switchyard.hedge" = self.hedge_unit,
                )
            });
            // the call and its verdict in a block of their own: the attempt's result and error are
            // out of scope before the backoff below, so that the request's future need not hold
            // them while it waits (every request pays for its future's size in copies)
            let (class, action, delay) = {
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
                    call: Some((inner, self.route.name.as_str(), self.op, target, request)),
                    // the request's own prompt when known (a continuation's is longer)
                    prompt: if resumed.is_none() { self.prompt_tokens } else { None },
                    started,
                    probe,
                    hedge: self.hedge_unit,
                    cancel: self.cancel.as_ref(),
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
                self.in_flight = None;
                let timed_out = |e: Option<ProviderError>| {
                    let budget = attempt_deadline - started;
                    let which = if budget < target.timeouts.attempt {
                        "the request's total timeout"
                    } else {
                        "the attempt timeout"
                    };
                    let message = format!("no complete answer within {which} ({budget:?})");
                    match e {
                        Some(e) => ProviderError { message, ..e },
                        None => ProviderError::new(ErrorClass::Timeout, target.provider.clone(), message),
                    }
                };
                let error = match result {
                    Ok(Ok(value)) => {
                        if self.op == Op::Chat {
                            // a streamed answer's first content, or a whole answer
                            target_node.first_token.0.record(ended - started);
                        }
                        let lease = Lease {
                            route: self.route,
                            index,
                            target_node,
                            provider_node,
                            probes: admitted.0,
                            _limits: admitted.1,
                            quota: admitted.2,
                            estimate,
                            started,
                            deadline: attempt_deadline,
                            deadline_enforced: enforced,
                            hedge: self.hedge_unit,
                        };
                        return Some(Ok(Success { value, lease, ended, resumed, retries: retry }));
                    }
                    // the adapter's timer ran into the deadline: say which limit that was
                    Ok(Err(e)) if e.class == ErrorClass::Timeout && ended >= attempt_deadline => timed_out(Some(e)),
                    Ok(Err(e)) => e,
                    Err(_) => timed_out(None),
                };
                if let Some(span) = &span {
                    super::spans::failed(span, error.class);
                }
                drop(span);
                let refused_prefill = resumed == Some(Resume::Prefill) && error.class == ErrorClass::InvalidRequest;
                let effect =
                    if refused_prefill { BreakerEffect::None } else { self.route.actions.get(error.class).breaker };
                let elapsed = ended - started;
                self.record_error(inner, target, &target_node, &provider_node, &error, elapsed, probe, effect);
                // the verdict is recorded: a failure that does not count frees the probe slot, and the
                // limits' slots are not held through a backoff
                drop(admitted);
                let action = self.route.actions.get(error.class);
                let class = error.class;
                if refused_prefill {
                    // the model rejects prefill: learn it, and keep the original failure; the
                    // next strategy is tried on this target, or the next target
                    target_node.learn_prefill(false);
                    prefill_refused = true;
                    if target.resumes_with(Resume::Instructed) {
                        continue;
                    }
                    return None;
                }
                let retry_after = error.retry_after;
                let retryable = action.retry && if error.should_retry.is_some() { error.retryable() } else { true };
                self.last_error = Some(error);

                if Instant::now() >= self.deadline {
                    return Some(Err(Stop::Failed(Box::new(self.failure()))));
                }
                let mut delay = None;
                if retryable
                    && retry + 1 < target.retry.max_attempts
                    && target_node.breaker.open_until().is_none()
                    && provider_node.breaker.open_until().is_none()
                {
                    delay = match retry_after {
                        Some(ra) if ra <= target.retry.retry_after_cap => Some(ra),
                        Some(_) => None, // longer than the cap: move on
                        None => Some(target.retry.backoff(retry, rand::random::<f64>())),
                    }
                    .filter(|&d| Instant::now() + d < self.deadline);
                }
                (class, action, delay)
            };
            if let Some(delay) = delay {
                tracing::info!(
                    "gen_ai.provider.name" = %target.provider,
                    "gen_ai.request.model" = %target.model,
                    "error.type" = class.as_str(),
                    "switchyard.delay_ms" = delay.as_millis() as u64,
                    "retry"
                );
                pause(delay).await;
                retry += 1;
                continue;
            }
            if class == ErrorClass::ContextLengthExceeded {
                if let Some(overflow) = &self.route.on_context_overflow {
                    let e = self.last_error.clone().unwrap_or_else(|| {
                        ProviderError::new(class, target.provider.clone(), "context length exceeded")
                    });
                    return Some(Err(Stop::Overflow(overflow.clone(), Box::new(e))));
                }
                self.overflow_window =
                    Some(target.context_window().unwrap_or(0).max(self.overflow_window.unwrap_or(0)));
            }
            if action.failover {
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
            return Some(Err(Stop::Failed(Box::new(self.failure()))));
        }
    }

    /// Breakers, pause and limits at `now`; waits for a pause or a limit only when this is the last
    /// option. Returns the probe slots and permits taken, and the time when admitted.
    #[allow(clippy::too_many_arguments)]
    async fn admit(
        &mut self,
        inner: &Inner,
        target: &TargetPolicy,
        target_node: &Arc<Node>,
        provider_node: &Node,
        is_last: bool,
        force_probe: bool,
        now: Instant,
        estimate: u64,
    ) -> Result<(Vec<ProbePermit>, [LimitPermit; 2], QuotaHold, Instant), SkipReason> {
        let mut probes = Vec::new();
        for (node, is_provider) in [(provider_node, true), (target_node, false)] {
            let admission = if force_probe && node.breaker.open_until().is_some() {
                match node.breaker.force_probe() {
                    Some(p) => Admission::Probe(p),
                    // a probe in flight, or the router's own to come when the cooldown ends
                    None => Admission::Reject { until: node.breaker.open_until().map_or(now, |u| u.max(now)) },
                }
            } else {
                node.breaker.admit(now)
            };
            match admission {
                Admission::Pass => {}
                Admission::Probe(p) => probes.push(p),
                Admission::Reject { until } => {
                    self.note_free_at(until);
                    self.breaker_skips.push(
                        self.route
                            .targets
                            .iter()
                            .position(|t| t.provider == target.provider && t.model == target.model)
                            .unwrap_or(0),
                    );
                    return Err(if until <= now {
                        SkipReason::ProbeInFlight
                    } else if is_provider {
                        SkipReason::ProviderBreakerOpen
                    } else {
                        SkipReason::BreakerOpen
                    });
                }
            }
        }
        let bound = target.retry.retry_after_cap;
        let mut now = now;
        for node in [provider_node, target_node] {
            if let Some(until) = node.paused_until(now) {
                let wait = until - now;
                if is_last && wait <= bound && now + wait < self.deadline {
                    pause(wait).await;
                    now = Instant::now();
                } else {
                    self.note_free_at(until);
                    return Err(SkipReason::Paused);
                }
            }
        }
        // the provider's spending budget (a count costs nothing)
        if self.op != Op::Count
            && inner.has_budgets.load(std::sync::atomic::Ordering::Acquire)
            && let Some(budget) = self.snap.policy.provider(&target.provider).and_then(|p| p.budget)
        {
            let scope = super::budget::Scope::Provider(target.provider.clone());
            if let Some(resets_in) = inner.budgets.exhausted_for(&scope, Some(&budget), std::time::SystemTime::now()) {
                self.note_free_at(now + resets_in);
                return Err(SkipReason::Budget);
            }
        }
        // the budget the provider's headers stated (a count is metered apart by Anthropic and not
        // at all by OpenAI)
        let mut quota = QuotaHold::default();
        if self.op != Op::Count {
            quota = match Quota::try_take(target_node, now, estimate) {
                Ok(hold) => hold,
                Err(until) => {
                    let wait = until.saturating_duration_since(now);
                    if !(is_last && wait <= bound && now + wait < self.deadline) {
                        self.note_free_at(until);
                        return Err(SkipReason::ProviderBudget);
                    }
                    pause(wait).await;
                    now = Instant::now();
                    Quota::try_take(target_node, now, estimate).map_err(|until| {
                        self.note_free_at(until);
                        SkipReason::ProviderBudget
                    })?
                }
            };
        }
        // provider's, then target's: an array, not a vector, on this per-attempt path
        let mut permits: [LimitPermit; 2] = Default::default();
        let models = [None, Some(target.model.as_str())];
        for ((slot, node), model) in permits.iter_mut().zip([provider_node, target_node]).zip(models) {
            let Some(limiter) = node.limiter_if_limited() else { continue };
            if self.op == Op::Count {
                // a count spends no rate budget, but holds a concurrency slot like any call
                match limiter.try_slot() {
                    Ok(p) => {
                        *slot = p;
                        continue;
                    }
                    Err(_) => return Err(SkipReason::Concurrency),
                }
            }
            let limits = limiter.limits();
            // a fleet's limits are taken from the state it shares
            if let Some(shared) = inner.shared.load_full() {
                if limits.tpm.is_some_and(|tpm| estimate > u64::from(tpm)) {
                    return Err(SkipReason::TooLarge);
                }
                // a crashed router's slot comes back once its attempt could not last any longer
                let lease = target.timeouts.attempt + Duration::from_secs(10);
                let mut waited = false;
                let taken = loop {
                    match shared.take(&target.provider, model, limits, estimate, lease).await {
                        Ok(Ok(slot)) => break Some(slot),
                        Ok(Err(Denied::Rate { wait, .. })) => {
                            now = Instant::now();
                            if is_last && !waited && wait <= bound && now + wait < self.deadline {
                                waited = true;
                                pause(wait).await;
                            } else {
                                self.note_free_at(now + wait);
                                return Err(SkipReason::RateLimit);
                            }
                        }
                        Ok(Err(Denied::Concurrency)) => return Err(SkipReason::Concurrency),
                        Ok(Err(_)) => return Err(SkipReason::RateLimit),
                        Err(_) if shared.on_error() == crate::policy::OnStateError::FailClosed => {
                            return Err(SkipReason::SharedStateUnavailable);
                        }
                        // Redis could not say in time: the local limits decide
                        Err(_) => break None,
                    }
                };
                now = Instant::now();
                if let Some(taken) = taken {
                    *slot = LimitPermit::shared(taken);
                    continue;
                }
            }
            let mut waited = false;
            loop {
                match limiter.try_acquire(estimate) {
                    Ok(p) => {
                        *slot = p;
                        break;
                    }
                    Err(Denied::TooLarge { .. }) => return Err(SkipReason::TooLarge),
                    Err(Denied::Concurrency) => return Err(SkipReason::Concurrency),
                    Err(Denied::Rate { wait, .. }) => {
                        now = Instant::now();
                        if is_last && !waited && wait <= bound && now + wait < self.deadline {
                            waited = true;
                            pause(wait).await;
                            now = Instant::now();
                        } else {
                            self.note_free_at(now + wait);
                            return Err(SkipReason::RateLimit);
                        }
                    }
                }
            }
        }
        Ok((probes, permits, quota, now))
    }

    /// Tokens this request may need on `target`, for its token limits, only when a `tpm` applies
    /// (either way the whole prompt is read; rpm and concurrency need no count): counted with the
    /// model's tokenizer when one is known (OpenAI models, [`crate::tokens`]; ~0.3 ms for a
    /// 9.5 KB agent turn), else estimated (~4 µs). Each is computed once per request.
    fn token_need(&mut self, target: &TargetPolicy, request: &ChatRequest, nodes: [&Node; 2]) -> u64 {
        let tpm = |n: &&Node| n.limiter_if_limited().is_some_and(|l| l.limits().tpm.is_some());
        // (nodes[0] is the target's: a token budget its provider stated needs the count too)
        if self.op == Op::Count || !(nodes.iter().any(tpm) || nodes[0].quota.tracks_tokens()) {
            return 0;
        }
        let openai = self.snap.policy.provider(&target.provider).is_some_and(|p| p.protocol.is_openai());
        let estimate = *self.prompt_tokens.get_or_insert_with(|| request.estimated_prompt_tokens());
        // a prompt this long is counted by its estimate: a real count would hold this worker
        // thread for tens of milliseconds
        let countable = openai && estimate <= TOKENIZE_AT_MOST;
        let counted = match crate::tokens::tokenizer_id(&target.model).filter(|_| countable) {
            Some(id) => match self.tokenized {
                Some((seen, n)) if seen == id => n,
                _ => {
                    let n = crate::tokens::count_openai(&target.model, request).ok();
                    self.tokenized = Some((id, n));
                    n
                }
            },
            None => None,
        };
        target.token_need(counted.unwrap_or(estimate), self.max_tokens)
    }

    fn note_free_at(&mut self, at: Instant) {
        self.soonest_free = Some(self.soonest_free.map_or(at, |s| s.min(at)));
    }

    fn skip(&mut self, inner: &Inner, target: &TargetPolicy, reason: SkipReason) {
        // a target that cannot carry the request is no option at all: it does not stand in the way
        // of probing the ones whose breakers are open
        if !matches!(
            reason,
            SkipReason::BreakerOpen
                | SkipReason::ProviderBreakerOpen
                | SkipReason::ProbeInFlight
                | SkipReason::Unsupported(_)
        ) {
            self.other_skips += 1;
        }
        let a = Attempt {
            skip_reason: Some(reason),
            hedge: self.hedge_unit,
            ..Attempt::new(target, AttemptOutcome::Skipped, Duration::ZERO)
        };
        inner.emit_attempt(&self.route.name, self.op, &a);
        self.attempts.push(a);
    }

    #[allow(clippy::too_many_arguments)]
    fn record_error(
        &mut self,
        inner: &Inner,
        target: &TargetPolicy,
        target_node: &Node,
        provider_node: &Node,
        e: &ProviderError,
        elapsed: Duration,
        probe: bool,
        effect: BreakerEffect,
    ) {
        let a = Attempt {
            class: Some(e.class),
            status: e.status,
            probe,
            hedge: self.hedge_unit,
            ..Attempt::new(target, AttemptOutcome::Error, elapsed)
        };
        tracing::info!(provider = %target.provider, model = %target.model, class = %e.class, status = ?e.status, "attempt failed: {}", e.message);
        if self.op != Op::Count
            && let Some(limit) = &e.rate_limit
        {
            let now = Instant::now();
            let sent = now.checked_sub(elapsed).unwrap_or(now);
            inner.learn_quota(&target.provider, &target.model, target_node, limit, sent);
        }
        inner.emit_attempt(&self.route.name, self.op, &a);
        self.attempts.push(a);
        // a count says nothing of how the model answers: its counting endpoint has its own limits
        // (a 429 there must not pause chat) and may not exist at all (a 404 must not trip it)
        if self.op != Op::Count {
            settle_failure(inner, target, target_node, provider_node, effect, e);
        }
    }

    /// The failure that ends this plan: the last provider error, or why nothing could be tried.
    pub(crate) fn failure(&self) -> RouteFailure {
        let budget_only =
            !self.attempts.is_empty() && self.attempts.iter().all(|a| a.skip_reason == Some(SkipReason::Budget));
        let (class, message, retry_after) = match &self.last_error {
            Some(e) => (e.class, e.message.clone(), None),
            None if budget_only => {
                let mut spent: Vec<&str> = self.attempts.iter().map(|a| a.provider.as_str()).collect();
                spent.sort_unstable();
                spent.dedup();
                let message = format!(
                    "every target's provider spent its budget for this window ({}); the soonest resets in {}",
                    spent.join(", "),
                    crate::duration::format_duration(self.wait_hint().unwrap_or_default())
                );
                (ErrorClass::BudgetExhausted, message, self.wait_hint())
            }
            None if self.other_skips == 0 && !self.breaker_skips.is_empty() => (
                ErrorClass::Overloaded,
                "every target's breaker is open (the router probes them; or a probe is in flight)".to_owned(),
                self.wait_hint(),
            ),
            None if Instant::now() >= self.deadline => {
                (ErrorClass::Timeout, "the request's total timeout ran out before any attempt".to_owned(), None)
            }
            None => (
                ErrorClass::RateLimited,
                "every target is paused or at its local rate limit".to_owned(),
                self.wait_hint(),
            ),
        };
        let last = self.attempts.iter().rev().find(|a| a.outcome == AttemptOutcome::Error).or(self.attempts.last());
        RouteFailure {
            route: self.route.name.clone(),
            class,
            message,
            provider: self.last_error.as_ref().map(|e| e.provider.clone()).or_else(|| last.map(|a| a.provider.clone())),
            model: last.map(|a| a.model.clone()),
            status: self.last_error.as_ref().and_then(|e| e.status),
            retry_after: retry_after.or_else(|| self.last_error.as_ref().and_then(|e| e.retry_after)),
            error: self.last_error.clone(),
            attempts: self.attempts.clone(),
            mid_stream: false,
            provider_incidents: Vec::new(),
        }
    }

    fn wait_hint(&self) -> Option<Duration> {
        self.soonest_free.map(|t| t.saturating_duration_since(Instant::now()))
    }
}

pub(crate) fn emit_transition(inner: &Inner, provider: &str, model: Option<&str>, node: &Node, t: Transition) {
    let cooldown = node.breaker.open_until().map(|u| u.saturating_duration_since(Instant::now()));
    // the fleet hears of it (`[state] backend = "redis"`)
    if let Some(shared) = inner.shared.load_full() {
        shared.publish_breaker(provider, model, t.to, cooldown);
    }
    emit_remote_transition(inner, provider, model, node, t);
}

/// [`emit_transition`] for a change another router of the fleet made: told here, not retold.
pub(crate) fn emit_remote_transition(inner: &Inner, provider: &str, model: Option<&str>, node: &Node, t: Transition) {
    tracing::warn!(provider, model, from = t.from.as_str(), to = t.to.as_str(), "breaker transition");
    super::metrics::breaker(provider, model, t.to);
    if t.to != super::breaker::BreakerState::Closed && t.from != t.to {
        // an active breaker is probed by its router (by the fleet's one lease holder)
        super::probe::watch(inner, provider, model);
    }
    let cooldown = node.breaker.open_until().map(|u| u.saturating_duration_since(Instant::now()));
    let _ = inner.events.send(RouterEvent::Breaker {
        provider: provider.to_owned(),
        model: model.map(str::to_owned),
        from: t.from,
        to: t.to,
        cooldown,
    });
}

/// [`emit_transition`] when a breaker operation changed the state. Inlined: on every answer the
/// breakers report no change, and that check should cost no call.
#[inline]
fn emit_if(inner: &Inner, provider: &str, model: Option<&str>, node: &Node, t: Option<Transition>) {
    if let Some(t) = t {
        emit_transition(inner, provider, model, node, t);
    }
}

/// Records a failure into the breakers (and pauses a rate-limited target).
pub(crate) fn settle_failure(
    inner: &Inner,
    target: &TargetPolicy,
    target_node: &Node,
    provider_node: &Node,
    effect: BreakerEffect,
    e: &ProviderError,
) {
    let now = Instant::now();
    if e.class == ErrorClass::RateLimited
        && let Some(ra) = e.retry_after
    {
        target_node.pause(now + ra);
        // the fleet pauses it too: the provider said so to one of its routers
        if let Some(shared) = inner.shared.load_full() {
            shared.publish_pause(&target.provider, &target.model, ra.min(target.retry.retry_after_cap));
        }
    }
    let (p, m) = (target.provider.as_str(), Some(target.model.as_str()));
    // a breaker that opens is probed by the router from now on (unless it is passive)
    let opened = |node: &Node, model: Option<&str>, t: Option<Transition>| emit_if(inner, p, model, node, t);
    match effect {
        BreakerEffect::None => {
            // not a breaker matter, but a probe that ends this way still resolves the slot
        }
        BreakerEffect::CountTarget => opened(target_node, m, target_node.breaker.failure(now)),
        BreakerEffect::CountProvider => {
            opened(target_node, m, target_node.breaker.failure(now));
            opened(provider_node, None, provider_node.breaker.failure(now));
        }
        BreakerEffect::TripTarget => opened(target_node, m, target_node.breaker.trip(now)),
        BreakerEffect::TripProvider => opened(provider_node, None, provider_node.breaker.trip(now)),
    }
}

impl Lease<'_> {
    /// The answer is complete: close breakers, record latency, correct the token estimate.
    /// `now` is when the answer was complete, `elapsed` how long it took since the lease started.
    /// A token count came back. It says nothing of how the model answers chat (and a local count
    /// nothing of the provider at all): breakers and latency stay as they were; a probe slot it
    /// held is released without a verdict.
    pub(crate) fn counted(self) {
        drop(self.probes);
    }

    /// What the provider's rate-limit headers said with the answer: the target's budget.
    /// The request is no longer in flight against that budget: what the provider says counts it.
    pub(crate) fn learn_budget(&mut self, inner: &Inner, limit: Option<&crate::provider::RateLimit>) {
        self.quota.release();
        if let Some(limit) = limit {
            let target = self.target();
            inner.learn_quota(&target.provider, &target.model, &self.target_node, limit, self.started);
        }
    }

    /// The answer came back: breakers hear it, the latency estimate takes it, and tokens beyond
    /// the estimate are charged to the limits.
    pub(crate) fn succeed(self, inner: &Inner, usage: Option<Usage>, now: Instant, elapsed: Duration) {
        let (p, m) = (self.target().provider.as_str(), Some(self.target().model.as_str()));
        emit_if(inner, p, m, &self.target_node, self.target_node.breaker.success(now));
        emit_if(inner, p, None, &self.provider_node, self.provider_node.breaker.success(now));
        self.target_node.record_latency(elapsed);
        if let Some(u) = usage
            && (self.target_node.is_limited() || self.provider_node.is_limited())
        {
            let extra = u.total().saturating_sub(self.estimate);
            if extra > 0 {
                let target = self.target();
                let nodes = [(&self.target_node, Some(target.model.as_str())), (&self.provider_node, None)];
                for (node, model) in nodes {
                    if let Some(limiter) = node.limiter_if_limited() {
                        limiter.charge_extra(extra);
                        if let (Some(tpm), Some(shared)) = (limiter.limits().tpm, inner.shared.load_full()) {
                            shared.charge_extra(&target.provider, model, tpm, extra);
                        }
                    }
                }
            }
        }
        drop(self.probes);
    }

    /// The stream failed after it had started.
    pub(crate) fn fail(self, inner: &Inner, effect: BreakerEffect, e: &ProviderError) {
        settle_failure(inner, self.target(), &self.target_node, &self.provider_node, effect, e);
        drop(self.probes);
    }

    /// The target that served.
    pub(crate) fn target(&self) -> &TargetPolicy {
        // `index` was taken from this very route when the lease was made
        &self.route.targets[self.index]
    }

    /// The index of the target that served, in its route.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Whether this attempt went through as a breaker probe (its verdict closes or reopens it).
    pub(crate) fn is_probe(&self) -> bool {
        !self.probes.is_empty()
    }

    /// Whether this attempt is a breaker probe, and whether it was started as a hedge.
    pub(crate) fn flags(&self) -> (bool, bool) {
        (self.is_probe(), self.hedge)
    }

    /// The record of this attempt, ended with `outcome` after `elapsed`.
    pub(crate) fn attempt(&self, outcome: AttemptOutcome, elapsed: Duration) -> Attempt {
        Attempt { probe: self.is_probe(), hedge: self.hedge, ..Attempt::new(self.target(), outcome, elapsed) }
    }

    /// The record of this attempt, which served the answer after `elapsed`.
    pub(crate) fn served(&self, elapsed: Duration) -> Attempt {
        Attempt { status: Some(200), ..self.attempt(AttemptOutcome::Ok, elapsed) }
    }

    pub(crate) fn target_node(&self) -> &Node {
        &self.target_node
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

/// Waits out a backoff, a pause or a rate limit. Boxed: these waits are rare, and a timer inline
/// would make every request's future larger, which every request pays for in copies.
async fn pause(wait: Duration) {
    Box::pin(tokio::time::sleep(wait)).await;
}
