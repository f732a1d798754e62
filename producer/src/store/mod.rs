//! Where the producer keeps its batches: one [`Store`], chosen once at start.
//! [`memory::MemoryStore`] keeps them in this process (the default);
//! [`redis::RedisStore`] keeps them in Redis (`REDIS_URL`), where they survive a
//! crash and every producer on that Redis shares them.
//!
//! Either way a batch is the same thing: each task's record, a queue of tasks
//! waiting to be sent, a shared pace, a stop flag and an event log. The routes
//! create, list, stop and redeliver batches; the one pipeline (`crate::worker`)
//! takes queued tasks and records each step back; the one event stream
//! (`crate::events`) follows the logs. A store knows nothing of HTTP: it answers
//! data and typed errors.

pub mod memory;
pub(crate) mod redis;

use crate::generator::BatchTasks;
use crate::record::{BatchSummary, RedeliverRequest, Refusal, TaskRecord};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use taskhooks_shared::sync::lock;
use tokio_util::sync::CancellationToken;

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// Redis failed or did not answer in time.
    #[error("Redis did not answer: {0}")]
    Redis(String),
    /// Something stored is not what this version writes.
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
}

/// Why a batch was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CreateError {
    /// In memory: every batch kept is still running.
    #[error(
        "{max} batches are already running; stop one or try again in {} s, when the first \
         is due to finish",
        retry_after.as_secs()
    )]
    TooManyBatches {
        max: usize,
        /// When the first running batch is due to finish (at least a second).
        retry_after: Duration,
    },
    /// In Redis: the outbox holds too many tasks waiting.
    #[error(
        "the outbox already holds {waiting} tasks waiting to be delivered and this batch has \
         {total}, over the limit of {max} (MAX_WAITING_TASKS); stop a batch or try again when \
         some have been delivered"
    )]
    OutboxFull {
        /// Tasks queued or in flight now.
        waiting: u64,
        /// The refused batch's size.
        total: u64,
        max: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One queued task: task `index` of `batch`.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The entry's id in the store's queue (empty in memory, which needs none).
    pub(crate) id: String,
    pub(crate) batch: String,
    /// From 1.
    pub(crate) index: u64,
}

/// What the pipeline needs of a batch to send one of its tasks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) total: u64,
    /// Milliseconds between two delivery starts.
    pub(crate) pace_ms: u64,
    pub(crate) stopped: bool,
    /// Which run of the batch this is: 0 at its creation, one more at each
    /// redelivery. A stop cancels every run's tasks; a task takes its own
    /// run's switch, so a redelivery's tasks never inherit an earlier stop.
    pub(crate) run: u64,
}

/// An event's id, as numbers to compare: a memory log's `n` is `(n, 0)`, a Redis
/// stream entry id `ms-seq` is `(ms, seq)`.
pub(crate) type EventId = (u64, u64);

/// Where a batch's event log stands, for a client resuming it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    /// The id of its last event (`(0, 0)` for none).
    pub(crate) last: EventId,
    /// Whether that last event is a `done`.
    pub(crate) last_is_done: bool,
    /// Whether some task has not reached its final state.
    pub(crate) running: bool,
    /// Which ids no event can have.
    pub(crate) limit: Limit,
}

/// Which event ids a log never had, so a client cannot resume from them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    /// Any past the last: a memory log lives as long as the process, whole.
    LastEvent,
    /// Any from later than Redis's clock (Unix ms) by more than `slack_ms` (the
    /// clocks of replicas after a failover may differ by that much). One past
    /// the last event but not in the future may be real: Redis may have lost its
    /// newest entries in a restart (`appendfsync everysec`) or a failover.
    Clock { now_ms: u64, slack_ms: u64 },
}

/// One event of a batch's log.
#[derive(Debug, Clone)]
pub(crate) struct Logged {
    /// Its id in the log, as the client sends it back in `Last-Event-ID`.
    pub(crate) id: String,
    /// `done` (the batch's end, [`crate::record::DoneData`]) or `task`
    /// ([`crate::record::TaskData`]).
    pub(crate) done: bool,
    /// Its JSON.
    pub(crate) data: String,
}

