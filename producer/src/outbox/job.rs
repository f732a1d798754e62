//! One queue entry's delivery: the task read back from Redis, cancelled when its
//! batch was stopped, started at the batch's shared pace, delivered as the memory
//! runner delivers, and every step stored in order by a [`Recorder`].

use super::redis::{RedisStore, StoreError};
use super::worker::{Entry, Workers, lock};
use crate::deliveries::{TaskData, TaskRecord};
use crate::runner::{
    Queued, Sink, State, Summary, TaskEvent, cancelled_before_sending, deliver_one,
};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

impl Workers {
    /// Delivers one entry's task; `true` once it reached a final state and that
    /// was stored (or there is nothing to do), `false` to leave it pending. The
    /// caller holds the entry's `held` permit throughout; a delivery slot is
    /// taken only once the task's start is due.
    pub(super) async fn process(&self, entry: &Entry) -> Result<bool, StoreError> {
        let Some(meta) = self.store.meta(&entry.batch).await? else {
            return Ok(true); // the batch expired
        };
        let Some(record) = self.store.record(&entry.batch, entry.index).await? else {
            return Ok(true);
        };
        if matches!(
            record.state,
            State::Delivered | State::Failed | State::Cancelled
        ) {
            return Ok(true); // done before a crash, not yet acknowledged
        }
        let stop = self.stop_token(&entry.batch);
        let queued = record.queued(entry.index);
        let (sink, written) = Recorder::start(
            self.store.clone(),
            entry.batch.clone(),
            record,
            stop.clone(),
        );
        if meta.stopped {
            stop.cancel(); // stopped while no task of it was here to hear of it
        }
        if stop.is_cancelled() {
            return Ok(self.cancel_unsent(&sink, meta.total, queued, written).await);
        }
        let wait = self.store.reserve_start(&entry.batch, meta.pace_ms).await?;
        let permit = tokio::select! {
            () = self.shutdown.cancelled() => return Ok(false),
            () = stop.cancelled() => {
                return Ok(self.cancel_unsent(&sink, meta.total, queued, written).await);
            }
            permit = self.slot_after(wait) => permit,
        };
        let Some(permit) = permit else {
            return Ok(false); // the semaphore is closed: shutting down
        };
        let job_stop = self.shutdown.child_token();
        let _ends_the_link = job_stop.clone().drop_guard();
        tokio::spawn(link(stop.clone(), job_stop.clone()));
        let deliverer = self.deliverer.clone();
        deliver_one(
            queued,
            meta.total,
            sink.clone(),
            deliverer,
            job_stop,
            permit,
        )
        .await;
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
    async fn slot_after(&self, wait: std::time::Duration) -> Option<OwnedSemaphorePermit> {
        tokio::time::sleep(wait).await;
        self.in_flight.clone().acquire_owned().await.ok()
    }

    /// The stop token of `batch` in this process.
    fn stop_token(&self, batch: &str) -> Arc<CancellationToken> {
        let mut stops = lock(&self.stops);
        if let Some(token) = stops.get(batch).and_then(Weak::upgrade) {
            return token;
        }
        stops.retain(|_, token| token.strong_count() > 0);
        let token = Arc::new(CancellationToken::new());
        stops.insert(batch.to_owned(), Arc::downgrade(&token));
        token
    }
}

/// Cancels `job` when `batch` is stopped, until `job` is over.
async fn link(batch: Arc<CancellationToken>, job: CancellationToken) {
    tokio::select! {
        () = batch.cancelled() => job.cancel(),
        () = job.cancelled() => {}
    }
}

/// A task's [`Sink`] that stores each step in Redis, in order, from a task of
/// its own (the runner's sinks are synchronous).
struct Recorder {
    events: Mutex<Option<mpsc::UnboundedSender<TaskEvent>>>,
    stop: Arc<CancellationToken>,
}

impl Recorder {
    /// A recorder for `record` of `batch`; the receiver hears whether the
    /// task's final state was stored.
    fn start(
        store: RedisStore,
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
        // pending and another producer (or this one, restarted) delivers it.
        if event.state == State::Cancelled && !self.stop.is_cancelled() {
            return;
        }
        if let Some(events) = lock(&self.events).as_ref() {
            let _ = events.send(event);
        }
    }

    fn finish(&self, _summary: &Summary) {}
}

/// Stores each event of one task in order; tells `written` whether a final
/// state was stored.
async fn write_in_order(
    store: RedisStore,
    batch: String,
    mut record: TaskRecord,
    mut events: mpsc::UnboundedReceiver<TaskEvent>,
    written: oneshot::Sender<bool>,
) {
    let mut final_stored = false;
    while let Some(event) = events.recv().await {
        record.apply(&event);
        let data = match serde_json::to_string(&TaskData::of(&event)) {
            Ok(data) => data,
            Err(err) => {
                tracing::error!(%err, "an event could not be serialised");
                continue;
            }
        };
        match store.apply(&batch, event.index, &record, &data).await {
            Ok(_) => {
                final_stored = matches!(
                    event.state,
                    State::Delivered | State::Failed | State::Cancelled
                );
            }
            Err(err) => {
                tracing::warn!(%err, %batch, index = event.index, "a task's step could not be stored");
                final_stored = false;
            }
        }
    }
    let _ = written.send(final_stored);
}
