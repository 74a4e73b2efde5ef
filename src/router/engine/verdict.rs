//! What a failed call leads to, as a pure function of the failure, the route's action for its
//! class, the target's retry state and the time left (as tower's `retry::Policy` decides).

use std::time::Duration;

use tokio::time::Instant;

use crate::error::ErrorClass;
use crate::policy::{ClassAction, Resume, RetryConfig};

/// What follows a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict<'a> {
    /// The model refused the prefill of a continuation: the same target again, at once, with its
    /// next `resume` strategy (learned, and the original failure kept).
    NextStrategy,
    /// The model refused the prefill and the target has no other strategy: the next target,
    /// without a failover event (and the original failure kept).
    MoveOn,
    /// The same target again after this wait.
    Retry(Duration),
    /// The prompt did not fit: go on to the route's `on_context_overflow` route, this one.
    Overflow(&'a str),
    /// The next target, told as a failover.
    FailOver {
        /// The prompt did not fit: from now on, skip targets whose window is not larger.
        narrow: bool,
    },
    /// Give up.
    Stop {
        /// As for [`Verdict::FailOver`].
        narrow: bool,
    },
}

/// Everything a verdict is drawn from, read when the call failed (after the failure was
/// recorded into the breakers).
#[derive(Debug, Clone, Copy)]
pub(super) struct Failure<'a> {
    /// The error's class.
    pub(super) class: ErrorClass,
    /// The provider's `x-should-retry`, which has the last word on a retry the policy allows.
    pub(super) should_retry: Option<bool>,
    /// The provider's `retry-after`.
    pub(super) retry_after: Option<Duration>,
    /// What the route does with `class`.
    pub(super) action: ClassAction,
    /// How the call continued a streamed answer, if it did.
    pub(super) resumed: Option<Resume>,
    /// Whether the target has the instructed strategy to fall back on after a refused prefill.
    pub(super) instructed_next: bool,
    /// The target's retry settings.
    pub(super) retry: &'a RetryConfig,
    /// Attempts on this target before this one (its retry number).
    pub(super) retries: u32,
    /// The route a prompt too long for this one goes on to, if any.
    pub(super) overflow_route: Option<&'a str>,
    /// Now, and the request's deadline.
    pub(super) now: Instant,
    pub(super) deadline: Instant,
}

/// Whether a failure of a call that continued with `resumed` is the model refusing a prefill:
/// not a breaker matter, and not the failure to report.
pub(super) fn refuses_prefill(resumed: Option<Resume>, class: ErrorClass) -> bool {
    resumed == Some(Resume::Prefill) && class == ErrorClass::InvalidRequest
}

