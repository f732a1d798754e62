//! The Server-Sent Events stream of one batch: the log's events after the client's
//! `Last-Event-ID`, then the live ones as they are logged, keep-alive comments
//! while idle, and the end right after the `done` event — or at shutdown.

use crate::batches::Batch;
use bytes::Bytes;
use futures_util::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// How often an idle stream sends a comment, so that proxies and browsers keep
/// the connection open and a dead client is noticed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Sent first: how long a browser waits before reconnecting, in milliseconds.
const RETRY_HINT: &[u8] = b"retry: 1000\n\n";
const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";
const CLOSING_COMMENT: &[u8] = b": the producer is shutting down\n\n";

/// The events of `batch` after event id `after`, ending after `done` or once
/// `closing` is cancelled.
pub fn stream(
    batch: Arc<Batch>,
    after: usize,
    closing: CancellationToken,
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
        started: false,
        ended: false,
    };
    futures_util::stream::unfold(follower, |mut follower| async move {
        let bytes = follower.next_chunk().await?;
        Some((Ok(bytes), follower))
    })
}

struct Follower {
    batch: Arc<Batch>,
    published: watch::Receiver<usize>,
    after: usize,
    closing: CancellationToken,
    keep_alive: Interval,
    started: bool,
    ended: bool,
}

impl Follower {
    /// The next bytes to write, or `None` when the stream is over.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.started {
            self.started = true;
            return Some(Bytes::from_static(RETRY_HINT));
        }
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
}
