//! Reading a batch back from Redis: the batches listed, one batch's summary and
//! settings, one task's record with its state, every task's state, and where
//! its event log stands.

use super::events::{Entries, entry_id, is_done};
use super::layout::{Keys, index_key};
use super::{Redis, timed};
use crate::delivery::task::State;
use crate::record::{BatchSummary, Counts, TaskRecord};
use crate::store::{Limit, Position, Settings, StoreError};
use redis::AsyncCommands as _;
use std::collections::HashMap;

/// How many batches `GET /batches` lists, as many as memory keeps.
const MAX_LISTED: isize = crate::store::memory::MAX_BATCHES as isize;
/// How far ahead of Redis's clock an event id may be and still be taken.
const FUTURE_SLACK_MS: u64 = 10_000;

/// The batches kept, newest first; ids of expired ones are dropped from the index.
pub(super) async fn list(redis: &mut Redis) -> Result<Vec<BatchSummary>, StoreError> {
    let ids: Vec<String> = timed(redis.zrevrange(index_key(), 0, MAX_LISTED - 1)).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.hgetall(Keys::of(id).meta);
    }
    let metas: Vec<HashMap<String, u64>> = timed(pipe.query_async(redis)).await?;
    let mut summaries = Vec::with_capacity(ids.len());
    for (id, meta) in ids.iter().zip(metas) {
        match summary_of(id, &meta) {
            Some(summary) => summaries.push(summary),
            None => timed(redis.zrem::<_, _, ()>(index_key(), id)).await?,
        }
    }
    Ok(summaries)
}

/// The batch's summary; `None` when unknown or expired.
pub(super) async fn summary(
    redis: &mut Redis,
    id: &str,
) -> Result<Option<BatchSummary>, StoreError> {
    let meta: HashMap<String, u64> = timed(redis.hgetall(Keys::of(id).meta)).await?;
    Ok(summary_of(id, &meta))
}

/// The batch's total, pace and stop flag; `None` when unknown or expired.
pub(super) async fn settings(redis: &mut Redis, id: &str) -> Result<Option<Settings>, StoreError> {
    let fields: (Option<u64>, Option<u64>, Option<u64>, Option<u64>) = timed(
        redis::cmd("HMGET")
            .arg(Keys::of(id).meta)
            .arg(&["total", "pace_ms", "stopped", "run"])
            .query_async(redis),
    )
    .await?;
    Ok(match fields {
        (Some(total), pace_ms, stopped, run) => Some(Settings {
            total,
            pace_ms: pace_ms.unwrap_or(0),
            stopped: stopped.unwrap_or(0) != 0,
            run: run.unwrap_or(0),
        }),
        _ => None,
    })
}

/// Every task's state, in order; `None` when the batch is unknown or expired.
pub(super) async fn states(redis: &mut Redis, id: &str) -> Result<Option<Vec<State>>, StoreError> {
    let states: HashMap<u64, String> = timed(redis.hgetall(Keys::of(id).states)).await?;
    let Some(settings) = settings(redis, id).await? else {
        return Ok(None);
    };
    ordered_states(settings.total, states).map(Some)
}

/// Task `index`'s record with its current state; `None` when missing.
pub(super) async fn record(
    redis: &mut Redis,
    id: &str,
    index: u64,
) -> Result<Option<TaskRecord>, StoreError> {
    let keys = Keys::of(id);
    let (json, state): (Option<String>, Option<String>) = timed(
        redis::pipe()
            .hget(&keys.tasks, index)
            .hget(&keys.states, index)
            .query_async(redis),
    )
    .await?;
    let (Some(json), Some(state)) = (json, state) else {
        return Ok(None);
    };
    let mut record: TaskRecord =
        serde_json::from_str(&json).map_err(|err| StoreError::Corrupt(err.to_string()))?;
    record.state = State::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown task state {state:?}")))?;
    Ok(Some(record))
}

/// The batch's last event, counts and Redis's clock, in one round trip; `None`
/// for an unknown batch.
pub(super) async fn position(redis: &mut Redis, id: &str) -> Result<Option<Position>, StoreError> {
    let keys = Keys::of(id);
    let mut pipe = redis::pipe();
    pipe.hgetall(&keys.meta)
        .cmd("XREVRANGE")
        .arg(&keys.events)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .cmd("TIME");
    let (meta, last, (secs, micros)): (HashMap<String, u64>, Entries, (u64, u64)) =
        timed(pipe.query_async(redis)).await?;
    let Some(summary) = summary_of(id, &meta) else {
        return Ok(None);
    };
    let (last, last_is_done) = last.first().map_or(((0, 0), false), |(last_id, fields)| {
        (entry_id(last_id).unwrap_or((0, 0)), is_done(fields))
    });
    let now_ms = secs * 1000 + micros / 1000;
    Ok(Some(Position {
        last,
        last_is_done,
        running: summary.counts.running(),
        limit: Limit::Clock {
            now_ms,
            slack_ms: FUTURE_SLACK_MS,
        },
    }))
}

/// The summary of batch `id` from its hash; `None` when the hash is gone.
fn summary_of(id: &str, meta: &HashMap<String, u64>) -> Option<BatchSummary> {
    if meta.is_empty() {
        return None;
    }
    let field = |name: &str| meta.get(name).copied().unwrap_or(0);
    let counts = Counts {
        queued: field("queued"),
        in_flight: field("in_flight"),
        delivered: field("delivered"),
        failed: field("failed"),
        cancelled: field("cancelled"),
    };
    Some(BatchSummary::new(
        id,
        field("total"),
        field("created_at"),
        counts,
    ))
}

/// Every task's state of a batch of `total`, in order, as stored.
fn ordered_states(total: u64, states: HashMap<u64, String>) -> Result<Vec<State>, StoreError> {
    let mut ordered = vec![State::Queued; usize::try_from(total).unwrap_or(0)];
    for (index, name) in states {
        let slot = index
            .checked_sub(1)
            .and_then(|i| ordered.get_mut(i as usize));
        if let Some(slot) = slot {
            *slot = State::parse(&name)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown task state {name:?}")))?;
        }
    }
    Ok(ordered)
}
