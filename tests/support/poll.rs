//! Waiting for something to happen: poll it against a deadline of seconds rather than sleeping a
//! fixed time and hoping it happened meanwhile.

use std::future::Future;
use std::time::Duration;

/// How long to rest between two looks.
const STEP: Duration = Duration::from_millis(10);

/// Polls `check` until it gives a value or `within` has passed. Uses tokio's clock, so it also
/// works (and takes no real time) under `start_paused`.
pub async fn poll_for<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(STEP).await;
    }
}

/// Whether `condition` held within `within`.
pub async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    poll_for(within, || std::future::ready(condition().then_some(()))).await.is_some()
}

/// Whether the async `condition` held within `within`.
pub async fn eventually_async<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_for(within, || {
        let fut = condition();
        async move { fut.await.then_some(()) }
    })
    .await
    .is_some()
}

/// [`eventually`] for tests without a runtime (real time, blocking the thread).
pub fn eventually_blocking(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(STEP);
    }
}
