//! Writing a batch to Redis: creating it with its queue entries, storing each
//! step of a task, reserving paced starts, requeueing tasks to redeliver, and
//! stopping it (a flag, and a message every producer hears). Each write is one
//! atomic command, pipeline or script, so producers sharing a batch never see
//! it half written.

use super::layout::{APPLY, GROUP, Keys, REQUEUE, RESERVE, STOP_CHANNEL, index_key, queue_key};
use super::{Redis, timed};
use crate::delivery::attempt::now_millis;
use crate::delivery::task::State;
use crate::generator::BatchTasks;
use crate::record::{RedeliverRequest, Refusal, TaskRecord, index_of, task_id};
use crate::store::{CreateError, Stops, StoreError};
use futures_util::StreamExt as _;
use redis::AsyncCommands as _;
use std::time::Duration;
use taskhooks_shared::redis_client::RedisClient;
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

/// Writes a new batch and queues every task, all at once (`MULTI` … `EXEC`),
/// then, with `wait` (replicas, timeout), `WAIT`s for that many replicas to have
/// it, in the same pipeline: on the same connection to the same node, so that
/// after a failover it cannot count the replicas of a master that never had the
/// batch. Returns the batch's total and, with `wait`, how many replicas have it.
pub(super) async fn create(
    redis: &mut Redis,
    tasks: BatchTasks,
    pace: Duration,
    wait: Option<(u32, Duration)>,
) -> Result<(u64, Option<u32>), StoreError> {
    let id = tasks.batchid.clone();
    let keys = Keys::of(&id);
    let now = now_millis();
    let records: Vec<TaskRecord> = tasks.map(TaskRecord::new).collect();
    let total = records.len() as u64;
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI").ignore();
    pipe.hset_multiple(
        &keys.meta,
        &[
            ("total", total),
            ("created_at", now),
            ("run_started_at", now),
            (
                "pace_ms",
                u64::try_from(pace.as_millis()).unwrap_or(u64::MAX),
            ),
            ("next_start", 0),
            ("stopped", 0),
            ("queued", total),
            ("in_flight", 0),
            ("delivered", 0),
            ("failed", 0),
            ("cancelled", 0),
        ],
    )
    .ignore();
    let mut states = Vec::with_capacity(records.len());
    let mut bodies = Vec::with_capacity(records.len());
    for (index, record) in (1u64..).zip(&records) {
        states.push((index, State::Queued.name()));
        let json =
            serde_json::to_string(record).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        bodies.push((index, json));
    }
    if !records.is_empty() {
        pipe.hset_multiple(&keys.states, &states).ignore();
        pipe.hset_multiple(&keys.tasks, &bodies).ignore();
    }
    pipe.zadd(index_key(), &id, now).ignore();
    pipe.zremrangebyrank(index_key(), 0, -(MAX_INDEXED + 1))
        .ignore();
    let queue = queue_key();
    for index in 1..=total {
        pipe.cmd("XADD")
            .arg(&queue)
            .arg("*")
            .arg("batch")
            .arg(&id)
            .arg("index")
            .arg(index)
            .ignore();
    }
    pipe.cmd("EXEC").ignore();
    if let Some((replicas, timeout)) = wait {
        pipe.cmd("WAIT")
            .arg(replicas)
            .arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
    }
    let acknowledged: Vec<u32> = timed(pipe.query_async(redis)).await?;
    Ok((total, acknowledged.first().copied()))
}

/// Queues the tasks `request` chooses again, given every task's `states`; `None`
/// when the batch expired meanwhile.
pub(super) async fn requeue(
    redis: &mut Redis,
    id: &str,
    states: &[State],
    request: &RedeliverRequest,
) -> Result<Option<Result<Vec<u64>, Refusal>>, StoreError> {
    let keys = Keys::of(id);
    let chosen = match request.choose(states) {
        Ok(chosen) => chosen,
        Err(refusal) => return Ok(Some(Err(refusal))),
    };
    let busy: Vec<String> = timed(
        REQUEUE
            .key(&keys.meta)
            .key(&keys.states)
            .key(&keys.tasks)
            .key(&keys.events)
            .key(queue_key())
            .arg(id)
            .arg(
                chosen
                    .iter()
                    .filter_map(|&task| index_of(task))
                    .collect::<Vec<_>>(),
            )
            .invoke_async(redis),
    )
    .await?;
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
