//! Running one batch: deliveries started at the pace, at most so many in flight,
//! a stop that lets nothing new start, and a [`Sink`] told about every step of
//! every task — so that each task ends delivered, failed or cancelled, never lost.
//!
//! The web page's batches and the headless `send` run through this same loop;
//! only their sinks differ.

use crate::delivery::{Deliverer, Message};
use crate::outcome::{Attempt, Outcome, now_millis};
use bytes::Bytes;
use rand::RngExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use taskhooks_shared::Task;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How late a start may run behind the pace schedule and still be caught up on.
/// Later than this (the in-flight limit held it back), the schedule restarts from
/// now rather than firing a burst.
const MAX_CATCH_UP: Duration = Duration::from_millis(100);

/// Bytes reserved for a task's JSON body: a generated task takes 130 to 200, and
/// `serde_json::to_vec` starts at 128, so nearly every body was grown once.
const BODY_CAPACITY: usize = 256;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    /// Not started yet, or waiting for its redelivery to start. Never sent as
    /// an event: a task's events start with `sending`.
    Queued,
    /// Its first attempt is under way.
    Sending,
    /// An attempt failed and another will follow.
    Retrying,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up; the error says why.
    Failed,
    /// Stopped before it was delivered.
    Cancelled,
}

/// One step of one task.
#[derive(Debug, Clone)]
pub(crate) struct TaskEvent {
    /// The task's position in the batch, from 1.
    pub(crate) index: u64,
    /// How many tasks the batch has.
    pub(crate) total: u64,
    /// Where the task stands.
    pub(crate) state: State,
    /// The attempt this event is about (0 when none was made).
    pub(crate) attempt: u32,
    /// The full record of that attempt, once it is over (retrying and final
    /// events); a sink may see the same attempt twice and keeps it once.
    pub(crate) record: Option<Attempt>,
    /// The task's `webhook-id`, the same on every attempt and redelivery.
    pub(crate) webhook_id: Arc<str>,
    /// That attempt's status, when the receiver answered.
    pub(crate) status: Option<u16>,
    /// What went wrong, when something did.
    pub(crate) error: Option<String>,
    /// For `retrying`: the wait before the next attempt.
    pub(crate) retry_in: Option<Duration>,
    /// For a final state: from the first attempt's start to the end.
    pub(crate) elapsed: Option<Duration>,
    /// The task itself.
    pub(crate) task: Arc<Task>,
}

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Summary {
    /// Tasks the receiver took.
    pub(crate) delivered: u64,
    /// Tasks given up.
    pub(crate) failed: u64,
    /// Tasks stopped before delivery.
    pub(crate) cancelled: u64,
    /// From the batch's start to its last task's end.
    pub(crate) elapsed: Duration,
}

/// A task to deliver: its place in the batch, its fixed `webhook-id`, and how
/// many attempts earlier deliveries made (a redelivery numbers on from them).
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    /// The task's position in the batch, from 1.
    pub(crate) index: u64,
    /// The task.
    pub(crate) task: Task,
    /// Its `webhook-id`, which lets the receiver drop what it already took.
    pub(crate) webhook_id: Arc<str>,
    /// Attempts already made by earlier deliveries.
    pub(crate) earlier_attempts: u32,
}

impl Queued {
    /// A task never delivered before, with a new random `webhook-id`: not from
    /// the seeded generator, so that re-running a seed does not look like a
    /// duplicate of the earlier run to the receiver.
    pub(crate) fn fresh(index: u64, task: Task) -> Queued {
        Queued {
            index,
            task,
            webhook_id: new_webhook_id().into(),
            earlier_attempts: 0,
        }
    }
}

/// A new `webhook-id`: `msg_` and a random UUID (version 4), drawn from the
/// thread's own random generator: `Uuid::new_v4` asks the kernel for every one
/// (a `getrandom` system call per task, seen with `scripts/profile producer`).
pub(crate) fn new_webhook_id() -> String {
    let uuid = uuid::Builder::from_random_bytes(rand::rng().random()).into_uuid();
    let mut id = String::with_capacity(WEBHOOK_ID_LEN);
    id.push_str("msg_");
    id.push_str(uuid.simple().encode_lower(&mut uuid::Uuid::encode_buffer()));
    id
}

/// `msg_` and 32 hex digits.
const WEBHOOK_ID_LEN: usize = 4 + 32;

