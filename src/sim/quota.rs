//! A provider's request limit, as the simulator enforces it and states it: every answer of a
//! limited model carries the provider's rate-limit headers (OpenAI's `x-ratelimit-*-requests`,
//! Anthropic's `anthropic-ratelimit-requests-*`), and a request beyond the limit gets the 429
//! with `retry-after`, as the real providers do.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::provider::Protocol;
use crate::sync::lock;

#[derive(Debug)]
struct Budget {
    limit: u64,
    window: Duration,
    used: u64,
    start: Instant,
}

/// The limits set, by wire and model.
#[derive(Debug, Default)]
pub(crate) struct Quotas(Mutex<HashMap<(Protocol, String), Budget>>);

/// One request against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Within the limit.
    pub(crate) allowed: bool,
    pub(crate) limit: u64,
    /// Left after this request.
    pub(crate) remaining: u64,
    /// Until the window starts again.
    pub(crate) reset: Duration,
}

impl Quotas {
    /// `limit` requests per `window` for `model` on `protocol`, from now.
    pub(crate) fn set(&self, protocol: Protocol, model: &str, limit: u64, window: Duration) {
        let budget = Budget { limit, window, used: 0, start: Instant::now() };
        lock(&self.0).insert((protocol, model.to_owned()), budget);
    }

    /// Counts a request for `model`, if it is limited.
    pub(crate) fn take(&self, protocol: Protocol, model: &str) -> Option<Taken> {
        let mut all = lock(&self.0);
        let b = all.get_mut(&(protocol, model.to_owned()))?;
        let now = Instant::now();
        if now.duration_since(b.start) >= b.window {
            b.start = now;
            b.used = 0;
        }
        let allowed = b.used < b.limit;
        if allowed {
            b.used += 1;
        }
        let reset = b.window.saturating_sub(now.duration_since(b.start));
        Some(Taken { allowed, limit: b.limit, remaining: b.limit - b.used, reset })
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
            ("x-ratelimit-reset-requests", format!("{}ms", taken.reset.as_millis())),
        ],
    }
}
