//! The percentile and the sum every report of the crate uses (drill reports, the dashboard).

/// The nearest-rank `q`-quantile (`q` from 0 to 1) of `sorted`: the smallest value with at least
/// `q` of them at or below it; `None` without values.
pub(crate) fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The sum of `values`, `0.0` when there are none (std's float `sum` of nothing is `-0.0`,
/// which a report prints as `-0.000000`).
#[cfg(feature = "sim")]
pub(crate) fn sum(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "sim")]
    fn a_sum_of_nothing_is_a_plain_zero() {
        assert!(sum([]).is_sign_positive());
        assert_eq!(format!("{:.6}", sum([])), "0.000000");
        assert_eq!(sum([0.25, 0.5]), 0.75);
    }

    #[test]
    fn the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(50.0));
        assert_eq!(nearest_rank(&v, 0.99), Some(99.0));
        assert_eq!(nearest_rank(&v, 0.0), Some(1.0));
        assert_eq!(nearest_rank(&[7.0], 0.99), Some(7.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }
}
