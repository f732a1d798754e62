//! A batch's Server-Sent Events from its event stream in Redis: the entries
//! after the client's `Last-Event-ID` (a stream entry id, so any producer, even
//! one started since, resumes it), then the live ones, keep-alive comments while
//! idle, and the end right after a `done` — as the memory stream in
//! [`crate::sse`] does. One blocking read per client runs on a connection of its
//! own, so it holds no other request up.

use super::layout::Keys;
use super::redis::{OP_TIMEOUT, RedisStore, StoreError, timed};
use super::whole_number;
use crate::sse::{
    self, CLOSING_COMMENT, ChunkSource, Connection, KEEP_ALIVE, KEEP_ALIVE_COMMENT, OpenStream,
};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most events written to a client in one chunk.
const MAX_CHUNK_EVENTS: usize = 256;
/// How long a stream waits before reading again after Redis failed.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Entries of one stream: id and fields.
type Entries = Vec<(String, HashMap<String, String>)>;

/// A stream entry id (`1764180000123-0`, or `0` for the start; a missing sequence
/// number is 0) as numbers, to compare; `None` for anything else, numbers past
/// `u64` included (Redis would refuse them on every read).
pub(crate) fn entry_id(id: &str) -> Option<(u64, u64)> {
    match id.split_once('-') {
        Some((ms, seq)) => Some((whole_number(ms)?, whole_number(seq)?)),
        None => Some((whole_number(id)?, 0)),
    }
}

/// Where a batch's event stream stands, for a client resuming it.
pub(crate) struct Position {
    /// The id of its last event (`(0, 0)` for none).
    pub(crate) last: (u64, u64),
    /// Whether that last event is a `done`.
    pub(crate) last_is_done: bool,
    /// Redis's clock, in Unix milliseconds: no event gets an id from later.
    pub(crate) now_ms: u64,
}

/// The batch's last event and Redis's clock, in one round trip.
pub(crate) async fn position(store: &RedisStore, id: &str) -> Result<Position, StoreError> {
    let mut pipe = redis::pipe();
    pipe.cmd("XREVRANGE")
        .arg(Keys::of(id).events)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .cmd("TIME");
    let (last, (secs, micros)): (Entries, (u64, u64)) =
        timed(pipe.query_async(&mut store.conn())).await?;
    let (last, last_is_done) = last.first().map_or(((0, 0), false), |(last_id, fields)| {
        (entry_id(last_id).unwrap_or((0, 0)), is_done(fields))
    });
    Ok(Position {
        last,
        last_is_done,
        now_ms: secs * 1000 + micros / 1000,
    })
}

/// The events of batch `id` after `after`, ending after a `done` or once
/// `closing` is cancelled.
pub(crate) fn stream(
    store: RedisStore,
    id: String,
    after: String,
    closing: CancellationToken,
    open: OpenStream,
    connection: Option<Connection>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let follower = Follower {
        store,
        key: Keys::of(&id).events,
        after,
        closing,
        conn: None,
    };
    sse::serve(follower, open, connection)
}

/// A batch's event stream in Redis, read from entry id `after` (emptied once the
/// `done` was sent) on a connection of its own.
struct Follower {
    store: RedisStore,
    key: String,
    after: String,
    closing: CancellationToken,
    conn: Option<MultiplexedConnection>,
}

impl ChunkSource for Follower {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.after.is_empty() {
            return None; // the done was sent
        }
        let closing = self.closing.clone();
        let Some(read) = closing.run_until_cancelled(self.read()).await else {
            self.after.clear();
            return Some(Bytes::from_static(CLOSING_COMMENT));
        };
        match read {
            Ok(Some(entries)) if !entries.is_empty() => Some(self.frames(&entries)),
            Ok(_) => Some(Bytes::from_static(KEEP_ALIVE_COMMENT)),
            Err(err) => {
                tracing::warn!(%err, key = %self.key, "reading a batch's events failed");
                self.conn.take();
                // Not at once again: while Redis is down that would spin.
                tokio::select! {
                    () = self.closing.cancelled() => {}
                    () = tokio::time::sleep(RETRY_DELAY) => {}
                }
                Some(Bytes::from_static(KEEP_ALIVE_COMMENT))
            }
        }
    }

    fn describe(&self) -> String {
        format!("{} after {}", self.key, self.after)
    }
}

impl Follower {
    /// Blocks up to [`KEEP_ALIVE`] for entries after `after`.
    async fn read(&mut self) -> Result<Option<Entries>, StoreError> {
        if self.conn.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(OP_TIMEOUT))
                .set_response_timeout(Some(KEEP_ALIVE + OP_TIMEOUT));
            let client = &self.store.client;
            self.conn =
                Some(timed(client.get_multiplexed_async_connection_with_config(&config)).await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let reply: Option<Vec<(String, Entries)>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(MAX_CHUNK_EVENTS)
            .arg("BLOCK")
            .arg(KEEP_ALIVE.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(&self.after)
            .query_async(conn)
            .await?;
        Ok(reply
            .and_then(|streams| streams.into_iter().next())
            .map(|(_, entries)| entries))
    }

    /// The SSE frames of `entries`; marks the stream over when the last is a `done`.
    fn frames(&mut self, entries: &Entries) -> Bytes {
        let mut bytes = BytesMut::new();
        for (id, fields) in entries {
            let event = fields.get("event").map_or("task", String::as_str);
            let data = fields.get("data").map_or("{}", String::as_str);
            bytes.extend_from_slice(
                format!("id: {id}\nevent: {event}\ndata: {data}\n\n").as_bytes(),
            );
        }
        match entries.last() {
            Some((_, fields)) if is_done(fields) => self.after.clear(),
            Some((id, _)) => self.after.clone_from(id),
            None => {}
        }
        bytes.freeze()
    }
}

fn is_done(fields: &HashMap<String, String>) -> bool {
    fields.get("event").is_some_and(|e| e == "done")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stream_entry_ids_are_taken() {
        let good = [
            ("0", (0, 0)),
            ("1764180000123-0", (1_764_180_000_123, 0)),
            ("1-2", (1, 2)),
            ("17", (17, 0)),
        ];
        for (id, numbers) in good {
            assert_eq!(entry_id(id), Some(numbers), "{id}");
        }
        let too_big = "18446744073709551616-0"; // u64::MAX + 1
        for bad in [
            "", "-", "1-", "-1", "a-1", "1-2-3", "$", ">", "1 2", "+1", too_big,
        ] {
            assert_eq!(entry_id(bad), None, "{bad}");
        }
    }
}
