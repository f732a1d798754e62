//! Redis going away and coming back; shutting down.

use crate::helpers::{TestApp, WAIT, eventually, eventually_within, spawn_app, task};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use taskhooks_shared::testing::RedisServer;
use taskhooks_shared::{Priority, Task};
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
    assert!(
        app.counter(r#"websocket_resyncs_total{why="broker_reconnected"}"#)
            .await
            >= 1,
        "the resync is counted for the operator"
    );
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

#[tokio::test]
async fn a_dashboard_that_stops_reading_is_dropped_and_the_others_get_every_event() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let mut reader = app.websocket().await;
    reader.snapshot().await;
    // A client that completes the handshake, then never reads again: with a tiny
    // receive buffer its socket fills after a few frames, and it answers no pings.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let stream = socket
        .connect(([127, 0, 0, 1], app.port).into())
        .await
        .expect("connects");
    let url = format!("ws://127.0.0.1:{}/ws", app.port);
    let (_stuck, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("handshake");
    // The consumer counts a socket before it answers the handshake.
    assert_eq!(websocket_clients(&app).await, 2);

    let sent: Vec<Task> = (0..2000).map(|i| task("slow", i, Priority::Low)).collect();
    let post_all = futures_util::stream::iter(&sent).for_each_concurrent(16, |t| app.deliver(t));

    // The reading dashboard is not held back by the stuck one. It reads while the
    // tasks are posted, as a page does: a client that reads nothing for
    // CLIENT_TIMEOUT answers no pings and is rightly dropped too.
    let ((), received) = tokio::join!(post_all, reader.tasks(sent.len()));
    let mut got: Vec<u64> = received.iter().map(|t| t.id).collect();
    got.sort_unstable();
    assert_eq!(got, (0..2000).collect::<Vec<_>>());
    // The stuck one is cut loose (no pong within CLIENT_TIMEOUT, or a frame it
    // would not take within SEND_TIMEOUT) instead of being queued for forever.
    let limit = consumer::ws::CLIENT_TIMEOUT + consumer::ws::HEARTBEAT_INTERVAL + WAIT;
    eventually_within(limit, "the stuck dashboard to be dropped", || async {
        (websocket_clients(&app).await == 1).then_some(())
    })
    .await;
    // Counted as dropped by the consumer, whichever limit came first (it is counted
    // before the socket leaves the gauge), and as nothing else.
    let closed = |why: &str| app.counter(format!(r#"websockets_closed_total{{why="{why}"}}"#));
    assert_eq!(closed("no_pong").await + closed("too_slow").await, 1);
    assert_eq!(
        closed("client_closed").await + closed("connection_lost").await,
        0
    );
}

/// The consumer's count of open dashboard sockets, from `/metrics`.
async fn websocket_clients(app: &TestApp) -> u64 {
    app.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix("taskhooks_consumer_websocket_clients "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the websocket_clients gauge")
}
