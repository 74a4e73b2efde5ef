//! API keys that cannot leak through `Debug`, `Display`, logs or serialization.

use std::fmt;

/// An API key. Its `Debug` prints `ApiKey(***)`; it has no `Display` and no `Serialize`, so it
/// cannot end up in a log line, an error or a report by accident. Read it with [`ApiKey::expose`]
/// only where it goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// Reads the key from the environment variable `var`; `None` when unset or empty.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var).ok().filter(|k| !k.trim().is_empty()).map(|k| ApiKey(k.trim().to_owned()))
    }

    /// The key itself, for the request header. Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the key in `text` with `***` (upstreams sometimes echo it).
    pub fn redact(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_owned();
        }
        text.replace(&self.0, "***")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let k = ApiKey::new("sk-test-very-secret-1234");
        assert_eq!(format!("{k:?}"), "ApiKey(***)");
        assert_eq!(format!("{:?}", Some(k.clone())), "Some(ApiKey(***))");
        assert_eq!(k.redact("bad key sk-test-very-secret-1234 given"), "bad key *** given");
    }
}
