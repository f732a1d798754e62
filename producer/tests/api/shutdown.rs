//! Shutdown: no new batches, deliveries in flight finish, streams end cleanly.

use crate::helpers::{Receiver, Reply, WAIT, done, final_states, spawn_app};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn shutdown_refuses_new_batches_lets_deliveries_finish_and_ends_streams() {
    let slow = Reply::ok().after(Duration::from_millis(800));
    let mut receiver = Receiver::start([slow]).await;
    let mut app = spawn_app(&receiver, &["--pace-ms", "100"]).await;
    let batch = app.start(json!({"min": 40, "max": 40})).await;
    let stream = app.events(&batch, None).await;
    receiver.next().await; // the first delivery is now in flight, answered in 800 ms

    app.shutdown.cancel();
    let refused = loop {
        let (status, body) = app.call("POST", "/producetasks", Some("{}")).await;
        if status == 503 {
            break body;
        }
        assert_eq!(status, 202, "{body}"); // shutdown may not have begun yet
    };
    let events = stream.until_done().await;

    assert!(
        refused["error"]
            .as_str()
            .expect("an error")
            .contains("shutting down")
    );
    let finals = final_states(&events);
    assert_eq!(finals.len(), 40);
    assert_eq!(
        finals[0]["state"], "delivered",
        "the delivery in flight finished"
    );
    let summary = done(&events);
    assert_eq!(summary["failed"], 0);
    let sent = events
        .iter()
        .filter(|e| e.data["state"] == "sending")
        .count();
    assert_eq!(summary["delivered"], sent as u64);
    assert_eq!(summary["cancelled"], 40 - sent as u64);
    let server = app.server.take().expect("the server task");
    let stopped = tokio::time::timeout(WAIT, server)
        .await
        .expect("the server stops in time");
    stopped
        .expect("the server task completes")
        .expect("a clean stop");
}
