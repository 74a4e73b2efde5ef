//! OpenAI's `reasoning_effort` and Anthropic's thinking `budget_tokens`, mapped both ways through a
//! table that a model profile may override (`effort_budgets`).

use crate::profile::ModelProfile;

/// Thinking budget per effort when the target's profile gives no table of its own.
pub const DEFAULT_EFFORT_BUDGETS: &[(&str, u32)] =
    &[("minimal", 1024), ("low", 1024), ("medium", 4096), ("high", 16384)];

/// Efforts from weakest to strongest: where two efforts share a budget, the stronger one is the
/// one a budget maps back to.
const EFFORT_ORDER: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh"];

fn table(profile: Option<&ModelProfile>) -> Vec<(String, u32)> {
    match profile.and_then(|p| p.effort_budgets.as_ref()) {
        Some(t) => t.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        None => DEFAULT_EFFORT_BUDGETS.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
    }
}

/// The thinking budget for `effort` on a target with `profile`, or the efforts its table knows.
pub fn budget_for_effort(effort: &str, profile: Option<&ModelProfile>) -> Result<u32, Vec<String>> {
    let t = table(profile);
    t.iter().find(|(k, _)| k == effort).map(|(_, v)| *v).ok_or_else(|| t.into_iter().map(|(k, _)| k).collect())
}

/// The strongest effort whose budget is not above `budget` (the weakest when every budget is).
pub fn effort_for_budget(budget: u32, profile: Option<&ModelProfile>) -> Option<String> {
    let rank = |e: &str| EFFORT_ORDER.iter().position(|k| *k == e).unwrap_or(EFFORT_ORDER.len());
    let mut t = table(profile);
    t.sort_by_key(|(effort, budget)| (*budget, rank(effort)));
    let fits = t.iter().rev().find(|(_, v)| *v <= budget);
    fits.or_else(|| t.first()).map(|(k, _)| k.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_maps_both_ways() {
        assert_eq!(budget_for_effort("low", None), Ok(1024));
        assert_eq!(budget_for_effort("medium", None), Ok(4096));
        assert_eq!(budget_for_effort("high", None), Ok(16384));
        assert!(budget_for_effort("extreme", None).is_err_and(|known| known.contains(&"high".to_owned())));
        assert_eq!(effort_for_budget(1024, None).as_deref(), Some("low"));
        assert_eq!(effort_for_budget(5000, None).as_deref(), Some("medium"));
        assert_eq!(effort_for_budget(32000, None).as_deref(), Some("high"));
        assert_eq!(effort_for_budget(10, None).as_deref(), Some("minimal"));
    }
}
