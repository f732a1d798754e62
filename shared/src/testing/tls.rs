//! A private redis-server reached over TLS, with ACL users: its CA and server
//! certificate (for 127.0.0.1 and localhost) are made by openssl in a fresh
//! directory, so the system's store does not trust it.

use super::redis::RedisServer;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// Where the ACL rules an operator is told to create are written.
const OPERATING_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operating.md");

/// One ACL user: its name, password and rules (`~key:*`, `&channel`, `+command`).
#[derive(Debug, Clone)]
pub struct AclUser {
    pub name: String,
    pub password: String,
    pub rules: Vec<String>,
}

impl AclUser {
    /// The user docs/operating.md tells an operator to create as
    /// `ACL SETUSER <name> on >PASSWORD <rules>`, with a password of the test's.
    ///
    /// # Panics
    /// When the page has no such line: the docs and the tests must agree.
    pub fn documented(name: &str) -> AclUser {
        let page = std::fs::read_to_string(OPERATING_MD)
            .unwrap_or_else(|err| panic!("cannot read {OPERATING_MD}: {err}"));
        let prefix = format!("ACL SETUSER {name} on >");
        let line = page
            .lines()
            .find(|line| line.starts_with(&prefix))
            .unwrap_or_else(|| panic!("docs/operating.md has no `{prefix}…` line"));
        let rules = line.split_whitespace().skip(5).map(str::to_owned).collect();
        AclUser {
            name: name.to_owned(),
            password: format!("pw-{name}-{}", std::process::id()),
            rules,
        }
    }

    /// The same user without `rule` (which it must have had).
    pub fn without(mut self, rule: &str) -> AclUser {
        let before = self.rules.len();
        self.rules.retain(|held| held != rule);
        assert_eq!(
            self.rules.len() + 1,
            before,
            "{} has no rule {rule}",
            self.name
        );
        self
    }
}

/// A redis-server on a TLS port (and, for the test's own set-up, the usual Unix
/// socket as the default user); killed when dropped.
#[derive(Debug)]
pub struct TlsRedisServer {
    /// The server, for [`RedisServer::url`] (plain, on the Unix socket).
    pub server: RedisServer,
    dir: PathBuf,
    port: u16,
}

impl TlsRedisServer {
    /// Starts a redis-server with TLS on a free port (no plain TCP port) and `users`.
    ///
    /// # Panics
    /// When openssl or redis-server fail: a test that needs them must fail loudly.
    pub fn start(users: &[AclUser]) -> TlsRedisServer {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("taskhooks-tls-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        make_certificates(&dir);
        // A port found free may be taken before redis-server binds it: a few tries.
        let mut last_error = String::new();
        for _ in 0..START_TRIES {
            match start_on(&dir, free_port(), users) {
                Ok(server) => return server,
                Err(why) => last_error = why,
            }
        }
        panic!("no TLS redis-server after {START_TRIES} tries: {last_error}");
    }

    /// `rediss://user:password@127.0.0.1:port`, logging in as `user`.
    pub fn url_as(&self, user: &AclUser) -> String {
        format!(
            "rediss://{}:{}@127.0.0.1:{}",
            user.name, user.password, self.port
        )
    }

    /// `rediss://127.0.0.1:port`, as the default user.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// What Redis refused its ACL users so far (its `ACL LOG`, read as the default
    /// user on the Unix socket), each as its reason and object, but for the entries
    /// naming any of `expected`.
    ///
    /// # Panics
    /// When the log cannot be read.
    pub async fn acl_denials(&self, expected: &[&str]) -> Vec<String> {
        let mut conn = redis::Client::open(self.server.url())
            .expect("a Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers");
        let log: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("ACL")
            .arg("LOG")
            .query_async(&mut conn)
            .await
            .expect("the ACL log");
        log.iter()
            .map(|entry| format!("{:?} {:?}", entry.get("reason"), entry.get("object")))
            .filter(|entry| !expected.iter().any(|command| entry.contains(command)))
            .collect()
    }
}

impl Drop for TlsRedisServer {
    fn drop(&mut self) {
        self.server.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How many free ports [`TlsRedisServer::start`] tries.
const START_TRIES: usize = 5;

/// A TLS redis-server on `port` with its certificates in `dir` and `users`.
fn start_on(dir: &Path, port: u16, users: &[AclUser]) -> Result<TlsRedisServer, String> {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut config = vec![
        "--tls-port".to_owned(),
        port.to_string(),
        "--tls-cert-file".to_owned(),
        path("server.pem"),
        "--tls-key-file".to_owned(),
        path("server.key"),
        "--tls-ca-cert-file".to_owned(),
        path("ca.pem"),
        "--tls-auth-clients".to_owned(),
        "no".to_owned(),
    ];
    for user in users {
        config.extend(["--user", &user.name, "on"].map(str::to_owned));
        config.push(format!(">{}", user.password));
        config.extend(user.rules.iter().cloned());
    }
    let config: Vec<&str> = config.iter().map(String::as_str).collect();
    let server = RedisServer::try_start_with(&config)?;
    Ok(TlsRedisServer {
        server,
        dir: dir.to_owned(),
        port,
    })
}

/// A port nothing listens on now (the server binds it a moment later).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a bound address").port()
}

/// A CA (`ca.pem`) and a server certificate it signed (`server.pem`, `server.key`)
/// for 127.0.0.1 and localhost, valid for two days. It is a client certificate too:
/// a cluster node presents it to the others on the TLS cluster bus, which always
/// asks for one, whatever `--tls-auth-clients` says.
pub(super) fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &["req", "-x509"],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=taskhooks test CA",
        ],
    );
    openssl(
        dir,
        &["req"],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    let extensions = "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
                      basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n";
    std::fs::write(dir.join("server.ext"), extensions).expect("write server.ext");
    openssl(
        dir,
        &["x509", "-req", "-in", "server.csr"],
        &["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"],
        &["-out", "server.pem", "-days", "2", "-extfile", "server.ext"],
    );
}

