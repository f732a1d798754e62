//! A real Redis Cluster for a test: six redis-server processes on 127.0.0.1, three
//! masters with one replica each, that a test can crash, restart, pause and ask
//! who serves a key. Each node is asked on its own, with the plain client, so that
//! the harness reports what the nodes say rather than what a cluster client believes.
//! The same cluster runs on TLS ([`RedisCluster::start_tls`]) with a CA of its own.

mod conditions;
mod node;
mod topology;

use super::{AclUser, RedissLogin, eventually};
use node::{Certificates, Node};
use redis::aio::MultiplexedConnection;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How many nodes a [`RedisCluster`] runs: three masters, so that a majority is left
/// to mark one crashed master failed, and a replica for each to take its place.
pub const CLUSTER_NODES: usize = 6;

/// How long a test's own connection waits for a reply: longer than a `WAIT … 1000`,
/// short enough that a paused node fails the command rather than the test's patience.
const TEST_TIMEOUT: Duration = Duration::from_secs(2);

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A six-node Redis Cluster owned by one test; every node is killed and its
/// directory removed when dropped. Nodes are numbered `0..CLUSTER_NODES`.
#[derive(Debug)]
pub struct RedisCluster {
    root: PathBuf,
    nodes: Vec<Node>,
    /// `Some` when every node is on TLS only.
    tls: Option<Arc<Certificates>>,
}

impl RedisCluster {
    /// Starts six nodes (no persistence, each in its own directory with its own
    /// `nodes.conf`), joins them with `redis-cli --cluster create`, and waits until
    /// every node serves all slots and each master has a replica in sync.
    ///
    /// # Panics
    /// When redis-server or redis-cli is missing or fails, or the cluster does not
    /// form within [`WAIT`](super::WAIT).
    pub async fn start() -> RedisCluster {
        RedisCluster::start_with(false).await
    }

    /// [`start`](Self::start), but every node listens on TLS only, and talks TLS on
    /// its cluster bus and to its replicas, with a certificate for 127.0.0.1 signed
    /// by a CA made for this cluster ([`ca_cert`](Self::ca_cert)), which the system
    /// does not trust. [`urls`](Self::urls) are then `rediss://`.
    ///
    /// # Panics
    /// As [`start`](Self::start) does, and when openssl fails.
    pub async fn start_tls() -> RedisCluster {
        RedisCluster::start_with(true).await
    }

    async fn start_with(tls: bool) -> RedisCluster {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let name = format!("taskhooks-cluster-{}-{n}", std::process::id());
        let root = std::env::temp_dir().join(name);
        let tls = tls.then(|| Arc::new(Certificates::make(root.join("certs"))));
        let mut cluster = RedisCluster {
            root,
            nodes: Vec::with_capacity(CLUSTER_NODES),
            tls,
        };
        for i in 0..CLUSTER_NODES {
            let dir = cluster.root.join(format!("node-{i}"));
            cluster
                .nodes
                .push(Node::start(dir, cluster.tls.clone()).await);
        }
        cluster.create().await;
        eventually(
            "the new cluster to have three masters with a replica each",
            || cluster.formed(),
        )
        .await;
        cluster
    }

