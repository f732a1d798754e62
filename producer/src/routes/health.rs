//! The liveness probe and metrics.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use taskhooks_shared::web::metrics_response;

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /metrics`: Prometheus metrics of the deliveries.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    metrics_response(state.deliverer.metrics().encode())
}
