//! Why the broker could not do what was asked.

use std::time::Duration;

/// Why the broker could not do what was asked; the sender should retry later.
/// Clone: one failed script call fails every webhook it carried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// Redis answered with an error or the connection failed.
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The pub/sub connection closed.
    #[error("the Redis subscription connection closed")]
    Disconnected,
    /// Redis answered something the consumer did not ask for.
    #[error("unexpected answer from Redis: {0}")]
    Unexpected(String),
}
