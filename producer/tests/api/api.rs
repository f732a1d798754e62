//! The HTTP surface: starting batches, bad input, the page, health, unknown
//! routes and methods.

use crate::helpers::{Receiver, spawn_app};
use serde_json::json;

#[tokio::test]
async fn a_batch_starts_with_202_and_says_where_to_follow_and_stop_it() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;

    let (status, body) = app
        .call("POST", "/producetasks", Some(r#"{"min":3,"max":7}"#))
        .await;

    assert_eq!(status, 202, "{body}");
    let batchid = body["batchid"].as_str().expect("a batch id");
    assert_eq!(
        uuid::Uuid::parse_str(batchid)
            .expect("a UUID")
            .get_version_num(),
        4
    );
    assert!((3..=7).contains(&body["total"].as_u64().expect("total")));
    assert_eq!(body["events_url"], format!("/batches/{batchid}/events"));
    assert_eq!(body["stop_url"], format!("/batches/{batchid}/stop"));
}

#[tokio::test]
async fn an_empty_body_takes_the_configured_defaults() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &["--min-tasks", "4", "--max-tasks", "4"]).await;

    let (status, body) = app.call("POST", "/producetasks", None).await;

    assert_eq!(status, 202, "{body}");
    assert_eq!(body["total"], 4);
}

#[tokio::test]
async fn bad_batch_requests_get_400_with_a_json_reason() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;
    let cases = [
        (r#"{"min":5,"max":2}"#, "must not exceed"),
        (r#"{"min":0}"#, "at least 1"),
        (r#"{"max":100000000}"#, "limit"),
        (r#"{"min":"many"}"#, "JSON object"),
        (r#"{"min":1,"max":2"#, "JSON object"),
        (r#"{"count":2}"#, "unknown field"),
        (r#"{"pace_ms":3600000}"#, "pace_ms"),
        ("[2, 3, 0]", "got a JSON array"),
    ];

    for (body, expected) in cases {
        let (status, json) = app.call("POST", "/producetasks", Some(body)).await;

        assert_eq!(status, 400, "{body}: {json}");
        let error = json["error"].as_str().expect("an error message");
        assert!(error.contains(expected), "{body}: {error}");
    }
}

#[tokio::test]
async fn an_oversized_or_non_json_batch_request_gets_413_or_415() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;

    let huge = format!(r#"{{"min":1,"pad":"{}"}}"#, "x".repeat(70_000));
    let (status, json) = app.call("POST", "/producetasks", Some(&huge)).await;
    assert_eq!(status, 413, "{json}");
    assert!(
        json["error"]
            .as_str()
            .expect("an error")
            .contains("4096 bytes")
    );

    let response = app
        .client
        .post(format!("{}/producetasks", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("min=1")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 415);
    let json: serde_json::Value = response.json().await.expect("a JSON error");
    let error = json["error"].as_str().expect("an error");
    assert!(error.contains("application/json"), "{error}");
}

#[tokio::test]
async fn the_page_names_the_target_and_the_dashboard() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &["--dashboard-url", "http://dash.example:5001"]).await;

    let response = app.client.get(&app.address).send().await.expect("sent");

    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("text")
            .starts_with("text/html")
    );
    let html = response.text().await.expect("a body");
    assert!(
        html.contains(&receiver.url),
        "the page shows the target URL"
    );
    assert!(html.contains("http://dash.example:5001"));
}

#[tokio::test]
async fn health_unknown_routes_and_wrong_methods_answer_in_json() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;

    assert_eq!(
        app.call("GET", "/healthz", None).await,
        (200, json!({"status": "ok"}))
    );
    assert_eq!(
        app.call("GET", "/readyz", None).await,
        (200, json!({"status": "ready", "store": "memory"}))
    );
    let (status, body) = app.call("GET", "/nowhere", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no such resource: /nowhere");
    let (status, body) = app.call("GET", "/producetasks", None).await;
    assert_eq!(status, 405);
    assert!(
        body["error"]
            .as_str()
            .expect("an error")
            .contains("use POST")
    );
    let (status, _) = app.call("GET", "/static/css/style.css", None).await;
    assert_eq!(status, 200);
    let head = app
        .client
        .head(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("answered");
    assert_eq!(
        head.status().as_u16(),
        200,
        "HEAD is a GET without its body"
    );
    assert_eq!(head.bytes().await.expect("read"), "");
    let (status, _) = app.call("DELETE", "/batches", None).await;
    assert_eq!(status, 405);
}
