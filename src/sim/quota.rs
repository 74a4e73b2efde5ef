//! A provider's request limit, as the simulator enforces it and states it: every answer of a
//! limited model carries the provider's rate-limit headers (OpenAI's `x-ratelimit-*-requests`,
//! Anthropic's `anthropic-ratelimit-requests-*`), and a request beyond the limit gets the 429
//! with `retry-after`, as the real providers do. Like theirs, the limit is a bucket refilled
//! continuously (`limit` requests per `window`), and the reset the headers state is when it is
//! whole again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::provider::Protocol;
use crate::sync::lock;

#[derive(Debug)]
struct Bucket {
    limit: u64,
    window: Duration,
    /// Requests available at `at` (fractions refill between requests).
    level: f64,
    at: Instant,
}

impl Bucket {
    /// How long `n` requests take to refill.
    fn refill_time(&self, n: f64) -> Duration {
        Duration::from_secs_f64((n.max(0.0) * self.window.as_secs_f64() / self.limit.max(1) as f64).max(0.0))
    }
}

/// The limits set, by wire and model.
#[derive(Debug, Default)]
pub(crate) struct Quotas(Mutex<HashMap<(Protocol, String), Bucket>>);

/// One request against a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Taken {
    /// Within the limit.
    pub(crate) allowed: bool,
    pub(crate) limit: u64,
    /// Left after this request.
    pub(crate) remaining: u64,
    /// Until the bucket is whole again.
    pub(crate) reset: Duration,
    /// Until one request is back (a refused request's `retry-after`).
    pub(crate) next: Duration,
}

impl Quotas {
    /// `limit` requests per `window` for `model` on `protocol`, the bucket full from now.
    pub(crate) fn set(&self, protocol: Protocol, model: &str, limit: u64, window: Duration) {
        let bucket = Bucket { limit, window, level: limit as f64, at: Instant::now() };
        lock(&self.0).insert((protocol, model.to_owned()), bucket);
    }

    /// Counts a request for `model`, if it is limited.
    pub(crate) fn take(&self, protocol: Protocol, model: &str) -> Option<Taken> {
        let mut all = lock(&self.0);
        let b = all.get_mut(&(protocol, model.to_owned()))?;
        let now = Instant::now();
        let refilled = now.duration_since(b.at).as_secs_f64() * b.limit as f64 / b.window.as_secs_f64().max(1e-9);
        b.level = (b.level + refilled).min(b.limit as f64);
        b.at = now;
        let allowed = b.level >= 1.0;
        if allowed {
            b.level -= 1.0;
        }
        Some(Taken {
            allowed,
            limit: b.limit,
            remaining: b.level.floor() as u64,
            reset: b.refill_time(b.limit as f64 - b.level),
            next: b.refill_time(1.0 - b.level),
        })
    }
}

/// The headers `protocol`'s provider sends for `taken`.
pub(crate) fn headers(protocol: Protocol, taken: Taken) -> Vec<(&'static str, String)> {
    match protocol {
        Protocol::Anthropic => {
            let at = humantime::format_rfc3339_millis(SystemTime::now() + taken.reset).to_string();
            vec![
                ("anthropic-ratelimit-requests-limit", taken.limit.to_string()),
                ("anthropic-ratelimit-requests-remaining", taken.remaining.to_string()),
                ("anthropic-ratelimit-requests-reset", at),
            ]
        }
        _ => vec![
            ("x-ratelimit-limit-requests", taken.limit.to_string()),
            ("x-ratelimit-remaining-requests", taken.remaining.to_string()),
            // whole milliseconds, rounded up: never sooner than the bucket is whole
            ("x-ratelimit-reset-requests", format!("{}ms", taken.reset.as_micros().div_ceil(1000))),
        ],
    }
}
