//! The recent list a fresh dashboard starts from: the newest 200 events, newest
//! first, even though Redis trims the list only every few events.

use crate::helpers::{recent_ids, spawn_app, task};
use taskhooks_shared::Priority;
use taskhooks_shared::testing::RedisServer;

/// Events a snapshot carries (`RECENT_CAP`).
const RECENT: u64 = 200;
/// More than `RECENT` plus the trim interval (64), and not a multiple of it, so
/// the list holds events past the cap when the snapshot is read.
const SENT: u64 = RECENT + 64 + 7;

#[tokio::test]
async fn a_snapshot_holds_exactly_the_newest_200_events_between_trims() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    for id in 0..SENT {
        app.deliver(&task("recent", id, Priority::Low)).await;
    }

    let snapshot = app.websocket().await.snapshot().await;

    let recent: Vec<u64> = recent_ids(&snapshot);
    let newest: Vec<u64> = (SENT - RECENT..SENT).rev().collect();
    assert_eq!(recent, newest, "the newest {RECENT}, newest first");
    assert_eq!(snapshot["seq"], SENT);
}
