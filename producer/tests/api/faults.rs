//! Faults: the real producer binary SIGTERMed in the middle of a `send` to the real
//! consumer and Redis stops cleanly, and its report never counts as delivered a
//! task the consumer did not count.

use crate::end_to_end::Consumer;
use crate::helpers::{WAIT, eventually, http_client};
use std::process::Stdio;
use taskhooks_shared::testing::RedisServer;

/// Tasks asked for: far more than are sent before the SIGTERM, at this pace, and
/// so many that making each one left just to mark it cancelled would take
/// minutes: the stop must be prompt all the same.
const TASKS: u64 = 100_000_000;
const RATE: &str = "2000";
/// Counted by the consumer before the producer is stopped.
const STOP_AT: u64 = 200;
const CONCURRENCY: u64 = 16;

/// The number after `label` in the report, e.g. `delivered   180`.
fn field(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in the report:\n{report}"))
}

/// The consumer's `/api/stats` total.
pub(crate) async fn consumer_total(client: &reqwest::Client, port: u16) -> u64 {
    let stats: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/api/stats"))
        .send()
        .await
        .expect("stats answer")
        .json()
        .await
        .expect("stats JSON");
    stats["total"].as_u64().expect("a total")
}

#[tokio::test]
async fn a_producer_stopped_with_sigterm_mid_batch_stops_cleanly_and_reports_only_counted_tasks() {
    let redis = RedisServer::start();
    let consumer = Consumer::start(&redis).await;
    let client = http_client();
    let target = format!("http://127.0.0.1:{}/consumetasks", consumer.port);
    let send = tokio::process::Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["send", "--count", &TASKS.to_string(), "--rate", RATE])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .args(["--target", &target, "--webhook-secret", &consumer.secret])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the producer binary starts");
    eventually("tasks to be counted", || async {
        (consumer_total(&client, consumer.port).await >= STOP_AT).then_some(())
    })
    .await;

    let pid = send.id().expect("a running producer").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let output = tokio::time::timeout(WAIT, send.wait_with_output())
        .await
        .expect("the producer stops in time")
        .expect("its output is read");
    let total = consumer_total(&client, consumer.port).await;

    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "not all sent:\n{report}");
    let (delivered, cancelled) = (field(&report, "delivered"), field(&report, "cancelled"));
    assert_eq!(field(&report, "failed"), 0, "{report}");
    assert!(cancelled > 0, "the batch was stopped part way:\n{report}");
    assert_eq!(
        delivered + cancelled,
        TASKS,
        "every task is delivered or cancelled:\n{report}"
    );
    assert!(
        delivered <= total,
        "reported {delivered} delivered, but the consumer counted {total}"
    );
    assert!(
        total <= delivered + CONCURRENCY,
        "at most the requests in flight were published without being reported: \
         {total} counted, {delivered} delivered"
    );
}
