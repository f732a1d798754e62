//! `POST /consumetasks`: where a webhook is verified and handed to the broker.
//!
//! Checks run cheapest-and-most-fundamental first. From the headers alone, before
//! a byte of the body is read: the signature headers' shape (401: each plain
//! text, the id present, not empty and at most 256 bytes, the timestamp within the
//! window, 1 to 5 well-formed signatures), then the declared size (413). Then the body, read within
//! [`BODY_TIMEOUT`] (408) and at most [`MAX_BODY_BYTES`] (413); the HMAC (401, so an
//! unauthenticated sender learns nothing about our parsing); the content type (415);
//! the task itself (400 for any JSON or schema problem, or a field over its size).
//! The answer is 200 only once the broker has published the event (or knows it is a
//! duplicate); a broker failure is 503 with `Retry-After`, so the sender retries.

use crate::broker::Accepted;
use crate::error::ApiError;
use crate::faults::{Faults, Settings};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use std::time::{Duration, Instant};
use taskhooks_shared::Task;
use taskhooks_shared::json::{from_object, is_json_content_type};
use taskhooks_shared::signing::{self, CheckedHeaders, ReceivedHeaders, Signing, SigningError};
use taskhooks_shared::web::connection::Connection;
use taskhooks_shared::web::read_body;

/// The largest body accepted, in bytes. A task is about 150 bytes; 64 KiB leaves
/// room for richer payloads while bounding what one request can make us buffer.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time allowed to receive the whole body, from when the handler starts reading it.
/// A task arrives in one packet; 5 s is generous for a slow link, and stops a
/// client that declares a size and stalls from holding a connection for ever
/// (actix's own request timeout covers only the head).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the headers alone established about the sender.
enum Sender<'a> {
    /// Signature headers that passed every check but the HMAC.
    Signed(CheckedHeaders<'a>, &'a signing::Secrets),
    /// `--allow-unsigned`: the id, if any, to dedupe on.
    Unsigned(Option<&'a str>),
}

/// Receives one task webhook.
pub(crate) async fn consume_tasks(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = match &state.faults {
        None => receive(&req, payload, &state).await,
        Some(faults) => receive_with_faults(&req, payload, &state, faults).await,
    };
    state.metrics.record(&result, started.elapsed());
    let answer = match result? {
        Accepted::Published { seq } => Answer {
            status: "published",
            seq: Some(seq),
        },
        Accepted::Duplicate => Answer {
            status: "duplicate",
            seq: None,
        },
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// The 200 answer: `{"status":"published","seq":N}` or `{"status":"duplicate"}`. A
/// struct, not `json!`, which builds a map for every webhook.
#[derive(serde::Serialize)]
struct Answer {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

async fn receive(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Accepted, ApiError> {
    let (webhook_id, task) = verify(req, payload, state).await?;
    Ok(state.broker.accept(webhook_id.as_deref(), &task).await?)
}

/// [`receive`] with the faults in force, applied only to a verified webhook: a
/// refusal before it is counted or published, a dropped answer only once it
/// was (so the sender's retry is answered `duplicate`), a delay before any answer.
async fn receive_with_faults(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    faults: &Faults,
) -> Result<Accepted, ApiError> {
    let (webhook_id, task) = verify(req, payload, state).await?;
    let settings = faults.settings();
    if !settings.any() {
        return Ok(state.broker.accept(webhook_id.as_deref(), &task).await?);
    }
    let result = async {
        if let Some(status) = faults.refusal(&settings).await? {
            return Err(ApiError::FaultInjected(status));
        }
        let accepted = state.broker.accept(webhook_id.as_deref(), &task).await?;
        if matches!(accepted, Accepted::Published { .. })
            && drop_answer(req, faults, &settings).await
        {
            state.metrics.answer_dropped();
        }
        Ok(accepted)
    }
    .await;
    if settings.delay_ms > 0 {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(settings.delay_ms)) => {}
            () = state.shutdown.cancelled() => {}
        }
    }
    result
}

/// Closes the connection without an answer if `drop_next` says so: whether it did.
/// A failure to take one from `drop_next` is logged and the webhook answered:
/// it is published already.
async fn drop_answer(req: &HttpRequest, faults: &Faults, settings: &Settings) -> bool {
    let Some(connection) = req.conn_data::<Connection>() else {
        return false;
    };
    match faults.take_drop(settings).await {
        Ok(true) => {
            connection.shut_down();
            true
        }
        Ok(false) => false,
        Err(err) => {
            tracing::warn!(%err, "drop_next could not be read; answering the webhook");
            false
        }
    }
}

/// Every check of the module comment: the webhook id to dedupe on and the task.
async fn verify(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(Option<String>, Task), ApiError> {
    let sender = check_headers(req, &state.signing)?;
    let body = tokio::time::timeout(BODY_TIMEOUT, read_body(req, payload, MAX_BODY_BYTES))
        .await
        .map_err(|_| ApiError::BodyTimeout(BODY_TIMEOUT))??;
    let webhook_id = authenticate(sender, &body)?;
    require_json(req)?;
    let task: Task = from_object(&body).map_err(ApiError::InvalidTask)?;
    task.check_sizes().map_err(ApiError::FieldTooLong)?;
    tracing::debug!(webhook_id = webhook_id.as_deref().unwrap_or("-"), batchid = %task.batchid, id = task.id, "webhook verified");
    Ok((webhook_id, task))
}

fn header_text<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A signature header as text: `None` when absent, refused (saying so, rather
/// than "missing") when present but not visible ASCII.
fn signature_header<'a>(
    req: &'a HttpRequest,
    name: &'static str,
) -> Result<Option<&'a str>, SigningError> {
    req.headers()
        .get(name)
        .map(|v| v.to_str().map_err(|_| SigningError::NotText(name)))
        .transpose()
}

/// Everything that can be refused from the headers alone; no HMAC is computed.
/// Unsigned (`--allow-unsigned`), only the id is read: the other two are ignored.
fn check_headers<'a>(req: &'a HttpRequest, signing: &'a Signing) -> Result<Sender<'a>, ApiError> {
    let id = signature_header(req, signing::HEADER_ID)?;
    Ok(match signing {
        Signing::Secrets(secrets) => {
            let headers = ReceivedHeaders {
                id,
                timestamp: signature_header(req, signing::HEADER_TIMESTAMP)?,
                signature: signature_header(req, signing::HEADER_SIGNATURE)?,
            };
            Sender::Signed(headers.check(signing::unix_now())?, secrets)
        }
        Signing::Unsigned => Sender::Unsigned(
            ReceivedHeaders {
                id,
                ..ReceivedHeaders::default()
            }
            .checked_id()?,
        ),
    })
}

/// Verifies the signature over `body` and returns the webhook id to deduplicate on.
fn authenticate(sender: Sender<'_>, body: &[u8]) -> Result<Option<String>, ApiError> {
    match sender {
        Sender::Signed(headers, secrets) => {
            Ok(Some(headers.verify(secrets.iter(), body)?.to_owned()))
        }
        Sender::Unsigned(id) => Ok(id.map(str::to_owned)),
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
