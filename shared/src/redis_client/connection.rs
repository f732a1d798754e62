//! One connection type for one Redis and for a Redis Cluster, so that a script,
//! a pipeline or a command is written once and runs on either.

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::time::Duration;

/// `EVALSHA` of `script` with `keys` (the first routes the call in a cluster); the
/// caller adds the script's arguments, and runs it with
/// [`RedisConnection::eval_then_wait`].
pub fn evalsha(script: &redis::Script, keys: &[&str]) -> Cmd {
    let mut eval = redis::cmd("EVALSHA");
    eval.arg(script.get_hash()).arg(keys.len()).arg(keys);
    eval
}

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
    /// Runs `eval` (made by [`evalsha`] for `script`) and, when `wait` gives a
    /// number of replicas and a timeout, `WAIT`s for them: the script's answer, and
    /// how many replicas have its writes. Both go in one pipeline, down the same
    /// connection to the same node: in a cluster, a `WAIT` sent on its own after a
    /// failover would reach the new master, which never had the write, and count
    /// its replicas. Should the node change under the pipeline, the cluster client
    /// sends it whole to the new master, so the `WAIT` covers the script's run
    /// there (a script that may run twice must say what a second run does). On
    /// `NOSCRIPT` (a Redis restarted, a node new to the cluster) the script is
    /// loaded and the pipeline sent again.
    pub async fn eval_then_wait(
        &mut self,
        script: &redis::Script,
        eval: &Cmd,
        wait: Option<(u32, Duration)>,
    ) -> redis::RedisResult<(Value, Option<u32>)> {
        let mut pipe = redis::pipe();
        pipe.add_command(eval.clone());
        if let Some((replicas, timeout)) = wait {
            pipe.cmd("WAIT")
                .arg(replicas)
                .arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        }
        let replies: Vec<Value> = match pipe.query_async(self).await {
            Err(err)
                if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                script.load_async(self).await?;
                pipe.query_async(self).await?
            }
            replies => replies?,
        };
        let mut replies = replies.into_iter();
        let answer = replies.next().unwrap_or(Value::Nil);
        let acknowledged = match (wait, replies.next()) {
            (None, _) => None,
            (Some(_), Some(count)) => Some(redis::from_redis_value(count)?),
            (Some(_), None) => Some(0),
        };
        Ok((answer, acknowledged))
    }

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
