//! The Redis store's layout: the key names, and the Lua scripts that change a
//! batch atomically, whichever producer runs them.
//!
//! The layout, every key under [`PREFIX`]:
//! - `queue`: a stream of `{batch, index}` entries read by the consumer group
//!   [`GROUP`]; an entry is acknowledged (and deleted) once its task reached a
//!   final state, so one pending on a dead producer is claimed by another;
//! - `batches`: a sorted set of batch ids by creation time (newest listed first);
//! - `batch:{id}`: a hash of the batch's total, creation time, pace, next start,
//!   stop flag, run number (one more at each redelivery) and its counts by state;
//! - `batch:{id}:states`: a hash of each task's state by index;
//! - `batch:{id}:tasks`: a hash of each task's record (task, `webhook-id`,
//!   attempts) by index, as JSON;
//! - `batch:{id}:events`: a stream of the batch's `task` and `done` events, its
//!   entry ids the SSE ids, so a stream resumes on any producer.
//!
//! A batch's four keys expire `--keep-finished` after its `done`; a redelivery
//! makes them persistent again until its own `done`.

use std::sync::LazyLock;

/// Where the producer's keys live, apart from the consumer's: one hash tag, so
/// that in a Redis Cluster every key is in one slot, and a script or a `MULTI`
/// that writes a batch and the queue together runs on one node.
pub(crate) const PREFIX: &str = "{taskhooks:producer}:";
/// The consumer group every producer reads the queue with.
pub(crate) const GROUP: &str = "producers";
/// The Pub/Sub channel a stop is announced on (the batch id as the message).
pub(crate) const STOP_CHANNEL: &str = "{taskhooks:producer}:stop";

/// The keys of one batch.
pub(crate) struct Keys {
    /// The batch's hash: settings, stop flag, counts.
    pub(crate) meta: String,
    /// Each task's state by index.
    pub(crate) states: String,
    /// Each task's record by index.
    pub(crate) tasks: String,
    /// The batch's event stream.
    pub(crate) events: String,
}

impl Keys {
    /// The keys of batch `id`.
    pub(crate) fn of(id: &str) -> Keys {
        let meta = format!("{PREFIX}batch:{id}");
        Keys {
            states: format!("{meta}:states"),
            tasks: format!("{meta}:tasks"),
            events: format!("{meta}:events"),
            meta,
        }
    }
}

/// The queue's key.
pub(crate) fn queue_key() -> String {
    format!("{PREFIX}queue")
}

/// The index of batches by creation time.
pub(super) fn index_key() -> String {
    format!("{PREFIX}batches")
}

/// Stores a task's new state and record, appends its event and, when it was
/// the last task to end, the batch's `done` and the keys' expiry. Returns -1
/// when the batch is gone (expired), 1 when the batch is done, else 0. Its
/// state names are [`crate::delivery::task::State::name`]'s, and its `done` is
/// [`crate::record::DoneData`]'s JSON: the test
/// `the_scripts_done_event_is_the_one_rust_writes` below holds them together.
const APPLY_LUA: &str = r#"
local old = redis.call('HGET', KEYS[2], ARGV[1])
if not old then return -1 end
local function bucket(s)
  if s == 'sending' or s == 'retrying' then return 'in_flight' end
  return s
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('XADD', KEYS[4], '*', 'event', 'task', 'data', ARGV[4])
if bucket(old) == bucket(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], bucket(old), -1)
redis.call('HINCRBY', KEYS[1], bucket(ARGV[2]), 1)
if bucket(ARGV[2]) == 'in_flight' or bucket(ARGV[2]) == 'queued' then return 0 end
local c = redis.call('HMGET', KEYS[1], 'queued', 'in_flight', 'delivered', 'failed', 'cancelled', 'run_started_at')
if tonumber(c[1]) + tonumber(c[2]) > 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local done = string.format('{"delivered":%d,"failed":%d,"cancelled":%d,"elapsed_ms":%d}',
  tonumber(c[3]), tonumber(c[4]), tonumber(c[5]), math.max(0, now - tonumber(c[6])))
redis.call('XADD', KEYS[4], '*', 'event', 'done', 'data', done)
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
return 1
"#;

/// Puts the tasks ARGV[2..] of batch ARGV[1] back in the queue, unless one of
/// them is not final (then returns those, and changes nothing); `{"gone"}` when
/// the batch expired.
const REQUEUE_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
local busy = {}
for i = 2, #ARGV do
  local s = redis.call('HGET', KEYS[2], ARGV[i])
  if s == 'queued' or s == 'sending' or s == 'retrying' then table.insert(busy, ARGV[i]) end
end
if #busy > 0 then return busy end
if #ARGV < 2 then return {} end
for i = 2, #ARGV do
  local s = redis.call('HGET', KEYS[2], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], 'queued')
  redis.call('HINCRBY', KEYS[1], s, -1)
  redis.call('HINCRBY', KEYS[1], 'queued', 1)
  redis.call('XADD', KEYS[5], '*', 'batch', ARGV[1], 'index', ARGV[i])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'stopped', 0, 'run_started_at', now)
redis.call('HINCRBY', KEYS[1], 'run', 1)
for i = 1, 4 do redis.call('PERSIST', KEYS[i]) end
return {}
"#;

