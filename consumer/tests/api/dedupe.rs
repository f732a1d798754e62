//! The dedupe window: retries inside it are dropped, later ones counted again; in
//! Redis its state is compact, expires, and is the only thing that can be evicted.

use crate::helpers::{TestApp, eventually, redis_connection, spawn_app_with, task};
use consumer::broker::eviction::EvictionRisk;
use consumer::broker::redis::RedisBroker;
use serde_json::Value;
use std::time::{Duration, Instant};
use taskhooks_shared::testing::RedisServer;
use taskhooks_shared::{Priority, Secret};

async fn spawn_with_window(redis: Option<&RedisServer>, window: &str) -> TestApp {
    let secret = Secret::generate();
    let mut args = vec![
        "--webhook-secret".to_owned(),
        secret.to_whsec(),
        "--dedupe-window".to_owned(),
        window.to_owned(),
    ];
    if let Some(redis) = redis {
        args.extend(["--redis-url".to_owned(), redis.url()]);
    }
    spawn_app_with(secret, &args).await
}

async fn status_of(response: reqwest::Response) -> String {
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("a JSON body");
    body["status"].as_str().expect("a status").to_owned()
}

/// Posts the same webhook until it is published again, checking that every
/// answer before that was `duplicate`, and that it came no sooner than `window`
/// after the first was sent (ids are remembered at least the window).
async fn retry_is_counted_again_after_the_window(app: &TestApp, window: Duration) {
    let sent = task("window", 1, Priority::Major);
    let first_sent = Instant::now();
    assert_eq!(status_of(app.post_task(&sent).await).await, "published");
    assert_eq!(status_of(app.post_task(&sent).await).await, "duplicate");

    eventually(
        "the retry to be counted once the window has passed",
        || async {
            match status_of(app.post_task(&sent).await).await.as_str() {
                "published" => Some(()),
                "duplicate" => None,
                other => panic!("unexpected status {other}"),
            }
        },
    )
    .await;

    let remembered = first_sent.elapsed();
    assert!(remembered >= window, "forgotten after {remembered:?}");
    let stats = app.stats().await;
    assert_eq!(stats["totals"]["Major"], 2, "{stats}");
}

#[tokio::test]
async fn a_retry_after_the_dedupe_window_is_counted_again_in_redis() {
    let redis = RedisServer::start();
    let app = spawn_with_window(Some(&redis), "1s").await;
    retry_is_counted_again_after_the_window(&app, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_retry_after_the_dedupe_window_is_counted_again_in_process() {
    let app = spawn_with_window(None, "1s").await;
    retry_is_counted_again_after_the_window(&app, Duration::from_secs(1)).await;
}

#[test]
fn a_dedupe_window_without_units_is_refused_with_what_to_give() {
    let parsed =
        <consumer::Config as clap::Parser>::try_parse_from(["consumer", "--dedupe-window", "600"]);

    let error = parsed.expect_err("a bare number is refused").to_string();
    assert!(error.contains("for example 10m"), "{error}");
}

#[tokio::test]
async fn dedupe_state_is_in_compact_hashes_and_the_only_keys_with_a_ttl() {
    let redis = RedisServer::start();
    let app = spawn_with_window(Some(&redis), "10m").await;
    for id in 0..50 {
        app.post_task(&task("ttl", id, Priority::Low)).await;
    }
    let mut conn = redis_connection(&redis).await;

    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let mut seen = 0;
    for key in &keys {
        let ttl_ms: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        if key.starts_with("{taskhooks}:seen:") {
            seen += 1;
            // At least the window (10 minutes, less the few seconds since the key
            // was made) and at most two windows (its bucket, then the next one).
            assert!(
                (540_000..=1_200_000).contains(&ttl_ms),
                "{key} has PTTL {ttl_ms}"
            );
            let encoding: String = redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(key)
                .query_async(&mut conn)
                .await
                .expect("OBJECT ENCODING");
            assert_eq!(encoding, "listpack", "{key}");
        } else {
            assert_eq!(ttl_ms, -1, "{key} must never expire");
        }
    }
    assert!(seen >= 1, "no dedupe keys among {keys:?}");
    assert_eq!(app.stats().await["total"], 50);
}

async fn risk_of(config: &[&str]) -> EvictionRisk {
    let redis = RedisServer::start_with(config);
    let broker = RedisBroker::new(
        taskhooks_shared::redis_client::RedisClient::open(&redis.url()).expect("a Redis URL"),
        "taskhooks",
    )
    .expect("a Redis URL");
    broker.eviction_risk().await
}

#[tokio::test]
async fn the_eviction_policy_is_read_and_judged_at_start() {
    let volatile = risk_of(&["--maxmemory", "64mb", "--maxmemory-policy", "volatile-ttl"]);
    let allkeys = risk_of(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let full = risk_of(&["--maxmemory", "64mb", "--maxmemory-policy", "noeviction"]);
    let refused = risk_of(&["--rename-command", "CONFIG", ""]);

    assert_eq!(
        volatile.await,
        EvictionRisk::DedupeOnly {
            policy: "volatile-ttl".into()
        }
    );
    assert_eq!(
        allkeys.await,
        EvictionRisk::AnyKey {
            policy: "allkeys-lru".into()
        }
    );
    assert_eq!(
        full.await,
        EvictionRisk::RefusesWhenFull {
            maxmemory: 64 << 20
        }
    );
    assert!(
        matches!(refused.await, EvictionRisk::Unknown { .. }),
        "a refused CONFIG is reported as unknown, not an error"
    );
}
