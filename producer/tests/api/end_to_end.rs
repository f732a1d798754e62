//! End to end: the producer delivers to the real consumer, which fans out through a
//! private Redis to a dashboard's WebSocket.

use crate::helpers::{WAIT, done, final_states, spawn_with};
use clap::Parser as _;
use futures_util::StreamExt as _;
use producer::config::SendArgs;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use taskhooks_shared::testing::{RedisServer, named_events};
use taskhooks_shared::{Priority, Secret, Task};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// A consumer on port 0 using `redis`, stopped when dropped.
pub(crate) struct Consumer {
    pub(crate) port: u16,
    pub(crate) secret: String,
    shutdown: CancellationToken,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Consumer {
    pub(crate) async fn start(redis: &RedisServer) -> Consumer {
        Consumer::start_with(redis, Secret::generate().to_whsec()).await
    }

    /// A consumer holding `secret` (several, space-separated, while rotating).
    async fn start_with(redis: &RedisServer, secret: String) -> Consumer {
        let url = redis.url();
        let config = consumer::Config::try_parse_from([
            "consumer",
            "--bind",
            "127.0.0.1:0",
            "--redis-url",
            &url,
            "--webhook-secret",
            &secret,
        ])
        .expect("consumer arguments parse");
        let app = consumer::Application::build(config)
            .await
            .expect("the consumer builds");
        let shutdown = CancellationToken::new();
        let port = app.port();
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Consumer {
            port,
            secret,
            shutdown,
        }
    }

    /// Producer flags aimed at this consumer.
    pub(crate) fn producer_config(&self, extra: &[&str]) -> producer::Config {
        let target = format!("http://127.0.0.1:{}/consumetasks", self.port);
        let mut args = vec!["producer", "--bind", "127.0.0.1:0", "--target", &target];
        args.extend(["--webhook-secret", &self.secret, "--pace-ms", "0"]);
        args.extend_from_slice(extra);
        producer::Config::try_parse_from(args).expect("producer arguments parse")
    }

    async fn dashboard(&self) -> Dashboard {
        let url = format!("ws://127.0.0.1:{}/ws", self.port);
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the WebSocket opens");
        Dashboard { socket }
    }
}

/// A dashboard's WebSocket, read as the page reads it.
struct Dashboard {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Dashboard {
    /// The next JSON message within `wait`, or `None`.
    async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            match frame.expect("the socket is open").expect("a valid frame") {
                Message::Text(text) => {
                    return Some(named_events(serde_json::from_str(&text).expect("JSON")));
                }
                Message::Close(frame) => panic!("the socket closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    async fn snapshot(&mut self) -> Value {
        let message = self.next_within(WAIT).await.expect("a snapshot in time");
        assert_eq!(message["type"], "snapshot", "{message}");
        message
    }

    /// Tasks from `events` messages until `n` have come, then checks none follows.
    async fn exactly(&mut self, n: usize) -> Vec<Task> {
        let mut tasks = Vec::new();
        while tasks.len() < n {
            let message = self.next_within(WAIT).await.expect("events in time");
            tasks.extend(events_of(&message));
        }
        if let Some(extra) = self.next_within(Duration::from_millis(500)).await {
            panic!("more than {n} tasks: {extra}");
        }
        tasks
    }
}

fn events_of(message: &Value) -> Vec<Task> {
    assert_eq!(
        message["type"], "events",
        "expected live events, got {message}"
    );
    let events = message["events"].as_array().expect("an events array");
    events
        .iter()
        .map(|e| serde_json::from_value(e["task"].clone()).expect("a task"))
        .collect()
}

fn totals_of(tasks: &[Task]) -> Value {
    let mut totals: BTreeMap<&str, u64> = Priority::ALL.iter().map(|p| (p.as_str(), 0)).collect();
    for task in tasks {
        *totals.entry(task.priority.as_str()).or_default() += 1;
    }
    json!(totals)
}

#[tokio::test]
async fn a_produced_batch_reaches_the_dashboard_exactly_once_per_task_with_matching_totals() {
    let redis = RedisServer::start();
    let consumer = Consumer::start(&redis).await;
    let mut dashboard = consumer.dashboard().await;
    let before = dashboard.snapshot().await;
    assert_eq!(before["totals"], totals_of(&[]));
    let app = spawn_with(consumer.producer_config(&[])).await;

    let batch = app.start(json!({"min": 60, "max": 60})).await;
    let events = app.all_events(&batch).await;
    let received = dashboard.exactly(60).await;

    assert_eq!(
        done(&events)["delivered"],
        60,
        "every delivery was answered 2xx"
    );
    let produced: Vec<Task> = final_states(&events)
        .iter()
        .map(|d| serde_json::from_value(d["task"].clone()).expect("a task"))
        .collect();
    let mut sorted = received.clone();
    sorted.sort_by_key(|t| t.id);
    assert_eq!(sorted, produced, "the same tasks, each exactly once");
    let ids: HashSet<u64> = received.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 60);
    let fresh = consumer.dashboard().await.snapshot().await;
    assert_eq!(fresh["totals"], totals_of(&produced));
}

#[tokio::test]
async fn a_headless_send_reaches_the_dashboard_exactly_once_per_task() {
    let redis = RedisServer::start();
    let consumer = Consumer::start(&redis).await;
    let mut dashboard = consumer.dashboard().await;
    dashboard.snapshot().await;
    let args = SendArgs {
        count: 200,
        rate: None,
        concurrency: Some(16),
        threads: None,
        delivery: consumer.producer_config(&["--seed", "7"]).delivery,
    };

    let report = producer::send::execute(args, CancellationToken::new())
        .await
        .expect("the run completes");
    let received = dashboard.exactly(200).await;

    assert_eq!((report.delivered, report.failed), (200, 0));
    let ids: HashSet<u64> = received.iter().map(|t| t.id).collect();
    assert_eq!(ids, (0..200).collect());
    let fresh = consumer.dashboard().await.snapshot().await;
    assert_eq!(fresh["totals"], totals_of(&received));
}

/// Sends `count` tasks to `consumer` signed with `secrets`, returning (delivered, failed).
async fn send_signed(consumer: &Consumer, secrets: &str, count: u64) -> (u64, u64) {
    let target = format!("http://127.0.0.1:{}/consumetasks", consumer.port);
    let config = producer::Config::try_parse_from([
        "producer",
        "--target",
        &target,
        "--webhook-secret",
        secrets,
        "--max-attempts",
        "1",
    ])
    .expect("producer arguments parse");
    let args = SendArgs {
        count,
        rate: None,
        concurrency: Some(4),
        threads: None,
        delivery: config.delivery,
    };
    let report = producer::send::execute(args, CancellationToken::new())
        .await
        .expect("the run completes");
    (report.delivered, report.failed)
}

#[tokio::test]
async fn a_rolling_secret_rotation_never_gets_a_401() {
    let redis = RedisServer::start();
    let (a, b) = (Secret::generate().to_whsec(), Secret::generate().to_whsec());
    let both = format!("{a} {b}");

    // Each step changes one program while the other keeps its secrets.
    let consumer = Consumer::start_with(&redis, a.clone()).await;
    let mut steps = vec![("both on A", send_signed(&consumer, &a, 20).await)];
    steps.push((
        "producer A+B, consumer A",
        send_signed(&consumer, &both, 20).await,
    ));
    drop(consumer);
    let consumer = Consumer::start_with(&redis, both.clone()).await;
    steps.push(("both on A+B", send_signed(&consumer, &both, 20).await));
    steps.push((
        "producer B, consumer A+B",
        send_signed(&consumer, &b, 20).await,
    ));
    drop(consumer);
    let consumer = Consumer::start_with(&redis, b.clone()).await;
    steps.push(("both on B", send_signed(&consumer, &b, 20).await));
    let retired = send_signed(&consumer, &a, 5).await;

    for (step, result) in steps {
        assert_eq!(
            result,
            (20, 0),
            "{step}: every task delivered, none refused"
        );
    }
    assert_eq!(
        retired,
        (0, 5),
        "the retired secret A is refused once B alone is held"
    );
}
