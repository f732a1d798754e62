//! `GET /batches/{id}/events`: a batch's progress as Server-Sent Events.

use crate::error::ApiError;
use crate::events::{self, OpenStream, Resume, ResumeError};
use crate::routes::batches::batch_id;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use taskhooks_shared::web::connection::Connection;

/// The batch's events after the `Last-Event-ID` the client sends when it
/// reconnects; 204 when a finished batch has nothing left.
pub(crate) async fn events(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = batch_id(id.into_inner())?;
    let last = last_event_id(&req);
    let permit = state
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams {
            limit: state.max_event_streams,
        })?;
    let after = match events::resume(&*state.store, &id, &last).await {
        Ok(Resume::After(after)) => after,
        Ok(Resume::NothingLeft) => return Ok(HttpResponse::NoContent().finish()),
        Err(ResumeError::UnknownBatch) => return Err(ApiError::UnknownBatch(id)),
        Err(ResumeError::Store(err)) => return Err(err.into()),
        Err(refused) => return Err(ApiError::BadRequest(refused.to_string())),
    };
    let Some(log) = state.store.event_log(&id) else {
        return Err(ApiError::UnknownBatch(id));
    };
    let open = OpenStream::new(state.deliverer.metrics().follow(), permit);
    let connection = req.conn_data::<Connection>().cloned();
    let stream = events::stream(log, after, state.closing.clone(), open, connection);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream))
}

/// The `Last-Event-ID` header, trimmed (empty when absent: from the start).
fn last_event_id(req: &HttpRequest) -> String {
    req.headers()
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?").trim().to_owned())
        .unwrap_or_default()
}
