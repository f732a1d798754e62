//! What both web apps share (feature `web`): JSON answers for unknown paths and
//! wrong methods, the embedded static files, request ids, the shutdown signal, the
//! browser security headers and the Origin/Host check against cross-site requests.
//!
//! Every error a client can meet is `{"error": "…"}` with a precise status: the
//! ones here do not depend on either program's own errors, and [`error`] answers
//! those the same way for both.

use crate::assets;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Resource, Responder, Route, web};
use tokio_util::sync::CancellationToken;

mod body;
pub mod connection;
pub mod error;
pub mod headers;
pub mod origin;
pub mod request_log;
mod server;

pub use body::{BodyError, read_body};
pub use server::{ServerSettings, serve};

/// A JSON error answer: `status` and `{"error": message}`, the body of every
/// refusal of both programs (of their own error enums through [`error::answer`]).
pub fn json_error(status: StatusCode, message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message.to_string() }))
}

/// A resource answering `route` at `path`, and a JSON 405 with an `Allow` header
/// naming `allowed` for any other method.
pub fn only(path: &str, allowed: &'static str, route: Route) -> Resource {
    refuse_other_methods(web::resource(path).route(route), allowed)
}

/// A resource answering GET at `path` with `handler`, and HEAD the same way
/// without the body (every GET resource should, RFC 9110; uptime checkers use
/// it), and a JSON 405 naming both for any other method. Not for the streams
/// (`/ws`, Server-Sent Events): a HEAD there would open one.
pub fn only_get<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let resource = web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler));
    refuse_other_methods(resource, "GET, HEAD")
}

fn refuse_other_methods(resource: Resource, allowed: &'static str) -> Resource {
    resource.default_service(web::to(move |req: HttpRequest| async move {
        let mut response = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} is not allowed here; use {allowed}", req.method()),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allowed));
        response
    }))
}

/// The JSON 404 for every unknown path (the apps' default service).
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    json_error(
        StatusCode::NOT_FOUND,
        format!("no such resource: {}", req.path()),
    )
}

/// `GET /static/{path}`: a file from the repository's `static/` folder, embedded
/// in the binary; revalidated on every load (`no-cache`), so a rebuilt binary's
/// files are never mixed with a browser's stale copies.
pub async fn static_file(path: web::Path<String>) -> HttpResponse {
    match assets::get(&path) {
        Some(asset) => HttpResponse::Ok()
            .content_type(asset.content_type)
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(asset.bytes.into_owned()),
        None => json_error(
            StatusCode::NOT_FOUND,
            format!("no such resource: /static/{path}"),
        ),
    }
}

/// A `GET /metrics` answer: `text` in the OpenMetrics text format.
pub fn metrics_response(text: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text)
}

/// Waits for Ctrl-C or SIGTERM, then cancels `token`.
pub async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}
