//! The breakers gate: the provider's breaker, then the target's. An open one turns the attempt
//! away until its cooldown ends, unless this attempt is to probe it; a half-open one lets one
//! probe through at a time.

use super::{Entry, Gate};
use crate::router::breaker::{Admission, ProbePermit};
use crate::router::engine::plan::Tally;
use crate::router::outcome::SkipReason;

/// The breakers gate.
pub(super) struct Breakers;

impl Gate for Breakers {
    /// The probe slots taken, whose verdict closes or reopens their breakers.
    type Held = Vec<ProbePermit>;

    async fn pass(&self, entry: &mut Entry<'_>, tally: &mut Tally) -> Result<Self::Held, SkipReason> {
        let now = entry.now;
        let mut probes = Vec::new();
        for (node, is_provider) in [(entry.provider_node, true), (&**entry.target_node, false)] {
            let admission = if entry.force_probe && node.breaker.open_until().is_some() {
                match node.breaker.force_probe() {
                    Some(p) => Admission::Probe(p),
                    // a probe in flight, or the router's own to come when the cooldown ends
                    None => Admission::Reject { until: node.breaker.open_until().map_or(now, |u| u.max(now)) },
                }
            } else {
                node.breaker.admit(now)
            };
            match admission {
                Admission::Pass => {}
                Admission::Probe(p) => probes.push(p),
                Admission::Reject { until } => {
                    tally.note_free_at(until);
                    let target = entry.target;
                    tally.breaker_skips.push(
                        entry
                            .route
                            .targets
                            .iter()
                            .position(|t| t.provider == target.provider && t.model == target.model)
                            .unwrap_or(0),
                    );
                    return Err(if until <= now {
                        SkipReason::ProbeInFlight
                    } else if is_provider {
                        SkipReason::ProviderBreakerOpen
                    } else {
                        SkipReason::BreakerOpen
                    });
                }
            }
        }
        Ok(probes)
    }
}
