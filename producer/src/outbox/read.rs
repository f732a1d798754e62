//! Reading the durable outbox back: the batches listed, one batch's summary and
//! settings, and one task's record with its state.

use super::layout::{Keys, index_key};
use super::redis::{RedisStore, StoreError, timed};
use crate::deliveries::{BatchSummary, Counts, TaskRecord, TaskView};
use crate::runner::State;
use redis::AsyncCommands as _;
use std::collections::HashMap;

/// How many batches `GET /batches` lists, like the memory registry keeps.
const MAX_LISTED: isize = crate::batches::MAX_BATCHES as isize;

/// A batch's settings read back from Redis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    /// How many tasks it has.
    pub(crate) total: u64,
    /// Milliseconds between delivery starts.
    pub(crate) pace_ms: u64,
    /// Whether it was stopped.
    pub(crate) stopped: bool,
}

impl RedisStore {
    /// The batches kept, newest first; ids of expired ones are dropped from the index.
    pub(crate) async fn list(&self) -> Result<Vec<BatchSummary>, StoreError> {
        let mut conn = self.conn();
        let ids: Vec<String> = timed(conn.zrevrange(index_key(), 0, MAX_LISTED - 1)).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(Keys::of(id).meta);
        }
        let metas: Vec<HashMap<String, u64>> = timed(pipe.query_async(&mut conn)).await?;
        let mut summaries = Vec::with_capacity(ids.len());
        for (id, meta) in ids.iter().zip(metas) {
            match summary_of(id, &meta) {
                Some(summary) => summaries.push(summary),
                None => timed(conn.zrem::<_, _, ()>(index_key(), id)).await?,
            }
        }
        Ok(summaries)
    }

    /// The batch's summary; `None` when unknown or expired.
    pub(crate) async fn summary(&self, id: &str) -> Result<Option<BatchSummary>, StoreError> {
        let meta: HashMap<String, u64> = timed(self.conn().hgetall(Keys::of(id).meta)).await?;
        Ok(summary_of(id, &meta))
    }

    /// The batch's total, pace and stop flag; `None` when unknown or expired.
    pub(crate) async fn meta(&self, id: &str) -> Result<Option<Meta>, StoreError> {
        let fields: (Option<u64>, Option<u64>, Option<u64>) = timed(
            redis::cmd("HMGET")
                .arg(Keys::of(id).meta)
                .arg(&["total", "pace_ms", "stopped"])
                .query_async(&mut self.conn()),
        )
        .await?;
        Ok(match fields {
            (Some(total), pace_ms, stopped) => Some(Meta {
                total,
                pace_ms: pace_ms.unwrap_or(0),
                stopped: stopped.unwrap_or(0) != 0,
            }),
            _ => None,
        })
    }

    /// Task `index`'s record with its current state; `None` when missing.
    pub(crate) async fn record(
        &self,
        id: &str,
        index: u64,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let keys = Keys::of(id);
        let (json, state): (Option<String>, Option<String>) = timed(
            redis::pipe()
                .hget(&keys.tasks, index)
                .hget(&keys.states, index)
                .query_async(&mut self.conn()),
        )
        .await?;
        let (Some(json), Some(state)) = (json, state) else {
            return Ok(None);
        };
        let mut record: TaskRecord =
            serde_json::from_str(&json).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        record.state = parse_state(&state)?;
        Ok(Some(record))
    }

    /// The view of task `index`; `None` when it is not there.
    pub(crate) async fn task(&self, id: &str, index: u64) -> Result<Option<TaskView>, StoreError> {
        let record = self.record(id, index).await?;
        Ok(record.map(|r| TaskView::new(id, index, &r)))
    }
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

pub(super) fn parse_state(name: &str) -> Result<State, StoreError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("unknown task state {name:?}")))
}
