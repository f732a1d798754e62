//! The HTTP server both programs run: their state, the `Host` check and the
//! cross-site policy, the security headers, request logging, their routes and the
//! JSON 404.

use super::origin::{self, OriginPolicy};
use super::{headers, not_found, request_log};
use actix_web::dev::{Extensions, Server};
use actix_web::{App, HttpServer, middleware, web};
use std::any::Any;
use std::net::TcpListener;
use std::time::Duration;

/// What differs between the two programs' servers.
pub struct ServerSettings {
    /// How long requests in flight may take to finish once the server stops.
    pub shutdown_grace: Duration,
    /// The most connections served at once, over all workers (actix's default
    /// when `None`).
    pub max_connections: Option<usize>,
    /// Called for each new connection (actix's `on_connect`).
    pub on_connect: Option<fn(&dyn Any, &mut Extensions)>,
    /// How full a connection's write buffer may get before actix stops taking
    /// more of a streamed response body (actix's default, 32 KiB, when `None`).
    pub h1_write_buffer_size: Option<usize>,
}

/// Serves `routes` on `listener`, with `state` and `origins` as app data, every
/// request behind `origins`' `Host` check ([`origin::host_guard`]), until stopped
/// through the returned server's handle (signals are the caller's).
pub fn serve<S: Send + Sync + 'static>(
    listener: TcpListener,
    state: web::Data<S>,
    origins: web::Data<OriginPolicy>,
    routes: fn(&mut web::ServiceConfig),
    settings: ServerSettings,
) -> std::io::Result<Server> {
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(origins.clone())
            // Innermost: a refused Host is logged and carries the security headers.
            .wrap(middleware::from_fn(origin::host_guard))
            .wrap(middleware::from_fn(headers::secure))
            .wrap(middleware::from_fn(request_log::log))
            .configure(routes)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(settings.shutdown_grace.as_secs());
    if let Some(max) = settings.max_connections {
        server = server.max_connections(max.div_ceil(workers).max(1));
    }
    if let Some(on_connect) = settings.on_connect {
        server = server.on_connect(on_connect);
    }
    if let Some(size) = settings.h1_write_buffer_size {
        server = server.h1_write_buffer_size(size);
    }
    Ok(server.listen(listener)?.run())
}
