//! The durable outbox on a real Redis: batches written there are delivered by
//! any producer on it, survive a SIGKILLed producer binary, and their event
//! streams resume on another producer; redelivery keeps its promise there too.

use crate::end_to_end::Consumer;
use crate::faults::consumer_total;
use crate::helpers::{
    Receiver, Reply, SseEvent, Started, TestApp, WAIT, done, eventually, final_states, http_client,
    redis_flags, spawn_app, spawn_with,
};
use serde_json::{Value, json};
use std::process::Stdio;
use taskhooks_shared::testing::RedisServer;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// Test flags for a producer using `redis` ([`redis_flags`]), then `extra`.
pub(crate) fn durable<'a>(redis: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = redis_flags(redis).to_vec();
    args.extend_from_slice(extra);
    args
}

/// Polls `GET path` until `done` says the answer is the one awaited.
pub(crate) async fn wait_for(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(format!("{path} to become ready"), || async {
        let (status, body) = app.call("GET", path, None).await;
        if status == 200 && done(&body) {
            Ok(body)
        } else {
            Err(body)
        }
    })
    .await
}

/// A Redis stream entry id as numbers, to compare them.
fn entry_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("a stream entry id");
    (ms.parse().expect("ms"), seq.parse().expect("seq"))
}

pub(crate) fn summary_path(batch: &Started) -> String {
    format!("/batches/{}", batch.batchid)
}

#[tokio::test]
async fn a_durable_batch_is_delivered_listed_and_its_attempts_kept() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut receiver = Receiver::start([Reply::status(503)]).await;
    let app = spawn_app(&receiver, &durable(&url, &[])).await;
    let (_, empty) = app.call("GET", "/batches", None).await;
    assert_eq!(empty, json!({"durable": true, "batches": []}));

    let batch = app.start(json!({"min": 5, "max": 5})).await;
    let events = app.all_events(&batch).await;
    let (_, list) = app.call("GET", "/batches", None).await;
    let path = format!("/batches/{}/tasks/0", batch.batchid);
    let (_, first) = app.call("GET", &path, None).await;

    assert_eq!(done(&events)["delivered"], 5);
    assert_eq!(final_states(&events).len(), 5);
    assert_eq!(list["durable"], true);
    let listed = &list["batches"][0];
    assert_eq!(
        (listed["batchid"].as_str(), listed["delivered"].as_u64()),
        (Some(&*batch.batchid), Some(5))
    );
    assert_eq!(
        (listed["state"].as_str(), listed["queued"].as_u64()),
        (Some("done"), Some(0))
    );
    let received = receiver.take(6).await;
    let ids: Vec<_> = received
        .iter()
        .filter_map(|r| r.webhook_id.clone())
        .collect();
    assert_eq!(first["state"], "delivered");
    let webhook_id = first["webhook_id"].as_str().expect("a webhook id");
    assert!(ids.iter().any(|id| id == webhook_id), "{first}");
    let attempts = first["attempts"].as_array().expect("attempts");
    assert!(
        attempts
            .iter()
            .all(|a| a["started_at"].is_u64() && a["duration_ms"].is_u64()),
        "{first}"
    );
    assert_eq!(
        attempts.last().map(|a| &a["response"]),
        Some(&json!(r#"{"status":"published"}"#))
    );
}

#[tokio::test]
async fn a_batch_id_that_is_not_a_uuid_is_404_and_reaches_no_other_key_of_the_batch() {
    let redis = RedisServer::start();
    let url = redis.url();
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &durable(&url, &[])).await;
    let batch = app.start(json!({"min": 2, "max": 2})).await;
    assert_eq!(done(&app.all_events(&batch).await)["delivered"], 2);
    let id = &batch.batchid;

    // Each names another of the batch's Redis keys, were the id pasted into one.
    for (method, path) in [
        ("POST", format!("/batches/{id}:states/stop")),
        ("POST", format!("/batches/{id}:tasks/redeliver")),
        ("GET", format!("/batches/{id}:tasks")),
        ("GET", format!("/batches/{id}:events/events")),
        ("GET", format!("/batches/{id}:states/tasks/1")),
    ] {
        let (status, body) = app.call(method, &path, Some("{}")).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        let error = body["error"].as_str().expect("an error");
        assert!(error.contains("is not a batch id"), "{path}: {error}");
    }
    let (status, body) = app
        .call(
            "POST",
            &format!("/batches/{id}/redeliver"),
            Some("{\"tasks\":[0]}"),
        )
        .await;
    assert_eq!(status, 202, "the batch is as it was: {body}");
    let (status, body) = app
        .call("GET", &format!("/batches/{id}/tasks/1"), None)
        .await;
    assert_eq!(
        (status, &body["state"]),
        (200, &json!("delivered")),
        "{body}"
    );
}

