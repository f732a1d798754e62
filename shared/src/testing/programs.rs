//! What both programs' suites check the same way: their log, their `--help`, the
//! browser security headers.

use super::WAIT;
use std::process::Stdio;

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
