//! Test support for both programs' suites (the `testing` feature, enabled by their
//! dev-dependencies only): a private redis-server per test (or a six-node Redis
//! Cluster, for failover), one HTTP client for the app under test, one way to wait
//! for a condition, and the checks both suites make the same way.

mod cluster;
mod dashboard;
mod http;
mod programs;
mod redis;
mod tls;
mod wait;

pub use cluster::{CLUSTER_NODES, RedisCluster};
pub use dashboard::named_events;
pub use http::{TestClient, http_client};
pub use programs::{assert_help_hides, assert_security_headers, log_until_listening};
pub use redis::RedisServer;
pub use tls::{AclUser, RedissLogin, TlsRedisServer, assert_rediss_password_hidden};
pub use wait::{Attempt, eventually, eventually_within};

/// How long any awaited condition may take before a test fails: long enough for a
/// loaded CI machine, short enough that a hung test says so.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(15);