#[tokio::test]
async fn two_producers_on_one_redis_share_a_batch_and_either_serves_it() {
    let redis = RedisServer::start();
    let url = redis.url();
    let receiver = Receiver::start([]).await;
    let slow = ["--pace-ms", "20", "--max-in-flight", "4"];
    let a = spawn_app(&receiver, &durable(&url, &slow)).await;
    let b = spawn_app(&receiver, &durable(&url, &slow)).await;

    let batch = a.start(json!({"min": 60, "max": 60})).await;
    let from_b = b.all_events(&batch).await;
    let (status, summary) = b.call("GET", &summary_path(&batch), None).await;

    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        (summary["delivered"].as_u64(), summary["state"].as_str()),
        (Some(60), Some("done"))
    );
    assert_eq!(done(&from_b)["delivered"], 60);
    let (by_a, by_b) = (delivered_count(&a).await, delivered_count(&b).await);
    assert_eq!(by_a + by_b, 60, "each task delivered once");
    assert!(
        by_a > 0 && by_b > 0,
        "both delivered some: {by_a} and {by_b}"
    );
}

/// How many tasks this producer delivered, from its /metrics.
async fn delivered_count(app: &TestApp) -> u64 {
    let (_, metrics) = app.call("GET", "/metrics", None).await;
    let text = metrics.as_str().expect("metrics are text");
    let line = r#"taskhooks_producer_deliveries_total{outcome="delivered"} "#;
    text.lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_event_stream_resumes_with_last_event_id_on_a_producer_started_since() {
    let redis = RedisServer::start();
    let url = redis.url();
    let receiver = Receiver::start([]).await;
    let first = spawn_app(&receiver, &durable(&url, &["--pace-ms", "50"])).await;
    let batch = first.start(json!({"min": 40, "max": 40})).await;
    let mut stream = first.events(&batch, None).await;
    let mut seen: Vec<SseEvent> = Vec::new();
    while seen.len() < 10 {
        seen.push(stream.next_event().await.expect("an event"));
    }
    drop(stream);
    drop(first); // shut down: its tasks in flight stay pending in Redis

    let second = spawn_app(&receiver, &durable(&url, &["--pace-ms", "50"])).await;
    let last = seen.last().expect("events").raw_id.clone();
    let rest = second
        .events_from(&batch, Some(&last))
        .await
        .until_done()
        .await;

    assert_eq!(done(&rest)["delivered"], 40, "{:?}", done(&rest));
    let seen_ids: Vec<&str> = seen.iter().map(|e| e.raw_id.as_str()).collect();
    assert!(
        rest.iter().all(|e| !seen_ids.contains(&e.raw_id.as_str())),
        "no event twice"
    );
    let after_last = |e: &SseEvent| entry_id(&e.raw_id) > entry_id(&last);
    assert!(rest.iter().all(after_last), "only later events");
    let mut all = seen.clone();
    all.extend(rest);
    let delivered: std::collections::HashSet<u64> = final_states(&all)
        .iter()
        .filter(|d| d["state"] == "delivered")
        .filter_map(|d| d["task"]["id"].as_u64())
        .collect();
    assert_eq!(delivered.len(), 40, "every task's delivery was streamed");
}

#[tokio::test]
async fn a_producer_sigkilled_mid_batch_and_started_again_delivers_every_task_exactly_once() {
    let redis = RedisServer::start();
    let consumer = Consumer::start(&redis).await;
    let url = redis.url();
    let (mut killed, address) = producer_binary(&consumer, &url).await;
    let client = http_client();
    let started: Value = client
        .post(format!("{address}/producetasks"))
        .header("content-type", "application/json")
        .body(r#"{"min": 60, "max": 60, "pace_ms": 40}"#)
        .send()
        .await
        .expect("started")
        .json()
        .await
        .expect("JSON");
    let id = started["batchid"].as_str().expect("a batch id").to_owned();
    eventually("tasks to be counted", || async {
        (consumer_total(&client, consumer.port).await >= 10).then_some(())
    })
    .await;

    killed.start_kill().expect("SIGKILL is sent");
    killed.wait().await.expect("the producer died");
    let counted_at_kill = consumer_total(&client, consumer.port).await;
    let (_again, address) = producer_binary(&consumer, &url).await;
    let summary = eventually("the batch to be done", || async {
        let summary: Value = client
            .get(format!("{address}/batches/{id}"))
            .send()
            .await
            .expect("summary")
            .json()
            .await
            .expect("JSON");
        if summary["state"] == "done" {
            Ok(summary)
        } else {
            Err(summary)
        }
    })
    .await;

    assert!(
        counted_at_kill < 60,
        "killed mid-batch, at {counted_at_kill}"
    );
    assert_eq!(summary["delivered"], 60, "{summary}");
    assert_eq!(
        consumer_total(&client, consumer.port).await,
        60,
        "each task counted once"
    );
}

/// The producer binary serving on a free port with the outbox in `redis`,
/// aimed at `consumer`; its address once it listens.
async fn producer_binary(consumer: &Consumer, redis: &str) -> (Child, String) {
    let target = format!("http://127.0.0.1:{}/consumetasks", consumer.port);
    let mut child = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["--bind", "127.0.0.1:0", "--target", &target])
        .args(["--webhook-secret", &consumer.secret])
        .args(durable(redis, &[]))
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the producer binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let marker = "listening on http://127.0.0.1:";
    let port = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("a log line") {
            if let Some((_, rest)) = line.split_once(marker) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                return digits;
            }
        }
        panic!("the producer exited before listening");
    })
    .await
    .expect("the producer listens in time");
    // Keep reading its log, so a full pipe never blocks it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn a_task_the_consumer_counted_redelivered_from_redis_is_a_duplicate() {
    let redis = RedisServer::start();
    let consumer = Consumer::start(&redis).await;
    let url = redis.url();
    let app = spawn_with(consumer.producer_config(&durable(&url, &[]))).await;
    let batch = app.start(json!({"min": 3, "max": 3})).await;
    let first_run = app.all_events(&batch).await;
    let client = app.client.clone();
    assert_eq!(consumer_total(&client, consumer.port).await, 3);

    let path = format!("/batches/{}/redeliver", batch.batchid);
    let (status, body) = app.call("POST", &path, Some(r#"{"tasks":[1]}"#)).await;
    let last = first_run.last().expect("done").raw_id.clone();
    let second_run = app
        .events_from(&batch, Some(&last))
        .await
        .until_done()
        .await;

    assert_eq!(
        (status, &body["redelivering"]),
        (202, &json!([1])),
        "{body}"
    );
    assert_eq!(done(&second_run)["delivered"], 3);
    let (_, view) = app
        .call("GET", &format!("/batches/{}/tasks/1", batch.batchid), None)
        .await;
    let attempts = view["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{view}");
    assert_eq!(attempts[1]["response"], r#"{"status":"duplicate"}"#);
    assert_eq!(
        consumer_total(&client, consumer.port).await,
        3,
        "not counted again"
    );
}

#[tokio::test]
async fn a_durable_batch_stopped_on_one_producer_is_stopped_on_every_one() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut receiver = Receiver::start([]).await;
    // One slot each: most tasks are read after the stop, by a producer holding
    // no task of the batch when it was announced; the flag in Redis stops them.
    let slow = ["--pace-ms", "100", "--max-in-flight", "1"];
    let a = spawn_app(&receiver, &durable(&url, &slow)).await;
    let b = spawn_app(&receiver, &durable(&url, &slow)).await;
    let batch = a.start(json!({"min": 50, "max": 50})).await;
    receiver.take(3).await;

    let (status, _) = b.call("POST", &batch.stop_url, Some("{}")).await;
    let summary = wait_for(&a, &summary_path(&batch), |s| s["state"] == "done").await;

    assert_eq!(status, 200);
    let (delivered, cancelled) = (
        summary["delivered"].as_u64().unwrap_or(0),
        summary["cancelled"].as_u64().unwrap_or(0),
    );
    assert_eq!(delivered + cancelled, 50, "{summary}");
    assert!(cancelled > 30, "stopped early: {summary}");
}
