//! `POST /consumetasks`: what is accepted, what is refused and with which status.

use crate::helpers::{TestApp, config, spawn_app, spawn_app_with, task};
use serde_json::Value;
use taskhooks_shared::signing::{self, unix_now};
use taskhooks_shared::testing::RedisServer;
use taskhooks_shared::{Priority, Secret};

async fn assert_nothing_published(app: &TestApp) {
    let stats = app.stats().await;
    assert_eq!(
        stats["seq"], 0,
        "nothing should have been published: {stats}"
    );
    assert_eq!(stats["total"], 0, "{stats}");
}

async fn error_of(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.expect("a JSON error body");
    body["error"].as_str().expect("an error message").to_owned()
}

#[tokio::test]
async fn signed_task_is_published_counted_and_reaches_a_websocket() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let mut ws = app.websocket().await;
    ws.snapshot().await;

    let sent = task("batch-1", 0, Priority::Critical);
    let response = app.post_task(&sent).await;

    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(ws.tasks(1).await, vec![sent]);
    let stats = app.stats().await;
    assert_eq!(stats["totals"]["Critical"], 1, "{stats}");
    assert_eq!(stats["total"], 1, "{stats}");
}

#[tokio::test]
async fn duplicate_webhook_id_is_acknowledged_but_counted_once() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let body = serde_json::to_vec(&task("b", 7, Priority::Low)).expect("serialises");

    let first = app.post_signed("msg_same", body.clone()).await;
    let retry = app.post_signed("msg_same", body).await;

    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(retry.status().as_u16(), 200);
    let retry: Value = retry.json().await.expect("JSON");
    assert_eq!(retry["status"], "duplicate");
    let stats = app.stats().await;
    assert_eq!(stats["totals"]["Low"], 1, "{stats}");
    assert_eq!(stats["seq"], 1, "{stats}");
}

/// Sent at once, they reach Redis together, often in one script call: the first
/// is published, every other one is a duplicate of it, in the same call or not.
#[tokio::test]
async fn the_same_webhook_sent_many_times_at_once_is_published_once() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let body = serde_json::to_vec(&task("b", 9, Priority::Major)).expect("serialises");
    let others: Vec<_> = (0..20)
        .map(|id| {
            let body = serde_json::to_vec(&task("c", id, Priority::Low)).expect("serialises");
            (format!("msg_other_{id}"), body)
        })
        .collect();

    let same = (0..20).map(|_| app.post_signed("msg_twenty", body.clone()));
    let distinct = others
        .iter()
        .map(|(id, body)| app.post_signed(id, body.clone()));
    let (same, distinct) = futures_util::future::join(
        futures_util::future::join_all(same),
        futures_util::future::join_all(distinct),
    )
    .await;

    let mut statuses = Vec::new();
    for response in same.into_iter().chain(distinct) {
        assert_eq!(response.status().as_u16(), 200);
        let answer: Value = response.json().await.expect("JSON");
        statuses.push(answer["status"].as_str().expect("a status").to_owned());
    }
    let published = statuses.iter().filter(|s| *s == "published").count();
    assert_eq!(published, 21, "{statuses:?}");
    let stats = app.stats().await;
    assert_eq!(stats["totals"]["Major"], 1, "{stats}");
    assert_eq!(stats["totals"]["Low"], 20, "{stats}");
    assert_eq!(stats["seq"], 21, "{stats}");
}

#[tokio::test]
async fn bad_signatures_are_rejected_with_401_and_nothing_published() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let body = serde_json::to_vec(&task("b", 1, Priority::Major)).expect("serialises");
    let now = unix_now();
    let good = app.secret.headers("msg_1", now, &body);
    let other = Secret::generate().headers("msg_1", now, &body);
    let stale = app.secret.headers("msg_1", now - 600, &body);
    let url = format!("{}/consumetasks", app.address);
    // (what, id, timestamp, signature, expected words in the error)
    let cases = [
        (
            "no headers",
            None,
            None,
            None,
            "webhook-id header is missing",
        ),
        (
            "no signature",
            Some("msg_1"),
            Some(now.to_string()),
            None,
            "webhook-signature",
        ),
        (
            "wrong secret",
            Some("msg_1"),
            Some(now.to_string()),
            Some(other.signature),
            "same secret",
        ),
        (
            "stale",
            Some("msg_1"),
            Some(stale.timestamp.to_string()),
            Some(stale.signature),
            "clock",
        ),
        (
            "other id",
            Some("msg_2"),
            Some(now.to_string()),
            Some(good.signature.clone()),
            "same secret",
        ),
        (
            "bad time",
            Some("msg_1"),
            Some("soon".into()),
            Some(good.signature),
            "Unix seconds",
        ),
    ];

    for (what, id, timestamp, signature, words) in cases {
        let mut request = app
            .client
            .post(&url)
            .header("content-type", "application/json");
        for (name, value) in [
            (signing::HEADER_ID, id.map(str::to_owned)),
            (signing::HEADER_TIMESTAMP, timestamp),
            (signing::HEADER_SIGNATURE, signature),
        ] {
            if let Some(value) = value {
                request = request.header(name, value);
            }
        }
        let response = request.body(body.clone()).send().await.expect("sent");
        let error = error_of(response, 401).await;
        assert!(
            error.contains(words),
            "{what}: {error:?} should mention {words:?}"
        );
    }
    assert_nothing_published(&app).await;
}

