//! The hub: one broadcast channel per process from the broker's subscriber to every
//! WebSocket task of this process.

use prometheus_client::metrics::counter::Counter;
use serde_json::value::RawValue;
use std::sync::Arc;
use taskhooks_shared::Task;
use tokio::sync::broadcast;

/// How many messages the hub holds for a slow socket before that socket lags.
/// A lagging socket is resynchronised with a fresh snapshot, so this bounds memory,
/// not correctness; 4096 covers over a second of a heavy load test.
pub(crate) const HUB_CAPACITY: usize = 4096;

/// One published task event, as its JSON text `{"seq":N,"task":{…}}`.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// Position in the global order of accepted events (1, 2, …).
    pub(crate) seq: u64,
    /// The event's JSON, sent to browsers as is.
    pub(crate) json: Arc<RawValue>,
}

/// What the hub carries.
#[derive(Debug, Clone)]
pub(crate) enum HubMessage {
    /// A newly published event.
    Event(Event),
    /// Events may have been missed (the subscriber reconnected): every socket
    /// should send its client a fresh snapshot.
    Resync,
    /// The broker's subscription is lost (the reason says why): no events flow
    /// until a [`HubMessage::Resync`] says it is back.
    Unavailable(Arc<str>),
}

/// The sending side; clone it freely.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    sender: broadcast::Sender<HubMessage>,
    forwarded: Counter,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            sender: broadcast::channel(HUB_CAPACITY).0,
            forwarded: Counter::default(),
        }
    }
}

impl Hub {
    /// Hands a message to every current subscriber (none is fine).
    pub(crate) fn send(&self, message: HubMessage) {
        if matches!(message, HubMessage::Event(_)) {
            self.forwarded.inc();
        }
        let _ = self.sender.send(message);
    }

    /// The count of events handed to the hub, for the metrics.
    pub(crate) fn forwarded(&self) -> Counter {
        self.forwarded.clone()
    }

    /// A new receiver, seeing messages sent from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<HubMessage> {
        self.sender.subscribe()
    }
}

/// The event JSON `{"seq":N,"task":{…}}` of `task`. The Redis script builds the
/// same text in Lua (see `broker/redis.rs`).
pub(crate) fn event_json(seq: u64, task: &Task) -> Arc<RawValue> {
    #[derive(serde::Serialize)]
    struct EventJson<'a> {
        seq: u64,
        task: &'a Task,
    }
    // unwrap: a Task is plain strings and numbers, which always serialise.
    #[allow(clippy::unwrap_used)]
    Arc::from(serde_json::value::to_raw_value(&EventJson { seq, task }).unwrap())
}

#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: u64,
}

impl Event {
    /// Reads an event published by any consumer process.
    pub(crate) fn from_json(json: &str) -> Result<Event, serde_json::Error> {
        let SeqOnly { seq } = serde_json::from_str(json)?;
        Ok(Event {
            seq,
            json: Arc::from(RawValue::from_string(json.to_owned())?),
        })
    }
}
