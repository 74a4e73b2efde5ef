//! State a fleet of routers shares through Redis (`[state] backend = "redis"`): the `rpm` and
//! `tpm` limits of providers and targets, taken fleet-wide by one atomic script per admission
//! (GCRA on Redis's own clock, so the instances' clocks need not agree).
//!
//! Redis trouble never fails a request: a call that errs or outlasts `timeout` is decided from
//! the router's local limits (or, with `on_state_error = "fail_closed"`, the limited target is
//! skipped), the state turns `degraded` (event, metric, `health()`), and one request a second
//! tries Redis again until it answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;

use super::events::RouterEvent;
use super::limiter::Denied;
use crate::policy::{Limits, OnStateError, RedisUrl, StateSettings};
use crate::sync::lock;

mod breakers;
mod budgets;
mod fleet;
mod status;

use super::health::{FleetMember, SharedStateSnapshot};

/// How long a degraded state is decided locally before a request tries Redis again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A concurrency slot (KEYS[3], a sorted set of leases scored by their expiry; ARGV[4] slots, 0:
/// none; the lease ARGV[5] for ARGV[6] ms), and GCRA for `rpm` (KEYS[1], cost 1) and `tpm`
/// (KEYS[2], cost ARGV[3]) at once: all fit and are taken, or none is. ARGV[1] and ARGV[2] are
/// the limits per minute (0: none). Returns `{1, 0, ""}`, or `{0, wait_ms, "rpm"|"tpm"}`, or
/// `{0, 0, "concurrency"}`. A limit of `n` per minute allows a burst of `n`, then one every
/// `60000 / n` ms, as the local limiter does. A lease not given back (its router crashed) expires.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = 60000
local slots = tonumber(ARGV[4])
if slots > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= slots then return {0, 0, 'concurrency'} end
end
local function check(key, rate, cost)
  if rate <= 0 or cost <= 0 then return nil, 0 end
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + (period / rate) * cost
  local wait = new_tat - period - now
  if wait > 0 then return nil, wait end
  return new_tat, 0
end
local r_tat, r_wait = check(KEYS[1], tonumber(ARGV[1]), 1)
if r_wait > 0 then return {0, math.ceil(r_wait), 'rpm'} end
local t_tat, t_wait = check(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))
if t_wait > 0 then return {0, math.ceil(t_wait), 'tpm'} end
if r_tat then redis.call('SET', KEYS[1], string.format('%.3f', r_tat), 'PX', math.ceil(r_tat - now) + 1) end
if t_tat then redis.call('SET', KEYS[2], string.format('%.3f', t_tat), 'PX', math.ceil(t_tat - now) + 1) end
if slots > 0 then
  local ttl = tonumber(ARGV[6])
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[5])
  -- the set lives as long as its longest lease (leases of other routers' policies included)
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[3], math.ceil(tonumber(last[2])) + 1000)
end
return {1, 0, ''}
";

/// The lease KEYS[1] for ARGV[1] for ARGV[2] ms: taken when free, or renewed when ARGV[1]
/// holds it already. Returns 1 when ARGV[1] holds it.
const LEASE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
";

/// A concurrency slot taken fleet-wide: given back when dropped (in the background), or by its
/// lease's expiry if its router dies first.
pub(crate) struct SharedSlot {
    shared: std::sync::Arc<Shared>,
    key: String,
    lease: String,
}

impl std::fmt::Debug for SharedSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSlot").field("key", &self.key).finish()
    }
}

impl Drop for SharedSlot {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let Ok(mut connection) = self.shared.connection() else { return };
        let (key, lease, timeout) =
            (std::mem::take(&mut self.key), std::mem::take(&mut self.lease), self.shared.settings.timeout);
        runtime.spawn(async move {
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(&key).arg(&lease);
            let _ = tokio::time::timeout(timeout, cmd.query_async::<i64>(&mut connection)).await;
        });
    }
}

/// Charges `tpm` (KEYS[1], limit ARGV[1]) with tokens beyond the estimate (ARGV[2]), whether or
/// not they fit: the provider already spent them.
const CHARGE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
if rate <= 0 then return 0 end
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
tat = tat + (60000 / rate) * tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1)
return 1
";

