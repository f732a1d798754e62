//! The outbox's queue in Redis, shared by every producer: a stream of
//! `{batch, index}` entries read with one consumer group. This process reads new
//! entries, and claims those pending on a producer gone for `--claim-after`; it
//! re-claims its own entries periodically, so a task retrying for minutes is
//! never stolen. An entry is acknowledged (and deleted) once its task reached a
//! final state and that was stored.

use super::layout::{GROUP, queue_key};
use super::write::ensure_group;
use super::{OP_TIMEOUT, Redis, timed};
use crate::record::task_id;
use crate::store::{Entry, StoreError};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use taskhooks_shared::redis_client::{RedisClient, RedisConnection};
use taskhooks_shared::sync::lock;
use tokio_util::sync::CancellationToken;

/// How long a read of the queue blocks waiting for a new entry.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// Most entries claimed from dead producers at a time.
const CLAIM_COUNT: usize = 64;

/// Stream entries as Redis sends them: id and fields.
type RawEntries = Vec<(String, HashMap<String, String>)>;
/// The raw reply of XREADGROUP: per stream, its entries.
type StreamReply = Vec<(String, RawEntries)>;
/// The raw reply of XAUTOCLAIM: the next cursor, the claimed entries, and the
/// ids of entries deleted meanwhile.
type ClaimReply = (String, RawEntries, Vec<String>);

/// This process's place in the queue's consumer group.
#[derive(Debug)]
pub(super) struct Queue {
    /// This producer's name in the group (unique per process).
    pub(super) name: String,
    /// After how long without a sign of life a pending entry is claimed.
    claim_after: Duration,
    /// The entries this process is working on, re-claimed to keep them.
    mine: Mutex<HashSet<String>>,
    /// Entries claimed from gone producers, handed out before new ones (and
    /// kept as ours only from then: until taken, another producer may claim
    /// them again).
    claimed: Mutex<VecDeque<Entry>>,
    /// The blocking reads' own connection (`None` until made, and after a failure).
    reader: tokio::sync::Mutex<Option<RedisConnection>>,
}

impl Queue {
    pub(super) fn new(claim_after: Duration) -> Queue {
        Queue {
            name: format!("producer-{}", uuid::Uuid::new_v4().simple()),
            claim_after,
            mine: Mutex::new(HashSet::new()),
            claimed: Mutex::new(VecDeque::new()),
            reader: tokio::sync::Mutex::new(None),
        }
    }

    /// The next entry: a claimed one, or a new one within [`READ_BLOCK`]; `None`
    /// when none came or `shutdown` is cancelled.
    pub(super) async fn next(
        &self,
        client: &RedisClient,
        shutdown: &CancellationToken,
    ) -> Result<Option<Entry>, StoreError> {
        if let Some(entry) = lock(&self.claimed).pop_front() {
            lock(&self.mine).insert(entry.id.clone());
            return Ok(Some(entry));
        }
        let mut reader = self.reader.lock().await;
        let read = shutdown
            .run_until_cancelled(self.read(client, &mut reader))
            .await;
        let entry = match read {
            None => return Ok(None),
            Some(Err(err)) => {
                reader.take(); // a new connection, and the group made again, next time
                return Err(err);
            }
            Some(Ok(entry)) => entry,
        };
        if let Some(entry) = &entry {
            lock(&self.mine).insert(entry.id.clone());
        }
        Ok(entry)
    }

    async fn read(
        &self,
        client: &RedisClient,
        reader: &mut Option<RedisConnection>,
    ) -> Result<Option<Entry>, StoreError> {
        if reader.is_none() {
            let connect = client.own_connection(OP_TIMEOUT, READ_BLOCK + OP_TIMEOUT);
            let mut conn = timed(connect).await?;
            // A Redis restarted without its data has lost the group too.
            ensure_group(&mut conn).await?;
            *reader = Some(conn);
        }
        let Some(conn) = reader.as_mut() else {
            return Ok(None);
        };
        let reply: Option<StreamReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.name)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(READ_BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(queue_key())
            .arg(">")
            .query_async(conn)
            .await?;
        let mut entries = reply.into_iter().flatten().flat_map(|(_, entries)| entries);
        Ok(entries.find_map(parse_entry))
    }

    /// This process is done with `entry`; `finished` acknowledges and deletes it.
    pub(super) async fn release(&self, redis: &mut Redis, entry: &Entry, finished: bool) {
        lock(&self.mine).remove(&entry.id);
        if !finished {
            return;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("XACK").arg(queue_key()).arg(GROUP).arg(&entry.id);
        pipe.cmd("XDEL").arg(queue_key()).arg(&entry.id);
        if let Err(err) = timed(pipe.query_async::<()>(redis)).await {
            tracing::warn!(%err, "acknowledging an outbox entry failed; it will be seen again");
        }
    }

    /// Claims, every half `claim_after`, the entries left pending by producers
    /// silent that long, until `shutdown`.
    pub(super) async fn claim_loop(&self, redis: Redis, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.claim_after / 2);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Claimed entries wait here until the pipeline takes them: no more
            // are claimed until it has.
            if !lock(&self.claimed).is_empty() {
                continue;
            }
            if let Err(err) = self.claim_some(&mut redis.clone()).await {
                tracing::warn!(%err, "claiming abandoned outbox entries failed");
            }
        }
    }

    async fn claim_some(&self, redis: &mut Redis) -> Result<(), StoreError> {
        let reply: ClaimReply = timed(
            redis::cmd("XAUTOCLAIM")
                .arg(queue_key())
                .arg(GROUP)
                .arg(&self.name)
                .arg(self.claim_after.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(CLAIM_COUNT)
                .query_async(redis),
        )
        .await?;
        for entry in reply.1.into_iter().filter_map(parse_entry) {
            if lock(&self.mine).contains(&entry.id) {
                continue; // ours already, only slow to be kept
            }
            tracing::info!(batch = %entry.batch, task = task_id(entry.index), "claimed an abandoned task");
            lock(&self.claimed).push_back(entry);
        }
        Ok(())
    }

    /// Re-claims this process's own entries every third of `claim_after`, so no
    /// other producer takes them, until `shutdown`.
    pub(super) async fn keep_loop(&self, redis: Redis, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.claim_after / 3);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let ids: Vec<String> = lock(&self.mine).iter().cloned().collect();
            if ids.is_empty() {
                continue;
            }
            let mut command = redis::cmd("XCLAIM");
            command
                .arg(queue_key())
                .arg(GROUP)
                .arg(&self.name)
                .arg(0)
                .arg(&ids)
                .arg("JUSTID");
            let mut conn = redis.clone();
            if let Err(err) = timed(command.query_async::<redis::Value>(&mut conn)).await {
                tracing::warn!(%err, "keeping this producer's outbox entries failed");
            }
        }
    }
}

fn parse_entry((id, fields): (String, HashMap<String, String>)) -> Option<Entry> {
    let batch = fields.get("batch")?.clone();
    let index = fields.get("index")?.parse().ok()?;
    Some(Entry { id, batch, index })
}
