//! Where batches live: in this process's memory ([`crate::batches`], the
//! default), or durably in Redis with `REDIS_URL` (laid out as [`layout`] says, stored by
//! [`redis`], read back by [`read`], delivered by [`worker`] and [`job`], streamed by [`events`]). The routes call these methods and do not
//! care which is in use.

pub(crate) mod events;
mod job;
pub(crate) mod layout;
mod read;
pub(crate) mod redis;
pub(crate) mod worker;

use crate::batches::Batch;
use crate::deliveries::{BatchSummary, RedeliverRequest, TaskView};
use crate::error::ApiError;
use crate::sse::{self, OpenStream};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use std::sync::Arc;
use std::time::Duration;

/// A batch just started: its id and size.
pub(crate) struct Started {
    /// The batch id.
    pub(crate) id: String,
    /// How many tasks it has.
    pub(crate) total: u64,
}

impl AppState {
    /// Whether deliveries survive a producer crash (the outbox is in Redis).
    pub(crate) fn durable(&self) -> bool {
        self.workers.is_some()
    }

    /// Starts a batch of `min..=max` tasks paced `pace` apart.
    pub(crate) async fn start(
        &self,
        min: u32,
        max: u32,
        pace: Duration,
    ) -> Result<Started, ApiError> {
        let Some(workers) = &self.workers else {
            let batch = self.start_batch(min, max, pace)?;
            return Ok(Started {
                id: batch.id.clone(),
                total: batch.total,
            });
        };
        let tasks = self.generate(min, max);
        workers.store.check_room(tasks.total).await??;
        let id = tasks.batchid.clone();
        let total = workers.store.create(&id, tasks, pace).await?;
        tracing::info!(batch = %id, total, ?pace, "batch queued in Redis");
        Ok(Started { id, total })
    }

    /// The batches kept, newest first.
    pub(crate) async fn list(&self) -> Result<Vec<BatchSummary>, ApiError> {
        match &self.workers {
            Some(workers) => Ok(workers.store.list().await?),
            None => Ok(self.registry.list()),
        }
    }

    /// One batch's summary.
    pub(crate) async fn summary(&self, id: String) -> Result<BatchSummary, ApiError> {
        match &self.workers {
            Some(workers) => workers
                .store
                .summary(&id)
                .await?
                .ok_or(ApiError::UnknownBatch(id)),
            None => Ok(self.in_memory(id)?.summary()),
        }
    }

