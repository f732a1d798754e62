//! A raw HTTP/1.1 client over TCP, for requests a polite client will not send:
//! a body declared and never sent, a WebSocket client that never reads.

use crate::helpers::WAIT;
use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// A request head as a raw client writes it.
pub fn head(method_path: &str, headers: &[(&str, String)]) -> Vec<u8> {
    let mut text = format!("{method_path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// Reads one response (head and a Content-Length body): status and JSON body.
pub async fn read_response(stream: &mut TcpStream) -> (u16, String, Value) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                let status = head[9..12].parse().expect("a status code");
                let json = serde_json::from_str(&body[..length]).expect("a JSON body");
                return (status, head.to_ascii_lowercase(), json);
            }
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("a response in time")
            .expect("the connection reads");
        assert!(n > 0, "connection closed before a full response: {text:?}");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// A WebSocket upgrade request for `/ws`.
pub fn upgrade_head() -> Vec<u8> {
    head(
        "GET /ws",
        &[
            ("connection", "Upgrade".into()),
            ("upgrade", "websocket".into()),
            ("sec-websocket-version", "13".into()),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".into()),
        ],
    )
}

/// Calls of the given Redis commands since the last `CONFIG RESETSTAT`, commands run
/// by scripts included.
pub async fn calls(conn: &mut redis::aio::MultiplexedConnection, commands: &[&str]) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO");
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            commands.contains(&name).then_some(stats)
        })
        .filter_map(|stats| stats.split(',').next()?.parse::<u64>().ok())
        .sum()
}
