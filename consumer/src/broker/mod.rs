//! The broker: where an accepted webhook is deduplicated, counted and published,
//! and where the totals a fresh dashboard starts from are read.
//!
//! Two stores behind one enum, chosen once at start: [`redis`](self::redis)
//! (pub/sub across every consumer replica, totals kept in Redis) and [`memory`]
//! (one process only, used when no `REDIS_URL` is given). What both give, a
//! [`Snapshot`] or a [`BrokerError`], has a file of its own, so neither store
//! imports this one back.

pub(crate) mod dedupe;
mod error;
pub mod eviction;
pub(crate) mod memory;
pub mod redis;
mod redis_accept;
mod snapshot;

pub use error::BrokerError;
pub use snapshot::{Counts, Snapshot, Totals};

use crate::hub::Hub;
use std::sync::Arc;
use taskhooks_shared::Task;

/// What happened to an accepted webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Counted and published as event number `seq`.
    Published { seq: u64 },
    /// This webhook id was accepted before; nothing was done.
    Duplicate,
}

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
        let seq = match self {
            Broker::Redis(redis) => redis.accept(webhook_id, task).await?,
            Broker::Memory(memory) => memory.accept(webhook_id, task),
        };
        Ok(seq.map_or(Accepted::Duplicate, |seq| Accepted::Published { seq }))
    }

    /// Totals, recent events and the sequence number they are current to.
    pub(crate) async fn snapshot(&self) -> Result<Snapshot, BrokerError> {
        match self {
            Broker::Redis(redis) => redis.snapshot().await,
            Broker::Memory(memory) => Ok(memory.snapshot()),
        }
    }

    /// The sequence number, the totals and the duplicates, without the recent
    /// events: what `/api/stats` returns, at a fraction of a snapshot's cost.
    pub(crate) async fn totals(&self) -> Result<Counts, BrokerError> {
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
            Broker::Redis(redis) if redis.client().is_cluster() => "redis-cluster",
            Broker::Redis(_) => "redis",
            Broker::Memory(_) => "in-process",
        }
    }
}

/// The in-process broker, remembering webhook ids for `window`.
pub(crate) fn memory_with_window(hub: Hub, window: dedupe::DedupeWindow) -> Broker {
    Broker::Memory(Arc::new(memory::MemoryBroker::with_window(hub, window)))
}
