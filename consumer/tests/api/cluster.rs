//! The consumer on a real 6-node Redis Cluster: two replicas share its totals and
//! events; a crashed master, a lost replica and a frozen cluster lose nothing; on a
//! TLS cluster, as its documented ACL user, it works the same and hides the password.

use crate::helpers::{TestApp, WAIT, WsClient, eventually, spawn_app_with, task};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use taskhooks_shared::testing::{
    AclUser, RedisCluster, assert_rediss_password_hidden, named_events,
};
use taskhooks_shared::{Priority, Secret, Task};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The key whose slot holds every key of the consumer (the default channel).
const KEY: &str = "{taskhooks}:seq";

/// Two consumers on `cluster`, sharing one secret.
async fn two_consumers(cluster: &RedisCluster) -> (TestApp, TestApp) {
    two_consumers_with(&["--redis-cluster-urls", &cluster.urls()]).await
}

/// Two consumers on `cluster` logging in as `user` (created on every node).
async fn two_consumers_as(cluster: &RedisCluster, user: &AclUser) -> (TestApp, TestApp) {
    cluster.add_user(user).await;
    two_consumers_with(&["--redis-cluster-urls", &cluster.urls_as(user)]).await
}

/// Two consumers with the Redis flags `redis`, sharing one secret.
async fn two_consumers_with(redis: &[&str]) -> (TestApp, TestApp) {
    let secret = Secret::generate();
    let mut args = vec!["--webhook-secret".to_owned(), secret.to_whsec()];
    args.extend(redis.iter().map(|flag| (*flag).to_owned()));
    let a = spawn_app_with(secret.clone(), &args).await;
    let b = spawn_app_with(secret, &args).await;
    (a, b)
}

/// The tasks of a batch, their priorities in turn.
fn batch(name: &str, count: u64) -> Vec<Task> {
    (0..count)
        .map(|id| task(name, id, Priority::ALL[id as usize % 4]))
        .collect()
}

/// The totals `tasks` make.
fn totals_of(tasks: &[Task]) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for task in tasks {
        *totals.entry(task.priority.as_str().to_owned()).or_default() += 1;
    }
    totals
}

/// A dashboard's totals as the page keeps them: a snapshot's totals, then one more
/// for each event past its `seq`; and, as the page does, a new socket (and so a
/// new snapshot) when the consumer closes this one because Redis did not answer.
struct Dashboard<'a> {
    app: &'a TestApp,
    ws: WsClient,
    seq: u64,
    totals: BTreeMap<String, u64>,
}

impl<'a> Dashboard<'a> {
    /// Opens `app`'s dashboard and reads its snapshot.
    async fn open(app: &'a TestApp) -> Dashboard<'a> {
        let mut dashboard = Dashboard {
            app,
            ws: app.websocket().await,
            seq: 0,
            totals: BTreeMap::new(),
        };
        let snapshot = dashboard.ws.snapshot().await;
        dashboard.read(&snapshot);
        dashboard
    }

    fn read(&mut self, message: &Value) {
        match message["type"].as_str() {
            Some("snapshot") => {
                self.seq = message["seq"].as_u64().expect("a seq");
                self.totals = serde_json::from_value(message["totals"].clone()).expect("totals");
                self.totals.retain(|_, n| *n > 0);
            }
            Some("events") => {
                for event in message["events"].as_array().expect("events") {
                    let seq = event["seq"].as_u64().expect("a seq");
                    if seq > self.seq {
                        self.seq = seq;
                        let priority = event["task"]["priority"].as_str().expect("a priority");
                        *self.totals.entry(priority.to_owned()).or_default() += 1;
                    }
                }
            }
            _ => {}
        }
    }

    /// The next message; a socket closed by the consumer (code 1013, "try again")
    /// is opened again, as the page does, and its snapshot is that message.
    async fn next(&mut self) -> Value {
        let frame = tokio::time::timeout(WAIT, self.ws.stream.next())
            .await
            .expect("a WebSocket message in time");
        match frame {
            Some(Ok(Message::Text(text))) => {
                named_events(serde_json::from_str(&text).expect("JSON message"))
            }
            Some(Ok(Message::Close(Some(close)))) if close.code == CloseCode::Again => {
                self.ws = self.app.websocket().await;
                self.ws.snapshot().await
            }
            Some(Ok(Message::Close(close))) => panic!("socket closed: {close:?}"),
            Some(Ok(_)) => Value::Null, // pings are answered by tungstenite itself
            Some(Err(err)) => panic!("the socket failed: {err}"),
            None => panic!("the socket ended"),
        }
    }

    /// Reads until the totals are `expected` (failing after the wait).
    async fn until(&mut self, expected: &BTreeMap<String, u64>) {
        while &self.totals != expected {
            let message = self.next().await;
            self.read(&message);
        }
    }

    /// Reads until a `status` message, which it returns.
    async fn status(&mut self) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == "status" {
                return message;
            }
            self.read(&message);
        }
    }
}

