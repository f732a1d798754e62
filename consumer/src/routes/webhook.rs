//! `POST /consumetasks`: where a webhook is verified and handed to the broker.
//!
//! Checks run cheapest-and-most-fundamental first: size (413), signature (401, so an
//! unauthenticated sender learns nothing about our parsing), content type (415),
//! then the task itself (400 for any JSON or schema problem). The answer is 200 only
//! once the broker has published the event (or knows it is a duplicate); a broker
//! failure is 503 with `Retry-After`, so the sender retries.

use crate::broker::Accepted;
use crate::error::ApiError;
use crate::startup::{AppState, Verifier};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::BytesMut;
use futures_util::StreamExt as _;
use taskhooks_shared::Task;
use taskhooks_shared::json::{from_object, is_json_content_type};
use taskhooks_shared::signing::{self, ReceivedHeaders};

/// The largest body accepted, in bytes. A task is about 150 bytes; 64 KiB leaves
/// room for richer payloads while bounding what one request can make us buffer.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Receives one task webhook.
pub async fn consume_tasks(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = receive(&req, payload, &state).await;
    state.metrics.record(&result);
    let answer = match result? {
        Accepted::Published { seq } => serde_json::json!({ "status": "published", "seq": seq }),
        Accepted::Duplicate => serde_json::json!({ "status": "duplicate" }),
    };
    Ok(HttpResponse::Ok().json(answer))
}

async fn receive(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Accepted, ApiError> {
    let body = read_body(req, payload, MAX_BODY_BYTES).await?;
    let webhook_id = authenticate(req, &body, &state.verifier)?;
    require_json(req)?;
    let task: Task = from_object(&body).map_err(ApiError::InvalidTask)?;
    tracing::debug!(webhook_id = webhook_id.as_deref().unwrap_or("-"), batchid = %task.batchid, id = task.id, "webhook verified");
    Ok(state.broker.accept(webhook_id.as_deref(), &task).await?)
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<BytesMut, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| ApiError::UnreadableBody(err.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn header_text<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Verifies the signature and returns the webhook id to deduplicate on.
fn authenticate(
    req: &HttpRequest,
    body: &[u8],
    verifier: &Verifier,
) -> Result<Option<String>, ApiError> {
    let headers = ReceivedHeaders {
        id: header_text(req, signing::HEADER_ID),
        timestamp: header_text(req, signing::HEADER_TIMESTAMP),
        signature: header_text(req, signing::HEADER_SIGNATURE),
    };
    match verifier {
        Verifier::Secret(secret) => {
            let id = secret.verify(headers, body, signing::unix_now())?;
            Ok(Some(id.to_owned()))
        }
        Verifier::Unsigned => Ok(headers.id.map(str::to_owned)),
    }
}

fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let content_type = header_text(req, header::CONTENT_TYPE.as_str()).unwrap_or("");
    if is_json_content_type(content_type) {
        Ok(())
    } else {
        Err(ApiError::NotJson(content_type.to_owned()))
    }
}
