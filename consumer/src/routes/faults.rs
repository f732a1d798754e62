//! `/api/faults`: what fault injection does (GET), changing it (PUT, any of the
//! settings; the others keep their value) and clearing it (DELETE). Behind the
//! cross-site guard, and sent as JSON like every state-changing request (a type a
//! cross-site form cannot send). 404 without `--fault-injection`.

use crate::error::ApiError;
use crate::faults::{Change, Faults, Injected, Settings};
use crate::routes::webhook::BODY_TIMEOUT;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use taskhooks_shared::json::is_json_content_type;
use taskhooks_shared::web::read_body;

/// Largest `PUT /api/faults` body; every setting at once is about 100 bytes.
const MAX_BODY_BYTES: usize = 4 * 1024;

/// `GET /api/faults`: the settings and what was injected, every replica together.
pub(crate) async fn show(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let faults = enabled(&state)?;
    let read = faults.read().await;
    answer(&state, read).await
}

/// `PUT /api/faults`: sets the fields given, checked one by one (400 names the first wrong).
pub(crate) async fn change(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let faults = enabled(&state)?;
    require_json(&req)?;
    let body = tokio::time::timeout(BODY_TIMEOUT, read_body(&req, payload, MAX_BODY_BYTES))
        .await
        .map_err(|_| ApiError::BodyTimeout(BODY_TIMEOUT))??;
    let change = Change::parse(&body).map_err(ApiError::BadFaults)?;
    let changed = faults.change(&change).await;
    tracing::info!(?change, "fault settings changed");
    answer(&state, changed).await
}

/// `DELETE /api/faults`, sent as `application/json` (no body is read): no fault
/// any more; what was injected stays counted.
pub(crate) async fn clear(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let faults = enabled(&state)?;
    require_json(&req)?;
    let cleared = faults.clear().await;
    tracing::info!("fault settings cleared");
    answer(&state, cleared).await
}

/// Refuses (415) a change not sent as JSON.
fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if is_json_content_type(&content_type) {
        Ok(())
    } else {
        Err(ApiError::NotJson(content_type))
    }
}

fn enabled(state: &AppState) -> Result<&Faults, ApiError> {
    state.faults.as_deref().ok_or(ApiError::FaultInjectionOff)
}

/// `{"settings": {…}, "injected": {"refused", "dropped", "duplicates"}}`: the
/// duplicates (retries answered `duplicate`) are the broker's, beside what was injected.
async fn answer(
    state: &AppState,
    read: Result<(Settings, Injected), crate::broker::BrokerError>,
) -> Result<HttpResponse, ApiError> {
    let (settings, injected) = read.map_err(ApiError::FaultsUnavailable)?;
    let counts = state
        .broker
        .totals()
        .await
        .map_err(ApiError::FaultsUnavailable)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "settings": settings,
        "injected": {
            "refused": injected.refused,
            "dropped": injected.dropped,
            "duplicates": counts.duplicates,
        },
    })))
}
