//! Client authentication: `[server] api_keys_env = "VAR"` names a variable holding comma-separated
//! keys, accepted as `Authorization: Bearer KEY` or `x-api-key: KEY`. Unset: no authentication.

use axum::http::HeaderMap;

use crate::secret::ApiKey;

/// The keys clients may present.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientKeys {
    keys: Vec<ApiKey>,
}

impl ClientKeys {
    /// The keys in the variable `var`, if any (an unset or empty variable means no authentication).
    pub(crate) fn from_env(var: Option<&str>) -> Self {
        let raw = var.and_then(|v| std::env::var(v).ok()).unwrap_or_default();
        ClientKeys { keys: raw.split(',').map(str::trim).filter(|k| !k.is_empty()).map(ApiKey::new).collect() }
    }

    /// Whether authentication is on.
    pub(crate) fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether the request carries an accepted key (always, when authentication is off).
    pub(crate) fn accepts(&self, headers: &HeaderMap) -> bool {
        if !self.enabled() {
            return true;
        }
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        let x_api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        [bearer, x_api_key]
            .into_iter()
            .flatten()
            .any(|given| self.keys.iter().any(|k| constant_time_eq(k.expose(), given.trim())))
    }
}

/// Compares without stopping at the first difference, so timing does not reveal a key's prefix.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_x_api_key_are_accepted_others_not() {
        let keys = ClientKeys { keys: vec![ApiKey::new("k1"), ApiKey::new("k2")] };
        let mut h = HeaderMap::new();
        assert!(!keys.accepts(&h));
        h.insert("authorization", "Bearer k2".parse().unwrap_or_else(|_| unreachable!()));
        assert!(keys.accepts(&h));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "k1".parse().unwrap_or_else(|_| unreachable!()));
        assert!(keys.accepts(&h));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "k".parse().unwrap_or_else(|_| unreachable!()));
        assert!(!keys.accepts(&h));
        assert!(ClientKeys::default().accepts(&HeaderMap::new()));
    }
}
