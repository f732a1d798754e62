//! The durable outbox on Redis over TLS (`rediss://` with `REDIS_CA_CERT`), logged
//! in as the ACL user docs/operating.md tells an operator to create.

use crate::helpers::{Receiver, Reply, config, done, final_states, spawn_app};
use producer::Application;
use serde_json::json;
use taskhooks_shared::testing::{AclUser, TlsRedisServer, assert_rediss_password_hidden};

const PRODUCER: &str = "taskhooks-producer";

/// The flags of a producer on `redis` as `user`, trusting the test's CA.
fn tls_flags(redis: &TlsRedisServer, user: &AclUser) -> Vec<String> {
    let url = redis.url_as(user);
    let ca = redis.ca_cert().display().to_string();
    [
        "--redis-url",
        &url,
        "--claim-after",
        "1s",
        "--redis-ca-cert",
        &ca,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Why the producer refused to start with `flags`.
async fn refusal(receiver: &Receiver, flags: &[String]) -> String {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    match Application::build(config(receiver, &flags)).await {
        Ok(_) => panic!("the producer started with {flags:?}"),
        Err(err) => format!("{err:#}"),
    }
}

/// Everything a durable batch does, as that user: queued, claimed (the claim and keep
/// loops run from the start, `--claim-after 1s`), delivered with a retry, followed,
/// listed, redelivered and stopped; Redis refused the user nothing.
#[tokio::test]
async fn a_durable_batch_over_tls_as_the_documented_acl_user_is_delivered_with_its_events_and_stopped()
 {
    let user = AclUser::documented(PRODUCER);
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));
    let mut receiver = Receiver::start([Reply::status(503)]).await;
    let flags = tls_flags(&redis, &user);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let app = spawn_app(&receiver, &flags).await;
    let ready = app.call("GET", "/readyz", None).await;

    let batch = app.start(json!({"min": 3, "max": 3})).await;
    let events = app.all_events(&batch).await;
    let (_, list) = app.call("GET", "/batches", None).await;
    let redeliver = format!("/batches/{}/redeliver", batch.batchid);
    let (redelivering, body) = app.call("POST", &redeliver, Some(r#"{"tasks":[0]}"#)).await;
    let last = events.last().expect("a done event").raw_id.clone();
    let again = app
        .events_from(&batch, Some(&last))
        .await
        .until_done()
        .await;
    let (stopped, _) = app.call("POST", &batch.stop_url, None).await;

    assert_eq!(ready, (200, json!({"status": "ready", "store": "redis"})));
    assert_eq!(done(&events)["delivered"], 3);
    assert_eq!(final_states(&events).len(), 3);
    assert_eq!(list["durable"], true);
    assert_eq!(list["batches"][0]["delivered"], 3);
    assert_eq!(redelivering, 202, "{body}");
    assert_eq!(done(&again)["delivered"], 3, "task 0 delivered again");
    assert_eq!(stopped, 200, "a stop is written and announced");
    assert_eq!(
        receiver.take(5).await.len(),
        5,
        "three tasks, one retried, one redelivered"
    );
    assert_eq!(redis.acl_denials(&[]).await, Vec::<String>::new());
}

#[tokio::test]
async fn without_the_ca_the_producer_refuses_to_start_with_a_certificate_error() {
    let user = AclUser::documented(PRODUCER);
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));
    let receiver = Receiver::start([]).await;
    let mut flags = tls_flags(&redis, &user);
    flags.truncate(4);

    let why = refusal(&receiver, &flags).await;

    assert!(why.contains("invalid peer certificate"), "{why}");
    assert!(
        why.contains("REDIS_URL") && !why.contains(&user.password),
        "{why}"
    );
}

#[tokio::test]
async fn a_user_missing_a_right_is_refused_at_start_naming_it() {
    let user = AclUser::documented(PRODUCER).without("+xgroup|create");
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));
    let receiver = Receiver::start([]).await;

    let why = refusal(&receiver, &tls_flags(&redis, &user)).await;

    assert!(
        why.contains("no permissions to run the 'xgroup|create' command"),
        "{why}"
    );
}

#[tokio::test]
async fn a_ca_file_that_is_missing_or_unused_stops_the_start_naming_the_setting() {
    let user = AclUser::documented(PRODUCER);
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));
    let receiver = Receiver::start([]).await;
    let mut missing = tls_flags(&redis, &user);
    missing[5] = "/nonexistent/ca.pem".to_owned();
    let mut plain = tls_flags(&redis, &user);
    plain[1] = plain[1].replacen("rediss://", "redis://", 1);
    let without_url = plain[4..].to_vec();

    for (flags, expected) in [
        (missing, "cannot read"),
        (plain, "not a rediss:// URL"),
        (without_url, "without REDIS_URL"),
    ] {
        let why = refusal(&receiver, &flags).await;
        assert!(
            why.contains("REDIS_CA_CERT") && why.contains(expected),
            "{why}"
        );
        assert!(!why.contains(&user.password), "{why}");
    }
}

#[tokio::test]
async fn the_rediss_password_shows_neither_in_the_debug_log_nor_in_help() {
    let program = env!("CARGO_BIN_EXE_producer");
    let args = ["--bind", "127.0.0.1:0", "--unsigned"];
    let user = AclUser::documented(PRODUCER);
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));

    let (log, shown) = assert_rediss_password_hidden(program, &args, &redis.login_as(&user)).await;

    assert!(
        log.contains("durable outbox in Redis") && log.contains(&shown),
        "{log}"
    );
}
