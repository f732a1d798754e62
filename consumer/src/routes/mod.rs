//! HTTP routes, one file per concern.

pub(crate) mod dashboard;
pub(crate) mod faults;
pub(crate) mod health;
pub(crate) mod stats;
pub mod webhook;

use actix_web::{middleware, web};
use taskhooks_shared::web::{only, only_get, origin, static_file};

/// The paths any `Host` may reach (every other request must name the consumer by
/// localhost, an IP literal or an `ALLOWED_HOSTS` name; `shared::web::origin`):
/// the probes and metrics, and a signed webhook, which a sender addresses by
/// whatever name reaches us (`lb` in Compose, a tunnel's name) and whose
/// signature is its guard. Unsigned (`--allow-unsigned`), a webhook has no
/// guard but the `Host` check, so it is not open.
pub(crate) fn open_to_any_host(signed: bool) -> &'static [&'static str] {
    if signed {
        &["/healthz", "/readyz", "/metrics", "/consumetasks"]
    } else {
        &["/healthz", "/readyz", "/metrics"]
    }
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(only(
        "/consumetasks",
        "POST",
        web::post().to(webhook::consume_tasks),
    ))
    .service(only_get("/", dashboard::page))
    .service(only_get("/static/{path:.*}", static_file))
    .service(
        // A foreign page may not read the dashboard's events: 403 before the upgrade.
        only("/ws", "GET", web::get().to(crate::ws::connect))
            .wrap(middleware::from_fn(origin::guard)),
    )
    .service(only_get("/api/stats", stats::stats))
    .service(
        // Changes what webhooks get: a foreign page may neither read nor change it.
        only(
            "/api/faults",
            "GET, PUT, DELETE",
            web::get().to(faults::show),
        )
        .route(web::put().to(faults::change))
        .route(web::delete().to(faults::clear))
        .wrap(middleware::from_fn(origin::guard)),
    )
    .service(only_get("/healthz", health::healthz))
    .service(only_get("/readyz", health::readyz))
    .service(only_get("/metrics", health::metrics));
}
