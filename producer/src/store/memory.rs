//! The store in this process's memory (the default, without `REDIS_URL`): the
//! batches by id, each with its tasks' records, counts, pace, stop flag, event
//! log (numbered from 1) and queue of tasks waiting to be sent. A task is handed
//! out only once its batch's paced start is due, the batch due soonest first: a
//! slowly paced batch never holds up another.
//!
//! Memory is bounded: a batch has at most [`crate::generator::MAX_BATCH_TASKS`]
//! tasks and each task logs at most `2 × max attempts` events; at most
//! [`MAX_BATCHES`] batches are kept, and finished ones go after
//! [`KEEP_FINISHED`]. Slots cannot be held for long either: a batch is paced to
//! last at most [`MAX_BATCH_DURATION`], and a full store says when to come back.
//! The batches end with the process: a shutdown stops them all.

use super::{
    CreateError, Entry, EventId, EventLog, Limit, Logged, Position, Settings, Stops, Store,
    StoreError, whole_number,
};
use crate::delivery::attempt::now_millis;
use crate::delivery::task::State;
use crate::generator::BatchTasks;
use crate::pace::next_start;
use crate::record::{
    BatchSummary, Counts, DoneData, RedeliverRequest, Refusal, TaskRecord, index_of,
};
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use taskhooks_shared::sync::lock;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Most batches kept, running or finished. Starting one more first drops the
/// oldest finished ones; when all are running, the new one is refused.
pub const MAX_BATCHES: usize = 64;
/// How long a finished batch can still be replayed (a tab reconnecting late).
pub(crate) const KEEP_FINISHED: Duration = Duration::from_secs(10 * 60);
/// Longest a page batch may be paced to last (its largest size × its pace), so
/// that [`MAX_BATCHES`] slow batches cannot lock the page out for days.
pub(crate) const MAX_BATCH_DURATION: Duration = Duration::from_secs(60 * 60);
/// Most events handed to a client in one read.
const MAX_READ_EVENTS: usize = 256;
/// How long `next` waits when no task is queued before it says so.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// The batches of this process.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    batches: Mutex<HashMap<String, Arc<Batch>>>,
    /// Woken when a task is queued or a batch stopped.
    queued: Notify,
    /// How many tasks were handed out, to stamp the batch served last.
    turns: AtomicU64,
    stops: Stops,
}

#[derive(Debug)]
struct Batch {
    id: String,
    total: u64,
    /// Unix milliseconds.
    created_at: u64,
    pace: Duration,
    /// When its pacing says it will finish (retries may make it later).
    due: Instant,
    state: Mutex<BatchState>,
    /// The number of events logged, for readers to wait on.
    published: watch::Sender<usize>,
}

#[derive(Debug)]
struct BatchState {
    tasks: Vec<TaskRecord>,
    counts: Counts,
    log: Vec<(bool, String)>,
    /// The tasks waiting to be sent, by index, in order.
    queue: VecDeque<u64>,
    stopped: bool,
    /// When its next task may start (`None`: at once).
    next_start: Option<Instant>,
    /// When a task of it was last handed out (the store's turn then).
    served: u64,
    /// 0, and one more at each redelivery (see [`Settings::run`]).
    run: u64,
    /// When its last run started (creation or redelivery), Unix milliseconds.
    run_started_at: u64,
    finished_at: Option<Instant>,
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

impl MemoryStore {
    /// An empty store whose batches are stopped when `shutdown` is cancelled.
    pub(crate) fn new(shutdown: &CancellationToken) -> MemoryStore {
        MemoryStore {
            batches: Mutex::new(HashMap::new()),
            queued: Notify::new(),
            turns: AtomicU64::new(0),
            stops: Stops::new(Some(shutdown.clone())),
        }
    }

    fn get(&self, id: &str) -> Option<Arc<Batch>> {
        lock(&self.batches).get(id).cloned()
    }

    /// Adds `batch`, first dropping finished batches that are old or in the way.
    fn insert(&self, batch: Arc<Batch>) -> Result<(), CreateError> {
        let mut batches = lock(&self.batches);
        let now = Instant::now();
        batches.retain(|_, b| b.finished_at().is_none_or(|at| now - at < KEEP_FINISHED));
        while batches.len() >= MAX_BATCHES {
            let oldest_finished = batches
                .iter()
                .filter_map(|(id, b)| Some((b.finished_at()?, id.clone())))
                .min();
            let Some((_, id)) = oldest_finished else {
                return Err(CreateError::TooManyBatches {
                    max: MAX_BATCHES,
                    retry_after: first_due(batches.values(), now),
                });
            };
            batches.remove(&id);
        }
        batches.insert(batch.id.clone(), batch);
        Ok(())
    }

