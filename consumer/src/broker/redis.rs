//! The Redis broker: publish, dedupe and count in one script call per webhook (the
//! script and the worker threads' connections are in [`super::redis_accept`]), the
//! snapshot and totals reads, and the readiness check; the one subscriber per process
//! that forwards the channel to this process's hub is in [`subscriber`].
//!
//! Keys, all prefixed with the channel name as a hash tag, `{<ch>}`, so that in a
//! Redis Cluster they share one slot and the script that writes them together runs
//! on one node (docs/design.md, "Redis Cluster"):
//! `{<ch>}:seen:<bucket>:<shard>` (dedupe: small hashes of 8-byte id hashes, one per
//! time bucket and shard, see [`super::dedupe`]; the only keys with a TTL),
//! `{<ch>}:totals` (hash of priority → count), `{<ch>}:v2:recent` (list of event JSON,
//! newest first, trimmed to [`RECENT_CAP`] every few events, read to it),
//! `{<ch>}:seq` (last event number), `{<ch>}:duplicates` (webhooks answered
//! `duplicate`) and, with `--fault-injection`, `{<ch>}:faults` (crate::faults).
//! Events are published on `{<ch>}:v2:events`, those of one script call as one message.
//!
//! Where writes wait for replicas (`REDIS_WAIT_REPLICAS`, 1 by default in a
//! cluster), a script call's webhooks are answered only after `WAIT` says enough
//! replicas have its writes: a master that dies right after answering then loses
//! nothing a sender was told about.

use super::dedupe::DedupeWindow;
use super::error::BrokerError;
use super::eviction::EvictionRisk;
use super::redis_accept::{AcceptScript, Call, Group, Queue};
use super::snapshot::{Counts, RECENT_CAP, Snapshot, Totals};
use crate::event::task_values;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use taskhooks_shared::redis_client::{RedisClient, RedisConnection, cluster_health};
use taskhooks_shared::{Priority, Task};
use tokio::sync::oneshot;

/// How long one Redis call may take before the webhook is answered 503. Short: a
/// sender retries, and a stuck request holds a connection.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a script call's answer waits for the replicas to have its writes.
/// Replicas acknowledge a `WAIT` at once unless they are behind or gone; within
/// [`OP_TIMEOUT`], so a webhook is still answered in time.
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(1);

/// Reads sequence number, totals and recent events at one instant.
static SNAPSHOT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
        -- KEYS: seq, totals, recent; ARGV: how many recent events
        local seq = tonumber(redis.call('GET', KEYS[1])) or 0
        return {seq, redis.call('HGETALL', KEYS[2]), redis.call('LRANGE', KEYS[3], 0, ARGV[1] - 1)}
        "#,
    )
});

/// Reads the sequence number, the totals and the duplicates at one instant (not
/// the recent list).
static TOTALS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
        -- KEYS: seq, totals, duplicates
        local seq = tonumber(redis.call('GET', KEYS[1])) or 0
        local duplicates = tonumber(redis.call('GET', KEYS[3])) or 0
        return {seq, redis.call('HGETALL', KEYS[2]), duplicates}
        "#,
    )
});

/// A consumer's connection to Redis.
#[derive(Clone)]
pub struct RedisBroker {
    /// One Redis or a cluster (cheap to clone).
    client: RedisClient,
    /// The connection for everything but webhooks, driven on the thread that built it.
    conn: RedisConnection,
    /// The keys' prefix, `{<ch>}`.
    prefix: Arc<str>,
    /// How many replicas must have a call's writes before its webhooks are answered.
    wait_replicas: u32,
    /// The webhook's script, for the dedupe window.
    accept: Arc<AcceptScript>,
    /// The keys the snapshot and totals scripts read: seq, totals, recent, duplicates.
    keys: Arc<[String; 4]>,
    /// Where the accept script's time is recorded, when metrics are kept.
    accept_seconds: Option<Histogram>,
}

/// A connection that connects on first use and reconnects by itself.
fn connect_lazily(client: &RedisClient) -> redis::RedisResult<RedisConnection> {
    client.shared_connection(OP_TIMEOUT)
}

