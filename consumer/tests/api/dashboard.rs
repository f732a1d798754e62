//! The dashboard page, its assets, the stats API and the probes.

use crate::helpers::{eventually, spawn_app, task};
use taskhooks_shared::Priority;
use taskhooks_shared::testing::RedisServer;

#[tokio::test]
async fn dashboard_page_and_its_assets_are_served_locally() {
    let app = spawn_app(None).await;

    let page = app.client.get(&app.address).send().await.expect("sent");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("text");
    assert!(html.contains("Tasks Priority Matrix"), "{html}");
    assert!(!html.contains("://cdn"), "no CDN: the demo works offline");

    for (path, kind) in [
        ("/static/vendor/chart.js/chart.umd.min.js", "javascript"),
        ("/static/js/dashboard.js", "javascript"),
        ("/static/css/style.css", "text/css"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(content_type.contains(kind), "{path}: {content_type}");
    }
    assert_eq!(app.get_json("/static/missing.js").await.0, 404);
}

#[tokio::test]
async fn stats_and_probes_report_the_broker() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    for (id, priority) in [Priority::Major, Priority::Major, Priority::Low]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            app.post_task(&task("b", id as u64, priority))
                .await
                .status()
                .as_u16(),
            200
        );
    }

    let stats = app.stats().await;
    assert_eq!(
        stats["totals"],
        serde_json::json!({"Low": 1, "Moderate": 0, "Major": 2, "Critical": 0})
    );
    assert_eq!(stats["total"], 3);
    assert_eq!(app.get_json("/healthz").await.0, 200);
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!((status, ready["broker"].as_str()), (200, Some("redis")));
}

#[tokio::test]
async fn metrics_count_webhooks_by_outcome_and_open_and_closed_sockets() {
    let app = spawn_app(None).await;
    let mut ws = app.websocket().await;
    ws.snapshot().await;
    let sent = task("b", 0, Priority::Low);
    app.post_task(&sent).await;
    app.post_task(&sent).await;
    app.post_signed("msg_x", b"not json".to_vec()).await;

    // A second dashboard that closes, as a page does when its tab closes, and a
    // third whose connection just ends (no close frame, as when a laptop sleeps):
    // each counted by why once it has left the gauge.
    let mut closing = app.websocket().await;
    closing.snapshot().await;
    closing
        .stream
        .close(None)
        .await
        .expect("a close frame sent");
    let mut lost = app.websocket().await;
    lost.snapshot().await;
    drop(lost);
    eventually("the two dashboards to leave the gauge", || async {
        let metrics = app.metrics().await;
        metrics
            .lines()
            .any(|l| l == "taskhooks_consumer_websocket_clients 1")
            .then_some(())
    })
    .await;

    let metrics = app.metrics().await;

    for line in [
        r#"taskhooks_consumer_websockets_closed_total{why="client_closed"} 1"#,
        r#"taskhooks_consumer_websockets_closed_total{why="connection_lost"} 1"#,
        // Every counter's series is there from the start, at 0, so the first one
        // counted shows as an increase.
        r#"taskhooks_consumer_websockets_closed_total{why="no_pong"} 0"#,
        r#"taskhooks_consumer_websocket_resyncs_total{why="lagged"} 0"#,
        r#"taskhooks_consumer_webhooks_received_total{outcome="unauthorized"} 0"#,
        r#"taskhooks_consumer_webhooks_received_total{outcome="published"} 1"#,
        r#"taskhooks_consumer_webhooks_received_total{outcome="duplicate"} 1"#,
        r#"taskhooks_consumer_webhooks_received_total{outcome="invalid"} 1"#,
        "taskhooks_consumer_events_forwarded_total 1",
        "taskhooks_consumer_websocket_clients 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    assert!(
        !metrics.contains("redis_accept"),
        "no Redis histogram without Redis:\n{metrics}"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_a_sane_one() {
    let app = spawn_app(None).await;
    let get = |id: Option<&'static str>| {
        let mut request = app.client.get(format!("{}/healthz", app.address));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };

    let fresh = get(None).await.expect("sent");
    let echoed = get(Some("trace-42")).await.expect("sent");
    let replaced = get(Some("bad id with spaces")).await.expect("sent");

    let id_of = |r: &reqwest::Response| {
        r.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    assert_eq!(id_of(&fresh).len(), 36, "a UUID");
    assert_eq!(id_of(&echoed), "trace-42");
    assert_ne!(id_of(&replaced), "bad id with spaces");
}

#[tokio::test]
async fn metrics_time_webhooks_by_outcome_and_each_redis_script_call() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    for id in 0..3 {
        app.deliver(&task("timed", id, Priority::Major)).await;
    }
    app.post_signed("msg_bad", b"not json".to_vec()).await;

    let metrics = app.metrics().await;

    // The count of a histogram, 0 when none was observed under this label.
    let count = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map_or(0, |v| v.parse().expect("a count"))
    };
    let webhooks = |outcome: &str| {
        count(&format!(
            r#"taskhooks_consumer_webhook_duration_seconds_count{{outcome="{outcome}"}}"#
        ))
    };
    assert_eq!(webhooks("published"), 3, "{metrics}");
    assert_eq!(webhooks("invalid"), 1, "{metrics}");
    // One observation per webhook that reached Redis: the 3 published, and any the
    // consumer answered 503 (a call past its timeout) that `deliver` then sent again.
    assert_eq!(
        count("taskhooks_consumer_redis_accept_duration_seconds_count"),
        3 + webhooks("unavailable") + webhooks("duplicate"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"taskhooks_consumer_redis_accept_duration_seconds_bucket{le="+Inf"}"#),
        "{metrics}"
    );
}
