//! Making the redis client both programs use from `REDIS_URL` and `REDIS_CA_CERT`.
//!
//! `redis://` is plain TCP, `redis+unix://` a Unix socket, `rediss://` TLS (rustls
//! with the ring provider, the one TLS stack of the workspace). A TLS server whose
//! certificate is not signed by one the system trusts needs its CA as a PEM file
//! (`REDIS_CA_CERT`); with it, only that CA is trusted. A user and password in the
//! URL (`rediss://producer:secret@redis:6380`) log in as that ACL user.

use crate::redact_url;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use std::path::{Path, PathBuf};

/// Why no Redis client could be made; each names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// A CA file with a URL that does not use TLS would be silently unused.
    #[error(
        "REDIS_CA_CERT (--redis-ca-cert) is set but REDIS_URL {url} is not a rediss:// URL, \
         so the certificate would be unused: use rediss:// for TLS, or unset REDIS_CA_CERT"
    )]
    CaWithoutTls { url: String },
    /// The CA file cannot be read.
    #[error("REDIS_CA_CERT (--redis-ca-cert) {}: cannot read it: {source}", path.display())]
    CaUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The CA file holds no PEM certificate, or a broken one.
    #[error(
        "REDIS_CA_CERT (--redis-ca-cert) {}: {why}; give the CA certificate as PEM \
         (-----BEGIN CERTIFICATE-----)", path.display()
    )]
    CaNotPem { path: PathBuf, why: String },
    /// The redis crate refused the URL.
    #[error("REDIS_URL {url} is not a usable Redis URL: {source}")]
    Url {
        url: String,
        source: redis::RedisError,
    },
}

/// A client for `url` (not yet connected), trusting the CA in `ca_cert` for TLS.
/// Fails when `ca_cert` is given without `rediss://`, or cannot be read as PEM.
pub fn redis_client(url: &str, ca_cert: Option<&Path>) -> Result<redis::Client, RedisSetupError> {
    let shown = || redact_url(url);
    let bad_url = |source| RedisSetupError::Url {
        url: shown(),
        source,
    };
    let Some(path) = ca_cert else {
        if uses_tls(url) {
            install_ring();
        }
        return redis::Client::open(url).map_err(bad_url);
    };
    if !uses_tls(url) {
        return Err(RedisSetupError::CaWithoutTls { url: shown() });
    }
    let root_cert = read_pem(path)?;
    install_ring();
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root_cert),
    };
    redis::Client::build_with_tls(url, certificates).map_err(bad_url)
}

/// Whether `url` asks for TLS (`rediss://`, any case).
fn uses_tls(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("rediss"))
}

/// The bytes of a PEM file holding at least one well-formed certificate.
fn read_pem(path: &Path) -> Result<Vec<u8>, RedisSetupError> {
    let bytes = std::fs::read(path).map_err(|source| RedisSetupError::CaUnreadable {
        path: path.to_owned(),
        source,
    })?;
    let not_pem = |why: String| RedisSetupError::CaNotPem {
        path: path.to_owned(),
        why,
    };
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| not_pem(format!("not a readable PEM file ({err})")))?;
    if certificates.is_empty() {
        return Err(not_pem("it holds no certificate".to_owned()));
    }
    Ok(bytes)
}

/// rustls needs one crypto provider for the process; ring is the workspace's.
/// Installing it twice is harmless (the second call is refused, the first kept).
fn install_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("taskhooks-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("a temp file");
        path
    }

    fn refusal(url: &str, ca: Option<&Path>) -> String {
        redis_client(url, ca).expect_err("refused").to_string()
    }

    #[test]
    fn a_ca_file_with_a_plain_url_is_refused_naming_both_and_hiding_the_password() {
        let ca = temp_file("unused.pem", b"");
        let why = refusal("redis://app:hunter2@cache:6379", Some(&ca));
        assert!(
            why.contains("REDIS_CA_CERT") && why.contains("REDIS_URL"),
            "{why}"
        );
        assert!(
            why.contains("rediss://") && !why.contains("hunter2"),
            "{why}"
        );
    }

    #[test]
    fn a_missing_an_empty_or_a_broken_ca_file_is_refused_naming_the_setting() {
        let url = "rediss://app:hunter2@cache:6380";
        let missing = refusal(url, Some(Path::new("/nonexistent/ca.pem")));
        assert!(
            missing.contains("REDIS_CA_CERT") && missing.contains("cannot read"),
            "{missing}"
        );
        let empty = refusal(url, Some(&temp_file("empty.pem", b"just text\n")));
        assert!(
            empty.contains("REDIS_CA_CERT") && empty.contains("no certificate"),
            "{empty}"
        );
        let broken = b"-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n";
        let broken = refusal(url, Some(&temp_file("broken.pem", broken)));
        assert!(
            broken.contains("REDIS_CA_CERT") && broken.contains("PEM"),
            "{broken}"
        );
        for why in [missing, empty, broken] {
            assert!(!why.contains("hunter2"), "{why}");
        }
    }

    #[test]
    fn plain_tls_and_unix_urls_make_a_client_without_a_ca_file() {
        for url in [
            "redis://cache:6379",
            "rediss://u:p@cache:6380",
            "redis+unix:///tmp/r.sock",
        ] {
            assert!(redis_client(url, None).is_ok(), "{url}");
        }
        let why = refusal("redis://:hunter2@cache:notaport", None);
        assert!(
            why.contains("REDIS_URL") && !why.contains("hunter2"),
            "{why}"
        );
    }
}