/// Hears about a batch as it runs.
pub(crate) trait Sink: Send + Sync + 'static {
    /// One step of one task; a task's own events arrive in order.
    fn publish(&self, event: TaskEvent);
    /// The batch is over: every task has had its final event.
    fn finish(&self, summary: &Summary);
    /// Whether each task never sent (the batch was stopped) gets its own
    /// `cancelled` event, as the page shows every line. A sink that only counts
    /// says no and hears of them in one [`Sink::unsent`] call instead, so that
    /// stopping a run of millions does not first make every task left.
    fn each_unsent(&self) -> bool {
        true
    }
    /// `count` tasks were never sent; called only when `each_unsent` is false.
    fn unsent(&self, count: u64) {
        let _ = count;
    }
}

/// What a batch runs with.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    /// The shared client.
    pub(crate) deliverer: Arc<Deliverer>,
    /// Bounds deliveries in flight (shared by all batches of a process).
    pub(crate) in_flight: Arc<Semaphore>,
    /// Time between the starts of two deliveries (zero: no pacing).
    pub(crate) pace: Duration,
    /// Cancelled to stop the batch.
    pub(crate) stop: CancellationToken,
}

impl Runner {
    /// Delivers `tasks` (`count` of them, of a batch of `total`), telling `sink`
    /// everything; returns the summary.
    pub(crate) async fn run<S: Sink>(
        self,
        mut tasks: impl Iterator<Item = Queued>,
        (count, total): (u64, u64),
        sink: Arc<S>,
    ) -> Summary {
        let started = Instant::now();
        let mut summary = Summary::default();
        let mut deliveries = JoinSet::new();
        let mut schedule = Schedule::new(self.pace);
        let mut stopped_at = None;
        let mut sent = 0;
        for queued in tasks.by_ref() {
            let Some(permit) = self.wait_turn(&mut schedule).await else {
                stopped_at = Some(queued);
                break;
            };
            while let Some(done) = deliveries.try_join_next() {
                summary.count(done);
            }
            sent += 1;
            let job = Job {
                queued,
                total,
                sink: sink.clone(),
            };
            deliveries.spawn(job.deliver(self.deliverer.clone(), self.stop.clone(), permit));
        }
        if let Some(queued) = stopped_at {
            let unsent = count.saturating_sub(sent);
            if sink.each_unsent() {
                for queued in std::iter::once(queued).chain(tasks) {
                    sink.publish(cancelled_before_sending(total, queued));
                }
            } else {
                sink.unsent(unsent);
            }
            self.deliverer.metrics().cancelled_before_sending(unsent);
            summary.cancelled += unsent;
        }
        while let Some(done) = deliveries.join_next().await {
            summary.count(done);
        }
        summary.elapsed = started.elapsed();
        sink.finish(&summary);
        summary
    }

