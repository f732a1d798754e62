//! The settings that choose a Redis (`REDIS_URL`, `REDIS_CLUSTER_URLS`,
//! `REDIS_CA_CERT`), checked and turned into a [`RedisClient`]: each refusal names
//! the setting to fix and never shows a password.

use super::{Inner, RedisClient};
use crate::redact_url;
use redis::cluster::ClusterClientBuilder;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

/// Why no Redis client could be made; each names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// One Redis and a cluster at once: which one is meant cannot be guessed.
    #[error(
        "REDIS_URL (--redis-url) and REDIS_CLUSTER_URLS (--redis-cluster-urls) are both set: \
         set REDIS_URL for one Redis, or REDIS_CLUSTER_URLS for a Redis Cluster, not both"
    )]
    BothUrls,
    /// A replica count with no Redis at all would be silently unused.
    #[error(
        "REDIS_WAIT_REPLICAS (--redis-wait-replicas) is set without REDIS_URL or \
         REDIS_CLUSTER_URLS: it would be unused"
    )]
    WaitWithoutRedis,
    /// A CA file with no Redis at all would be silently unused.
    #[error(
        "REDIS_CA_CERT (--redis-ca-cert) is set without REDIS_URL or REDIS_CLUSTER_URLS: \
         it would be unused"
    )]
    CaWithoutRedis,
    /// A CA file with a URL that does not use TLS would be silently unused.
    #[error(
        "REDIS_CA_CERT (--redis-ca-cert) is set but {setting} {url} is not a rediss:// URL, \
         so the certificate would be unused: use rediss:// for TLS, or unset REDIS_CA_CERT"
    )]
    CaWithoutTls { setting: &'static str, url: String },
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
    #[error("{setting} {url} is not a usable Redis URL: {source}")]
    Url {
        setting: &'static str,
        url: String,
        source: redis::RedisError,
    },
    /// The cluster's seed list is empty or the redis crate refused it as a whole.
    #[error(
        "REDIS_CLUSTER_URLS {urls} is not a usable list of seed nodes ({why}): give \
         comma-separated redis:// or rediss:// URLs, e.g. redis://10.0.0.1:7000,redis://10.0.0.2:7000, \
         all with the same user and TLS"
    )]
    ClusterSeeds { urls: String, why: String },
}

/// The Redis settings both programs take.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisSettings<'a> {
    /// `REDIS_URL`: one Redis.
    pub url: Option<&'a str>,
    /// `REDIS_CLUSTER_URLS`: comma-separated seed nodes of a Redis Cluster.
    pub cluster_urls: Option<&'a str>,
    /// `REDIS_CA_CERT`: the PEM file of the CA that signed the servers' certificates.
    pub ca_cert: Option<&'a Path>,
    /// `REDIS_WAIT_REPLICAS`, when set (see `wait_replicas_by_default` when not).
    pub wait_replicas: Option<u32>,
}

impl RedisSettings<'_> {
    /// The client these settings name, `None` when neither URL is set (each program
    /// then keeps its state in its own memory). Refuses both URLs at once, and a
    /// CA file that would go unused.
    pub fn client(&self) -> Result<Option<RedisClient>, RedisSetupError> {
        match (self.url, self.cluster_urls) {
            (Some(_), Some(_)) => Err(RedisSetupError::BothUrls),
            (None, None) if self.ca_cert.is_some() => Err(RedisSetupError::CaWithoutRedis),
            (None, None) if self.wait_replicas.is_some() => Err(RedisSetupError::WaitWithoutRedis),
            (None, None) => Ok(None),
            (Some(url), None) => {
                let client = redis_client(url, self.ca_cert)?;
                Ok(Some(RedisClient::single(client, redact_url(url))))
            }
            (None, Some(urls)) => cluster_client(urls, self.ca_cert).map(Some),
        }
    }
}

/// A cluster client of the comma-separated seed `urls`, and a plain client of each.
fn cluster_client(urls: &str, ca_cert: Option<&Path>) -> Result<RedisClient, RedisSetupError> {
    let seeds: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let shown = seeds
        .iter()
        .map(|u| redact_url(u))
        .collect::<Vec<_>>()
        .join(",");
    let refused = |why: String| RedisSetupError::ClusterSeeds {
        urls: shown.clone(),
        why,
    };
    if seeds.is_empty() {
        return Err(refused("no URL in it".to_owned()));
    }
    let root_cert = seeds_ca(&seeds, ca_cert)?;
    if seeds.iter().any(|u| uses_tls(u)) {
        install_ring();
    }
    let mut plain = Vec::with_capacity(seeds.len());
    for url in &seeds {
        plain.push(open(url, root_cert.clone(), "REDIS_CLUSTER_URLS")?);
    }
    let mut builder = ClusterClientBuilder::new(seeds.iter().copied())
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2));
    if let Some(root_cert) = root_cert {
        builder = builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        });
    }
    let client = builder.build().map_err(|err| refused(err.to_string()))?;
    Ok(RedisClient {
        inner: Arc::new(Inner::Cluster {
            client: Box::new(client),
            seeds: plain,
            next_seed: AtomicUsize::new(0),
        }),
        shown: shown.into(),
    })
}

