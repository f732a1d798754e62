//! One batch of the web page, in this process's memory: each task's delivery
//! record, its stop switch, and its event log — every event it published,
//! numbered from 1, kept so that a Server-Sent Events client can resume after
//! any event id without loss or repeat.
//!
//! A redelivery reopens the log: the chosen tasks go back to `queued`, their new
//! events follow the earlier `done`, and a new `done` ends them.

use crate::deliveries::{
    BatchSummary, Counts, RedeliverRequest, Refusal, TaskData, TaskRecord, TaskView,
};
use crate::outcome::now_millis;
use crate::runner::{Queued, Sink, State, Summary, TaskEvent};
use bytes::{Bytes, BytesMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use taskhooks_shared::Task;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Most events written to a client in one chunk.
const MAX_CHUNK_EVENTS: usize = 256;

/// One batch: its tasks' records, its stop switch and its event log.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The batch id (the tasks' `batchid`).
    pub(crate) id: String,
    /// How many tasks it has.
    pub(crate) total: u64,
    /// When it was made, Unix milliseconds.
    pub(crate) created_at: u64,
    /// Time between the starts of two deliveries, redeliveries included.
    pub(crate) pace: Duration,
    /// When its pacing says it will finish (retries may make it later).
    pub(crate) due: Instant,
    /// Cancelled by the Stop button or by shutdown; a redelivery after a stop
    /// gets a new one.
    stop: Mutex<CancellationToken>,
    log: Mutex<Log>,
    /// The number of events logged, for subscribers to wait on.
    published: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct Log {
    tasks: Vec<TaskRecord>,
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
    /// A new batch of `tasks`, none sent yet, paced `pace` apart.
    pub(crate) fn new(
        id: String,
        tasks: impl IntoIterator<Item = Task>,
        pace: Duration,
        stop: CancellationToken,
    ) -> Arc<Batch> {
        let tasks: Vec<TaskRecord> = tasks.into_iter().map(TaskRecord::new).collect();
        let total = tasks.len() as u64;
        // The first task starts at once, each next one a pace later.
        let paces = u32::try_from(total.saturating_sub(1)).unwrap_or(u32::MAX);
        Arc::new(Batch {
            id,
            total,
            created_at: now_millis(),
            pace,
            due: Instant::now() + pace.saturating_mul(paces),
            stop: Mutex::new(stop),
            log: Mutex::new(Log {
                tasks,
                ..Log::default()
            }),
            published: watch::Sender::new(0),
        })
    }

    /// Every task, to be delivered for the first time.
    pub(crate) fn all_queued(&self) -> Vec<Queued> {
        let log = lock(&self.log);
        (1..).zip(&log.tasks).map(|(i, t)| t.queued(i)).collect()
    }

    /// The token that stops the batch's deliveries.
    pub(crate) fn stop_token(&self) -> CancellationToken {
        lock(&self.stop).clone()
    }

    /// Stops the batch: nothing more is sent.
    pub(crate) fn stop(&self) {
        lock(&self.stop).cancel();
    }

    /// Wakes up whenever an event is logged.
    pub(crate) fn watch(&self) -> watch::Receiver<usize> {
        self.published.subscribe()
    }

    /// When the batch finished, if it has.
    pub(crate) fn finished_at(&self) -> Option<Instant> {
        lock(&self.log).finished_at
    }

    /// The batch with its counts.
    pub(crate) fn summary(&self) -> BatchSummary {
        let counts = Counts::of(lock(&self.log).tasks.iter().map(|t| t.state));
        BatchSummary::new(&self.id, self.total, self.created_at, counts)
    }

    /// Task `index` (from 1) with its attempts; `None` out of range.
    pub(crate) fn task(&self, index: u64) -> Option<TaskView> {
        let log = lock(&self.log);
        let record = log
            .tasks
            .get(usize::try_from(index).ok()?.checked_sub(1)?)?;
        Some(TaskView::new(&self.id, index, record))
    }

    /// Puts the tasks `request` chooses back in the queue and reopens the log;
    /// the caller delivers them, with the token it gets (a new one after a stop).
    pub(crate) fn reopen(
        &self,
        request: &RedeliverRequest,
        shutdown: &CancellationToken,
    ) -> Result<(Vec<Queued>, CancellationToken), Refusal> {
        let mut log = lock(&self.log);
        let states: Vec<State> = log.tasks.iter().map(|t| t.state).collect();
        let chosen = request.choose(&states)?;
        let mut queued = Vec::with_capacity(chosen.len());
        for &index in &chosen {
            let record = &mut log.tasks[(index - 1) as usize];
            record.state = State::Queued;
            queued.push(record.queued(index));
        }
        if !chosen.is_empty() {
            log.finished_at = None;
        }
        let mut stop = lock(&self.stop);
        if stop.is_cancelled() {
            *stop = shutdown.child_token();
        }
        Ok((queued, stop.clone()))
    }

    /// How many events the batch has logged so far: the id of the last (0: none).
    pub(crate) fn events_so_far(&self) -> usize {
        lock(&self.log).frames.len()
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

    fn append(&self, log: &mut Log, event: &str, data: &impl serde::Serialize) {
        let json = match serde_json::to_string(data) {
            Ok(json) => json,
            Err(err) => {
                tracing::error!(%err, batch = %self.id, "an event could not be serialised");
                return;
            }
        };
        let id = log.frames.len() + 1;
        let frame = format!("id: {id}\nevent: {event}\ndata: {json}\n\n");
        log.frames.push(Bytes::from(frame));
        self.published.send_replace(id);
    }
}

/// The `data` of an `event: done`: the whole batch's final counts.
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
        let data = TaskData::of(&event);
        let mut log = lock(&self.log);
        let slot = usize::try_from(event.index)
            .ok()
            .and_then(|i| i.checked_sub(1));
        if let Some(record) = slot.and_then(|i| log.tasks.get_mut(i)) {
            record.apply(&event);
        }
        self.append(&mut log, "task", &data);
    }

    /// Ends the log with `done` once no task of the batch is left to run: a
    /// redelivery started meanwhile writes its own `done` when it ends.
    fn finish(&self, summary: &Summary) {
        let mut log = lock(&self.log);
        let counts = Counts::of(log.tasks.iter().map(|t| t.state));
        if counts.running() {
            return;
        }
        tracing::info!(batch = %self.id, delivered = counts.delivered, failed = counts.failed,
            cancelled = counts.cancelled, elapsed = ?summary.elapsed, "batch finished");
        let data = DoneData {
            delivered: counts.delivered,
            failed: counts.failed,
            cancelled: counts.cancelled,
            elapsed_ms: summary.elapsed.as_millis(),
        };
        self.append(&mut log, "done", &data);
        log.finished_at = Some(Instant::now());
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

    fn empty() -> Arc<Batch> {
        Batch::new("b".into(), [], Duration::ZERO, CancellationToken::new())
    }

    #[test]
    fn reading_after_an_id_returns_exactly_the_later_events() {
        let batch = empty();
        batch.append(&mut lock(&batch.log), "task", &1);
        batch.append(&mut lock(&batch.log), "task", &2);
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
}
