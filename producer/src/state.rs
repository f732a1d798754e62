//! What every handler shares, and starting a batch: generate its tasks, register
//! it, and run it in the background on the server's runtime; redelivering some
//! of its tasks the same way.

use crate::batches::{Batch, Registry, RegistryFull};
use crate::deliveries::{RedeliverRequest, Refusal};
use crate::delivery::Deliverer;
use crate::generator::{BatchTasks, Generator};
use crate::outbox::worker::Workers;
use crate::runner::{Queued, Runner};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `--max-event-streams` until [`AppState::limit_event_streams`] sets it.
const DEFAULT_MAX_EVENT_STREAMS: usize = 256;

/// The defaults the page shows and `POST /producetasks` falls back on.
#[derive(Debug, Clone)]
pub(crate) struct PageSettings {
    /// Where webhooks go.
    pub(crate) target_url: String,
    /// The consumer's dashboard.
    pub(crate) dashboard_url: String,
    /// Default smallest batch.
    pub(crate) min_tasks: u32,
    /// Default largest batch.
    pub(crate) max_tasks: u32,
    /// Default pace, in milliseconds between delivery starts.
    pub(crate) pace_ms: u64,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    /// The page's defaults.
    pub(crate) page: PageSettings,
    /// Every batch kept, by id.
    pub(crate) registry: Registry,
    /// The shared client.
    pub(crate) deliverer: Arc<Deliverer>,
    /// Bounds deliveries in flight over all batches.
    pub(crate) in_flight: Arc<Semaphore>,
    /// Cancelled when shutdown starts: no new batches, running ones stop
    /// (each batch's stop token is a child of this one).
    pub(crate) shutdown: CancellationToken,
    /// Cancelled once the batches have wound down: every SSE stream ends.
    pub(crate) closing: CancellationToken,
    /// Every running batch, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// One permit per open event stream, [`AppState::max_event_streams`] in all.
    pub(crate) event_streams: Arc<Semaphore>,
    /// The most event streams open at once (`--max-event-streams`).
    pub(crate) max_event_streams: usize,
    /// The durable outbox's workers, with `REDIS_URL`; `None`: batches live in
    /// [`AppState::registry`], in memory.
    pub(crate) workers: Option<Arc<Workers>>,
    generator: Mutex<Generator>,
    runtime: tokio::runtime::Handle,
}

impl AppState {
    /// Shared state whose batches run on `runtime` (one runtime for every delivery,
    /// so the client's pooled connections outlive the HTTP worker that started them).
    pub(crate) fn new(
        page: PageSettings,
        deliverer: Deliverer,
        max_in_flight: usize,
        seed: Option<u64>,
        runtime: tokio::runtime::Handle,
    ) -> AppState {
        AppState {
            page,
            registry: Registry::default(),
            deliverer: Arc::new(deliverer),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            shutdown: CancellationToken::new(),
            closing: CancellationToken::new(),
            tracker: TaskTracker::new(),
            event_streams: Arc::new(Semaphore::new(DEFAULT_MAX_EVENT_STREAMS)),
            max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
            workers: None,
            generator: Mutex::new(Generator::new(seed)),
            runtime,
        }
    }

    /// At most `max` event streams open at once.
    pub(crate) fn limit_event_streams(&mut self, max: usize) {
        self.event_streams = Arc::new(Semaphore::new(max));
        self.max_event_streams = max;
    }

    /// Generates a batch of `min..=max` tasks (checked by the caller) and starts
    /// delivering it in the background.
    pub(crate) fn start_batch(
        &self,
        min: u32,
        max: u32,
        pace: Duration,
    ) -> Result<Arc<Batch>, RegistryFull> {
        let tasks = self.generate(min, max);
        let id = tasks.batchid.clone();
        let batch = Batch::new(id, tasks, pace, self.shutdown.child_token());
        self.registry.insert(batch.clone())?;
        tracing::info!(batch = %batch.id, total = batch.total, ?pace, "batch started");
        self.deliver(&batch, batch.all_queued(), batch.stop_token());
        Ok(batch)
    }

    /// A new batch of `min..=max` fake tasks.
    pub(crate) fn generate(&self, min: u32, max: u32) -> BatchTasks {
        self.generator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .batch(min, max)
    }

    /// Sends the tasks of `batch` that `request` chooses again, with their
    /// `webhook-id`s; answers their indexes.
    pub(crate) fn redeliver(
        &self,
        batch: &Arc<Batch>,
        request: &RedeliverRequest,
    ) -> Result<Vec<u64>, Refusal> {
        let (queued, stop) = batch.reopen(request, &self.shutdown)?;
        let indexes: Vec<u64> = queued.iter().map(|q| q.index).collect();
        if !queued.is_empty() {
            tracing::info!(batch = %batch.id, tasks = ?indexes, "redelivering");
            self.deliver(batch, queued, stop);
        }
        Ok(indexes)
    }

    /// Delivers `queued` tasks of `batch` in the background.
    fn deliver(&self, batch: &Arc<Batch>, queued: Vec<Queued>, stop: CancellationToken) {
        let runner = Runner {
            deliverer: self.deliverer.clone(),
            in_flight: self.in_flight.clone(),
            pace: batch.pace,
            stop,
        };
        let count = queued.len() as u64;
        let run = runner.run(queued.into_iter(), (count, batch.total), batch.clone());
        self.tracker.spawn_on(run, &self.runtime);
    }
}