/// The verdict on `f`. A retry is for a class the route retries (and the provider does not say
/// otherwise), with attempts left on the target and neither its breaker nor its provider's open
/// (`breaker_open`, asked only then, after the failure was recorded). It waits the provider's
/// `retry-after` when within the cap (a longer one moves on), else the backoff, drawn with
/// `jitter` (called only then); a retry that would end at or past the deadline is none.
pub(super) fn verdict<'a>(
    f: &Failure<'a>,
    breaker_open: impl FnOnce() -> bool,
    jitter: impl FnOnce() -> f64,
) -> Verdict<'a> {
    if refuses_prefill(f.resumed, f.class) {
        return if f.instructed_next { Verdict::NextStrategy } else { Verdict::MoveOn };
    }
    if f.now >= f.deadline {
        return Verdict::Stop { narrow: false };
    }
    let retryable = f.action.retry && f.should_retry.unwrap_or(true);
    if retryable && f.retries + 1 < f.retry.max_attempts && !breaker_open() {
        let delay = match f.retry_after {
            Some(ra) if ra <= f.retry.retry_after_cap => Some(ra),
            Some(_) => None, // longer than the cap: move on
            None => Some(f.retry.backoff(f.retries, jitter())),
        };
        if let Some(d) = delay.filter(|&d| f.now + d < f.deadline) {
            return Verdict::Retry(d);
        }
    }
    let narrow = f.class == ErrorClass::ContextLengthExceeded;
    if narrow && let Some(route) = f.overflow_route {
        return Verdict::Overflow(route);
    }
    if f.action.failover { Verdict::FailOver { narrow } } else { Verdict::Stop { narrow } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass as C;
    use crate::policy::BreakerEffect;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// One row: a change to the base case, and the verdict it leads to.
    type Row = (&'static str, fn(&mut Failure<'_>), Verdict<'static>);

    /// What the rows change: an overloaded provider (retried and failed over by default), the first
    /// of 3 attempts, 10 s left.
    fn base(retry: &RetryConfig, now: Instant) -> Failure<'_> {
        Failure {
            class: C::Overloaded,
            should_retry: None,
            retry_after: None,
            action: ClassAction { retry: true, failover: true, breaker: BreakerEffect::CountTarget },
            resumed: None,
            instructed_next: false,
            retry,
            retries: 0,
            overflow_route: None,
            now,
            deadline: now + Duration::from_secs(10),
        }
    }

    #[test]
    fn the_verdict_table() {
        let retry = RetryConfig { max_attempts: 3, base: ms(500), max: ms(8_000), retry_after_cap: ms(5_000) };
        let rows: &[Row] = &[
            ("retried: the backoff (jitter 0)", |_| {}, Verdict::Retry(ms(500))),
            ("the backoff doubles per retry", |f| f.retries = 1, Verdict::Retry(ms(1_000))),
            ("no attempts left: fail over", |f| f.retries = 2, Verdict::FailOver { narrow: false }),
            ("retry-after within the cap is waited", |f| f.retry_after = Some(ms(2_000)), Verdict::Retry(ms(2_000))),
            ("retry-after at the cap is waited", |f| f.retry_after = Some(ms(5_000)), Verdict::Retry(ms(5_000))),
            (
                "retry-after past the cap moves on",
                |f| f.retry_after = Some(ms(5_001)),
                Verdict::FailOver { narrow: false },
            ),
            (
                "a retry that would end at the deadline is none",
                |f| f.deadline = f.now + ms(500),
                Verdict::FailOver { narrow: false },
            ),
            ("a retry that ends before the deadline", |f| f.deadline = f.now + ms(501), Verdict::Retry(ms(500))),
            ("the deadline passed: stop", |f| f.deadline = f.now, Verdict::Stop { narrow: false }),
            (
                "the deadline passed, even when the prefill was refused",
                |f| {
                    f.deadline = f.now;
                    f.class = C::InvalidRequest;
                    f.resumed = Some(Resume::Prefill);
                },
                Verdict::MoveOn,
            ),
            ("x-should-retry: false", |f| f.should_retry = Some(false), Verdict::FailOver { narrow: false }),
            (
                "x-should-retry: true on a class the policy does not retry",
                |f| {
                    f.should_retry = Some(true);
                    f.action.retry = false;
                },
                Verdict::FailOver { narrow: false },
            ),
            (
                "x-should-retry: true on a class the SDKs do not retry",
                |f| {
                    f.class = C::InvalidRequest;
                    f.should_retry = Some(true);
                },
                Verdict::Retry(ms(500)),
            ),
            ("neither retry nor failover: stop", |f| f.action = no_action(), Verdict::Stop { narrow: false }),
            (
                "one attempt only, no failover: stop",
                |f| {
                    f.retries = 2;
                    f.action.failover = false;
                },
                Verdict::Stop { narrow: false },
            ),
            (
                "context overflow with a route for it",
                |f| {
                    f.class = C::ContextLengthExceeded;
                    f.action = failover_only();
                    f.overflow_route = Some("long");
                },
                Verdict::Overflow("long"),
            ),
            (
                "context overflow without: the next, larger window",
                |f| {
                    f.class = C::ContextLengthExceeded;
                    f.action = failover_only();
                },
                Verdict::FailOver { narrow: true },
            ),
            (
                "context overflow, no failover",
                |f| {
                    f.class = C::ContextLengthExceeded;
                    f.action = no_action();
                },
                Verdict::Stop { narrow: true },
            ),
            (
                "context overflow retried first when the policy says so",
                |f| {
                    f.class = C::ContextLengthExceeded;
                    f.overflow_route = Some("long");
                },
                Verdict::Retry(ms(500)),
            ),
            (
                "context overflow past the deadline: stop, the window as it was",
                |f| {
                    f.class = C::ContextLengthExceeded;
                    f.overflow_route = Some("long");
                    f.deadline = f.now;
                },
                Verdict::Stop { narrow: false },
            ),
            (
                "a refused prefill with the instructed strategy next",
                |f| {
                    f.class = C::InvalidRequest;
                    f.resumed = Some(Resume::Prefill);
                    f.instructed_next = true;
                },
                Verdict::NextStrategy,
            ),
            (
                "a refused prefill with nothing next",
                |f| {
                    f.class = C::InvalidRequest;
                    f.resumed = Some(Resume::Prefill);
                    f.action = no_action();
                },
                Verdict::MoveOn,
            ),
            (
                "an invalid instructed continuation is no refused prefill",
                |f| {
                    f.class = C::InvalidRequest;
                    f.resumed = Some(Resume::Instructed);
                    f.instructed_next = true;
                    f.action = no_action();
                },
                Verdict::Stop { narrow: false },
            ),
            (
                "a prefill that failed otherwise is retried",
                |f| {
                    f.resumed = Some(Resume::Prefill);
                    f.instructed_next = true;
                },
                Verdict::Retry(ms(500)),
            ),
        ];
        let now = Instant::now();
        for (case, change, expected) in rows {
            let mut f = base(&retry, now);
            change(&mut f);
            assert_eq!(verdict(&f, || false, || 0.0), *expected, "{case}");
        }
    }

    #[test]
    fn an_open_breaker_is_not_retried_and_is_asked_only_about_a_retry() {
        let retry = RetryConfig::default();
        let mut f = base(&retry, Instant::now());
        assert_eq!(verdict(&f, || true, || 0.0), Verdict::FailOver { narrow: false });
        f.action.failover = false;
        assert_eq!(verdict(&f, || true, || 0.0), Verdict::Stop { narrow: false });
        f.action.retry = false;
        assert_eq!(verdict(&f, || unreachable!("no retry: no breaker read"), || 0.0), Verdict::Stop { narrow: false });
        f.action.retry = true;
        f.retries = retry.max_attempts - 1;
        assert_eq!(verdict(&f, || unreachable!("no attempts left"), || 0.0), Verdict::Stop { narrow: false });
    }

    #[test]
    fn jitter_is_drawn_only_for_a_backoff() {
        let retry = RetryConfig::default();
        let now = Instant::now();
        let mut f = base(&retry, now);
        f.retry_after = Some(ms(100));
        assert_eq!(verdict(&f, || false, || unreachable!("a retry-after needs no jitter")), Verdict::Retry(ms(100)));
        f.retry_after = None;
        f.action.retry = false;
        assert_eq!(verdict(&f, || false, || unreachable!("no retry, no jitter")), Verdict::FailOver { narrow: false });
        f.action.retry = true;
        assert_eq!(verdict(&f, || false, || 1.0), Verdict::Retry(retry.backoff(0, 1.0)));
    }

    fn no_action() -> ClassAction {
        ClassAction { retry: false, failover: false, breaker: BreakerEffect::None }
    }

    fn failover_only() -> ClassAction {
        ClassAction { retry: false, failover: true, breaker: BreakerEffect::None }
    }
}
