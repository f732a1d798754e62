//! Making the redis client both programs use, from `REDIS_URL` (one Redis) or
//! `REDIS_CLUSTER_URLS` (a Redis Cluster's seed nodes), and `REDIS_CA_CERT`.
//!
//! `redis://` is plain TCP, `redis+unix://` a Unix socket, `rediss://` TLS (rustls
//! with the ring provider, the one TLS stack of the workspace). A TLS server whose
//! certificate is not signed by one the system trusts needs its CA as a PEM file
//! (`REDIS_CA_CERT`); with it, only that CA is trusted. A user and password in the
//! URL (`rediss://producer:secret@redis:6380`) log in as that ACL user; in a
//! cluster, the first seed's user logs in to every node.
//!
//! Everything past this file talks to either kind through one [`RedisClient`] and
//! its [`RedisConnection`]s: the code that runs a script does not know whether one
//! server or a cluster answers it. What differs is said here and in
//! [`connection`]: a cluster routes each command by its first key's slot (so every
//! script names a key, and each atomic unit's keys share one hash tag), and a
//! subscriber may listen on any node ([`RedisClient::pubsub`]).

mod cluster;
mod connection;
mod settings;

pub use cluster::{HealthError, cluster_health, wait_replicas_by_default, watch_topology};
pub use connection::{RedisConnection, evalsha};
#[cfg(feature = "testing")]
pub(crate) use settings::install_ring;
pub use settings::{RedisSettings, RedisSetupError, redis_client};

use crate::redact_url;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long [`RedisClient::check_cluster_access`] gives each seed.
const SEED_TIMEOUT: Duration = Duration::from_millis(300);

/// One Redis or a Redis Cluster, not yet connected. Cheap to clone.
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
    /// The URL or URLs, passwords hidden: for logs and errors.
    shown: Arc<str>,
}

enum Inner {
    Single(redis::Client),
    Cluster {
        /// Boxed: it is twice the size of a plain client, and there is one per program.
        client: Box<ClusterClient>,
        /// A client of each seed node, for subscriptions ([`RedisClient::pubsub`]).
        seeds: Vec<redis::Client>,
        /// The seed the next subscription tries first.
        next_seed: AtomicUsize,
    },
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("redis", &self.shown)
            .finish_non_exhaustive()
    }
}

impl RedisClient {
    /// A client of one Redis; `shown` is its URL without the password.
    pub(crate) fn single(client: redis::Client, shown: String) -> RedisClient {
        RedisClient {
            inner: Arc::new(Inner::Single(client)),
            shown: shown.into(),
        }
    }

    /// A client of the one Redis at `url`, without a CA file (tests, tools).
    pub fn open(url: &str) -> Result<RedisClient, RedisSetupError> {
        Ok(RedisClient::single(
            redis_client(url, None)?,
            redact_url(url),
        ))
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(*self.inner, Inner::Cluster { .. })
    }

    /// The URL or seed URLs, passwords hidden.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A connection shared by short commands: it connects on first use and
    /// reconnects by itself (to one Redis, or to whichever nodes serve the slots
    /// its commands name), each command bounded by `timeout`.
    pub fn shared_connection(&self, timeout: Duration) -> redis::RedisResult<RedisConnection> {
        Ok(match &*self.inner {
            Inner::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1);
                RedisConnection::Manager(ConnectionManager::new_lazy_with_config(
                    client.clone(),
                    config,
                )?)
            }
            Inner::Cluster { client, .. } => RedisConnection::Cluster(
                client.get_pending_async_connection_with_config(cluster_config(timeout, timeout)),
            ),
        })
    }

    /// A connection of its own, for blocking reads (`XREADGROUP BLOCK`, which
    /// would hold a shared connection): connected now, `response_timeout` long
    /// enough for the longest block.
    pub async fn own_connection(
        &self,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> redis::RedisResult<RedisConnection> {
        Ok(match &*self.inner {
            Inner::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout));
                let conn: MultiplexedConnection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                RedisConnection::Multiplexed(conn)
            }
            Inner::Cluster { client, .. } => RedisConnection::Cluster(
                client
                    .get_async_connection_with_config(cluster_config(
                        connect_timeout,
                        response_timeout,
                    ))
                    .await?,
            ),
        })
    }

    /// In a cluster, asks the seeds in turn, until one answers, for `CLUSTER SLOTS`
    /// as this program's user: what the cluster client needs before anything else.
    /// For after a failed check only (it opens a connection each time). When
    /// the user may not, Redis's own `NOPERM` text, naming `cluster|slots`, is the
    /// error (the cluster client would give only that it found no node). Nothing to
    /// check on one Redis.
    pub async fn check_cluster_access(&self) -> redis::RedisResult<()> {
        let Inner::Cluster { seeds, .. } = &*self.inner else {
            return Ok(());
        };
        // Short: a seed that does not answer must not hold up the next one past the
        // caller's own timeout.
        let seed_config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(SEED_TIMEOUT))
            .set_response_timeout(Some(SEED_TIMEOUT));
        let mut last_err = None;
        for seed in seeds {
            let slots = async {
                let mut conn = seed
                    .get_multiplexed_async_connection_with_config(&seed_config)
                    .await?;
                redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<redis::Value>(&mut conn)
                    .await
            };
            match slots.await {
                Ok(_) => return Ok(()),
                Err(err)
                    if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) =>
                {
                    return Err(err);
                }
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err
            .unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no seed node"))))
    }

    /// A subscriber connection. In a cluster, classic `PUBLISH` reaches every node
    /// (docs/design.md says why classic, not sharded, pub/sub), so any node will
    /// do: each call tries the seeds in turn from the one after the last used, so
    /// a subscriber whose node died moves to the next.
    pub async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        match &*self.inner {
            Inner::Single(client) => client.get_async_pubsub().await,
            Inner::Cluster {
                seeds, next_seed, ..
            } => {
                let first = next_seed.fetch_add(1, Ordering::Relaxed);
                let mut last_err = None;
                for n in 0..seeds.len() {
                    match seeds[(first + n) % seeds.len()].get_async_pubsub().await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(err) => last_err = Some(err),
                    }
                }
                // unwrap-free: `seeds` is never empty (cluster_client refuses that).
                Err(last_err.unwrap_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Io, "no seed node"))
                }))
            }
        }
    }
}

fn cluster_config(connect: Duration, response: Duration) -> ClusterConfig {
    ClusterConfig::new()
        .set_connection_timeout(connect)
        .set_response_timeout(response)
}
