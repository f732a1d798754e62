//! `consumer healthcheck` / `producer healthcheck`: GET the program's own `/healthz`, for a
//! container healthcheck in an image that has no curl (nor shell).
//!
//! Plain HTTP/1.0 over `std::net`, so it needs no runtime and answers within a few seconds
//! whatever happens: exit status 0 when `/healthz` answers 200, 1 otherwise, with the reason.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::process::ExitCode;
use std::time::Duration;

/// The argument that asks for the healthcheck instead of the program.
pub const SUBCOMMAND: &str = "healthcheck";

/// How long connecting, sending and reading may each take; under a healthcheck's timeout.
const TIMEOUT: Duration = Duration::from_secs(2);

/// When the first argument is `healthcheck`, checks the server at `BIND` (or `default_bind`)
/// and returns the exit code; otherwise `None`, and the program runs as usual.
pub fn run_if_asked(default_bind: &str) -> Option<ExitCode> {
    if std::env::args().nth(1).as_deref() != Some(SUBCOMMAND) {
        return None;
    }
    let bind = std::env::var("BIND").unwrap_or_else(|_| default_bind.to_owned());
    Some(match probe(&bind) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("unhealthy: {reason}");
            ExitCode::FAILURE
        }
    })
}

/// GETs `/healthz` from the server listening on `bind`; Ok when it answers 200.
pub fn probe(bind: &str) -> Result<(), String> {
    let addr = local_address(bind)?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut head = [0_u8; 64];
    let read = stream
        .read(&mut head)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status_line = status_line.lines().next().unwrap_or_default();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!(
            "GET http://{addr}/healthz answered {status_line:?}"
        )),
    }
}

/// The address to probe for a listening address: an unspecified host (`0.0.0.0`, `[::]`)
/// is reached on loopback.
fn local_address(bind: &str) -> Result<SocketAddr, String> {
    let mut addr = bind
        .to_socket_addrs()
        .map_err(|e| format!("BIND {bind:?} is not an address: {e}"))?
        .next()
        .ok_or_else(|| format!("BIND {bind:?} resolves to no address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_bind_address_is_probed_on_loopback() {
        assert_eq!(
            local_address("0.0.0.0:5001"),
            Ok("127.0.0.1:5001".parse().expect("literal"))
        );
        assert_eq!(
            local_address("[::]:5000"),
            Ok("[::1]:5000".parse().expect("literal"))
        );
        assert_eq!(
            local_address("10.0.0.7:80"),
            Ok("10.0.0.7:80".parse().expect("literal"))
        );
    }

    #[test]
    fn nothing_listening_is_unhealthy_with_the_reason() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        drop(listener);
        let err = probe(&addr.to_string()).expect_err("nothing listens");
        assert!(err.starts_with(&format!("connect to {addr}")), "{err}");
    }
}
