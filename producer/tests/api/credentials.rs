//! A target URL's password never shows: not in the start-up log, not in `--help`,
//! not on the page. Nor does the webhook secret.

use crate::helpers::{Receiver, WAIT, spawn_app};
use std::process::Stdio;
use taskhooks_shared::Secret;
use tokio::io::{AsyncBufReadExt as _, BufReader};

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
    let mut producer = tokio::process::Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["--bind", "127.0.0.1:0", "--unsigned", "--target", &target])
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the producer starts");
    let mut lines = BufReader::new(producer.stderr.take().expect("stderr")).lines();

    let mut log = String::new();
    let listening = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("reads the log") {
            log.push_str(&line);
            log.push('\n');
            if line.contains("listening") {
                return line;
            }
        }
        panic!("the producer exited: {log}");
    })
    .await
    .expect("the producer says it listens");

    assert!(
        listening.contains("http://***@127.0.0.1:9/consumetasks"),
        "{listening}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

#[tokio::test]
async fn help_shows_neither_the_target_password_nor_the_secret() {
    let secret = Secret::generate().to_whsec();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_producer"))
        .arg("--help")
        .env(
            "WEBHOOK_RECEIVER_URL",
            with_password("http://consumer:5001/consumetasks"),
        )
        .env("DASHBOARD_URL", with_password("http://dash.example"))
        .env("WEBHOOK_SECRET", &secret)
        .output()
        .await
        .expect("--help runs");

    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    assert!(help.contains("WEBHOOK_RECEIVER_URL"), "{help}");
    for hidden in [PASSWORD, secret.as_str()] {
        assert!(!help.contains(hidden), "{help}");
    }
}
