//! The Server-Sent Events stream of one batch: the log's events after the client's
//! `Last-Event-ID`, then the live ones as they are logged, keep-alive comments
//! while idle, and the end right after the `done` event — or at shutdown.
//!
//! A task per client follows the batch and hands each chunk to the response
//! through a one-slot channel. A client that stops reading stops taking chunks;
//! after [`STALL_TIMEOUT`] its task gives up, so it no longer holds the batch (and
//! its event log) alive, and shuts its connection down: the server, stuck writing
//! to a full socket, would otherwise keep it until the client read again.

use crate::batches::Batch;
use crate::metrics::InFlight;
use actix_web::dev::Extensions;
use bytes::Bytes;
use futures_util::Stream;
use std::any::Any;
use std::convert::Infallible;
use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// How often an idle stream sends a comment, so that proxies and browsers keep
/// the connection open and a dead client is noticed.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a client may leave a chunk untaken (its connection's buffers full)
/// before it is dropped. Far longer than any live browser takes; short enough
/// that a stuck client does not keep a batch evicted from the registry in memory.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Sent first: how long a browser waits before reconnecting, in milliseconds.
pub(crate) const RETRY_HINT: &[u8] = b"retry: 1000\n\n";
pub(crate) const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";
pub(crate) const CLOSING_COMMENT: &[u8] = b": the producer is shutting down\n\n";

/// The events of `batch` after event id `after`, ending after `done` or once
/// `closing` is cancelled; `open` is held until its task ends,
/// and `connection`, when known, is shut down if the client stalls.
pub(crate) fn stream(
    batch: Arc<Batch>,
    after: usize,
    closing: CancellationToken,
    open: OpenStream,
    connection: Option<Connection>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let mut keep_alive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let follower = Follower {
        published: batch.watch(),
        batch,
        after,
        closing,
        keep_alive,
        ended: false,
    };
    serve(follower, open, connection)
}

/// What an open stream holds until its task ends: its place in the
/// `event_streams` gauge and its permit under `--max-event-streams`.
pub(crate) struct OpenStream {
    _gauge: InFlight,
    _permit: OwnedSemaphorePermit,
}

impl OpenStream {
    pub(crate) fn new(gauge: InFlight, permit: OwnedSemaphorePermit) -> OpenStream {
        OpenStream {
            _gauge: gauge,
            _permit: permit,
        }
    }
}

/// Where an event stream's chunks come from: a batch's log in memory
/// ([`Follower`]) or its event stream in Redis (`outbox::events`).
pub(crate) trait ChunkSource: Send + 'static {
    /// The next bytes to write after [`RETRY_HINT`], `None` once the stream is over.
    fn next_chunk(&mut self) -> impl Future<Output = Option<Bytes>> + Send;

    /// Names the stream in the log line of a client dropped for stalling.
    fn describe(&self) -> String;
}

/// A response body of [`RETRY_HINT`] and then `source`'s chunks, written by a task
/// of its own that ends with the stream, when the client goes, or once the client
/// leaves a chunk untaken for [`STALL_TIMEOUT`] (then `connection` is shut down).
/// `open` is held until that task ends.
pub(crate) fn serve(
    source: impl ChunkSource,
    open: OpenStream,
    connection: Option<Connection>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let (chunks, taken) = mpsc::channel(1);
    tokio::spawn(feed(source, chunks, open, connection));
    futures_util::stream::unfold(taken, |mut taken| async move {
        let bytes = taken.recv().await?;
        Some((Ok(bytes), taken))
    })
}

/// Hands `source`'s chunks to the response, one at a time (see [`serve`]).
async fn feed(
    mut source: impl ChunkSource,
    chunks: mpsc::Sender<Bytes>,
    _open: OpenStream,
    connection: Option<Connection>,
) {
    let mut next = Some(Bytes::from_static(RETRY_HINT));
    while let Some(bytes) = next.take() {
        match tokio::time::timeout(STALL_TIMEOUT, chunks.send(bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return, // the client went away
            Err(_) => {
                tracing::info!(stream = %source.describe(),
                    "an event stream's client stopped reading; dropping it");
                if let Some(connection) = &connection {
                    connection.shut_down();
                }
                return;
            }
        }
        next = tokio::select! {
            next = source.next_chunk() => next,
            () = chunks.closed() => return, // the client went away while idle
        };
    }
}

/// A batch's log in memory, followed from event id `after`.
struct Follower {
    batch: Arc<Batch>,
    published: watch::Receiver<usize>,
    after: usize,
    closing: CancellationToken,
    keep_alive: Interval,
    ended: bool,
}

impl ChunkSource for Follower {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.ended {
                return None;
            }
            // Mark the log as seen *before* reading it, so an event logged right
            // after the read still wakes us up.
            self.published.borrow_and_update();
            let chunk = self.batch.read_after(self.after);
            self.after = chunk.last_id;
            self.ended = chunk.at_end;
            if !chunk.bytes.is_empty() {
                return Some(chunk.bytes);
            }
            if self.ended {
                return None;
            }
            tokio::select! {
                biased;
                changed = self.published.changed() => {
                    if changed.is_err() {
                        return None; // unreachable while we hold the batch
                    }
                }
                () = self.closing.cancelled() => {
                    self.ended = true;
                    return Some(Bytes::from_static(CLOSING_COMMENT));
                }
                _ = self.keep_alive.tick() => return Some(Bytes::from_static(KEEP_ALIVE_COMMENT)),
            }
        }
    }

    fn describe(&self) -> String {
        format!("batch {} after event {}", self.batch.id, self.after)
    }
}

/// The TCP connection a request came on, kept (by [`remember_connection`]) so a
/// stalled stream can shut it down. A second descriptor of the same socket:
/// shutting it down ends the connection; dropping it does not.
#[derive(Debug, Clone)]
pub(crate) struct Connection(Arc<std::net::TcpStream>);

impl Connection {
    /// Shuts the socket down both ways: the server's next write fails and it
    /// drops the connection.
    pub(crate) fn shut_down(&self) {
        if let Err(err) = self.0.shutdown(std::net::Shutdown::Both) {
            tracing::debug!(%err, "the stalled connection was already gone");
        }
    }
}

/// The server's `on_connect` hook: remembers each plain TCP connection in the
/// request's connection data, where the event stream route finds it.
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