    /// Task `index` (from 1, as sent in the path) of batch `id`.
    pub(crate) async fn task(&self, id: String, index: &str) -> Result<TaskView, ApiError> {
        let summary = self.summary(id).await?;
        let total = summary.total;
        let index: u64 = whole_number(index).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "the task index must be a number from 1 to {total}, got {index:?}"
            ))
        })?;
        let view = match &self.workers {
            Some(workers) => workers.store.task(&summary.batchid, index).await?,
            None => self.in_memory(summary.batchid)?.task(index),
        };
        view.ok_or(ApiError::UnknownTask { index, total })
    }

    /// Redelivers the tasks `request` chooses; their indexes.
    pub(crate) async fn redeliver_tasks(
        &self,
        id: String,
        request: &RedeliverRequest,
    ) -> Result<Vec<u64>, ApiError> {
        let Some(workers) = &self.workers else {
            let batch = self.in_memory(id)?;
            return Ok(self.redeliver(&batch, request)?);
        };
        match workers.store.redeliver(&id, request).await? {
            Some(chosen) => Ok(chosen?),
            None => Err(ApiError::UnknownBatch(id)),
        }
    }

    /// Stops batch `id`: nothing more of it is sent, by any producer.
    pub(crate) async fn stop_batch(&self, id: String) -> Result<(), ApiError> {
        match &self.workers {
            Some(workers) if workers.store.stop(&id).await? => Ok(()),
            Some(_) => Err(ApiError::UnknownBatch(id)),
            None => {
                self.in_memory(id)?.stop();
                Ok(())
            }
        }
    }

    /// The batch's events after `Last-Event-ID` as Server-Sent Events; 204 when
    /// a finished batch has nothing left.
    pub(crate) async fn events(
        &self,
        req: &HttpRequest,
        id: String,
    ) -> Result<HttpResponse, ApiError> {
        let last = last_event_id(req);
        let permit = self
            .event_streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::TooManyStreams {
                limit: self.max_event_streams,
            })?;
        let open = OpenStream::new(self.deliverer.metrics().follow(), permit);
        let connection = req.conn_data::<sse::Connection>().cloned();
        let closing = self.closing.clone();
        let Some(workers) = &self.workers else {
            let batch = self.in_memory(id)?;
            let after = parse_number(&last)?;
            let so_far = batch.events_so_far();
            if after > so_far {
                return Err(past_last_event(&last, so_far));
            }
            let rest = batch.read_after(after);
            if rest.at_end && rest.bytes.is_empty() {
                return Ok(HttpResponse::NoContent().finish());
            }
            return Ok(
                event_stream().streaming(sse::stream(batch, after, closing, open, connection))
            );
        };
        let after = if last.is_empty() {
            "0".to_owned()
        } else {
            last
        };
        let Some(after_id) = events::entry_id(&after) else {
            return Err(bad_last_event_id(&after));
        };
        let store = &workers.store;
        let Some(summary) = store.summary(&id).await? else {
            return Err(ApiError::UnknownBatch(id));
        };
        let position = events::position(store, &id).await?;
        // An id from Redis's future was never sent: a stream from there would wait
        // until the clock reached it, skipping every event before. One past the last
        // event but not in the future may be real: Redis may have lost its newest
        // entries in a restart (`appendfsync everysec`) or a failover.
        if after_id.0 > position.now_ms + FUTURE_SLACK_MS {
            return Err(future_event_id(&after, position.now_ms));
        }
        // Nothing is stored after `after`. A redelivery queued but not yet started
        // has written no event yet: the batch's counts, not its log, say whether
        // more will come.
        let nothing_left =
            after_id > position.last || (after_id == position.last && position.last_is_done);
        if !summary.counts.running() && nothing_left {
            return Ok(HttpResponse::NoContent().finish());
        }
        let stream = events::stream(store.clone(), id, after, closing, open, connection);
        Ok(event_stream().streaming(stream))
    }

    fn in_memory(&self, id: String) -> Result<Arc<Batch>, ApiError> {
        self.registry.get(&id).ok_or(ApiError::UnknownBatch(id))
    }
}

/// The headers of every event stream.
fn event_stream() -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"));
    response
}

/// The `Last-Event-ID` header, trimmed (empty when absent: from the start).
fn last_event_id(req: &HttpRequest) -> String {
    req.headers()
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?").trim().to_owned())
        .unwrap_or_default()
}

/// `text` as a whole number of type `T`: ASCII digits only (`parse` alone would
/// take "+1"), none past `T`'s range.
pub(crate) fn whole_number<T: std::str::FromStr>(text: &str) -> Option<T> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

/// A memory stream's event id: a whole number (0 for none).
fn parse_number(text: &str) -> Result<usize, ApiError> {
    if text.is_empty() {
        return Ok(0);
    }
    whole_number(text).ok_or_else(|| bad_last_event_id(text))
}

/// How far ahead of Redis's clock an event id may be and still be taken (clocks
/// of replicas after a failover may differ by that much).
const FUTURE_SLACK_MS: u64 = 10_000;

/// A memory stream's `Last-Event-ID` past the batch's last event, `last`: no
/// event was ever sent with it (the log lives as long as the process).
fn past_last_event(text: &str, last: usize) -> ApiError {
    ApiError::BadRequest(format!(
        "Last-Event-ID {text:?} is past this batch's last event ({last}): send the id of \
         the last event received, or none to read from the start"
    ))
}

/// A durable stream's `Last-Event-ID` from after `now_ms`, Redis's clock.
fn future_event_id(text: &str, now_ms: u64) -> ApiError {
    ApiError::BadRequest(format!(
        "Last-Event-ID {text:?} is not an event of this batch: its time is later than \
         Redis's clock ({now_ms} ms); send the id of the last event received, or none to \
         read from the start"
    ))
}

fn bad_last_event_id(text: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "Last-Event-ID must be the id of the last event received, as sent, got {text:?}"
    ))
}
