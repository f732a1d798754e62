//! What is recorded of a batch, whichever store keeps it: each task's record
//! (state, `webhook-id`, attempts), the batch's counts and summary, the JSON of
//! its `task` and `done` events, and which tasks a redelivery sends. Plain data
//! and pure functions.
//!
//! A task has one name outside the producer: its `id` (from 0), which the pages,
//! the API and the consumer's dashboard show. The stores number a batch's tasks
//! by their place in it, from 1 (the Redis layout's hash fields and queue
//! entries); [`index_of`] and [`task_id`] turn one into the other, and nothing
//! but the stores sees a place.

use crate::delivery::attempt::Attempt;
use crate::delivery::task::{Queued, State, TaskEvent, new_webhook_id};
use std::collections::HashSet;
use taskhooks_shared::Task;

/// The place in its batch (from 1, as the stores number tasks) of task `id`
/// (from 0); `None` past `u64`.
pub(crate) fn index_of(id: u64) -> Option<u64> {
    id.checked_add(1)
}

/// The id (from 0) of the task at `index` (from 1) of its batch.
pub(crate) fn task_id(index: u64) -> u64 {
    index.saturating_sub(1)
}

/// One attempt as `GET /batches/{id}/tasks/{task id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AttemptRecord {
    /// 1 for the task's first attempt, counting on over redeliveries.
    pub(crate) number: u32,
    /// When it started, Unix milliseconds.
    pub(crate) started_at: u64,
    /// How long it took, milliseconds.
    pub(crate) duration_ms: u64,
    /// The receiver's status, when it answered.
    pub(crate) status: Option<u16>,
    /// What went wrong, when something did.
    pub(crate) error: Option<String>,
    /// The first KiB of the response body, when the receiver answered.
    pub(crate) response: Option<String>,
}

impl From<&Attempt> for AttemptRecord {
    fn from(attempt: &Attempt) -> Self {
        AttemptRecord {
            number: attempt.number,
            started_at: attempt.started_at,
            duration_ms: u64::try_from(attempt.duration.as_millis()).unwrap_or(u64::MAX),
            status: attempt.status,
            error: attempt.error.clone(),
            response: attempt.response.clone(),
        }
    }
}

/// Everything kept about one task of a batch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct TaskRecord {
    /// The task, as sent (with `created_at` once its first delivery started).
    pub(crate) task: Task,
    /// Fixed when the batch is made, so every attempt and redelivery carries it.
    pub(crate) webhook_id: String,
    pub(crate) state: State,
    /// Every attempt so far, in order.
    pub(crate) attempts: Vec<AttemptRecord>,
}

impl TaskRecord {
    /// A task not yet sent, with a new `webhook-id`.
    pub(crate) fn new(task: Task) -> TaskRecord {
        TaskRecord {
            task,
            webhook_id: new_webhook_id(),
            state: State::Queued,
            attempts: Vec::new(),
        }
    }

    /// Takes in one step of the task's delivery: its state, the task as sent,
    /// and the attempt it reports unless already kept.
    pub(crate) fn apply(&mut self, event: &TaskEvent) {
        self.state = event.state;
        self.task.created_at = event.task.created_at;
        if let Some(attempt) = &event.record
            && attempt.number as usize > self.attempts.len()
        {
            self.attempts.push(AttemptRecord::from(attempt));
        }
    }

    /// The task, ready to be (re)delivered as task `index` of its batch.
    pub(crate) fn queued(&self, index: u64) -> Queued {
        Queued {
            index,
            task: self.task.clone(),
            webhook_id: self.webhook_id.as_str().into(),
            earlier_attempts: u32::try_from(self.attempts.len()).unwrap_or(u32::MAX),
        }
    }
}

/// How many of a batch's tasks stand where; the five add up to its total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Counts {
    /// Not started yet, or waiting for their redelivery.
    pub(crate) queued: u64,
    /// Sending or waiting to retry.
    pub(crate) in_flight: u64,
    /// Answered 2xx.
    pub(crate) delivered: u64,
    /// Given up.
    pub(crate) failed: u64,
    /// Stopped before delivery.
    pub(crate) cancelled: u64,
}

impl Counts {
    pub(crate) fn of(states: impl IntoIterator<Item = State>) -> Counts {
        let mut counts = Counts::default();
        for state in states {
            *counts.bucket(state) += 1;
        }
        counts
    }

    /// The count a task in `state` is counted in.
    fn bucket(&mut self, state: State) -> &mut u64 {
        match state {
            State::Queued => &mut self.queued,
            State::Sending | State::Retrying => &mut self.in_flight,
            State::Delivered => &mut self.delivered,
            State::Failed => &mut self.failed,
            State::Cancelled => &mut self.cancelled,
        }
    }

    /// A task went from `old` to `new`; whether it changed counts.
    pub(crate) fn moved(&mut self, old: State, new: State) -> bool {
        let before = *self;
        let from = self.bucket(old);
        *from = from.saturating_sub(1);
        *self.bucket(new) += 1;
        *self != before
    }

