//! HTTP routes, one file per concern.

pub(crate) mod dashboard;
pub(crate) mod health;
pub(crate) mod stats;
pub mod webhook;

use actix_web::{middleware, web};
use taskhooks_shared::web::{only, origin, static_file};

/// Registers every route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(only(
        "/consumetasks",
        "POST",
        web::post().to(webhook::consume_tasks),
    ))
    .service(only("/", "GET", web::get().to(dashboard::page)))
    .service(only("/static/{path:.*}", "GET", web::get().to(static_file)))
    .service(
        // A foreign page may not read the dashboard's events: 403 before the upgrade.
        only("/ws", "GET", web::get().to(crate::ws::connect))
            .wrap(middleware::from_fn(origin::guard)),
    )
    .service(only("/api/stats", "GET", web::get().to(stats::stats)))
    .service(only("/healthz", "GET", web::get().to(health::healthz)))
    .service(only("/readyz", "GET", web::get().to(health::readyz)))
    .service(only("/metrics", "GET", web::get().to(health::metrics)));
}
