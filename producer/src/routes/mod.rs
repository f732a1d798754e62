//! HTTP routes, one file per concern.

pub mod batches;
pub mod health;
pub mod page;

use crate::error::ApiError;
use actix_web::{HttpRequest, web};

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(only("/", "GET", web::get().to(page::page)))
        .service(only(
            "/static/{path:.*}",
            "GET",
            web::get().to(page::static_file),
        ))
        .service(only(
            "/producetasks",
            "POST",
            web::post().to(batches::produce),
        ))
        .service(only(
            "/batches/{id}/events",
            "GET",
            web::get().to(batches::events),
        ))
        .service(only(
            "/batches/{id}/stop",
            "POST",
            web::post().to(batches::stop),
        ))
        .service(only("/healthz", "GET", web::get().to(health::healthz)));
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
