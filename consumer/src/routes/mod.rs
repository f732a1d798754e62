//! HTTP routes, one file per concern.

pub mod dashboard;
pub mod health;
pub mod stats;
pub mod webhook;

use crate::error::ApiError;
use actix_web::{HttpRequest, web};

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(only(
        "/consumetasks",
        "POST",
        web::post().to(webhook::consume_tasks),
    ))
    .service(only("/", "GET", web::get().to(dashboard::page)))
    .service(only(
        "/static/{path:.*}",
        "GET",
        web::get().to(dashboard::static_file),
    ))
    .service(only("/ws", "GET", web::get().to(crate::ws::connect)))
    .service(only("/api/stats", "GET", web::get().to(stats::stats)))
    .service(only("/healthz", "GET", web::get().to(health::healthz)))
    .service(only("/readyz", "GET", web::get().to(health::readyz)))
    .service(only("/metrics", "GET", web::get().to(health::metrics)));
}

/// A resource answering `route`, and a JSON 405 naming `allowed` for other methods.
fn only(path: &str, allowed: &'static str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(move |req: HttpRequest| async move {
            Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed {
                method: req.method().to_string(),
                allowed,
            })
        }))
}

/// The JSON 404 for every unknown path.
pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(req.path().to_owned()))
}
