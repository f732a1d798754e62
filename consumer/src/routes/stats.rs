//! `GET /api/stats`: the totals, as kept by the broker (the recent events are not read).

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};

/// Totals per priority, the overall total and the last event's sequence number.
pub(crate) async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (seq, totals) = state
        .broker
        .totals()
        .await
        .map_err(ApiError::ReadUnavailable)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "totals": totals,
        "total": totals.sum(),
        "seq": seq,
    })))
}