    /// The next task whose start is due, its start reserved: of the batches due,
    /// the one served longest ago, so that batches take turns; else how long
    /// until the first is due (`None`: no task is queued). `draining`: every
    /// task is due, to end as cancelled.
    fn take_due(&self, now: Instant, draining: bool) -> Result<Entry, Option<Duration>> {
        let batches: Vec<Arc<Batch>> = lock(&self.batches).values().cloned().collect();
        let mut turn: Option<(u64, Arc<Batch>)> = None;
        let mut soonest: Option<Duration> = None;
        for batch in batches {
            let state = lock(&batch.state);
            if state.queue.is_empty() {
                continue;
            }
            let at_once = draining || state.stopped;
            let due = if at_once {
                now
            } else {
                state.next_start.unwrap_or(now)
            };
            let served = state.served;
            drop(state);
            if due > now {
                soonest = Some(soonest.map_or(due - now, |s| s.min(due - now)));
            } else if turn.as_ref().is_none_or(|(s, _)| served < *s) {
                turn = Some((served, batch));
            }
        }
        let Some((_, batch)) = turn else {
            return Err(soonest);
        };
        let mut state = lock(&batch.state);
        let Some(index) = state.queue.pop_front() else {
            return Err(Some(Duration::ZERO)); // taken meanwhile: look again
        };
        state.served = self.turns.fetch_add(1, Ordering::Relaxed) + 1;
        // A task handed out at once, to be cancelled, takes no paced start.
        if !(draining || state.stopped) {
            state.next_start = next_start(state.next_start, now, batch.pace);
        }
        Ok(Entry {
            id: String::new(),
            batch: batch.id.clone(),
            index,
        })
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

impl Batch {
    fn new(tasks: BatchTasks, pace: Duration) -> Batch {
        let id = tasks.batchid.clone();
        let tasks: Vec<TaskRecord> = tasks.map(TaskRecord::new).collect();
        let total = tasks.len() as u64;
        // The first task starts at once, each next one a pace later.
        let paces = u32::try_from(total.saturating_sub(1)).unwrap_or(u32::MAX);
        let now = now_millis();
        Batch {
            id,
            total,
            created_at: now,
            pace,
            due: Instant::now() + pace.saturating_mul(paces),
            state: Mutex::new(BatchState {
                counts: Counts::of(tasks.iter().map(|t| t.state)),
                tasks,
                log: Vec::new(),
                queue: VecDeque::new(),
                stopped: false,
                next_start: None,
                served: 0,
                run: 0,
                run_started_at: now,
                finished_at: None,
            }),
            published: watch::Sender::new(0),
        }
    }

    fn finished_at(&self) -> Option<Instant> {
        lock(&self.state).finished_at
    }

    fn summary(&self) -> BatchSummary {
        let counts = lock(&self.state).counts;
        BatchSummary::new(&self.id, self.total, self.created_at, counts)
    }

    /// Task `index` (from 1) and its slot; `None` out of range.
    fn slot(index: u64) -> Option<usize> {
        usize::try_from(index).ok()?.checked_sub(1)
    }

    /// The events after `after`, at most [`MAX_READ_EVENTS`].
    fn events_after(&self, after: usize) -> Vec<Logged> {
        let state = lock(&self.state);
        let start = after.min(state.log.len());
        let end = (start + MAX_READ_EVENTS).min(state.log.len());
        (start..end)
            .map(|i| Logged {
                id: (i + 1).to_string(),
                done: state.log[i].0,
                data: state.log[i].1.clone(),
            })
            .collect()
    }
}

impl BatchState {
    fn append(&mut self, done: bool, data: String, published: &watch::Sender<usize>) {
        self.log.push((done, data));
        published.send_replace(self.log.len());
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn durable(&self) -> bool {
        false
    }

    fn stops(&self) -> &Stops {
        &self.stops
    }

    async fn create(&self, tasks: BatchTasks, pace: Duration) -> Result<u64, CreateError> {
        let batch = Arc::new(Batch::new(tasks, pace));
        let total = batch.total;
        lock(&batch.state).queue.extend(1..=total);
        self.insert(batch)?;
        self.queued.notify_one();
        Ok(total)
    }

    async fn list(&self) -> Result<Vec<BatchSummary>, StoreError> {
        let mut batches: Vec<Arc<Batch>> = lock(&self.batches).values().cloned().collect();
        batches.sort_by_key(|b| std::cmp::Reverse((b.created_at, b.id.clone())));
        Ok(batches.iter().map(|b| b.summary()).collect())
    }

    async fn summary(&self, id: &str) -> Result<Option<BatchSummary>, StoreError> {
        Ok(self.get(id).map(|b| b.summary()))
    }

    async fn record(&self, id: &str, index: u64) -> Result<Option<TaskRecord>, StoreError> {
        let Some(batch) = self.get(id) else {
            return Ok(None);
        };
        let state = lock(&batch.state);
        Ok(Batch::slot(index).and_then(|i| state.tasks.get(i)).cloned())
    }

    async fn redeliver(
        &self,
        id: &str,
        request: &RedeliverRequest,
    ) -> Result<Option<Result<Vec<u64>, Refusal>>, StoreError> {
        let Some(batch) = self.get(id) else {
            return Ok(None);
        };
        let mut state = lock(&batch.state);
        let states: Vec<State> = state.tasks.iter().map(|t| t.state).collect();
        let chosen = match request.choose(&states) {
            Ok(chosen) => chosen,
            Err(refusal) => return Ok(Some(Err(refusal))),
        };
        if chosen.is_empty() {
            return Ok(Some(Ok(chosen)));
        }
        for &task in &chosen {
            let Some(slot) = index_of(task).and_then(Batch::slot) else {
                continue; // unreachable: `choose` checked the range
            };
            let old = state.tasks[slot].state;
            state.counts.moved(old, State::Queued);
            state.tasks[slot].state = State::Queued;
        }
        state.stopped = false;
        state.run += 1;
        state.next_start = None;
        state.finished_at = None;
        state.run_started_at = now_millis();
        state
            .queue
            .extend(chosen.iter().filter_map(|&task| index_of(task)));
        drop(state);
        self.queued.notify_one();
        Ok(Some(Ok(chosen)))
    }

    async fn stop(&self, id: &str) -> Result<bool, StoreError> {
        let Some(batch) = self.get(id) else {
            return Ok(false);
        };
        lock(&batch.state).stopped = true;
        self.stops.cancel(id);
        Ok(true)
    }

    async fn next(&self, shutdown: &CancellationToken) -> Result<Option<Entry>, StoreError> {
        loop {
            // A batch kept here ends with the process: after a shutdown the
            // queues are still emptied, each task ending as cancelled.
            let draining = shutdown.is_cancelled();
            let wait = match self.take_due(Instant::now(), draining) {
                Ok(entry) => return Ok(Some(entry)),
                Err(None) if draining => return Ok(None),
                Err(wait) => wait,
            };
            let due = tokio::time::sleep(wait.unwrap_or(IDLE_WAIT));
            tokio::select! {
                () = self.queued.notified() => {}
                () = shutdown.cancelled() => {}
                () = due => {}
            }
        }
    }

    /// An unfinished task goes back to the front of its batch's queue.
    async fn release(&self, entry: &Entry, finished: bool) {
        if finished {
            return;
        }
        if let Some(batch) = self.get(&entry.batch) {
            lock(&batch.state).queue.push_front(entry.index);
            self.queued.notify_one();
        }
    }

    async fn take_queued(&self, id: &str) -> Vec<Entry> {
        let Some(batch) = self.get(id) else {
            return Vec::new();
        };
        let queue = std::mem::take(&mut lock(&batch.state).queue);
        queue
            .into_iter()
            .map(|index| Entry {
                id: String::new(),
                batch: id.to_owned(),
                index,
            })
            .collect()
    }

    fn hands_out_when_due(&self) -> bool {
        true
    }

    async fn settings(&self, id: &str) -> Result<Option<Settings>, StoreError> {
        Ok(self.get(id).map(|batch| {
            let state = lock(&batch.state);
            Settings {
                total: batch.total,
                pace_ms: u64::try_from(batch.pace.as_millis()).unwrap_or(u64::MAX),
                stopped: state.stopped,
                run: state.run,
            }
        }))
    }

    /// Now: a task is handed out only once its start is due (see `take_due`).
    async fn reserve_start(&self, _id: &str, _pace_ms: u64) -> Result<Duration, StoreError> {
        Ok(Duration::ZERO)
    }

    async fn apply(
        &self,
        id: &str,
        index: u64,
        record: &TaskRecord,
        data: &str,
    ) -> Result<bool, StoreError> {
        let Some(batch) = self.get(id) else {
            return Ok(false);
        };
        let mut state = lock(&batch.state);
        let Some(slot) = Batch::slot(index).filter(|&i| i < state.tasks.len()) else {
            return Ok(false);
        };
        let old = state.tasks[slot].state;
        state.tasks[slot] = record.clone();
        state.append(false, data.to_owned(), &batch.published);
        if !state.counts.moved(old, record.state) || !record.state.is_final() {
            return Ok(true);
        }
        if state.counts.running() {
            return Ok(true);
        }
        let elapsed = now_millis().saturating_sub(state.run_started_at);
        let done = DoneData::of(&state.counts, elapsed);
        // unwrap: four whole numbers always serialise.
        let json = serde_json::to_string(&done).expect("a done serialises");
        tracing::info!(batch = %id, delivered = done.delivered, failed = done.failed,
            cancelled = done.cancelled, elapsed_ms = elapsed, "batch finished");
        state.append(true, json, &batch.published);
        state.finished_at = Some(Instant::now());
        Ok(true)
    }

    fn parse_event_id(&self, text: &str) -> Option<EventId> {
        whole_number(text).map(|n| (n, 0))
    }

    async fn position(&self, id: &str) -> Result<Option<Position>, StoreError> {
        let Some(batch) = self.get(id) else {
            return Ok(None);
        };
        let state = lock(&batch.state);
        Ok(Some(Position {
            last: (state.log.len() as u64, 0),
            last_is_done: state.log.last().is_some_and(|(done, _)| *done),
            running: state.counts.running(),
            limit: Limit::LastEvent,
        }))
    }

    fn event_log(&self, id: &str) -> Option<Box<dyn EventLog>> {
        let batch = self.get(id)?;
        let published = batch.published.subscribe();
        Some(Box::new(MemoryLog { batch, published }))
    }
}

/// One client's reader of a batch's log; it keeps the batch readable even once
/// dropped from the store.
struct MemoryLog {
    batch: Arc<Batch>,
    published: watch::Receiver<usize>,
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn read_after(
        &mut self,
        after: &str,
        block: Duration,
    ) -> Result<Vec<Logged>, StoreError> {
        let after: usize = whole_number(after).unwrap_or(0);
        // Mark the log as seen *before* reading it, so an event logged right
        // after the read still wakes us up.
        self.published.borrow_and_update();
        let events = self.batch.events_after(after);
        if !events.is_empty() {
            return Ok(events);
        }
        if block.is_zero() {
            return Ok(events);
        }
        if let Ok(Ok(())) = tokio::time::timeout(block, self.published.changed()).await {
            return Ok(self.batch.events_after(after));
        }
        Ok(Vec::new())
    }

    fn describe(&self) -> String {
        format!("batch {}", self.batch.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::Generator;

    fn store() -> MemoryStore {
        MemoryStore::new(&CancellationToken::new())
    }

    async fn start(store: &MemoryStore, tasks: u64, pace: Duration) -> String {
        let tasks = Generator::new(None).batch_of(tasks);
        let id = tasks.batchid.clone();
        store.create(tasks, pace).await.expect("room");
        id
    }

    /// Ends every task of batch `id` as delivered.
    async fn finish(store: &MemoryStore, id: &str) {
        let total = store.settings(id).await.expect("read").expect("kept").total;
        for index in 1..=total {
            let mut record = store
                .record(id, index)
                .await
                .expect("read")
                .expect("a task");
            record.state = State::Delivered;
            store
                .apply(id, index, &record, "{}")
                .await
                .expect("applied");
        }
    }

    #[tokio::test]
    async fn a_full_store_drops_finished_batches_but_never_running_ones() {
        let store = store();
        let mut finished = Vec::new();
        for _ in 0..MAX_BATCHES {
            let id = start(&store, 1, Duration::ZERO).await;
            finish(&store, &id).await;
            finished.push(id);
        }
        let running = start(&store, 2, Duration::ZERO).await;
        assert!(store.get(&running).is_some(), "a finished batch made room");
        let kept = finished.iter().filter(|id| store.get(id).is_some()).count();
        assert_eq!(kept, MAX_BATCHES - 1);

        let full = super::MemoryStore::new(&CancellationToken::new());
        for i in 0..MAX_BATCHES {
            start(&full, 2, Duration::from_secs(30 + i as u64)).await;
        }
        let tasks = Generator::new(Some(1)).batch_of(1);
        let refused = full.create(tasks, Duration::ZERO).await;
        let Err(CreateError::TooManyBatches { retry_after, .. }) = refused else {
            panic!("every batch is running: {refused:?}");
        };
        // The first is due in 30 s, less the microseconds the test took.
        assert_eq!(retry_after, Duration::from_secs(30), "rounded up");
    }

    #[tokio::test]
    async fn the_last_task_to_end_logs_the_batchs_done_once() {
        let store = store();
        let id = start(&store, 2, Duration::ZERO).await;
        finish(&store, &id).await;
        let mut log = store.event_log(&id).expect("kept");
        let events = log.read_after("0", Duration::ZERO).await.expect("read");
        let done: Vec<&Logged> = events.iter().filter(|e| e.done).collect();
        assert_eq!(events.len(), 3);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].id, "3");
        let data: DoneData = serde_json::from_str(&done[0].data).expect("a done");
        assert_eq!((data.delivered, data.failed, data.cancelled), (2, 0, 0));
        let position = store.position(&id).await.expect("read").expect("kept");
        assert_eq!(
            (position.last, position.last_is_done, position.running),
            ((3, 0), true, false)
        );
        let rest = log.read_after("3", Duration::ZERO).await.expect("read");
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_task_is_handed_out_once_its_batch_is_due_so_a_slow_batch_holds_up_none() {
        let store = store();
        let slow = start(&store, 3, Duration::from_secs(10)).await;
        let fast = start(&store, 2, Duration::ZERO).await;
        let now = Instant::now();

        let mut taken: Vec<(String, u64)> = (0..3)
            .map(|_| store.take_due(now, false).expect("due"))
            .map(|entry| (entry.batch, entry.index))
            .collect();
        let not_yet = store
            .take_due(now, false)
            .expect_err("the slow batch's next is not due");
        let drained = store
            .take_due(now, true)
            .expect("every task is due when draining");

        taken.sort();
        let mut expected = vec![(slow.clone(), 1), (fast.clone(), 1), (fast, 2)];
        expected.sort();
        assert_eq!(taken, expected);
        assert_eq!(not_yet, Some(Duration::from_secs(10)));
        assert_eq!((drained.batch, drained.index), (slow, 2));
    }

    #[tokio::test]
    async fn batches_due_at_once_take_turns_so_an_older_one_holds_up_no_newer_one() {
        let store = store();
        let older = start(&store, 100, Duration::ZERO).await;
        store.take_due(Instant::now(), false).expect("due");
        let newer = start(&store, 2, Duration::ZERO).await;

        let next: Vec<String> = (0..4)
            .map(|_| store.take_due(Instant::now(), false).expect("due").batch)
            .collect();

        assert_eq!(next, [newer.clone(), older.clone(), newer, older]);
    }

    #[tokio::test]
    async fn a_stopped_batchs_tasks_are_taken_at_once_and_take_no_paced_start() {
        let store = store();
        let id = start(&store, 4, Duration::from_secs(10)).await;
        let now = Instant::now();
        store
            .take_due(now, false)
            .expect("the first is due at once");
        store.stop(&id).await.expect("stopped");

        let rest = store.take_queued(&id).await;

        let indexes: Vec<u64> = rest.iter().map(|e| e.index).collect();
        assert_eq!(indexes, [2, 3, 4]);
        assert_eq!(store.take_due(now, false).expect_err("none left"), None);
        let at_once = (State::Cancelled, 0); // task 0 is the first, index 1
        for index in 1..=4 {
            let mut record = store
                .record(&id, index)
                .await
                .expect("read")
                .expect("a task");
            record.state = at_once.0;
            store
                .apply(&id, index, &record, "{}")
                .await
                .expect("applied");
        }
        let request = RedeliverRequest {
            tasks: Some(vec![at_once.1]),
        };
        store
            .redeliver(&id, &request)
            .await
            .expect("read")
            .expect("kept")
            .expect("chosen");
        let again = store
            .take_due(now, false)
            .expect("due at once after a redelivery");
        assert_eq!(again.index, 1);
        let settings = store.settings(&id).await.expect("read").expect("kept");
        assert_eq!((settings.stopped, settings.run), (false, 1));
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
