//! The durable outbox's workers, in every producer on one Redis: they read the
//! queue with the consumer group, have each task delivered ([`super::job`]),
//! and acknowledge an entry once its task reached a final state (and that was
//! stored). Entries pending on a producer gone for [`Workers::claim_after`] are
//! claimed by another; a live worker re-claims its own entries periodically, so
//! a task retrying for minutes is never stolen. A stop is a flag in Redis, read
//! before each start, and a Pub/Sub message that cancels deliveries in flight.

use super::layout::{GROUP, STOP_CHANNEL, queue_key};
use super::redis::{RedisStore, StoreError, timed};
use crate::delivery::Deliverer;
use futures_util::StreamExt as _;
use redis::AsyncConnectionConfig;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a read of the queue blocks waiting for a new entry.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// How long a worker waits after Redis failed before trying again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Most entries claimed from dead producers at a time.
const CLAIM_COUNT: usize = 64;
/// Entries a producer holds (read, not yet final) per delivery slot: a paced
/// task waits for its start without a slot, so several batches read at once
/// share the slots as in memory, while a producer never takes more of the queue
/// than it can soon deliver.
const HELD_PER_SLOT: usize = 4;

/// One queue entry: task `index` of `batch`.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The entry's id in the queue stream.
    pub(super) id: String,
    /// The batch id.
    pub(super) batch: String,
    /// The task's index, from 1.
    pub(super) index: u64,
}

/// Stream entries as Redis sends them: id and fields.
type RawEntries = Vec<(String, HashMap<String, String>)>;
/// The raw reply of XREADGROUP: per stream, its entries.
type StreamReply = Vec<(String, RawEntries)>;
/// The raw reply of XAUTOCLAIM: the next cursor, the claimed entries, and the
/// ids of entries deleted meanwhile.
type ClaimReply = (String, RawEntries, Vec<String>);

/// This producer's workers and what they share.
#[derive(Debug)]
pub(crate) struct Workers {
    /// The outbox.
    pub(crate) store: RedisStore,
    /// The shared client.
    pub(crate) deliverer: Arc<Deliverer>,
    /// Bounds deliveries in flight in this process.
    pub(crate) in_flight: Arc<Semaphore>,
    /// Bounds the entries this process holds, waiting or in flight.
    held: Arc<Semaphore>,
    /// Cancelled at shutdown: nothing more is read; tasks in flight are left
    /// pending in Redis for another producer (or this one, restarted).
    pub(crate) shutdown: CancellationToken,
    /// Every delivery, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// After how long without a sign of life a pending entry is claimed.
    pub(crate) claim_after: Duration,
    /// This producer's name in the consumer group (unique per process).
    pub(crate) name: String,
    /// The entries this process is working on, re-claimed to keep them.
    pub(super) mine: Mutex<HashSet<String>>,
    /// Each batch's stop token while a task of it is in this process.
    pub(super) stops: Mutex<HashMap<String, Weak<CancellationToken>>>,
}

impl Workers {
    /// Workers named `name` delivering from `store`.
    pub(crate) fn new(
        store: RedisStore,
        deliverer: Arc<Deliverer>,
        (in_flight, max_in_flight): (Arc<Semaphore>, usize),
        shutdown: CancellationToken,
        tracker: TaskTracker,
        claim_after: Duration,
    ) -> Arc<Workers> {
        Arc::new(Workers {
            store,
            deliverer,
            in_flight,
            held: Arc::new(Semaphore::new(max_in_flight * HELD_PER_SLOT)),
            shutdown,
            tracker,
            claim_after,
            name: format!("producer-{}", uuid::Uuid::new_v4().simple()),
            mine: Mutex::new(HashSet::new()),
            stops: Mutex::new(HashMap::new()),
        })
    }

    /// Starts reading, claiming, keeping its own entries and hearing stops.
    pub(crate) fn spawn(self: &Arc<Self>) {
        tokio::spawn(self.clone().read_loop());
        tokio::spawn(self.clone().claim_loop());
        tokio::spawn(self.clone().keep_loop());
        tokio::spawn(self.clone().stop_loop());
    }

    /// Reads new entries, while this producer holds fewer than its bound.
    async fn read_loop(self: Arc<Self>) {
        while !self.shutdown.is_cancelled() {
            if let Err(err) = self.read_from_one_connection().await {
                tracing::warn!(%err, "reading the outbox queue failed; trying again");
                self.pause().await;
                // A Redis restarted without its data has lost the group too.
                if let Err(err) = self.store.ensure_group().await {
                    tracing::debug!(%err, "the outbox queue's group could not be made yet");
                }
            }
        }
    }