/// Where batches live. Every method is safe to call from any producer at once.
#[async_trait]
pub(crate) trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Whether batches outlive this process: then a shutdown leaves the tasks
    /// not yet final in the queue, for this producer restarted or another.
    /// Otherwise a shutdown stops every batch.
    fn durable(&self) -> bool;

    /// Where batches are kept, for `/readyz`: `memory`, `redis` or `redis-cluster`.
    fn kind(&self) -> &'static str;

    /// Whether a new batch can be written now: `Err` says why not (`/readyz`).
    async fn ready(&self) -> Result<(), StoreError>;

    /// The stop switches of the batches with a task in this process.
    fn stops(&self) -> &Stops;

    /// Keeps a new batch of `tasks` paced `pace` apart and queues every task;
    /// its size.
    async fn create(&self, tasks: BatchTasks, pace: Duration) -> Result<u64, CreateError>;

    /// The batches kept, newest first.
    async fn list(&self) -> Result<Vec<BatchSummary>, StoreError>;

    /// One batch; `None` when unknown or expired.
    async fn summary(&self, id: &str) -> Result<Option<BatchSummary>, StoreError>;

    /// Task `index` (its place, from 1: `record::index_of` its id) of batch `id`
    /// with its state; `None` when not there.
    async fn record(&self, id: &str, index: u64) -> Result<Option<TaskRecord>, StoreError>;

    /// Queues the tasks `request` chooses again (refused as a whole when one is not
    /// final); their ids, or `None` for an unknown batch.
    async fn redeliver(
        &self,
        id: &str,
        request: &RedeliverRequest,
    ) -> Result<Option<Result<Vec<u64>, Refusal>>, StoreError>;

    /// Marks the batch stopped and cancels its deliveries, on every producer;
    /// `false` when unknown.
    async fn stop(&self, id: &str) -> Result<bool, StoreError>;

    /// The next queued task, waiting a while for one; `None` when none came (or
    /// `shutdown` is cancelled and a durable store leaves the rest queued).
    async fn next(&self, shutdown: &CancellationToken) -> Result<Option<Entry>, StoreError>;

    /// This process is done with `entry`: `finished` (its task is final, and that
    /// is stored) takes it off the queue; otherwise it is left for another try.
    async fn release(&self, entry: &Entry, finished: bool);

    /// Takes every task of batch `id` still queued where only this process
    /// reads, so that a stop ends them at once; empty for a shared queue, whose
    /// tasks of a stopped batch are ended as they are taken.
    async fn take_queued(&self, id: &str) -> Vec<Entry>;

    /// Whether [`Store::next`] hands out a task only once its paced start is
    /// due: then the pipeline needs to hold no more tasks than it has delivery
    /// slots. Otherwise a task waits for its start after it was taken.
    fn hands_out_when_due(&self) -> bool;

    /// What sending a task of batch `id` needs; `None` when it is gone.
    async fn settings(&self, id: &str) -> Result<Option<Settings>, StoreError>;

    /// Reserves the batch's next delivery start, shared by every producer: how
    /// long to wait for it. A start behind schedule is now, not a burst.
    async fn reserve_start(&self, id: &str, pace_ms: u64) -> Result<Duration, StoreError>;

    /// Stores one step of task `index`: its new `record`, the `task` event with
    /// `data`, and when it was the last task to end, the batch's `done` (so a
    /// batch finishes exactly once, whichever producer ends it). `false` when
    /// the batch is gone.
    async fn apply(
        &self,
        id: &str,
        index: u64,
        record: &TaskRecord,
        data: &str,
    ) -> Result<bool, StoreError>;

    /// An event id as a client sends it back; `None` when it cannot be one.
    fn parse_event_id(&self, text: &str) -> Option<EventId>;

    /// Where batch `id`'s log stands; `None` for an unknown batch.
    async fn position(&self, id: &str) -> Result<Option<Position>, StoreError>;

    /// A reader of batch `id`'s log; `None` when the store knows at once that
    /// the batch is unknown (a reader of an unknown batch reads nothing).
    fn event_log(&self, id: &str) -> Option<Box<dyn EventLog>>;
}