    /// Whether some task has not reached its final state.
    pub(crate) fn running(&self) -> bool {
        self.queued + self.in_flight > 0
    }
}

/// A batch as `GET /batches` and `GET /batches/{id}` show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct BatchSummary {
    pub(crate) batchid: String,
    pub(crate) total: u64,
    /// When it was made, Unix milliseconds.
    pub(crate) created_at: u64,
    /// "running" or "done".
    pub(crate) state: &'static str,
    /// Its tasks by state.
    #[serde(flatten)]
    pub(crate) counts: Counts,
    /// Where to follow it.
    pub(crate) events_url: String,
    /// Where to stop it.
    pub(crate) stop_url: String,
    /// Where to redeliver its tasks.
    pub(crate) redeliver_url: String,
}

impl BatchSummary {
    /// The summary of batch `id`.
    pub(crate) fn new(id: &str, total: u64, created_at: u64, counts: Counts) -> BatchSummary {
        BatchSummary {
            batchid: id.to_owned(),
            total,
            created_at,
            state: if counts.running() { "running" } else { "done" },
            counts,
            events_url: format!("/batches/{id}/events"),
            stop_url: format!("/batches/{id}/stop"),
            redeliver_url: format!("/batches/{id}/redeliver"),
        }
    }
}

/// One task as `GET /batches/{id}/tasks/{task id}` shows it; the task's id is
/// its `task.id`.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct TaskView {
    pub(crate) batchid: String,
    pub(crate) state: State,
    /// Its `webhook-id`.
    pub(crate) webhook_id: String,
    pub(crate) task: Task,
    pub(crate) attempts: Vec<AttemptRecord>,
}

impl TaskView {
    /// The view of `record`, a task of batch `batchid`.
    pub(crate) fn new(batchid: &str, record: &TaskRecord) -> TaskView {
        TaskView {
            batchid: batchid.to_owned(),
            state: record.state,
            webhook_id: record.webhook_id.clone(),
            task: record.task.clone(),
            attempts: record.attempts.clone(),
        }
    }
}

/// The `data` of an `event: done`: the whole batch's final counts. The Redis
/// store's `APPLY` script writes the same JSON; the test
/// `store::redis::layout::tests::the_scripts_done_event_is_the_one_rust_writes` holds the two together.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoneData {
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    pub(crate) cancelled: u64,
    /// From the start of the batch's last run (its creation, or its last
    /// redelivery) to its end, in milliseconds.
    pub(crate) elapsed_ms: u64,
}

impl DoneData {
    /// The `done` of a batch with these counts, run for `elapsed_ms`.
    pub(crate) fn of(counts: &Counts, elapsed_ms: u64) -> DoneData {
        DoneData {
            delivered: counts.delivered,
            failed: counts.failed,
            cancelled: counts.cancelled,
            elapsed_ms,
        }
    }
}

/// The `data` of an `event: task`: the task (by its `task.id`), the batch's
/// size, and the step.
#[derive(serde::Serialize)]
pub(crate) struct TaskData<'a> {
    total: u64,
    state: State,
    attempt: u32,
    status: Option<u16>,
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_in_ms: Option<u128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<u128>,
    webhook_id: &'a str,
    task: &'a Task,
}

impl<'a> TaskData<'a> {
    /// The data of `event`.
    pub(crate) fn of(event: &'a TaskEvent) -> TaskData<'a> {
        TaskData {
            total: event.total,
            state: event.state,
            attempt: event.attempt,
            status: event.status,
            error: event.error.as_deref(),
            retry_in_ms: event.retry_in.map(|d| d.as_millis()),
            elapsed_ms: event.elapsed.map(|d| d.as_millis()),
            webhook_id: &event.webhook_id,
            task: &event.task,
        }
    }
}

/// What `POST /batches/{id}/redeliver` asks for: `{}` for every failed or
/// cancelled task, `{"tasks": [3, 7]}` for those.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedeliverRequest {
    /// The tasks' ids, from 0; none means every failed or cancelled task.
    pub(crate) tasks: Option<Vec<u64>>,
}

/// Why a redelivery was refused (nothing was redelivered). Tasks are named by
/// their ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The list is empty or names a task twice; the text says which.
    BadList(String),
    /// A task id is not in `0..total`.
    OutOfRange { id: u64, total: u64 },
    /// These tasks are still queued, sending or retrying.
    InFlight(Vec<u64>),
}