    /// Waits for the pace and a free slot; `None` once the batch is stopped.
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

impl Summary {
    fn count(&mut self, done: Result<State, tokio::task::JoinError>) {
        match done {
            Ok(State::Delivered) => self.delivered += 1,
            Ok(State::Cancelled) => self.cancelled += 1,
            Ok(_) => self.failed += 1,
            Err(err) => {
                tracing::error!(%err, "a delivery task ended abnormally; counted as failed");
                self.failed += 1;
            }
        }
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

    /// Keeps to the schedule when on time (so sub-millisecond paces average
    /// right), restarts it from `now` when far behind.
    fn started(&mut self, now: Instant) {
        if self.pace.is_zero() {
            return;
        }
        let base = match self.next {
            Some(due) if now.saturating_duration_since(due) < MAX_CATCH_UP => due,
            _ => now,
        };
        self.next = Some(base + self.pace);
    }
}

/// Delivers one task alone, telling `sink` each step (no `finish`): for the
/// durable outbox, whose workers take tasks one by one from Redis.
pub(crate) async fn deliver_one<S: Sink>(
    queued: Queued,
    total: u64,
    sink: Arc<S>,
    deliverer: Arc<Deliverer>,
    stop: CancellationToken,
    permit: OwnedSemaphorePermit,
) -> State {
    let job = Job {
        queued,
        total,
        sink,
    };
    job.deliver(deliverer, stop, permit).await
}

/// One task's delivery, run as its own tokio task.
struct Job<S> {
    queued: Queued,
    total: u64,
    sink: Arc<S>,
}

impl<S: Sink> Job<S> {
    async fn deliver(
        self,
        deliverer: Arc<Deliverer>,
        stop: CancellationToken,
        _permit: OwnedSemaphorePermit,
    ) -> State {
        let Job {
            queued,
            total,
            sink,
        } = self;
        let mut task = queued.task;
        // Stamped when its first delivery starts; a redelivery sends the same body.
        task.created_at = task.created_at.or(Some(now_millis()));
        let mut body = Vec::with_capacity(BODY_CAPACITY);
        let body = match serde_json::to_writer(&mut body, &task) {
            Ok(()) => Bytes::from(body),
            Err(err) => {
                let error = format!("the task could not be serialised: {err}");
                sink.publish(TaskEvent {
                    error: Some(error),
                    ..plain_event(
                        queued.index,
                        total,
                        State::Failed,
                        &queued.webhook_id,
                        Arc::new(task),
                    )
                });
                return State::Failed;
            }
        };
        let task = Arc::new(task);
        let earlier = queued.earlier_attempts;
        let event = |state, attempt| TaskEvent {
            attempt,
            ..plain_event(queued.index, total, state, &queued.webhook_id, task.clone())
        };
        sink.publish(event(State::Sending, earlier + 1));
        let message = Message {
            webhook_id: queued.webhook_id.clone(),
            body,
            earlier_attempts: earlier,
        };
        let delivery = deliverer
            .deliver(&message, &stop, |attempt, wait| {
                sink.publish(TaskEvent {
                    status: attempt.status,
                    error: attempt.error.clone(),
                    retry_in: Some(wait),
                    record: Some(attempt.clone()),
                    ..event(State::Retrying, attempt.number)
                });
            })
            .await;
        let (state, error) = match delivery.outcome {
            Outcome::Delivered => (State::Delivered, None),
            Outcome::Failed(reason) => (State::Failed, Some(reason)),
            Outcome::Cancelled(reason) => (State::Cancelled, Some(reason)),
        };
        let last = delivery.attempts.last();
        sink.publish(TaskEvent {
            status: last.and_then(|a| a.status),
            error,
            elapsed: Some(delivery.elapsed),
            record: last.cloned(),
            ..event(state, last.map_or(earlier, |a| a.number))
        });
        state
    }
}

/// An event with nothing but the task, its place and its state.
fn plain_event(
    index: u64,
    total: u64,
    state: State,
    webhook_id: &Arc<str>,
    task: Arc<Task>,
) -> TaskEvent {
    TaskEvent {
        index,
        total,
        state,
        attempt: 0,
        record: None,
        webhook_id: webhook_id.clone(),
        status: None,
        error: None,
        retry_in: None,
        elapsed: None,
        task,
    }
}

/// The final event of a task stopped before it was sent.
pub(crate) fn cancelled_before_sending(total: u64, queued: Queued) -> TaskEvent {
    TaskEvent {
        attempt: queued.earlier_attempts,
        error: Some("stopped before it was sent".to_owned()),
        ..plain_event(
            queued.index,
            total,
            State::Cancelled,
            &queued.webhook_id,
            Arc::new(queued.task),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_ids_are_msg_and_a_random_version_4_uuid() {
        let (a, b) = (new_webhook_id(), new_webhook_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), WEBHOOK_ID_LEN, "{id}");
            let uuid = id.strip_prefix("msg_").map(uuid::Uuid::parse_str);
            let version = uuid.and_then(Result::ok).map(|u| u.get_version_num());
            assert_eq!(version, Some(4), "{id}");
        }
    }

    #[test]
    fn the_schedule_keeps_time_when_on_time_and_restarts_when_far_behind() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(Duration::from_millis(10));
        schedule.started(t0);
        assert_eq!(schedule.next, Some(t0 + Duration::from_millis(10)));
        schedule.started(t0 + Duration::from_millis(12));
        assert_eq!(schedule.next, Some(t0 + Duration::from_millis(20)));
        let late = t0 + Duration::from_secs(5);
        schedule.started(late);
        assert_eq!(schedule.next, Some(late + Duration::from_millis(10)));
        let mut unpaced = Schedule::new(Duration::ZERO);
        unpaced.started(t0);
        assert_eq!(unpaced.next, None);
    }
}