/// Reads one batch's event log, for one client.
#[async_trait]
pub(crate) trait EventLog: Send {
    /// The events after `after` (a bounded number), waiting up to `block` for
    /// one when there is none yet: empty when none came.
    async fn read_after(&mut self, after: &str, block: Duration)
    -> Result<Vec<Logged>, StoreError>;

    /// Names the log in this process's log lines.
    fn describe(&self) -> String;
}

/// The stop switch of each run of a batch that has a task in this process: the
/// pipeline takes one per task it sends, a stop cancels every run's. A switch
/// lives while a task holds it.
#[derive(Debug)]
pub(crate) struct Stops {
    /// Each new switch is its child: for a store whose batches end with the
    /// process, the shutdown token, so that a shutdown stops every batch.
    parent: Option<CancellationToken>,
    tokens: Mutex<HashMap<(String, u64), Weak<CancellationToken>>>,
}

impl Stops {
    /// Switches made as children of `parent`, when given.
    pub(crate) fn new(parent: Option<CancellationToken>) -> Stops {
        Stops {
            parent,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The switch of run `settings.run` of batch `id`, cancelled when the batch
    /// is `settings.stopped`.
    pub(crate) fn token(&self, id: &str, settings: &Settings) -> Arc<CancellationToken> {
        let mut tokens = lock(&self.tokens);
        let key = (id.to_owned(), settings.run);
        let token = match tokens.get(&key).and_then(Weak::upgrade) {
            Some(token) => token,
            None => {
                tokens.retain(|_, token| token.strong_count() > 0);
                let token = Arc::new(match &self.parent {
                    Some(parent) => parent.child_token(),
                    None => CancellationToken::new(),
                });
                tokens.insert(key, Arc::downgrade(&token));
                token
            }
        };
        if settings.stopped {
            token.cancel();
        }
        token
    }

    /// Cancels batch `id`'s deliveries in this process, of every run.
    pub(crate) fn cancel(&self, id: &str) {
        let tokens = lock(&self.tokens);
        let of_batch = tokens.iter().filter(|((batch, _), _)| batch == id);
        for token in of_batch.filter_map(|(_, token)| token.upgrade()) {
            token.cancel();
        }
    }
}

/// `text` as a whole number of type `T`: ASCII digits only (`parse` alone would
/// take "+1"), none past `T`'s range.
pub(crate) fn whole_number<T: std::str::FromStr>(text: &str) -> Option<T> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(run: u64, stopped: bool) -> Settings {
        Settings {
            total: 1,
            pace_ms: 0,
            stopped,
            run,
        }
    }

    #[test]
    fn a_stop_cancels_every_run_and_a_redelivery_runs_under_a_switch_of_its_own() {
        let stops = Stops::new(None);
        let first = stops.token("b", &run(0, false));
        stops.cancel("b");
        assert!(first.is_cancelled());
        // A task of the stopped run whose settings were read before the stop
        // still gets that run's cancelled switch.
        assert!(stops.token("b", &run(0, false)).is_cancelled());
        let redelivered = stops.token("b", &run(1, false));
        assert!(!redelivered.is_cancelled(), "a new run after the stop");
        // A late task of the stopped run does not cut the new run off.
        assert!(stops.token("b", &run(0, true)).is_cancelled());
        assert!(!redelivered.is_cancelled());
        stops.cancel("b");
        assert!(redelivered.is_cancelled());
    }

    #[test]
    fn a_switch_made_under_a_parent_is_cancelled_with_it() {
        let shutdown = CancellationToken::new();
        let stops = Stops::new(Some(shutdown.clone()));
        let token = stops.token("b", &run(0, false));
        shutdown.cancel();
        assert!(token.is_cancelled());
        assert!(stops.token("c", &run(0, false)).is_cancelled());
    }
}
