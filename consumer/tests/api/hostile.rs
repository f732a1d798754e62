//! Hostile webhook senders: a body that stalls, headers that would cost us work.
//! Raw TCP, where a well-behaved HTTP client could not misbehave on purpose.

use crate::helpers::{TestApp, WAIT, spawn_app};
use crate::raw::{head, read_response};
use consumer::routes::webhook::BODY_TIMEOUT;
use std::time::{Duration, Instant};
use taskhooks_shared::signing::{self, unix_now};
use taskhooks_shared::testing::RedisServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn signed_head(app: &TestApp, id: &str, signature: Option<String>, length: usize) -> Vec<u8> {
    let now = unix_now();
    let signature = signature.unwrap_or_else(|| app.secret.sign(id, now, b"the body to come"));
    head(
        "POST /consumetasks",
        &[
            ("content-type", "application/json".into()),
            ("content-length", length.to_string()),
            (signing::HEADER_ID, id.to_owned()),
            (signing::HEADER_TIMESTAMP, now.to_string()),
            (signing::HEADER_SIGNATURE, signature),
        ],
    )
}

async fn outcome_count(app: &TestApp, outcome: &str) -> u64 {
    app.counter(format!(r#"webhooks_received_total{{outcome="{outcome}"}}"#))
        .await
}

#[tokio::test]
async fn a_stalled_body_gets_408_within_the_deadline_and_its_connection_is_closed() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connects");

    let started = Instant::now();
    stream
        .write_all(&signed_head(&app, "msg_slow", None, 65536))
        .await
        .expect("head sent");
    stream
        .write_all(&[b' '; 1000])
        .await
        .expect("part of the body sent");
    let (status, head, body) = read_response(&mut stream).await;
    let waited = started.elapsed();

    assert_eq!(status, 408, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not arrive")),
        "{body}"
    );
    assert!(
        waited < BODY_TIMEOUT + Duration::from_secs(3),
        "answered after {waited:?}"
    );
    assert!(head.contains("connection: close"), "{head}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "the server closes the connection: {closed:?}"
    );
    assert_eq!(outcome_count(&app, "too_slow").await, 1);
    assert_eq!(app.stats().await["seq"], 0);
}

#[tokio::test]
async fn an_empty_long_or_non_ascii_webhook_id_or_too_many_signatures_get_401_before_the_body_is_sent()
 {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let now = unix_now();
    let good = app.secret.sign("msg_1", now, b"the body to come");
    let cases = [
        ("m".repeat(257), None, "at most 256"),
        (String::new(), None, "webhook-id header is empty"),
        (
            "msg_é".to_owned(),
            None,
            "webhook-id header is not plain text",
        ),
        (
            "msg_1".to_owned(),
            Some([good.as_str(); 6].join(" ")),
            "at most 5",
        ),
        (
            "msg_1".to_owned(),
            Some("v1,not-base64!".to_owned()),
            "v1,<base64",
        ),
    ];

    for (id, signature, words) in cases {
        let mut stream = TcpStream::connect(("127.0.0.1", app.port))
            .await
            .expect("connects");
        // The body is declared but never sent: the answer can only come from the headers.
        stream
            .write_all(&signed_head(&app, &id, signature, 65536))
            .await
            .expect("head sent");
        let (status, _, body) = read_response(&mut stream).await;

        assert_eq!(status, 401, "{body}");
        let error = body["error"].as_str().expect("an error message");
        assert!(error.contains(words), "{error:?} should mention {words:?}");
    }
    assert_eq!(outcome_count(&app, "unauthorized").await, 5);
    assert_eq!(app.stats().await["seq"], 0);
}

#[tokio::test]
async fn a_chunked_body_with_a_bad_chunk_size_gets_400_saying_what_is_wrong() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let now = unix_now();
    let mut request = head(
        "POST /consumetasks",
        &[
            ("content-type", "application/json".into()),
            ("transfer-encoding", "chunked".into()),
            (signing::HEADER_ID, "msg_chunked".into()),
            (signing::HEADER_TIMESTAMP, now.to_string()),
            (
                signing::HEADER_SIGNATURE,
                app.secret.sign("msg_chunked", now, b"{}"),
            ),
        ],
    );
    request.extend_from_slice(b"zz\r\n{}\r\n0\r\n\r\n"); // "zz" is not a hexadecimal size
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connects");
    stream.write_all(&request).await.expect("request sent");
    let (status, _, body) = read_response(&mut stream).await;

    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().expect("an error message");
    assert!(error.contains("chunk size"), "{error}");
    assert_eq!(app.stats().await["seq"], 0);
}
