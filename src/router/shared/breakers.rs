//! Breakers shared by a fleet: a breaker that opens (or closes) in one router is opened (or
//! closed) in every other within milliseconds, through a Redis channel, and a key per open
//! breaker (its cooldown as TTL) lets a router that starts, or reconnects, catch up. After a
//! cooldown one active probe goes out fleet-wide: the router that takes the probe lease. A
//! provider's `retry-after` to one router pauses the target in all of them (on the channel only).

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::Shared;
use crate::router::Inner;
use crate::router::breaker::BreakerState;
use crate::router::health::Node;

/// What one router tells the others of a breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Change {
    /// The router that saw it (the others act on it).
    origin: String,
    provider: String,
    /// `None` for the provider's breaker.
    model: Option<String>,
    /// `open`, `closed`, `paused`, or `quota` (what a provider's rate-limit headers said).
    to: String,
    /// How long it stays open (or paused).
    cooldown_ms: u64,
    /// With `quota`: what the headers said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate_limit: Option<crate::provider::RateLimit>,
}

/// How long the subscriber waits before it reconnects, at most.
const MAX_RECONNECT: Duration = Duration::from_secs(2);

/// The longest connecting and subscribing may take.
const SETUP_TIME: Duration = Duration::from_secs(5);

/// How often the subscriber catches up from the keys, whatever the channel said.
const RESYNC: Duration = Duration::from_secs(5);

impl Shared {
    fn channel(&self) -> String {
        format!("{}:breakers", self.settings.fleet)
    }

    fn breaker_key(&self, provider: &str, model: Option<&str>) -> String {
        match model {
            Some(m) => format!("{}:breaker:{provider}/{m}", self.settings.fleet),
            None => format!("{}:breaker:{provider}", self.settings.fleet),
        }
    }

    /// Tells the fleet that a breaker of this router changed (in the background; a Redis that
    /// does not answer loses the news, and each router keeps its own breakers meanwhile).
    pub(crate) fn publish_breaker(
        self: &Arc<Self>,
        provider: &str,
        model: Option<&str>,
        to: BreakerState,
        cooldown: Option<Duration>,
    ) {
        let to = match to {
            BreakerState::Open => "open",
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => return,
        };
        let Ok(mut connection) = self.connection() else { return };
        let cooldown_ms = cooldown.map_or(0, |c| u64::try_from(c.as_millis()).unwrap_or(u64::MAX)).max(1);
        let change = Change {
            origin: self.instance.clone(),
            provider: provider.to_owned(),
            model: model.map(str::to_owned),
            to: to.to_owned(),
            cooldown_ms,
            rate_limit: None,
        };
        let Ok(message) = serde_json::to_string(&change) else { return };
        let (key, channel, me) = (self.breaker_key(provider, model), self.channel(), self.clone());
        tokio::spawn(async move {
            let mut pipe = redis::pipe();
            if change.to == "open" {
                // the value names who opened it: catching up, a router skips its own
                pipe.cmd("SET").arg(&key).arg(&change.origin).arg("PX").arg(cooldown_ms).ignore();
                // a new cooldown gets a probe of its own: the last one's lease is void (a lease
                // that closed the breaker is kept until it expires, while the others hear of it)
                pipe.cmd("DEL").arg(format!("{key}:probe")).ignore();
            } else {
                pipe.cmd("DEL").arg(&key).ignore();
            }
            pipe.cmd("PUBLISH").arg(&channel).arg(&message).ignore();
            let sent = tokio::time::timeout(me.settings.timeout, pipe.query_async::<()>(&mut connection)).await;
            if !matches!(sent, Ok(Ok(()))) {
                tracing::debug!(provider = %change.provider, "breaker change not shared: Redis did not take it");
            }
        });
    }

    /// Publishes `change` on the fleet's channel, in the background.
    fn publish(&self, mut connection: redis::aio::ConnectionManager, change: &Change) {
        let Ok(message) = serde_json::to_string(change) else { return };
        let (channel, timeout) = (self.channel(), self.settings.timeout);
        tokio::spawn(async move {
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(&channel).arg(&message);
            let _ = tokio::time::timeout(timeout, cmd.query_async::<i64>(&mut connection)).await;
        });
    }

    /// Tells the fleet what a provider's rate-limit headers said of a target's budget: the
    /// provider counts every router's requests against it.
    pub(crate) fn publish_quota(self: &Arc<Self>, provider: &str, model: &str, limit: &crate::provider::RateLimit) {
        let Ok(connection) = self.connection() else { return };
        let change = Change {
            origin: self.instance.clone(),
            provider: provider.to_owned(),
            model: Some(model.to_owned()),
            to: "quota".to_owned(),
            cooldown_ms: 0,
            rate_limit: Some(*limit),
        };
        self.publish(connection, &change);
    }

    /// Tells the fleet that the provider asked this router to wait `pause` before sending
    /// `model` anything more (its `retry-after`).
    pub(crate) fn publish_pause(self: &Arc<Self>, provider: &str, model: &str, pause: Duration) {
        let Ok(connection) = self.connection() else { return };
        let change = Change {
            origin: self.instance.clone(),
            provider: provider.to_owned(),
            model: Some(model.to_owned()),
            to: "paused".to_owned(),
            cooldown_ms: u64::try_from(pause.as_millis()).unwrap_or(u64::MAX).max(1),
            rate_limit: None,
        };
        self.publish(connection, &change);
    }

