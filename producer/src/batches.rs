//! The web page's batches: a registry by id, each batch's stop switch, and each
//! batch's event log — every event it published, numbered from 1, kept so that a
//! Server-Sent Events client can resume after any event id without loss or repeat.
//!
//! Memory is bounded: a batch has at most [`crate::generator::MAX_BATCH_TASKS`] tasks
//! and each task publishes at most `2 × max attempts` events; at most
//! [`MAX_BATCHES`] batches are kept, and finished ones go after [`KEEP_FINISHED`].
//! Slots cannot be held for long either: a batch is paced to last at most
//! [`MAX_BATCH_DURATION`], and a full registry says when to come back.

use crate::runner::{Sink, State, Summary, TaskEvent};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use taskhooks_shared::Task;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Most batches kept, running or finished. Starting one more first drops the
/// oldest finished ones; when all are running, the new one is refused.
pub const MAX_BATCHES: usize = 64;
/// How long a finished batch can still be replayed (a tab reconnecting late).
pub(crate) const KEEP_FINISHED: Duration = Duration::from_secs(10 * 60);
/// Longest a page batch may be paced to last (its largest size × its pace), so
/// that [`MAX_BATCHES`] slow batches cannot lock the page out for days.
pub(crate) const MAX_BATCH_DURATION: Duration = Duration::from_secs(60 * 60);
/// Most events written to a client in one chunk.
const MAX_CHUNK_EVENTS: usize = 256;

/// Every batch this process knows, by id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    batches: Mutex<HashMap<String, Arc<Batch>>>,
}

/// Why a batch could not be registered.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "{MAX_BATCHES} batches are already running; stop one or try again in {} s, when the \
     first is due to finish",
    retry_after.as_secs()
)]
pub(crate) struct RegistryFull {
    /// When the first running batch is due to finish (at least a second).
    pub(crate) retry_after: Duration,
}

/// Refuses a batch of up to `max` tasks paced `pace` apart that would last
/// longer than [`MAX_BATCH_DURATION`]; the text names the limit.
pub(crate) fn check_duration(max: u32, pace: Duration) -> Result<(), String> {
    let longest = pace.saturating_mul(max);
    if longest <= MAX_BATCH_DURATION {
        return Ok(());
    }
    let limit_min = MAX_BATCH_DURATION.as_secs() / 60;
    Err(format!(
        "a batch of up to {max} tasks {} ms apart would last up to {} min, over the limit of \
         {limit_min} min per batch; lower max or pace_ms",
        pace.as_millis(),
        longest.as_secs().div_ceil(60),
    ))
}

impl Registry {
    /// Adds `batch`, first dropping finished batches that are old or in the way.
    pub(crate) fn insert(&self, batch: Arc<Batch>) -> Result<(), RegistryFull> {
        let mut batches = lock(&self.batches);
        let now = Instant::now();
        batches.retain(|_, b| b.finished_at().is_none_or(|at| now - at < KEEP_FINISHED));
        while batches.len() >= MAX_BATCHES {
            let oldest_finished = batches
                .iter()
                .filter_map(|(id, b)| Some((b.finished_at()?, id.clone())))
                .min();
            match oldest_finished {
                Some((_, id)) => batches.remove(&id),
                None => {
                    return Err(RegistryFull {
                        retry_after: first_due(batches.values(), now),
                    });
                }
            };
        }
        batches.insert(batch.id.clone(), batch);
        Ok(())
    }

    /// The batch with this id, if still kept.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Batch>> {
        lock(&self.batches).get(id).cloned()
    }
}

/// How long until the first of these running batches is due to finish, in whole
/// seconds rounded up, at least one (a batch late because of retries is due any
/// moment).
fn first_due<'a>(running: impl Iterator<Item = &'a Arc<Batch>>, now: Instant) -> Duration {
    let soonest = running
        .map(|b| b.due.saturating_duration_since(now))
        .min()
        .unwrap_or_default();
    let seconds = soonest.as_secs() + u64::from(soonest.subsec_nanos() > 0);
    Duration::from_secs(seconds.max(1))
}

/// One batch: its stop switch and its event log.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The batch id (the tasks' `batchid`).
    pub(crate) id: String,
    /// How many tasks it has.
    pub(crate) total: u64,
    /// Cancelled by the Stop button, or by shutdown.
    pub(crate) stop: CancellationToken,
    /// When its pacing says it will finish (retries may make it later).
    due: Instant,
    log: Mutex<Log>,
    /// The number of events logged, for subscribers to wait on.
    published: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct Log {
    frames: Vec<Bytes>,
    finished_at: Option<Instant>,
}

/// Events read from a batch's log.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The SSE frames, ready to write (empty when there was nothing new).
    pub(crate) bytes: Bytes,
    /// The id of the last event in it (or the one asked after, when empty).
    pub(crate) last_id: usize,
    /// Whether the log is complete and `last_id` is its end.
    pub(crate) at_end: bool,
}

impl Batch {
    /// A new, empty batch, due to finish in `expected`.
    pub(crate) fn new(
        id: String,
        total: u64,
        expected: Duration,
        stop: CancellationToken,
    ) -> Arc<Batch> {
        Arc::new(Batch {
            id,
            total,
            stop,
            due: Instant::now() + expected,
            log: Mutex::new(Log::default()),
            published: watch::Sender::new(0),
        })
    }

    /// Wakes up whenever an event is logged.
    pub(crate) fn watch(&self) -> watch::Receiver<usize> {
        self.published.subscribe()
    }

