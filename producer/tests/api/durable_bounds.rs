//! The durable outbox's bounds and refusals on a real Redis: what its event
//! stream answers a client with nothing left or a foreign id, 503 while Redis is
//! down (and delivering again once it is back), a finished batch expiring, and
//! a batch refused when the outbox is full.

use crate::durable::{durable, summary_path, wait_for};
use crate::helpers::{Receiver, Started, TestApp, eventually, spawn_app};
use serde_json::{Value, json};
use taskhooks_shared::testing::RedisServer;

#[tokio::test]
async fn a_durable_stream_answers_204_when_nothing_is_left_and_refuses_a_foreign_or_future_event_id()
 {
    let redis = RedisServer::start();
    let url = redis.url();
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &durable(&url, &[])).await;
    let batch = app.start(json!({"min": 2, "max": 2})).await;
    let events = app.all_events(&batch).await;
    let last = events.last().expect("done").raw_id.clone();

    let nope = Started {
        events_url: "/batches/00000000-0000-4000-8000-000000000000/events".to_owned(),
        ..batch.clone()
    };
    let after_done = open_events(&app, &batch, &last).await;
    let numbered = open_events(&app, &batch, "7").await;
    let foreign = open_events(&app, &batch, "abc").await;
    let unknown = open_events(&app, &nope, "0").await;
    // Past the last event but not in the future, as after a Redis that lost its
    // newest entries: nothing is left of the finished batch.
    let (last_ms, _) = last.split_once('-').expect("an entry id");
    let lost = format!("{}-0", last_ms.parse::<u64>().expect("ms") + 1);
    let just_past = open_events(&app, &batch, &lost).await;
    // From the future (the year 5138), or past what Redis can read: a stream from
    // there would wait for ever (or fail every read).
    let future = open_events(&app, &batch, "99999999999999-0").await;
    let too_big = open_events(&app, &batch, "18446744073709551616-0").await;

    assert_eq!(after_done.status().as_u16(), 204);
    assert_eq!(
        numbered.status().as_u16(),
        200,
        "a number is an entry id: from then on"
    );
    assert_eq!(foreign.status().as_u16(), 400);
    let error: Value = foreign.json().await.expect("JSON");
    assert!(
        error["error"]
            .as_str()
            .unwrap_or("")
            .contains("Last-Event-ID"),
        "{error}"
    );
    assert_eq!(unknown.status().as_u16(), 404);
    let error: Value = unknown.json().await.expect("JSON");
    assert!(
        error["error"].as_str().unwrap_or("").contains("no batch"),
        "{error}"
    );
    assert_eq!(just_past.status().as_u16(), 204, "{lost}");
    assert_eq!(future.status().as_u16(), 400);
    let error: Value = future.json().await.expect("JSON");
    assert!(
        error["error"]
            .as_str()
            .unwrap_or("")
            .contains("later than Redis's clock"),
        "{error}"
    );
    assert_eq!(too_big.status().as_u16(), 400);
}

/// `GET` a batch's events with this `Last-Event-ID`, whatever the answer.
async fn open_events(app: &TestApp, batch: &Started, last: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{}", app.address, batch.events_url))
        .header("last-event-id", last)
        .send()
        .await
        .expect("answered")
}

