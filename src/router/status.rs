//! Providers' status pages, read in the background (`status_page` on a provider). What they say
//! shows in `health()`, `/admin/state` and events; an error from a provider whose page lists an
//! open incident names it; with `on_incident = "deprioritize"`, the targets of a provider whose
//! page reports a major outage go to the back of every route's order. A page that cannot be read
//! changes nothing but its own `error`: no request waits for a page or fails because of one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::Inner;
use super::events::RouterEvent;
use super::outcome::{AttemptOutcome, RouteFailure, SkipReason};
use crate::error::ErrorClass;
use crate::policy::{Policy, StatusPageConfig};
use crate::status_page::{self, ProviderIncident, StatusPage, Summary};
use crate::sync::lock;

/// The longest one read of a page may take, whatever its interval.
const MAX_READ_TIME: Duration = Duration::from_secs(10);

/// A summary older than this many intervals says nothing about now.
const FRESH_FOR_INTERVALS: u32 = 3;

/// Every provider's page, by provider name.
#[derive(Debug, Default)]
pub(crate) struct StatusPages {
    pages: Mutex<BTreeMap<String, Arc<Page>>>,
    /// Whether any page is configured: without, a failure looks up nothing.
    any: AtomicBool,
}

/// One provider's page and what its last reads said.
#[derive(Debug)]
pub(crate) struct Page {
    provider: String,
    config: Mutex<StatusPageConfig>,
    read: Mutex<Read>,
    /// What requests read without a lock: whether the last good read reported an outage, when
    /// that read was (ms since the epoch; 0 before one), and the interval in ms.
    outage: AtomicBool,
    read_at_ms: AtomicU64,
    interval_ms: AtomicU64,
    /// Whether a poller is running for it.
    polled: AtomicBool,
    /// Taken out of the policy (or its address changed): its poller stops.
    retired: AtomicBool,
    /// Wakes the poller from its wait: the page was retired, or its interval changed.
    wake: tokio::sync::Notify,
}

/// What the reads of a page found.
#[derive(Debug, Default)]
struct Read {
    summary: Option<Summary>,
    at: Option<SystemTime>,
    error: Option<String>,
    /// When the read recorded last started: a slower read that started before it is older news.
    started: Option<Instant>,
}

fn millis(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

impl Page {
    fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.load(Ordering::Relaxed))
    }

    /// Whether a good read at `at_ms` still says something about `now`.
    fn is_fresh(&self, at_ms: u64, now: SystemTime) -> bool {
        let stale_after = self.interval().saturating_mul(FRESH_FOR_INTERVALS).saturating_add(MAX_READ_TIME);
        at_ms != 0 && millis(now).saturating_sub(at_ms) <= u64::try_from(stale_after.as_millis()).unwrap_or(u64::MAX)
    }

    /// The last summary, unless it is too old to say anything about now.
    fn fresh(&self, now: SystemTime) -> Option<Summary> {
        let read = lock(&self.read);
        let at = read.at?;
        self.is_fresh(millis(at), now).then(|| read.summary.clone()).flatten()
    }

    /// Whether the page reports a major or critical outage now (no lock: requests ask).
    pub(crate) fn is_outage(&self) -> bool {
        self.outage.load(Ordering::Acquire) && self.is_fresh(self.read_at_ms.load(Ordering::Acquire), SystemTime::now())
    }

    fn snapshot(&self, now: SystemTime) -> StatusPage {
        let summary = self.fresh(now);
        let read = lock(&self.read);
        StatusPage {
            provider: self.provider.clone(),
            url: lock(&self.config).url.clone(),
            summary,
            updated_at: read.at.map(status_page::rfc3339),
            error: read.error.clone(),
        }
    }

    /// Records a read that started at `started`; says whether what the page reports changed
    /// (indicator, incidents, or whether it can be read at all, or says anything still).
    fn record(&self, result: Result<Summary, String>, started: Instant, now: SystemTime) -> bool {
        let key = |s: Option<Summary>| {
            s.map(|s| (s.indicator, s.incidents.into_iter().map(|i| (i.name, i.impact)).collect::<Vec<_>>()))
        };
        let before = (key(self.fresh(now)), lock(&self.read).error.is_some());
        {
            let mut read = lock(&self.read);
            if read.started.is_some_and(|s| s > started) {
                return false;
            }
            read.started = Some(started);
            match result {
                Ok(summary) => {
                    self.outage.store(summary.is_outage(), Ordering::Release);
                    self.read_at_ms.store(millis(now), Ordering::Release);
                    read.summary = Some(summary);
                    read.at = Some(now);
                    read.error = None;
                }
                Err(e) => read.error = Some(e),
            }
        }
        before != (key(self.fresh(now)), lock(&self.read).error.is_some())
    }
}

