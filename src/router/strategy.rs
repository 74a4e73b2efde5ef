//! Ordering a route's targets: `priority`, `weighted`, `round_robin`, `least_latency`.

use smallvec::SmallVec;

use crate::policy::{RoutePolicy, Strategy};
use crate::stable_hash::StableHash;

/// Target indexes in the order to try them: inline up to eight targets, so that ordering a
/// route allocates nothing on the request path.
pub(crate) type Order = SmallVec<[usize; 8]>;

/// The order in which to try a route's targets (indexes into `route.targets`).
///
/// `rr` is the route's round-robin counter, `latency(i)` the EWMA of target `i` (unknown sorts
/// first so that new targets get measured), `random()` a number in `0..1`, drawn only by
/// `weighted`.
pub(crate) fn order(
    route: &RoutePolicy,
    rr: usize,
    latency: impl Fn(usize) -> Option<f64>,
    random: impl FnOnce() -> f64,
) -> Order {
    let n = route.targets.len();
    let mut idx = Order::new();
    for i in 0..n {
        idx.push(i);
    }
    if n <= 1 {
        return idx;
    }
    match route.strategy {
        Strategy::Priority => {}
        Strategy::RoundRobin => idx.rotate_left(rr % n),
        Strategy::LeastLatency => {
            // stable: ties keep the written order
            idx.sort_by(|&a, &b| {
                let (la, lb) = (latency(a).unwrap_or(-1.0), latency(b).unwrap_or(-1.0));
                la.partial_cmp(&lb).unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        Strategy::Weighted => {
            let total: u64 = route.targets.iter().map(|t| u64::from(t.weight)).sum();
            if total > 0 {
                // pick the first by weight; the others follow as fallbacks, heaviest first
                let mut point = (random().clamp(0.0, 0.999_999) * total as f64) as u64;
                let mut first = 0;
                for (i, t) in route.targets.iter().enumerate() {
                    let w = u64::from(t.weight);
                    if point < w {
                        first = i;
                        break;
                    }
                    point -= w;
                }
                idx.sort_by_key(|&i| (i != first, std::cmp::Reverse(route.targets[i].weight), i));
            }
        }
    }
    idx
}

/// Prompt-cache affinity: the targets ordered by their rendezvous score for the request's prefix
/// hash (weighted by `weight`), so that every request with the prefix tries the same target
/// first, and the same second one when the first is skipped (an open breaker, a spent budget).
/// Adding or removing a target moves only the prefixes it gains or loses.
pub(crate) fn by_affinity(route: &RoutePolicy, prefix: u64) -> Order {
    let score = |i: usize| {
        let t = &route.targets[i];
        // the same in every router of a fleet, whatever built it
        let mixed = StableHash::default().u64(prefix).field(t.provider.as_bytes()).field(t.model.as_bytes()).finish();
        // a uniform draw in (0, 1) per (prefix, target), then weighted rendezvous: -w / ln(u)
        let u = ((mixed >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        -f64::from(t.weight.max(1)) / u.ln()
    };
    let mut idx: Order = (0..route.targets.len()).collect();
    idx.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
    idx
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn route(strategy: &str, weights: &[u32]) -> std::sync::Arc<RoutePolicy> {
        let targets: Vec<String> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{{ provider = \"p\", model = \"m{i}\", weight = {w} }}"))
            .collect();
        let text = format!(
            "[providers.p]\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n[routes.r]\nstrategy = \"{strategy}\"\ntargets = [{}]\n",
            targets.join(", ")
        );
        text.parse::<Policy>().unwrap().route("r").unwrap().clone()
    }

    #[test]
    fn affinity_spreads_prefixes_by_weight_and_moves_only_a_removed_targets_share() {
        let r = route("weighted", &[1, 3]);
        let n = 20_000u64;
        let firsts: Vec<usize> = (0..n).map(|p| by_affinity(&r, p.wrapping_mul(0x9e37_79b9)).as_slice()[0]).collect();
        let share = firsts.iter().filter(|&&i| i == 1).count() as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.02, "{share}");
        // a third target takes its share from both; no prefix moves between the first two
        let r3 = route("weighted", &[1, 3, 2]);
        for (p, &before) in (0..n).zip(&firsts) {
            let now = by_affinity(&r3, p.wrapping_mul(0x9e37_79b9)).as_slice()[0];
            assert!(now == before || now == 2, "prefix {p} moved from {before} to {now}");
        }
    }

    #[test]
    fn affinity_orders_are_the_same_in_every_build() {
        // pinned: routers of a fleet built by different toolchains must agree on each prefix
        let r = route("weighted", &[1, 1, 1, 1]);
        let orders: Vec<Vec<usize>> = [0u64, 1, 42, u64::MAX].iter().map(|&p| by_affinity(&r, p).to_vec()).collect();
        assert_eq!(orders, [[0, 3, 2, 1], [2, 1, 0, 3], [2, 0, 3, 1], [2, 0, 3, 1]]);
        let request =
            crate::chat::ChatRequest::new([crate::chat::Message::text(crate::chat::Role::System, "You are terse.")]);
        assert_eq!(request.cache_prefix_hash(), Some(1_170_117_064_972_875_768));
    }

    #[test]
    fn priority_keeps_the_written_order() {
        assert_eq!(order(&route("priority", &[1, 1, 1]), 7, |_| None, || 0.5).as_slice(), &[0, 1, 2]);
    }

    #[test]
    fn round_robin_rotates() {
        let r = route("round_robin", &[1, 1, 1]);
        assert_eq!(order(&r, 0, |_| None, || 0.0).as_slice(), &[0, 1, 2]);
        assert_eq!(order(&r, 1, |_| None, || 0.0).as_slice(), &[1, 2, 0]);
        assert_eq!(order(&r, 5, |_| None, || 0.0).as_slice(), &[2, 0, 1]);
    }

    #[test]
    fn least_latency_measures_unknown_first_then_fastest() {
        let r = route("least_latency", &[1, 1, 1]);
        let lat = [Some(50.0), Some(10.0), None];
        assert_eq!(order(&r, 0, |i| lat[i], || 0.0).as_slice(), &[2, 1, 0]);
    }

    #[test]
    fn weighted_follows_the_weights() {
        let r = route("weighted", &[3, 1]);
        let mut first = [0usize; 2];
        for k in 0..1000 {
            let o = order(&r, 0, |_| None, || f64::from(k) / 1000.0);
            first[o[0]] += 1;
            assert_eq!(o.len(), 2);
        }
        assert_eq!(first, [750, 250]);
    }
}
