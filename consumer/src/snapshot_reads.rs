//! Snapshots shared by the sockets that ask at the same time ("single flight"), so a
//! thousand dashboards connecting or resynchronising at once cost two store reads,
//! not a thousand, and one serialisation of the message they all send.
//!
//! Correctness rule: a socket skips every event whose `seq` is in its snapshot, so
//! its snapshot must have been read *after* it subscribed to the hub (an older one
//! would miss the events in between). A socket therefore never joins a read
//! already sent: it joins the next one, which is sent only once the current one
//! has finished, and closes to newcomers just before it is sent. At most one read
//! is in flight, and every socket's snapshot is read after it asked.

use crate::broker::{Broker, BrokerError, Snapshot, Totals};
use actix_web::web::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde::Serialize;
use serde_json::value::RawValue;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

type Read = Shared<BoxFuture<'static, Result<Arc<ReadSnapshot>, Arc<BrokerError>>>>;

/// A snapshot as read, with its WebSocket message `{"type":"snapshot",…}` (its
/// `recent` events are arrays of the values its `fields` names, like an events
/// frame's; the same bytes for every socket that shared the read).
#[derive(Debug)]
pub struct ReadSnapshot {
    snapshot: Snapshot,
    /// The message every socket sends its client.
    pub(crate) message: Bytes,
}

impl ReadSnapshot {
    pub(crate) fn new(snapshot: Snapshot) -> ReadSnapshot {
        let message = Bytes::from(message(&snapshot));
        ReadSnapshot { snapshot, message }
    }
}

/// The snapshot as the WebSocket message `{"type":"snapshot",…}`, which the
/// dashboard reads (`static/js/dashboard.js`, `onFrame`); its shape is pinned by
/// `ws::feed::tests::the_messages_the_dashboard_reads_keep_their_shape`.
fn message(snapshot: &Snapshot) -> String {
    #[derive(Serialize)]
    struct SnapshotMessage<'a> {
        r#type: &'static str,
        seq: u64,
        totals: &'a Totals,
        fields: &'static [&'static str],
        recent: Vec<&'a RawValue>,
    }
    let message = SnapshotMessage {
        r#type: "snapshot",
        seq: snapshot.seq,
        totals: &snapshot.totals,
        fields: &crate::event::FIELDS,
        recent: snapshot.recent.iter().map(|event| &**event).collect(),
    };
    // unwrap: integers and JSON already checked always serialise.
    #[allow(clippy::unwrap_used)]
    serde_json::to_string(&message).unwrap()
}

impl Deref for ReadSnapshot {
    type Target = Snapshot;

    fn deref(&self) -> &Snapshot {
        &self.snapshot
    }
}

#[derive(Default)]
struct Flights {
    /// The read that newcomers join: not sent yet.
    open: Option<Read>,
    /// The read created last; the next one waits for it.
    last: Option<Read>,
}

/// Snapshot reads shared among concurrent askers. Cheap to clone.
#[derive(Clone)]
pub struct SharedSnapshots {
    broker: Broker,
    // A std Mutex: held for a few assignments, never across .await.
    flights: Arc<Mutex<Flights>>,
}

impl SharedSnapshots {
    /// Shares reads of `broker`'s snapshot.
    pub fn new(broker: Broker) -> SharedSnapshots {
        SharedSnapshots {
            broker,
            flights: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Flights> {
        taskhooks_shared::sync::lock(&self.flights)
    }

    /// A snapshot read after this call began, shared with everyone who asked while
    /// the previous read was in flight. Call it after subscribing to the hub.
    pub async fn read(&self) -> Result<Arc<ReadSnapshot>, Arc<BrokerError>> {
        let read = {
            let mut flights = self.lock();
            match &flights.open {
                Some(open) => open.clone(),
                None => {
                    let read = self.clone().fly(flights.last.take()).boxed().shared();
                    flights.open = Some(read.clone());
                    flights.last = Some(read.clone());
                    read
                }
            }
        };
        read.await
    }

    async fn fly(self, previous: Option<Read>) -> Result<Arc<ReadSnapshot>, Arc<BrokerError>> {
        if let Some(previous) = previous {
            let _ = previous.await;
        }
        // Closed to newcomers before the read is sent: whoever joined asked before it.
        self.lock().open = None;
        let snapshot = self.broker.snapshot().await.map_err(Arc::new)?;
        Ok(Arc::new(ReadSnapshot::new(snapshot)))
    }
}
