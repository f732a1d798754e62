//! Fan-out: events reach every replica's sockets, and a fresh socket starts from
//! the true totals.

use crate::helpers::{recent_ids, spawn_app, task};
use consumer::ws::MAX_FRAME_BYTES;
use taskhooks_shared::Priority;
use taskhooks_shared::testing::RedisServer;

#[tokio::test]
async fn a_webhook_posted_to_one_consumer_reaches_the_websocket_of_another() {
    let redis = RedisServer::start();
    let first = spawn_app(Some(&redis)).await;
    let second = spawn_app(Some(&redis)).await;
    let mut ws_of_second = second.websocket().await;
    ws_of_second.snapshot().await;

    let sent = task("shared-batch", 3, Priority::Major);
    let response = first.post_task(&sent).await;

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(ws_of_second.tasks(1).await, vec![sent]);
    assert_eq!(second.stats().await["totals"]["Major"], 1);
}

#[tokio::test]
async fn a_fresh_websocket_gets_a_snapshot_of_totals_and_recent_tasks() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let priorities = [Priority::Low, Priority::Low, Priority::Critical];
    for (id, priority) in priorities.into_iter().enumerate() {
        let response = app.post_task(&task("b", id as u64, priority)).await;
        assert_eq!(response.status().as_u16(), 200);
    }

    let snapshot = app.websocket().await.snapshot().await;

    assert_eq!(snapshot["seq"], 3);
    assert_eq!(snapshot["totals"]["Low"], 2);
    assert_eq!(snapshot["totals"]["Moderate"], 0);
    assert_eq!(snapshot["totals"]["Critical"], 1);
    let recent: Vec<u64> = recent_ids(&snapshot);
    assert_eq!(recent, [2, 1, 0], "newest first");
}

#[tokio::test]
async fn a_snapshot_longer_than_a_frame_arrives_whole_in_fragments() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let count = 2 * MAX_FRAME_BYTES as u64 / 100; // events of over 100 bytes each
    let sent: Vec<_> = (0..count)
        .map(|id| task("big", id, Priority::Low))
        .collect();
    futures_util::future::join_all(sent.iter().map(|t| app.deliver(t))).await;
    let mut ws = app.websocket().await;

    let snapshot = ws.snapshot().await;
    let message = snapshot.to_string().len();

    assert!(
        message > MAX_FRAME_BYTES,
        "{message} bytes: more than one frame"
    );
    assert_eq!(snapshot["totals"]["Low"], count);
    assert_eq!(
        snapshot["recent"].as_array().map(Vec::len),
        Some(count as usize)
    );
    // Events after it still flow, after the whole snapshot.
    let later = task("big", count, Priority::Major);
    app.deliver(&later).await;
    assert_eq!(ws.tasks(1).await, vec![later]);
}

#[tokio::test]
async fn every_task_of_a_burst_reaches_the_socket_exactly_once() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let mut ws = app.websocket().await;
    ws.snapshot().await;
    let sent: Vec<_> = (0..300)
        .map(|id| task("burst", id, Priority::ALL[id as usize % 4]))
        .collect();

    futures_util::future::join_all(sent.iter().map(|t| app.deliver(t))).await;

    let mut received: Vec<u64> = ws.tasks(sent.len()).await.iter().map(|t| t.id).collect();
    received.sort_unstable();
    assert_eq!(received, (0..300).collect::<Vec<_>>());
    assert_eq!(app.stats().await["total"], 300);
}

#[tokio::test]
async fn without_redis_the_in_process_broker_delivers_and_counts() {
    let app = spawn_app(None).await;
    let mut ws = app.websocket().await;
    ws.snapshot().await;

    let sent = task("local", 0, Priority::Moderate);
    assert_eq!(app.post_task(&sent).await.status().as_u16(), 200);
    assert_eq!(app.post_task(&sent).await.status().as_u16(), 200);

    assert_eq!(ws.tasks(1).await, vec![sent]);
    assert_eq!(
        app.stats().await["totals"]["Moderate"],
        1,
        "the retry is a duplicate"
    );
    assert_eq!(app.get_json("/readyz").await.1["broker"], "in-process");
}
