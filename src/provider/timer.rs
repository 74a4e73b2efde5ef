//! One timer for all of a call's time limits: the wait for the first token, the gaps between reads,
//! and the caller's deadline for the whole call. A timer per limit (and one more around the call)
//! would each take the runtime's timer lock twice; one timer that is pushed back is a lock-free
//! update whenever the new instant is later, which it almost always is.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::CallTimeouts;
use crate::error::{ErrorClass, ProviderError};

/// Which limit a timer stands for when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// The first-token limit (response headers, or the first stream event).
    FirstToken,
    /// The idle limit between two reads.
    Idle,
    /// The caller's deadline for the whole call.
    Deadline,
}

/// The message of a call that ran into its deadline.
pub(crate) const DEADLINE_MESSAGE: &str = "no complete answer before the call's deadline";

/// A call's limits, as instants from the call's start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    first: Option<Instant>,
    idle: Option<Duration>,
    deadline: Option<Instant>,
}

impl Limits {
    /// The limits of a call that started at `start`.
    pub(crate) fn new(timeouts: &CallTimeouts, start: Instant) -> Self {
        Limits { first: timeouts.first_token.map(|t| start + t), idle: timeouts.idle, deadline: timeouts.deadline }
    }

    /// The idle limit, for messages.
    pub(crate) fn idle(&self) -> Option<Duration> {
        self.idle
    }

    /// The limit on the wait for the response headers.
    pub(crate) fn headers(&self) -> Option<(Instant, Limit)> {
        earliest(self.first.map(|at| (at, Limit::FirstToken)), self.deadline)
    }

    /// The limit on the wait for the first stream event: the first-token limit, else the idle limit
    /// from `now`.
    pub(crate) fn first_event(&self, now: Instant) -> Option<(Instant, Limit)> {
        let first = self.first.map(|at| (at, Limit::FirstToken));
        earliest(first.or(self.idle.map(|i| (now + i, Limit::Idle))), self.deadline)
    }

    /// The limit on the next read after one at `now`.
    pub(crate) fn next_read(&self, now: Instant) -> Option<(Instant, Limit)> {
        earliest(self.idle.map(|i| (now + i, Limit::Idle)), self.deadline)
    }
}

/// The earlier of a limit and the deadline; on a tie the more specific limit names the timeout.
fn earliest(limit: Option<(Instant, Limit)>, deadline: Option<Instant>) -> Option<(Instant, Limit)> {
    match (limit, deadline) {
        (Some((at, l)), Some(d)) if at <= d => Some((at, l)),
        (_, Some(d)) => Some((d, Limit::Deadline)),
        (l, None) => l,
    }
}

/// Sets `timer` to fire at `at`: pushes an armed timer back (or forward), starts one if there is
/// none, and stops it when there is no limit.
fn arm(mut timer: Pin<&mut Option<Sleep>>, at: Option<Instant>) {
    match (timer.as_mut().as_pin_mut(), at) {
        (Some(sleep), Some(at)) => sleep.reset(at),
        (None, Some(at)) => timer.set(Some(tokio::time::sleep_until(at))),
        (Some(_), None) => timer.set(None),
        (None, None) => {}
    }
}

/// Runs `fut` to its end, or until `limit` passes: `Err` names the limit that did. The timer is
/// armed only if `fut` is not ready at its first poll (most body reads are: the bytes came with the
/// headers), so a read that need not wait costs no clock read and no timer update.
pub(crate) async fn wait_for<F: Future>(
    mut timer: Pin<&mut Option<Sleep>>,
    limit: impl FnOnce() -> Option<(Instant, Limit)>,
    fut: F,
) -> Result<F::Output, Limit> {
    let mut fut = std::pin::pin!(fut);
    let mut limit = Some(limit);
    let mut armed: Option<Limit> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if let Some(limit) = limit.take() {
            let l = limit();
            armed = l.map(|(_, which)| which);
            arm(timer.as_mut(), l.map(|(at, _)| at));
        }
        match (timer.as_mut().as_pin_mut(), armed) {
            (Some(sleep), Some(which)) => sleep.poll(cx).map(|()| Err(which)),
            _ => Poll::Pending,
        }
    })
    .await
}

/// The timeout error for a call that ran into its deadline.
pub(crate) fn deadline_error(provider: &str) -> ProviderError {
    ProviderError::new(ErrorClass::Timeout, provider, DEADLINE_MESSAGE)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits(first: Option<u64>, idle: Option<u64>, deadline: Option<u64>, start: Instant) -> Limits {
        let t = CallTimeouts {
            first_token: first.map(Duration::from_millis),
            idle: idle.map(Duration::from_millis),
            deadline: deadline.map(|d| start + Duration::from_millis(d)),
        };
        Limits::new(&t, start)
    }

    #[test]
    fn the_earlier_limit_names_the_timeout() {
        let s = Instant::now();
        let ms = |m| s + Duration::from_millis(m);
        assert_eq!(limits(Some(100), None, Some(50), s).headers(), Some((ms(50), Limit::Deadline)));
        assert_eq!(limits(Some(100), None, Some(500), s).headers(), Some((ms(100), Limit::FirstToken)));
        assert_eq!(limits(Some(100), None, Some(100), s).headers(), Some((ms(100), Limit::FirstToken)));
        assert_eq!(limits(None, Some(10), None, s).headers(), None);
        assert_eq!(limits(None, Some(10), Some(30), s).next_read(ms(25)), Some((ms(30), Limit::Deadline)));
        assert_eq!(limits(None, Some(10), Some(30), s).next_read(ms(5)), Some((ms(15), Limit::Idle)));
        assert_eq!(limits(None, None, None, s).next_read(ms(5)), None);
        // no first-token limit: the first stream event waits at most the idle limit
        assert_eq!(limits(None, Some(10), None, s).first_event(ms(2)), Some((ms(12), Limit::Idle)));
        assert_eq!(limits(Some(40), Some(10), None, s).first_event(ms(2)), Some((ms(40), Limit::FirstToken)));
    }

    #[tokio::test(start_paused = true)]
    async fn one_timer_is_pushed_back_and_fires_at_its_last_instant() {
        let start = Instant::now();
        let ms = |m| Some((start + Duration::from_millis(m), Limit::Idle));
        let mut timer = std::pin::pin!(None::<Sleep>);
        // ready at once: the limit is not even read, the timer not made
        let unread = || -> Option<(Instant, Limit)> { panic!("a ready read needs no limit") };
        assert_eq!(wait_for(timer.as_mut(), unread, std::future::ready(7)).await, Ok(7));
        assert!(timer.is_none());
        let slow = tokio::time::sleep(Duration::from_millis(5));
        assert_eq!(wait_for(timer.as_mut(), || ms(10), slow).await, Ok(()));
        let slow = tokio::time::sleep(Duration::from_millis(40));
        assert_eq!(wait_for(timer.as_mut(), || ms(50), slow).await, Ok(()), "pushed back past 10 ms");
        let never = std::future::pending::<()>();
        let deadline = Some((start + Duration::from_millis(70), Limit::Deadline));
        assert_eq!(wait_for(timer.as_mut(), || deadline, never).await, Err(Limit::Deadline));
        assert_eq!(Instant::now() - start, Duration::from_millis(70));
        let no_limit = tokio::time::sleep(Duration::from_secs(3600));
        assert_eq!(wait_for(timer.as_mut(), || None, no_limit).await, Ok(()), "no limit: waits as long as it takes");
        assert!(timer.is_none(), "no limit, no timer");
    }
}
