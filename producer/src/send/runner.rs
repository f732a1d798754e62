//! `producer send`'s loop on one thread: its share of the tasks started at the
//! pace, at most so many in flight, each delivered by
//! [`crate::delivery::task::deliver_task`] and told to the thread's [`Shard`]; a
//! stop lets nothing new start and counts the tasks left as cancelled.
//!
//! It keeps nothing per task: a run of millions costs no memory. The page's
//! batches go through the store and `crate::worker` instead, which keep every
//! step.

use super::progress::Shard;
use crate::delivery::Deliverer;
use crate::delivery::task::{Queued, deliver_task};
use crate::pace::next_start;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What one thread's share runs with.
#[derive(Debug, Clone)]
pub(super) struct Runner {
    pub(super) deliverer: Arc<Deliverer>,
    /// Bounds this thread's deliveries in flight.
    pub(super) in_flight: Arc<Semaphore>,
    /// Time between the starts of two deliveries (zero: no pacing).
    pub(super) pace: Duration,
    /// Cancelled to stop.
    pub(super) stop: CancellationToken,
}

impl Runner {
    /// Delivers `tasks` (`count` of them, of a batch of `total`), telling `sink`
    /// everything.
    pub(super) async fn run(
        self,
        tasks: impl Iterator<Item = Queued>,
        (count, total): (u64, u64),
        sink: Arc<Shard>,
    ) {
        let mut deliveries = JoinSet::new();
        let mut schedule = Schedule::new(self.pace);
        let mut sent = 0;
        for queued in tasks {
            let Some(permit) = self.wait_turn(&mut schedule).await else {
                break;
            };
            while let Some(done) = deliveries.try_join_next() {
                note_abnormal(done);
            }
            sent += 1;
            let (sink, deliverer, stop) = (sink.clone(), self.deliverer.clone(), self.stop.clone());
            deliveries.spawn(async move {
                deliver_task(queued, total, &*sink, &deliverer, &stop, permit).await;
            });
        }
        if sent < count {
            let unsent = count - sent;
            sink.unsent(unsent);
            self.deliverer.metrics().cancelled_before_sending(unsent);
        }
        while let Some(done) = deliveries.join_next().await {
            note_abnormal(done);
        }
    }

    /// Waits for the pace and a free slot; `None` once stopped.
    async fn wait_turn(&self, schedule: &mut Schedule) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            biased;
            () = self.stop.cancelled() => return None,
            () = schedule.wait() => {}
        }
        let permit = tokio::select! {
            biased;
            () = self.stop.cancelled() => return None,
            permit = self.in_flight.clone().acquire_owned() => permit.ok()?,
        };
        schedule.started(Instant::now());
        Some(permit)
    }
}

fn note_abnormal(done: Result<(), tokio::task::JoinError>) {
    if let Err(err) = done {
        tracing::error!(%err, "a delivery task ended abnormally");
    }
}

/// When the next delivery may start.
struct Schedule {
    pace: Duration,
    next: Option<Instant>,
}

impl Schedule {
    fn new(pace: Duration) -> Schedule {
        Schedule { pace, next: None }
    }

    async fn wait(&self) {
        if let Some(next) = self.next {
            tokio::time::sleep_until(next.into()).await;
        }
    }

    fn started(&mut self, now: Instant) {
        self.next = next_start(self.next, now, self.pace);
    }
}
