//! What every handler shares: the broker, the fan-out, the socket permits, the
//! signing rule, the metrics and fault injection.

use crate::broker::Broker;
use crate::faults::Faults;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::snapshot_reads::SharedSnapshots;
use std::sync::Arc;
use taskhooks_shared::signing::Signing;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub(crate) struct AppState {
    /// Where webhooks are published and totals read.
    pub(crate) broker: Broker,
    /// Snapshot reads shared by sockets asking at the same time.
    pub(crate) snapshots: SharedSnapshots,
    /// One permit per open dashboard socket, `max_websockets` in all.
    pub(crate) websockets: Arc<Semaphore>,
    /// The cap on open dashboard sockets, for the refusal's message.
    pub(crate) max_websockets: usize,
    /// This process's fan-out to its WebSocket clients.
    pub(crate) hub: Hub,
    /// How webhooks are authenticated: by any of these secrets, or not at all.
    pub(crate) signing: Signing,
    /// Prometheus metrics.
    pub(crate) metrics: Metrics,
    /// Link shown on the empty dashboard.
    pub(crate) producer_url: String,
    /// Fault injection, only with `--fault-injection`: without it, no webhook
    /// does any fault work.
    pub(crate) faults: Option<Arc<Faults>>,
    /// Cancelled when the server shuts down; every socket task watches it.
    pub(crate) shutdown: CancellationToken,
}
