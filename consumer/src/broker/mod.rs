//! The broker: where an accepted webhook is deduplicated, counted and published,
//! and where the totals a fresh dashboard starts from are read.
//!
//! Two implementations behind one enum: [`redis`](self::redis) (pub/sub across every consumer
//! replica, totals kept in Redis) and [`memory`] (one process only, used when no
//! `REDIS_URL` is given).

pub(crate) mod accept;
pub(crate) mod dedupe;
pub mod eviction;
pub(crate) mod memory;
pub mod redis;

use crate::hub::Hub;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;
use taskhooks_shared::{Priority, Task};

/// How many recent events are kept for a dashboard that opens late.
pub(crate) const RECENT_CAP: usize = 200;

/// Why the broker could not do what was asked; the sender should retry later.
/// Clone: one failed script call fails every webhook it carried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// Redis answered with an error or the connection failed.
    #[error("Redis error: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The pub/sub connection closed.
    #[error("the Redis subscription connection closed")]
    Disconnected,
    /// Redis answered something the consumer did not ask for.
    #[error("unexpected answer from Redis: {0}")]
    Unexpected(String),
}

/// What happened to an accepted webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Counted and published as event number `seq`.
    Published {
        /// The event's sequence number.
        seq: u64,
    },
    /// This webhook id was accepted before; nothing was done.
    Duplicate,
}

/// Tasks counted per priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals(pub(crate) [u64; 4]);

impl Totals {
    /// The count for one priority.
    pub(crate) fn get(&self, priority: Priority) -> u64 {
        self.0[priority.index()]
    }

    /// All tasks counted.
    pub fn sum(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl Serialize for Totals {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(4))?;
        for priority in Priority::ALL {
            map.serialize_entry(priority.as_str(), &self.get(priority))?;
        }
        map.end()
    }
}

/// The state a dashboard starts from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sequence number of the last event included; later events are new.
    pub seq: u64,
    /// Totals per priority.
    pub totals: Totals,
    /// The most recent events' JSON, newest first.
    pub(crate) recent: Vec<Arc<RawValue>>,
}

impl Snapshot {
    /// The snapshot as the WebSocket message `{"type":"snapshot",…}`.
    pub(crate) fn to_message(&self) -> String {
        #[derive(Serialize)]
        struct SnapshotFrame<'a> {
            r#type: &'static str,
            seq: u64,
            totals: &'a Totals,
            recent: Vec<&'a RawValue>,
        }
        let frame = SnapshotFrame {
            r#type: "snapshot",
            seq: self.seq,
            totals: &self.totals,
            recent: self.recent.iter().map(|event| &**event).collect(),
        };
        // unwrap: integers and JSON already checked always serialise.
        #[allow(clippy::unwrap_used)]
        serde_json::to_string(&frame).unwrap()
    }
}

/// The broker in use.
#[derive(Clone)]
pub enum Broker {
    /// Redis pub/sub; every replica sees every event.
    Redis(redis::RedisBroker),
    /// In-process only.
    Memory(Arc<memory::MemoryBroker>),
}

impl Broker {
    /// Deduplicates by `webhook_id` (when there is one), counts and publishes `task`.
    pub async fn accept(
        &self,
        webhook_id: Option<&str>,
        task: &Task,
    ) -> Result<Accepted, BrokerError> {
        match self {
            Broker::Redis(redis) => redis.accept(webhook_id, task).await,
            Broker::Memory(memory) => Ok(memory.accept(webhook_id, task)),
        }
    }

    /// Totals, recent events and the sequence number they are current to.
    pub(crate) async fn snapshot(&self) -> Result<Snapshot, BrokerError> {
        match self {
            Broker::Redis(redis) => redis.snapshot().await,
            Broker::Memory(memory) => Ok(memory.snapshot()),
        }
    }

    /// The sequence number and the totals, without the recent events: what
    /// `/api/stats` returns, at a fraction of a snapshot's cost.
    pub(crate) async fn totals(&self) -> Result<(u64, Totals), BrokerError> {
        match self {
            Broker::Redis(redis) => redis.totals().await,
            Broker::Memory(memory) => Ok(memory.totals()),
        }
    }

    /// Whether the broker can take webhooks now.
    pub(crate) async fn ping(&self) -> Result<(), BrokerError> {
        match self {
            Broker::Redis(redis) => redis.ping().await,
            Broker::Memory(_) => Ok(()),
        }
    }

    /// A short description for logs and `/readyz`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Broker::Redis(_) => "redis",
            Broker::Memory(_) => "in-process",
        }
    }
}

/// The in-process broker, remembering webhook ids for `window`.
pub(crate) fn memory_with_window(hub: Hub, window: dedupe::DedupeWindow) -> Broker {
    Broker::Memory(Arc::new(memory::MemoryBroker::with_window(hub, window)))
}