/// The prefix of a channel's keys: its name as a hash tag.
pub(crate) fn key_prefix(channel: &str) -> String {
    format!("{{{channel}}}")
}

/// Runs a Redis call within [`OP_TIMEOUT`].
pub(crate) async fn timed<T>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, BrokerError> {
    Ok(tokio::time::timeout(OP_TIMEOUT, call)
        .await
        .map_err(|_| BrokerError::Timeout(OP_TIMEOUT))??)
}

/// Runs a read again once when it fails on a connection error. After Redis
/// returns, the connection manager answers the first command with the error of
/// its last failed reconnection (and only then reconnects), so that command fails
/// for nothing. Only for reads: running a write twice is the sender's choice (it
/// retries, and the dedupe makes that safe).
async fn read_twice<T, F, Fut>(read: F) -> Result<T, BrokerError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, BrokerError>>,
{
    match read().await {
        Err(BrokerError::Redis(err)) if err.is_io_error() => read().await,
        result => result,
    }
}

impl RedisBroker {
    /// Prepares a connection by `client` (see `taskhooks_shared::redis_client`). It
    /// connects lazily and reconnects by itself, so a consumer can start before Redis
    /// and survive its restarts.
    pub fn new(client: RedisClient, channel: &str) -> Result<RedisBroker, BrokerError> {
        let conn = connect_lazily(&client)?;
        let prefix: Arc<str> = key_prefix(channel).into();
        // The keys the accept script writes (checked by this file's one test).
        let keys =
            ["seq", "totals", "v2:recent", "duplicates"].map(|name| format!("{prefix}:{name}"));
        Ok(RedisBroker {
            client,
            conn,
            accept: Arc::new(AcceptScript::new(prefix.clone(), DedupeWindow::default())),
            prefix,
            wait_replicas: 0,
            keys: Arc::new(keys),
            accept_seconds: None,
        })
    }

    /// The same broker answering a webhook only once `replicas` replicas have its
    /// writes (`WAIT`).
    pub fn with_wait_replicas(self, replicas: u32) -> RedisBroker {
        RedisBroker {
            wait_replicas: replicas,
            ..self
        }
    }

    /// The same broker remembering webhook ids for `window`. Every replica on one
    /// Redis must use the same window: it decides where an id is kept.
    pub(crate) fn with_window(self, window: DedupeWindow) -> RedisBroker {
        RedisBroker {
            accept: Arc::new(AcceptScript::new(self.prefix.clone(), window)),
            ..self
        }
    }

    /// The same broker recording each accept script call's time in `histogram`.
    pub(crate) fn with_accept_histogram(self, histogram: Histogram) -> RedisBroker {
        RedisBroker {
            accept_seconds: Some(histogram),
            ..self
        }
    }

