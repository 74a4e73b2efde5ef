//! Status pages read once for a fleet: the router that holds a page's reader lease reads it and
//! leaves what it found in Redis; the others take that instead of reading the page themselves.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Shared;
use crate::status_page::Summary;

/// What the reader found, as it leaves it for the others.
#[derive(Debug, Serialize, Deserialize)]
struct Found {
    summary: Option<Summary>,
    error: Option<String>,
    /// When it read it (ms since the epoch).
    read_at_ms: u64,
}

impl Shared {
    fn page_key(&self, provider: &str) -> String {
        format!("{}:statuspage:{provider}", self.settings.fleet)
    }

    /// Whether this router reads `provider`'s page for the fleet (it holds, or takes, the
    /// reader's lease for three intervals; also when Redis cannot say).
    pub(crate) async fn reads_status_page(&self, provider: &str, interval: Duration) -> bool {
        let Ok(mut connection) = self.connection() else { return true };
        let ms = u64::try_from((interval * 3).as_millis()).unwrap_or(u64::MAX).max(1);
        let mut call = self.lease.prepare_invoke();
        call.key(format!("{}:reader", self.page_key(provider))).arg(&self.instance).arg(ms);
        match tokio::time::timeout(self.settings.timeout, call.invoke_async::<i64>(&mut connection)).await {
            Ok(Ok(taken)) => taken == 1,
            _ => true,
        }
    }

    /// Leaves what this router read of `provider`'s page for the others, for three intervals.
    pub(crate) async fn leave_status_page(&self, provider: &str, result: &Result<Summary, String>, interval: Duration) {
        let Ok(mut connection) = self.connection() else { return };
        let read_at_ms =
            u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(0);
        let found = Found { summary: result.as_ref().ok().cloned(), error: result.as_ref().err().cloned(), read_at_ms };
        let Ok(text) = serde_json::to_string(&found) else { return };
        let ms = u64::try_from((interval * 3).as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.page_key(provider)).arg(text).arg("PX").arg(ms);
        let _ = tokio::time::timeout(self.settings.timeout, cmd.query_async::<()>(&mut connection)).await;
    }

    /// What the fleet's reader last found of `provider`'s page, and when it read it; `None` when
    /// it left nothing (yet), or Redis cannot say.
    pub(crate) async fn status_page_found(&self, provider: &str) -> Option<(Result<Summary, String>, SystemTime)> {
        let mut connection = self.connection().ok()?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.page_key(provider));
        let text = tokio::time::timeout(self.settings.timeout, cmd.query_async::<Option<String>>(&mut connection))
            .await
            .ok()?
            .ok()??;
        let found: Found = serde_json::from_str(&text).ok()?;
        let at = UNIX_EPOCH + Duration::from_millis(found.read_at_ms);
        let result = match (found.summary, found.error) {
            (Some(summary), _) => Ok(summary),
            (None, error) => Err(error.unwrap_or_else(|| "the fleet's reader found nothing".to_owned())),
        };
        Some((result, at))
    }
}
