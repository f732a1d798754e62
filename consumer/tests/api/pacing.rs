//! Pacing of the dashboards' frames: an event that finds the consumer idle is sent
//! at once, later ones wait for the flush interval, or go at once when they fill a
//! frame. The interval is set to 10 minutes here so that what is sent at once cannot
//! be mistaken for a timer's flush, and no assertion depends on how fast the machine
//! is (the hub's own tests check the interval itself on a paused clock).

use crate::helpers::{spawn_app_with, task};
use consumer::ws::MAX_FRAME_BYTES;
use serde_json::Value;
use taskhooks_shared::testing::{RedisServer, named_events};
use taskhooks_shared::{Priority, Secret};

/// A consumer on `redis` whose sockets wait 10 minutes between two events frames.
async fn spawn_slow_flushing_app(redis: &RedisServer) -> crate::helpers::TestApp {
    let secret = Secret::generate();
    let args = [
        "--webhook-secret".to_owned(),
        secret.to_whsec(),
        "--redis-url".to_owned(),
        redis.url(),
        "--ws-flush-interval".to_owned(),
        "10m".to_owned(),
    ];
    spawn_app_with(secret, &args).await
}

fn seqs(frame: &Value) -> Vec<u64> {
    assert_eq!(
        frame["type"], "events",
        "expected an events frame, got {frame}"
    );
    frame["events"]
        .as_array()
        .expect("events array")
        .iter()
        .map(|event| event["seq"].as_u64().expect("a seq"))
        .collect()
}

#[tokio::test]
async fn an_event_on_an_idle_socket_is_sent_at_once_not_at_the_next_flush() {
    let redis = RedisServer::start();
    let app = spawn_slow_flushing_app(&redis).await;
    let mut ws = app.websocket().await;
    ws.snapshot().await;

    let sent = task("idle", 0, Priority::Major);
    app.deliver(&sent).await;

    assert_eq!(ws.tasks(1).await, vec![sent], "long before 10 minutes");
}

#[tokio::test]
async fn events_right_after_a_frame_are_held_until_they_fill_one() {
    let redis = RedisServer::start();
    let app = spawn_slow_flushing_app(&redis).await;
    let mut ws = app.websocket().await;
    ws.snapshot().await;
    let first = task("held", 0, Priority::Low);
    // Events of about 40 bytes: about three frames' worth.
    let rest: Vec<_> = (1..=3 * MAX_FRAME_BYTES as u64 / 40)
        .map(|id| task("held", id, Priority::ALL[id as usize % 4]))
        .collect();

    app.deliver(&first).await;
    futures_util::future::join_all(rest.iter().map(|t| app.deliver(t))).await;

    // The first event found the socket idle: alone in its frame. Every later one
    // came within the 10-minute interval, so they were held until they filled a
    // frame, which then went at once: in order, none longer than MAX_FRAME_BYTES.
    assert_eq!(seqs(&ws.next_json().await), [1]);
    let text = ws.next_text().await;
    assert!(text.len() <= MAX_FRAME_BYTES, "{} bytes", text.len());
    assert!(
        text.len() > MAX_FRAME_BYTES / 2,
        "a full frame: {} bytes",
        text.len()
    );
    let held = seqs(&named_events(serde_json::from_str(&text).expect("JSON")));
    assert_eq!(held, (2..held.len() as u64 + 2).collect::<Vec<_>>());
}
