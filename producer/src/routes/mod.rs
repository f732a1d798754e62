//! HTTP routes, one file per concern.

pub(crate) mod batches;
pub(crate) mod deliveries;
pub(crate) mod health;
pub(crate) mod page;

use actix_web::{middleware, web};
use taskhooks_shared::web::{only, origin, static_file};

/// Registers every route. What changes state (starting, stopping and
/// redelivering a batch) is behind the cross-site guard, [`origin::guard`].
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(only("/", "GET", web::get().to(page::page)))
        .service(only("/static/{path:.*}", "GET", web::get().to(static_file)))
        .service(
            only("/producetasks", "POST", web::post().to(batches::produce))
                .wrap(middleware::from_fn(origin::guard)),
        )
        .service(only(
            "/batches/{id}/events",
            "GET",
            web::get().to(batches::events),
        ))
        .service(
            only("/batches/{id}/stop", "POST", web::post().to(batches::stop))
                .wrap(middleware::from_fn(origin::guard)),
        )
        .service(only("/batches", "GET", web::get().to(deliveries::list)))
        .service(only(
            "/batches/{id}",
            "GET",
            web::get().to(deliveries::show),
        ))
        .service(only(
            "/batches/{id}/tasks/{index}",
            "GET",
            web::get().to(deliveries::task),
        ))
        .service(
            only(
                "/batches/{id}/redeliver",
                "POST",
                web::post().to(deliveries::redeliver),
            )
            .wrap(middleware::from_fn(origin::guard)),
        )
        .service(only("/healthz", "GET", web::get().to(health::healthz)))
        .service(only("/metrics", "GET", web::get().to(health::metrics)));
}