    /// When the batch finished, if it has.
    pub(crate) fn finished_at(&self) -> Option<Instant> {
        lock(&self.log).finished_at
    }

    /// The events after event id `after` (ids start at 1), a bounded number at a time.
    pub(crate) fn read_after(&self, after: usize) -> Chunk {
        let log = lock(&self.log);
        let start = after.min(log.frames.len());
        let end = (start + MAX_CHUNK_EVENTS).min(log.frames.len());
        let mut bytes = BytesMut::new();
        for frame in &log.frames[start..end] {
            bytes.extend_from_slice(frame);
        }
        Chunk {
            bytes: bytes.freeze(),
            last_id: end.max(after),
            at_end: log.finished_at.is_some() && end == log.frames.len(),
        }
    }

    fn append(&self, event: &str, data: &impl serde::Serialize, finished: bool) {
        let json = match serde_json::to_string(data) {
            Ok(json) => json,
            Err(err) => {
                tracing::error!(%err, batch = %self.id, "an event could not be serialised");
                return;
            }
        };
        let mut log = lock(&self.log);
        let id = log.frames.len() + 1;
        let frame = format!("id: {id}\nevent: {event}\ndata: {json}\n\n");
        log.frames.push(Bytes::from(frame));
        if finished {
            log.finished_at = Some(Instant::now());
        }
        self.published.send_replace(id);
    }
}

/// The `data` of an `event: task`.
#[derive(serde::Serialize)]
struct TaskData<'a> {
    index: u64,
    total: u64,
    state: State,
    attempt: u32,
    status: Option<u16>,
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_in_ms: Option<u128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<u128>,
    task: &'a Task,
}

/// The `data` of the final `event: done`.
#[derive(serde::Serialize)]
struct DoneData {
    delivered: u64,
    failed: u64,
    cancelled: u64,
    elapsed_ms: u128,
}

impl Sink for Batch {
    fn publish(&self, event: TaskEvent) {
        if event.state == State::Failed {
            tracing::warn!(batch = %self.id, index = event.index, error = event.error.as_deref(), "task failed");
        }
        let data = TaskData {
            index: event.index,
            total: event.total,
            state: event.state,
            attempt: event.attempt,
            status: event.status,
            error: event.error.as_deref(),
            retry_in_ms: event.retry_in.map(|d| d.as_millis()),
            elapsed_ms: event.elapsed.map(|d| d.as_millis()),
            task: &event.task,
        };
        self.append("task", &data, false);
    }

    fn finish(&self, summary: &Summary) {
        tracing::info!(batch = %self.id, delivered = summary.delivered, failed = summary.failed,
            cancelled = summary.cancelled, elapsed = ?summary.elapsed, "batch finished");
        let data = DoneData {
            delivered: summary.delivered,
            failed: summary.failed,
            cancelled: summary.cancelled,
            elapsed_ms: summary.elapsed.as_millis(),
        };
        self.append("done", &data, true);
    }
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves the data
/// consistent (a push, a field write), so a panic elsewhere cannot corrupt it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(id: &str) -> Arc<Batch> {
        let batch = Batch::new(id.to_owned(), 0, Duration::ZERO, CancellationToken::new());
        batch.finish(&Summary::default());
        batch
    }

    #[test]
    fn reading_after_an_id_returns_exactly_the_later_events() {
        let batch = Batch::new("b".into(), 0, Duration::ZERO, CancellationToken::new());
        batch.append("task", &1, false);
        batch.append("task", &2, false);
        let chunk = batch.read_after(1);
        assert_eq!(&chunk.bytes[..], b"id: 2\nevent: task\ndata: 2\n\n");
        assert_eq!((chunk.last_id, chunk.at_end), (2, false));
        batch.finish(&Summary::default());
        let rest = batch.read_after(2);
        assert!(rest.bytes.starts_with(b"id: 3\nevent: done\n"));
        assert!(rest.at_end);
        let beyond = batch.read_after(99);
        assert!(beyond.bytes.is_empty() && beyond.at_end && beyond.last_id == 99);
    }

    #[test]
    fn a_full_registry_drops_finished_batches_but_never_running_ones() {
        let registry = Registry::default();
        for i in 0..MAX_BATCHES {
            registry.insert(finished(&format!("f{i}"))).expect("room");
        }
        let running = || Batch::new("r".into(), 1, Duration::ZERO, CancellationToken::new());
        registry
            .insert(running())
            .expect("a finished batch makes room");
        assert!(registry.get("f0").is_none() && registry.get("r").is_some());
        let full = Registry::default();
        for i in 0..MAX_BATCHES {
            let due = Duration::from_secs(30 + i as u64);
            let batch = Batch::new(format!("r{i}"), 1, due, CancellationToken::new());
            full.insert(batch).expect("room");
        }
        let refused = full.insert(running()).expect_err("every batch is running");
        // The first is due in 30 s, less the microseconds the test took.
        assert_eq!(refused.retry_after, Duration::from_secs(30), "rounded up");
    }

    #[test]
    fn a_batch_paced_beyond_the_limit_is_refused_with_the_limit_named() {
        assert!(check_duration(10_000, Duration::from_millis(360)).is_ok());
        let err = check_duration(10_000, Duration::from_millis(361)).expect_err("too long");
        assert!(
            err.contains("61 min") && err.contains("limit of 60 min"),
            "{err}"
        );
        assert!(check_duration(60, Duration::from_secs(60)).is_ok());
        assert!(check_duration(61, Duration::from_secs(60)).is_err());
    }
}
