//! The fleet's members, as each of them sees it: every router writes what policy it runs (and
//! its last reload error) to a key of its own every few seconds, with a TTL, and reads everyone
//! else's, so that each `/admin/state` shows the whole fleet: a replica left behind on an old
//! policy, or one whose reload failed, is seen from any of them.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use super::Shared;
use crate::router::Inner;
use crate::router::health::FleetMember;
use crate::sync::lock;

/// How often a router says it is there.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// How long its word lasts: three heartbeats missed, and it is gone from the others' view.
const MEMBER_TTL: Duration = Duration::from_secs(16);

/// The most members read.
const MAX_MEMBERS: usize = 1000;

impl Shared {
    /// What this router says of itself now.
    fn member(&self, inner: &Inner) -> FleetMember {
        let snap = inner.snapshot();
        FleetMember {
            instance: self.instance.clone(),
            this: false,
            policy_version: snap.version,
            policy_hash: snap.policy.hash.clone(),
            last_reload_error: inner.last_reload_error(),
            updated_at: crate::status_page::rfc3339(SystemTime::now()),
        }
    }

    fn member_key(&self, instance: &str) -> String {
        format!("{}:member:{instance}", self.settings.fleet)
    }

    /// Says what this router runs, and reads what the others do, every few seconds until the
    /// router is gone or its `[state]` changes.
    pub(crate) fn heartbeat(self: &Arc<Self>, inner: Weak<Inner>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let me = Arc::downgrade(self);
        runtime.spawn(async move {
            loop {
                {
                    let (Some(shared), Some(inner)) = (me.upgrade(), inner.upgrade()) else { return };
                    if !shared.is_current(&inner) {
                        return;
                    }
                    let member = shared.member(&inner);
                    shared.refresh_budgets(&inner).await;
                    drop(inner);
                    shared.exchange(member).await;
                }
                tokio::time::sleep(HEARTBEAT).await;
            }
        });
    }

    /// Says it at once (a policy was applied or rejected), in the background.
    pub(crate) fn announce(self: &Arc<Self>, inner: &Inner) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let member = self.member(inner);
        let me = self.clone();
        tokio::spawn(async move { me.exchange(member).await });
    }

    /// Writes `member`, then reads the fleet.
    async fn exchange(&self, member: FleetMember) {
        let Ok(mut connection) = self.connection() else { return };
        let Ok(text) = serde_json::to_string(&member) else { return };
        let ttl = u64::try_from(MEMBER_TTL.as_millis()).unwrap_or(u64::MAX);
        let pattern = format!("{}:member:*", self.settings.fleet);
        let work = async {
            redis::cmd("SET")
                .arg(self.member_key(&member.instance))
                .arg(&text)
                .arg("PX")
                .arg(ttl)
                .query_async::<()>(&mut connection)
                .await?;
            let mut keys = super::scan(&mut connection, &pattern, MAX_MEMBERS).await?;
            keys.truncate(MAX_MEMBERS);
            let values: Vec<Option<String>> = if keys.is_empty() {
                Vec::new()
            } else {
                redis::cmd("MGET").arg(&keys).query_async(&mut connection).await?
            };
            Ok::<_, redis::RedisError>(values)
        };
        // a slow Redis is waited for here, in the background, never by a request; its answer (or
        // none) says whether the shared state works, also for a fleet without limits
        let values = match tokio::time::timeout(Duration::from_secs(5), work).await {
            Ok(Ok(values)) => {
                self.recovered();
                values
            }
            Ok(Err(e)) => {
                self.failed(format!("Redis: {}", super::plain(&e, &self.url)));
                return;
            }
            Err(_) => {
                self.failed("Redis did not answer within 5s".to_owned());
                return;
            }
        };
        let mut members: Vec<FleetMember> = values
            .into_iter()
            .flatten()
            .filter_map(|v| serde_json::from_str::<FleetMember>(&v).ok())
            .map(|mut m| {
                m.this = m.instance == self.instance;
                m
            })
            .collect();
        members.sort_by(|a, b| b.this.cmp(&a.this).then_with(|| a.instance.cmp(&b.instance)));
        *lock(&self.members) = members;
    }

    /// The fleet as last read.
    pub(crate) fn members(&self) -> Vec<FleetMember> {
        lock(&self.members).clone()
    }
}
