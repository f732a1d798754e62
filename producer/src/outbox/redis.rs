//! The durable outbox's store: its connection to Redis, and writing batches,
//! their tasks' steps and their events (laid out as [`super::layout`] says),
//! within a timeout per command. Reading them back is [`super::read`].

use super::layout::{APPLY, GROUP, Keys, REQUEUE, RESERVE, STOP_CHANNEL, index_key, queue_key};
use super::read::parse_state;
use crate::deliveries::{RedeliverRequest, Refusal, TaskRecord};
use crate::outcome::now_millis;
use crate::runner::State;
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::time::Duration;
use taskhooks_shared::Task;

/// How long one Redis command may take before it counts as failed.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// How many batch ids the index keeps; the batches themselves expire.
const MAX_INDEXED: isize = 1000;

/// Why the outbox could not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// Redis failed or did not answer in time.
    #[error("Redis did not answer: {0}")]
    Redis(String),
    /// Something stored is not what this version writes.
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
}

/// Why a batch was not queued: the outbox holds too many tasks already.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the outbox already holds {waiting} tasks waiting to be delivered and this batch has \
     {total}, over the limit of {max} (MAX_WAITING_TASKS); stop a batch or try again when \
     some have been delivered"
)]
pub(crate) struct OutboxFull {
    /// Tasks queued or in flight now.
    pub(crate) waiting: u64,
    /// The refused batch's size.
    pub(crate) total: u64,
    /// The limit.
    pub(crate) max: u64,
}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        StoreError::Redis(err.to_string())
    }
}

/// Runs a Redis call within [`OP_TIMEOUT`].
pub(crate) async fn timed<T>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(StoreError::Redis(format!(
            "no answer within {OP_TIMEOUT:?}"
        ))),
    }
}

