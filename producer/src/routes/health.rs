//! The liveness probe and metrics.

use crate::state::AppState;
use actix_web::{HttpResponse, web};

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /metrics`: Prometheus metrics of the deliveries.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.deliverer.metrics().encode())
}
