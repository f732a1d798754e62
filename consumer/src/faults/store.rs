//! Where the fault settings and counters are kept: one Redis hash
//! `{<channel>}:faults` shared by every replica, or this process's memory with the
//! in-process broker.

use super::settings::{Change, FIELDS, Injected, Settings};
use crate::broker::redis::timed;
use crate::broker::{Broker, BrokerError};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use taskhooks_shared::redis_client::RedisConnection;
use taskhooks_shared::sync::lock;

/// Takes one from a setting while it is above 0, and counts it: atomically, so
/// that `fail_next: 4` is 4 refusals whichever replicas ask, and how many.
static TAKE_ONE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
        -- KEYS: the faults hash; ARGV: the setting to take one from, the counter to add it to
        local left = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0
        if left <= 0 then return 0 end
        redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
        redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
        return 1
        "#,
    )
});

pub(super) enum Store {
    /// Every replica on this Redis shares the hash at `key`.
    Redis { conn: RedisConnection, key: String },
    /// This process only.
    Memory(Mutex<(Settings, Injected)>),
}

impl Store {
    pub(super) fn new(broker: &Broker) -> Store {
        match broker {
            Broker::Redis(redis) => {
                let (conn, prefix) = redis.side_connection();
                Store::Redis {
                    conn,
                    key: format!("{prefix}:faults"),
                }
            }
            Broker::Memory(_) => Store::Memory(Mutex::default()),
        }
    }

    /// Whether other replicas may change the settings.
    pub(super) fn is_shared(&self) -> bool {
        matches!(self, Store::Redis { .. })
    }

    /// The settings themselves when they are kept in this process (no copy needed).
    pub(super) fn local(&self) -> Option<Settings> {
        match self {
            Store::Redis { .. } => None,
            Store::Memory(state) => Some(lock(state).0),
        }
    }

    pub(super) async fn read(&self) -> Result<(Settings, Injected), BrokerError> {
        match self {
            Store::Redis { conn, key } => {
                let mut conn = conn.clone();
                let hash: HashMap<String, u64> =
                    timed(redis::cmd("HGETALL").arg(key).query_async(&mut conn)).await?;
                Ok(from_hash(&hash))
            }
            Store::Memory(state) => Ok(*lock(state)),
        }
    }

    pub(super) async fn change(&self, change: &Change) -> Result<(), BrokerError> {
        match self {
            Store::Redis { conn, key } => {
                if change.0.is_empty() {
                    return Ok(());
                }
                let mut hset = redis::cmd("HSET");
                hset.arg(key);
                for (name, value) in &change.0 {
                    hset.arg(*name).arg(*value);
                }
                let mut conn = conn.clone();
                timed(hset.query_async::<()>(&mut conn)).await
            }
            Store::Memory(state) => {
                let mut state = lock(state);
                state.0 = change.apply(state.0);
                Ok(())
            }
        }
    }

    pub(super) async fn clear(&self) -> Result<(), BrokerError> {
        match self {
            Store::Redis { conn, key } => {
                let mut conn = conn.clone();
                let hdel = redis::cmd("HDEL").arg(key).arg(&FIELDS[..]).clone();
                timed(hdel.query_async::<()>(&mut conn)).await
            }
            Store::Memory(state) => {
                lock(state).0 = Settings::default();
                Ok(())
            }
        }
    }

    /// Takes one from `setting` if it is above 0 and adds it to `counter`: whether it did.
    pub(super) async fn take_one(
        &self,
        setting: &'static str,
        counter: &'static str,
    ) -> Result<bool, BrokerError> {
        match self {
            Store::Redis { conn, key } => {
                let mut conn = conn.clone();
                let mut invocation = TAKE_ONE.key(key);
                invocation.arg(setting).arg(counter);
                let taken: u8 = timed(invocation.invoke_async(&mut conn)).await?;
                Ok(taken == 1)
            }
            Store::Memory(state) => {
                let mut state = lock(state);
                let (settings, injected) = &mut *state;
                let left = settings.get(setting).unwrap_or(0);
                if left == 0 {
                    return Ok(false);
                }
                settings.set(setting, left - 1);
                match counter {
                    "refused" => injected.refused += 1,
                    _ => injected.dropped += 1,
                }
                Ok(true)
            }
        }
    }

    /// Counts one webhook refused by `fail_percent`.
    pub(super) async fn count_refused(&self) -> Result<(), BrokerError> {
        match self {
            Store::Redis { conn, key } => {
                let mut conn = conn.clone();
                let hincrby = redis::cmd("HINCRBY").arg(key).arg("refused").arg(1).clone();
                timed(hincrby.query_async::<()>(&mut conn)).await
            }
            Store::Memory(state) => {
                lock(state).1.refused += 1;
                Ok(())
            }
        }
    }
}

/// The settings and counters of the Redis hash; a field missing is its default.
fn from_hash(hash: &HashMap<String, u64>) -> (Settings, Injected) {
    let mut settings = Settings::default();
    for name in FIELDS {
        if let Some(value) = hash.get(name) {
            settings.set(name, *value);
        }
    }
    let count = |name: &str| hash.get(name).copied().unwrap_or(0);
    let injected = Injected {
        refused: count("refused"),
        dropped: count("dropped"),
    };
    (settings, injected)
}