/// Writes a new batch and queues every task, at once: KEYS are the batch's meta,
/// states and tasks, the index and the queue; ARGV the batch id, the time, the
/// pace, how many batches the index keeps, the name of the queued state, then each
/// task's record JSON in index order. Returns 0, changing nothing, when the batch
/// is already there: a call sent again after its answer was lost (the cluster
/// client resends a pipeline whose connection broke) must not queue every task
/// twice.
const CREATE_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local total = #ARGV - 5
redis.call('HSET', KEYS[1], 'total', total, 'created_at', ARGV[2], 'run_started_at', ARGV[2],
  'pace_ms', ARGV[3], 'next_start', 0, 'stopped', 0, 'queued', total, 'in_flight', 0,
  'delivered', 0, 'failed', 0, 'cancelled', 0)
for index = 1, total do
  redis.call('HSET', KEYS[2], index, ARGV[5])
  redis.call('HSET', KEYS[3], index, ARGV[5 + index])
  redis.call('XADD', KEYS[5], '*', 'batch', ARGV[1], 'index', index)
end
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[4]) + 1))
return 1
"#;

/// Reserves the batch's next delivery start, shared by every producer: returns
/// the milliseconds to wait for it (0 when the schedule is behind: it restarts
/// from now rather than firing a burst). ARGV[1] is the pace in milliseconds.
const RESERVE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local next = tonumber(redis.call('HGET', KEYS[1], 'next_start') or '0')
local start = math.max(now, next)
redis.call('HSET', KEYS[1], 'next_start', start + tonumber(ARGV[1]))
return start - now
"#;

/// [`APPLY_LUA`], hashed once: each call sends only the SHA1 (EVALSHA), and
/// the script itself only when Redis does not know it yet.
pub(super) static APPLY: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(APPLY_LUA));
/// See [`CREATE_LUA`].
pub(super) static CREATE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(CREATE_LUA));
/// See [`REQUEUE_LUA`].
pub(super) static REQUEUE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(REQUEUE_LUA));
/// See [`RESERVE_LUA`].
pub(super) static RESERVE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(RESERVE_LUA));

#[cfg(test)]
mod tests {
    use super::super::{Limits, RedisStore};
    use crate::delivery::task::State;
    use crate::generator::Generator;
    use crate::record::{Counts, DoneData};
    use crate::store::Store as _;
    use std::time::Duration;
    use taskhooks_shared::redis_client::RedisClient;
    use taskhooks_shared::testing::RedisServer;

    /// The scripts' side of two formats Rust also writes: the `done` event's JSON
    /// (read back by Rust's own parser, which refuses unknown fields) and the
    /// counts by state name.
    #[tokio::test]
    async fn the_scripts_done_event_is_the_one_rust_writes() {
        let redis = RedisServer::start();
        let limits = Limits {
            keep_finished: Duration::from_secs(60),
            max_waiting: u64::MAX,
            claim_after: Duration::from_secs(30),
            wait_replicas: 0,
        };
        let store = RedisStore::new(RedisClient::open(&redis.url()).expect("a URL"), limits)
            .expect("a store");
        let tasks = Generator::new(Some(3)).batch_of(3);
        let id = tasks.batchid.clone();
        store.create(tasks, Duration::ZERO).await.expect("created");
        let ends = [State::Delivered, State::Failed, State::Cancelled];
        for (index, end) in (1..).zip(ends) {
            let mut record = store
                .record(&id, index)
                .await
                .expect("read")
                .expect("a task");
            for state in [State::Sending, State::Retrying, end] {
                record.state = state;
                store
                    .apply(&id, index, &record, "{}")
                    .await
                    .expect("stored");
            }
        }

        let mut log = store.event_log(&id).expect("a log");
        let events = log.read_after("0", Duration::ZERO).await.expect("read");
        let done: Vec<_> = events.iter().filter(|e| e.done).collect();
        assert_eq!(done.len(), 1, "{events:?}");
        assert!(events.last().is_some_and(|e| e.done), "done comes last");
        let data: DoneData =
            serde_json::from_str(&done[0].data).expect("Rust reads the script's done");
        let counts = Counts::of(ends);
        assert_eq!(
            DoneData {
                elapsed_ms: data.elapsed_ms,
                ..DoneData::of(&counts, 0)
            },
            data
        );
        let summary = store.summary(&id).await.expect("read").expect("kept");
        assert_eq!(
            summary.counts, counts,
            "the script counts by the same state names"
        );
    }

    /// A create sent again (the cluster client resends a pipeline whose connection
    /// broke, though it may have run) changes nothing: every task queued once.
    #[tokio::test]
    async fn a_batch_written_again_is_not_queued_twice() {
        let redis = RedisServer::start();
        let client = RedisClient::open(&redis.url()).expect("a URL");
        let mut conn = client
            .shared_connection(Duration::from_secs(2))
            .expect("a connection");
        let first = Generator::new(Some(7)).batch_of(3);
        let again = Generator::new(Some(7)).batch_of(3);
        assert_eq!(first.batchid, again.batchid, "the same batch");

        super::super::write::create(&mut conn, first, Duration::ZERO, None)
            .await
            .expect("written");
        super::super::write::create(&mut conn, again, Duration::ZERO, None)
            .await
            .expect("written again");

        let queued: u64 = redis::cmd("XLEN")
            .arg(super::queue_key())
            .query_async(&mut conn)
            .await
            .expect("XLEN");
        assert_eq!(queued, 3);
    }
}
