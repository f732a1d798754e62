//! Writing a batch to Redis: creating it with its queue entries, storing each
//! step of a task, reserving paced starts, requeueing tasks to redeliver, and
//! stopping it (a flag, and a message every producer hears). Each write is one
//! atomic command, pipeline or script, so producers sharing a batch never see
//! it half written.

use super::layout::{
    APPLY, CREATE, GROUP, Keys, REQUEUE, RESERVE, STOP_CHANNEL, index_key, queue_key,
};
use super::{Redis, timed};
use crate::delivery::attempt::now_millis;
use crate::delivery::task::State;
use crate::generator::BatchTasks;
use crate::record::{RedeliverRequest, Refusal, TaskRecord, index_of, task_id};
use crate::store::{CreateError, Stops, StoreError};
use futures_util::StreamExt as _;
use redis::AsyncCommands as _;
use std::time::Duration;
use taskhooks_shared::redis_client::{RedisClient, evalsha};
use tokio_util::sync::CancellationToken;

/// How many batch ids the index keeps; the batches themselves expire.
const MAX_INDEXED: isize = 1000;
/// How long listening for stops waits after Redis failed before trying again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Makes the queue and its consumer group, unless they exist.
pub(super) async fn ensure_group(
    redis: &mut (impl redis::aio::ConnectionLike + Send),
) -> Result<(), StoreError> {
    let made = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(queue_key())
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(redis)
        .await;
    match made {
        Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
        other => Ok(other?),
    }
}

/// Refuses a batch of `total` tasks when the queue (every task not yet final:
/// acknowledged entries are deleted) would go past `max`. Two batches checked at
/// the same moment may both pass: the limit can be passed by the batches being
/// started at once, never by more.
pub(super) async fn check_room(redis: &mut Redis, total: u64, max: u64) -> Result<(), CreateError> {
    let waiting: u64 = timed(redis::cmd("XLEN").arg(queue_key()).query_async(redis)).await?;
    if waiting.saturating_add(total) <= max {
        return Ok(());
    }
    Err(CreateError::OutboxFull {
        waiting,
        total,
        max,
    })
}

/// Writes a new batch and queues every task, at once ([`CREATE`]), then, with
/// `wait` (replicas, timeout), `WAIT`s for that many replicas to have it, in the
/// same pipeline (`RedisConnection::eval_then_wait`). Returns the batch's total
/// and, with `wait`, how many replicas have it.
pub(super) async fn create(
    redis: &mut Redis,
    tasks: BatchTasks,
    pace: Duration,
    wait: Option<(u32, Duration)>,
) -> Result<(u64, Option<u32>), StoreError> {
    let id = tasks.batchid.clone();
    let keys = Keys::of(&id);
    let records: Vec<TaskRecord> = tasks.map(TaskRecord::new).collect();
    let (index, queue) = (index_key(), queue_key());
    let key_names = [&keys.meta, &keys.states, &keys.tasks, &index, &queue];
    let mut eval = evalsha(&CREATE, &key_names.map(String::as_str));
    eval.arg(&id)
        .arg(now_millis())
        .arg(u64::try_from(pace.as_millis()).unwrap_or(u64::MAX))
        .arg(MAX_INDEXED)
        .arg(State::Queued.name());
    for record in &records {
        let json =
            serde_json::to_string(record).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        eval.arg(json);
    }
    let (_, acknowledged) = timed(redis.eval_then_wait(&CREATE, &eval, wait)).await?;
    Ok((records.len() as u64, acknowledged))
}