impl RedeliverRequest {
    /// Which tasks (by id) to redeliver, given every task's state in order;
    /// refused as a whole when any asked task is not yet final.
    pub(crate) fn choose(&self, states: &[State]) -> Result<Vec<u64>, Refusal> {
        let total = states.len() as u64;
        let state = |id: u64| states[id as usize];
        let Some(asked) = &self.tasks else {
            return Ok((0..total)
                .filter(|&i| matches!(state(i), State::Failed | State::Cancelled))
                .collect());
        };
        if asked.is_empty() {
            return Err(Refusal::BadList(
                "\"tasks\" is empty; name at least one task, or send {} to redeliver every \
                 failed or cancelled task"
                    .to_owned(),
            ));
        }
        let mut seen = HashSet::new();
        if let Some(twice) = asked.iter().find(|&&i| !seen.insert(i)) {
            return Err(Refusal::BadList(format!(
                "\"tasks\" names task {twice} twice; name each task once"
            )));
        }
        if let Some(&id) = asked.iter().find(|&&i| i >= total) {
            return Err(Refusal::OutOfRange { id, total });
        }
        let busy: Vec<u64> = asked
            .iter()
            .copied()
            .filter(|&i| !state(i).is_final())
            .collect();
        if busy.is_empty() {
            Ok(asked.clone())
        } else {
            Err(Refusal::InFlight(busy))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    fn choose(tasks: Option<Vec<u64>>, states: &[State]) -> Result<Vec<u64>, Refusal> {
        RedeliverRequest { tasks }.choose(states)
    }

    #[test]
    fn an_empty_request_redelivers_every_failed_or_cancelled_task() {
        let states = [Delivered, Failed, Cancelled, Delivered, Failed];
        assert_eq!(choose(None, &states), Ok(vec![1, 2, 4]));
        assert_eq!(choose(None, &[Delivered, Sending]), Ok(vec![]));
    }

    #[test]
    fn a_list_may_name_delivered_tasks_but_never_unfinished_ones() {
        let states = [Delivered, Failed, Retrying, Queued];
        assert_eq!(choose(Some(vec![0, 1]), &states), Ok(vec![0, 1]));
        assert_eq!(
            choose(Some(vec![0, 2, 3]), &states),
            Err(Refusal::InFlight(vec![2, 3]))
        );
        let out = choose(Some(vec![1, 4]), &states);
        assert_eq!(out, Err(Refusal::OutOfRange { id: 4, total: 4 }));
        assert_eq!(
            choose(Some(vec![0]), &states),
            Ok(vec![0]),
            "task 0 is the first"
        );
        assert!(matches!(
            choose(Some(vec![]), &states),
            Err(Refusal::BadList(_))
        ));
        let twice = choose(Some(vec![1, 1]), &states);
        assert!(matches!(twice, Err(Refusal::BadList(why)) if why.contains("task 1 twice")));
        assert_eq!((index_of(0), task_id(1)), (Some(1), 0));
    }

    fn event(state: State, record: Option<Attempt>, task: &Task) -> TaskEvent {
        TaskEvent {
            index: 1,
            total: 1,
            state,
            attempt: record.as_ref().map_or(0, |a| a.number),
            record,
            webhook_id: "msg_x".into(),
            status: None,
            error: None,
            retry_in: None,
            elapsed: None,
            task: std::sync::Arc::new(task.clone()),
        }
    }

    fn attempt(number: u32, status: u16) -> Attempt {
        Attempt {
            number,
            started_at: 1_000,
            status: Some(status),
            error: None,
            duration: std::time::Duration::from_millis(3),
            response: Some("{}".to_owned()),
        }
    }

    #[test]
    fn a_record_keeps_each_attempt_once_and_the_task_as_sent() {
        let task: Task = serde_json::from_value(serde_json::json!({
            "batchid": "b", "id": 0, "owner": "Ann", "priority": "Low"
        }))
        .expect("a task");
        let mut record = TaskRecord::new(task.clone());
        let sent = Task {
            created_at: Some(42),
            ..task
        };
        record.apply(&event(Sending, None, &sent));
        record.apply(&event(Retrying, Some(attempt(1, 503)), &sent));
        // The final event of a task cancelled while waiting repeats its last attempt.
        record.apply(&event(Cancelled, Some(attempt(1, 503)), &sent));

        assert_eq!(record.state, Cancelled);
        assert_eq!(record.task.created_at, Some(42));
        assert_eq!(record.attempts.len(), 1, "{:?}", record.attempts);
        assert_eq!(record.attempts[0].duration_ms, 3);
        let again = record.queued(1);
        assert_eq!(
            (again.earlier_attempts, &*again.webhook_id),
            (1, &*record.webhook_id)
        );
        assert!(record.webhook_id.starts_with("msg_"));
    }

    #[test]
    fn counts_add_up_and_say_whether_the_batch_runs() {
        let counts = Counts::of([Queued, Sending, Retrying, Delivered, Failed, Cancelled]);
        let expected = Counts {
            queued: 1,
            in_flight: 2,
            delivered: 1,
            failed: 1,
            cancelled: 1,
        };
        assert_eq!(counts, expected);
        assert!(counts.running());
        assert!(!Counts::of([Delivered, Failed]).running());
    }
}
