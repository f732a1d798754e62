//! A target URL's password never shows: not in the start-up log, not in `--help`,
//! not on the page. Nor does the webhook secret.

use crate::helpers::{Receiver, spawn_app};
use taskhooks_shared::Secret;
use taskhooks_shared::testing::{assert_help_hides, log_until_listening};

const PASSWORD: &str = "hunter2-Sup3rSecret";

fn with_password(url: &str) -> String {
    url.replacen("http://", &format!("http://bot:{PASSWORD}@"), 1)
}

#[tokio::test]
async fn the_page_shows_the_target_without_its_password() {
    let receiver = Receiver::start([]).await;
    let target = with_password(&receiver.url);
    let dashboard = format!("http://viewer:{PASSWORD}@dash.example:5001");
    let app = spawn_app(
        &receiver,
        &["--target", &target, "--dashboard-url", &dashboard],
    )
    .await;

    let (status, html) = app.call("GET", "/", None).await;

    assert_eq!(status, 200);
    let html = html.as_str().expect("HTML");
    assert!(!html.contains(PASSWORD), "{html}");
    assert!(
        html.contains("http://***@127.0.0.1:"),
        "the redacted target is shown"
    );
}

#[tokio::test]
async fn the_start_up_log_names_the_target_without_its_password() {
    let target = with_password("http://127.0.0.1:9/consumetasks");
    let (listening, log) = log_until_listening(
        env!("CARGO_BIN_EXE_producer"),
        &["--bind", "127.0.0.1:0", "--unsigned", "--target", &target],
        &[],
    )
    .await;

    assert!(
        listening.contains("http://***@127.0.0.1:9/consumetasks"),
        "{listening}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

#[tokio::test]
async fn help_shows_neither_the_target_password_nor_the_secret() {
    let secret = Secret::generate().to_whsec();
    let target = with_password("http://consumer:5001/consumetasks");
    let dashboard = with_password("http://dash.example");
    let seeds = format!("rediss://bot:{PASSWORD}@a:7000,rediss://bot:{PASSWORD}@b:7000");
    let env = [
        ("WEBHOOK_RECEIVER_URL", target.as_str()),
        ("DASHBOARD_URL", &dashboard),
        ("REDIS_CLUSTER_URLS", &seeds),
        ("WEBHOOK_SECRET", &secret),
    ];

    assert_help_hides(
        env!("CARGO_BIN_EXE_producer"),
        &env,
        "WEBHOOK_RECEIVER_URL",
        &[PASSWORD, &secret],
    )
    .await;
}