    /// Every node's URL, comma-separated, as `REDIS_CLUSTER_URLS` takes them.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(Node::url).collect();
        urls.join(",")
    }

    /// Every node's URL logging in as `user` (see [`add_user`](Self::add_user)),
    /// comma-separated, as `REDIS_CLUSTER_URLS` takes them.
    pub fn urls_as(&self, user: &AclUser) -> String {
        let login = format!("://{}:{}@", user.name, user.password);
        self.urls().replace("://", &login)
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` on TLS) of node `i`.
    pub fn node_url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// The PEM file of the CA that signed the nodes' certificate.
    ///
    /// # Panics
    /// When the cluster was not started with [`start_tls`](Self::start_tls).
    pub fn ca_cert(&self) -> PathBuf {
        let Some(certificates) = &self.tls else {
            panic!("a cluster without TLS has no CA: start it with RedisCluster::start_tls");
        };
        certificates.dir.join("ca.pem")
    }

    /// `REDIS_CLUSTER_URLS` logging in to every node as `user` (see
    /// [`add_user`](Self::add_user)), with the cluster's CA.
    ///
    /// # Panics
    /// As [`ca_cert`](Self::ca_cert) does.
    pub fn login_as(&self, user: &AclUser) -> RedissLogin {
        RedissLogin {
            setting: "REDIS_CLUSTER_URLS",
            urls: self.urls_as(user),
            ca_cert: self.ca_cert(),
            user: user.clone(),
        }
    }

    /// Creates `user` on every live node (ACL users are each node's own, and a node
    /// started again has forgotten them).
    ///
    /// # Panics
    /// When a node refuses `ACL SETUSER`.
    pub async fn add_user(&self, user: &AclUser) {
        let mut setuser = redis::cmd("ACL");
        setuser
            .arg("SETUSER")
            .arg(&user.name)
            .arg("on")
            .arg(format!(">{}", user.password))
            .arg(&user.rules);
        for i in self.live() {
            let mut conn = self.connection_to(i).await;
            let () = setuser
                .query_async(&mut conn)
                .await
                .unwrap_or_else(|err| panic!("ACL SETUSER {} on node {i}: {err}", user.name));
        }
    }

    /// The port node `i` listens on (its cluster bus is on this plus 10000).
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port()
    }

    /// A plain (non-cluster) connection to node `i`, to read or write there directly;
    /// a command left unanswered (by a paused node, say) fails after a short timeout
    /// instead of hanging the test.
    ///
    /// # Panics
    /// When node `i` does not accept the connection.
    pub async fn connection_to(&self, i: usize) -> MultiplexedConnection {
        self.nodes[i]
            .connect(TEST_TIMEOUT)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to cluster node {i}: {err}"))
    }

    /// The node serving `key`'s hash slot as master now, as the first live node that
    /// answers sees it; hash tags (`{taskhooks}:seq`) count as Redis counts them.
    ///
    /// # Panics
    /// When no live node answers, or none serves the slot.
    pub async fn master_of(&self, key: &str) -> usize {
        self.try_master_of(key)
            .await
            .unwrap_or_else(|why| panic!("no master for {key}: {why}"))
    }

    /// A live node replicating `master`, in sync, once the cluster is ok, waiting
    /// within [`WAIT`](super::WAIT).
    ///
    /// # Panics
    /// When no replica of `master` is in sync within [`WAIT`](super::WAIT).
    pub async fn replica_of(&self, master: usize) -> usize {
        eventually(format!("a replica of node {master} in sync"), || {
            self.try_replica_of(master)
        })
        .await
    }

    /// Crashes node `i` (SIGKILL) and waits until its process is gone.
    pub async fn kill(&mut self, i: usize) {
        self.nodes[i].kill().await;
    }

    /// Starts node `i` again on its port and directory with its `nodes.conf`, so it
    /// rejoins as the same node (as a replica if it was failed over), and waits until
    /// it serves its slots or replicates in sync and every live node is ok.
    ///
    /// # Panics
    /// When it does not start, or the cluster is not ok with it within [`WAIT`](super::WAIT).
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].restart().await;
        eventually(format!("restarted node {i} to rejoin"), || self.rejoined(i)).await;
    }

    /// Waits until a live node other than `old_master` serves `key`'s slot and every
    /// live node is ok (see [`wait_ok`](Self::wait_ok)); gives that node.
    ///
    /// # Panics
    /// When no failover happens within [`WAIT`](super::WAIT).
    pub async fn wait_for_failover(&self, key: &str, old_master: usize) -> usize {
        let what = format!("a node other than {old_master} to serve {key}");
        eventually(what, || self.failed_over(key, old_master)).await
    }

    /// Waits until every live node reports `cluster_state:ok` with all slots served,
    /// all agree on which node serves which slots, those are live, and no live node
    /// holds another live one failing.
    ///
    /// # Panics
    /// When that does not hold within [`WAIT`](super::WAIT).
    pub async fn wait_ok(&self) {
        eventually("every live cluster node to be ok and agree", || {
            self.agreed()
        })
        .await;
    }

    /// Freezes every live node (SIGSTOP), as a stalled host would: clients' commands
    /// go unanswered until [`resume_all`](Self::resume_all).
    pub async fn pause_all(&self) {
        self.signal_all("-STOP").await;
    }

    /// Lets every paused node run again (SIGCONT). Nodes that were frozen longer
    /// than the node timeout may see each other as failing for a moment, and may
    /// even fail over: follow with [`wait_ok`](Self::wait_ok).
    pub async fn resume_all(&self) {
        self.signal_all("-CONT").await;
    }
}

impl RedisCluster {
    /// Joins the six started nodes: three masters, each with a replica.
    async fn create(&self) {
        let addresses = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()));
        let mut command = tokio::process::Command::new("redis-cli");
        if self.tls.is_some() {
            command.arg("--tls").arg("--cacert").arg(self.ca_cert());
        }
        let output = command
            .args(["--cluster", "create"])
            .args(addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        // redis-cli waits without end for nodes that cannot meet (on the bus, say).
        let Ok(output) = tokio::time::timeout(super::WAIT, output).await else {
            panic!(
                "redis-cli --cluster create: the nodes did not join within {:?}",
                super::WAIT
            );
        };
        let output = output.unwrap_or_else(|err| {
            panic!("cannot run redis-cli ({err}): install redis-server, which brings it")
        });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to every live node.
    async fn signal_all(&self, signal: &str) {
        let pids: Vec<String> = self
            .nodes
            .iter()
            .filter_map(Node::pid)
            .map(|p| p.to_string())
            .collect();
        let status = tokio::process::Command::new("kill")
            .arg(signal)
            .args(&pids)
            .status()
            .await
            .unwrap_or_else(|err| panic!("cannot run kill {signal}: {err}"));
        assert!(status.success(), "kill {signal} {pids:?} failed ({status})");
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        // Kill the nodes (each node's Drop) before removing the directories they write in.
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn set_and_replicate(conn: &mut MultiplexedConnection, key: &str) {
        let () = redis::cmd("SET")
            .arg(key)
            .arg("v")
            .query_async(conn)
            .await
            .expect("SET");
        // The write reaches the replica before the master dies: a failover cannot lose it.
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(1000)
            .query_async(conn)
            .await
            .expect("WAIT");
        assert_eq!(acked, 1, "the replica did not acknowledge the write");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_crashed_master_fails_over_keeps_replicated_writes_and_rejoins_as_a_replica() {
        let mut cluster = RedisCluster::start().await;
        let key = "{probe}:k";
        let master = cluster.master_of(key).await;
        set_and_replicate(&mut cluster.connection_to(master).await, key).await;

        cluster.kill(master).await;
        let promoted = cluster.wait_for_failover(key, master).await;
        let mut conn = cluster.connection_to(promoted).await;
        let value: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("GET");
        assert_eq!(value.as_deref(), Some("v"));

        cluster.restart(master).await;
        assert_eq!(cluster.replica_of(promoted).await, master);

        cluster.pause_all().await;
        // Longer than the node timeout, so every node comes back to stale peers.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.resume_all().await;
        cluster.wait_ok().await;
    }
}
