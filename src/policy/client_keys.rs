//! The keys clients of the gateway present, loaded with the policy (so a reload revokes a key):
//! the file named by `[server] keys_file`, and the comma-separated variable named by
//! `[server] api_keys_env`.
//!
//! ```toml
//! # keys.toml
//! [keys.billing-service]
//! sha256 = "9f86d08..."   # or key = "sk-...", or key_env = "BILLING_KEY"
//! routes = ["chat"]        # default: every route
//! rpm = 600                # requests per minute (default: none)
//! tpm = 200000             # tokens per minute, estimated from the request (default: none)
//! concurrency = 16         # requests in flight (default: [server] max_in_flight_per_key)
//! admin = false            # may read /metrics and /admin/* (default: false)
//! ```
//!
//! Only SHA-256 digests of the keys are kept: a presented key is hashed once and compared with
//! every digest in constant time.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeTable;

use super::Limits;
use super::diagnostic::Collector;

type Digest = [u8; 32];

/// One client key: who it is and what it may do. The key itself is not kept.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientKey {
    /// Its name: what logs and metrics show (never the key).
    pub name: String,
    /// The routes it may use; `None`: every route.
    pub routes: Option<Vec<String>>,
    /// Its own rpm, tpm and concurrency.
    pub limits: Limits,
    /// Whether it may read `/metrics` and `/admin/*`.
    pub admin: bool,
    /// What its requests may spend per window.
    pub budget: Option<super::Budget>,
    digest: Digest,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("name", &self.name)
            .field("routes", &self.routes)
            .field("limits", &self.limits)
            .field("admin", &self.admin)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// Whether this key may use `route`.
    pub fn allows(&self, route: &str) -> bool {
        self.routes.as_ref().is_none_or(|r| r.iter().any(|n| n == route))
    }
}

/// The keys a gateway accepts. Empty and not [`enabled`](ClientKeys::enabled): no authentication.
#[derive(Debug, Clone, Default)]
pub struct ClientKeys {
    keys: Vec<ClientKey>,
    enabled: bool,
}

fn sha256(text: &str) -> Digest {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Compares without stopping at the first difference.
fn same(a: &Digest, b: &Digest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ClientKeys {
    /// Whether clients must present a key (a key file is named, or the key variable has keys).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The keys, in the order they were read.
    pub fn keys(&self) -> &[ClientKey] {
        &self.keys
    }

    /// The key a client presented, if it is one of these. Every digest is compared, so timing
    /// reveals nothing about which (or whether any) matched.
    pub fn find(&self, presented: &str) -> Option<&ClientKey> {
        let digest = sha256(presented.trim());
        let mut found = None;
        for k in &self.keys {
            if same(&k.digest, &digest) && found.is_none() {
                found = Some(k);
            }
        }
        found
    }

    /// Keys given inline, for tests and embedders: `(name, key, admin)`.
    pub fn from_plain<'a>(keys: impl IntoIterator<Item = (&'a str, &'a str, bool)>) -> Self {
        ClientKeys {
            keys: keys
                .into_iter()
                .map(|(name, key, admin)| ClientKey {
                    name: name.to_owned(),
                    routes: None,
                    limits: Limits::default(),
                    admin,
                    budget: None,
                    digest: sha256(key),
                })
                .collect(),
            enabled: true,
        }
    }
}

/// `[keys.NAME]` of a key file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySpec {
    key: Option<String>,
    key_env: Option<String>,
    sha256: Option<String>,
    routes: Option<Vec<Spanned<String>>>,
    rpm: Option<u32>,
    tpm: Option<u32>,
    concurrency: Option<u32>,
    #[serde(default)]
    admin: bool,
    budget: Option<Spanned<super::schema::BudgetSpec>>,
}

