//! What a container runtime relies on: `producer healthcheck` (the image has no curl), and
//! the refusal to start without a secret of its own on a published, non-local address.

use crate::helpers::spawn_app;
use crate::receiver::{Receiver, Reply};
use std::process::Command;

fn producer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_producer"));
    command
        .env_remove("PUBLISHED_ON")
        .env_remove("WEBHOOK_SECRET");
    command
}

#[tokio::test]
async fn healthcheck_succeeds_against_a_running_producer() {
    let receiver = Receiver::start([Reply::status(200)]).await;
    let app = spawn_app(&receiver, &[]).await;
    let bind = app.address.trim_start_matches("http://").to_owned();

    let status = tokio::task::spawn_blocking(move || {
        producer().arg("healthcheck").env("BIND", bind).status()
    })
    .await
    .expect("the healthcheck ran")
    .expect("the binary starts");

    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_missing_secret_on_a_published_address_is_refused_at_start_saying_how_to_set_one() {
    let output = producer()
        .env("BIND", "127.0.0.1:0")
        .env("PUBLISHED_ON", "0.0.0.0")
        .arg("--unsigned")
        .output()
        .expect("the binary starts");

    assert!(!output.status.success(), "it must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no WEBHOOK_SECRET is set") && stderr.contains("TASKHOOKS_HOST"),
        "{stderr}"
    );
}
