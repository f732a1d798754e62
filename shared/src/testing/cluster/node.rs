//! One redis-server of a test cluster: its port (and cluster bus port), its own
//! directory holding its `nodes.conf`, and its process, killed when dropped. A node
//! of a TLS cluster listens on TLS only, and its cluster bus and replication are TLS.

use crate::sync::lock;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::ops::Range;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// A node's cluster bus listens on its port plus this (Redis's default offset).
const BUS_OFFSET: u16 = 10_000;

/// Where node ports are picked: with the bus offset added, still below the ephemeral
/// range Linux gives outgoing connections, so none takes a killed node's port before
/// its restart.
const PORTS: Range<u16> = 12_000..22_768;

/// How many picked ports a node tries when a server exits at start (a port found
/// free may be taken before redis-server binds it).
const START_TRIES: usize = 5;

/// How long a freshly started node may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a starting node is asked for PING or a killed one looked for.
const POLL: Duration = Duration::from_millis(20);

/// The certificates every node of a TLS cluster shares (made by
/// `make_certificates`): `ca.pem`, `server.pem` and `server.key` in `dir`.
pub(super) struct Certificates {
    pub(super) dir: PathBuf,
    /// `ca.pem`'s bytes, which the harness's own connections trust.
    pub(super) ca: Vec<u8>,
}

impl Certificates {
    /// Makes a CA and a server certificate for 127.0.0.1 in `dir` (created).
    ///
    /// # Panics
    /// When `dir` cannot be made or openssl fails.
    pub(super) fn make(dir: PathBuf) -> Certificates {
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        super::super::tls::make_certificates(&dir);
        let ca = std::fs::read(dir.join("ca.pem"))
            .unwrap_or_else(|err| panic!("cannot read the CA made in {}: {err}", dir.display()));
        Certificates { dir, ca }
    }
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// One cluster node; its process is killed (SIGKILL) when dropped.
#[derive(Debug)]
pub(super) struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// `Some` for a node of a TLS cluster.
    tls: Option<Arc<Certificates>>,
}

impl Node {
    /// Starts a node in `dir` (created), on ports picked afresh until one start works;
    /// on TLS only when given `tls`.
    ///
    /// # Panics
    /// When redis-server is missing or no start succeeds.
    pub(super) async fn start(dir: PathBuf, tls: Option<Arc<Certificates>>) -> Node {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        let mut node = Node {
            port: 0,
            dir,
            child: None,
            tls,
        };
        let mut last_error = String::new();
        for _ in 0..START_TRIES {
            node.port = free_port_pair();
            // A server that failed at start may have written an identity it must not keep.
            let _ = std::fs::remove_file(node.dir.join("nodes.conf"));
            match node.run().await {
                Ok(()) => return node,
                Err(why) => last_error = why,
            }
        }
        panic!("no cluster node started after {START_TRIES} tries: {last_error}");
    }

    pub(super) fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://…` on TLS.
    pub(super) fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.port)
    }

    /// `redis` or, on TLS, `rediss`.
    pub(super) fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        }
    }

    /// The process id, while the node runs (paused or not).
    pub(super) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A plain (non-cluster) connection whose commands fail after `response_timeout`,
    /// so that a paused or dead node is an error, not a hang.
    pub(super) async fn connect(
        &self,
        response_timeout: Duration,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new().set_response_timeout(Some(response_timeout));
        let client = match &self.tls {
            None => redis::Client::open(self.url())?,
            Some(certificates) => {
                crate::redis_client::install_ring();
                let trust = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(certificates.ca.clone()),
                };
                redis::Client::build_with_tls(self.url(), trust)?
            }
        };
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// Sends SIGKILL (as a crash would) and waits until the process is gone.
    pub(super) async fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = child.kill();
        // Polled rather than `wait()`ed: the test's runtime thread must not block.
        while let Ok(None) = child.try_wait() {
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts the node again on the same port and directory, so it reads the same
    /// `nodes.conf`: the same node id, epochs and peers.
    ///
    /// # Panics
    /// When it does not answer PING (its port taken meanwhile, say).
    pub(super) async fn restart(&mut self) {
        self.kill().await;
        self.run()
            .await
            .unwrap_or_else(|why| panic!("cluster node on port {}: {why}", self.port));
    }

    /// Spawns redis-server on this node's port and waits for its PONG.
    async fn run(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(self.args())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}). Install it (`apt-get install redis-server`, \
                     which brings redis-cli) or run scripts/test, which installs it."
                )
            });
        self.child = Some(child);
        self.wait_for_pong().await
    }

    fn args(&self) -> Vec<String> {
        let port = self.port.to_string();
        let dir = self.dir.display().to_string();
        #[rustfmt::skip]
        let args = [
            "--port", &port, "--bind", "127.0.0.1", "--dir", &dir,
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            // A second without a reply marks a node failing (the default is 15 s), so a
            // test's failover takes seconds; nothing on a test machine is that slow.
            "--cluster-node-timeout", "1000",
            // A replica's first sync starts at once, not after the default 5 s, which
            // only batches replicas together.
            "--repl-diskless-sync-delay", "0",
            "--save", "", "--appendonly", "no",
        ];
        let mut args = args.map(str::to_owned).to_vec();
        if let Some(certificates) = &self.tls {
            args.extend(tls_args(&port, certificates));
        }
        args
    }

    async fn wait_for_pong(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if self.ping().await {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!(
                    "redis-server exited at start ({status}): see its log above"
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        Err(format!(
            "redis-server did not answer PING on port {} within {START_TIMEOUT:?}",
            self.port
        ))
    }

    async fn ping(&self) -> bool {
        let Ok(mut conn) = self.connect(POLL * 10).await else {
            return false;
        };
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        pong.is_ok_and(|pong| pong == "PONG")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            // Blocking, as Drop cannot await: a SIGKILLed process is reaped at once.
            let _ = child.wait();
        }
    }
}

/// The options that move a node's clients, cluster bus and replication onto TLS on
/// `port` (later options win: `--port 0` closes the plain port), trusting the CA but
/// asking clients for no certificate of their own.
fn tls_args(port: &str, certificates: &Certificates) -> Vec<String> {
    let path = |name: &str| certificates.dir.join(name).display().to_string();
    let (cert, key, ca) = (path("server.pem"), path("server.key"), path("ca.pem"));
    #[rustfmt::skip]
    let args = [
        "--port", "0", "--tls-port", port,
        "--tls-cluster", "yes", "--tls-replication", "yes",
        "--tls-cert-file", &cert, "--tls-key-file", &key, "--tls-ca-cert-file", &ca,
        "--tls-auth-clients", "no",
    ];
    args.map(str::to_owned).to_vec()
}

/// A port, picked at random in [`PORTS`], that can be bound now, and whose bus
/// port (port + [`BUS_OFFSET`]) can be too; the node binds both a moment later.
///
/// # Panics
/// When a hundred picks all find one of the two taken.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let port = rand::random_range(PORTS);
        // Never a port this process handed out before: a killed node's port is free
        // until its restart, and a node of another test's cluster started there
        // meanwhile would answer the first cluster's clients in its place.
        if bindable(port) && bindable(port + BUS_OFFSET) && lock(&HANDED_OUT).insert(port) {
            return port;
        }
    }
    panic!("no free port pair (port, port + {BUS_OFFSET}) in {PORTS:?}");
}

/// Every node port handed out in this process (see [`free_port_pair`]).
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}