/// The outbox's connection to Redis and its settings.
#[derive(Clone)]
pub(crate) struct RedisStore {
    /// For connections of their own (blocking reads, Pub/Sub).
    pub(crate) client: redis::Client,
    conn: ConnectionManager,
    /// How long a finished batch is kept.
    pub(crate) keep_finished: Duration,
    /// Most tasks waiting in the queue before a new batch is refused.
    max_waiting: u64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's URL may hold a password: not shown.
        f.debug_struct("RedisStore")
            .field("keep_finished", &self.keep_finished)
            .field("max_waiting", &self.max_waiting)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects lazily to `url` (it reconnects by itself).
    pub(crate) fn new(url: &str, keep_finished: Duration) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(RedisStore {
            client,
            conn,
            keep_finished,
            max_waiting: u64::MAX,
        })
    }

    /// Refuses batches that would put more than `max` tasks in the queue.
    pub(crate) fn with_max_waiting(self, max: u64) -> RedisStore {
        RedisStore {
            max_waiting: max,
            ..self
        }
    }

    /// Refuses a batch of `total` tasks when the queue (every task not yet
    /// final: acknowledged entries are deleted) would go past the limit. Two
    /// batches checked at the same moment may both pass: the limit can be passed
    /// by the batches being started at once, never by more.
    pub(crate) async fn check_room(
        &self,
        total: u64,
    ) -> Result<Result<(), OutboxFull>, StoreError> {
        let mut conn = self.conn();
        let waiting: u64 =
            timed(redis::cmd("XLEN").arg(queue_key()).query_async(&mut conn)).await?;
        if waiting.saturating_add(total) <= self.max_waiting {
            return Ok(Ok(()));
        }
        Ok(Err(OutboxFull {
            waiting,
            total,
            max: self.max_waiting,
        }))
    }

    /// A handle on the shared connection.
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Makes the queue and its consumer group, unless they exist.
    pub(crate) async fn ensure_group(&self) -> Result<(), StoreError> {
        let made = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(queue_key())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(&mut self.conn())
            .await;
        match made {
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Writes a new batch and queues every task, all at once, before the 202.
    pub(crate) async fn create(
        &self,
        id: &str,
        tasks: impl IntoIterator<Item = Task>,
        pace: Duration,
    ) -> Result<u64, StoreError> {
        let keys = Keys::of(id);
        let now = now_millis();
        let records: Vec<TaskRecord> = tasks.into_iter().map(TaskRecord::new).collect();
        let total = records.len() as u64;
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.hset_multiple(
            &keys.meta,
            &[
                ("total", total),
                ("created_at", now),
                ("run_started_at", now),
                (
                    "pace_ms",
                    u64::try_from(pace.as_millis()).unwrap_or(u64::MAX),
                ),
                ("next_start", 0),
                ("stopped", 0),
                ("queued", total),
                ("in_flight", 0),
                ("delivered", 0),
                ("failed", 0),
                ("cancelled", 0),
            ],
        );
        let mut states = Vec::with_capacity(records.len());
        let mut bodies = Vec::with_capacity(records.len());
        for (index, record) in (1u64..).zip(&records) {
            states.push((index, "queued"));
            let json = serde_json::to_string(record)
                .map_err(|err| StoreError::Corrupt(err.to_string()))?;
            bodies.push((index, json));
        }
        if !records.is_empty() {
            pipe.hset_multiple(&keys.states, &states);
            pipe.hset_multiple(&keys.tasks, &bodies);
        }
        pipe.zadd(index_key(), id, now);
        pipe.zremrangebyrank(index_key(), 0, -(MAX_INDEXED + 1));
        let queue = queue_key();
        for index in 1..=total {
            pipe.cmd("XADD")
                .arg(&queue)
                .arg("*")
                .arg("batch")
                .arg(id)
                .arg("index")
                .arg(index);
        }
        timed(pipe.query_async::<()>(&mut self.conn())).await?;
        Ok(total)
    }

    /// Queues the tasks `request` chooses again; `None` for an unknown batch.
    pub(crate) async fn redeliver(
        &self,
        id: &str,
        request: &RedeliverRequest,
    ) -> Result<Option<Result<Vec<u64>, Refusal>>, StoreError> {
        let keys = Keys::of(id);
        let states: HashMap<u64, String> = timed(self.conn().hgetall(&keys.states)).await?;
        let Some(meta) = self.meta(id).await? else {
            return Ok(None);
        };
        let mut ordered = vec![State::Queued; usize::try_from(meta.total).unwrap_or(0)];
        for (index, state) in states {
            if let Some(slot) = index
                .checked_sub(1)
                .and_then(|i| ordered.get_mut(i as usize))
            {
                *slot = parse_state(&state)?;
            }
        }
        let chosen = match request.choose(&ordered) {
            Ok(chosen) => chosen,
            Err(refusal) => return Ok(Some(Err(refusal))),
        };
        let busy: Vec<String> = timed(
            REQUEUE
                .key(&keys.meta)
                .key(&keys.states)
                .key(&keys.tasks)
                .key(&keys.events)
                .key(queue_key())
                .arg(id)
                .arg(&chosen)
                .invoke_async(&mut self.conn()),
        )
        .await?;
        if busy.first().is_some_and(|b| b == "gone") {
            return Ok(None);
        }
        if busy.is_empty() {
            return Ok(Some(Ok(chosen)));
        }
        let busy = busy.iter().filter_map(|b| b.parse().ok()).collect();
        Ok(Some(Err(Refusal::InFlight(busy))))
    }

    /// Marks the batch stopped and tells every producer; `false` when unknown.
    pub(crate) async fn stop(&self, id: &str) -> Result<bool, StoreError> {
        let meta = Keys::of(id).meta;
        let mut conn = self.conn();
        let exists: bool = timed(conn.exists(&meta)).await?;
        if exists {
            timed(conn.hset::<_, _, _, ()>(&meta, "stopped", 1)).await?;
            timed(conn.publish::<_, _, ()>(STOP_CHANNEL, id)).await?;
        }
        Ok(exists)
    }

    /// Stores one step of a task (see [`APPLY`]); `false` when the batch is gone.
    pub(crate) async fn apply(
        &self,
        id: &str,
        index: u64,
        record: &TaskRecord,
        event: &str,
    ) -> Result<bool, StoreError> {
        let keys = Keys::of(id);
        let json =
            serde_json::to_string(record).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        let state = state_name(record.state);
        let applied: i64 = timed(
            APPLY
                .key(&keys.meta)
                .key(&keys.states)
                .key(&keys.tasks)
                .key(&keys.events)
                .arg(index)
                .arg(state)
                .arg(json)
                .arg(event)
                .arg(self.keep_finished.as_secs().max(1))
                .invoke_async(&mut self.conn()),
        )
        .await?;
        Ok(applied >= 0)
    }

    /// How long to wait for the batch's next delivery start (shared pace).
    pub(crate) async fn reserve_start(
        &self,
        id: &str,
        pace_ms: u64,
    ) -> Result<Duration, StoreError> {
        if pace_ms == 0 {
            return Ok(Duration::ZERO);
        }
        let wait: u64 = timed(
            RESERVE
                .key(Keys::of(id).meta)
                .arg(pace_ms)
                .invoke_async(&mut self.conn()),
        )
        .await?;
        Ok(Duration::from_millis(wait))
    }
}

/// A state as stored.
pub(crate) fn state_name(state: State) -> &'static str {
    match state {
        State::Queued => "queued",
        State::Sending => "sending",
        State::Retrying => "retrying",
        State::Delivered => "delivered",
        State::Failed => "failed",
        State::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskhooks_shared::testing::RedisServer;

    #[tokio::test]
    async fn every_producer_reserves_the_next_start_one_pace_after_the_last() {
        let redis = RedisServer::start();
        let keep = Duration::from_secs(60);
        let a = RedisStore::new(&redis.url(), keep).expect("a store");
        let b = RedisStore::new(&redis.url(), keep).expect("a store");
        let task: Task = serde_json::from_value(serde_json::json!({
            "batchid": "b", "id": 0, "owner": "Ann", "priority": "Low"
        }))
        .expect("a task");
        a.create("b", [task], Duration::from_secs(10))
            .await
            .expect("created");

        let first = a.reserve_start("b", 10_000).await.expect("reserved");
        let second = b.reserve_start("b", 10_000).await.expect("reserved");
        let third = a.reserve_start("b", 10_000).await.expect("reserved");

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
        let unpaced = b.reserve_start("b", 0).await.expect("no reservation");
        assert_eq!(unpaced, Duration::ZERO);
    }
}
