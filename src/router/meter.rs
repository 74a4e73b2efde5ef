//! What a request has cost so far, for whoever pays for it beyond the router: a gateway charges
//! its client key's budget with it. Every attempt's cost is added as it is recorded, a cancelled
//! one's too, so that a caller who goes away mid-answer is charged what the providers billed.
//!
//! The meter rides with the request as a task-local: set around the router call (and carried
//! into a stream's driver, which its consumer polls), it is still set while a dropped request's
//! future is dropped, when its cancelled attempts are recorded.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

tokio::task_local! {
    static METER: Arc<Meter>;
}

/// What a request has cost: the sum of its priced attempts (in picodollars, an integer, so that
/// adding is one atomic operation), and whether any attempt had a price.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    /// In units of 10⁻¹² dollars: a token of the cheapest model is a few hundred thousand.
    picodollars: AtomicU64,
    priced: std::sync::atomic::AtomicBool,
}

impl Meter {
    /// The total, when any attempt had a price (a gateway's key charge reads it).
    #[cfg_attr(not(any(feature = "gateway", test)), allow(dead_code))]
    pub(crate) fn total_usd(&self) -> Option<f64> {
        self.priced.load(Ordering::Acquire).then(|| self.picodollars.load(Ordering::Acquire) as f64 / 1e12)
    }

    fn add(&self, usd: f64) {
        // costs are finite and not negative (prices are checked at load); a huge one saturates
        let pico = (usd.max(0.0) * 1e12).round().min(u64::MAX as f64) as u64;
        let _ = self.picodollars.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(v.saturating_add(pico)));
        self.priced.store(true, Ordering::Release);
    }
}

/// Runs `f` with `meter` counting the cost of every attempt it records.
pub(crate) async fn metered<F: Future>(meter: Arc<Meter>, f: F) -> F::Output {
    METER.scope(meter, f).await
}

/// The meter of the request being run, if one was set.
pub(crate) fn current() -> Option<Arc<Meter>> {
    METER.try_with(Arc::clone).ok()
}

/// Adds an attempt's cost to the request's meter, if it has one.
pub(crate) fn add(usd: f64) {
    let _ = METER.try_with(|m| m.add(usd));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn costs_are_summed_within_the_scope_only() {
        let meter = Arc::new(Meter::default());
        assert_eq!(meter.total_usd(), None, "nothing priced yet");
        add(1.0); // no meter set: nobody counts it
        metered(meter.clone(), async {
            add(0.000_123);
            add(0.25);
            assert!(current().is_some());
        })
        .await;
        assert!((meter.total_usd().unwrap() - 0.250_123).abs() < 1e-12);
        assert!(current().is_none());
    }

    #[tokio::test]
    async fn a_future_dropped_in_the_scope_still_counts_what_its_drop_records() {
        struct Records;
        impl Drop for Records {
            fn drop(&mut self) {
                add(0.5);
            }
        }
        let meter = Arc::new(Meter::default());
        let pending = metered(meter.clone(), async {
            let _r = Records;
            std::future::pending::<()>().await;
        });
        // polled once, so that its state holds `Records`, then dropped
        let mut pending = Box::pin(pending);
        assert!(futures::poll!(pending.as_mut()).is_pending());
        drop(pending);
        assert_eq!(meter.total_usd(), Some(0.5));
    }
}