/// A master other than `master`: the one serving some other hash tag.
async fn other_master(cluster: &RedisCluster, master: usize) -> usize {
    for tag in 0..100 {
        let node = cluster.master_of(&format!("{{other{tag}}}")).await;
        if node != master {
            return node;
        }
    }
    panic!("a cluster of three masters has another one");
}

/// `/api/stats`' totals, without the priorities at 0.
async fn stats_totals(app: &TestApp) -> BTreeMap<String, u64> {
    let totals: BTreeMap<String, u64> =
        serde_json::from_value(app.stats().await["totals"].clone()).expect("totals");
    totals.into_iter().filter(|(_, n)| *n > 0).collect()
}

#[tokio::test]
async fn a_crashed_master_of_the_consumers_keys_loses_no_task_and_every_dashboard_ends_exact() {
    let mut cluster = RedisCluster::start().await;
    let (a, b) = two_consumers(&cluster).await;
    let (ready_status, ready) = a.get_json("/readyz").await;
    assert_eq!(
        (ready_status, &ready["broker"]),
        (200, &json!("redis-cluster")),
        "{ready}"
    );
    let (mut dashboard_a, mut dashboard_b) = (Dashboard::open(&a).await, Dashboard::open(&b).await);
    let tasks = batch("failover", 40);

    // Half the batch, through both replicas, and one retry: counted once.
    for (n, task) in tasks[..20].iter().enumerate() {
        [&a, &b][n % 2].deliver(task).await;
    }
    let retry = b.post_task(&tasks[0]).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(
        retry.json::<Value>().await.expect("JSON")["status"],
        "duplicate"
    );
    let master = cluster.master_of(KEY).await;
    cluster.kill(master).await;
    // The rest while the replica takes over: each is retried on 503, as a sender does.
    let rest = async {
        for (n, task) in tasks[20..].iter().enumerate() {
            [&a, &b][n % 2].deliver(task).await;
        }
    };
    let failover = async {
        cluster.wait_for_failover(KEY, master).await;
        // The promoted master has no replica until the crashed one rejoins as one,
        // and each write waits for one (REDIS_WAIT_REPLICAS).
        cluster.restart(master).await;
    };
    tokio::join!(rest, failover);

    let expected = totals_of(&tasks);
    assert_eq!(stats_totals(&a).await, expected);
    assert_eq!(stats_totals(&b).await, expected);
    dashboard_a.until(&expected).await;
    dashboard_b.until(&expected).await;
}

#[tokio::test]
async fn a_lost_replica_of_the_keys_master_refuses_writes_until_it_is_back_and_another_changes_nothing()
 {
    let mut cluster = RedisCluster::start().await;
    let (a, _b) = two_consumers(&cluster).await;
    let master = cluster.master_of(KEY).await;
    let own_replica = cluster.replica_of(master).await;
    let other_master = other_master(&cluster, master).await;
    let other_replica = cluster.replica_of(other_master).await;

    cluster.kill(other_replica).await;
    let first = task("replicas", 1, Priority::Low);
    assert_eq!(a.post_task(&first).await.status(), 200, "nothing changes");
    assert_eq!(a.get_json("/readyz").await.0, 200);

    cluster.kill(own_replica).await;
    let second = task("replicas", 2, Priority::Major);
    let refused = eventually("a webhook refused for want of a replica", || async {
        let response = a.post_task(&second).await;
        (response.status() == 503).then_some(response)
    })
    .await;
    let body: Value = refused.json().await.expect("a JSON error");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("retry")),
        "{body}"
    );
    let (status, ready) = a.get_json("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["error"]
            .as_str()
            .is_some_and(|e| e.contains("REDIS_WAIT_REPLICAS")),
        "{ready}"
    );

    cluster.restart(own_replica).await;
    a.deliver(&second).await;
    let expected = totals_of(&[first, second]);
    assert_eq!(stats_totals(&a).await, expected);
    assert_eq!(a.get_json("/readyz").await.0, 200);
}

