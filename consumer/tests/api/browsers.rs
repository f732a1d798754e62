//! What a browser is told and refused: the dashboard's socket only for its own
//! page (or an allowed one), the security headers on every page and asset, and
//! no Redis password in the log or in `--help`.

use crate::helpers::{open_ws_with, spawn_app, spawn_app_with};
use taskhooks_shared::Secret;
use taskhooks_shared::testing::{
    RedisServer, assert_help_hides, assert_security_headers, log_until_listening,
};

const PASSWORD: &str = "hunter2-Sup3rSecret";

#[tokio::test]
async fn a_foreign_page_cannot_open_the_dashboard_socket() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;

    let refused = open_ws_with(app.port, "origin", "https://evil.example").await;

    let (status, body) = refused.expect_err("refused");
    assert_eq!(status, 403, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    assert!(
        json["error"]
            .as_str()
            .expect("an error")
            .contains("ALLOWED_ORIGINS"),
        "{json}"
    );
    let own = format!("http://127.0.0.1:{}", app.port);
    assert_eq!(
        open_ws_with(app.port, "origin", &own).await,
        Ok(()),
        "the page's own origin"
    );
}

#[tokio::test]
async fn an_allowed_origin_may_open_the_dashboard_socket() {
    let secret = Secret::generate();
    let args = [
        "--webhook-secret".to_owned(),
        secret.to_whsec(),
        "--allowed-origins".to_owned(),
        "https://wall.example".to_owned(),
    ];
    let app = spawn_app_with(secret, &args).await;

    assert_eq!(
        open_ws_with(app.port, "origin", "https://wall.example").await,
        Ok(())
    );
    assert!(
        open_ws_with(app.port, "origin", "https://other.example")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_dashboard_and_its_assets_carry_the_browser_security_headers() {
    let app = spawn_app(None).await;

    for path in [
        "/",
        "/static/js/dashboard.js",
        "/static/vendor/chart.js/chart.umd.min.js",
    ] {
        let response = app.get(path).await;
        let header = |name: &str| response.headers()[name].to_str().expect("text").to_owned();

        assert_security_headers(path, header);
    }
}

#[tokio::test]
async fn the_redis_password_never_shows_in_the_log() {
    let url = format!("redis://:{PASSWORD}@127.0.0.1:1");
    let (_, log) = log_until_listening(
        env!("CARGO_BIN_EXE_consumer"),
        &["--bind", "127.0.0.1:0", "--allow-unsigned"],
        &[("REDIS_URL", &url)],
    )
    .await;

    assert!(
        log.contains("redis://***@127.0.0.1:1"),
        "the redacted URL is named: {log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

#[tokio::test]
async fn help_shows_neither_the_redis_password_nor_the_secret() {
    let secret = Secret::generate().to_whsec();
    let url = format!("redis://:{PASSWORD}@cache:6379");
    let seeds = format!("rediss://app:{PASSWORD}@a:7000,rediss://app:{PASSWORD}@b:7000");
    let env = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_CLUSTER_URLS", &seeds),
        ("WEBHOOK_SECRET", &secret),
    ];

    assert_help_hides(
        env!("CARGO_BIN_EXE_consumer"),
        &env,
        "REDIS_URL",
        &[PASSWORD, &secret],
    )
    .await;
}
