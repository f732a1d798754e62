//! The webhook's one Redis call: the accept script (dedupe, count, remember,
//! publish, atomically) and the connection of each worker thread it runs on.

use super::RECENT_CAP;
use super::dedupe::{BUCKETS, DedupeWindow};
use redis::aio::ConnectionManager;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use taskhooks_shared::Priority;

/// Dedupe, count, remember and publish, atomically. Returns the new sequence
/// number, or 0 for a duplicate. The event text matches `hub::event_json`.
///
/// Every argument and every `redis.call` costs Redis about 1,000 and 3,000–10,000
/// instructions (counted with `scripts/profile`, docs/benchmarks.md), so the script
/// takes only what changes per webhook; the keys are built from the channel in the
/// script, and the settings are written into its text ([`AcceptScript::new`]).
///
/// Dedupe (when the id hash is not empty): the bucket is Redis's own clock divided
/// by the bucket length, so every replica agrees on it whatever its clock; the id's
/// shard is looked up in the [`BUCKETS`] buckets before the current one, then the
/// hash is added to the current one with `HSETNX`, which is also the current
/// bucket's lookup (0: it was there). The current bucket's hash expires once it has
/// left the window.
/// None of the keys is passed in KEYS: the dedupe keys depend on Redis's clock, and
/// the broker does not support Redis Cluster anyway.
///
/// The recent list is trimmed back to `cap` once every [`TRIM_EVERY`] events rather
/// than on each (an `LTRIM` was a sixth of the script's cost): it holds at most
/// `cap + TRIM_EVERY - 1` events, and readers take the newest `cap`.
const ACCEPT: &str = r#"
    -- ARGV: channel, task json, priority, id hash ('' = no dedupe), shard.
    -- The @NAMES@ are settings, written in by AcceptScript::new.
    local channel = ARGV[1]
    if ARGV[4] ~= '' then
        local time = redis.call('TIME')
        local bucket = math.floor((time[1] * 1000 + math.floor(time[2] / 1000)) / @BUCKET_MS@)
        local prefix = channel .. ':seen:'
        local shard = ':' .. ARGV[5]
        for b = bucket - @BUCKETS@, bucket - 1 do
            if redis.call('HEXISTS', prefix .. string.format('%d', b) .. shard, ARGV[4]) == 1 then
                return 0
            end
        end
        local key = prefix .. string.format('%d', bucket) .. shard
        if redis.call('HSETNX', key, ARGV[4], '') == 0 then
            return 0
        end
        if redis.call('HLEN', key) == 1 then
            redis.call('PEXPIREAT', key, string.format('%d', (bucket + 1 + @BUCKETS@) * @BUCKET_MS@))
        end
    end
    local seq = redis.call('INCR', channel .. ':seq')
    redis.call('HINCRBY', channel .. ':totals', ARGV[3], 1)
    local event = '{"seq":' .. seq .. ',"task":' .. ARGV[2] .. '}'
    local recent = channel .. ':recent'
    redis.call('LPUSH', recent, event)
    if seq % @TRIM_EVERY@ == 0 then
        redis.call('LTRIM', recent, 0, @CAP@ - 1)
    end
    redis.call('PUBLISH', channel, event)
    return seq
"#;

/// How many events apart the recent list is trimmed back to [`RECENT_CAP`].
const TRIM_EVERY: u64 = 64;

/// The next [`AcceptScript::id`].
static NEXT_BROKER_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Each thread's own connection for each broker, so that a webhook's script call
    /// is written, answered and awaited on the worker thread that serves it. Through
    /// one connection driven on another thread, every call woke that thread and was
    /// woken back: two context switches per webhook, which cost the consumer as
    /// much system time as all its own work (`perf stat -e context-switches`,
    /// docs/benchmarks.md). A few brokers at most (tests start several apps), so a list.
    static THREAD_CONNECTIONS: RefCell<Vec<(u64, ConnectionManager)>> = const { RefCell::new(Vec::new()) };
}

/// The accept script of one broker, for its channel and dedupe window.
pub(crate) struct AcceptScript {
    /// Tells this broker's connections apart in [`THREAD_CONNECTIONS`].
    id: u64,
    channel: Arc<str>,
    window: DedupeWindow,
    script: redis::Script,
}

impl AcceptScript {
    /// [`ACCEPT`] for `channel` and `window`, its settings written into the text as
    /// Lua numbers (integers, so nothing can be injected).
    pub(crate) fn new(channel: Arc<str>, window: DedupeWindow) -> AcceptScript {
        let text = ACCEPT
            .replace("@BUCKET_MS@", &window.bucket_ms().to_string())
            .replace("@BUCKETS@", &BUCKETS.to_string())
            .replace("@TRIM_EVERY@", &TRIM_EVERY.to_string())
            .replace("@CAP@", &RECENT_CAP.to_string());
        AcceptScript {
            id: NEXT_BROKER_ID.fetch_add(1, Ordering::Relaxed),
            channel,
            window,
            script: redis::Script::new(&text),
        }
    }

    /// The call for one webhook: `task_json` of priority `priority`, deduplicated by
    /// `webhook_id` when there is one.
    pub(crate) fn invocation(
        &self,
        webhook_id: Option<&str>,
        task_json: String,
        priority: Priority,
    ) -> redis::ScriptInvocation<'_> {
        let hash = webhook_id.map(|id| self.window.hash(id));
        let mut invocation = self.script.arg(&*self.channel);
        invocation
            .arg(task_json)
            .arg(priority.as_str())
            .arg(hash.as_ref().map_or(&[][..], |h| &h.field[..]))
            .arg(hash.map_or(0, |h| h.shard));
        invocation
    }

    /// This thread's own connection (see [`THREAD_CONNECTIONS`]), made by `connect`
    /// on first use; `shared` if that fails.
    pub(crate) fn thread_connection(
        &self,
        connect: impl FnOnce() -> redis::RedisResult<ConnectionManager>,
        shared: &ConnectionManager,
    ) -> ConnectionManager {
        THREAD_CONNECTIONS.with_borrow_mut(|connections| {
            if let Some((_, conn)) = connections.iter().find(|(id, _)| *id == self.id) {
                return conn.clone();
            }
            match connect() {
                Ok(conn) => {
                    connections.push((self.id, conn.clone()));
                    conn
                }
                Err(err) => {
                    tracing::warn!(%err, "no Redis connection of this thread's own; using the shared one");
                    shared.clone()
                }
            }
        })
    }
}
