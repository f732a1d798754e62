//! Fault injection (`--fault-injection`): the consumer refuses, delays or leaves
//! unanswered the webhooks it is told to, so a person can watch retries, backoff
//! and the dedupe at work.
//!
//! The settings live where the totals do: in Redis, shared by every replica (so
//! `fail_next: 4` refuses exactly 4 webhooks whichever replicas they reach: each
//! is taken by an atomic script, [`store`]), or in this process with the
//! in-process broker. A webhook reads a local copy ([`Faults::settings`]), so with
//! no fault set it costs a lock and a few comparisons; the copy is refreshed from
//! Redis every [`REFRESH_INTERVAL`] (polling one small hash: simpler than a
//! second pub/sub subscription, and a missed message cannot leave it stale) and
//! after every read or change through this replica's API. The copy only says
//! whether to ask: the counts that must be exact are taken in Redis. Off (the default) there is no `Faults` at all, and a webhook
//! does no fault work whatsoever.

pub(crate) mod settings;
mod store;

pub(crate) use settings::{Change, Injected, Settings};

use crate::broker::{Broker, BrokerError};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use store::Store;
use tokio_util::sync::CancellationToken;

/// How often a replica re-reads the shared settings from Redis: a setting made
/// through another replica applies here within this time.
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_millis(250);

/// The settings, this replica's copy of them, and where they are kept.
pub(crate) struct Faults {
    store: Store,
    /// The settings as last read; a std Mutex, held only to copy or write them.
    copy: Mutex<Settings>,
}

impl Faults {
    /// Fault injection on `broker`'s store: Redis when it has one, else this process.
    pub(crate) fn new(broker: &Broker) -> Faults {
        Faults {
            store: Store::new(broker),
            copy: Mutex::default(),
        }
    }

    fn copy(&self) -> MutexGuard<'_, Settings> {
        taskhooks_shared::sync::lock(&self.copy)
    }

    /// The settings a webhook applies: this replica's copy of Redis's (which a
    /// webhook that finds `fail_next` or `drop_next` used up sets to 0 until the
    /// next refresh), or the settings themselves in process.
    pub(crate) fn settings(&self) -> Settings {
        self.store.local().unwrap_or_else(|| *self.copy())
    }

    /// Reads the settings and what was injected from the store, refreshing the copy.
    pub(crate) async fn read(&self) -> Result<(Settings, Injected), BrokerError> {
        let (settings, injected) = self.store.read().await?;
        *self.copy() = settings;
        Ok((settings, injected))
    }

    /// Makes `change` (every replica sees it) and returns the result.
    pub(crate) async fn change(
        &self,
        change: &Change,
    ) -> Result<(Settings, Injected), BrokerError> {
        self.store.change(change).await?;
        self.read().await
    }

    /// Sets every fault back to its default (none); what was injected is kept,
    /// like the totals.
    pub(crate) async fn clear(&self) -> Result<(Settings, Injected), BrokerError> {
        self.store.clear().await?;
        self.read().await
    }

    /// Whether this webhook is to be refused, and with which status. `settings`
    /// is the webhook's copy: `fail_next` is taken from the store, so however
    /// many replicas ask, only that many webhooks are refused.
    pub(crate) async fn refusal(&self, settings: &Settings) -> Result<Option<u16>, BrokerError> {
        if settings.fail_next > 0 {
            let taken = self.store.take_one("fail_next", "refused").await?;
            self.copy().fail_next = if taken { settings.fail_next - 1 } else { 0 };
            if taken {
                return Ok(Some(settings.fail_status));
            }
        }
        if settings.fail_percent > 0 && rand::random_range(0..100) < settings.fail_percent {
            self.store.count_refused().await?;
            return Ok(Some(settings.fail_status));
        }
        Ok(None)
    }

    /// Whether this published webhook's answer is to be dropped (one taken from
    /// `drop_next`, every replica together).
    pub(crate) async fn take_drop(&self, settings: &Settings) -> Result<bool, BrokerError> {
        if settings.drop_next == 0 {
            return Ok(false);
        }
        let taken = self.store.take_one("drop_next", "dropped").await?;
        self.copy().drop_next = if taken { settings.drop_next - 1 } else { 0 };
        Ok(taken)
    }

    /// Re-reads the settings every [`REFRESH_INTERVAL`] until `stopping`, so a
    /// change made through another replica applies here (Redis only: in process,
    /// every change is made here).
    pub(crate) async fn refresh_until(&self, stopping: CancellationToken) {
        if !self.store.is_shared() {
            return;
        }
        let mut every = tokio::time::interval(REFRESH_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopping.cancelled() => return,
                _ = every.tick() => {
                    if let Err(err) = self.read().await {
                        tracing::debug!(%err, "the fault settings could not be refreshed");
                    }
                }
            }
        }
    }
}
