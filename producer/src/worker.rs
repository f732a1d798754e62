//! The one delivery pipeline of the producer's batches, whichever store keeps
//! them: it takes each queued task from the [`Store`], waits for its batch's
//! paced start and a delivery slot, delivers it
//! ([`crate::delivery::task::deliver_task`]) and stores every step back in order
//! (a [`Recorder`]); once the final state is stored the task leaves the queue.
//!
//! A stop cancels the batch's tasks in this process (and, with a shared store,
//! in every producer): those not yet sent end as `cancelled`. A shutdown stops
//! taking tasks; with a durable store, a task not yet final stays queued for
//! another producer (or this one, restarted), otherwise it ends as `cancelled`.

use crate::delivery::Deliverer;
use crate::delivery::task::{
    Queued, Sink, State, TaskEvent, cancelled_before_sending, deliver_task,
};
use crate::record::{TaskData, TaskRecord, task_id};
use crate::store::{Entry, Store, StoreError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskhooks_shared::sync::lock;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the pipeline waits after the store failed before asking again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Tasks this process holds (taken, not yet final) per delivery slot, from a
/// store that hands tasks out before their paced start: such a task waits for its
/// start without a slot, so several batches taken at once share the slots, while
/// a producer never takes more of a shared queue than it can soon deliver.
const HELD_PER_SLOT: usize = 4;

/// The pipeline and what it shares.
#[derive(Debug)]
pub(crate) struct Pipeline {
    store: Arc<dyn Store>,
    deliverer: Arc<Deliverer>,
    /// Bounds deliveries in flight in this process.
    in_flight: Arc<Semaphore>,
    /// Bounds the tasks this process holds, waiting or in flight.
    held: Arc<Semaphore>,
    /// Cancelled at shutdown: no more tasks are taken.
    shutdown: CancellationToken,
    /// The pipeline and every delivery, so shutdown can wait for them.
    tracker: TaskTracker,
}

impl Pipeline {
    /// Starts taking tasks from `store`, at most `max_in_flight` delivered at once.
    pub(crate) fn spawn(
        store: Arc<dyn Store>,
        deliverer: Arc<Deliverer>,
        max_in_flight: usize,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Arc<Pipeline> {
        let held = match store.hands_out_when_due() {
            true => max_in_flight,
            false => max_in_flight * HELD_PER_SLOT,
        };
        let pipeline = Arc::new(Pipeline {
            store,
            deliverer,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            held: Arc::new(Semaphore::new(held)),
            shutdown,
            tracker,
        });
        pipeline.tracker.spawn(pipeline.clone().take_loop());
        pipeline
    }

    /// Ends at once the tasks of stopped batch `id` that the store can hand over
    /// (see [`Store::take_queued`]), as `cancelled`.
    pub(crate) async fn cancel_queued(self: &Arc<Self>, id: &str) {
        for entry in self.store.take_queued(id).await {
            self.start(entry, None);
        }
    }

    /// Takes tasks while this process holds fewer than its bound, until
    /// shutdown; then a store whose batches end with the process has the tasks
    /// it still queues ended as `cancelled`.
    async fn take_loop(self: Arc<Self>) {
        loop {
            let permit = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                permit = self.held.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            match self.store.next(&self.shutdown).await {
                Ok(Some(entry)) => self.start(entry, Some(permit)),
                Ok(None) if self.shutdown.is_cancelled() => break,
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(%err, "taking the next task failed; trying again");
                    tokio::select! {
                        () = self.shutdown.cancelled() => break,
                        () = tokio::time::sleep(RETRY_DELAY) => {}
                    }
                }
            }
        }
        if self.store.durable() {
            return;
        }
        while let Ok(Some(entry)) = self.store.next(&self.shutdown).await {
            self.start(entry, None);
        }
    }

    /// Delivers `entry` in the background, holding `permit` (of `held`) if given.
    fn start(self: &Arc<Self>, entry: Entry, permit: Option<OwnedSemaphorePermit>) {
        let pipeline = self.clone();
        self.tracker.spawn(async move {
            let done = pipeline.process(&entry).await;
            drop(permit);
            let finished = match done {
                Ok(finished) => finished,
                Err(err) => {
                    tracing::warn!(%err, batch = %entry.batch, task = task_id(entry.index),
                        "a task's delivery could not be stored; another attempt will follow");
                    false
                }
            };
            pipeline.store.release(&entry, finished).await;
        });
    }

    /// Delivers one entry's task; `true` once it reached a final state and that
    /// was stored (or there is nothing to do), `false` to leave it queued. A
    /// delivery slot is taken only once the task's start is due.
    async fn process(&self, entry: &Entry) -> Result<bool, StoreError> {
        let Some(settings) = self.store.settings(&entry.batch).await? else {
            return Ok(true); // the batch expired
        };
        let Some(record) = self.store.record(&entry.batch, entry.index).await? else {
            return Ok(true);
        };
        if record.state.is_final() {
            return Ok(true); // done before a crash, not yet acknowledged
        }
        let stop = self.store.stops().token(&entry.batch, &settings);
        let queued = record.queued(entry.index);
        let (sink, written) = Recorder::start(
            self.store.clone(),
            entry.batch.clone(),
            record,
            stop.clone(),
        );
        if stop.is_cancelled() {
            return Ok(self
                .cancel_unsent(&sink, settings.total, queued, written)
                .await);
        }
        let wait = self
            .store
            .reserve_start(&entry.batch, settings.pace_ms)
            .await?;
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => {
                return Ok(self.cancel_unsent(&sink, settings.total, queued, written).await);
            }
            () = self.shutdown.cancelled() => return Ok(false),
            permit = self.slot_after(wait) => permit,
        };
        let Some(permit) = permit else {
            return Ok(false); // the semaphore is closed: shutting down
        };
        // The delivery's own token: cancelled by shutdown or the batch's stop.
        let job_stop = self.shutdown.child_token();
        let _ends_the_link = job_stop.clone().drop_guard();
        tokio::spawn(link(stop.clone(), job_stop.clone()));
        let (total, deliverer) = (settings.total, &self.deliverer);
        deliver_task(queued, total, &*sink, deliverer, &job_stop, permit).await;
        Ok(sink.close(written).await)
    }

    /// Ends a task its batch's stop caught before it was sent; whether that was stored.
    async fn cancel_unsent(
        &self,
        sink: &Recorder,
        total: u64,
        queued: Queued,
        written: oneshot::Receiver<bool>,
    ) -> bool {
        self.deliverer.metrics().cancelled_before_sending(1);
        sink.publish(cancelled_before_sending(total, queued));
        sink.close(written).await
    }

    /// A delivery slot, once `wait` is over.
    async fn slot_after(&self, wait: Duration) -> Option<OwnedSemaphorePermit> {
        tokio::time::sleep(wait).await;
        self.in_flight.clone().acquire_owned().await.ok()
    }
}

