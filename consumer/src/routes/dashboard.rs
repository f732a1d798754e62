//! The dashboard page and the embedded static files.

use crate::error::ApiError;
use crate::startup::AppState;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template as _;

#[derive(askama::Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    producer_url: &'a str,
}

/// `GET /`: the live dashboard.
pub async fn page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let html = DashboardPage {
        producer_url: &state.producer_url,
    }
    .render()
    .map_err(|err| ApiError::Internal(err.into()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// `GET /static/{path}`: a file from the repository's `static/` folder.
pub async fn static_file(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let asset = taskhooks_shared::assets::get(&path)
        .ok_or_else(|| ApiError::NotFound(format!("/static/{path}")))?;
    Ok(HttpResponse::Ok()
        .content_type(asset.content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(asset.bytes.into_owned()))
}