fn parse_hex(text: &str) -> Option<Digest> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Reads the keys named by `[server]`: the variable `env` (comma-separated, each an admin key
/// named `env-1`, `env-2`, ... as before key files existed) and the file `file` (relative to the
/// policy's directory). Problems are diagnostics of the policy (in the key file's own lines), so a
/// bad key file fails the reload and the keys in force stay.
pub(crate) fn load(
    c: &mut Collector<'_>,
    env: Option<&str>,
    file: Option<&Spanned<String>>,
    routes: &[&str],
    read: &mut impl std::hash::Hasher,
) -> (ClientKeys, Option<std::path::PathBuf>) {
    let mut keys = Vec::new();
    if let Some(var) = env {
        let raw = std::env::var(var).unwrap_or_default();
        std::hash::Hash::hash(&raw, read);
        if raw.trim().is_empty() {
            c.warn(
                &(0..0),
                "server.api_keys_env",
                format!("the variable `{var}` is unset or empty: every request that needs a key will be refused"),
            );
        }
        for (i, key) in raw.split(',').map(str::trim).filter(|k| !k.is_empty()).enumerate() {
            keys.push(ClientKey {
                name: format!("env-{}", i + 1),
                routes: None,
                limits: Limits::default(),
                admin: true,
                budget: None,
                digest: sha256(key),
            });
        }
    }
    let mut path = None;
    if let Some(file) = file {
        let resolved = Path::new(c.file).parent().unwrap_or(Path::new("")).join(file.get_ref());
        match std::fs::read_to_string(&resolved) {
            Ok(text) => {
                std::hash::Hash::hash(&text, read);
                let shown = resolved.display().to_string();
                let mut kc = Collector::new(&shown, &text);
                read_file(&mut kc, &text, routes, &mut keys);
                c.errors.append(&mut kc.errors);
                c.warnings.append(&mut kc.warnings);
            }
            Err(e) => c.error(
                &file.span(),
                "server.keys_file",
                format!("cannot read the key file {}: {e}", resolved.display()),
            ),
        }
        path = Some(resolved);
    }
    // a key source named in the policy turns authentication on, even when it holds no key: a
    // missing variable must not open the gateway
    let enabled = file.is_some() || env.is_some();
    (ClientKeys { keys, enabled }, path)
}

fn read_file(c: &mut Collector<'_>, text: &str, routes: &[&str], keys: &mut Vec<ClientKey>) {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            c.error(&e.span().unwrap_or(0..0), "", e.message().trim().to_owned());
            return;
        }
    };
    let mut specs = Vec::new();
    for (key, value) in root.get_ref().iter() {
        if key.get_ref() != "keys" {
            c.error(&key.span(), key.get_ref().to_string(), "unknown table: a key file holds only [keys.NAME] tables");
            continue;
        }
        for (name, v) in super::compile::entries(c, "keys", value) {
            let key_path = format!("keys.{}", name.get_ref());
            if let Some(spec) = super::compile::section::<KeySpec>(c, &key_path, &v) {
                specs.push((name, v.span(), spec));
            }
        }
    }
    for (name, span, spec) in specs {
        let key_path = format!("keys.{}", name.get_ref());
        let given = [spec.key.is_some(), spec.key_env.is_some(), spec.sha256.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            c.error(&span, &key_path, "give exactly one of `key`, `key_env` or `sha256`");
            continue;
        }
        let digest = if let Some(k) = &spec.key {
            Some(sha256(k))
        } else if let Some(var) = &spec.key_env {
            let key = std::env::var(var).ok().filter(|k| !k.trim().is_empty());
            if key.is_none() {
                c.error(&span, format!("{key_path}.key_env"), format!("the variable `{var}` is unset or empty"));
            }
            key.map(|k| sha256(k.trim()))
        } else {
            let hex = spec.sha256.as_deref().unwrap_or_default();
            let d = parse_hex(hex);
            if d.is_none() {
                c.error(&span, format!("{key_path}.sha256"), "expected 64 hex digits (the SHA-256 of the key)");
            }
            d
        };
        let Some(digest) = digest else { continue };
        if let Some(other) = keys.iter().find(|k| same(&k.digest, &digest)) {
            c.error(&span, &key_path, format!("the same key as `{}`: each client needs its own", other.name));
            continue;
        }
        for r in spec.routes.iter().flatten() {
            if !routes.contains(&r.get_ref().as_str()) {
                c.error(
                    &r.span(),
                    format!("{key_path}.routes"),
                    format!("no route `{}` in the policy (routes: {})", r.get_ref(), routes.join(", ")),
                );
            }
        }
        for (limit, value) in [("rpm", spec.rpm), ("tpm", spec.tpm), ("concurrency", spec.concurrency)] {
            if value == Some(0) {
                c.error(&span, format!("{key_path}.{limit}"), "must be at least 1 (leave it out for no limit)");
            }
        }
        let budget = super::compile::budget(c, &key_path, spec.budget.as_ref());
        keys.push(ClientKey {
            budget,
            name: name.into_inner(),
            routes: spec.routes.map(|r| r.into_iter().map(Spanned::into_inner).collect()),
            limits: Limits { rpm: spec.rpm, tpm: spec.tpm, concurrency: spec.concurrency },
            admin: spec.admin,
            digest,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> (ClientKeys, Vec<String>) {
        let dir = tempfile::tempdir().unwrap_or_else(|_| unreachable!());
        let file = dir.path().join("keys.toml");
        std::fs::write(&file, text).unwrap_or_else(|_| unreachable!());
        let policy = dir.path().join("policy.toml").display().to_string();
        let mut c = Collector::new(&policy, "");
        let file = Spanned::new(0..0, "keys.toml".to_owned());
        let mut read = std::collections::hash_map::DefaultHasher::new();
        let (keys, _) = load(&mut c, None, Some(&file), &["chat", "fast"], &mut read);
        (keys, c.errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn keys_by_value_and_by_digest_are_found_and_nothing_else() {
        let digest = "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"; // sha256("123")
        let (keys, errors) = load_text(&format!(
            "[keys.ci]\nkey = \"sk-ci\"\nroutes = [\"fast\"]\nrpm = 5\n[keys.ops]\nsha256 = \"{digest}\"\nadmin = true\n"
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(keys.enabled());
        let ci = keys.find("sk-ci").map(|k| (k.name.as_str(), k.admin, k.allows("fast"), k.allows("chat")));
        assert_eq!(ci, Some(("ci", false, true, false)));
        assert_eq!(keys.find("sk-ci").and_then(|k| k.limits.rpm), Some(5));
        assert_eq!(keys.find("123").map(|k| (k.name.as_str(), k.admin)), Some(("ops", true)));
        assert!(keys.find("sk-c").is_none() && keys.find("").is_none());
        assert!(!format!("{keys:?}").contains("sk-ci"), "Debug shows no key");
    }

    #[test]
    fn a_bad_key_file_names_its_own_line_and_key() {
        let (_, errors) = load_text(
            "[keys.a]\nkey = \"x\"\n[keys.b]\nkey = \"x\"\n[keys.c]\nsha256 = \"zz\"\n[keys.d]\nkey = \"y\"\nroutes = [\"nope\"]\n[keys.e]\nkey = \"z\"\nrmp = 5\n",
        );
        let all = errors.join("\n");
        assert!(all.contains("keys.toml:3:1") && all.contains("the same key as `a`"), "{all}");
        assert!(all.contains("keys.c.sha256"), "{all}");
        assert!(all.contains("keys.toml:9:") && all.contains("no route `nope`"), "{all}");
        assert!(all.contains("rmp"), "{all}");
    }

    #[test]
    fn a_key_variable_named_but_unset_refuses_everyone_and_says_so() {
        let mut c = Collector::new("policy.toml", "");
        let mut read = std::collections::hash_map::DefaultHasher::new();
        let (keys, _) = load(&mut c, Some("SWITCHYARD_TEST_SURELY_UNSET_VAR"), None, &[], &mut read);
        assert!(keys.enabled() && keys.find("").is_none() && keys.keys().is_empty());
        assert!(c.warnings.iter().any(|w| w.to_string().contains("every request that needs a key will be refused")));
    }

    #[test]
    fn an_empty_key_file_turns_authentication_on_with_no_key() {
        let (keys, errors) = load_text("");
        assert!(errors.is_empty(), "{errors:?}");
        assert!(keys.enabled() && keys.find("anything").is_none());
    }
}