/// Cancels `job` when `batch` is stopped, until `job` is over.
async fn link(batch: Arc<CancellationToken>, job: CancellationToken) {
    tokio::select! {
        () = batch.cancelled() => job.cancel(),
        () = job.cancelled() => {}
    }
}

/// A task's [`Sink`] that stores each step, in order, from a task of its own
/// (a sink is told synchronously).
struct Recorder {
    events: Mutex<Option<mpsc::UnboundedSender<TaskEvent>>>,
    stop: Arc<CancellationToken>,
}

impl Recorder {
    /// A recorder for `record` of `batch`; the receiver hears whether the
    /// task's final state was stored.
    fn start(
        store: Arc<dyn Store>,
        batch: String,
        record: TaskRecord,
        stop: Arc<CancellationToken>,
    ) -> (Arc<Recorder>, oneshot::Receiver<bool>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (written_tx, written) = oneshot::channel();
        tokio::spawn(write_in_order(store, batch, record, rx, written_tx));
        let recorder = Recorder {
            events: Mutex::new(Some(tx)),
            stop,
        };
        (Arc::new(recorder), written)
    }

    /// Lets the writer finish; whether the final state was stored.
    async fn close(&self, written: oneshot::Receiver<bool>) -> bool {
        lock(&self.events).take();
        written.await.unwrap_or(false)
    }
}

impl Sink for Recorder {
    fn publish(&self, event: TaskEvent) {
        // Cancelled by shutdown, not by a stop: not an outcome. The task stays
        // queued for another producer (or this one, restarted).
        if event.state == State::Cancelled && !self.stop.is_cancelled() {
            return;
        }
        if let Some(events) = lock(&self.events).as_ref() {
            let _ = events.send(event);
        }
    }
}

/// Stores each event of one task in order; tells `written` whether a final
/// state was stored.
async fn write_in_order(
    store: Arc<dyn Store>,
    batch: String,
    mut record: TaskRecord,
    mut events: mpsc::UnboundedReceiver<TaskEvent>,
    written: oneshot::Sender<bool>,
) {
    let mut final_stored = false;
    while let Some(event) = events.recv().await {
        if event.state == State::Failed {
            tracing::warn!(%batch, task = event.task.id, error = event.error.as_deref(), "task failed");
        }
        record.apply(&event);
        let data = match serde_json::to_string(&TaskData::of(&event)) {
            Ok(data) => data,
            Err(err) => {
                tracing::error!(%err, "an event could not be serialised");
                continue;
            }
        };
        match store.apply(&batch, event.index, &record, &data).await {
            Ok(_) => final_stored = event.state.is_final(),
            Err(err) => {
                tracing::warn!(%err, %batch, task = event.task.id, "a task's step could not be stored");
                final_stored = false;
            }
        }
    }
    let _ = written.send(final_stored);
}
