//! The dashboard page.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use askama::Template as _;

#[derive(askama::Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    producer_url: &'a str,
    /// Whether to show the fault panel (`--fault-injection`).
    fault_injection: bool,
}

/// `GET /`: the live dashboard.
pub(crate) async fn page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let html = DashboardPage {
        producer_url: &state.producer_url,
        fault_injection: state.faults.is_some(),
    }
    .render()
    .map_err(|err| ApiError::Internal(err.into()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}
