//! The recent list a fresh dashboard starts from: the newest 200 events, newest
//! first, even though Redis trims the list only every few events.

use crate::helpers::{recent_ids, redis_connection, spawn_app, task};
use futures_util::future::join_all;
use std::collections::HashSet;
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

/// Webhooks that reach Redis together share one script call, which dedupes them one
/// by one and then counts, lists and publishes its new ones together. Seen from
/// outside nothing changes: every event has its own `seq`, 1, 2, … in the order the
/// dashboards get them, the totals count each priority exactly, the snapshot holds
/// the newest 200 by `seq`, and the list never holds more than 200 + 63 events.
#[tokio::test]
async fn webhooks_sent_together_get_consecutive_seqs_exact_totals_and_a_bounded_list() {
    const WAVES: u64 = 8;
    const AT_ONCE: u64 = 50; // so that a wave does not end on a trim
    const PRIORITIES: [Priority; 4] = [
        Priority::Low,
        Priority::Moderate,
        Priority::Major,
        Priority::Critical,
    ];
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let mut dashboard = app.websocket().await;
    dashboard.snapshot().await;
    let mut conn = redis_connection(&redis).await;

    for wave in 0..WAVES {
        let ids = wave * AT_ONCE..(wave + 1) * AT_ONCE;
        let tasks: Vec<_> = ids
            .map(|id| task("together", id, PRIORITIES[(id % 4) as usize]))
            .collect();
        join_all(tasks.iter().map(|task| app.deliver(task))).await;
        let listed: u64 = redis::cmd("LLEN")
            .arg("{taskhooks}:v2:recent")
            .query_async(&mut conn)
            .await
            .expect("LLEN");
        assert!(
            listed <= RECENT + 63,
            "{listed} events listed after wave {wave}"
        );
    }

    let total = WAVES * AT_ONCE;
    let mut seqs = Vec::new();
    let mut ids = HashSet::new();
    while (seqs.len() as u64) < total {
        let message = dashboard.next_json().await;
        assert_eq!(message["type"], "events", "{message}");
        for event in message["events"].as_array().expect("events") {
            seqs.push(event["seq"].as_u64().expect("a seq"));
            assert!(
                ids.insert(event["task"]["id"].as_u64().expect("an id")),
                "{event}"
            );
        }
    }
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "every seq once, in order"
    );
    let stats = app.stats().await;
    for priority in PRIORITIES {
        assert_eq!(stats["totals"][priority.as_str()], total / 4, "{stats}");
    }
    assert_eq!(stats["seq"], total, "{stats}");

    let snapshot = app.websocket().await.snapshot().await;
    let listed: Vec<u64> = snapshot["recent"]
        .as_array()
        .expect("recent")
        .iter()
        .map(|event| event["seq"].as_u64().expect("a seq"))
        .collect();
    let newest: Vec<u64> = (total - RECENT + 1..=total).rev().collect();
    assert_eq!(listed, newest, "the newest {RECENT} by seq, newest first");
}
