//! Who is calling: the client key presented as `Authorization: Bearer KEY` or `x-api-key: KEY`,
//! looked up in the keys of the policy in force (so a reload revokes a key for the next request,
//! while requests already admitted finish), and each key's own limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;

use crate::policy::{ClientKey, ClientKeys, Limits};
use crate::router::limiter::{Denied, LimitPermit, Limiter};

/// Default `[server] max_in_flight_per_key`.
pub const DEFAULT_MAX_IN_FLIGHT_PER_KEY: u32 = 256;

/// The caller of one request, as authentication found it.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// Authentication is off.
    Anonymous,
    /// A known key.
    Key(ClientKey),
}

impl Caller {
    /// The name for logs and metrics (never the key).
    pub(crate) fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "",
            Caller::Key(k) => &k.name,
        }
    }
}

/// Why a request is refused before the router sees it.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// No key, or not one of the keys in force.
    Unknown,
    /// The key may not do this.
    Forbidden(String),
    /// Over one of the key's limits.
    Limited { message: String, wait: Option<Duration> },
}

fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
}

/// The password of HTTP Basic credentials (`Authorization: Basic base64(user:password)`): what a
/// browser sends for the dashboard once asked, the user name being anything.
fn basic_password(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, password)| password.to_owned())
}

/// The caller, from the headers alone.
pub(crate) fn identify(keys: &ClientKeys, headers: &HeaderMap) -> Result<Caller, Refusal> {
    if !keys.enabled() {
        return Ok(Caller::Anonymous);
    }
    presented(headers).and_then(|k| keys.find(k)).map(|k| Caller::Key(k.clone())).ok_or(Refusal::Unknown)
}

/// Whether the caller may use `/metrics` and `/admin/*`: an admin key, as a bearer token,
/// `x-api-key`, or, to read (`reading`: GET), the password of HTTP Basic credentials (how a
/// browser presents it). A browser sends remembered Basic credentials with requests other sites
/// make too: they never inject a fault. Nor does any request a browser says another site made.
pub(crate) fn admin(keys: &ClientKeys, headers: &HeaderMap, reading: bool) -> Result<(), Refusal> {
    if !reading {
        let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or("none");
        if !matches!(site, "same-origin" | "none") {
            return Err(Refusal::Forbidden(format!("a {site} request may not change the gateway")));
        }
    }
    let caller = match identify(keys, headers) {
        Err(Refusal::Unknown) if reading => match basic_password(headers).and_then(|p| keys.find(&p).cloned()) {
            Some(k) => Caller::Key(k),
            None => return Err(Refusal::Unknown),
        },
        other => other?,
    };
    match caller {
        Caller::Anonymous => Ok(()),
        Caller::Key(k) if k.admin => Ok(()),
        Caller::Key(k) => Err(Refusal::Forbidden(format!(
            "the key `{}` is not an admin key (`admin = true` in the key file)",
            k.name
        ))),
    }
}

/// The limiters of the keys, kept across reloads while a key keeps its name and limits (so a
/// reload that changes nothing about a key does not refill its budget).
#[derive(Debug, Default)]
pub(crate) struct KeyLimiters {
    by_key: Mutex<HashMap<(String, Limits), Arc<Limiter>>>,
}