    async fn read_from_one_connection(self: &Arc<Self>) -> Result<(), StoreError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(super::redis::OP_TIMEOUT))
            .set_response_timeout(Some(READ_BLOCK + super::redis::OP_TIMEOUT));
        let mut conn = timed(
            self.store
                .client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await?;
        loop {
            let permit = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                permit = self.held.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return Ok(()),
                },
            };
            let mut command = redis::cmd("XREADGROUP");
            command
                .arg("GROUP")
                .arg(GROUP)
                .arg(&self.name)
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(READ_BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(queue_key())
                .arg(">");
            let read = command.query_async::<Option<StreamReply>>(&mut conn);
            let reply = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                reply = read => reply?,
            };
            let entries = reply.into_iter().flatten().flat_map(|(_, entries)| entries);
            if let Some(entry) = entries.filter_map(parse_entry).next() {
                self.start(entry, permit);
            }
        }
    }

    /// Claims the entries left pending by producers silent for `claim_after`.
    async fn claim_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.claim_after / 2);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(err) = self.claim_some().await {
                tracing::warn!(%err, "claiming abandoned outbox entries failed");
            }
        }
    }

    async fn claim_some(self: &Arc<Self>) -> Result<(), StoreError> {
        let reply: ClaimReply = timed(
            redis::cmd("XAUTOCLAIM")
                .arg(queue_key())
                .arg(GROUP)
                .arg(&self.name)
                .arg(self.claim_after.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(CLAIM_COUNT)
                .query_async(&mut self.store.conn()),
        )
        .await?;
        for entry in reply.1.into_iter().filter_map(parse_entry) {
            if lock(&self.mine).contains(&entry.id) {
                continue; // ours already, only slow to be kept
            }
            tracing::info!(batch = %entry.batch, index = entry.index, "claimed an abandoned task");
            let permit = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                permit = self.held.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return Ok(()),
                },
            };
            self.start(entry, permit);
        }
        Ok(())
    }

    /// Re-claims this process's own entries, so no other producer takes them.
    async fn keep_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.claim_after / 3);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
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
            let mut conn = self.store.conn();
            if let Err(err) = timed(command.query_async::<redis::Value>(&mut conn)).await {
                tracing::warn!(%err, "keeping this producer's outbox entries failed");
            }
        }
    }

    /// Cancels the deliveries of a batch stopped on any producer.
    async fn stop_loop(self: Arc<Self>) {
        while !self.shutdown.is_cancelled() {
            if let Err(err) = self.hear_stops().await {
                tracing::warn!(%err, "listening for stopped batches failed; trying again");
                self.pause().await;
            }
        }
    }

    async fn hear_stops(&self) -> Result<(), StoreError> {
        let (mut sink, mut stream) = timed(self.store.client.get_async_pubsub()).await?.split();
        timed(sink.subscribe(STOP_CHANNEL)).await?;
        loop {
            let message = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                message = stream.next() => message,
            };
            let Some(message) = message else {
                return Err(StoreError::Redis("the stop channel closed".to_owned()));
            };
            let batch = String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
            let token = lock(&self.stops).get(&batch).and_then(Weak::upgrade);
            if let Some(token) = token {
                token.cancel();
            }
        }
    }

    async fn pause(&self) {
        tokio::select! {
            () = self.shutdown.cancelled() => {}
            () = tokio::time::sleep(RETRY_DELAY) => {}
        }
    }

    /// Delivers `entry` in the background, holding `permit` (of `held`).
    fn start(self: &Arc<Self>, entry: Entry, permit: OwnedSemaphorePermit) {
        lock(&self.mine).insert(entry.id.clone());
        let workers = self.clone();
        self.tracker.spawn(async move {
            let done = workers.process(&entry).await;
            lock(&workers.mine).remove(&entry.id);
            drop(permit);
            match done {
                Ok(true) => workers.acknowledge(&entry.id).await,
                Ok(false) => {}
                Err(err) => tracing::warn!(%err, batch = %entry.batch, index = entry.index,
                    "a task's delivery could not be stored; another attempt will follow"),
            }
        });
    }

    async fn acknowledge(&self, id: &str) {
        let mut pipe = redis::pipe();
        pipe.cmd("XACK").arg(queue_key()).arg(GROUP).arg(id);
        pipe.cmd("XDEL").arg(queue_key()).arg(id);
        if let Err(err) = timed(pipe.query_async::<()>(&mut self.store.conn())).await {
            tracing::warn!(%err, "acknowledging an outbox entry failed; it will be seen again");
        }
    }
}

fn parse_entry((id, fields): (String, HashMap<String, String>)) -> Option<Entry> {
    let batch = fields.get("batch")?.clone();
    let index = fields.get("index")?.parse().ok()?;
    Some(Entry { id, batch, index })
}

/// Locks a mutex, ignoring poisoning: each critical section is one set or map
/// operation, which a panic elsewhere cannot leave half done.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
