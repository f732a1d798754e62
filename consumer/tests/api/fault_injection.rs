//! Fault injection (`--fault-injection`, `/api/faults`): off by default; on, two
//! consumers on one Redis share the faults, refuse exactly as many webhooks as
//! told, drop answers only of published webhooks (whose retries are answered
//! `duplicate`), delay answers, and refuse every bad request precisely.

use crate::helpers::{TestApp, spawn_app, spawn_app_with, task};
use crate::raw::{head, read_response};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use taskhooks_shared::testing::RedisServer;
use taskhooks_shared::{Priority, Secret};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

const JSON: (&str, &str) = ("content-type", "application/json");

/// Two consumers with fault injection on, sharing `redis` and one secret.
async fn two_replicas(redis: &RedisServer) -> (TestApp, TestApp) {
    let secret = Secret::generate();
    let args = [
        "--webhook-secret".to_owned(),
        secret.to_whsec(),
        "--redis-url".to_owned(),
        redis.url(),
        "--fault-injection".to_owned(),
    ];
    let a = spawn_app_with(secret.clone(), &args).await;
    let b = spawn_app_with(secret, &args).await;
    (a, b)
}

/// One consumer with fault injection on, on the in-process broker.
async fn in_process() -> TestApp {
    let secret = Secret::generate();
    let args = [
        "--webhook-secret".to_owned(),
        secret.to_whsec(),
        "--fault-injection".to_owned(),
    ];
    spawn_app_with(secret, &args).await
}