    /// The lease of the one probe the fleet sends for a breaker after its cooldown. `true` when
    /// this router is to probe (also when Redis cannot say: a probe too many beats none).
    pub(crate) async fn probe_lease(&self, provider: &str, model: Option<&str>, hold: Duration) -> bool {
        let Ok(mut connection) = self.connection() else { return true };
        let key = format!("{}:probe", self.breaker_key(provider, model));
        let ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        // the holder may take it again (it did not get to probe, its cooldown moved on)
        let mut call = self.lease.prepare_invoke();
        call.key(&key).arg(&self.instance).arg(ms);
        match tokio::time::timeout(self.settings.timeout, call.invoke_async::<i64>(&mut connection)).await {
            Ok(Ok(taken)) => taken == 1,
            _ => true,
        }
    }

    /// Follows the fleet's breaker changes until the router is gone or its `[state]` changes:
    /// catches up with the breakers open now, then applies each change another router publishes.
    pub(crate) fn follow_breakers(self: &Arc<Self>, inner: Weak<Inner>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let me = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let Some(shared) = me.upgrade() else { return };
                if !inner.upgrade().is_some_and(|i| shared.is_current(&i)) {
                    return;
                }
                let subscribed = tokio::time::timeout(SETUP_TIME, async {
                    let mut pubsub = shared.client.get_async_pubsub().await?;
                    pubsub.subscribe(shared.channel()).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                });
                let mut pubsub = match subscribed.await {
                    Ok(Ok(p)) => p,
                    _ => {
                        drop(shared);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_RECONNECT);
                        continue;
                    }
                };
                backoff = Duration::from_millis(100);
                shared.catch_up(&inner).await;
                drop(shared);
                let mut messages = pubsub.on_message();
                // every few seconds: stop when the router is gone or its [state] changed, and
                // catch up (a connection that died without a word delivers nothing more)
                let mut tick = tokio::time::interval(RESYNC);
                tick.tick().await;
                loop {
                    tokio::select! {
                        message = messages.next() => {
                            let Some(message) = message else { break };
                            let (Some(shared), Some(inner)) = (me.upgrade(), inner.upgrade()) else { return };
                            if !shared.is_current(&inner) {
                                return;
                            }
                            if let Ok(change) = serde_json::from_slice::<Change>(message.get_payload_bytes()) {
                                shared.apply(&inner, &change);
                            }
                        }
                        _ = tick.tick() => {
                            let Some(shared) = me.upgrade() else { return };
                            if !inner.upgrade().is_some_and(|i| shared.is_current(&i)) {
                                return;
                            }
                            shared.catch_up(&inner).await;
                        }
                    }
                }
                // the connection dropped: reconnect, and catch up with what was missed
            }
        });
    }

    /// Whether this is still the router's shared state (a reload may have replaced it).
    pub(super) fn is_current(self: &Arc<Self>, inner: &Inner) -> bool {
        inner.shared.load().as_ref().is_some_and(|s| Arc::ptr_eq(s, self))
    }

    /// Opens the breakers that are open in the fleet now (their keys), for the rest of their
    /// cooldown.
    async fn catch_up(self: &Arc<Self>, inner: &Weak<Inner>) {
        let Ok(mut connection) = self.connection() else { return };
        let pattern = format!("{}:breaker:*", self.settings.fleet);
        let scan = async {
            let mut keys = super::scan(&mut connection, &pattern, 10_000).await?;
            keys.retain(|k| !k.ends_with(":probe"));
            let mut open = Vec::new();
            for key in keys {
                let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut connection).await?;
                let origin: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut connection).await?;
                // this router's own openings are its own to know
                if ttl > 0 && origin.as_deref() != Some(self.instance.as_str()) {
                    open.push((key, ttl));
                }
            }
            Ok::<_, redis::RedisError>(open)
        };
        let Ok(Ok(open)) = tokio::time::timeout(Duration::from_secs(5), scan).await else { return };
        let Some(inner) = inner.upgrade() else { return };
        let prefix = format!("{}:breaker:", self.settings.fleet);
        for (key, ttl) in open {
            let Some(name) = key.strip_prefix(&prefix) else { continue };
            let (provider, model) = match name.split_once('/') {
                Some((p, m)) => (p.to_owned(), Some(m.to_owned())),
                None => (name.to_owned(), None),
            };
            let change = Change {
                origin: String::new(),
                provider,
                model,
                to: "open".into(),
                cooldown_ms: u64::try_from(ttl).unwrap_or(0),
                rate_limit: None,
            };
            self.apply(&inner, &change);
        }
    }

    /// Applies another router's breaker change to this router's breaker, if it has that one.
    fn apply(&self, inner: &Inner, change: &Change) {
        if change.origin == self.instance {
            return;
        }
        let node: Option<Arc<Node>> = match &change.model {
            Some(m) => inner.health.find_target(&change.provider, m),
            None => inner.health.find_provider(&change.provider),
        };
        let Some(node) = node else { return };
        let now = Instant::now();
        if change.to == "paused" {
            node.pause(now + Duration::from_millis(change.cooldown_ms));
            return;
        }
        if let (true, Some(limit)) = (change.to == "quota", &change.rate_limit) {
            node.quota.learn(limit, now, now);
            return;
        }
        let transition = match change.to.as_str() {
            "open" => node.breaker.open_for(now, Duration::from_millis(change.cooldown_ms)),
            "closed" => node.breaker.success(now),
            _ => None,
        };
        if let Some(t) = transition {
            tracing::info!(provider = %change.provider, model = ?change.model, to = t.to.as_str(), "breaker changed by another router of the fleet");
            crate::router::engine::emit_remote_transition(inner, &change.provider, change.model.as_deref(), &node, t);
        }
    }
}
