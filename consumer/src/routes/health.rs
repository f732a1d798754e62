//! Liveness and readiness probes, and metrics.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use taskhooks_shared::web::metrics_response;

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /metrics`: Prometheus metrics.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    metrics_response(state.metrics.encode())
}

/// `GET /readyz`: the broker can take webhooks (Redis answers, when configured).
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let broker = state.broker.kind();
    match state.broker.ping().await {
        Ok(()) => {
            HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "broker": broker }))
        }
        Err(err) => HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "status": "unavailable",
            "broker": broker,
            "error": err.to_string(),
        })),
    }
}
