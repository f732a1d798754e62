//! What an operator of a Redis Cluster needs to see: whether the node that holds
//! a program's keys is in a healthy cluster with the replicas its writes wait for
//! (`/readyz`), and, in the logs, which node failed and when the slots moved.

use super::RedisConnection;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the topology is read for [`watch_topology`]. A failover takes
/// seconds (the cluster's node timeout and an election), so a second is soon enough.
const TOPOLOGY_INTERVAL: Duration = Duration::from_secs(1);

/// Why the Redis that holds a program's keys cannot take its writes now.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The node did not answer, or refused the check.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// The cluster says it is not serving every slot.
    #[error(
        "the Redis Cluster is not ok (cluster_state:{state} on the node serving this \
         program's keys): a node failed and no replica took over, or the nodes cannot reach each other"
    )]
    ClusterNotOk { state: String },
    /// Fewer replicas than the writes wait for.
    #[error(
        "the Redis master serving this program's keys has {online} replica(s) online and \
         every write waits for {wanted} (REDIS_WAIT_REPLICAS): writes are refused until a \
         replica is back, or set REDIS_WAIT_REPLICAS lower"
    )]
    TooFewReplicas { online: u32, wanted: u32 },
}

/// Checks that the master serving `key`'s slot is in a cluster whose state is
/// ok (in a cluster) and has at least `wait_replicas` replicas online (whenever
/// writes wait for some).
pub async fn cluster_health(
    conn: &mut RedisConnection,
    key: &str,
    wait_replicas: u32,
) -> Result<(), HealthError> {
    if matches!(conn, RedisConnection::Cluster(_)) {
        let mut info = redis::cmd("CLUSTER");
        info.arg("INFO");
        let info: String = conn.query_at(key, info).await?;
        let state = field(&info, "cluster_state").unwrap_or("unknown");
        if state != "ok" {
            return Err(HealthError::ClusterNotOk {
                state: state.to_owned(),
            });
        }
    }
    if wait_replicas > 0 {
        let mut info = redis::cmd("INFO");
        info.arg("replication");
        let info: String = conn.query_at(key, info).await?;
        let online = online_replicas(&info);
        if online < wait_replicas {
            return Err(HealthError::TooFewReplicas {
                online,
                wanted: wait_replicas,
            });
        }
    }
    Ok(())
}

/// How many replicas a write waits for when `REDIS_WAIT_REPLICAS` is not set: 0
/// on one Redis; on a cluster, 1 when it has replicas (`CLUSTER NODES` lists a
/// `slave`), else 0, since no write could ever reach one. A cluster that cannot be
/// read now gets 1, the safe side: `/readyz` then says if there is none.
pub async fn wait_replicas_by_default(client: &super::RedisClient, timeout: Duration) -> u32 {
    if !client.is_cluster() {
        return 0;
    }
    let read = async {
        let mut conn = client.shared_connection(timeout)?;
        redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async::<String>(&mut conn)
            .await
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(nodes)) if !nodes.lines().any(|line| line.contains("slave")) => {
            tracing::warn!(
                "the Redis Cluster has no replicas: writes do not wait for one \
                 (REDIS_WAIT_REPLICAS=0), and a master that dies loses its last writes"
            );
            0
        }
        Ok(Ok(_)) => 1,
        Ok(Err(err)) => {
            tracing::warn!(%err, "cannot read whether the Redis Cluster has replicas; writes wait for 1");
            1
        }
        Err(_) => {
            tracing::warn!(
                "cannot read whether the Redis Cluster has replicas in time; writes wait for 1"
            );
            1
        }
    }
}

/// The value of `name:value` in an `INFO`-style text.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
}

/// The replicas `INFO replication` lists as online (`slaveN:…,state=online,…`).
fn online_replicas(info: &str) -> u32 {
    let online = info
        .lines()
        .filter(|line| line.starts_with("slave") && line.contains("state=online"))
        .count();
    u32::try_from(online).unwrap_or(u32::MAX)
}

/// One node as `CLUSTER NODES` shows it. Only `fail` (the cluster agreed the node
/// is down) counts, not `fail?` (the view of the node asked): each reading may come
/// from another node, and views alone would make the log flap.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    master: bool,
    failed: bool,
}

/// The nodes by address, from a `CLUSTER NODES` text.
fn parse_nodes(text: &str) -> BTreeMap<String, Node> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let _id = parts.next()?;
            let address = parts.next()?.split('@').next()?.to_owned();
            let flags: Vec<&str> = parts.next()?.split(',').collect();
            let node = Node {
                master: flags.contains(&"master"),
                failed: flags.contains(&"fail"),
            };
            Some((address, node))
        })
        .collect()
}

