//! The Server-Sent Events stream of one batch, whichever store keeps it: the
//! log's events after the client's `Last-Event-ID`, then the live ones as they
//! are logged, keep-alive comments while idle, and the end right after a `done`
//! — or at shutdown. The one place where an event becomes SSE text.
//!
//! A task per client follows the batch and hands each chunk to the response
//! through a one-slot channel. A client that stops reading stops taking chunks;
//! after [`STALL_TIMEOUT`] its task gives up, so it no longer holds the batch's
//! log, and shuts its connection down: the server, stuck writing to a full
//! socket, would otherwise keep it until the client read again.

use crate::delivery::metrics::InFlight;
use crate::store::{EventId, EventLog, Limit, Logged, Store, StoreError};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use std::convert::Infallible;
use std::time::Duration;
use taskhooks_shared::web::connection::Connection;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

/// How often an idle stream sends a comment, so that proxies and browsers keep
/// the connection open and a dead client is noticed.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a client may leave a chunk untaken (its connection's buffers full)
/// before it is dropped. Far longer than any live browser takes; short enough
/// that a stuck client does not keep a batch dropped from the store in memory.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Sent first: how long a browser waits before reconnecting, in milliseconds.
const RETRY_HINT: &[u8] = b"retry: 1000\n\n";
const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";
const CLOSING_COMMENT: &[u8] = b": the producer is shutting down\n\n";
/// How long a stream waits before reading again after its store failed.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Where a client's stream starts.
#[derive(Debug)]
pub(crate) enum Resume {
    /// The batch is over and the client has every event: nothing to stream.
    NothingLeft,
    /// The events after this id (`0`: from the start).
    After(String),
}

/// Why a stream cannot start where the client asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResumeError {
    #[error("no such batch")]
    UnknownBatch,
    /// Not an event id of this store.
    #[error("Last-Event-ID must be the id of the last event received, as sent, got {0:?}")]
    NotAnId(String),
    /// Past the last event of a log that never loses one.
    #[error(
        "Last-Event-ID {text:?} is past this batch's last event ({last}): send the id of \
         the last event received, or none to read from the start"
    )]
    PastLastEvent { text: String, last: u64 },
    /// From later than the store's clock.
    #[error(
        "Last-Event-ID {text:?} is not an event of this batch: its time is later than \
         Redis's clock ({now_ms} ms); send the id of the last event received, or none to \
         read from the start"
    )]
    FromTheFuture { text: String, now_ms: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where batch `id`'s stream starts for a client whose `Last-Event-ID` is `last`
/// (empty: from the start).
pub(crate) async fn resume(store: &dyn Store, id: &str, last: &str) -> Result<Resume, ResumeError> {
    let Some(position) = store.position(id).await? else {
        return Err(ResumeError::UnknownBatch);
    };
    let after = if last.is_empty() { "0" } else { last };
    let Some(after_id) = store.parse_event_id(after) else {
        return Err(ResumeError::NotAnId(after.to_owned()));
    };
    // An id the log never had: a stream from there would wait for ever, or
    // until a clock reached it, skipping every event before.
    check_limit(last, after_id, position.last, position.limit)?;
    // Nothing is logged after `after`. A redelivery queued but not yet started
    // has logged nothing yet: the batch's counts, not its log, say whether more
    // will come.
    let nothing_left =
        after_id > position.last || (after_id == position.last && position.last_is_done);
    if !position.running && nothing_left {
        return Ok(Resume::NothingLeft);
    }
    Ok(Resume::After(after.to_owned()))
}

fn check_limit(text: &str, after: EventId, last: EventId, limit: Limit) -> Result<(), ResumeError> {
    match limit {
        Limit::LastEvent if after > last => Err(ResumeError::PastLastEvent {
            text: text.to_owned(),
            last: last.0,
        }),
        Limit::Clock { now_ms, slack_ms } if after.0 > now_ms.saturating_add(slack_ms) => {
            Err(ResumeError::FromTheFuture {
                text: text.to_owned(),
                now_ms,
            })
        }
        _ => Ok(()),
    }
}

/// The events of `log` after event id `after`, ending after a `done` or once
/// `closing` is cancelled; `open` is held until its task ends, and
/// `connection`, when known, is shut down if the client stalls.
pub(crate) fn stream(
    log: Box<dyn EventLog>,
    after: String,
    closing: CancellationToken,
    open: OpenStream,
    connection: Option<Connection>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let follower = Follower {
        log,
        after,
        closing,
    };
    let (chunks, taken) = mpsc::channel(1);
    tokio::spawn(feed(follower, chunks, open, connection));
    futures_util::stream::unfold(taken, |mut taken| async move {
        let bytes = taken.recv().await?;
        Some((Ok(bytes), taken))
    })
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

/// Hands the follower's chunks to the response, one at a time (see [`stream`]).
async fn feed(
    mut follower: Follower,
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
                tracing::info!(stream = %follower.describe(),
                    "an event stream's client stopped reading; dropping it");
                if let Some(connection) = &connection {
                    connection.shut_down();
                }
                return;
            }
        }
        next = tokio::select! {
            next = follower.next_chunk() => next,
            () = chunks.closed() => return, // the client went away while idle
        };
    }
}

/// A batch's log, followed from event id `after` (emptied once the `done` was sent).
struct Follower {
    log: Box<dyn EventLog>,
    after: String,
    closing: CancellationToken,
}

impl Follower {
    /// The next bytes to write after [`RETRY_HINT`], `None` once the stream is over.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.after.is_empty() {
            return None; // the done was sent
        }
        if self.closing.is_cancelled() {
            return Some(self.last_chunk().await);
        }
        let closing = self.closing.clone();
        let read = self.log.read_after(&self.after, KEEP_ALIVE);
        let Some(read) = closing.run_until_cancelled(read).await else {
            return Some(self.last_chunk().await);
        };
        match read {
            Ok(events) if !events.is_empty() => Some(self.frames(&events)),
            Ok(_) => Some(Bytes::from_static(KEEP_ALIVE_COMMENT)),
            Err(err) => {
                tracing::warn!(%err, log = %self.log.describe(), "reading a batch's events failed");
                // Not at once again: while the store is down that would spin.
                tokio::select! {
                    () = self.closing.cancelled() => {}
                    () = tokio::time::sleep(RETRY_DELAY) => {}
                }
                Some(Bytes::from_static(KEEP_ALIVE_COMMENT))
            }
        }
    }

    /// At shutdown: what is already logged (the last events of a batch a
    /// shutdown stopped, its `done` among them), then the closing comment.
    async fn last_chunk(&mut self) -> Bytes {
        match self.log.read_after(&self.after, Duration::ZERO).await {
            Ok(events) if !events.is_empty() => self.frames(&events),
            _ => {
                self.after.clear();
                Bytes::from_static(CLOSING_COMMENT)
            }
        }
    }

    /// The SSE frames of `events`; marks the stream over when the last is a `done`.
    fn frames(&mut self, events: &[Logged]) -> Bytes {
        let mut bytes = BytesMut::new();
        for event in events {
            let name = if event.done { "done" } else { "task" };
            let frame = format!("id: {}\nevent: {name}\ndata: {}\n\n", event.id, event.data);
            bytes.extend_from_slice(frame.as_bytes());
        }
        match events.last() {
            Some(last) if last.done => self.after.clear(),
            Some(last) => self.after.clone_from(&last.id),
            None => {}
        }
        bytes.freeze()
    }

    /// Names the stream in the log line of a client dropped for stalling.
    fn describe(&self) -> String {
        format!("{} after {}", self.log.describe(), self.after)
    }
}
