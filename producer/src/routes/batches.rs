//! Batches: starting one, listing them, one batch's summary, stopping one; and
//! what every batch route checks: the id in its path and a JSON content type.

use crate::error::ApiError;
use crate::generator::check_range;
use crate::state::{AppState, PageSettings};
use crate::store::memory::check_duration;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use std::time::Duration;
use taskhooks_shared::json::{from_object, is_json_content_type};
use taskhooks_shared::web::read_body;

/// Longest pace the page may ask for: one task a minute is already glacial.
pub(crate) const MAX_PACE_MS: u64 = 60_000;
/// Largest body of `POST /producetasks`; the real one is about 40 bytes.
const MAX_BODY_BYTES: usize = 4 * 1024;

/// The body of `POST /producetasks`; every field is optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    min: Option<u32>,
    max: Option<u32>,
    pace_ms: Option<u64>,
}

/// A checked batch request.
struct BatchSpec {
    min: u32,
    max: u32,
    pace: Duration,
}

impl BatchRequest {
    /// Reads the body, sent as `application/json` even when empty (a type a
    /// cross-site form cannot send without a CORS preflight, which we never
    /// grant): empty means all defaults, anything else must be a JSON object.
    fn parse(content_type: &str, body: &[u8]) -> Result<BatchRequest, ApiError> {
        require_json(content_type)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(BatchRequest::default());
        }
        from_object(body).map_err(|err| {
            ApiError::BadRequest(format!(
                "the body must be a JSON object like {{\"min\": 1, \"max\": 100, \"pace_ms\": 50}} \
                 (every field optional): {err}"
            ))
        })
    }

    /// Fills in defaults and checks the bounds.
    fn check(self, defaults: &PageSettings) -> Result<BatchSpec, ApiError> {
        let min = self.min.unwrap_or(defaults.min_tasks);
        let max = self.max.unwrap_or(defaults.max_tasks);
        check_range(min, max).map_err(ApiError::BadRequest)?;
        let pace_ms = self.pace_ms.unwrap_or(defaults.pace_ms);
        if pace_ms > MAX_PACE_MS {
            return Err(ApiError::BadRequest(format!(
                "pace_ms ({pace_ms}) is over the limit of {MAX_PACE_MS} ms between tasks"
            )));
        }
        let pace = Duration::from_millis(pace_ms);
        check_duration(max, pace).map_err(ApiError::BadRequest)?;
        Ok(BatchSpec { min, max, pace })
    }
}

/// `POST /producetasks`: starts a batch; 202 with where to follow and stop it.
pub(crate) async fn produce(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let body = read_body(&req, payload, MAX_BODY_BYTES).await?;
    let spec = BatchRequest::parse(&content_type(&req), &body)?.check(&state.page)?;
    let tasks = state.generate(spec.min, spec.max);
    let id = tasks.batchid.clone();
    let total = state.store.create(tasks, spec.pace).await?;
    tracing::info!(batch = %id, total, pace = ?spec.pace, "batch started");
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "batchid": id,
        "total": total,
        "events_url": format!("/batches/{id}/events"),
        "stop_url": format!("/batches/{id}/stop"),
        "redeliver_url": format!("/batches/{id}/redeliver"),
    })))
}

/// `GET /batches`: whether deliveries are durable, and the batches kept, newest first.
pub(crate) async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "durable": state.store.durable(),
        "batches": state.store.list().await?,
    })))
}

/// `GET /batches/{id}`: the batch's summary.
pub(crate) async fn show(
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = batch_id(id.into_inner())?;
    match state.store.summary(&id).await? {
        Some(summary) => Ok(HttpResponse::Ok().json(summary)),
        None => Err(ApiError::UnknownBatch(id)),
    }
}

/// `POST /batches/{id}/stop`, sent as `application/json` (the body, `{}`, is not
/// read): nothing more of the batch is sent; tasks not yet sent end as
/// `cancelled`. Stopping a finished batch is harmless.
pub(crate) async fn stop(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = batch_id(id.into_inner())?;
    require_json(&content_type(&req))?;
    if !state.store.stop(&id).await? {
        return Err(ApiError::UnknownBatch(id));
    }
    state.pipeline.cancel_queued(&id).await;
    tracing::info!(batch = %id, "batch stopped on request");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "stopped": true })))
}

/// The `{id}` of a batch route, checked: this producer's batch ids are UUIDs as
/// `POST /producetasks` gives them (lowercase, hyphenated). Anything else is no batch
/// of ours (404), and so never becomes part of a Redis key name (`B:states` would
/// name another key of batch `B`).
pub(crate) fn batch_id(id: String) -> Result<String, ApiError> {
    match uuid::Uuid::try_parse(&id) {
        Ok(uuid) if uuid.hyphenated().to_string() == id => Ok(id),
        _ => Err(ApiError::NotABatchId(id)),
    }
}

/// The request's `Content-Type`, or `""`.
pub(crate) fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// Refuses (415) a state-changing request that is not sent as JSON.
pub(crate) fn require_json(content_type: &str) -> Result<(), ApiError> {
    if is_json_content_type(content_type) {
        Ok(())
    } else {
        Err(ApiError::NotJson(content_type.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> PageSettings {
        PageSettings {
            target_url: String::new(),
            dashboard_url: String::new(),
            min_tasks: 1,
            max_tasks: 100,
            pace_ms: 50,
        }
    }

    fn check(body: &str) -> Result<BatchSpec, ApiError> {
        BatchRequest::parse("application/json", body.as_bytes())?.check(&defaults())
    }

    #[test]
    fn missing_fields_and_empty_bodies_take_the_defaults() {
        for body in ["", "  ", "{}", r#"{"min":null}"#] {
            let spec = check(body).expect("accepted");
            assert_eq!(
                (spec.min, spec.max, spec.pace.as_millis()),
                (1, 100, 50),
                "{body}"
            );
        }
        let spec = check(r#"{"min":5,"max":5,"pace_ms":0}"#).expect("accepted");
        assert_eq!((spec.min, spec.max, spec.pace), (5, 5, Duration::ZERO));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let cases = [
            ("{", "JSON object"),
            (r#"{"min":"3"}"#, "JSON object"),
            (r#"{"minimum":3}"#, "unknown field"),
            (r#"{"min":-1}"#, "JSON object"),
            (r#"{"min":0}"#, "at least 1"),
            (r#"{"min":9,"max":3}"#, "must not exceed"),
            (r#"{"max":100001}"#, "limit"),
            (r#"{"pace_ms":60001}"#, "pace_ms"),
            ("[2, 3, 0]", "got a JSON array"),
            ("3", "got a number"),
            (r#"{"max":10000,"pace_ms":1000}"#, "limit of 60 min"),
        ];
        for (body, expected) in cases {
            let err = check(body).err().expect("rejected").to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn a_body_must_be_sent_as_json_even_when_empty() {
        let form = BatchRequest::parse("application/x-www-form-urlencoded", b"min=1");
        assert!(
            matches!(form, Err(ApiError::NotJson(t)) if t == "application/x-www-form-urlencoded")
        );
        for (content_type, body) in [("", &b""[..]), ("text/plain", b"{}")] {
            let refused = BatchRequest::parse(content_type, body);
            assert!(
                matches!(refused, Err(ApiError::NotJson(_))),
                "{content_type:?}"
            );
        }
        assert!(BatchRequest::parse("application/json", b"").is_ok());
    }
}