#[tokio::test]
async fn body_over_64_kib_is_rejected_with_413() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let mut big = task("b", 1, Priority::Low);
    big.owner = "x".repeat(70 * 1024);

    let response = app.post_task(&big).await;

    let error = error_of(response, 413).await;
    assert!(error.contains("65536 bytes"), "{error}");
    assert_nothing_published(&app).await;
}

#[tokio::test]
async fn non_json_content_type_is_rejected_with_415() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let body = serde_json::to_vec(&task("b", 1, Priority::Low)).expect("serialises");

    let response = app.post_signed_as("msg_1", "text/plain", body).await;

    let error = error_of(response, 415).await;
    assert!(error.contains("application/json"), "{error}");
    assert_nothing_published(&app).await;
}

#[tokio::test]
async fn malformed_or_invalid_tasks_are_rejected_with_400() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let cases = [
        ("malformed", r#"{"batchid": "b", "id": 1,"#, "EOF"),
        (
            "missing field",
            r#"{"batchid":"b","id":1,"owner":"A"}"#,
            "missing field `priority`",
        ),
        (
            "mistyped",
            r#"{"batchid":"b","id":"one","owner":"A","priority":"Low"}"#,
            "invalid type",
        ),
        (
            "unknown priority",
            r#"{"batchid":"b","id":1,"owner":"A","priority":"High"}"#,
            "unknown variant `High`",
        ),
        ("not an object", r#"[1, 2]"#, "got a JSON array"),
        (
            "the fields as an array",
            r#"["b", 9, "o", "Low", null]"#,
            "must be a JSON object",
        ),
    ];

    for (i, (what, body, words)) in cases.into_iter().enumerate() {
        let response = app.post_signed(&format!("msg_{i}"), body.into()).await;
        let error = error_of(response, 400).await;
        assert!(
            error.contains(words),
            "{what}: {error:?} should mention {words:?}"
        );
    }
    assert_nothing_published(&app).await;
}

#[tokio::test]
async fn an_owner_or_batchid_over_its_limit_is_rejected_with_400_naming_the_field() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let mut long_owner = task("b", 1, Priority::Low);
    long_owner.owner = "o".repeat(201);
    let mut long_batch = task(&"b".repeat(101), 2, Priority::Low);
    long_batch.owner = "o".repeat(200);

    let owner = error_of(app.post_task(&long_owner).await, 400).await;
    let batch = error_of(app.post_task(&long_batch).await, 400).await;

    assert!(
        owner.contains("owner is 201 characters; at most 200"),
        "{owner}"
    );
    assert!(
        batch.contains("batchid is 101 characters; at most 100"),
        "{batch}"
    );
    assert_nothing_published(&app).await;
}

#[tokio::test]
async fn a_consumer_holding_two_secrets_accepts_either_and_nothing_else() {
    let redis = RedisServer::start();
    let (old, new) = (Secret::generate(), Secret::generate());
    let both = format!("{} {}", old.to_whsec(), new.to_whsec());
    let args = [
        "--webhook-secret".to_owned(),
        both,
        "--redis-url".to_owned(),
        redis.url(),
    ];
    let mut app = spawn_app_with(old.clone(), &args).await;

    let by_old = app.post_task(&task("b", 1, Priority::Low)).await;
    app.secret = new;
    let by_new = app.post_task(&task("b", 2, Priority::Low)).await;
    app.secret = Secret::generate();
    let by_other = app.post_task(&task("b", 3, Priority::Low)).await;

    assert_eq!(by_old.status().as_u16(), 200);
    assert_eq!(by_new.status().as_u16(), 200);
    assert_eq!(by_other.status().as_u16(), 401);
    assert_eq!(app.stats().await["total"], 2);
}

