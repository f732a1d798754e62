//! A private `redis-server` per test, on a Unix socket in a fresh directory, so
//! tests never share state with each other or with a Redis the machine already runs.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a freshly started redis-server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A redis-server owned by one test; killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    dir: PathBuf,
    child: Option<Child>,
    config: Vec<String>,
}

impl RedisServer {
    /// Starts a redis-server listening only on a Unix socket in a new directory,
    /// keeping nothing on disk.
    ///
    /// # Panics
    /// When redis-server is not installed or does not answer in time: a test that
    /// needs Redis must fail loudly, never skip.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a redis-server with append-only persistence (`appendfsync always`), as
    /// compose runs it: [`restart`](Self::restart) then keeps every key.
    pub fn start_persistent() -> RedisServer {
        RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    /// Starts a redis-server with extra configuration, e.g.
    /// `["--maxmemory", "10mb", "--maxmemory-policy", "allkeys-lru"]`; later options
    /// win over the defaults (no persistence).
    pub fn start_with(config: &[&str]) -> RedisServer {
        RedisServer::try_start_with(config).unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`start_with`](Self::start_with), but a server that exits at start (a port
    /// taken meanwhile, say) is an error, so that the caller can try again.
    pub(super) fn try_start_with(config: &[&str]) -> Result<RedisServer, String> {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("taskhooks-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(err) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {err}", dir.display());
        }
        let config = config.iter().map(|option| (*option).to_owned()).collect();
        let mut server = RedisServer {
            dir,
            child: None,
            config,
        };
        server.try_spawn()?;
        Ok(server)
    }

    /// The URL to give the redis crate.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// Stops the server with SIGKILL (as a crash would), waiting until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Starts the server again on the same socket and directory with the same
    /// configuration: empty, or with every key when started persistent.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        self.try_spawn().unwrap_or_else(|why| panic!("{why}"));
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        let socket = self.socket();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocketperm", "700", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}). Install it (`apt-get install redis-server`) \
                     or run scripts/test, which installs it."
                )
            });
        let child = self.child.insert(child);
        wait_for_pong(&socket, child)
    }
}

fn wait_for_pong(socket: &Path, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if ping(socket) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server exited at start ({status}): see its log above"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "redis-server did not answer PING on {} within {START_TIMEOUT:?}",
        socket.display()
    ))
}

fn ping(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
