//! Building a [`LiveFault`] in code, as `[[drill.faults]]` builds one from a policy.

use std::time::Duration;

use super::{InjectKind, LiveFault};
use crate::error::ErrorClass;

impl LiveFault {
    /// A fault on every request to `provider`, until lifted.
    pub fn new(provider: impl Into<String>, inject: InjectKind) -> Self {
        LiveFault {
            provider: provider.into(),
            model: None,
            inject,
            rate: 1.0,
            count: None,
            duration: None,
            until: None,
            retry_after: None,
            delay: None,
            after_tokens: None,
        }
    }

    /// A failure of `class` on `provider`, as that provider would send it. `budget_exhausted`
    /// is the router's own class, which no provider sends: such a fault never applies (drill
    /// files refuse it; set a small `budget` in the policy instead).
    pub fn error(provider: impl Into<String>, class: ErrorClass) -> Self {
        LiveFault::new(provider, InjectKind::Error(class))
    }

    /// Only requests for `model`.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The share of requests hit (0..=1).
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Stops after `n` hits.
    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }

    /// Stops after `d`.
    pub fn lasting(mut self, d: Duration) -> Self {
        self.duration = Some(d);
        self
    }

    /// The delay of a latency, slow-first-token or stall fault.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }

    /// `retry-after` sent with an injected `rate_limited`.
    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// Tokens before a stall or a cut.
    pub fn after_tokens(mut self, n: usize) -> Self {
        self.after_tokens = Some(n);
        self
    }
}