#[tokio::test]
async fn a_frozen_cluster_gets_503_the_pages_say_so_and_the_totals_are_exact_after() {
    let cluster = RedisCluster::start().await;
    // As the least-privileged user docs/operating.md gives.
    let user = AclUser::documented("taskhooks-consumer");
    let (a, b) = two_consumers_as(&cluster, &user).await;
    let mut dashboard = Dashboard::open(&b).await;
    let tasks = batch("frozen", 6);
    a.deliver(&tasks[0]).await;

    cluster.pause_all().await;
    assert_eq!(a.post_task(&tasks[1]).await.status(), 503);
    assert_eq!(a.get_json("/readyz").await.0, 503);
    // The dashboard says so in words once its subscriber's ping goes unanswered.
    let said = dashboard.status().await;
    assert_eq!(said["status"], "unavailable", "{said}");
    assert!(
        said["error"].as_str().is_some_and(|e| e.contains("Redis")),
        "{said}"
    );
    cluster.resume_all().await;
    cluster.wait_ok().await;

    for task in &tasks[1..] {
        a.deliver(task).await;
    }
    let expected = totals_of(&tasks);
    assert_eq!(stats_totals(&b).await, expected);
    dashboard.until(&expected).await;
}

#[tokio::test]
async fn a_user_without_the_right_to_read_the_slots_is_told_which_right_is_missing() {
    let cluster = RedisCluster::start().await;
    let user = AclUser::documented("taskhooks-consumer").without("+cluster|slots");
    let (a, _b) = two_consumers_as(&cluster, &user).await;

    let (status, ready) = a.get_json("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    let error = ready["error"].as_str().unwrap_or_default();
    assert!(error.contains("cluster|slots"), "{ready}");
}

#[tokio::test]
async fn redis_url_and_cluster_urls_together_are_refused_at_start_naming_both() {
    let args = [
        "--allow-unsigned",
        "--redis-url",
        "redis://127.0.0.1:6379",
        "--redis-cluster-urls",
        "redis://127.0.0.1:7000,redis://127.0.0.1:7001",
    ]
    .map(str::to_owned);

    let refused = consumer::Application::build(crate::helpers::config(&args))
        .await
        .err()
        .expect("refused");

    let why = format!("{refused:#}");
    assert!(
        why.contains("REDIS_URL") && why.contains("REDIS_CLUSTER_URLS"),
        "{why}"
    );
}

#[tokio::test]
async fn on_a_tls_cluster_as_the_documented_user_two_consumers_count_and_show_every_webhook() {
    let cluster = RedisCluster::start_tls().await;
    let user = AclUser::documented("taskhooks-consumer");
    cluster.add_user(&user).await;
    let (urls, ca) = (cluster.urls_as(&user), cluster.ca_cert());
    let ca = ca.display().to_string();
    let (a, b) = two_consumers_with(&["--redis-cluster-urls", &urls, "--redis-ca-cert", &ca]).await;
    let (mut dashboard_a, mut dashboard_b) = (Dashboard::open(&a).await, Dashboard::open(&b).await);
    let tasks = batch("tls-cluster", 6);

    let (ready_status, ready) = a.get_json("/readyz").await;
    for (n, task) in tasks.iter().enumerate() {
        [&a, &b][n % 2].deliver(task).await;
    }

    assert_eq!(
        (ready_status, &ready["broker"]),
        (200, &json!("redis-cluster")),
        "{ready}"
    );
    let expected = totals_of(&tasks);
    assert_eq!(stats_totals(&a).await, expected);
    assert_eq!(stats_totals(&b).await, expected);
    dashboard_a.until(&expected).await;
    dashboard_b.until(&expected).await;
}

#[tokio::test]
async fn the_tls_cluster_password_shows_neither_in_the_debug_log_nor_in_help() {
    let cluster = RedisCluster::start_tls().await;
    let user = AclUser::documented("taskhooks-consumer");
    cluster.add_user(&user).await;
    let program = env!("CARGO_BIN_EXE_consumer");
    let args = ["--bind", "127.0.0.1:0", "--allow-unsigned"];

    let (log, shown) =
        assert_rediss_password_hidden(program, &args, &cluster.login_as(&user)).await;

    let line = format!("using the Redis Cluster at {shown} for pub/sub");
    assert!(log.contains(&line), "{log}");
}
