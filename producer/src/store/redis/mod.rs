//! The store in Redis (`REDIS_URL`): batches that survive a producer crash and
//! that every producer on the same Redis shares. The layout and its scripts are
//! in [`layout`]; this file connects and answers the [`Store`] calls, each
//! within [`OP_TIMEOUT`], by [`write`], [`read`], the shared [`queue`] and the
//! event stream readers of [`events`].

mod events;
pub(crate) mod layout;
mod queue;
mod read;
mod write;

use crate::generator::BatchTasks;
use crate::record::{BatchSummary, RedeliverRequest, Refusal, TaskRecord};
use crate::store::{
    CreateError, Entry, EventId, EventLog, Position, Settings, Stops, Store, StoreError,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use taskhooks_shared::redis_client::{RedisClient, RedisConnection, cluster_health};
use tokio_util::sync::CancellationToken;

/// How long one Redis command may take before it counts as failed.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a new batch's answer waits for the replicas to have it.
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared, self-reconnecting connection every short command goes through (to
/// one Redis, or to the node of a cluster serving the outbox's slot).
type Redis = RedisConnection;

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        StoreError::Redis(err.to_string())
    }
}

/// Runs a Redis call within [`OP_TIMEOUT`].
async fn timed<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(StoreError::Redis(format!(
            "no answer within {OP_TIMEOUT:?}"
        ))),
    }
}

/// Batches in Redis.
pub(crate) struct RedisStore {
    /// For connections of their own (blocking reads, Pub/Sub).
    client: RedisClient,
    conn: Redis,
    /// How long a finished batch is kept.
    keep_finished: Duration,
    /// Most tasks waiting in the queue before a new batch is refused.
    max_waiting: u64,
    /// How many replicas must have a new batch before it is answered.
    wait_replicas: u32,
    queue: queue::Queue,
    stops: Stops,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's URL may hold a password: not shown.
        f.debug_struct("RedisStore")
            .field("keep_finished", &self.keep_finished)
            .field("max_waiting", &self.max_waiting)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// What a [`RedisStore`] is made with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// How long a finished batch is kept (`--keep-finished`).
    pub(crate) keep_finished: Duration,
    /// Most tasks waiting before a new batch is refused (`--max-waiting-tasks`).
    pub(crate) max_waiting: u64,
    /// When a task pending on a silent producer is taken over (`--claim-after`).
    pub(crate) claim_after: Duration,
    /// How many replicas must have a new batch before it is answered 202
    /// (`REDIS_WAIT_REPLICAS`).
    pub(crate) wait_replicas: u32,
}

impl RedisStore {
    /// Connects lazily by `client` (it reconnects by itself; see
    /// `taskhooks_shared::redis_client`).
    pub(crate) fn new(client: RedisClient, limits: Limits) -> Result<RedisStore, StoreError> {
        let conn = client.shared_connection(OP_TIMEOUT)?;
        Ok(RedisStore {
            client,
            conn,
            keep_finished: limits.keep_finished,
            max_waiting: limits.max_waiting,
            wait_replicas: limits.wait_replicas,
            queue: queue::Queue::new(limits.claim_after),
            stops: Stops::new(None),
        })
    }

    /// This producer's name in the queue's consumer group.
    pub(crate) fn name(&self) -> &str {
        &self.queue.name
    }

    /// Makes the queue and its consumer group, unless they exist: fails when
    /// Redis cannot be reached (in a cluster, naming a missing right to read the
    /// slots, as [`Store::ready`] does).
    pub(crate) async fn connect(&self) -> Result<(), StoreError> {
        let made = write::ensure_group(&mut self.conn()).await;
        if made.is_err() && self.client.is_cluster() {
            timed(self.client.check_cluster_access()).await?;
        }
        made
    }

    /// The outbox's master answers as this user (`XLEN` of the queue), and, in a
    /// cluster or where batches wait for replicas, it is in a cluster that is ok
    /// with those replicas online.
    async fn check(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let queue = layout::queue_key();
        timed(redis::cmd("XLEN").arg(&queue).query_async::<u64>(&mut conn)).await?;
        let health = cluster_health(&mut conn, &queue, self.wait_replicas);
        match tokio::time::timeout(OP_TIMEOUT, health).await {
            Err(_) => Err(StoreError::Redis(format!(
                "no answer within {OP_TIMEOUT:?}"
            ))),
            Ok(Err(err)) => Err(StoreError::Redis(err.to_string())),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Starts claiming abandoned tasks, keeping this process's own, and hearing
    /// stops from every producer, until `shutdown`.
    pub(crate) fn spawn(self: &Arc<Self>, shutdown: &CancellationToken) {
        let store = self.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { store.queue.claim_loop(store.conn(), stop).await });
        let store = self.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { store.queue.keep_loop(store.conn(), stop).await });
        let store = self.clone();
        let stop = shutdown.clone();
        tokio::spawn(
            async move { write::hear_stops(store.client.clone(), &store.stops, stop).await },
        );
    }

    fn conn(&self) -> Redis {
        self.conn.clone()
    }

    /// The replicas a write answered to a client waits for, and for how long.
    fn wait(&self) -> Option<(u32, Duration)> {
        (self.wait_replicas > 0).then_some((self.wait_replicas, WAIT_TIMEOUT))
    }
}

#[async_trait]
impl Store for RedisStore {
    fn durable(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        if self.client.is_cluster() {
            "redis-cluster"
        } else {
            "redis"
        }
    }

