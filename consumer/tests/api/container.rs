//! What a container runtime relies on: `consumer healthcheck` (the image has no curl), and
//! the refusal to start with the public demo secret on a published, non-local address.

use crate::helpers::spawn_app;
use std::process::Command;
use taskhooks_shared::exposure::DEMO_SECRET;

fn consumer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_consumer"));
    command
        .env_remove("PUBLISHED_ON")
        .env_remove("WEBHOOK_SECRET");
    command
}

#[tokio::test]
async fn healthcheck_succeeds_against_a_running_consumer() {
    let app = spawn_app(None).await;

    let status = tokio::task::spawn_blocking(move || {
        consumer()
            .arg("healthcheck")
            .env("BIND", format!("0.0.0.0:{}", app.port))
            .status()
    })
    .await
    .expect("the healthcheck ran")
    .expect("the binary starts");

    assert!(status.success(), "exit status {status}");
}

#[test]
fn healthcheck_fails_with_the_reason_when_nothing_listens() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let bind = free.local_addr().expect("local address").to_string();
    drop(free);

    let output = consumer()
        .arg("healthcheck")
        .env("BIND", &bind)
        .output()
        .expect("the binary starts");

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("unhealthy: connect to {bind}")),
        "{stderr}"
    );
}

#[test]
fn the_demo_secret_on_a_published_address_is_refused_at_start_saying_how_to_set_one() {
    let output = consumer()
        .env("BIND", "127.0.0.1:0")
        .env("PUBLISHED_ON", "0.0.0.0")
        .env("WEBHOOK_SECRET", DEMO_SECRET)
        .output()
        .expect("the binary starts");

    assert!(!output.status.success(), "it must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("public demo secret") && stderr.contains("WEBHOOK_SECRET=whsec_"),
        "{stderr}"
    );
}
