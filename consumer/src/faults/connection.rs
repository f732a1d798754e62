//! The TCP connection a webhook came on, kept so that a dropped answer can close
//! it without a word: only with `--fault-injection`, when every connection is
//! remembered by [`remember_connection`].

use actix_web::dev::Extensions;
use std::any::Any;
use std::os::fd::AsFd as _;
use std::sync::Arc;

/// A second descriptor of the request's socket: shutting it down ends the
/// connection (actix's write of the answer then fails and it drops the
/// connection); dropping it does not.
#[derive(Debug, Clone)]
pub(crate) struct Connection(Arc<std::net::TcpStream>);

impl Connection {
    /// Closes the connection both ways, before any byte of an answer is written.
    pub(crate) fn shut_down(&self) {
        if let Err(err) = self.0.shutdown(std::net::Shutdown::Both) {
            tracing::debug!(%err, "the connection to drop was already gone");
        }
    }
}

/// Part of the server's `on_connect` hook with fault injection on (startup.rs):
/// a [`Connection`] kept in the request's connection data.
pub(crate) fn remember_connection(io: &dyn Any, data: &mut Extensions) {
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
