//! The webhook's one Redis call: the accept script (dedupe, count, remember,
//! publish, atomically), the queue that gathers the webhooks of a worker thread
//! into one call, and the connection of each worker thread it runs on.

use super::dedupe::{BUCKETS, DedupeWindow, IdHash};
use super::error::BrokerError;
use super::snapshot::RECENT_CAP;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskhooks_shared::Priority;
use taskhooks_shared::redis_client::{RedisConnection, evalsha};
use taskhooks_shared::sync::lock;
use tokio::sync::oneshot;

/// Dedupe, count, remember and publish, atomically, the webhooks of one call (the
/// dedupe one by one, in order). Returns one number per webhook: its new sequence
/// number, or 0 for a duplicate (of an earlier webhook or of one before it in the call).
///
/// The event text it pushes, `[seq,…]`, must be the text `Event::new` writes, `seq`
/// first: `event::leading_seq` reads it from those first bytes. It publishes the
/// events of a call as one message, their array, on `<ch>:v2:events`. One test runs
/// this script and feeds its output to those readers:
/// `broker::redis::tests::the_accept_script_writes_the_event_json_rust_writes_and_reads`.
///
/// Every argument and, far more, every `redis.call` costs Redis instructions
/// (counted with `scripts/profile`, docs/benchmarks.md), so the script takes only
/// what changes per webhook; the keys are built from the channel in the script, and
/// the settings are written into its text ([`AcceptScript::new`]). A call has a
/// fixed cost too (reading it, running the script, answering), which the webhooks of
/// one batch share ([`Queue`]).
///
/// Dedupe (when the id hash is not empty): the bucket is Redis's own clock divided
/// by the bucket length, so every replica agrees on it whatever its clock; the id's
/// shard is looked up in the [`BUCKETS`] buckets before the current one, then the
/// hash is added to the current one with `HSETNX`, which is also the current
/// bucket's lookup (0: it was there). The current bucket's hash expires once it has
/// left the window.
/// Only one key is passed in KEYS, `{<ch>}:seq`, for a Redis Cluster to route the
/// call to the node serving the keys' slot: the dedupe keys depend on Redis's clock,
/// so they are built in the script, and every key shares that one hash tag, `{<ch>}`.
///
/// The new webhooks of a call are counted, remembered and published together once
/// every one is deduplicated: one `INCRBY` for their sequence numbers, one `HINCRBY`
/// per priority among them, one `LPUSH` of their events (the newest first, as one
/// push each would leave them), then one `PUBLISH` of them all in `seq` order: a
/// few `redis.call`s per call rather than several per webhook. The script is
/// atomic, so nobody sees the order inside it.
///
/// The `v2` in the list's and the channel's names is the event format's: consumers
/// from before 2026-12-06 wrote each event as an object to `<ch>:recent` and
/// published each alone on `<ch>`, so during a rolling upgrade neither reads the
/// other's events as its own format (docs/operating.md, "Upgrading").
///
/// The recent list is trimmed back to `cap` whenever a call's events reach a
/// multiple of [`TRIM_EVERY`], rather than on each event (an `LTRIM` is one of the
/// dearest calls): between two trims fewer than `TRIM_EVERY` events are pushed,
/// so it holds at most `cap + TRIM_EVERY - 1` events, and readers take the newest `cap`.
const ACCEPT: &str = r#"
    -- KEYS[1]: the seq key, for a cluster's routing. ARGV: the keys' prefix {<ch>}, then per webhook: the event's values after seq (event::task_values),
    -- priority, id hash ('' = no dedupe), shard.
    -- The @NAMES@ are settings, written in by AcceptScript::new.
    local channel = ARGV[1]
    local time = redis.call('TIME')
    local bucket = math.floor((time[1] * 1000 + math.floor(time[2] / 1000)) / @BUCKET_MS@)
    -- The keys RedisBroker reads back (broker::redis::tests checks both sides agree;
    -- `<ch>:duplicates`, below, is checked by tests/api/fault_injection.rs).
    local seq_key, totals, recent = channel .. ':seq', channel .. ':totals', channel .. ':v2:recent'
    -- Each bucket's key prefix, formatted once per call, not once per webhook
    -- (string.format is dear in Redis's Lua).
    local buckets = {}
    for b = 0, @BUCKETS@ do
        buckets[b] = channel .. ':seen:' .. string.format('%d', bucket - @BUCKETS@ + b) .. ':'
    end
    local fresh, fresh_count = {}, 0
    for i = 2, #ARGV, 4 do
        local new = true
        if ARGV[i + 2] ~= '' then
            local shard = ARGV[i + 3]
            for b = 0, @BUCKETS@ - 1 do
                if redis.call('HEXISTS', buckets[b] .. shard, ARGV[i + 2]) == 1 then
                    new = false
                    break
                end
            end
            if new then
                local key = buckets[@BUCKETS@] .. shard
                if redis.call('HSETNX', key, ARGV[i + 2], '') == 0 then
                    new = false
                elseif redis.call('HLEN', key) == 1 then
                    redis.call('PEXPIREAT', key, string.format('%d', (bucket + 1 + @BUCKETS@) * @BUCKET_MS@))
                end
            end
        end
        fresh[#fresh + 1] = new
        if new then fresh_count = fresh_count + 1 end
    end
    -- Then the new ones of the call together: one INCRBY, one HINCRBY per priority
    -- present, one LPUSH, one PUBLISH (their array, in seq order).
    local seqs, events, priorities, counts = {}, {}, {}, {}
    local seq = 0
    if fresh_count > 0 then
        seq = redis.call('INCRBY', seq_key, fresh_count) - fresh_count
    end
    for n, new in ipairs(fresh) do
        if new then
            seq = seq + 1
            local i = 4 * n - 2
            local priority = ARGV[i + 1]
            if counts[priority] == nil then
                counts[priority] = 0
                priorities[#priorities + 1] = priority
            end
            counts[priority] = counts[priority] + 1
            -- The event JSON, as event.rs writes and reads it (an array, seq first):
            -- broker::redis::tests::the_accept_script_writes_the_event_json_rust_writes_and_reads.
            -- %d: a bare `.. seq ..` would format the number as a float (%.14g).
            events[#events + 1] = '[' .. string.format('%d', seq) .. ',' .. ARGV[i] .. ']'
            seqs[n] = seq
        else
            seqs[n] = 0
        end
    end
    -- Webhooks answered `duplicate`, every replica together (/api/stats).
    if fresh_count < #fresh then
        redis.call('INCRBY', channel .. ':duplicates', #fresh - fresh_count)
    end
    if fresh_count > 0 then
        for _, priority in ipairs(priorities) do
            redis.call('HINCRBY', totals, priority, counts[priority])
        end
        redis.call('LPUSH', recent, unpack(events))
        if math.floor(seq / @TRIM_EVERY@) > math.floor((seq - fresh_count) / @TRIM_EVERY@) then
            redis.call('LTRIM', recent, 0, @CAP@ - 1)
        end
        redis.call('PUBLISH', channel .. ':v2:events', '[' .. table.concat(events, ',') .. ']')
    end
    return seqs
"#;

/// How many events apart the recent list is trimmed back to [`RECENT_CAP`].
const TRIM_EVERY: u64 = 64;

/// The next [`AcceptScript::id`].
static NEXT_BROKER_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Each thread's own connection for each broker, so that a webhook's script call
    /// is written, answered and awaited on the worker thread that serves it. Through
    /// one connection driven on another thread, every call woke that thread and was
    /// woken back: two context switches per webhook (`perf stat -e context-switches`,
    /// docs/benchmarks.md). A few brokers at most (tests start several apps), so a list.
    static THREAD_CONNECTIONS: RefCell<Vec<(u64, RedisConnection)>> = const { RefCell::new(Vec::new()) };
    /// Each thread's [`Queue`] for each broker.
    static THREAD_QUEUES: RefCell<Vec<(u64, Arc<Mutex<Queue>>)>> = const { RefCell::new(Vec::new()) };
}

/// One webhook's part of a script call.
pub(crate) struct Call {
    /// The event's values after its `seq` (`event::task_values`).
    task_values: String,
    priority: Priority,
    hash: Option<IdHash>,
}

/// A webhook's result: its sequence number, 0 for a duplicate.
pub(crate) type Answer = Result<u64, BrokerError>;

/// The webhooks of one worker thread waiting for a script call. The first to
/// arrive starts a flush task; by the time it runs, every webhook that reached
/// Redis in the same turn of the thread's event loop has joined, and one call takes
/// them all (its fixed cost shared: `scripts/profile ingest`, docs/benchmarks.md).
/// Webhooks arriving while that call is under way start the next one. Bounded by
/// the requests in flight; a call takes at most [`MAX_CALL`] of them.
#[derive(Default)]
pub(crate) struct Queue {
    calls: Vec<(Call, oneshot::Sender<Answer>)>,
    flush_started: bool,
}

/// Most webhooks in one script call. A script holds Redis while it runs, so a call
/// must stay short, yet large enough that its webhooks share nearly all of a call's
/// fixed cost (docs/benchmarks.md).
const MAX_CALL: usize = 64;

/// The webhooks of one call, oldest first.
pub(crate) type Group = Vec<(Call, oneshot::Sender<Answer>)>;

impl Queue {
    /// Takes the oldest waiting webhooks, at most [`MAX_CALL`], and whether more
    /// wait (then the caller starts another flush; else the next webhook to arrive
    /// starts one).
    pub(crate) fn take(queue: &Mutex<Queue>) -> (Group, bool) {
        let mut waiting = lock(queue);
        let count = waiting.calls.len().min(MAX_CALL);
        let group: Group = waiting.calls.drain(..count).collect();
        let more = !waiting.calls.is_empty();
        waiting.flush_started = more;
        (group, more)
    }
}

/// The accept script of one broker, for its keys' prefix and dedupe window.
pub(crate) struct AcceptScript {
    /// Tells this broker's connections apart in [`THREAD_CONNECTIONS`].
    id: u64,
    channel: Arc<str>,
    window: DedupeWindow,
    script: redis::Script,
}

impl AcceptScript {
    /// [`ACCEPT`] for the keys' prefix `channel` (`{<ch>}`) and `window`, its settings written into the text as
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

    /// What the script needs of one webhook: the event values `task_values` of a
    /// task of priority `priority`, deduplicated by `webhook_id` when there is one.
    pub(crate) fn call(
        &self,
        webhook_id: Option<&str>,
        task_values: String,
        priority: Priority,
    ) -> Call {
        Call {
            task_values,
            priority,
            hash: webhook_id.map(|id| self.window.hash(id)),
        }
    }

    /// Runs the script for every webhook of `calls`, in order (`seq_key` routes
    /// it), and with `wait` the replicas' `WAIT` in the same pipeline
    /// (`RedisConnection::eval_then_wait`). Should the cluster client send it again
    /// to a new master, a webhook already in is a duplicate there.
    pub(crate) async fn run<'a>(
        &self,
        conn: &mut RedisConnection,
        seq_key: &str,
        calls: impl Iterator<Item = &'a Call>,
        wait: Option<(u32, Duration)>,
    ) -> redis::RedisResult<(redis::Value, Option<u32>)> {
        let mut eval = evalsha(&self.script, &[seq_key]);
        eval.arg(&*self.channel);
        for call in calls {
            eval.arg(&call.task_values)
                .arg(call.priority.as_str())
                .arg(call.hash.as_ref().map_or(&[][..], |h| &h.field[..]))
                .arg(call.hash.map_or(0, |h| h.shard));
        }
        conn.eval_then_wait(&self.script, &eval, wait).await
    }

    /// Puts `call` in this thread's queue (see [`Queue`]); `answer` will get its
    /// result. Returns the queue, and whether the caller must start its flush (none
    /// is under way).
    pub(crate) fn enqueue(
        &self,
        call: Call,
        answer: oneshot::Sender<Answer>,
    ) -> (Arc<Mutex<Queue>>, bool) {
        let queue = THREAD_QUEUES.with_borrow_mut(|queues| {
            match queues.iter().find(|(id, _)| *id == self.id) {
                Some((_, queue)) => queue.clone(),
                None => {
                    let queue = Arc::new(Mutex::new(Queue::default()));
                    queues.push((self.id, queue.clone()));
                    queue
                }
            }
        });
        let mut waiting = lock(&queue);
        waiting.calls.push((call, answer));
        let start = !std::mem::replace(&mut waiting.flush_started, true);
        drop(waiting);
        (queue, start)
    }

    /// This thread's own connection (see [`THREAD_CONNECTIONS`]), made by `connect`
    /// on first use; `shared` if that fails.
    pub(crate) fn thread_connection(
        &self,
        connect: impl FnOnce() -> redis::RedisResult<RedisConnection>,
        shared: &RedisConnection,
    ) -> RedisConnection {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn push(queue: &Mutex<Queue>, count: usize) {
        for _ in 0..count {
            let call = Call {
                task_values: String::new(),
                priority: Priority::Low,
                hash: None,
            };
            lock(queue).calls.push((call, oneshot::channel().0));
        }
        lock(queue).flush_started = true;
    }

    #[test]
    fn a_call_takes_at_most_max_call_webhooks_and_says_when_more_wait() {
        let queue = Mutex::new(Queue::default());
        push(&queue, MAX_CALL + 6);

        let (first, more) = Queue::take(&queue);
        assert_eq!((first.len(), more), (MAX_CALL, true));
        assert!(lock(&queue).flush_started, "the next flush is the caller's");
        let (second, more) = Queue::take(&queue);
        assert_eq!((second.len(), more), (6, false));
        assert!(!lock(&queue).flush_started, "the next webhook starts one");
    }
}
