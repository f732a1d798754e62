//! What every handler shares: the page's defaults, the store, the generator,
//! the event streams' bound and the shutdown tokens.

use crate::delivery::Deliverer;
use crate::generator::{BatchTasks, Generator};
use crate::store::Store;
use crate::worker::Pipeline;
use std::sync::{Arc, Mutex};
use taskhooks_shared::sync::lock;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The defaults the page shows and `POST /producetasks` falls back on.
#[derive(Debug, Clone)]
pub(crate) struct PageSettings {
    /// Where webhooks go.
    pub(crate) target_url: String,
    /// The consumer's dashboard.
    pub(crate) dashboard_url: String,
    pub(crate) min_tasks: u32,
    pub(crate) max_tasks: u32,
    /// Milliseconds between delivery starts.
    pub(crate) pace_ms: u64,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) page: PageSettings,
    /// Where batches are kept (chosen once, at start).
    pub(crate) store: Arc<dyn Store>,
    /// The one delivery pipeline.
    pub(crate) pipeline: Arc<Pipeline>,
    /// The shared client, for its metrics.
    pub(crate) deliverer: Arc<Deliverer>,
    /// Cancelled when shutdown starts: no new batches.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled once the deliveries have wound down: every event stream ends.
    pub(crate) closing: CancellationToken,
    /// One permit per open event stream, [`AppState::max_event_streams`] in all.
    pub(crate) event_streams: Arc<Semaphore>,
    /// `--max-event-streams`.
    pub(crate) max_event_streams: usize,
    generator: Mutex<Generator>,
}

impl AppState {
    /// `shutdown` is cancelled when shutdown starts.
    pub(crate) fn new(
        page: PageSettings,
        (store, pipeline, deliverer): (Arc<dyn Store>, Arc<Pipeline>, Arc<Deliverer>),
        seed: Option<u64>,
        max_event_streams: usize,
        shutdown: CancellationToken,
    ) -> AppState {
        AppState {
            page,
            store,
            pipeline,
            deliverer,
            shutdown,
            closing: CancellationToken::new(),
            event_streams: Arc::new(Semaphore::new(max_event_streams)),
            max_event_streams,
            generator: Mutex::new(Generator::new(seed)),
        }
    }

    /// A new batch of `min..=max` fake tasks.
    pub(crate) fn generate(&self, min: u32, max: u32) -> BatchTasks {
        lock(&self.generator).batch(min, max)
    }
}