impl KeyLimiters {
    /// Admits one request of `caller` for `route`, needing `tokens`, or says why not. The permit
    /// holds the key's concurrency slot until dropped.
    pub(crate) fn admit(
        &self,
        keys: &ClientKeys,
        caller: &Caller,
        route: &str,
        tokens: impl FnOnce() -> u64,
        default_in_flight: u32,
    ) -> Result<Option<LimitPermit>, Refusal> {
        let Caller::Key(key) = caller else { return Ok(None) };
        if !key.allows(route) {
            return Err(Refusal::Forbidden(format!("the key `{}` may not use the route `{route}`", key.name)));
        }
        let limits = Limits { concurrency: key.limits.concurrency.or(Some(default_in_flight)), ..key.limits };
        let limiter = {
            let mut map = self.by_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let id = (key.name.clone(), limits);
            match map.get(&id) {
                Some(limiter) => limiter.clone(),
                None => {
                    // a new key or new limits: forget the limiters of keys no longer in force
                    map.retain(|(name, _), _| keys.keys().iter().any(|k| &k.name == name));
                    let limiter = Arc::new(Limiter::new(limits));
                    map.insert(id, limiter.clone());
                    limiter
                }
            }
        };
        let need = if limits.tpm.is_some() { tokens() } else { 0 };
        limiter.try_acquire(need).map(Some).map_err(|denied| {
            let name = &key.name;
            match denied {
                Denied::Rate { wait, limit } => Refusal::Limited {
                    message: format!("the key `{name}` is over its {limit} (`keys.{name}.{limit}`)"),
                    wait: Some(wait),
                },
                Denied::TooLarge { need, tpm } => Refusal::Limited {
                    message: format!("the request needs ~{need} tokens, more than the key `{name}`'s tpm of {tpm}"),
                    wait: None,
                },
                Denied::Concurrency => Refusal::Limited {
                    message: format!(
                        "the key `{name}` has {} requests in flight, its limit (`keys.{name}.concurrency` or `[server] max_in_flight_per_key`)",
                        limits.concurrency.unwrap_or(default_in_flight)
                    ),
                    wait: None,
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap_or_else(|_| unreachable!()),
            value.parse().unwrap_or_else(|_| unreachable!()),
        );
        h
    }

    #[test]
    fn bearer_and_x_api_key_identify_a_key_others_not() {
        let keys = ClientKeys::from_plain([("one", "k1", false), ("two", "k2", true)]);
        assert!(matches!(identify(&keys, &HeaderMap::new()), Err(Refusal::Unknown)));
        assert_eq!(
            identify(&keys, &headers("authorization", "Bearer k2")).map(|c| c.name().to_owned()).ok(),
            Some("two".into())
        );
        assert_eq!(identify(&keys, &headers("x-api-key", "k1")).map(|c| c.name().to_owned()).ok(), Some("one".into()));
        assert!(identify(&keys, &headers("x-api-key", "k")).is_err());
        assert!(matches!(identify(&ClientKeys::default(), &HeaderMap::new()), Ok(Caller::Anonymous)));
        assert!(admin(&keys, &headers("x-api-key", "k2"), true).is_ok());
        assert!(matches!(admin(&keys, &headers("x-api-key", "k1"), true), Err(Refusal::Forbidden(_))));
    }

    #[test]
    fn basic_credentials_read_the_admin_endpoints_and_never_change_them() {
        let keys = ClientKeys::from_plain([("app", "k1", false), ("ops", "k2", true)]);
        // base64("me:k2"), any case of the scheme
        for value in ["Basic bWU6azI=", "basic bWU6azI=", "BASIC bWU6azI="] {
            assert!(admin(&keys, &headers("authorization", value), true).is_ok(), "{value}");
            assert!(matches!(admin(&keys, &headers("authorization", value), false), Err(Refusal::Unknown)));
        }
        // base64("me:k1"): a key, not an admin one
        assert!(matches!(admin(&keys, &headers("authorization", "Basic bWU6azE="), true), Err(Refusal::Forbidden(_))));
        assert!(matches!(admin(&keys, &headers("authorization", "Basic !!"), true), Err(Refusal::Unknown)));
        // a change needs a bearer or x-api-key, and not from another site
        assert!(admin(&keys, &headers("x-api-key", "k2"), false).is_ok());
        let mut cross = headers("x-api-key", "k2");
        cross.insert("sec-fetch-site", axum::http::HeaderValue::from_static("cross-site"));
        assert!(matches!(admin(&keys, &cross, false), Err(Refusal::Forbidden(_))));
        assert!(admin(&keys, &cross, true).is_ok(), "reading is harmless");
        // an open gateway (no keys) too refuses a change another site asks for
        let open = ClientKeys::default();
        let mut site = HeaderMap::new();
        site.insert("sec-fetch-site", axum::http::HeaderValue::from_static("same-site"));
        assert!(matches!(admin(&open, &site, false), Err(Refusal::Forbidden(_))));
        assert!(admin(&open, &HeaderMap::new(), false).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_keys_concurrency_is_held_until_the_permit_drops() {
        let keys = ClientKeys::from_plain([("one", "k1", false)]);
        let caller = identify(&keys, &headers("x-api-key", "k1")).unwrap_or_else(|_| unreachable!());
        let limiters = KeyLimiters::default();
        let first = limiters.admit(&keys, &caller, "chat", || 0, 1);
        assert!(matches!(first, Ok(Some(_))));
        assert!(matches!(limiters.admit(&keys, &caller, "chat", || 0, 1), Err(Refusal::Limited { .. })));
        drop(first);
        assert!(matches!(limiters.admit(&keys, &caller, "chat", || 0, 1), Ok(Some(_))));
    }
}
