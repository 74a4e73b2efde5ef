//! What a successful attempt holds (probe slots, limiter permits, its share of a stated budget)
//! until its answer is complete, and how that answer is settled.

use std::time::Duration;

use tokio::time::Instant;

use super::NodeRef;
use super::settle::{emit_if, settle_failure};
use crate::chat::Usage;
use crate::error::ProviderError;
use crate::policy::{BreakerEffect, Resume, RoutePolicy, TargetPolicy};
use crate::router::Inner;
use crate::router::breaker::ProbePermit;
use crate::router::health::Node;
use crate::router::limiter::LimitPermit;
use crate::router::outcome::{Attempt, AttemptOutcome};
use crate::router::quota::QuotaHold;

/// Holds what an attempt took (probe slots, limiter permits) until its verdict is recorded.
#[derive(Debug)]
pub(crate) struct Lease<'s> {
    pub(super) route: &'s RoutePolicy,
    pub(super) index: usize,
    pub(super) target_node: NodeRef<'s>,
    pub(super) provider_node: NodeRef<'s>,
    pub(super) probes: Vec<ProbePermit>,
    pub(super) _limits: [LimitPermit; 2],
    /// The request in flight against its provider's stated budget.
    pub(super) quota: QuotaHold,
    pub(super) estimate: u64,
    pub(crate) started: Instant,
    /// When this attempt must be over (its attempt timeout, capped by the request's deadline).
    pub(crate) deadline: Instant,
    /// Whether the provider ends the attempt (and its stream) by `deadline` itself.
    pub(crate) deadline_enforced: bool,
    /// Whether the attempt was started as a hedge.
    pub(super) hedge: bool,
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

impl Lease<'_> {
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

    /// The answer came back (complete at `now`, `elapsed` after the lease started): breakers hear
    /// it, the latency estimate takes it, and tokens beyond the estimate are charged to the limits.
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

    /// The served target's health node.
    pub(crate) fn target_node(&self) -> &Node {
        &self.target_node
    }
}