    /// The outbox's master answers as this user (`XLEN` of the queue), and, in a
    /// cluster or where batches wait for replicas, it is in a cluster that is ok
    /// with those replicas online.
    /// In a cluster, a failed check asks a seed whether this user may read the
    /// slots (`RedisClient::check_cluster_access`), to say so in Redis's words.
    async fn ready(&self) -> Result<(), StoreError> {
        let checked = self.check().await;
        if checked.is_err() && self.client.is_cluster() {
            timed(self.client.check_cluster_access()).await?;
        }
        checked
    }

    fn stops(&self) -> &Stops {
        &self.stops
    }

    async fn create(&self, tasks: BatchTasks, pace: Duration) -> Result<u64, CreateError> {
        write::check_room(&mut self.conn(), tasks.total, self.max_waiting).await?;
        let id = tasks.batchid.clone();
        let (total, acknowledged) =
            write::create(&mut self.conn(), tasks, pace, self.wait()).await?;
        if let Some(acknowledged) = acknowledged.filter(|&n| n < self.wait_replicas) {
            // Answered 503, the batch is stopped, so that a client trying again does
            // not get it twice (a task already started may still be delivered).
            if let Err(err) = write::stop(&mut self.conn(), &id).await {
                tracing::warn!(%err, batch = %id, "a batch refused for want of a replica could not be stopped");
            }
            let refused = write::not_replicated("the batch", acknowledged, self.wait_replicas);
            return Err(refused.into());
        }
        Ok(total)
    }

    async fn list(&self) -> Result<Vec<BatchSummary>, StoreError> {
        read::list(&mut self.conn()).await
    }

    async fn summary(&self, id: &str) -> Result<Option<BatchSummary>, StoreError> {
        read::summary(&mut self.conn(), id).await
    }

    async fn record(&self, id: &str, index: u64) -> Result<Option<TaskRecord>, StoreError> {
        read::record(&mut self.conn(), id, index).await
    }

    async fn redeliver(
        &self,
        id: &str,
        request: &RedeliverRequest,
    ) -> Result<Option<Result<Vec<u64>, Refusal>>, StoreError> {
        let Some(states) = read::states(&mut self.conn(), id).await? else {
            return Ok(None);
        };
        write::requeue(&mut self.conn(), id, &states, request, self.wait()).await
    }

    async fn stop(&self, id: &str) -> Result<bool, StoreError> {
        write::stop(&mut self.conn(), id).await
    }

    async fn next(&self, shutdown: &CancellationToken) -> Result<Option<Entry>, StoreError> {
        self.queue.next(&self.client, shutdown).await
    }

    async fn release(&self, entry: &Entry, finished: bool) {
        self.queue.release(&mut self.conn(), entry, finished).await;
    }

    async fn take_queued(&self, _id: &str) -> Vec<Entry> {
        Vec::new()
    }

    fn hands_out_when_due(&self) -> bool {
        false
    }

    async fn settings(&self, id: &str) -> Result<Option<Settings>, StoreError> {
        read::settings(&mut self.conn(), id).await
    }

    async fn reserve_start(&self, id: &str, pace_ms: u64) -> Result<Duration, StoreError> {
        write::reserve_start(&mut self.conn(), id, pace_ms).await
    }

    async fn apply(
        &self,
        id: &str,
        index: u64,
        record: &TaskRecord,
        data: &str,
    ) -> Result<bool, StoreError> {
        write::apply(
            &mut self.conn(),
            (id, index),
            record,
            data,
            self.keep_finished,
        )
        .await
    }

    fn parse_event_id(&self, text: &str) -> Option<EventId> {
        events::entry_id(text)
    }

    async fn position(&self, id: &str) -> Result<Option<Position>, StoreError> {
        read::position(&mut self.conn(), id).await
    }

    fn event_log(&self, id: &str) -> Option<Box<dyn EventLog>> {
        Some(Box::new(events::RedisLog::new(self.client.clone(), id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::Generator;
    use taskhooks_shared::testing::RedisServer;

    fn limits() -> Limits {
        Limits {
            keep_finished: Duration::from_secs(60),
            max_waiting: u64::MAX,
            claim_after: Duration::from_secs(30),
            wait_replicas: 0,
        }
    }

    #[tokio::test]
    async fn every_producer_reserves_the_next_start_one_pace_after_the_last() {
        let redis = RedisServer::start();
        let a = RedisStore::new(RedisClient::open(&redis.url()).expect("a URL"), limits())
            .expect("a store");
        let b = RedisStore::new(RedisClient::open(&redis.url()).expect("a URL"), limits())
            .expect("a store");
        let tasks = Generator::new(Some(1)).batch_of(1);
        let id = tasks.batchid.clone();
        a.create(tasks, Duration::from_secs(10))
            .await
            .expect("created");

        let first = a.reserve_start(&id, 10_000).await.expect("reserved");
        let second = b.reserve_start(&id, 10_000).await.expect("reserved");
        let third = a.reserve_start(&id, 10_000).await.expect("reserved");

        // Each wait is measured from its own call, a few ms after the previous one.
        assert_eq!(first, Duration::ZERO);
        let pace = Duration::from_secs(10);
        assert!(
            second <= pace && second > pace - Duration::from_secs(2),
            "{second:?}"
        );
        assert!(
            third <= 2 * pace && third > 2 * pace - Duration::from_secs(2),
            "{third:?}"
        );
        let unpaced = b.reserve_start(&id, 0).await.expect("no reservation");
        assert_eq!(unpaced, Duration::ZERO);
    }
}
