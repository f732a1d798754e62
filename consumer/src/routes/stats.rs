//! `GET /api/stats`: the totals and duplicates, as kept by the broker (the recent
//! events are not read).

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};

/// Totals per priority, the overall total, the last event's sequence number and
/// the webhooks answered `duplicate`, every replica together.
pub(crate) async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let counts = state
        .broker
        .totals()
        .await
        .map_err(ApiError::ReadUnavailable)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "totals": counts.totals,
        "total": counts.totals.sum(),
        "seq": counts.seq,
        "duplicates": counts.duplicates,
    })))
}
