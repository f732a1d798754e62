//! The producer page.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use askama::Template as _;

/// What `templates/producer.html` is rendered with.
#[derive(askama::Template)]
#[template(path = "producer.html")]
struct ProducerPage {
    target_url: String,
    dashboard_url: String,
    min_tasks: u32,
    max_tasks: u32,
    pace_ms: u64,
}

/// `GET /`: the page with the Produce Tasks button.
pub(crate) async fn page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let settings = &state.page;
    let html = ProducerPage {
        target_url: settings.target_url.clone(),
        dashboard_url: settings.dashboard_url.clone(),
        min_tasks: settings.min_tasks,
        max_tasks: settings.max_tasks,
        pace_ms: settings.pace_ms,
    }
    .render()
    .map_err(|err| ApiError::Internal(err.into()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}
