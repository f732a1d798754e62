//! A batch's tasks: one task with its attempts, and redelivering tasks.

use crate::error::ApiError;
use crate::record::{RedeliverRequest, TaskView, index_of};
use crate::routes::batches::{batch_id, content_type, require_json};
use crate::state::AppState;
use crate::store::whole_number;
use actix_web::{HttpRequest, HttpResponse, web};
use taskhooks_shared::json::from_object;
use taskhooks_shared::web::read_body;

/// Largest body of `POST /batches/{id}/redeliver`: a list of every task of the
/// largest batch (10,000 ids of up to 6 characters) fits.
const MAX_REDELIVER_BODY_BYTES: usize = 80 * 1024;

/// `GET /batches/{id}/tasks/{task}`: the task whose id (from 0) is `{task}`, its
/// state and every attempt.
pub(crate) async fn task(
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, task) = path.into_inner();
    let id = batch_id(id)?;
    let Some(summary) = state.store.summary(&id).await? else {
        return Err(ApiError::UnknownBatch(id));
    };
    let total = summary.total;
    let task: u64 = whole_number(&task).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "the task id must be a number from 0 to {}, got {task:?}",
            total.saturating_sub(1)
        ))
    })?;
    let unknown = ApiError::UnknownTask { id: task, total };
    let Some(index) = index_of(task) else {
        return Err(unknown);
    };
    match state.store.record(&id, index).await? {
        Some(record) => Ok(HttpResponse::Ok().json(TaskView::new(&id, &record))),
        None => Err(unknown),
    }
}

/// `POST /batches/{id}/redeliver`, `{}` or `{"tasks": [3, 7]}` as JSON: sends
/// those tasks (by id) again with their `webhook-id`s; 202 with their ids.
pub(crate) async fn redeliver(
    req: HttpRequest,
    payload: web::Payload,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = batch_id(id.into_inner())?;
    require_json(&content_type(&req))?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let body = read_body(&req, payload, MAX_REDELIVER_BODY_BYTES).await?;
    let request = parse(&body)?;
    let redelivering = match state.store.redeliver(&id, &request).await? {
        Some(chosen) => chosen?,
        None => return Err(ApiError::UnknownBatch(id)),
    };
    if !redelivering.is_empty() {
        tracing::info!(batch = %id, tasks = ?redelivering, "redelivering");
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "batchid": id,
        "redelivering": redelivering,
        "events_url": format!("/batches/{id}/events"),
    })))
}

/// The redeliver body: empty or `{}` for every failed or cancelled task.
fn parse(body: &[u8]) -> Result<RedeliverRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RedeliverRequest::default());
    }
    from_object(body).map_err(|err| {
        ApiError::BadRequest(format!(
            "the body must be {{}} (every failed or cancelled task) or {{\"tasks\": [3, 7]}} \
             (those tasks, by their ids from 0): {err}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redeliver_bodies_are_read_strictly() {
        assert_eq!(parse(b"").ok(), Some(RedeliverRequest::default()));
        assert_eq!(parse(b"{}").ok(), Some(RedeliverRequest::default()));
        let listed = parse(br#"{"tasks":[3,7]}"#).ok();
        assert_eq!(listed.and_then(|r| r.tasks), Some(vec![3, 7]));
        for bad in [&br#"{"task":[1]}"#[..], b"[1]", br#"{"tasks":["1"]}"#, b"{"] {
            let err = parse(bad).expect_err("refused").to_string();
            assert!(err.contains("\"tasks\": [3, 7]"), "{err}");
        }
    }
}
