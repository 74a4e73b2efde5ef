//! Spending budgets shared by a fleet: each router adds what it spends to one Redis counter per
//! budget and window (`INCRBYFLOAT`), and keeps the fleet's total it gets back, refreshed every
//! few seconds, so that checking a budget stays a local read on the request path.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Shared;
use crate::policy::Budget;
use crate::router::Inner;
use crate::router::budget::{self, Scope};

/// The longest a background write or read of the fleet's spend may take.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(5);

impl Shared {
    fn budget_key(&self, scope: &Scope, budget: &Budget, window: u64) -> String {
        let (kind, name) = scope.parts();
        format!("{}:budget:{kind}:{name}:{}:{window}", self.settings.fleet, budget.per.as_secs())
    }

    /// Adds `usd` spent by `scope` in `window` to the fleet's total, in the background, and keeps
    /// the total it gets back.
    pub(crate) fn spend_budget(
        self: &Arc<Self>,
        inner: Weak<Inner>,
        scope: Scope,
        budget: Budget,
        usd: f64,
        window: u64,
    ) {
        let Ok(mut connection) = self.connection() else { return };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let key = self.budget_key(&scope, &budget, window);
        let ttl = u64::try_from((budget.per + Duration::from_secs(60)).as_millis()).unwrap_or(u64::MAX);
        tokio::spawn(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("INCRBYFLOAT").arg(&key).arg(usd).cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
            // off the request path: the request-path `timeout` (50 ms) would drop spend under load,
            // or before the first connection is made, and the fleet's total would fall short
            let write = pipe.query_async::<(f64,)>(&mut connection);
            if let Ok(Ok((total,))) = tokio::time::timeout(BACKGROUND_TIMEOUT, write).await
                && let Some(inner) = inner.upgrade()
            {
                inner.budgets.observe(&scope, window, total);
            }
        });
    }

    /// Reads the fleet's totals of every budget of the policy in force.
    pub(crate) async fn refresh_budgets(&self, inner: &Inner) {
        let now = std::time::SystemTime::now();
        let scopes = budget::scopes(&inner.snapshot().policy);
        if scopes.is_empty() {
            return;
        }
        let Ok(mut connection) = self.connection() else { return };
        let windows: Vec<u64> = scopes.iter().map(|(_, b)| budget::window_index(b, now)).collect();
        let keys: Vec<String> =
            scopes.iter().zip(&windows).map(|((scope, b), w)| self.budget_key(scope, b, *w)).collect();
        let mut mget = redis::cmd("MGET");
        mget.arg(&keys);
        let read = mget.query_async::<Vec<Option<f64>>>(&mut connection);
        let Ok(Ok(totals)) = tokio::time::timeout(BACKGROUND_TIMEOUT, read).await else { return };
        for (((scope, _), window), total) in scopes.iter().zip(windows).zip(totals) {
            if let Some(total) = total {
                inner.budgets.observe(scope, window, total);
            }
        }
    }
}