impl TestApp {
    /// `PUT /api/faults` with `body`, as the dashboard sends it.
    async fn put_faults(&self, body: Value) -> Value {
        let (status, answer) = self
            .call_with("PUT", "/api/faults", Some(&body.to_string()), &[JSON])
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// `GET /api/faults` (which also refreshes this replica's copy of the settings).
    async fn faults(&self) -> Value {
        let (status, answer) = self.get_json("/api/faults").await;
        assert_eq!(status, 200, "{answer}");
        answer
    }
}

#[tokio::test]
async fn the_faults_api_is_404_naming_the_setting_when_fault_injection_is_off() {
    let app = spawn_app(None).await;

    for method in ["GET", "PUT", "DELETE"] {
        let (status, body) = app
            .call_with(method, "/api/faults", Some("{}"), &[JSON])
            .await;

        assert_eq!(status, 404, "{method}: {body}");
        let error = body["error"].as_str().expect("an error");
        assert!(
            error.contains("--fault-injection") && error.contains("FAULT_INJECTION"),
            "{error}"
        );
    }
    let response = app.post_task(&task("off", 1, Priority::Low)).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn fail_next_refuses_exactly_that_many_webhooks_across_two_replicas() {
    let redis = RedisServer::start();
    let (a, b) = two_replicas(&redis).await;
    a.put_faults(json!({"fail_next": 4, "fail_status": 429}))
        .await;
    assert_eq!(
        b.faults().await["settings"]["fail_next"],
        4,
        "b sees a's setting"
    );

    let posts = (0..12).map(|id| {
        let app = if id % 2 == 0 { &a } else { &b };
        async move { app.post_task(&task("fail", id, Priority::Major)).await }
    });
    let answers = futures_util::future::join_all(posts).await;

    let refused: Vec<_> = answers.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(refused.len(), 4, "exactly fail_next refused");
    assert!(
        refused
            .iter()
            .all(|r| r.headers().get("retry-after").is_some())
    );
    assert_eq!(answers.iter().filter(|r| r.status() == 200).count(), 8);
    let stats = a.stats().await;
    assert_eq!(
        stats["total"], 8,
        "a refused webhook is not counted: {stats}"
    );
    let faults = b.faults().await;
    assert_eq!(faults["settings"]["fail_next"], 0);
    assert_eq!(faults["injected"]["refused"], 4);
}

#[tokio::test]
async fn a_dropped_answer_closes_the_connection_after_publishing_and_the_retry_is_a_duplicate() {
    let redis = RedisServer::start();
    let (a, b) = two_replicas(&redis).await;
    a.put_faults(json!({"drop_next": 1})).await;
    let task = task("drop", 1, Priority::Low);

    let dropped = a
        .client
        .post(format!("{}/consumetasks", a.address))
        .header("content-type", "application/json")
        .headers(signed_headers(&a, &task))
        .body(serde_json::to_vec(&task).expect("a task serialises"))
        .send()
        .await;
    let retry = b.post_task(&task).await;

    let err = dropped.expect_err("no answer, the connection closed");
    assert!(!err.is_timeout(), "closed, not timed out: {err}");
    assert_eq!(retry.status(), 200);
    assert_eq!(
        retry.json::<Value>().await.expect("JSON")["status"],
        "duplicate"
    );
    let stats = b.stats().await;
    assert_eq!(
        (stats["total"].clone(), stats["duplicates"].clone()),
        (json!(1), json!(1))
    );
    let faults = a.faults().await;
    assert_eq!(
        faults["injected"],
        json!({"refused": 0, "dropped": 1, "duplicates": 1})
    );
    assert_eq!(a.counter("answers_dropped_total").await, 1);
}

/// The signature headers `post_task` sends for `task`.
fn signed_headers(app: &TestApp, task: &taskhooks_shared::Task) -> reqwest::header::HeaderMap {
    use taskhooks_shared::signing::{self, unix_now};
    let body = serde_json::to_vec(task).expect("a task serialises");
    let id = format!("msg_{}_{}", task.batchid, task.id);
    let signed = app.secret.headers(&id, unix_now(), &body);
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in [
        (signing::HEADER_ID, signed.id.to_string()),
        (signing::HEADER_TIMESTAMP, signed.timestamp.to_string()),
        (signing::HEADER_SIGNATURE, signed.signature.to_string()),
    ] {
        headers.insert(name, value.parse().expect("a header value"));
    }
    headers
}

#[tokio::test]
async fn a_forged_webhook_is_still_401_and_does_not_use_up_a_refusal() {
    let redis = RedisServer::start();
    let (a, _b) = two_replicas(&redis).await;
    a.put_faults(json!({"fail_next": 1})).await;
    let body = serde_json::to_vec(&task("forged", 1, Priority::Low)).expect("serialises");

    let forged = a
        .client
        .post(format!("{}/consumetasks", a.address))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("answered");
    let refused = a.post_task(&task("forged", 2, Priority::Low)).await;

    assert_eq!(forged.status(), 401);
    assert_eq!(refused.status(), 503, "the default status");
    assert_eq!(refused.headers()["retry-after"], "1");
    let error: Value = refused.json().await.expect("JSON");
    assert!(
        error["error"]
            .as_str()
            .expect("text")
            .contains("fault injection")
    );
}

#[tokio::test]
async fn a_delay_holds_every_answer() {
    let app = in_process().await;
    app.put_faults(json!({"delay_ms": 400})).await;

    let started = Instant::now();
    let response = app.post_task(&task("slow", 1, Priority::Low)).await;

    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn put_keeps_the_fields_not_given_and_delete_clears_every_fault_but_not_the_counts() {
    let redis = RedisServer::start();
    let (a, b) = two_replicas(&redis).await;
    a.put_faults(json!({"fail_next": 1, "fail_status": 502}))
        .await;
    assert_eq!(
        a.post_task(&task("clear", 1, Priority::Low)).await.status(),
        502
    );

    let kept = b
        .put_faults(json!({"fail_percent": 30, "delay_ms": 5, "drop_next": 2}))
        .await;
    let (status, cleared) = b.call_with("DELETE", "/api/faults", None, &[JSON]).await;

    assert_eq!(
        kept["settings"],
        json!({"fail_next": 0, "fail_status": 502, "fail_percent": 30, "delay_ms": 5, "drop_next": 2})
    );
    assert_eq!(status, 200);
    assert_eq!(
        cleared["settings"],
        json!({"fail_next": 0, "fail_status": 503, "fail_percent": 0, "delay_ms": 0, "drop_next": 0})
    );
    assert_eq!(cleared["injected"]["refused"], 1);
    assert_eq!(a.faults().await["settings"]["fail_percent"], 0);
    assert_eq!(
        a.post_task(&task("clear", 2, Priority::Low)).await.status(),
        200
    );
}

#[tokio::test]
async fn the_in_process_broker_keeps_the_faults_in_the_process() {
    let app = in_process().await;
    app.put_faults(json!({"fail_next": 2})).await;

    let mut statuses = Vec::new();
    for id in 0..4 {
        statuses.push(
            app.post_task(&task("memory", id, Priority::Low))
                .await
                .status()
                .as_u16(),
        );
    }
    let retry = app.post_task(&task("memory", 3, Priority::Low)).await;

    assert_eq!(statuses, [503, 503, 200, 200]);
    assert_eq!(
        retry.json::<Value>().await.expect("JSON")["status"],
        "duplicate"
    );
    let stats = app.stats().await;
    assert_eq!(
        (stats["total"].clone(), stats["duplicates"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(app.faults().await["injected"]["refused"], 2);
}

/// A request to refuse: method, body, headers, the status expected and what its error says.
type BadRequest<'a> = (
    &'a str,
    Option<&'a str>,
    &'a [(&'a str, &'a str)],
    u16,
    &'a str,
);

#[tokio::test]
async fn bad_requests_to_the_faults_api_are_refused_precisely() {
    let redis = RedisServer::start();
    let (a, _b) = two_replicas(&redis).await;
    let cases: [BadRequest; 8] = [
        (
            "PUT",
            Some(r#"{"fail_next":1}"#),
            &[JSON, ("origin", "http://evil.example")],
            403,
            "cross-site",
        ),
        (
            "DELETE",
            None,
            &[JSON, ("origin", "http://evil.example")],
            403,
            "cross-site",
        ),
        (
            "PUT",
            Some(r#"{"fail_next":1}"#),
            &[("content-type", "text/plain")],
            415,
            "application/json",
        ),
        ("DELETE", None, &[], 415, "application/json"),
        (
            "PUT",
            Some(r#"{"fail_next":10001}"#),
            &[JSON],
            400,
            "fail_next must be from 0 to 10000",
        ),
        (
            "PUT",
            Some(r#"{"fail_status":200}"#),
            &[JSON],
            400,
            "fail_status must be one of",
        ),
        (
            "PUT",
            Some(r#"{"fail":1}"#),
            &[JSON],
            400,
            "unknown field \"fail\"",
        ),
        ("POST", Some("{}"), &[JSON], 405, "GET, PUT, DELETE"),
    ];

    for (method, body, headers, expected, says) in cases {
        let (status, answer) = a.call_with(method, "/api/faults", body, headers).await;

        assert_eq!(status, expected, "{method} {body:?} {headers:?}: {answer}");
        let error = answer["error"].as_str().expect("an error");
        assert!(error.contains(says), "{method} {body:?}: {error}");
    }
    let huge = format!(r#"{{"fail_next":1,"pad":"{}"}}"#, "x".repeat(8 * 1024));
    let (status, _) = a
        .call_with("PUT", "/api/faults", Some(&huge), &[JSON])
        .await;
    assert_eq!(status, 413);
    assert_eq!(
        a.faults().await["settings"]["fail_next"],
        0,
        "nothing was changed"
    );
}

#[tokio::test]
async fn a_stalled_put_gets_408_and_changes_nothing() {
    let app = in_process().await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connects");
    let request = head(
        "PUT /api/faults",
        &[
            ("content-type", "application/json".into()),
            ("content-length", "1000".into()),
        ],
    );

    stream.write_all(&request).await.expect("head sent");
    stream
        .write_all(br#"{"fail_next": 1"#)
        .await
        .expect("part of the body sent");
    let (status, _, body) = read_response(&mut stream).await;

    assert_eq!(status, 408, "{body}");
    assert_eq!(app.faults().await["settings"]["fail_next"], 0);
}