#[tokio::test]
async fn a_weak_or_oversized_secret_is_refused_at_start_saying_how_to_make_one() {
    for (secret, words) in [
        ("whsec_AA==", "1 bytes, too short"),
        ("whsec_c2VjcmV0", "6 bytes, too short"),
        (&*format!("whsec_{}", "QUFB".repeat(22)), "66 bytes"),
        ("whsec_not-base64-but-a-real-password", "followed by base64"),
    ] {
        let config = config(&["--webhook-secret".to_owned(), secret.to_owned()]);

        let refused = consumer::Application::build(config).await;

        let message = format!("{:#}", refused.err().expect("refused at start"));
        assert!(
            message.contains(words) && message.contains("openssl rand -base64 32"),
            "{message}"
        );
        // A mistyped real secret must not end up in a terminal or a log.
        assert!(!message.contains(&secret[6..]), "{message}");
    }
}

#[tokio::test]
async fn unsigned_webhooks_are_accepted_only_with_allow_unsigned() {
    let body = serde_json::to_vec(&task("b", 1, Priority::Moderate)).expect("serialises");
    let unsigned = spawn_app_with(Secret::generate(), &["--allow-unsigned".to_owned()]).await;
    let signed = spawn_app(None).await;

    for (app, status) in [(&unsigned, 200), (&signed, 401)] {
        let response = app
            .client
            .post(format!("{}/consumetasks", app.address))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), status);
    }
    assert_eq!(unsigned.stats().await["totals"]["Moderate"], 1);

    // Unsigned, the signature headers are not read: not even one that is not text.
    let stray = unsigned
        .client
        .post(format!("{}/consumetasks", unsigned.address))
        .header("content-type", "application/json")
        .header(
            "webhook-signature",
            reqwest::header::HeaderValue::from_bytes(b"v1,\xff").expect("obs-text is a value"),
        )
        .body(serde_json::to_vec(&task("b", 2, Priority::Moderate)).expect("serialises"))
        .send()
        .await
        .expect("sent");
    assert_eq!(stray.status().as_u16(), 200);
    assert_eq!(unsigned.stats().await["totals"]["Moderate"], 2);
}

#[tokio::test]
async fn consumer_refuses_to_start_without_a_secret() {
    let config = crate::helpers::config(&[]);

    let error = consumer::Application::build(config)
        .await
        .err()
        .expect("no secret, no start");

    let message = error.to_string();
    assert!(
        message.contains("WEBHOOK_SECRET") && message.contains("--allow-unsigned"),
        "{message}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors_and_head_is_a_get_without_its_body() {
    let app = spawn_app(None).await;

    let (status, body) = app.get_json("/nope").await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("/nope")),
        "{body}"
    );

    let (status, body) = app.get_json("/consumetasks").await;
    assert_eq!(status, 405);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("POST")),
        "{body}"
    );

    // HEAD is a GET without the body (uptime checkers use it); other methods are 405.
    for path in ["/healthz", "/readyz", "/api/stats", "/"] {
        let head = app
            .client
            .head(format!("{}{path}", app.address))
            .send()
            .await
            .expect("answered");
        assert_eq!(head.status().as_u16(), 200, "HEAD {path}");
        assert_eq!(head.bytes().await.expect("read"), "", "HEAD {path}");
    }
    let delete = app
        .client
        .delete(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("answered");
    assert_eq!(delete.status().as_u16(), 405);
    assert_eq!(delete.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn a_webhook_answer_is_shorter_than_the_write_buffer_fill_so_it_goes_out_in_one_write() {
    // The consumer lets actix take more of a response body only while its write
    // buffer holds less than WRITE_BUFFER_FILL (so a slow dashboard holds one frame,
    // README): a head and body longer than that would be written in two pieces.
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    let body = serde_json::to_vec(&task("one-write", 1, Priority::Critical)).expect("JSON");
    let id = "msg_one_write";
    let now = unix_now();
    // The longest request id a caller may have echoed back (64 bytes).
    let request_id = "r".repeat(64);
    let mut request = crate::raw::head(
        "POST /consumetasks",
        &[
            ("content-type", "application/json".into()),
            ("content-length", body.len().to_string()),
            ("x-request-id", request_id),
            (signing::HEADER_ID, id.to_owned()),
            (signing::HEADER_TIMESTAMP, now.to_string()),
            (signing::HEADER_SIGNATURE, app.secret.sign(id, now, &body)),
        ],
    );
    request.extend_from_slice(&body);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connects");
    tokio::io::AsyncWriteExt::write_all(&mut stream, &request)
        .await
        .expect("request sent");

    let (status, head, json) = crate::raw::read_response(&mut stream).await;

    assert_eq!((status, &json["status"]), (200, &Value::from("published")));
    let body_length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a content-length");
    let answer = head.len() + "\r\n\r\n".len() + body_length;
    assert!(
        answer < consumer::ws::WRITE_BUFFER_FILL,
        "a {answer}-byte answer does not fit {} bytes:\n{head}",
        consumer::ws::WRITE_BUFFER_FILL
    );
}
