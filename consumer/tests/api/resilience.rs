//! Redis going away and coming back; shutting down.

use crate::helpers::{WAIT, eventually, spawn_app, task};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use taskhooks_shared::Priority;
use taskhooks_shared::testing::RedisServer;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn redis_down_gives_503_and_the_consumer_recovers_when_it_returns() {
    let mut redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let mut ws = app.websocket().await;
    ws.snapshot().await;

    redis.stop();
    // The dashboard is told at once that nothing flows, and why.
    let status = ws.next_json().await;
    assert_eq!(
        (&status["type"], &status["status"]),
        (&json!("status"), &json!("unavailable")),
        "{status}"
    );
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("Redis")),
        "{status}"
    );
    let refused = app.post_task(&task("b", 0, Priority::Low)).await;
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.expect("JSON error");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("retry")),
        "{body}"
    );
    assert_eq!(app.get_json("/readyz").await.0, 503);

    redis.restart();
    // The subscriber resubscribes by itself and resyncs the socket (Redis came back
    // empty); until then it may repeat that Redis is unavailable.
    let resync = loop {
        let message = ws.next_json().await;
        if message["type"] != "status" {
            break message;
        }
    };
    assert_eq!(resync["type"], "snapshot", "{resync}");
    assert_eq!(resync["seq"], 0, "{resync}");
    // Like any sender, retry until the consumer's connection is back.
    let sent = task("b", 1, Priority::Critical);
    eventually("a POST to succeed after Redis returned", || async {
        (app.post_task(&sent).await.status().as_u16() == 200).then_some(())
    })
    .await;

    assert_eq!(ws.tasks(1).await, vec![sent]);
    assert_eq!(app.stats().await["totals"]["Critical"], 1);
    assert_eq!(app.get_json("/readyz").await.0, 200);
}

#[tokio::test]
async fn shutdown_closes_websockets_with_a_close_frame() {
    let redis = RedisServer::start();
    let mut app = spawn_app(Some(&redis)).await;
    let mut ws = app.websocket().await;
    ws.snapshot().await;

    app.shutdown.cancel();

    let close = tokio::time::timeout(WAIT, async {
        loop {
            match ws.stream.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame in time")
    .expect("a close reason");
    assert_eq!(u16::from(close.code), 1001, "going away");
    let finished = tokio::time::timeout(WAIT, &mut app.server).await;
    assert!(finished.is_ok(), "the server stops promptly");
}
