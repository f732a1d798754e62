//! Faults under load: the real consumer binary SIGKILLed or SIGTERMed, and Redis
//! SIGKILLed, while the real producer sends a batch; every task must be counted
//! exactly once and none lost. "Mid-batch" is a condition, not a time: the fault
//! is injected once the consumer has counted a tenth of the batch, and each test
//! checks that the producer then had to retry (so the fault did hit mid-batch).

use crate::helpers::{TestApp, WAIT, eventually, http_client, spawn_app, task};
use clap::Parser as _;
use producer::config::SendArgs;
use producer::send::report::Report;
use serde_json::Value;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use taskhooks_shared::testing::RedisServer;
use taskhooks_shared::{Priority, Secret};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Tasks per batch, sent as fast as 16 in flight allow (no `--rate`: under a
/// loaded machine every paced sleep pays a scheduler delay, which made a paced
/// batch take half a minute).
const TASKS: u64 = 2000;
/// Tasks counted before the fault.
const FAULT_AT: u64 = 200;

/// The consumer binary, run as a child process on a fixed port, so it can be
/// killed and started again where the producer sends.
struct ConsumerProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ConsumerProcess {
    fn start(redis: &RedisServer, secret: &Secret, port: u16) -> ConsumerProcess {
        let log = std::env::temp_dir().join(format!("taskhooks-consumer-{port}.log"));
        let stderr = std::fs::File::create(&log).expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_consumer"))
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--redis-url", &redis.url()])
            .env("WEBHOOK_SECRET", secret.to_whsec())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the consumer binary starts");
        ConsumerProcess { child, port, log }
    }

    async fn ready(self, client: &reqwest::Client) -> ConsumerProcess {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        eventually("the consumer's /readyz", || async {
            let response = client.get(&url).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        self
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} failed");
    }

    async fn exit(mut self) -> ExitStatus {
        eventually("the consumer to exit", || {
            let status = self.child.try_wait().expect("the child can be waited on");
            async move { status }
        })
        .await
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

/// `producer send` of [`TASKS`] to `port`, in process, retrying long enough
/// (about 10 s) to ride out a restart.
fn send(port: u16, secret: &Secret) -> JoinHandle<Report> {
    let target = format!("http://127.0.0.1:{port}/consumetasks");
    let secret = secret.to_whsec();
    let config = producer::Config::try_parse_from([
        "producer",
        "--target",
        &target,
        "--webhook-secret",
        &secret,
        "--retry-backoff-ms",
        "20",
        "--max-attempts",
        "10",
        "--seed",
        "10",
    ])
    .expect("producer arguments parse");
    let args = SendArgs {
        count: TASKS,
        rate: None,
        concurrency: Some(16),
        threads: None,
        delivery: config.delivery,
    };
    tokio::spawn(async move {
        producer::send::execute(args, CancellationToken::new())
            .await
            .expect("the run completes")
    })
}

async fn stats(client: &reqwest::Client, port: u16) -> Option<Value> {
    let url = format!("http://127.0.0.1:{port}/api/stats");
    client.get(url).send().await.ok()?.json().await.ok()
}

async fn wait_for_count(client: &reqwest::Client, port: u16, at_least: u64) {
    eventually(&format!("{at_least} tasks counted"), || async {
        let total = stats(client, port).await?["total"].as_u64()?;
        (total >= at_least).then_some(())
    })
    .await;
}

/// Every task delivered, retried at least once (the fault hit mid-batch), and
/// counted exactly once: the total and the sequence number are both the batch.
async fn assert_counted_exactly_once(report: Report, client: &reqwest::Client, port: u16) {
    assert_eq!((report.delivered, report.failed), (TASKS, 0), "{report}");
    assert!(
        report.retries > 0,
        "the fault did not hit mid-batch: {report}"
    );
    let stats = stats(client, port).await.expect("stats answer");
    assert_eq!(stats["total"], TASKS, "{stats}");
    assert_eq!(stats["seq"], TASKS, "{stats}");
}

async fn finish(producer: JoinHandle<Report>) -> Report {
    tokio::time::timeout(WAIT * 2, producer)
        .await
        .expect("the producer finishes in time")
        .expect("the producer task completes")
}

/// A consumer process sent `signal` mid-batch and started again on its port.
struct Restarted {
    /// How the first consumer exited.
    status: ExitStatus,
    report: Report,
    client: reqwest::Client,
    port: u16,
    // Dropped in this order: the consumer, then its Redis.
    _consumer: ConsumerProcess,
    _redis: RedisServer,
}

/// Sends the batch to a consumer process, sends that process `signal` once
/// [`FAULT_AT`] tasks are counted, starts it again and lets the batch finish.
async fn signal_mid_batch(signal: &str) -> Restarted {
    let redis = RedisServer::start();
    let (secret, port, client) = (Secret::generate(), free_port(), http_client());
    let consumer = ConsumerProcess::start(&redis, &secret, port)
        .ready(&client)
        .await;
    let producer = send(port, &secret);

    wait_for_count(&client, port, FAULT_AT).await;
    consumer.signal(signal);
    let status = consumer.exit().await;
    let restarted = ConsumerProcess::start(&redis, &secret, port);
    let report = finish(producer).await;
    Restarted {
        status,
        report,
        client,
        port,
        _consumer: restarted,
        _redis: redis,
    }
}

#[tokio::test]
async fn a_consumer_killed_mid_batch_and_restarted_counts_every_task_once() {
    let run = signal_mid_batch("KILL").await;

    assert_counted_exactly_once(run.report, &run.client, run.port).await;
}

#[tokio::test]
async fn a_consumer_stopped_with_sigterm_mid_batch_answers_2xx_only_for_what_it_published() {
    let run = signal_mid_batch("TERM").await;

    assert!(
        run.status.success(),
        "a clean exit on SIGTERM, got {}",
        run.status
    );
    // A 2xx for an unpublished task would leave the total short (it is never
    // retried); a published task whose answer was lost is retried and deduped.
    assert_counted_exactly_once(run.report, &run.client, run.port).await;
}

#[tokio::test]
async fn redis_killed_mid_batch_and_restarted_keeps_totals_and_counts_every_task_once() {
    let mut redis = RedisServer::start_persistent();
    let app: TestApp = spawn_app(Some(&redis)).await;
    let producer = send(app.port, &app.secret);

    wait_for_count(&app.client, app.port, FAULT_AT).await;
    redis.restart(); // SIGKILL, then a fresh redis-server reading the append-only file
    let report = finish(producer).await;

    assert_counted_exactly_once(report, &app.client, app.port).await;
}

#[tokio::test]
async fn the_first_stats_read_after_redis_returns_is_answered_not_refused() {
    let mut redis = RedisServer::start_persistent();
    let app: TestApp = spawn_app(Some(&redis)).await;
    app.deliver(&task("restart", 1, Priority::Major)).await;
    let before = app.stats().await;

    redis.restart(); // the consumer's connection to the old server is now broken

    // The first read after the restart: the connection manager answers it with the
    // broken connection's error before reconnecting; one retry hides that.
    let (status, after) = app.get_json("/api/stats").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after, before, "the totals, kept by the append-only file");
}
