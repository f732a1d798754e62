//! HTTP routes, one file per concern.

pub(crate) mod batches;
mod events;
pub(crate) mod health;
pub(crate) mod page;
mod tasks;

use actix_web::{middleware, web};
use taskhooks_shared::web::{only, only_get, origin, static_file};

/// The paths any `Host` may reach, for probes and Prometheus, which name the
/// producer as they please; every other request must name it by localhost, an
/// IP literal or an `ALLOWED_HOSTS` name (`shared::web::origin`).
pub(crate) const OPEN_TO_ANY_HOST: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Registers every route (each behind the `Host` check but
/// [`OPEN_TO_ANY_HOST`]). What changes state (starting, stopping and
/// redelivering a batch) is behind the cross-site guard, [`origin::guard`].
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(only_get("/", page::page))
        .service(only_get("/static/{path:.*}", static_file))
        .service(
            only("/producetasks", "POST", web::post().to(batches::produce))
                .wrap(middleware::from_fn(origin::guard)),
        )
        .service(only(
            "/batches/{id}/events",
            "GET",
            web::get().to(events::events),
        ))
        .service(
            only("/batches/{id}/stop", "POST", web::post().to(batches::stop))
                .wrap(middleware::from_fn(origin::guard)),
        )
        .service(only_get("/batches", batches::list))
        .service(only_get("/batches/{id}", batches::show))
        .service(only_get("/batches/{id}/tasks/{index}", tasks::task))
        .service(
            only(
                "/batches/{id}/redeliver",
                "POST",
                web::post().to(tasks::redeliver),
            )
            .wrap(middleware::from_fn(origin::guard)),
        )
        .service(only_get("/healthz", health::healthz))
        .service(only_get("/readyz", health::readyz))
        .service(only_get("/metrics", health::metrics));
}