    /// See [`super::Broker::accept`]: the event's `seq`, `None` for a duplicate.
    /// The webhook joins its thread's queue and is answered once the script call
    /// that carries it has returned (its event published), or failed.
    pub(crate) async fn accept(
        &self,
        webhook_id: Option<&str>,
        task: &Task,
    ) -> Result<Option<u64>, BrokerError> {
        let call = self
            .accept
            .call(webhook_id, task_values(task), task.priority);
        let (answer, answered) = oneshot::channel();
        let started = Instant::now();
        let (queue, start_flush) = self.accept.enqueue(call, answer);
        if start_flush {
            tokio::spawn(self.clone().flush(queue));
        }
        // The flush's own call times out after OP_TIMEOUT; this only guards
        // against a flush task that was lost (a runtime shutting down).
        let seq = match tokio::time::timeout(2 * OP_TIMEOUT, answered).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) | Err(_) => Err(BrokerError::Timeout(2 * OP_TIMEOUT)),
        };
        if let Some(histogram) = &self.accept_seconds {
            histogram.observe(started.elapsed().as_secs_f64());
        }
        Ok(match seq? {
            0 => None,
            seq => Some(seq),
        })
    }

    /// Sends the webhooks waiting in `queue`, a call's worth at a time (each call
    /// but the last in a task of its own, so that they are under way together).
    async fn flush(self, queue: Arc<Mutex<Queue>>) {
        loop {
            let (group, more) = Queue::take(&queue);
            if !more {
                return self.send(group).await;
            }
            tokio::spawn(self.clone().send(group));
        }
    }

    /// Sends `waiting` in one script call, on this thread's own connection, and
    /// hands each webhook its result.
    async fn send(self, waiting: Group) {
        let mut conn = self
            .accept
            .thread_connection(|| connect_lazily(&self.client), &self.conn);
        let calls: Vec<&Call> = waiting.iter().map(|(call, _)| call).collect();
        let seqs = self.run_accept(&mut conn, &calls).await;
        for (index, (_, answer)) in waiting.into_iter().enumerate() {
            let result = match &seqs {
                Ok(seqs) => Ok(seqs[index]),
                Err(err) => Err(err.clone()),
            };
            let _ = answer.send(result); // a webhook whose request was dropped
        }
    }

    /// One script call for `calls`, and the replicas' `WAIT` right after it when
    /// writes wait for some (one pipeline: [`AcceptScript::run`]): each webhook's
    /// `seq`, in order.
    async fn run_accept(
        &self,
        conn: &mut RedisConnection,
        calls: &[&Call],
    ) -> Result<Vec<u64>, BrokerError> {
        let wait = (self.wait_replicas > 0).then_some((self.wait_replicas, WAIT_TIMEOUT));
        let run = self
            .accept
            .run(conn, &self.keys[0], calls.iter().copied(), wait);
        let (answer, acknowledged) = timed(run).await?;
        let seqs: Vec<u64> = redis::from_redis_value(answer)
            .map_err(|err| BrokerError::Unexpected(format!("the accept script's answer: {err}")))?;
        if seqs.len() != calls.len() {
            return Err(BrokerError::Unexpected(format!(
                "the accept script returned {} results for {} webhooks",
                seqs.len(),
                calls.len()
            )));
        }
        if let Some(acknowledged) = acknowledged.filter(|&n| n < self.wait_replicas) {
            return Err(BrokerError::NotReplicated {
                acknowledged,
                wanted: self.wait_replicas,
            });
        }
        Ok(seqs)
    }

    /// See [`super::Broker::snapshot`]; tried twice on a connection error
    /// ([`read_twice`]), so a dashboard resynchronising just after Redis returns
    /// is not disconnected for nothing.
    pub(crate) async fn snapshot(&self) -> Result<Snapshot, BrokerError> {
        read_twice(|| self.read_snapshot()).await
    }

    async fn read_snapshot(&self) -> Result<Snapshot, BrokerError> {
        let [seq, totals, recent, _] = &*self.keys;
        let mut invocation = SNAPSHOT.key(seq);
        invocation.key(totals).key(recent).arg(RECENT_CAP);
        let mut conn = self.conn.clone();
        let (seq, flat_totals, recent): (u64, Vec<String>, Vec<String>) =
            timed(invocation.invoke_async(&mut conn)).await?;
        Ok(Snapshot {
            seq,
            totals: parse_totals(&flat_totals),
            recent: recent.into_iter().filter_map(recent_event).collect(),
        })
    }

    /// See [`super::Broker::totals`]; tried twice on a connection error
    /// ([`read_twice`]), so `/api/stats` just after Redis returns is not a 503.
    pub(crate) async fn totals(&self) -> Result<Counts, BrokerError> {
        read_twice(|| self.read_totals()).await
    }

    async fn read_totals(&self) -> Result<Counts, BrokerError> {
        let [seq, totals, _, duplicates] = &*self.keys;
        let mut invocation = TOTALS.key(seq);
        invocation.key(totals).key(duplicates);
        let mut conn = self.conn.clone();
        let (seq, flat_totals, duplicates): (u64, Vec<String>, u64) =
            timed(invocation.invoke_async(&mut conn)).await?;
        Ok(Counts {
            seq,
            totals: parse_totals(&flat_totals),
            duplicates,
        })
    }

    /// Reads `maxmemory` and `maxmemory-policy`; a refused or failed `CONFIG GET`
    /// (managed Redis often disables it) gives [`EvictionRisk::Unknown`], never an error.
    pub async fn eviction_risk(&self) -> EvictionRisk {
        let mut conn = self.conn.clone();
        let mut config = redis::cmd("CONFIG");
        config.arg("GET").arg("maxmemory*");
        let read: Result<HashMap<String, String>, _> =
            timed(conn.query_at(&self.keys[0], config)).await;
        let settings = match read {
            Ok(settings) => settings,
            Err(err) => {
                return EvictionRisk::Unknown {
                    reason: err.to_string(),
                };
            }
        };
        let policy = settings.get("maxmemory-policy");
        let maxmemory = settings.get("maxmemory").and_then(|m| m.parse().ok());
        match (policy, maxmemory) {
            (Some(policy), Some(maxmemory)) => EvictionRisk::decide(policy, maxmemory),
            _ => EvictionRisk::Unknown {
                reason: "CONFIG GET did not return maxmemory and maxmemory-policy".to_owned(),
            },
        }
    }

    /// A connection and the keys' prefix, for what the consumer keeps beside the
    /// totals under the same prefix (fault injection's settings).
    pub(crate) fn side_connection(&self) -> (RedisConnection, Arc<str>) {
        (self.conn.clone(), self.prefix.clone())
    }

    /// The client, for what watches the cluster beside the broker.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    /// See [`super::Broker::ping`]: PING, then the totals read, so that an ACL user
    /// without a right the reads need (EVALSHA, SCRIPT LOAD, a key) fails here with
    /// Redis's own NOPERM text naming it, not only at the first dashboard; then, in
    /// a cluster or when writes wait for replicas, that the node holding the keys
    /// is in a cluster that is ok and has those replicas
    /// (`taskhooks_shared::redis_client::cluster_health`).
    /// In a cluster, a failed check asks a seed whether this user may read the
    /// slots (`RedisClient::check_cluster_access`): without that right the cluster
    /// client says only that it found no node.
    pub(crate) async fn ping(&self) -> Result<(), BrokerError> {
        let checked = self.check().await;
        if checked.is_err() && self.client.is_cluster() {
            timed(self.client.check_cluster_access()).await?;
        }
        checked
    }

    async fn check(&self) -> Result<(), BrokerError> {
        let mut conn = self.conn.clone();
        timed(conn.query_at::<String>(&self.keys[0], redis::cmd("PING"))).await?;
        self.read_totals().await?;
        let health = cluster_health(&mut conn, &self.keys[0], self.wait_replicas);
        match tokio::time::timeout(OP_TIMEOUT, health).await {
            Err(_) => Err(BrokerError::Timeout(OP_TIMEOUT)),
            Ok(Err(err)) => Err(BrokerError::Unhealthy(err.to_string())),
            Ok(Ok(())) => Ok(()),
        }
    }
}

fn parse_totals(flat: &[String]) -> Totals {
    let mut totals = Totals::default();
    for pair in flat.chunks_exact(2) {
        let priority = Priority::ALL.iter().find(|p| p.as_str() == pair[0]);
        if let (Some(priority), Ok(count)) = (priority, pair[1].parse()) {
            totals.0[priority.index()] = count;
        }
    }
    totals
}

/// One event of the recent list as JSON, or `None` (logged) for text that is not
/// JSON, which would spoil every snapshot it is sent in.
fn recent_event(json: String) -> Option<Arc<serde_json::value::RawValue>> {
    match serde_json::value::RawValue::from_string(json) {
        Ok(raw) => Some(Arc::from(raw)),
        Err(err) => {
            tracing::warn!(%err, "a recent event in Redis is not JSON; left out of the snapshot");
            None
        }
    }
}

mod subscriber;
#[cfg(test)]
mod tests;