/// The shared state of one `[state]` setting.
pub(crate) struct Shared {
    settings: StateSettings,
    url: RedisUrl,
    client: redis::Client,
    /// Made on first use, inside the runtime; reconnects on its own.
    connection: OnceLock<Result<ConnectionManager, String>>,
    take: redis::Script,
    charge: redis::Script,
    lease: redis::Script,
    degraded: AtomicBool,
    health: Mutex<Health>,
    events: super::events::Events,
    /// This router, among the fleet's (its own breaker news comes back to it).
    instance: String,
    /// The fleet's members as last read.
    members: Mutex<Vec<FleetMember>>,
}

#[derive(Debug, Default)]
struct Health {
    error: Option<String>,
    /// While degraded: when a request tries Redis again.
    retry_at: Option<Instant>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("url", &self.url).field("fleet", &self.settings.fleet).finish()
    }
}

/// Why the shared state could not decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unavailable;

impl Shared {
    /// The shared state of `settings`, when they name Redis.
    pub(crate) fn new(settings: &StateSettings, events: super::events::Events) -> Option<Shared> {
        let crate::policy::StateBackend::Redis { url, tls_ca } = &settings.backend else { return None };
        // the policy checked that the client takes the address
        let client = match tls_ca {
            Some(ca) => redis::Client::build_with_tls(
                url.expose(),
                redis::TlsCertificates { client_tls: None, root_cert: Some(ca.clone()) },
            )
            .ok()?,
            None => redis::Client::open(url.expose()).ok()?,
        };
        Some(Shared {
            settings: settings.clone(),
            url: url.clone(),
            client,
            connection: OnceLock::new(),
            take: redis::Script::new(TAKE),
            charge: redis::Script::new(CHARGE),
            lease: redis::Script::new(LEASE),
            degraded: AtomicBool::new(false),
            health: Mutex::new(Health::default()),
            events,
            instance: format!("{:016x}", rand::random::<u64>()),
            members: Mutex::new(Vec::new()),
        })
    }

    /// The settings it was made for.
    pub(crate) fn settings(&self) -> &StateSettings {
        &self.settings
    }

    /// What to do when it cannot decide.
    pub(crate) fn on_error(&self) -> OnStateError {
        self.settings.on_state_error
    }

    fn key(&self, provider: &str, model: Option<&str>, limit: &str) -> String {
        match model {
            Some(m) => format!("{}:limit:{provider}/{m}:{limit}", self.settings.fleet),
            None => format!("{}:limit:{provider}:{limit}", self.settings.fleet),
        }
    }

