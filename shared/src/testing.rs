//! Test support: a private `redis-server` per test, on a Unix socket in a fresh
//! directory, so tests never share state with each other or with a Redis the
//! machine already runs; and what both programs' suites check the same way (their
//! log, their `--help`, the browser security headers). Enabled by the `testing`
//! feature (dev-dependencies only).

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
        server.spawn();
        server
    }

    /// The URL to give the redis crate.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// The socket path.
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
        self.child = Some(child);
        wait_for_pong(&socket);
    }
}

fn wait_for_pong(socket: &Path) {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if ping(socket) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "redis-server did not answer PING on {} within {START_TIMEOUT:?}",
        socket.display()
    );
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

/// How long any awaited condition may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// Runs `program` with `args` and `env` at `RUST_LOG=debug` until it logs a line
/// saying it is listening; returns that line and the whole log so far. The program
/// is killed when this returns.
///
/// # Panics
/// When the program cannot start, exits first, or says nothing in [`WAIT`].
pub async fn log_until_listening(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (String, String) {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("{program} does not start: {err}"));
    let Some(stderr) = child.stderr.take() else {
        panic!("{program}'s stderr is not piped");
    };
    let mut lines = BufReader::new(stderr).lines();
    let mut log = String::new();
    let listening = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_str(&line);
            log.push('\n');
            if line.contains("listening") {
                return line;
            }
        }
        panic!("{program} exited: {log}");
    })
    .await;
    match listening {
        Ok(line) => (line, log),
        Err(_) => panic!("{program} did not say it listens within {WAIT:?}"),
    }
}

/// Runs `program --help` with `env`; checks that it succeeds, names `shown` and
/// quotes none of `hidden` (passwords and secrets given in `env`).
///
/// # Panics
/// When any of those does not hold.
pub async fn assert_help_hides(program: &str, env: &[(&str, &str)], shown: &str, hidden: &[&str]) {
    let output = tokio::process::Command::new(program)
        .arg("--help")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap_or_else(|err| panic!("{program} --help does not run: {err}"));
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    assert!(help.contains(shown), "{help}");
    for secret in hidden {
        assert!(!help.contains(secret), "{help}");
    }
}

/// Checks the browser security headers of the answer to `path`, read by `header`:
/// a Content-Security-Policy of the page's own scripts and styles only (sockets
/// allowed), no framing, no sniffing, same-origin referrers.
///
/// # Panics
/// When a header is missing or says otherwise.
pub fn assert_security_headers(path: &str, header: impl Fn(&str) -> String) {
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'self'",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{path}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    assert_eq!(header("x-frame-options"), "DENY", "{path}");
    assert_eq!(header("referrer-policy"), "same-origin", "{path}");
}
