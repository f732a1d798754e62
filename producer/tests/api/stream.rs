//! The Server-Sent Events stream of a batch: every task, then `done`; resumable
//! with `Last-Event-ID`; many subscribers and batches at once, up to
//! `--max-event-streams` streams.

use crate::helpers::{Receiver, done, eventually, final_states, flags, on_each_store, spawn_app};
use serde_json::json;

#[tokio::test]
async fn the_stream_carries_every_task_in_numbered_events_and_ends_with_done() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;

    let batch = app.start(json!({"min": 12, "max": 12})).await;
    let events = app.all_events(&batch).await;

    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "ids count up from 1"
    );
    let finals = final_states(&events);
    assert_eq!(finals.len(), 12);
    for (i, data) in finals.iter().enumerate() {
        assert_eq!(
            data.get("index"),
            None,
            "a task is named by its task.id only"
        );
        assert_eq!(data["total"], 12);
        assert_eq!(data["state"], "delivered");
        assert_eq!(data["status"], 200);
        assert_eq!(data["error"], json!(null));
        assert_eq!(data["task"]["id"], i as u64);
        assert_eq!(data["task"]["batchid"], batch.batchid.as_str());
    }
    let sending = events
        .iter()
        .filter(|e| e.data["state"] == "sending")
        .count();
    assert_eq!(sending, 12, "each task announces its first attempt");
    let summary = done(&events);
    assert_eq!(
        (summary["delivered"].clone(), summary["failed"].clone()),
        (json!(12), json!(0))
    );
    assert_eq!(summary["cancelled"], 0);
    assert!(summary["elapsed_ms"].is_u64());
}

#[tokio::test]
async fn resuming_with_last_event_id_replays_the_rest_without_loss_or_repeat() {
    on_each_store(|store| async move {
        let receiver = Receiver::start([]).await;
        let app = spawn_app(&receiver, &flags(&store, &["--pace-ms", "30"])).await;
        let batch = app.start(json!({"min": 30, "max": 30})).await;

        let mut first = app.events(&batch, None).await;
        let mut seen = Vec::new();
        for _ in 0..10 {
            seen.push(first.next_event().await.expect("an event"));
        }
        drop(first); // the connection breaks mid-batch
        let last_id = seen.last().expect("events").raw_id.clone();
        let rest = app.events_from(&batch, Some(&last_id)).await;
        seen.extend(rest.until_done().await);

        let from_scratch = app.all_events(&batch).await;
        assert_eq!(seen, from_scratch);
        assert_eq!(final_states(&seen).len(), 30);
    })
    .await;
}

#[tokio::test]
async fn a_stream_resumed_at_its_end_gets_204_so_the_browser_stops_reconnecting() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;
    let batch = app.start(json!({"min": 2, "max": 2})).await;
    let events = app.all_events(&batch).await;
    let last = events.last().expect("events").id;

    let response = app
        .client
        .get(format!("{}{}", app.address, batch.events_url))
        .header("last-event-id", last.to_string())
        .send()
        .await
        .expect("sent");

    assert_eq!(response.status().as_u16(), 204);
}

#[tokio::test]
async fn several_batches_and_subscribers_at_once_each_see_their_whole_batch() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &["--pace-ms", "5"]).await;

    let batches = [
        app.start(json!({"min": 15, "max": 15})).await,
        app.start(json!({"min": 25, "max": 25})).await,
    ];
    let mut readers = Vec::new();
    for batch in &batches {
        for _ in 0..2 {
            readers.push(async { (batch.total, app.all_events(batch).await) });
        }
    }
    let results = futures_util::future::join_all(readers).await;

    for (total, events) in &results {
        assert_eq!(final_states(events).len() as u64, *total);
        assert_eq!(done(events)["delivered"], *total);
    }
    assert_eq!(
        results[0].1, results[1].1,
        "two subscribers see the same stream"
    );
    assert_ne!(batches[0].batchid, batches[1].batchid);
}

#[tokio::test]
async fn an_unknown_batch_or_a_bad_last_event_id_gets_a_json_error() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;

    let unknown = "00000000-0000-4000-8000-000000000000";
    for (method, path, words) in [
        (
            "GET",
            "/batches/nope/events".to_owned(),
            "is not a batch id",
        ),
        ("POST", "/batches/nope/stop".to_owned(), "is not a batch id"),
        ("GET", format!("/batches/{unknown}/events"), "no batch"),
        ("POST", format!("/batches/{unknown}/stop"), "no batch"),
    ] {
        let (status, body) = app.call(method, &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        let error = body["error"].as_str().expect("an error");
        assert!(error.contains(words), "{path}: {error}");
    }

    let batch = app.start(json!({"min": 1, "max": 1})).await;
    // Not an id, and an id past every event the batch has (or could yet have
    // below it): a stream from there would wait for ever.
    for (last, words) in [
        ("yesterday", "Last-Event-ID"),
        ("999", "past this batch's last event"),
    ] {
        let response = app
            .client
            .get(format!("{}{}", app.address, batch.events_url))
            .header("last-event-id", last)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), 400, "{last}");
        let body: serde_json::Value = response.json().await.expect("JSON");
        let error = body["error"].as_str().expect("an error");
        assert!(error.contains(words), "{last}: {error}");
    }
}

#[tokio::test]
async fn event_streams_beyond_max_event_streams_are_refused_with_503_until_one_closes() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &["--pace-ms", "20", "--max-event-streams", "2"]).await;
    // A task every 20 ms for 20 s: the open streams always have an event to write.
    let batch = app.start(json!({"min": 1000, "max": 1000})).await;
    let mut first = app.events(&batch, None).await;
    let mut second = app.events(&batch, None).await;
    first.next_event().await.expect("the first stream is live");
    second
        .next_event()
        .await
        .expect("the second stream is live");

    let url = format!("{}{}", app.address, batch.events_url);
    let refused = app.client.get(&url).send().await.expect("an answer");
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.expect("a JSON error");
    let error = body["error"].as_str().expect("an error text");
    assert!(
        error.contains("already serves 2 event streams") && error.contains("--max-event-streams"),
        "{error}"
    );

    // The server sees the first client gone at its next write, within a task or two.
    drop(first);
    eventually("a stream to be taken once one closed", || async {
        let response = app.client.get(&url).send().await.expect("an answer");
        if response.status().as_u16() == 200 {
            return Some(());
        }
        assert_eq!(response.status().as_u16(), 503);
        None
    })
    .await;
    second
        .next_event()
        .await
        .expect("the other stream is still live");
}
