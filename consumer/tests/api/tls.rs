//! Redis over TLS (`rediss://` with `REDIS_CA_CERT`), logged in as the ACL user
//! docs/operating.md tells an operator to create.

use crate::helpers::{config, spawn_app_with, task};
use consumer::Application;
use taskhooks_shared::testing::{
    AclUser, TlsRedisServer, assert_rediss_password_hidden, eventually,
};
use taskhooks_shared::{Priority, Secret};

const CONSUMER: &str = "taskhooks-consumer";

/// The arguments of a consumer on `redis` as `user`, trusting the test's CA.
fn tls_args(secret: &Secret, redis: &TlsRedisServer, user: &AclUser) -> Vec<String> {
    vec![
        "--webhook-secret".to_owned(),
        secret.to_whsec(),
        "--redis-url".to_owned(),
        redis.url_as(user),
        "--redis-ca-cert".to_owned(),
        redis.ca_cert().display().to_string(),
    ]
}

/// `/readyz` once it answers 503: its error.
async fn readyz_error(app: &crate::helpers::TestApp) -> String {
    eventually("/readyz to answer 503", || async {
        let (status, body) = app.get_json("/readyz").await;
        (status == 503).then(|| body["error"].as_str().unwrap_or_default().to_owned())
    })
    .await
}

#[tokio::test]
async fn a_consumer_over_tls_as_its_documented_acl_user_counts_publishes_and_snapshots() {
    let user = AclUser::documented(CONSUMER);
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));
    let secret = Secret::generate();
    let app = spawn_app_with(secret.clone(), &tls_args(&secret, &redis, &user)).await;
    let mut ws = app.websocket().await;
    assert_eq!(ws.snapshot().await["seq"], 0);

    let sent = task("tls", 1, Priority::Major);
    app.deliver(&sent).await;
    let retried = app.post_task(&sent).await;

    assert_eq!(retried.status().as_u16(), 200, "a retry is deduplicated");
    assert_eq!(ws.tasks(1).await, vec![sent]);
    let stats = app.stats().await;
    assert_eq!(
        (
            stats["totals"]["Major"].clone(),
            stats["duplicates"].clone()
        ),
        (1.into(), 1.into())
    );
    assert_eq!(app.websocket().await.snapshot().await["seq"], 1);
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        redis.acl_denials(&["config|get"]).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn fault_injection_works_as_the_documented_acl_user() {
    let user = AclUser::documented(CONSUMER);
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));
    let secret = Secret::generate();
    let mut args = tls_args(&secret, &redis, &user);
    args.push("--fault-injection".to_owned());
    let app = spawn_app_with(secret, &args).await;
    let json = ("content-type", "application/json");
    let fail_one = serde_json::json!({"fail_next": 1, "fail_status": 429}).to_string();

    let (set, _) = app
        .call_with("PUT", "/api/faults", Some(&fail_one), &[json])
        .await;
    let refused = app.post_task(&task("faults", 1, Priority::Low)).await;
    let accepted = app.post_task(&task("faults", 1, Priority::Low)).await;
    let (cleared, _) = app.call_with("DELETE", "/api/faults", None, &[json]).await;

    assert_eq!((set, cleared), (200, 200));
    assert_eq!(refused.status().as_u16(), 429);
    assert_eq!(accepted.status().as_u16(), 200);
    assert_eq!(
        redis.acl_denials(&["config|get"]).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn without_the_ca_the_consumer_says_the_certificate_is_not_trusted_on_readyz() {
    let user = AclUser::documented(CONSUMER);
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));
    let secret = Secret::generate();
    let mut args = tls_args(&secret, &redis, &user);
    args.truncate(4);
    let app = spawn_app_with(secret, &args).await;

    let error = readyz_error(&app).await;

    assert!(error.contains("invalid peer certificate"), "{error}");
    assert!(!error.contains(&user.password), "{error}");
    let webhook = app.post_task(&task("tls", 1, Priority::Low)).await;
    assert_eq!(webhook.status().as_u16(), 503);
}

#[tokio::test]
async fn a_user_missing_a_right_is_named_on_readyz() {
    let user = AclUser::documented(CONSUMER).without("+evalsha");
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));
    let secret = Secret::generate();
    let app = spawn_app_with(secret.clone(), &tls_args(&secret, &redis, &user)).await;

    let error = readyz_error(&app).await;

    assert!(
        error.contains("no permissions to run the 'evalsha' command"),
        "{error}"
    );
}

#[tokio::test]
async fn a_user_without_its_keys_is_named_on_readyz() {
    let user = AclUser::documented(CONSUMER).without("~{taskhooks}:totals");
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));
    let secret = Secret::generate();
    let app = spawn_app_with(secret.clone(), &tls_args(&secret, &redis, &user)).await;

    let error = readyz_error(&app).await;

    assert!(
        error.contains("no permissions to access one of the keys"),
        "{error}"
    );
}

#[tokio::test]
async fn a_ca_file_that_is_missing_or_unused_stops_the_start_naming_the_setting() {
    let user = AclUser::documented(CONSUMER);
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));
    let secret = Secret::generate();
    let mut missing = tls_args(&secret, &redis, &user);
    missing[5] = "/nonexistent/ca.pem".to_owned();
    let mut plain = tls_args(&secret, &redis, &user);
    plain[3] = plain[3].replacen("rediss://", "redis://", 1);

    for (args, expected) in [(missing, "cannot read"), (plain, "not a rediss:// URL")] {
        let Err(err) = Application::build(config(&args)).await else {
            panic!("the consumer started with {args:?}");
        };
        let err = format!("{err:#}");
        assert!(
            err.contains("REDIS_CA_CERT") && err.contains(expected),
            "{err}"
        );
        assert!(!err.contains(&user.password), "{err}");
    }
}

#[tokio::test]
async fn the_rediss_password_shows_neither_in_the_debug_log_nor_in_help() {
    let program = env!("CARGO_BIN_EXE_consumer");
    let args = ["--bind", "127.0.0.1:0", "--allow-unsigned"];
    let user = AclUser::documented(CONSUMER);
    let redis = TlsRedisServer::start(std::slice::from_ref(&user));

    let (log, shown) = assert_rediss_password_hidden(program, &args, &redis.login_as(&user)).await;

    assert!(log.contains(&format!("using Redis at {shown}")), "{log}");
}
