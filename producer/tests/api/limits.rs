//! What stops a page from locking the producer out or keeping memory forever:
//! a cap on a batch's duration, a clear 429 when every slot is busy, and event
//! stream clients that stop reading are dropped.

use crate::helpers::{Receiver, TestApp, WAIT, eventually, eventually_within, spawn_app};
use producer::events::STALL_TIMEOUT;
use producer::store::memory::MAX_BATCHES;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test]
async fn a_batch_paced_to_last_over_an_hour_gets_400_naming_the_limit() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;

    let body = json!({"min": 1, "max": 10_000, "pace_ms": 60_000}).to_string();
    let (status, json) = app.call("POST", "/producetasks", Some(&body)).await;

    assert_eq!(status, 400, "{json}");
    let error = json["error"].as_str().expect("an error");
    assert!(error.contains("limit of 60 min"), "{error}");
}

#[tokio::test]
async fn with_every_slot_running_a_new_batch_gets_429_with_retry_after_until_one_ends() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;
    // Two tasks a minute apart: each batch is due in about 60 s.
    let slow = json!({"min": 2, "max": 2, "pace_ms": 60_000});
    let mut batches = Vec::new();
    for _ in 0..MAX_BATCHES {
        batches.push(app.start(slow.clone()).await);
    }

    let response = app
        .client
        .post(format!("{}/producetasks", app.address))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("whole seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.expect("a JSON error");
    assert!(
        body["error"]
            .as_str()
            .expect("an error")
            .contains("try again in"),
        "{body}"
    );

    // A finished batch makes room: the new one evicts it.
    let stopped = &batches[0];
    app.call("POST", &stopped.stop_url, Some("{}")).await;
    app.all_events(stopped).await;
    app.start(json!({"max": 1})).await;
}

/// A raw client of `path` with a tiny receive buffer, which never reads. It keeps
/// the connection alive (HTTP/1.1), so only the server can end it.
async fn stuck_client(app: &TestApp, path: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let address = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let mut stream = socket.connect(address).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    stream
}

async fn event_streams(app: &TestApp) -> u64 {
    let (_, metrics) = app.call("GET", "/metrics", None).await;
    let text = metrics.as_str().expect("metrics text").to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("taskhooks_producer_event_streams "))
        .expect("the event_streams gauge")
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn an_event_stream_client_that_stops_reading_is_dropped() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &["--max-tasks", "10000"]).await;
    // About 20,000 events of ~260 bytes, 5 MB: more than the socket buffers hold
    // (Linux grows a send buffer up to 4 MB).
    let batch = app.start(json!({"min": 10_000, "max": 10_000})).await;
    let mut stuck = stuck_client(&app, &batch.events_url).await;

    // The server has taken the request once its stream counts as open: until then
    // a count of 0 would say nothing (and once passed 1 run in 4).
    eventually("the stuck client's event stream to open", || async {
        (event_streams(&app).await > 0).then_some(())
    })
    .await;
    // Its stream's task gives up after STALL_TIMEOUT and lets go of the batch
    // (had it not stalled, the stream would end with the batch: see below).
    let limit = STALL_TIMEOUT + 4 * WAIT;
    eventually_within(limit, "the stuck event stream to be dropped", || async {
        (event_streams(&app).await == 0).then_some(())
    })
    .await;
    // The server closed the connection (a kept-alive one: the client never would),
    // and what it was sent ends before the batch's end.
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, stuck.read_to_end(&mut received))
        .await
        .expect("the server closes the stream")
        .expect("reads");
    assert!(
        !received.ends_with(b"0\r\n\r\n"),
        "the connection was cut, not left to end the response when the client read again \
         ({} bytes received, done sent: {})",
        received.len(),
        String::from_utf8_lossy(&received).contains("event: done")
    );
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..80.min(text.len())]
    );
    assert!(
        !text.contains("event: done"),
        "the stuck client was sent the whole batch"
    );
    // Meanwhile the batch itself went on to its end.
    let events = app.all_events(&batch).await;
    assert_eq!(events.last().expect("events").event, "done");
}
