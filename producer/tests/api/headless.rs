//! `producer send`: the headless run, its report and its exit status.

use crate::helpers::{Receiver, Reply, WAIT, config};
use producer::config::SendArgs;
use std::collections::HashSet;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn send_command(receiver: &Receiver, extra: &[&str]) -> tokio::process::Command {
    let secret = receiver.secret.to_whsec();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_producer"));
    command
        .args([
            "send",
            "--target",
            &receiver.url,
            "--webhook-secret",
            &secret,
        ])
        .args(["--retry-backoff-ms", "20"])
        .args(extra)
        .kill_on_drop(true);
    command
}

async fn run_send(receiver: &Receiver, extra: &[&str]) -> Output {
    tokio::time::timeout(WAIT, send_command(receiver, extra).output())
        .await
        .expect("send finishes in time")
        .expect("the binary runs")
}

/// The number on the report's line that starts with `label`.
fn reported(stdout: &str, label: &str) -> u64 {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} line in\n{stdout}"))
}

#[tokio::test]
async fn send_delivers_every_task_reports_it_and_exits_zero() {
    let mut receiver = Receiver::start([]).await;

    let output = run_send(&receiver, &["--count", "25", "--concurrency", "4"]).await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "sent        25 of 25",
        "delivered   25",
        "failed      0",
        "retries     0",
    ] {
        assert!(stdout.contains(line), "{line:?} in\n{stdout}");
    }
    assert!(
        stdout.contains("throughput") && stdout.contains("p99"),
        "{stdout}"
    );
    let requests = receiver.take(25).await;
    assert!(requests.iter().all(|r| r.verified.is_ok()));
}

#[tokio::test]
async fn send_runs_on_one_thread_per_core_or_on_the_threads_asked_for() {
    let mut receiver = Receiver::start([]).await;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let runs = [
        (vec!["--count", "20", "--concurrency", "8"], cores),
        (
            vec!["--count", "20", "--concurrency", "8", "--threads", "3"],
            3,
        ),
    ];

    for (args, threads) in runs {
        let output = run_send(&receiver, &args).await;

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        let plural = if threads == 1 { "" } else { "s" };
        let start =
            format!("at most 8 in flight, as fast as possible, on {threads} thread{plural}");
        assert!(stderr.contains(&start), "{start:?} in\n{stderr}");
        assert_eq!(receiver.take(20).await.len(), 20);
    }
}

#[tokio::test]
async fn send_on_two_threads_delivers_an_uneven_count_each_task_once() {
    let mut receiver = Receiver::start([]).await;

    let output = run_send(
        &receiver,
        &["--count", "25", "--concurrency", "3", "--threads", "2"],
    )
    .await;

    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("at most 3 in flight, as fast as possible, on 2 threads"),
        "{stderr}"
    );
    for line in ["sent        25 of 25", "delivered   25", "failed      0"] {
        assert!(stdout.contains(line), "{line:?} in\n{stdout}");
    }
    let requests = receiver.take(25).await;
    receiver
        .assert_no_more_within(Duration::from_millis(100))
        .await;
    let ids: HashSet<u64> = requests
        .iter()
        .filter_map(|r| r.task.as_ref().map(|t| t.id))
        .collect();
    assert_eq!(ids, (0..25).collect(), "every task of the batch, once");
    let webhook_ids: HashSet<&str> = requests
        .iter()
        .filter_map(|r| r.webhook_id.as_deref())
        .collect();
    assert_eq!(webhook_ids.len(), 25);
}

#[tokio::test]
async fn send_starts_no_more_threads_than_deliveries_may_be_in_flight() {
    let mut receiver = Receiver::start([]).await;

    let output = run_send(
        &receiver,
        &["--count", "5", "--concurrency", "1", "--threads", "4"],
    )
    .await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("at most 1 in flight, as fast as possible, on 1 thread"),
        "{stderr}"
    );
    assert_eq!(receiver.take(5).await.len(), 5);
}

#[tokio::test]
async fn ctrl_c_stops_every_thread_and_counts_the_tasks_left_as_cancelled() {
    let mut receiver = Receiver::start([]).await;
    let total = 1_000_000;
    let child = send_command(
        &receiver,
        &[
            "--count",
            &total.to_string(),
            "--rate",
            "100",
            "--threads",
            "2",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("the binary runs");
    receiver.take(4).await; // both threads have started sending

    let pid = child.id().expect("still running").to_string();
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("every thread stops in time")
        .expect("the binary ran");

    assert!(interrupted.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let (sent, delivered) = (reported(&stdout, "sent"), reported(&stdout, "delivered"));
    assert_eq!(reported(&stdout, "failed"), 0, "{stdout}");
    assert_eq!(sent, delivered, "a delivery in flight is let finish");
    assert_eq!(
        delivered + reported(&stdout, "cancelled"),
        total,
        "every task counted once"
    );
    let more = usize::try_from(sent - 4).expect("a few");
    receiver.take(more).await;
    receiver
        .assert_no_more_within(Duration::from_millis(100))
        .await;
}

#[tokio::test]
async fn send_refuses_zero_threads_and_says_what_to_give() {
    let receiver = Receiver::start([]).await;

    let output = run_send(&receiver, &["--count", "1", "--threads", "0"]).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("--threads / PRODUCER_THREADS must be from 1 to 1024, got 0"),
        "{stderr}"
    );
}

#[tokio::test]
async fn send_exits_non_zero_and_names_the_failure_when_a_task_fails() {
    let receiver = Receiver::start([Reply::status(400)]).await;

    let output = run_send(&receiver, &["--count", "3", "--concurrency", "1"]).await;

    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("delivered   2") && stdout.contains("failed      1"),
        "{stdout}"
    );
    assert!(
        stderr.contains("failed: HTTP 400 Bad Request: scripted 400"),
        "{stderr}"
    );
}

#[tokio::test]
async fn send_refuses_to_start_without_a_secret() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["send", "--count", "1"])
        .env_remove("WEBHOOK_SECRET")
        .env_remove("SEND_UNSIGNED")
        .output()
        .await
        .expect("the binary runs");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("WEBHOOK_SECRET") && stderr.contains("whsec_"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_report_counts_retries_and_a_latency_per_delivered_task() {
    let receiver = Receiver::start([Reply::status(503), Reply::status(502)]).await;
    let config = config(&receiver, &[]);
    let args = SendArgs {
        count: 10,
        rate: Some(500.0),
        concurrency: Some(2),
        threads: None,
        delivery: config.delivery,
    };

    let report = producer::send::execute(args, CancellationToken::new())
        .await
        .expect("the run completes");

    assert_eq!((report.sent, report.delivered, report.failed), (10, 10, 0));
    assert_eq!(report.retries, 2);
    assert_eq!(report.latencies.len(), 10);
    assert!(report.all_delivered() && report.throughput() > 0.0);
}
