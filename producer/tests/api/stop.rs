//! Stopping a batch: nothing is sent after the stop, and the tasks not yet sent
//! end as `cancelled`, whichever store keeps it.

use crate::helpers::{Receiver, Reply, done, final_states, flags, on_each_store, spawn_app};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn after_stop_nothing_more_is_sent_and_the_rest_is_cancelled() {
    on_each_store(|store| async move {
        let mut receiver = Receiver::start([]).await;
        let app = spawn_app(&receiver, &flags(&store, &["--pace-ms", "100"])).await;
        let batch = app.start(json!({"min": 50, "max": 50})).await;
        receiver.take(3).await;

        let (status, body) = app.call("POST", &batch.stop_url, None).await;
        let events = app.all_events(&batch).await;

        assert_eq!((status, body), (200, json!({"stopped": true})));
        let sent = events
            .iter()
            .filter(|e| e.data["state"] == "sending")
            .count();
        receiver.take(sent - 3).await;
        receiver
            .assert_no_more_within(Duration::from_millis(500))
            .await;
        let summary = done(&events);
        assert_eq!(summary["delivered"], sent as u64);
        assert_eq!(summary["cancelled"], 50 - sent as u64);
        assert!(sent < 10, "stopped early, after {sent} tasks");
        let finals = final_states(&events);
        assert_eq!(finals.len(), 50, "every task has a final state");
        for cancelled in finals.iter().filter(|d| d["state"] == "cancelled") {
            assert_eq!(cancelled["attempt"], 0);
            assert_eq!(cancelled["error"], "stopped before it was sent");
        }
        let (_, metrics) = app.call("GET", "/metrics", None).await;
        let metrics = metrics.as_str().expect("metrics are text");
        let line = format!(
            r#"taskhooks_producer_deliveries_total{{outcome="cancelled"}} {}"#,
            50 - sent
        );
        assert!(metrics.contains(&line), "missing {line:?} in\n{metrics}");
    })
    .await;
}

#[tokio::test]
async fn a_task_waiting_to_retry_is_not_retried_after_stop() {
    on_each_store(|store| async move {
        let mut receiver = Receiver::start([Reply::status(503)]).await;
        let app = spawn_app(&receiver, &flags(&store, &["--retry-backoff-ms", "5000"])).await;
        let batch = app.start(json!({"min": 1, "max": 1})).await;
        let mut stream = app.events(&batch, None).await;
        while stream.next_event().await.expect("an event").data["state"] != "retrying" {}

        app.call("POST", &batch.stop_url, None).await;
        let events = stream.until_done().await;

        let outcome = &final_states(&events)[0];
        assert_eq!(outcome["state"], "cancelled");
        let error = outcome["error"].as_str().expect("an error");
        assert!(error.starts_with("stopped after 1 attempt"), "{error}");
        receiver.next().await;
        receiver
            .assert_no_more_within(Duration::from_millis(300))
            .await;
    })
    .await;
}

#[tokio::test]
async fn stopping_a_finished_batch_is_harmless() {
    on_each_store(|store| async move {
        let receiver = Receiver::start([]).await;
        let app = spawn_app(&receiver, &flags(&store, &[])).await;
        let batch = app.start(json!({"min": 1, "max": 1})).await;
        app.all_events(&batch).await;

        let (status, body) = app.call("POST", &batch.stop_url, None).await;

        assert_eq!((status, body), (200, json!({"stopped": true})));
    })
    .await;
}