/// The CA file's PEM for the cluster's `seeds`, when one is given: refused unless
/// every seed uses TLS.
fn seeds_ca(seeds: &[&str], ca_cert: Option<&Path>) -> Result<Option<Vec<u8>>, RedisSetupError> {
    let Some(path) = ca_cert else {
        return Ok(None);
    };
    if let Some(plain) = seeds.iter().find(|u| !uses_tls(u)) {
        return Err(RedisSetupError::CaWithoutTls {
            setting: "REDIS_CLUSTER_URLS",
            url: redact_url(plain),
        });
    }
    Ok(Some(read_pem(path)?))
}

/// A plain client of `url`, trusting only `root_cert` when given.
fn open(
    url: &str,
    root_cert: Option<Vec<u8>>,
    setting: &'static str,
) -> Result<redis::Client, RedisSetupError> {
    let bad_url = |source| RedisSetupError::Url {
        setting,
        url: redact_url(url),
        source,
    };
    match root_cert {
        None => redis::Client::open(url).map_err(bad_url),
        Some(root_cert) => {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            redis::Client::build_with_tls(url, certificates).map_err(bad_url)
        }
    }
}

/// A client for the one Redis at `url` (not yet connected), trusting the CA in
/// `ca_cert` for TLS. Fails when `ca_cert` is given without `rediss://`, or cannot
/// be read as PEM.
pub fn redis_client(url: &str, ca_cert: Option<&Path>) -> Result<redis::Client, RedisSetupError> {
    let Some(path) = ca_cert else {
        if uses_tls(url) {
            install_ring();
        }
        return open(url, None, "REDIS_URL");
    };
    if !uses_tls(url) {
        return Err(RedisSetupError::CaWithoutTls {
            setting: "REDIS_URL",
            url: redact_url(url),
        });
    }
    let root_cert = read_pem(path)?;
    install_ring();
    open(url, Some(root_cert), "REDIS_URL")
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
pub(crate) fn install_ring() {
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

    #[test]
    fn both_urls_a_lone_ca_file_or_replica_count_and_a_plain_seed_beside_a_ca_file_are_refused() {
        let settings = RedisSettings {
            url: Some("redis://:hunter2@cache:6379"),
            cluster_urls: Some("redis://10.0.0.1:7000"),
            ..RedisSettings::default()
        };
        let both = settings.client().expect_err("refused").to_string();
        assert!(
            both.contains("REDIS_URL") && both.contains("REDIS_CLUSTER_URLS"),
            "{both}"
        );
        let ca = temp_file("lone.pem", b"");
        let lone = RedisSettings {
            ca_cert: Some(&ca),
            ..RedisSettings::default()
        };
        let lone = lone.client().expect_err("refused").to_string();
        assert!(lone.contains("REDIS_CA_CERT"), "{lone}");
        let unused_wait = RedisSettings {
            wait_replicas: Some(1),
            ..RedisSettings::default()
        };
        let unused_wait = unused_wait.client().expect_err("refused").to_string();
        assert!(unused_wait.contains("REDIS_WAIT_REPLICAS"), "{unused_wait}");
        let mixed = RedisSettings {
            cluster_urls: Some("rediss://u:hunter2@a:7000,redis://u:hunter2@b:7000"),
            ca_cert: Some(&ca),
            ..RedisSettings::default()
        };
        let mixed = mixed.client().expect_err("refused").to_string();
        assert!(
            mixed.contains("REDIS_CLUSTER_URLS") && !mixed.contains("hunter2"),
            "{mixed}"
        );
    }

    #[test]
    fn cluster_seeds_make_a_cluster_client_and_an_empty_list_is_refused() {
        let seeds = RedisSettings {
            cluster_urls: Some("redis://u:hunter2@10.0.0.1:7000, redis://u:hunter2@10.0.0.2:7000"),
            ..RedisSettings::default()
        };
        let client = seeds.client().expect("a client").expect("some client");
        assert!(client.is_cluster());
        assert!(!client.shown().contains("hunter2"), "{}", client.shown());
        let empty = RedisSettings {
            cluster_urls: Some(" , "),
            ..RedisSettings::default()
        };
        let why = empty.client().expect_err("refused").to_string();
        assert!(why.contains("REDIS_CLUSTER_URLS"), "{why}");
        assert!(
            RedisSettings::default()
                .client()
                .expect("no error")
                .is_none()
        );
    }
}
