//! The liveness and readiness probes, and metrics.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use taskhooks_shared::web::metrics_response;

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: a new batch can be written (Redis answers, as this user, with
/// the replicas writes wait for, in a cluster that is ok; always, in memory).
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.kind();
    match state.store.ready().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "store": store })),
        Err(err) => HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "status": "unavailable",
            "store": store,
            "error": err.to_string(),
        })),
    }
}

/// `GET /metrics`: Prometheus metrics of the deliveries.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    metrics_response(state.deliverer.metrics().encode())
}
