//! The settings every level may set (`[defaults]`, a provider, a route, a target): checked where
//! they appear, and merged, the nearest level first.

use std::time::Duration;

use crate::policy::config::{BreakerConfig, Limits, RetryConfig, Timeouts};
use crate::policy::diagnostic::Collector;
use crate::policy::schema::{BreakerSpec, Layer, LimitsSpec, RetrySpec, TimeoutsSpec};

/// Value checks that apply to a level's tables wherever they appear.
pub(super) fn check_layer(c: &mut Collector<'_>, key: &str, layer: &Layer) {
    if let Some(r) = &layer.retry
        && let Some(m) = &r.max_attempts
        && *m.get_ref() == 0
    {
        c.error(
            &m.span(),
            format!("{key}.retry.max_attempts"),
            "max_attempts counts the first attempt: it must be at least 1",
        );
    }
    if let Some(b) = &layer.breaker {
        if let Some(n) = &b.consecutive_failures
            && *n.get_ref() == 0
        {
            c.error(&n.span(), format!("{key}.breaker.consecutive_failures"), "must be at least 1");
        }
        if let (Some(cd), Some(max)) = (b.cooldown, b.max_cooldown)
            && cd.get() > max.get()
        {
            let span = b.consecutive_failures.as_ref().map_or(0..0, |s| s.span());
            c.warn(
                &span,
                format!("{key}.breaker.max_cooldown"),
                "max_cooldown is shorter than cooldown: cooldown will not grow",
            );
        }
    }
    if let Some(l) = &layer.limits {
        for (name, v) in
            [("rpm", &l.get_ref().rpm), ("tpm", &l.get_ref().tpm), ("concurrency", &l.get_ref().concurrency)]
        {
            if let Some(v) = v
                && *v.get_ref() == 0
            {
                c.error(&v.span(), format!("{key}.limits.{name}"), "must be at least 1 (leave it out for no limit)");
            }
        }
    }
}

fn pick<T: Copy>(layers: &[Option<&Layer>], get: impl Fn(&Layer) -> Option<T>) -> Option<T> {
    layers.iter().flatten().find_map(|l| get(l))
}

pub(super) fn merge_retry(layers: &[Option<&Layer>]) -> RetryConfig {
    let d = RetryConfig::default();
    let f = |g: fn(&RetrySpec) -> Option<Duration>| pick(layers, |l| l.retry.as_ref().and_then(g));
    RetryConfig {
        max_attempts: pick(layers, |l| l.retry.as_ref().and_then(|r| r.max_attempts.as_ref().map(|m| *m.get_ref())))
            .unwrap_or(d.max_attempts)
            .max(1),
        base: f(|r| r.base.map(|x| x.get())).unwrap_or(d.base),
        max: f(|r| r.max.map(|x| x.get())).unwrap_or(d.max),
        retry_after_cap: f(|r| r.retry_after_cap.map(|x| x.get())).unwrap_or(d.retry_after_cap),
    }
}

pub(super) fn merge_timeouts(layers: &[Option<&Layer>]) -> Timeouts {
    let d = Timeouts::default();
    let f = |g: fn(&TimeoutsSpec) -> Option<Duration>| pick(layers, |l| l.timeouts.as_ref().and_then(g));
    Timeouts {
        connect: f(|t| t.connect.map(|x| x.get())).unwrap_or(d.connect),
        first_token: f(|t| t.first_token.map(|x| x.get())).unwrap_or(d.first_token),
        idle: f(|t| t.idle.map(|x| x.get())).unwrap_or(d.idle),
        attempt: f(|t| t.attempt.map(|x| x.get())).unwrap_or(d.attempt),
        total: f(|t| t.total.map(|x| x.get())).unwrap_or(d.total),
    }
}

pub(super) fn merge_breaker(layers: &[Option<&Layer>]) -> BreakerConfig {
    let d = BreakerConfig::default();
    let f = |g: fn(&BreakerSpec) -> Option<Duration>| pick(layers, |l| l.breaker.as_ref().and_then(g));
    let cooldown = f(|b| b.cooldown.map(|x| x.get())).unwrap_or(d.cooldown);
    BreakerConfig {
        consecutive_failures: pick(layers, |l| {
            l.breaker.as_ref().and_then(|b| b.consecutive_failures.as_ref().map(|n| *n.get_ref()))
        })
        .unwrap_or(d.consecutive_failures)
        .max(1),
        cooldown,
        max_cooldown: f(|b| b.max_cooldown.map(|x| x.get())).unwrap_or(d.max_cooldown.max(cooldown)),
        probe: d.probe,
    }
}

pub(super) fn merge_limits(layers: &[Option<&Layer>]) -> Limits {
    let f = |g: fn(&LimitsSpec) -> Option<u32>| pick(layers, |l| l.limits.as_ref().and_then(|s| g(s.get_ref())));
    Limits {
        rpm: f(|l| l.rpm.as_ref().map(|v| *v.get_ref())),
        tpm: f(|l| l.tpm.as_ref().map(|v| *v.get_ref())),
        concurrency: f(|l| l.concurrency.as_ref().map(|v| *v.get_ref())),
    }
}