impl StatusPages {
    /// Puts the policy's pages in force: a page whose address is unchanged keeps what it read
    /// (and its poller, which takes the new interval); new ones start polling.
    pub(crate) fn sync(&self, inner: &Inner, policy: &Policy) {
        let mut pages = lock(&self.pages);
        let wanted: BTreeMap<&String, &StatusPageConfig> =
            policy.providers.iter().filter_map(|(name, p)| p.status_page.as_ref().map(|c| (name, c))).collect();
        pages.retain(|name, page| {
            let keep = wanted.get(name).is_some_and(|c| c.url == lock(&page.config).url);
            if !keep {
                page.retired.store(true, Ordering::Release);
                page.wake.notify_one();
            }
            keep
        });
        for (name, config) in wanted {
            let page = pages.entry(name.clone()).or_insert_with(|| {
                Arc::new(Page {
                    provider: name.clone(),
                    config: Mutex::new(config.clone()),
                    read: Mutex::new(Read::default()),
                    outage: AtomicBool::new(false),
                    read_at_ms: AtomicU64::new(0),
                    interval_ms: AtomicU64::new(0),
                    polled: AtomicBool::new(false),
                    retired: AtomicBool::new(false),
                    wake: tokio::sync::Notify::new(),
                })
            });
            *lock(&page.config) = config.clone();
            let interval = u64::try_from(config.interval.as_millis()).unwrap_or(u64::MAX);
            let before = page.interval_ms.swap(interval, Ordering::Relaxed);
            if before != 0 && before != interval {
                // a poller waiting out the old interval reads now, then keeps the new one (a new
                // page has none yet: it reads once when its poller starts)
                page.wake.notify_one();
            }
            if !page.polled.load(Ordering::Acquire) {
                spawn_poller(inner.me.clone(), page.clone());
            }
        }
        self.any.store(!pages.is_empty(), Ordering::Release);
    }

    /// The page of `provider`, if it has one.
    pub(crate) fn get(&self, provider: &str) -> Option<Arc<Page>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.pages).get(provider).cloned()
    }

    /// Every page as last read.
    pub(crate) fn snapshot(&self) -> Vec<StatusPage> {
        let now = SystemTime::now();
        lock(&self.pages).values().map(|p| p.snapshot(now)).collect()
    }

    /// Reads every page now (besides the pollers' own schedule).
    pub(crate) async fn refresh(&self, inner: &Inner) {
        let pages: Vec<Arc<Page>> = lock(&self.pages).values().cloned().collect();
        let Ok(client) = client() else { return };
        for page in pages {
            if let Some(event) = read(&page, &client).await {
                let _ = inner.events.send(event);
            }
        }
    }

    /// Names the open incidents of the providers that failed in `f`, or were skipped because
    /// they had been failing (an open breaker, a pause after a 429: in an outage, what most
    /// requests meet): in its message ("openai reports an incident: Elevated error rates (major
    /// outage since 12:03 UTC)") and in [`RouteFailure::provider_incidents`].
    pub(crate) fn annotate(&self, f: &mut RouteFailure) {
        if !self.any.load(Ordering::Acquire) || f.class == ErrorClass::BudgetExhausted {
            return;
        }
        let failing = |a: &&super::outcome::Attempt| {
            a.outcome == AttemptOutcome::Error
                || matches!(
                    a.skip_reason,
                    Some(
                        SkipReason::BreakerOpen
                            | SkipReason::ProviderBreakerOpen
                            | SkipReason::ProbeInFlight
                            | SkipReason::Paused
                    )
                )
        };
        let mut failed: Vec<&str> = f.attempts.iter().filter(failing).map(|a| a.provider.as_str()).collect();
        // the provider whose error ended the request (not one that was only skipped)
        failed.extend(f.error.as_ref().map(|e| e.provider()));
        failed.sort_unstable();
        failed.dedup();
        let now = SystemTime::now();
        let mut notes = Vec::new();
        let mut incidents = Vec::new();
        for provider in failed {
            let Some(page) = self.get(provider) else { continue };
            let snapshot = page.snapshot(now);
            if let Some(note) = snapshot.incident_note() {
                notes.push(note);
                let open = snapshot.summary.map(|s| s.incidents).unwrap_or_default();
                incidents.extend(
                    open.into_iter().map(|incident| ProviderIncident { provider: provider.to_owned(), incident }),
                );
            }
        }
        if !notes.is_empty() {
            f.message = format!("{}; {}", f.message, notes.join("; "));
            f.provider_incidents = incidents;
        }
    }
}

fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder().connect_timeout(MAX_READ_TIME).build()
}

/// Reads `page` every interval until it is retired or the router is gone. Nothing of the router
/// is held between reads. Without a runtime nothing polls (the next reload in one starts it).
fn spawn_poller(me: Weak<Inner>, page: Arc<Page>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    if page.polled.swap(true, Ordering::AcqRel) {
        return;
    }
    runtime.spawn(async move {
        let client = match client() {
            Ok(c) => c,
            Err(e) => {
                page.record(Err(format!("cannot build an HTTP client: {e}")), Instant::now(), SystemTime::now());
                page.polled.store(false, Ordering::Release);
                return;
            }
        };
        loop {
            if page.retired.load(Ordering::Acquire) {
                return;
            }
            // a fleet reads each page once: the router holding its reader lease
            let shared = me.upgrade().and_then(|inner| inner.shared.load_full());
            let changed = match shared {
                Some(shared) if !shared.reads_status_page(&page.provider, page.interval()).await => {
                    match shared.status_page_found(&page.provider).await {
                        Some((result, at)) => note(&page, result, Instant::now(), at),
                        None => None, // the reader has not read it yet: next turn
                    }
                }
                Some(shared) => {
                    let (result, started) = fetch(&page, &client).await;
                    shared.leave_status_page(&page.provider, &result, page.interval()).await;
                    note(&page, result, started, SystemTime::now())
                }
                None => read(&page, &client).await,
            };
            let Some(inner) = me.upgrade() else { return };
            if let Some(event) = changed {
                let _ = inner.events.send(event);
            }
            drop(inner);
            tokio::select! {
                () = tokio::time::sleep(page.interval()) => {}
                () = page.wake.notified() => {}
            }
        }
    });
}

/// One read of `page`, bounded in time and size; the event to send when what it reports changed.
async fn read(page: &Page, client: &reqwest::Client) -> Option<RouterEvent> {
    let (result, started) = fetch(page, client).await;
    note(page, result, started, SystemTime::now())
}

/// Reads `page`, bounded in time and size; and when the read started.
async fn fetch(page: &Page, client: &reqwest::Client) -> (Result<Summary, String>, Instant) {
    let (url, interval) = {
        let config = lock(&page.config);
        (config.url.clone(), config.interval)
    };
    let started = Instant::now();
    let result = status_page::fetch(client, &url, interval.min(MAX_READ_TIME)).await;
    if let Err(e) = &result {
        tracing::warn!(provider = %page.provider, "status page unreadable: {e}");
    }
    (result, started)
}

/// Records a read of `page` (made at `at`, here or by the fleet's reader); the event to send when
/// what it reports changed.
fn note(page: &Page, result: Result<Summary, String>, started: Instant, at: SystemTime) -> Option<RouterEvent> {
    let changed = page.record(result, started, at);
    let snapshot = page.snapshot(SystemTime::now());
    let summary = snapshot.summary.as_ref();
    // every read: a page that went stale reads as unknown
    super::metrics::status_page(&page.provider, summary.map(|s| s.indicator));
    if !changed {
        return None;
    }
    tracing::info!(provider = %page.provider, indicator = ?summary.map(|s| s.indicator), outage = page.is_outage(), "status page changed");
    Some(RouterEvent::StatusPage {
        provider: page.provider.clone(),
        indicator: summary.map(|s| s.indicator),
        incidents: summary
            .map(|s| s.incidents.iter().map(status_page::Incident::describe).collect())
            .unwrap_or_default(),
        error: snapshot.error.clone(),
    })
}
