//! One connection type for one Redis and for a Redis Cluster, so that a script,
//! a pipeline or a command is written once and runs on either.

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection to one Redis or to a Redis Cluster. Cheap to clone: clones share
/// the connection.
#[derive(Clone)]
pub enum RedisConnection {
    /// One Redis, reconnecting by itself.
    Manager(ConnectionManager),
    /// One Redis, a connection of its own (blocking reads).
    Multiplexed(MultiplexedConnection),
    /// A cluster: each command goes to the node serving its first key's slot, and
    /// follows the slot when it moves (`MOVED`, a failover).
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedisConnection::Manager(_) => "RedisConnection::Manager",
            RedisConnection::Multiplexed(_) => "RedisConnection::Multiplexed",
            RedisConnection::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl RedisConnection {
    /// Runs `cmd` on the master that serves `key`'s slot (in a cluster; on one
    /// Redis, on it): for the commands that name no key (`INFO`, `CLUSTER INFO`)
    /// but must reach the node that holds the caller's keys.
    pub async fn query_at<T: redis::FromRedisValue>(
        &mut self,
        key: &str,
        cmd: Cmd,
    ) -> redis::RedisResult<T> {
        match self {
            RedisConnection::Cluster(conn) => {
                let route = Route::with_slot(Slot::for_key(key), SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                Ok(redis::from_redis_value(
                    conn.route_command(cmd, routing).await?,
                )?)
            }
            _ => cmd.query_async(self).await,
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Manager(conn) => conn.req_packed_command(cmd),
            RedisConnection::Multiplexed(conn) => conn.req_packed_command(cmd),
            RedisConnection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Manager(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConnection::Multiplexed(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Manager(conn) => conn.get_db(),
            RedisConnection::Multiplexed(conn) => conn.get_db(),
            RedisConnection::Cluster(conn) => conn.get_db(),
        }
    }
}
