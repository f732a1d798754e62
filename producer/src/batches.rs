//! The web page's batches in this process's memory: a registry by id (each
//! [`Batch`] keeps its tasks' records and its event log).
//!
//! Memory is bounded: a batch has at most [`crate::generator::MAX_BATCH_TASKS`] tasks
//! and each task publishes at most `2 × max attempts` events; at most
//! [`MAX_BATCHES`] batches are kept, and finished ones go after [`KEEP_FINISHED`].
//! Slots cannot be held for long either: a batch is paced to last at most
//! [`MAX_BATCH_DURATION`], and a full registry says when to come back.

pub(crate) use crate::batch::Batch;
use crate::deliveries::BatchSummary;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Most batches kept, running or finished. Starting one more first drops the
/// oldest finished ones; when all are running, the new one is refused.
pub const MAX_BATCHES: usize = 64;
/// How long a finished batch can still be replayed (a tab reconnecting late).
pub(crate) const KEEP_FINISHED: Duration = Duration::from_secs(10 * 60);
/// Longest a page batch may be paced to last (its largest size × its pace), so
/// that [`MAX_BATCHES`] slow batches cannot lock the page out for days.
pub(crate) const MAX_BATCH_DURATION: Duration = Duration::from_secs(60 * 60);

/// Every batch this process knows, by id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    batches: Mutex<HashMap<String, Arc<Batch>>>,
}

/// Why a batch could not be registered.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "{MAX_BATCHES} batches are already running; stop one or try again in {} s, when the \
     first is due to finish",
    retry_after.as_secs()
)]
pub(crate) struct RegistryFull {
    /// When the first running batch is due to finish (at least a second).
    pub(crate) retry_after: Duration,
}

/// Refuses a batch of up to `max` tasks paced `pace` apart that would last
/// longer than [`MAX_BATCH_DURATION`]; the text names the limit.
pub(crate) fn check_duration(max: u32, pace: Duration) -> Result<(), String> {
    let longest = pace.saturating_mul(max);
    if longest <= MAX_BATCH_DURATION {
        return Ok(());
    }
    let limit_min = MAX_BATCH_DURATION.as_secs() / 60;
    Err(format!(
        "a batch of up to {max} tasks {} ms apart would last up to {} min, over the limit of \
         {limit_min} min per batch; lower max or pace_ms",
        pace.as_millis(),
        longest.as_secs().div_ceil(60),
    ))
}

impl Registry {
    /// Adds `batch`, first dropping finished batches that are old or in the way.
    pub(crate) fn insert(&self, batch: Arc<Batch>) -> Result<(), RegistryFull> {
        let mut batches = lock(&self.batches);
        let now = Instant::now();
        batches.retain(|_, b| b.finished_at().is_none_or(|at| now - at < KEEP_FINISHED));
        while batches.len() >= MAX_BATCHES {
            let oldest_finished = batches
                .iter()
                .filter_map(|(id, b)| Some((b.finished_at()?, id.clone())))
                .min();
            match oldest_finished {
                Some((_, id)) => batches.remove(&id),
                None => {
                    return Err(RegistryFull {
                        retry_after: first_due(batches.values(), now),
                    });
                }
            };
        }
        batches.insert(batch.id.clone(), batch);
        Ok(())
    }

    /// The batch with this id, if still kept.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Batch>> {
        lock(&self.batches).get(id).cloned()
    }

    /// Every batch kept, newest first.
    pub(crate) fn list(&self) -> Vec<BatchSummary> {
        let mut batches: Vec<Arc<Batch>> = lock(&self.batches).values().cloned().collect();
        batches.sort_by_key(|b| std::cmp::Reverse((b.created_at, b.id.clone())));
        batches.iter().map(|b| b.summary()).collect()
    }
}

/// How long until the first of these running batches is due to finish, in whole
/// seconds rounded up, at least one (a batch late because of retries is due any
/// moment).
fn first_due<'a>(running: impl Iterator<Item = &'a Arc<Batch>>, now: Instant) -> Duration {
    let soonest = running
        .map(|b| b.due.saturating_duration_since(now))
        .min()
        .unwrap_or_default();
    let seconds = soonest.as_secs() + u64::from(soonest.subsec_nanos() > 0);
    Duration::from_secs(seconds.max(1))
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves the data
/// consistent (a push, a field write), so a panic elsewhere cannot corrupt it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::Generator;
    use crate::runner::{Sink as _, Summary};
    use tokio_util::sync::CancellationToken;

    fn finished(id: &str) -> Arc<Batch> {
        let batch = Batch::new(id.to_owned(), [], Duration::ZERO, CancellationToken::new());
        batch.finish(&Summary::default());
        batch
    }

    /// A batch of one task, never finished, paced to last `due`.
    fn running(id: &str, due: Duration) -> Arc<Batch> {
        let task = Generator::new(Some(1)).batch_of(2).collect::<Vec<_>>();
        Batch::new(id.to_owned(), task, due, CancellationToken::new())
    }

    #[test]
    fn a_full_registry_drops_finished_batches_but_never_running_ones() {
        let registry = Registry::default();
        for i in 0..MAX_BATCHES {
            registry.insert(finished(&format!("f{i}"))).expect("room");
        }
        registry
            .insert(running("r", Duration::ZERO))
            .expect("a finished batch makes room");
        assert!(registry.get("f0").is_none() && registry.get("r").is_some());
        let full = Registry::default();
        for i in 0..MAX_BATCHES {
            let due = Duration::from_secs(30 + i as u64);
            full.insert(running(&format!("r{i}"), due)).expect("room");
        }
        let refused = full
            .insert(running("r", Duration::ZERO))
            .expect_err("every batch is running");
        // The first is due in 30 s, less the microseconds the test took.
        assert_eq!(refused.retry_after, Duration::from_secs(30), "rounded up");
    }

    #[test]
    fn a_batch_paced_beyond_the_limit_is_refused_with_the_limit_named() {
        assert!(check_duration(10_000, Duration::from_millis(360)).is_ok());
        let err = check_duration(10_000, Duration::from_millis(361)).expect_err("too long");
        assert!(
            err.contains("61 min") && err.contains("limit of 60 min"),
            "{err}"
        );
        assert!(check_duration(60, Duration::from_secs(60)).is_ok());
        assert!(check_duration(61, Duration::from_secs(60)).is_err());
    }
}
