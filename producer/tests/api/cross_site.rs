//! Requests a foreign page could make: only JSON changes state, only the page's
//! own origin (or an allowed one) may send it, and every page and asset carries
//! the browser security headers.

use crate::helpers::{Receiver, TestApp, spawn_app};
use serde_json::Value;
use taskhooks_shared::testing::assert_security_headers;

fn error_of(body: &Value) -> &str {
    body["error"].as_str().expect("a JSON error")
}

async fn raw_post(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut request = app.client.post(format!("{}{path}", app.address));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.body(body.to_owned()).send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn state_changing_requests_not_sent_as_json_get_415_even_when_empty() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &["--pace-ms", "1000", "--max-tasks", "5"]).await;
    let batch = app.start(serde_json::json!({})).await;

    for (path, content_type, body) in [
        ("/producetasks", None, ""),
        ("/producetasks", Some("text/plain"), "{}"),
        ("/producetasks", Some("multipart/form-data; boundary=x"), ""),
        (batch.stop_url.as_str(), None, ""),
        (
            batch.stop_url.as_str(),
            Some("application/x-www-form-urlencoded"),
            "",
        ),
    ] {
        let (status, json) = raw_post(&app, path, content_type, body).await;

        assert_eq!(status, 415, "{path} {content_type:?}: {json}");
        assert!(error_of(&json).contains("application/json"), "{json}");
    }
    let (status, _) = app.call("POST", &batch.stop_url, Some("{}")).await;
    assert_eq!(status, 200, "a JSON stop still works");
}

#[tokio::test]
async fn a_foreign_page_cannot_start_or_stop_a_batch() {
    let mut receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &["--pace-ms", "1000", "--max-tasks", "5"]).await;
    let batch = app.start(serde_json::json!({"min": 3, "max": 3})).await;
    receiver.next().await;
    let foreign = [("origin", "https://evil.example")];

    let (status, json) = app
        .call_with("POST", "/producetasks", Some("{}"), &foreign)
        .await;
    assert_eq!(status, 403, "{json}");
    assert!(error_of(&json).contains("ALLOWED_ORIGINS"), "{json}");
    let (status, json) = app
        .call_with("POST", &batch.stop_url, Some("{}"), &foreign)
        .await;
    assert_eq!(status, 403, "{json}");

    // The batch was neither stopped nor joined by another: its next task still goes.
    let next = receiver.next().await;
    assert_eq!(next.task.expect("a task").batchid, batch.batchid);
    let (status, json) = app
        .call_with("POST", "/producetasks", Some("{}"), &[("origin", "null")])
        .await;
    assert_eq!(status, 403, "an opaque origin (sandboxed frame): {json}");
}

#[tokio::test]
async fn the_pages_own_origin_by_localhost_or_ip_needs_no_configuration() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &["--max-tasks", "1"]).await;
    let port = app.address.rsplit(':').next().expect("a port");
    let ip = format!("http://127.0.0.1:{port}");
    let localhost = format!("http://localhost:{port}");
    let localhost_host = format!("localhost:{port}");

    for headers in [
        vec![("origin", ip.as_str())],
        vec![
            ("origin", localhost.as_str()),
            ("host", localhost_host.as_str()),
        ],
        vec![],
    ] {
        let (status, json) = app
            .call_with("POST", "/producetasks", Some("{}"), &headers)
            .await;
        assert_eq!(status, 202, "{headers:?}: {json}");
    }
}

#[tokio::test]
async fn a_rebound_host_name_is_refused_unless_it_is_allowed() {
    let receiver = Receiver::start([]).await;
    let rebound = [
        ("origin", "http://evil.example:5000"),
        ("host", "evil.example:5000"),
    ];
    let app = spawn_app(&receiver, &["--max-tasks", "1"]).await;

    let (status, json) = app
        .call_with("POST", "/producetasks", Some("{}"), &rebound)
        .await;
    assert_eq!(status, 403, "{json}");
    assert!(error_of(&json).contains("ALLOWED_HOSTS"), "{json}");

    let named = spawn_app(
        &receiver,
        &["--max-tasks", "1", "--allowed-hosts", "evil.example"],
    )
    .await;
    let (status, json) = named
        .call_with("POST", "/producetasks", Some("{}"), &rebound)
        .await;
    assert_eq!(status, 202, "{json}");
}

#[tokio::test]
async fn an_allowed_origin_may_start_a_batch_from_its_own_site() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(
        &receiver,
        &[
            "--max-tasks",
            "1",
            "--allowed-origins",
            "https://ops.example, https://tasks.example",
        ],
    )
    .await;

    let allowed = [("origin", "https://tasks.example")];
    let (status, json) = app
        .call_with("POST", "/producetasks", Some("{}"), &allowed)
        .await;
    assert_eq!(status, 202, "{json}");
    let other = [("origin", "https://other.example")];
    let (status, _) = app
        .call_with("POST", "/producetasks", Some("{}"), &other)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn every_page_and_asset_carries_the_browser_security_headers() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &[]).await;

    for path in [
        "/",
        "/static/js/producer.js",
        "/static/css/style.css",
        "/nowhere",
    ] {
        let response = app.get(path).await;
        let header = |name: &str| response.headers()[name].to_str().expect("text").to_owned();

        assert_security_headers(path, header);
    }
}

#[tokio::test]
async fn a_rebound_name_reads_nothing_but_probes_answer_any_name() {
    let receiver = Receiver::start([]).await;
    let app = spawn_app(&receiver, &["--max-tasks", "2"]).await;
    let batch = app.start(serde_json::json!({})).await;
    app.all_events(&batch).await;
    let rebound = [("host", "evil.example:5000")];
    let task = format!("/batches/{}/tasks/0", batch.batchid);
    let summary = format!("/batches/{}", batch.batchid);

    for path in [
        "/",
        "/static/js/producer.js",
        "/batches",
        summary.as_str(),
        task.as_str(),
        batch.events_url.as_str(),
    ] {
        let (status, json) = app.call_with("GET", path, None, &rebound).await;

        assert_eq!(status, 403, "{path}: {json}");
        assert!(error_of(&json).contains("ALLOWED_HOSTS"), "{path}: {json}");
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, body) = app.call_with("GET", path, None, &rebound).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let port = app.address.rsplit(':').next().expect("a port");
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let (status, json) = app.call_with("GET", &task, None, &[("host", &host)]).await;
        assert_eq!(status, 200, "{host}: {json}");
    }
    let named = spawn_app(&receiver, &["--allowed-hosts", "evil.example"]).await;
    let (status, json) = named.call_with("GET", "/batches", None, &rebound).await;
    assert_eq!(status, 200, "an allowed name: {json}");
}
