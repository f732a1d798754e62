//! Deliveries: signed, stable ids, and retried exactly as the policy says.

use crate::helpers::{Receiver, Reply, done, final_states, spawn_app};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn every_task_of_a_batch_arrives_once_signed_with_its_own_webhook_id() {
    let mut receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;

    let batch = app.start(json!({"min": 20, "max": 20})).await;
    let requests = receiver.take(20).await;

    assert_eq!(batch.total, 20);
    let mut ids = HashSet::new();
    let mut task_ids: Vec<u64> = Vec::new();
    for request in &requests {
        let id = request.verified.as_ref().expect("a valid signature");
        assert!(id.starts_with("msg_"), "{id}");
        assert!(ids.insert(id.clone()), "webhook ids are unique per task");
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
        let task = request.task.as_ref().expect("a task body");
        assert_eq!(task.batchid, batch.batchid);
        assert!(task.created_at.is_some(), "created_at is stamped");
        task_ids.push(task.id);
    }
    task_ids.sort_unstable();
    assert_eq!(task_ids, (0..20).collect::<Vec<_>>());
    let events = app.all_events(&batch).await;
    assert_eq!(done(&events)["delivered"], 20);
    receiver
        .assert_no_more_within(Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn a_task_answered_500_then_500_then_200_is_delivered_on_the_third_attempt() {
    let mut receiver = Receiver::start([Reply::status(500), Reply::status(500)]).await;
    let app = spawn_app(&receiver, &[]).await;

    let batch = app.start(json!({"min": 1, "max": 1})).await;
    let attempts = receiver.take(3).await;
    let events = app.all_events(&batch).await;

    let ids: HashSet<_> = attempts.iter().map(|r| r.webhook_id.clone()).collect();
    assert_eq!(ids.len(), 1, "the same webhook-id on every attempt");
    assert!(
        attempts.iter().all(|r| r.verified.is_ok()),
        "each attempt is signed"
    );
    let states: Vec<_> = events.iter().map(|e| e.data["state"].clone()).collect();
    assert_eq!(
        states,
        [
            json!("sending"),
            json!("retrying"),
            json!("retrying"),
            json!("delivered"),
            json!(null)
        ]
    );
    assert_eq!(events[1].data["status"], 500);
    assert_eq!(
        events[1].data["error"],
        "HTTP 500 Internal Server Error: scripted 500"
    );
    assert_eq!(events[3].data["attempt"], 3);
    assert_eq!(events[3].data["status"], 200);
    assert_eq!(done(&events)["delivered"], 1);
    receiver
        .assert_no_more_within(Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn metrics_count_every_attempt_and_delivery_by_outcome() {
    let mut receiver = Receiver::start([Reply::status(500)]).await;
    let app = spawn_app(&receiver, &[]).await;

    let batch = app.start(json!({"min": 1, "max": 1})).await;
    receiver.take(2).await;
    assert_eq!(done(&app.all_events(&batch).await)["delivered"], 1);

    let (status, body) = app.call("GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let text = body.as_str().expect("metrics are text");
    for line in [
        r#"taskhooks_producer_attempts_total{outcome="refused",status="5xx"} 1"#,
        r#"taskhooks_producer_attempts_total{outcome="success",status="2xx"} 1"#,
        r#"taskhooks_producer_deliveries_total{outcome="delivered"} 1"#,
        // The usual series are there from the start, at 0, so the first one counted
        // shows as an increase.
        r#"taskhooks_producer_deliveries_total{outcome="failed"} 0"#,
        r#"taskhooks_producer_attempts_total{outcome="timeout",status="none"} 0"#,
        "taskhooks_producer_delivery_duration_seconds_count 1",
        "taskhooks_producer_deliveries_in_flight 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn a_task_answered_400_fails_at_once_without_a_retry() {
    let mut receiver = Receiver::start([Reply::status(400)]).await;
    let app = spawn_app(&receiver, &[]).await;

    let batch = app.start(json!({"min": 1, "max": 1})).await;
    receiver.next().await;
    let events = app.all_events(&batch).await;

    let outcome = &final_states(&events)[0];
    assert_eq!(outcome["state"], "failed");
    assert_eq!(outcome["attempt"], 1);
    assert_eq!(outcome["status"], 400);
    let error = outcome["error"].as_str().expect("an error");
    assert!(
        error.contains("HTTP 400") && error.contains("not retried"),
        "{error}"
    );
    assert_eq!(done(&events)["failed"], 1);
    receiver
        .assert_no_more_within(Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn an_attempt_that_times_out_is_retried() {
    let slow = Reply::ok().after(Duration::from_secs(3));
    let mut receiver = Receiver::start([slow]).await;
    let app = spawn_app(&receiver, &["--timeout-secs", "0.3"]).await;

    let batch = app.start(json!({"min": 1, "max": 1})).await;
    let attempts = receiver.take(2).await;
    let events = app.all_events(&batch).await;

    assert_eq!(attempts[0].webhook_id, attempts[1].webhook_id);
    let retrying = events
        .iter()
        .find(|e| e.data["state"] == "retrying")
        .expect("a retry");
    assert_eq!(retrying.data["status"], json!(null));
    let error = retrying.data["error"].as_str().expect("an error");
    assert!(error.contains("timed out"), "{error}");
    assert_eq!(final_states(&events)[0]["state"], "delivered");
    assert_eq!(final_states(&events)[0]["attempt"], 2);
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_no_sooner_than_that_many_seconds() {
    let mut receiver = Receiver::start([Reply::status(429).retry_after("1")]).await;
    let app = spawn_app(&receiver, &[]).await;

    let batch = app.start(json!({"min": 1, "max": 1})).await;
    let attempts = receiver.take(2).await;
    let events = app.all_events(&batch).await;

    // The backoff alone would be ~20 ms: the wait is the header's second, plus up to
    // a quarter of it at random.
    let gap = attempts[1].at - attempts[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(3), "retried after {gap:?}");
    let retrying = events
        .iter()
        .find(|e| e.data["state"] == "retrying")
        .expect("a retry");
    assert_eq!(retrying.data["status"], 429);
    let retry_in = retrying.data["retry_in_ms"].as_u64().expect("a wait");
    assert!((1000..=1250).contains(&retry_in), "retry_in_ms {retry_in}");
    assert_eq!(final_states(&events)[0]["state"], "delivered");
}

#[tokio::test]
async fn an_unreachable_target_fails_after_the_maximum_number_of_attempts() {
    let receiver = Receiver::start([]).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!(
        "http://{}/consumetasks",
        closed.local_addr().expect("address")
    );
    drop(closed);
    let app = spawn_app(&receiver, &["--target", &url, "--max-attempts", "3"]).await;

    let batch = app.start(json!({"min": 2, "max": 2})).await;
    let events = app.all_events(&batch).await;

    for outcome in final_states(&events) {
        assert_eq!(outcome["state"], "failed");
        assert_eq!(outcome["attempt"], 3);
        let error = outcome["error"].as_str().expect("an error");
        assert!(
            error.contains("gave up after 3 attempts") && error.contains("could not connect"),
            "{error}"
        );
    }
    let retries = events
        .iter()
        .filter(|e| e.data["state"] == "retrying")
        .count();
    assert_eq!(retries, 4, "two retries for each of the two tasks");
    assert_eq!(done(&events)["failed"], 2);
}

/// A receiver that reads each request whole (head and `Content-Length` body),
/// then closes the connection without a word: a webhook taken, its answer lost.
async fn hang_up_after_reading() -> String {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!(
        "http://{}/consumetasks",
        listener.local_addr().expect("an address")
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                while !whole_request(&request) {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                drop(socket); // read it all, answered nothing
            });
        }
    });
    url
}

/// Whether `bytes` hold a request's head and its whole `Content-Length` body.
fn whole_request(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}

#[tokio::test]
async fn an_answer_lost_to_a_closed_connection_says_so_and_is_retried() {
    let receiver = Receiver::start([]).await;
    let url = hang_up_after_reading().await;
    let app = spawn_app(&receiver, &["--target", &url, "--max-attempts", "2"]).await;

    let batch = app.start(json!({"min": 1, "max": 1})).await;
    let events = app.all_events(&batch).await;

    let retrying = events
        .iter()
        .find(|e| e.data["state"] == "retrying")
        .expect("a retry: a lost answer is worth another attempt");
    let error = retrying.data["error"].as_str().expect("an error");
    assert_eq!(error, "connection closed before an answer");
    assert_eq!(retrying.data["status"], json!(null));
    let last = &final_states(&events)[0];
    assert_eq!(last["state"], "failed");
    let error = last["error"].as_str().expect("an error");
    assert!(
        error.ends_with("last: connection closed before an answer"),
        "{error}"
    );
}