/// What changed between two readings of the topology, as log lines.
fn changes(before: &BTreeMap<String, Node>, now: &BTreeMap<String, Node>) -> Vec<(bool, String)> {
    let mut lines = Vec::new();
    for (address, node) in now {
        let Some(old) = before.get(address) else {
            lines.push((false, format!("Redis Cluster node {address} joined")));
            continue;
        };
        if node.failed && !old.failed {
            lines.push((
                true,
                format!("Redis Cluster node {address} failed (the cluster agreed it is down)"),
            ));
        } else if !node.failed && old.failed {
            lines.push((false, format!("Redis Cluster node {address} answers again")));
        }
        if node.master != old.master {
            let role = if node.master {
                "a master (failover)"
            } else {
                "a replica"
            };
            lines.push((false, format!("Redis Cluster node {address} is now {role}")));
        }
    }
    for address in before.keys().filter(|a| !now.contains_key(*a)) {
        lines.push((
            true,
            format!("Redis Cluster node {address} left the cluster"),
        ));
    }
    lines
}

/// Logs, until `shutdown`, each change of the cluster's topology: a node that
/// fails or answers again, a replica promoted, the masters after it. The redis
/// crate follows moved slots by itself; this is for the operator reading the logs.
pub async fn watch_topology(mut conn: RedisConnection, shutdown: CancellationToken) {
    let mut known: Option<BTreeMap<String, Node>> = None;
    let mut unreadable = false;
    let mut tick = tokio::time::interval(TOPOLOGY_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = match read_topology(&mut conn).await {
            Ok(now) => now,
            Err(why) => {
                // Once per spell, not once a second.
                if !std::mem::replace(&mut unreadable, true) {
                    tracing::warn!("cannot read the Redis Cluster's topology: {why}");
                }
                continue;
            }
        };
        unreadable = false;
        match &known {
            None => {
                tracing::info!(masters = %masters(&now), nodes = now.len(), "Redis Cluster topology read")
            }
            Some(before) => log_changes(before, &now),
        }
        known = Some(now);
    }
}

/// The nodes `CLUSTER NODES` lists now, or why they could not be read.
async fn read_topology(conn: &mut RedisConnection) -> Result<BTreeMap<String, Node>, String> {
    let mut nodes = redis::cmd("CLUSTER");
    nodes.arg("NODES");
    match tokio::time::timeout(TOPOLOGY_INTERVAL, nodes.query_async::<String>(conn)).await {
        Ok(Ok(text)) => Ok(parse_nodes(&text)),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("no answer within a second".to_owned()),
    }
}

/// Logs what changed from `before` to `now`: failures as warnings.
fn log_changes(before: &BTreeMap<String, Node>, now: &BTreeMap<String, Node>) {
    for (bad, line) in changes(before, now) {
        if bad {
            tracing::warn!("{line}");
        } else {
            tracing::info!("{line}");
        }
    }
    if masters(before) != masters(now) {
        tracing::info!(masters = %masters(now), "Redis Cluster topology refreshed: the masters changed");
    }
}

/// The live masters' addresses, comma-separated.
fn masters(nodes: &BTreeMap<String, Node>) -> String {
    nodes
        .iter()
        .filter(|(_, node)| node.master && !node.failed)
        .map(|(address, _)| address.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 slave a1 0 0 1 connected
";
    const AFTER: &str = "\
a1 127.0.0.1:7000@17000 master,fail - 0 0 1 disconnected
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 myself,master - 0 0 3 connected 0-5460
";

    #[test]
    fn a_failed_master_and_its_promoted_replica_are_both_logged() {
        let lines: Vec<String> = changes(&parse_nodes(BEFORE), &parse_nodes(AFTER))
            .into_iter()
            .map(|(_, line)| line)
            .collect();
        assert_eq!(
            lines,
            [
                "Redis Cluster node 127.0.0.1:7000 failed (the cluster agreed it is down)",
                "Redis Cluster node 127.0.0.1:7003 is now a master (failover)",
            ]
        );
        assert_eq!(
            masters(&parse_nodes(AFTER)),
            "127.0.0.1:7001,127.0.0.1:7003"
        );
    }

    #[test]
    fn replicas_online_and_the_cluster_state_are_read_from_info_text() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=127.0.0.1,port=7003,state=online,offset=1,lag=0\r\n\
                    slave1:ip=127.0.0.1,port=7004,state=wait_bgsave,offset=0,lag=0\r\n";
        assert_eq!(online_replicas(info), 1);
        assert_eq!(
            field(
                "cluster_state:fail\r\ncluster_slots_assigned:16384\r\n",
                "cluster_state"
            ),
            Some("fail")
        );
    }
}