    fn connection(&self) -> Result<ConnectionManager, String> {
        let made = self.connection.get_or_init(|| {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.settings.timeout.max(Duration::from_millis(250))))
                .set_response_timeout(Some(self.settings.timeout))
                .set_number_of_retries(1);
            redis::aio::ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                .map_err(|e| format!("cannot set up the Redis client: {}", plain(&e, &self.url)))
        });
        made.clone()
    }

    /// Whether Redis is to be asked now: not while degraded, except once a second.
    fn may_ask(&self, now: Instant) -> bool {
        if !self.degraded.load(Ordering::Acquire) {
            return true;
        }
        let mut health = lock(&self.health);
        match health.retry_at {
            Some(at) if now < at => false,
            _ => {
                // this request tries; the others decide locally for another second
                health.retry_at = Some(now + RETRY_AFTER);
                true
            }
        }
    }

    /// Takes one request needing `tokens` from the `rpm` and `tpm` of `limits` fleet-wide, and a
    /// `concurrency` slot held until the returned one is dropped (or `lease` has passed), for the
    /// provider (`model: None`) or the target. `Err` when Redis could not say in time.
    pub(crate) async fn take(
        self: &std::sync::Arc<Self>,
        provider: &str,
        model: Option<&str>,
        limits: Limits,
        tokens: u64,
        lease: Duration,
    ) -> Result<Result<Option<SharedSlot>, Denied>, Unavailable> {
        let now = Instant::now();
        if !self.may_ask(now) {
            return Err(Unavailable);
        }
        let mut connection = self.connection().map_err(|e| self.failed(e))?;
        let slots_key = self.key(provider, model, "concurrency");
        let lease_id = format!("{}:{:016x}", self.instance, rand::random::<u64>());
        let mut call = self.take.prepare_invoke();
        call.key(self.key(provider, model, "rpm"))
            .key(self.key(provider, model, "tpm"))
            .key(&slots_key)
            .arg(limits.rpm.unwrap_or(0))
            .arg(limits.tpm.unwrap_or(0))
            .arg(tokens.max(1))
            .arg(limits.concurrency.unwrap_or(0))
            .arg(&lease_id)
            .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1));
        let answer =
            tokio::time::timeout(self.settings.timeout, call.invoke_async::<(i64, i64, String)>(&mut connection));
        match answer.await {
            Ok(Ok((1, _, _))) => {
                self.recovered();
                let slot =
                    limits.concurrency.map(|_| SharedSlot { shared: self.clone(), key: slots_key, lease: lease_id });
                Ok(Ok(slot))
            }
            Ok(Ok((_, _, limit))) if limit == "concurrency" => {
                self.recovered();
                Ok(Err(Denied::Concurrency))
            }
            Ok(Ok((_, wait_ms, limit))) => {
                self.recovered();
                let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0).max(1));
                Ok(Err(Denied::Rate { wait, limit: if limit == "tpm" { "tpm" } else { "rpm" } }))
            }
            Ok(Err(e)) => {
                self.give_back(limits, slots_key, lease_id);
                Err(self.failed(format!("Redis: {}", plain(&e, &self.url))))
            }
            Err(_) => {
                // the script may have run, and taken a slot nobody holds: give it back
                self.give_back(limits, slots_key, lease_id);
                Err(self.failed(format!(
                    "Redis did not answer within {}",
                    crate::duration::format_duration(self.settings.timeout)
                )))
            }
        }
    }

    /// Gives back a concurrency lease that a failed or late `take` may have taken (in the
    /// background, on the same connection, so after the script).
    fn give_back(self: &std::sync::Arc<Self>, limits: Limits, key: String, lease: String) {
        if limits.concurrency.is_some() {
            drop(SharedSlot { shared: self.clone(), key, lease });
        }
    }

    /// Charges `tokens` reported beyond the estimate to the shared `tpm`, in the background.
    pub(crate) fn charge_extra(
        self: &std::sync::Arc<Self>,
        provider: &str,
        model: Option<&str>,
        tpm: u32,
        tokens: u64,
    ) {
        if self.degraded.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut connection) = self.connection() else { return };
        let me = self.clone();
        let key = self.key(provider, model, "tpm");
        tokio::spawn(async move {
            let mut call = me.charge.prepare_invoke();
            call.key(key).arg(tpm).arg(tokens);
            let _ = tokio::time::timeout(me.settings.timeout, call.invoke_async::<i64>(&mut connection)).await;
        });
    }

    pub(crate) fn failed(&self, error: String) -> Unavailable {
        let was = self.degraded.swap(true, Ordering::AcqRel);
        {
            let mut health = lock(&self.health);
            health.error = Some(error.clone());
            health.retry_at = Some(Instant::now() + RETRY_AFTER);
        }
        if !was {
            tracing::warn!(fleet = %self.settings.fleet, "shared state degraded, deciding locally: {error}");
            super::metrics::shared_state(true);
            let _ = self.events.send(RouterEvent::SharedState { status: "degraded", error: Some(error) });
        }
        Unavailable
    }

    pub(crate) fn recovered(&self) {
        if self.degraded.swap(false, Ordering::AcqRel) {
            *lock(&self.health) = Health::default();
            tracing::info!(fleet = %self.settings.fleet, "shared state back");
            super::metrics::shared_state(false);
            let _ = self.events.send(RouterEvent::SharedState { status: "ok", error: None });
        }
    }

    /// For `health()`.
    pub(crate) fn snapshot(&self) -> SharedStateSnapshot {
        let degraded = self.degraded.load(Ordering::Acquire);
        SharedStateSnapshot {
            status: if degraded { "degraded" } else { "ok" },
            url: Some(self.url.redacted()),
            fleet: self.settings.fleet.clone(),
            error: if degraded { lock(&self.health).error.clone() } else { None },
        }
    }
}

/// The keys matching `pattern`, `most` at the most (SCAN, a page at a time: no `KEYS` that
/// would hold Redis up).
async fn scan(
    connection: &mut ConnectionManager,
    pattern: &str,
    most: usize,
) -> Result<Vec<String>, redis::RedisError> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(200)
            .query_async(connection)
            .await?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || keys.len() >= most {
            return Ok(keys);
        }
    }
}

/// A Redis error's text, without the address (which may hold a password).
fn plain(e: &redis::RedisError, url: &RedisUrl) -> String {
    e.to_string().replace(url.expose(), &url.redacted())
}
