//! `[server] tls = { cert = "FILE", key = "FILE" }`: the gateway terminates TLS itself (rustls)
//! for users with no proxy in front. The PEM files are read with the policy, so a reload (or a
//! change to either file) serves new connections with the new certificate, and a bad file fails
//! the reload while the certificate in force stays.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::diagnostic::Collector;

/// `tls = { cert, key }` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSpec {
    cert: String,
    key: String,
}

/// The certificate chain and key the gateway serves, as the policy named them.
#[derive(Clone, Serialize)]
pub struct TlsSettings {
    /// The PEM certificate chain (leaf first).
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
    #[serde(skip)]
    #[cfg_attr(not(feature = "gateway"), allow(dead_code))] // validated and kept for the gateway
    config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// An acceptor for new connections.
    #[cfg(feature = "gateway")]
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

/// Reads and checks the files; a problem is a diagnostic at `server.tls`.
pub(crate) fn load(
    c: &mut Collector<'_>,
    spec: &Spanned<TlsSpec>,
    read: &mut impl std::hash::Hasher,
) -> Option<TlsSettings> {
    let base = Path::new(c.file).parent().unwrap_or(Path::new("")).to_path_buf();
    let (cert, key) = (base.join(&spec.get_ref().cert), base.join(&spec.get_ref().key));
    let built = build(&cert, &key, read);
    match built {
        Ok(config) => Some(TlsSettings { cert, key, config: Arc::new(config) }),
        Err(message) => {
            c.error(&spec.span(), "server.tls", message);
            None
        }
    }
}

/// Builds the server config from the files, hashing the bytes it read into `read` (what a reload
/// compares, so the files are read once).
fn build(cert: &Path, key: &Path, read: &mut impl std::hash::Hasher) -> Result<rustls::ServerConfig, String> {
    let cert_pem = std::fs::read(cert).map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    std::hash::Hash::hash(&cert_pem, read);
    std::hash::Hash::hash(&key_pem, read);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no PEM certificate in {}", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("the certificate and key of `server.tls` do not work together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
    }

    fn build_(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
        build(cert, key, &mut std::collections::hash_map::DefaultHasher::new())
    }

    #[test]
    fn a_certificate_and_its_key_load_and_a_mismatched_pair_is_refused() {
        assert!(build_(&fixture("cert-a.pem"), &fixture("key-a.pem")).is_ok());
        let mismatched = build_(&fixture("cert-a.pem"), &fixture("key-b.pem")).err().unwrap_or_default();
        assert!(mismatched.contains("do not work together"), "{mismatched}");
        let missing = build_(&fixture("nope.pem"), &fixture("key-a.pem")).err().unwrap_or_default();
        assert!(missing.contains("cannot read the certificate"), "{missing}");
        let not_a_key = build_(&fixture("cert-a.pem"), &fixture("cert-b.pem")).err().unwrap_or_default();
        assert!(not_a_key.contains("cannot read the private key"), "{not_a_key}");
    }
}