/// Queues the tasks `request` chooses again, given every task's `states`; `None`
/// when the batch expired meanwhile. With `wait`, its replicas' `WAIT` goes in the
/// same pipeline, and too few is an error (the tasks are queued all the same:
/// see docs/api.md).
pub(super) async fn requeue(
    redis: &mut Redis,
    id: &str,
    states: &[State],
    request: &RedeliverRequest,
    wait: Option<(u32, Duration)>,
) -> Result<Option<Result<Vec<u64>, Refusal>>, StoreError> {
    let keys = Keys::of(id);
    let chosen = match request.choose(states) {
        Ok(chosen) => chosen,
        Err(refusal) => return Ok(Some(Err(refusal))),
    };
    let queue = queue_key();
    let key_names = [&keys.meta, &keys.states, &keys.tasks, &keys.events, &queue];
    let mut eval = evalsha(&REQUEUE, &key_names.map(String::as_str));
    eval.arg(id).arg(
        chosen
            .iter()
            .filter_map(|&task| index_of(task))
            .collect::<Vec<_>>(),
    );
    let (answer, acknowledged) = timed(redis.eval_then_wait(&REQUEUE, &eval, wait)).await?;
    let busy: Vec<String> =
        redis::from_redis_value(answer).map_err(|err| StoreError::Corrupt(err.to_string()))?;
    if let (Some((wanted, _)), Some(acknowledged)) = (wait, acknowledged)
        && acknowledged < wanted
    {
        return Err(not_replicated("the redelivery", acknowledged, wanted));
    }
    if busy.first().is_some_and(|b| b == "gone") {
        return Ok(None);
    }
    if busy.is_empty() {
        return Ok(Some(Ok(chosen)));
    }
    let busy = busy
        .iter()
        .filter_map(|b| b.parse().ok())
        .map(task_id)
        .collect();
    Ok(Some(Err(Refusal::InFlight(busy))))
}

/// The error of a write that reached `acknowledged` replicas of the `wanted`.
pub(super) fn not_replicated(what: &str, acknowledged: u32, wanted: u32) -> StoreError {
    StoreError::Redis(format!(
        "{what} reached {acknowledged} Redis replica(s) of the {wanted} it must reach \
         (REDIS_WAIT_REPLICAS) in time"
    ))
}

/// Marks the batch stopped and tells every producer; `false` when unknown.
pub(super) async fn stop(redis: &mut Redis, id: &str) -> Result<bool, StoreError> {
    let meta = Keys::of(id).meta;
    let exists: bool = timed(redis.exists(&meta)).await?;
    if exists {
        timed(redis.hset::<_, _, _, ()>(&meta, "stopped", 1)).await?;
        timed(redis.publish::<_, _, ()>(STOP_CHANNEL, id)).await?;
    }
    Ok(exists)
}

/// Cancels, in `stops`, the deliveries of each batch stopped on any producer,
/// until `shutdown`.
pub(super) async fn hear_stops(client: RedisClient, stops: &Stops, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Err(err) = listen(&client, stops, &shutdown).await {
            tracing::warn!(%err, "listening for stopped batches failed; trying again");
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(RETRY_DELAY) => {}
            }
        }
    }
}

async fn listen(
    client: &RedisClient,
    stops: &Stops,
    shutdown: &CancellationToken,
) -> Result<(), StoreError> {
    let (mut sink, mut stream) = timed(client.pubsub()).await?.split();
    timed(sink.subscribe(STOP_CHANNEL)).await?;
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            message = stream.next() => message,
        };
        let Some(message) = message else {
            return Err(StoreError::Redis("the stop channel closed".to_owned()));
        };
        stops.cancel(&String::from_utf8_lossy(message.get_payload_bytes()));
    }
}

/// Stores one step of a task (see [`APPLY`]); `false` when the batch is gone.
pub(super) async fn apply(
    redis: &mut Redis,
    (id, index): (&str, u64),
    record: &TaskRecord,
    data: &str,
    keep_finished: Duration,
) -> Result<bool, StoreError> {
    let keys = Keys::of(id);
    let json = serde_json::to_string(record).map_err(|err| StoreError::Corrupt(err.to_string()))?;
    let applied: i64 = timed(
        APPLY
            .key(&keys.meta)
            .key(&keys.states)
            .key(&keys.tasks)
            .key(&keys.events)
            .arg(index)
            .arg(record.state.name())
            .arg(json)
            .arg(data)
            .arg(keep_finished.as_secs().max(1))
            .invoke_async(redis),
    )
    .await?;
    Ok(applied >= 0)
}

/// How long to wait for the batch's next delivery start (see [`RESERVE`]).
pub(super) async fn reserve_start(
    redis: &mut Redis,
    id: &str,
    pace_ms: u64,
) -> Result<Duration, StoreError> {
    if pace_ms == 0 {
        return Ok(Duration::ZERO);
    }
    let wait: u64 = timed(
        RESERVE
            .key(Keys::of(id).meta)
            .arg(pace_ms)
            .invoke_async(redis),
    )
    .await?;
    Ok(Duration::from_millis(wait))
}
