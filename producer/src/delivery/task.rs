//! One task's delivery, told step by step: where a task stands ([`State`]), each
//! step as a [`TaskEvent`] to a [`Sink`], and [`deliver_task`], which signs and
//! sends it through the [`Deliverer`] and tells the sink `sending`, each
//! `retrying` and the final state. The page's pipeline (`crate::worker`) and
//! `producer send` both deliver through it; only their sinks differ.

use super::Deliverer;
use super::Message;
use super::attempt::{Attempt, Outcome, now_millis};
use bytes::Bytes;
use rand::RngExt as _;
use std::sync::Arc;
use std::time::Duration;
use taskhooks_shared::Task;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

/// Bytes reserved for a task's JSON body: a generated task's body is shorter,
/// so it is never grown.
const BODY_CAPACITY: usize = 256;

/// Where a task stands. Its names, as the API, the events and the Redis store
/// write them, are [`State::name`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl State {
    const ALL: [State; 6] = [
        State::Queued,
        State::Sending,
        State::Retrying,
        State::Delivered,
        State::Failed,
        State::Cancelled,
    ];

    /// The state's one name, everywhere it is written.
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sending => "sending",
            State::Retrying => "retrying",
            State::Delivered => "delivered",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    /// The state named `name`.
    pub(crate) fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether nothing more will happen to the task (until it is redelivered).
    pub(crate) fn is_final(self) -> bool {
        matches!(self, State::Delivered | State::Failed | State::Cancelled)
    }
}

impl serde::Serialize for State {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for State {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        State::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown task state {name:?}")))
    }
}

/// One step of one task.
#[derive(Debug, Clone)]
pub(crate) struct TaskEvent {
    /// The task's position in the batch, from 1.
    pub(crate) index: u64,
    pub(crate) total: u64,
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
    pub(crate) task: Arc<Task>,
}

/// A task to deliver: its place in the batch, its fixed `webhook-id`, and how
/// many attempts earlier deliveries made (a redelivery numbers on from them).
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    /// The task's position in the batch, from 1.
    pub(crate) index: u64,
    pub(crate) task: Task,
    /// Lets the receiver drop what it already took.
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

/// Hears each step of a task's delivery; a task's own events arrive in order.
pub(crate) trait Sink: Send + Sync + 'static {
    fn publish(&self, event: TaskEvent);
}

/// Delivers `queued` (task of a batch of `total`), telling `sink` each step, and
/// answers its final state. `permit` (a slot under the in-flight bound) is held
/// until the delivery is over; once `stop` is cancelled no further attempt starts.
pub(crate) async fn deliver_task<S: Sink>(
    queued: Queued,
    total: u64,
    sink: &S,
    deliverer: &Deliverer,
    stop: &CancellationToken,
    _permit: OwnedSemaphorePermit,
) -> State {
    let mut task = queued.task;
    // Stamped when its first delivery starts; a redelivery sends the same body.
    task.created_at = task.created_at.or(Some(now_millis()));
    let mut body = Vec::with_capacity(BODY_CAPACITY);
    if let Err(err) = serde_json::to_writer(&mut body, &task) {
        let error = format!("the task could not be serialised: {err}");
        let event = plain_event(&queued.webhook_id, queued.index, total, Arc::new(task));
        sink.publish(TaskEvent {
            error: Some(error),
            ..event(State::Failed)
        });
        return State::Failed;
    }
    let task = Arc::new(task);
    let earlier = queued.earlier_attempts;
    let plain = plain_event(&queued.webhook_id, queued.index, total, task);
    let event = |state, attempt| TaskEvent {
        attempt,
        ..plain(state)
    };
    sink.publish(event(State::Sending, earlier + 1));
    let message = Message {
        webhook_id: queued.webhook_id.clone(),
        body: Bytes::from(body),
        earlier_attempts: earlier,
    };
    let delivery = deliverer
        .deliver(&message, stop, |attempt, wait| {
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

/// Makes the events of one task that carry nothing but its place and a state.
fn plain_event(
    webhook_id: &Arc<str>,
    index: u64,
    total: u64,
    task: Arc<Task>,
) -> impl Fn(State) -> TaskEvent {
    let webhook_id = webhook_id.clone();
    move |state| TaskEvent {
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
        task: task.clone(),
    }
}

/// The final event of a task stopped before it was sent.
pub(crate) fn cancelled_before_sending(total: u64, queued: Queued) -> TaskEvent {
    let event = plain_event(
        &queued.webhook_id,
        queued.index,
        total,
        Arc::new(queued.task),
    );
    TaskEvent {
        attempt: queued.earlier_attempts,
        error: Some("stopped before it was sent".to_owned()),
        ..event(State::Cancelled)
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
    fn every_state_has_one_name_read_back_as_itself() {
        for state in State::ALL {
            assert_eq!(State::parse(state.name()), Some(state));
            let json = serde_json::to_value(state).expect("a name");
            assert_eq!(json, state.name());
            let back: State = serde_json::from_value(json).expect("read back");
            assert_eq!(back, state);
        }
        assert_eq!(State::parse("Queued"), None);
        assert!(serde_json::from_str::<State>("\"done\"").is_err());
    }
}