#[tokio::test]
async fn while_redis_is_down_the_outbox_answers_503_and_it_works_again_once_redis_is_back() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &durable(&url, &[])).await;

    redis.stop();
    let (status, body) = app.call("POST", "/producetasks", Some("{}")).await;
    let (list_status, _) = app.call("GET", "/batches", None).await;
    redis.restart(); // empty: the queue and its group are gone too
    let batch = eventually("a batch to be accepted again", || async {
        let (status, body) = app
            .call("POST", "/producetasks", Some(r#"{"min":3,"max":3}"#))
            .await;
        if status == 202 {
            Ok(body)
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;
    let path = format!("/batches/{}", batch["batchid"].as_str().expect("an id"));
    let summary = wait_for(&app, &path, |s| s["state"] == "done").await;

    assert_eq!((status, list_status), (503, 503), "{body}");
    let error = body["error"].as_str().expect("an error");
    assert!(error.contains("Redis cannot be reached"), "{error}");
    assert_eq!(summary["delivered"], 3, "{summary}");
}

#[tokio::test]
async fn a_finished_durable_batch_and_its_attempts_expire_after_keep_finished() {
    let redis = RedisServer::start();
    let url = redis.url();
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &durable(&url, &["--keep-finished", "1s"])).await;
    let batch = app.start(json!({"min": 3, "max": 3})).await;
    app.all_events(&batch).await;
    let client = redis::Client::open(url.as_str()).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let batch_keys = format!("{{taskhooks:producer}}:batch:{}*", batch.batchid);
    let kept: Vec<String> = redis::cmd("KEYS")
        .arg(&batch_keys)
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert_eq!(kept.len(), 4, "meta, states, tasks, events: {kept:?}");

    let gone = eventually("the batch to expire", || async {
        let (status, body) = app.call("GET", &summary_path(&batch), None).await;
        if status == 404 { Ok(body) } else { Err(body) }
    })
    .await;
    let (_, list) = app.call("GET", "/batches", None).await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(&batch_keys)
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let queue_length: u64 = redis::cmd("XLEN")
        .arg("{taskhooks:producer}:queue")
        .query_async(&mut conn)
        .await
        .expect("XLEN");

    assert!(
        gone["error"].as_str().unwrap_or("").contains("no batch"),
        "{gone}"
    );
    assert_eq!(list["batches"], json!([]), "expired batches are not listed");
    assert_eq!(left, Vec::<String>::new(), "every key of the batch expired");
    assert_eq!(
        queue_length, 0,
        "acknowledged entries are deleted from the queue"
    );
}

#[tokio::test]
async fn a_batch_and_its_event_stream_carry_on_across_a_restart_of_a_persistent_redis() {
    let mut redis = RedisServer::start_persistent();
    let url = redis.url();
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &durable(&url, &["--pace-ms", "100"])).await;
    let batch = app.start(json!({"min": 20, "max": 20})).await;
    let mut stream = app.events(&batch, None).await;
    for _ in 0..3 {
        stream.next_event().await.expect("an event");
    }

    redis.restart(); // SIGKILL, then the same data back from the append-only file
    let events = stream.until_done().await;

    let summary = wait_for(&app, &summary_path(&batch), |s| s["state"] == "done").await;
    assert_eq!(summary["delivered"], 20, "{summary}");
    assert_eq!(
        events.last().map(|e| e.data["delivered"].clone()),
        Some(json!(20))
    );
}

#[tokio::test]
async fn a_batch_that_would_overfill_the_outbox_is_refused_with_429_until_room_is_made() {
    let redis = RedisServer::start();
    let url = redis.url();
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &durable(&url, &["--max-waiting-tasks", "10"])).await;
    let slow = r#"{"min":8,"max":8,"pace_ms":10000}"#;
    let first = app.start(serde_json::from_str(slow).expect("JSON")).await;

    let refused = app
        .client
        .post(format!("{}/producetasks", app.address))
        .header("content-type", "application/json")
        .body(slow)
        .send()
        .await
        .expect("answered");
    let status = refused.status().as_u16();
    let retry_after = refused.headers().get("retry-after").cloned();
    let error: Value = refused.json().await.expect("JSON");
    app.call("POST", &first.stop_url, Some("{}")).await;
    // Once the stopped batch's tasks are final (cancelled), their entries are
    // gone from the queue and a batch fits again.
    let accepted = eventually("room to be made for a batch", || async {
        let (status, body) = app.call("POST", "/producetasks", Some(slow)).await;
        if status == 202 {
            Ok((status, body))
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;

    assert_eq!(status, 429, "{error}");
    assert_eq!(retry_after.as_ref().map(|v| v.as_bytes()), Some(&b"10"[..]));
    let text = error["error"].as_str().unwrap_or("");
    assert!(
        text.contains("tasks waiting to be delivered and this batch has 8")
            && text.contains("limit of 10 (MAX_WAITING_TASKS)"),
        "{text}"
    );
    assert_eq!(accepted.0, 202, "room was never made: {}", accepted.1);
}
