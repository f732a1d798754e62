//! `GET /api/stats`: the totals, as kept by the broker.

use crate::error::ApiError;
use crate::startup::AppState;
use actix_web::{HttpResponse, web};

/// Totals per priority, the overall total and the last event's sequence number.
pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let snapshot = state.broker.snapshot().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "totals": snapshot.totals,
        "total": snapshot.totals.sum(),
        "seq": snapshot.seq,
    })))
}
