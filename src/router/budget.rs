//! Spending budgets (`budget = { usd, per }` on routes and providers): what each has spent in its
//! current window, from the cost of every attempt. A provider whose budget is spent is skipped;
//! a route whose budget is spent refuses its requests with `budget_exhausted` and the time it
//! resets. Windows are aligned to the Unix epoch on the wall clock, so a `1d` budget resets at
//! midnight UTC whatever the process did; what was spent survives policy reloads (kept by name).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::policy::Budget;
use crate::sync::lock;

/// What a budget belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "scope", content = "name", rename_all = "snake_case")]
pub(crate) enum Scope {
    Route(String),
    Provider(String),
    /// A gateway client key, by name.
    Key(String),
}

impl Scope {
    /// `route`, `provider` or `key`, and the name.
    pub(crate) fn parts(&self) -> (&'static str, &str) {
        match self {
            Scope::Route(n) => ("route", n),
            Scope::Provider(n) => ("provider", n),
            Scope::Key(n) => ("key", n),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Spent {
    /// The window's index (seconds since the epoch / its length).
    window: u64,
    usd: f64,
}

/// What every budget has spent.
#[derive(Debug, Default)]
pub(crate) struct Budgets(Mutex<HashMap<Scope, Spent>>);

/// One budget, as `/admin/state` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetSnapshot {
    /// `route`, `provider` or `key` (a gateway client key).
    pub scope: &'static str,
    /// Its name.
    pub name: String,
    /// USD per window.
    pub usd: f64,
    /// The window, as a duration (`"1h"`, `"1day"`, `"30days"`).
    pub per: String,
    /// Spent in the current window.
    pub spent_usd: f64,
    /// Until the window resets.
    pub resets_in_ms: u64,
}

/// The index of the window `now` is in (seconds since the epoch / its length).
pub(crate) fn window_index(budget: &Budget, now: SystemTime) -> u64 {
    window(budget, now).0
}

/// Every budget of `policy`, by what it belongs to.
pub(crate) fn scopes(policy: &crate::policy::Policy) -> Vec<(Scope, Budget)> {
    let routes = policy.routes.values().filter_map(|r| Some((Scope::Route(r.name.clone()), r.budget?)));
    let providers = policy.providers.values().filter_map(|p| Some((Scope::Provider(p.name.clone()), p.budget?)));
    let keys = policy.server.client_keys.keys().iter().filter_map(|k| Some((Scope::Key(k.name.clone()), k.budget?)));
    routes.chain(providers).chain(keys).collect()
}

/// The window `now` is in, and when it ends.
fn window(budget: &Budget, now: SystemTime) -> (u64, Duration) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let per = budget.per.as_secs().max(1);
    let index = since.as_secs() / per;
    let ends = Duration::from_secs((index + 1) * per);
    (index, ends.saturating_sub(since))
}

impl Budgets {
    fn spent_now(&self, scope: &Scope, budget: &Budget, now: SystemTime) -> f64 {
        let (index, _) = window(budget, now);
        lock(&self.0).get(scope).filter(|s| s.window == index).map_or(0.0, |s| s.usd)
    }

    /// Until when `scope`'s budget is spent, if it is at `now`.
    pub(crate) fn exhausted_for(&self, scope: &Scope, budget: Option<&Budget>, now: SystemTime) -> Option<Duration> {
        let budget = budget?;
        (self.spent_now(scope, budget, now) >= budget.usd).then(|| window(budget, now).1)
    }

    /// `usd` spent by `scope` at `now`.
    pub(crate) fn spend(&self, scope: Scope, budget: &Budget, usd: f64, now: SystemTime) {
        let (index, _) = window(budget, now);
        let mut all = lock(&self.0);
        let spent = all.entry(scope).or_insert(Spent { window: index, usd: 0.0 });
        if spent.window != index {
            *spent = Spent { window: index, usd: 0.0 };
        }
        spent.usd += usd;
    }

    /// What the fleet as a whole spent on `scope` in `window` (`[state] backend = "redis"`): what
    /// this router counts for the window is at least that.
    #[cfg(feature = "redis")]
    pub(crate) fn observe(&self, scope: &Scope, window: u64, total: f64) {
        if !total.is_finite() {
            return;
        }
        let mut all = lock(&self.0);
        let spent = all.entry(scope.clone()).or_insert(Spent { window, usd: 0.0 });
        if spent.window < window {
            *spent = Spent { window, usd: total };
        } else if spent.window == window {
            spent.usd = spent.usd.max(total);
        }
    }

    /// Every budget of `policy`, with what it spent.
    pub(crate) fn snapshot(&self, policy: &crate::policy::Policy, now: SystemTime) -> Vec<BudgetSnapshot> {
        scopes(policy)
            .into_iter()
            .map(|(scope, budget)| {
                let (kind, name) = scope.parts();
                BudgetSnapshot {
                    scope: kind,
                    name: name.to_owned(),
                    usd: budget.usd,
                    per: crate::duration::format_duration(budget.per),
                    spent_usd: self.spent_now(&scope, &budget, now),
                    resets_in_ms: window(&budget, now).1.as_millis() as u64,
                }
            })
            .collect()
    }
}

/// How a spent budget is said: `route \`chat\` spent its budget of $5.00 per 1d; it resets in 3h2m`.
pub(crate) fn describe(scope: &Scope, budget: &Budget, resets_in: Duration) -> String {
    let (kind, name) = scope.parts();
    let resets = crate::duration::format_duration(Duration::from_secs(resets_in.as_secs().max(1)));
    format!(
        "{kind} `{name}` spent its budget of ${:.2} per {}; it resets in {resets}",
        budget.usd,
        crate::duration::format_duration(budget.per)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spending_fills_the_window_and_the_next_starts_empty() {
        let b = Budgets::default();
        let budget = Budget { usd: 1.0, per: Duration::from_secs(3600) };
        let scope = Scope::Route("chat".into());
        let t = UNIX_EPOCH + Duration::from_secs(10 * 3600 + 600);
        assert_eq!(b.exhausted_for(&scope, Some(&budget), t), None);
        b.spend(scope.clone(), &budget, 0.6, t);
        assert_eq!(b.exhausted_for(&scope, Some(&budget), t), None);
        b.spend(scope.clone(), &budget, 0.5, t);
        assert_eq!(b.exhausted_for(&scope, Some(&budget), t), Some(Duration::from_secs(3000)));
        let next = UNIX_EPOCH + Duration::from_secs(11 * 3600);
        assert_eq!(b.exhausted_for(&scope, Some(&budget), next), None, "a new window");
        assert_eq!(b.exhausted_for(&Scope::Provider("chat".into()), Some(&budget), t), None, "scopes apart");
    }
}
