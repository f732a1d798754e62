//! A batch's event log in Redis, read for one client: a stream whose entry ids
//! are the events' ids, so any producer, even one started since, resumes it.
//! One blocking read per client runs on a connection of its own, so it holds
//! no other request up.

use super::OP_TIMEOUT;
use super::layout::Keys;
use super::timed;
use crate::store::{EventId, EventLog, Logged, StoreError, whole_number};
use async_trait::async_trait;

use std::collections::HashMap;
use std::time::Duration;
use taskhooks_shared::redis_client::{RedisClient, RedisConnection};

/// Most events handed to a client in one read.
const MAX_READ_EVENTS: usize = 256;

/// Entries of one stream: id and fields.
pub(super) type Entries = Vec<(String, HashMap<String, String>)>;

/// A stream entry id (`1764180000123-0`, or `0` for the start; a missing sequence
/// number is 0) as numbers, to compare; `None` for anything else, numbers past
/// `u64` included (Redis would refuse them on every read).
pub(super) fn entry_id(id: &str) -> Option<EventId> {
    match id.split_once('-') {
        Some((ms, seq)) => Some((whole_number(ms)?, whole_number(seq)?)),
        None => Some((whole_number(id)?, 0)),
    }
}

/// Whether an entry is the batch's `done`.
pub(super) fn is_done(fields: &HashMap<String, String>) -> bool {
    fields.get("event").is_some_and(|e| e == "done")
}

/// One client's reader of a batch's event stream.
pub(super) struct RedisLog {
    client: RedisClient,
    key: String,
    conn: Option<RedisConnection>,
}

impl RedisLog {
    /// A reader of batch `id`'s events through `client`.
    pub(super) fn new(client: RedisClient, id: &str) -> RedisLog {
        RedisLog {
            client,
            key: Keys::of(id).events,
            conn: None,
        }
    }

    async fn read(&mut self, after: &str, block: Duration) -> Result<Entries, StoreError> {
        if self.conn.is_none() {
            let connect = self.client.own_connection(OP_TIMEOUT, block + OP_TIMEOUT);
            self.conn = Some(timed(connect).await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Vec::new());
        };
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT").arg(MAX_READ_EVENTS);
        if !block.is_zero() {
            read.arg("BLOCK").arg(block.as_millis() as u64);
        }
        let reply: Option<Vec<(String, Entries)>> = read
            .arg("STREAMS")
            .arg(&self.key)
            .arg(after)
            .query_async(conn)
            .await?;
        Ok(reply
            .and_then(|streams| streams.into_iter().next())
            .map(|(_, entries)| entries)
            .unwrap_or_default())
    }
}

#[async_trait]
impl EventLog for RedisLog {
    async fn read_after(
        &mut self,
        after: &str,
        block: Duration,
    ) -> Result<Vec<Logged>, StoreError> {
        let entries = self.read(after, block).await.inspect_err(|_| {
            self.conn = None; // a new connection for the next read
        })?;
        Ok(entries
            .into_iter()
            .map(|(id, mut fields)| Logged {
                done: is_done(&fields),
                data: fields.remove("data").unwrap_or_else(|| "{}".to_owned()),
                id,
            })
            .collect())
    }

    fn describe(&self) -> String {
        self.key.clone()
    }
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
