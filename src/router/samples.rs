//! The last answers' times to first token of a target, for hedging after its observed
//! percentile (`hedge = { after = "p95" }`).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// How many recent answers a percentile is taken over.
const WINDOW: usize = 64;

/// How many answers a percentile needs before it is trusted: with fewer, no hedge starts.
pub(crate) const MIN_SAMPLES: usize = 16;

/// A ring of the last [`WINDOW`] times to first token, in microseconds. Written with plain
/// atomic stores: a sample lost or torn under a race moves a percentile by one place at most.
#[derive(Debug)]
pub(crate) struct FirstTokenSamples {
    micros: [AtomicU32; WINDOW],
    written: AtomicUsize,
}

impl Default for FirstTokenSamples {
    fn default() -> Self {
        FirstTokenSamples { micros: std::array::from_fn(|_| AtomicU32::new(0)), written: AtomicUsize::new(0) }
    }
}

impl FirstTokenSamples {
    /// Adds one answer's time to first token (a whole answer's time, not streamed).
    pub(crate) fn record(&self, elapsed: Duration) {
        let n = self.written.fetch_add(1, Ordering::Relaxed);
        let us = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
        self.micros[n % WINDOW].store(us, Ordering::Relaxed);
    }

    /// The `p`th percentile (nearest rank) of the recent samples, once there are
    /// [`MIN_SAMPLES`] of them.
    pub(crate) fn percentile(&self, p: u8) -> Option<Duration> {
        let n = self.written.load(Ordering::Relaxed).min(WINDOW);
        if n < MIN_SAMPLES {
            return None;
        }
        let mut v: Vec<u32> = self.micros[..n].iter().map(|a| a.load(Ordering::Relaxed)).collect();
        v.sort_unstable();
        // nearest rank: the smallest sample with at least p% of them at or below it
        let rank = (usize::from(p.min(100)) * n).div_ceil(100).clamp(1, n);
        Some(Duration::from_micros(u64::from(v[rank - 1])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_percentile_until_enough_answers() {
        let s = FirstTokenSamples::default();
        for _ in 0..MIN_SAMPLES - 1 {
            s.record(Duration::from_millis(5));
        }
        assert_eq!(s.percentile(95), None);
        s.record(Duration::from_millis(5));
        assert_eq!(s.percentile(95), Some(Duration::from_millis(5)));
    }

    #[test]
    fn percentile_is_the_nearest_rank_of_the_last_answers() {
        let s = FirstTokenSamples::default();
        // 1..=100 ms: only the last 64 (37..=100) count
        for ms in 1..=100 {
            s.record(Duration::from_millis(ms));
        }
        // rank ceil(0.95 * 64) = 61 of 37..=100 is 97
        assert_eq!(s.percentile(95), Some(Duration::from_millis(97)));
        assert_eq!(s.percentile(50), Some(Duration::from_millis(68)));
        // an hour and more saturates instead of wrapping
        for _ in 0..WINDOW {
            s.record(Duration::from_secs(10_000));
        }
        assert_eq!(s.percentile(99), Some(Duration::from_micros(u64::from(u32::MAX))));
    }
}