fn openssl(dir: &Path, first: &[&str], second: &[&str], third: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(first)
        .args(second)
        .args(third)
        .output()
        .unwrap_or_else(|err| panic!("cannot run openssl ({err}): install it"));
    assert!(
        output.status.success(),
        "openssl {first:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// How a program under test logs in to Redis over TLS, as its environment gives it:
/// `setting` (`REDIS_URL` or `REDIS_CLUSTER_URLS`) is `urls`, logging in as `user`,
/// and `REDIS_CA_CERT` is `ca_cert`.
#[derive(Debug, Clone)]
pub struct RedissLogin {
    pub setting: &'static str,
    pub urls: String,
    pub ca_cert: PathBuf,
    pub user: AclUser,
}

impl RedissLogin {
    /// `urls` as the program must show them: each user and password replaced by `***`.
    pub fn shown(&self) -> String {
        let login = format!("{}:{}", self.user.name, self.user.password);
        self.urls.replace(&login, "***")
    }
}

impl TlsRedisServer {
    /// `REDIS_URL` logging in to this server as `user`, with its CA.
    pub fn login_as(&self, user: &AclUser) -> RedissLogin {
        RedissLogin {
            setting: "REDIS_URL",
            urls: self.url_as(user),
            ca_cert: self.ca_cert(),
            user: user.clone(),
        }
    }
}

/// Starts `program` with `args`, logged in to a TLS Redis or Redis Cluster as
/// `login` says (in its environment), and checks that the password shows neither in
/// its debug log nor in its `--help`. Returns the log and the URLs as the program must
/// show them ([`RedissLogin::shown`]), for the caller's own check of the line that
/// names them.
///
/// # Panics
/// When the password shows, or as [`super::log_until_listening`] does.
pub async fn assert_rediss_password_hidden(
    program: &str,
    args: &[&str],
    login: &RedissLogin,
) -> (String, String) {
    let ca = login.ca_cert.display().to_string();
    let env = [(login.setting, login.urls.as_str()), ("REDIS_CA_CERT", &ca)];
    let password = login.user.password.as_str();

    let (_, log) = super::log_until_listening(program, args, &env).await;

    assert!(!log.contains(password), "{log}");
    super::assert_help_hides(program, &env, "REDIS_CA_CERT", &[password]).await;
    (log, login.shown())
}
