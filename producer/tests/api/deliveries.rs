//! The delivery log and redelivery: every attempt recorded, batches listed, a
//! task's attempts read back, and tasks sent again with their `webhook-id`.

use crate::end_to_end::Consumer;
use crate::helpers::{
    Receiver, Reply, Started, TestApp, done, final_states, flags, on_each_store, spawn_app,
    spawn_with,
};
use serde_json::{Value, json};
use std::time::Duration;
use taskhooks_shared::testing::RedisServer;

impl TestApp {
    /// `POST /batches/{id}/redeliver` with this body.
    async fn redeliver(&self, batch: &Started, body: &str) -> (u16, Value) {
        let path = format!("/batches/{}/redeliver", batch.batchid);
        self.call("POST", &path, Some(body)).await
    }

    /// `GET /batches/{id}/tasks/{task id}`, which must answer 200.
    async fn task(&self, batch: &Started, id: u64) -> Value {
        let path = format!("/batches/{}/tasks/{id}", batch.batchid);
        let (status, body) = self.call("GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The batch's events after `last_event_id` through the next `done` (a
    /// redelivery's).
    async fn events_after(
        &self,
        batch: &Started,
        last_event_id: &str,
    ) -> Vec<crate::helpers::SseEvent> {
        self.events_from(batch, Some(last_event_id))
            .await
            .until_done()
            .await
    }
}

/// The id of the one failed task among `events`.
fn the_failed_one(events: &[crate::helpers::SseEvent]) -> u64 {
    let failed: Vec<u64> = final_states(events)
        .iter()
        .filter(|d| d["state"] == "failed")
        .map(|d| d["task"]["id"].as_u64().expect("a task id"))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    failed[0]
}

#[tokio::test]
async fn every_attempt_is_recorded_with_its_status_response_and_the_tasks_webhook_id() {
    let mut receiver = Receiver::start([Reply::status(503)]).await;
    let app = spawn_app(&receiver, &[]).await;
    let batch = app.start(json!({"min": 1, "max": 1})).await;

    let events = app.all_events(&batch).await;
    let view = app.task(&batch, 0).await;
    let (first, second) = (receiver.next().await, receiver.next().await);

    assert_eq!(view["state"], "delivered");
    assert_eq!(
        (view["batchid"].as_str(), view["task"]["id"].as_u64()),
        (Some(&*batch.batchid), Some(0))
    );
    assert_eq!(
        view.get("index"),
        None,
        "a task is named by its task.id only"
    );
    let webhook_id = view["webhook_id"].as_str().expect("a webhook_id");
    assert!(webhook_id.starts_with("msg_"), "{webhook_id}");
    assert_eq!(first.webhook_id.as_deref(), Some(webhook_id));
    assert_eq!(second.webhook_id.as_deref(), Some(webhook_id));
    for event in events.iter().filter(|e| e.event == "task") {
        assert_eq!(event.data["webhook_id"], webhook_id, "{:?}", event.data);
    }
    let attempts = view["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{view}");
    assert_eq!(
        (
            attempts[0]["number"].as_u64(),
            attempts[0]["status"].as_u64()
        ),
        (Some(1), Some(503))
    );
    assert_eq!(attempts[0]["response"], r#"{"error":"scripted 503"}"#);
    assert_eq!(
        attempts[0]["error"],
        "HTTP 503 Service Unavailable: scripted 503"
    );
    assert_eq!(
        (
            attempts[1]["number"].as_u64(),
            attempts[1]["status"].as_u64()
        ),
        (Some(2), Some(200))
    );
    assert_eq!(attempts[1]["response"], r#"{"status":"published"}"#);
    assert_eq!(attempts[1]["error"], Value::Null);
    let created = view["task"]["created_at"].as_u64().expect("created_at");
    let started: Vec<u64> = attempts
        .iter()
        .map(|a| a["started_at"].as_u64().expect("ms"))
        .collect();
    assert!(created <= started[0] && started[0] <= started[1], "{view}");
    assert!(attempts.iter().all(|a| a["duration_ms"].is_u64()), "{view}");
    assert_eq!(view["task"], final_states(&events)[0]["task"]);
}

#[tokio::test]
async fn batches_are_listed_newest_first_with_counts_that_add_up() {
    let receiver = Receiver::start([Reply::status(400)]).await;
    let app = spawn_app(&receiver, &[]).await;
    let older = app.start(json!({"min": 3, "max": 3})).await;
    app.all_events(&older).await;
    let newer = app.start(json!({"min": 2, "max": 2})).await;
    app.all_events(&newer).await;

    let (status, list) = app.call("GET", "/batches", None).await;
    let (one_status, one) = app
        .call("GET", &format!("/batches/{}", older.batchid), None)
        .await;

    assert_eq!((status, one_status), (200, 200));
    assert_eq!(list["durable"], false);
    let batches = list["batches"].as_array().expect("batches");
    let ids: Vec<&str> = batches
        .iter()
        .filter_map(|b| b["batchid"].as_str())
        .collect();
    assert_eq!(ids, [&*newer.batchid, &*older.batchid]);
    let id = &older.batchid;
    let expected = json!({
        "batchid": id, "total": 3, "created_at": one["created_at"], "state": "done",
        "queued": 0, "in_flight": 0, "delivered": 2, "failed": 1, "cancelled": 0,
        "events_url": format!("/batches/{id}/events"), "stop_url": format!("/batches/{id}/stop"),
        "redeliver_url": format!("/batches/{id}/redeliver"),
    });
    assert_eq!(one, expected);
    assert_eq!(batches[1], expected);
    assert!(batches[0]["created_at"].as_u64() >= one["created_at"].as_u64());
}

#[tokio::test]
async fn unknown_batches_ids_not_uuids_and_tasks_are_404_and_a_task_id_not_a_number_is_400() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;
    let batch = app.start(json!({"min": 2, "max": 2})).await;
    let id = &batch.batchid;
    let unknown = "00000000-0000-4000-8000-000000000000";

    let cases = [
        (
            "/batches/nope".to_owned(),
            404,
            "\"nope\" is not a batch id",
        ),
        ("/batches/nope/tasks/1".to_owned(), 404, "is not a batch id"),
        (format!("/batches/{unknown}"), 404, "no batch"),
        (format!("/batches/{unknown}/tasks/1"), 404, "no batch"),
        (
            format!("/batches/{}", id.to_uppercase()),
            404,
            "is not a batch id",
        ),
        (format!("/batches/{id}/tasks/2"), 404, "ids are 0 to 1"),
        (
            format!("/batches/{id}/tasks/{}", u64::MAX),
            404,
            "ids are 0 to 1",
        ),
        (
            format!("/batches/{id}/tasks/one"),
            400,
            "a number from 0 to 1",
        ),
        (
            format!("/batches/{id}/tasks/-1"),
            400,
            "a number from 0 to 1",
        ),
        (
            format!("/batches/{id}/tasks/+1"),
            400,
            "a number from 0 to 1",
        ),
    ];
    for (path, expected, words) in cases {
        let (status, body) = app.call("GET", &path, None).await;
        assert_eq!(status, expected, "{path}: {body}");
        let error = body["error"].as_str().expect("an error");
        assert!(error.contains(words), "{path}: {error}");
    }
}

#[tokio::test]
async fn redelivering_failed_tasks_sends_them_again_with_the_same_webhook_id() {
    on_each_store(|store| async move {
        let mut receiver = Receiver::start([Reply::status(400)]).await;
        let app = spawn_app(&receiver, &flags(&store, &[])).await;
        let batch = app.start(json!({"min": 3, "max": 3})).await;
        let first_run = app.all_events(&batch).await;
        let failed = the_failed_one(&first_run);
        let refused = receiver.take(3).await.remove(0);

        let (status, body) = app.redeliver(&batch, "{}").await;
        let again = receiver.next().await;
        let second_run = app
            .events_after(&batch, &first_run.last().expect("done").raw_id)
            .await;

        assert_eq!(status, 202, "{body}");
        let events_url = format!("/batches/{}/events", batch.batchid);
        assert_eq!(
            body,
            json!({"batchid": batch.batchid, "redelivering": [failed], "events_url": events_url})
        );
        assert_eq!(again.webhook_id, refused.webhook_id, "the same webhook-id");
        assert_eq!(again.task, refused.task, "the same body");
        let states: Vec<(&str, u64, u64)> = second_run
            .iter()
            .filter(|e| e.event == "task")
            .map(|e| {
                (
                    e.data["state"].as_str().unwrap_or(""),
                    e.data["task"]["id"].as_u64().unwrap_or(u64::MAX),
                    e.data["attempt"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(states, [("sending", failed, 2), ("delivered", failed, 2)]);
        assert_eq!(done(&second_run)["delivered"], 3);
        assert_eq!(done(&second_run)["failed"], 0);
        let view = app.task(&batch, failed).await;
        let statuses: Vec<u64> = view["attempts"]
            .as_array()
            .expect("attempts")
            .iter()
            .filter_map(|a| a["status"].as_u64())
            .collect();
        assert_eq!(statuses, [400, 200]);
        let (_, summary) = app
            .call("GET", &format!("/batches/{}", batch.batchid), None)
            .await;
        assert_eq!(
            (summary["state"].as_str(), summary["delivered"].as_u64()),
            (Some("done"), Some(3))
        );
    })
    .await;
}

#[tokio::test]
async fn redelivering_a_task_still_in_flight_is_a_409_naming_it_and_sends_nothing() {
    on_each_store(|store| async move {
        let mut receiver = Receiver::start([Reply::status(503)]).await;
        let app = spawn_app(&receiver, &flags(&store, &["--retry-backoff-ms", "5000"])).await;
        let batch = app.start(json!({"min": 1, "max": 1})).await;
        let mut stream = app.events(&batch, None).await;
        while stream.next_event().await.expect("an event").data["state"] != "retrying" {}

        let (status, body) = app.redeliver(&batch, r#"{"tasks":[0]}"#).await;
        let (nothing_status, nothing) = app.redeliver(&batch, "{}").await;

        assert_eq!(status, 409, "{body}");
        assert_eq!(body["in_flight"], json!([0]));
        let error = body["error"].as_str().expect("an error");
        assert!(
            error.contains("task(s) 0 still queued, sending or retrying"),
            "{error}"
        );
        assert_eq!(
            (nothing_status, &nothing["redelivering"]),
            (202, &json!([]))
        );
        receiver.next().await;
        receiver
            .assert_no_more_within(Duration::from_millis(300))
            .await;
        app.call("POST", &batch.stop_url, None).await;
        stream.until_done().await;
    })
    .await;
}

#[tokio::test]
async fn the_cancelled_tasks_of_a_stopped_batch_can_be_redelivered() {
    on_each_store(|store| async move {
        let mut receiver = Receiver::start([]).await;
        let app = spawn_app(&receiver, &flags(&store, &["--pace-ms", "200"])).await;
        let batch = app.start(json!({"min": 20, "max": 20})).await;
        receiver.next().await;
        app.call("POST", &batch.stop_url, None).await;
        let first_run = app.all_events(&batch).await;
        let cancelled = done(&first_run)["cancelled"].as_u64().expect("a count");
        assert!(cancelled >= 15, "{cancelled}");

        let (status, body) = app.redeliver(&batch, "{}").await;
        let second_run = app
            .events_after(&batch, &first_run.last().expect("done").raw_id)
            .await;

        assert_eq!(status, 202, "{body}");
        assert_eq!(
            body["redelivering"].as_array().map(Vec::len),
            Some(cancelled as usize)
        );
        let summary = done(&second_run);
        assert_eq!(
            (summary["delivered"].as_u64(), summary["cancelled"].as_u64()),
            (Some(20), Some(0))
        );
        receiver.take(cancelled as usize).await;
    })
    .await;
}

/// A body, extra headers, the status expected and words of its error.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);

#[tokio::test]
async fn bad_redeliver_requests_are_refused_precisely_and_redeliver_nothing() {
    let mut receiver = Receiver::start([Reply::status(400), Reply::status(400)]).await;
    let app = spawn_app(&receiver, &[]).await;
    let batch = app.start(json!({"min": 2, "max": 2})).await;
    app.all_events(&batch).await;
    receiver.take(2).await;
    let path = format!("/batches/{}/redeliver", batch.batchid);

    let cases: [Case; 7] = [
        (r#"{"tasks":[]}"#, &[], 400, "\"tasks\" is empty"),
        (r#"{"tasks":[1,1]}"#, &[], 400, "task 1 twice"),
        (r#"{"tasks":[2]}"#, &[], 404, "ids are 0 to 1"),
        (r#"{"tasks":[1],"all":true}"#, &[], 400, "unknown field"),
        ("[1]", &[], 400, "got a JSON array"),
        (
            "{}",
            &[("origin", "https://evil.example")],
            403,
            "ALLOWED_ORIGINS",
        ),
        (&"1".repeat(100_000), &[], 413, "over"),
    ];
    for (body, headers, expected, words) in cases {
        let (status, answer) = app.call_with("POST", &path, Some(body), headers).await;
        assert_eq!(status, expected, "{body:.40} {headers:?}: {answer}");
        let error = answer["error"].as_str().expect("an error");
        assert!(error.contains(words), "{body:.40}: {error}");
    }
    for (path, words) in [
        ("/batches/nope/redeliver", "is not a batch id"),
        (
            "/batches/00000000-0000-4000-8000-000000000000/redeliver",
            "no batch",
        ),
    ] {
        let (status, answer) = app.call("POST", path, Some("{}")).await;
        assert_eq!(status, 404, "{answer}");
        let error = answer["error"].as_str().expect("an error");
        assert!(error.contains(words), "{path}: {error}");
    }
    receiver
        .assert_no_more_within(Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn a_delivered_task_redelivered_to_the_real_consumer_is_a_duplicate_and_not_counted_again() {
    let redis = RedisServer::start();
    let consumer = Consumer::start(&redis).await;
    let app = spawn_with(consumer.producer_config(&[])).await;
    let batch = app.start(json!({"min": 3, "max": 3})).await;
    let first_run = app.all_events(&batch).await;
    assert_eq!(done(&first_run)["delivered"], 3);
    let stats = || async {
        let url = format!("http://127.0.0.1:{}/api/stats", consumer.port);
        let stats: Value = app
            .client
            .get(url)
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("JSON");
        stats["total"].as_u64().expect("a total")
    };
    assert_eq!(stats().await, 3);

    let (status, body) = app.redeliver(&batch, r#"{"tasks":[2]}"#).await;
    let second_run = app
        .events_after(&batch, &first_run.last().expect("done").raw_id)
        .await;

    assert_eq!(
        (status, &body["redelivering"]),
        (202, &json!([2])),
        "{body}"
    );
    assert_eq!(done(&second_run)["delivered"], 3);
    let view = app.task(&batch, 2).await;
    let attempts = view["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{view}");
    assert_eq!(attempts[1]["status"], 200);
    assert_eq!(attempts[1]["response"], r#"{"status":"duplicate"}"#);
    assert_eq!(stats().await, 3, "the consumer did not count it again");
}
