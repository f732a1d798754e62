//! The TCP connection a request came on, kept so that a handler can end it
//! without an answer: the producer drops an event stream's client that stopped
//! reading, the consumer's fault injection drops a webhook's answer.

use actix_web::dev::Extensions;
use std::any::Any;
use std::os::fd::AsFd as _;
use std::sync::Arc;

/// A second descriptor of the request's socket, in the request's connection data
/// once [`remember_connection`] ran: shutting it down ends the connection (the
/// server's next write fails and it drops the connection); dropping it does not.
#[derive(Debug, Clone)]
pub struct Connection(Arc<std::net::TcpStream>);

impl Connection {
    /// Shuts the socket down both ways.
    pub fn shut_down(&self) {
        if let Err(err) = self.0.shutdown(std::net::Shutdown::Both) {
            tracing::debug!(%err, "the connection to end was already gone");
        }
    }
}

/// A server's `on_connect` hook (or part of one): keeps a [`Connection`] of each
/// plain TCP connection in its connection data, where `HttpRequest::conn_data`
/// finds it.
pub fn remember_connection(io: &dyn Any, data: &mut Extensions) {
    let Some(tcp) = io.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    match tcp.as_fd().try_clone_to_owned() {
        Ok(fd) => {
            data.insert(Connection(Arc::new(std::net::TcpStream::from(fd))));
        }
        Err(err) => tracing::warn!(%err, "cannot keep a handle on a connection"),
    }
}
