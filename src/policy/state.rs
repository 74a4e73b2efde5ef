//! `[state]`: where a fleet of routers keeps what they share (rate limits, for now): each
//! process's memory (the default), or a Redis (or Valkey) server they all use.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::diagnostic::Collector;
use crate::duration::DurationStr;

/// `[state]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateSpec {
    backend: Option<Spanned<BackendKind>>,
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    fleet: Option<Spanned<String>>,
    timeout: Option<Spanned<DurationStr>>,
    on_state_error: Option<OnStateError>,
    tls_ca_file: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BackendKind {
    Memory,
    Redis,
}

/// What a router does with a shared limit when the shared state cannot be reached in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnStateError {
    /// Falls back to its own local limits (a fleet may overshoot a provider's limit meanwhile).
    #[default]
    FailOpen,
    /// Skips the limited target (where overshooting a provider's limit is worse than refusing).
    FailClosed,
}

/// A Redis address. Its password never shows: `Debug` and [`RedisUrl::redacted`] leave it out.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The address as written, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The address without its user and password (`redis://host:6379/0`).
    pub fn redacted(&self) -> String {
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => format!("{}{}", &self.0[..scheme + 3], &self.0[at + 1..]),
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// Where the state is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StateBackend {
    /// In each process.
    Memory,
    /// In a Redis server every router of the fleet uses.
    Redis {
        /// Its address (`rediss://` for TLS).
        url: RedisUrl,
        /// With TLS: the PEM certificate(s) to trust instead of the system's roots (a private CA),
        /// as read with the policy.
        #[serde(skip)]
        tls_ca: Option<Vec<u8>>,
    },
}

/// `[state]` as the policy resolved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateSettings {
    /// Where the state is kept.
    #[serde(flatten)]
    pub backend: StateBackend,
    /// The fleet's name: the prefix of its keys, so that several fleets can share one Redis.
    pub fleet: String,
    /// The longest a request waits for the shared state before it decides without it.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub timeout: Duration,
    /// What a shared limit does when the shared state cannot be reached in time.
    pub on_state_error: OnStateError,
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings {
            backend: StateBackend::Memory,
            fleet: DEFAULT_FLEET.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            on_state_error: OnStateError::FailOpen,
        }
    }
}

/// The fleet name unless the policy gives one.
pub(crate) const DEFAULT_FLEET: &str = "switchyard";

/// How long a request waits for the shared state by default: a Redis nearby answers in a
/// millisecond or less.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// Checks `[state]`: a backend, a Redis address (`url`, or the variable `url_env` names) that
/// the client can parse, a fleet name fit for a key, a timeout from 1 ms to 5 s.
pub(crate) fn compile(c: &mut Collector<'_>, spec: StateSpec) -> StateSettings {
    let defaults = StateSettings::default();
    let fleet = match &spec.fleet {
        Some(f) => {
            let name = f.get_ref();
            let fits = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'));
            if !fits {
                c.error(&f.span(), "state.fleet", "a fleet name is 1 to 64 letters, digits, `-`, `_` or `.`");
            }
            name.clone()
        }
        None => defaults.fleet.clone(),
    };
    let timeout = match &spec.timeout {
        Some(t) => {
            let d = t.get_ref().get();
            if !(Duration::from_millis(1)..=Duration::from_secs(5)).contains(&d) {
                c.error(&t.span(), "state.timeout", "the wait for the shared state is 1ms to 5s (\"50ms\" by default)");
            }
            d
        }
        None => defaults.timeout,
    };
    let kind = spec.backend.as_ref().map_or(BackendKind::Memory, |b| *b.get_ref());
    let backend = match kind {
        BackendKind::Memory => {
            for (set, key) in [(spec.url.as_ref(), "state.url"), (spec.url_env.as_ref(), "state.url_env")] {
                if let Some(s) = set {
                    c.warn(&s.span(), key, "has no effect with `backend = \"memory\"`");
                }
            }
            StateBackend::Memory
        }
        BackendKind::Redis => match redis_url(c, &spec) {
            Some(url) => {
                let tls_ca = spec.tls_ca_file.as_ref().and_then(|f| {
                    if !url.0.starts_with("rediss://") {
                        c.warn(&f.span(), "state.tls_ca_file", "has no effect without TLS (`rediss://`)");
                        return None;
                    }
                    let path =
                        std::path::Path::new(c.file).parent().unwrap_or(std::path::Path::new("")).join(f.get_ref());
                    match std::fs::read(&path) {
                        Ok(pem) if pem.windows(11).any(|w| w == b"-----BEGIN ") => Some(pem),
                        Ok(_) => {
                            c.error(
                                &f.span(),
                                "state.tls_ca_file",
                                format!("{} holds no PEM certificate", path.display()),
                            );
                            None
                        }
                        Err(e) => {
                            c.error(&f.span(), "state.tls_ca_file", format!("cannot read {}: {e}", path.display()));
                            None
                        }
                    }
                });
                StateBackend::Redis { url, tls_ca }
            }
            None => StateBackend::Memory,
        },
    };
    StateSettings { backend, fleet, timeout, on_state_error: spec.on_state_error.unwrap_or_default() }
}

fn redis_url(c: &mut Collector<'_>, spec: &StateSpec) -> Option<RedisUrl> {
    let span = spec.backend.as_ref().map_or(0..0, Spanned::span);
    let (text, span, key) = match (&spec.url, &spec.url_env) {
        (Some(_), Some(e)) => {
            c.error(&e.span(), "state.url_env", "give the address once: `url` or `url_env`, not both");
            return None;
        }
        (Some(u), None) => (u.get_ref().trim().to_owned(), u.span(), "state.url"),
        (None, Some(e)) => match std::env::var(e.get_ref()) {
            Ok(v) if !v.trim().is_empty() => (v.trim().to_owned(), e.span(), "state.url_env"),
            _ => {
                c.error(&e.span(), "state.url_env", format!("environment variable `{}` is not set", e.get_ref()));
                return None;
            }
        },
        (None, None) => {
            c.error(
                &span,
                "state.url",
                "`backend = \"redis\"` needs its address: `url = \"redis://host:6379\"` or `url_env`",
            );
            return None;
        }
    };
    if text.contains('?') {
        c.error(
            &span,
            key,
            "a Redis address takes no query (`?pass=`, ...): write `redis://[user:password@]host:port[/db]`",
        );
        return None;
    }
    if !cfg!(feature = "redis") {
        let span = spec.backend.as_ref().map_or(span, Spanned::span);
        c.error(
            &span,
            "state.backend",
            "switchyard was built without its `redis` feature: build it with `--features redis`",
        );
        return None;
    }
    #[cfg(not(feature = "redis"))]
    return None;
    #[cfg(feature = "redis")]
    match redis::Client::open(text.as_str()) {
        Ok(_) => Some(RedisUrl(text)),
        Err(e) => {
            // the message of a parse error never holds the address (its password)
            let why = e.to_string().replace(&text, "…");
            c.error(&span, key, format!("not a Redis address (`redis://[user:password@]host:port[/db]`): {why}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        let url = RedisUrl("redis://app:s3cret@cache.internal:6379/2".into());
        assert_eq!(url.redacted(), "redis://cache.internal:6379/2");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(serde_json::to_string(&url).ok().as_deref(), Some("\"redis://cache.internal:6379/2\""));
        assert_eq!(RedisUrl("redis://127.0.0.1:6379".into()).redacted(), "redis://127.0.0.1:6379");
    }
}
