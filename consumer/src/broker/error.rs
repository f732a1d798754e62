//! Why the broker could not do what was asked.

use std::time::Duration;

/// Why the broker could not do what was asked; the sender should retry later.
/// Clone: one failed script call fails every webhook it carried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the Redis subscription connection closed")]
    Disconnected,
    #[error("unexpected answer from Redis: {0}")]
    Unexpected(String),
    /// The write is on the master only: were it to die now, the write would be lost.
    #[error(
        "the write reached {acknowledged} Redis replica(s) of the {wanted} it must reach \
         (REDIS_WAIT_REPLICAS) in time"
    )]
    NotReplicated { acknowledged: u32, wanted: u32 },
    /// The Redis that holds the keys cannot take writes now (see its text).
    #[error("{0}")]
    Unhealthy(String),
}
