//! Capacity: caps on connections and dashboards, a dashboard that never reads, and
//! what many sockets asking at once cost the store.

use crate::helpers::{
    TestApp, WAIT, eventually, eventually_within, redis_connection, spawn_app, spawn_app_with, task,
};
use crate::raw::{calls, head, read_response, upgrade_head};
use consumer::broker::{Broker, redis::RedisBroker};
use consumer::snapshot_reads::SharedSnapshots;
use consumer::ws::SEND_TIMEOUT;
use std::time::Duration;
use taskhooks_shared::testing::RedisServer;
use taskhooks_shared::{Priority, Secret};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[tokio::test]
async fn websockets_over_the_cap_get_503_json_before_the_upgrade() {
    let args = ["--max-websockets".to_owned(), "2".to_owned()];
    let secret = Secret::generate();
    let mut full = vec!["--webhook-secret".to_owned(), secret.to_whsec()];
    full.extend(args);
    let app = spawn_app_with(secret, &full).await;
    let mut first = app.websocket().await;
    let mut second = app.websocket().await;
    first.snapshot().await;
    second.snapshot().await;

    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connects");
    stream.write_all(&upgrade_head()).await.expect("sent");
    let (status, head, body) = read_response(&mut stream).await;

    assert_eq!(status, 503, "{body}");
    assert!(!head.contains("upgrade: websocket"), "{head}");
    let error = body["error"].as_str().expect("an error message");
    assert!(error.contains("2 dashboards"), "{error}");
    assert!(
        app.metrics()
            .await
            .contains("taskhooks_consumer_websockets_refused_total 1\n")
    );
    drop(first);
    eventually("a freed slot lets a new dashboard in", || async {
        let url = format!("ws://127.0.0.1:{}/ws", app.port);
        tokio_tungstenite::connect_async(url).await.ok().map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn a_client_that_pings_but_never_reads_is_dropped_within_the_send_timeout() {
    let app = spawn_app(None).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("a small receive buffer");
    let addr = format!("127.0.0.1:{}", app.port)
        .parse()
        .expect("an address");
    let mut stream = socket.connect(addr).await.expect("connects");
    stream
        .write_all(&upgrade_head())
        .await
        .expect("handshake sent");
    let mut response = [0u8; 12];
    stream
        .read_exact(&mut response)
        .await
        .expect("handshake answer");
    assert_eq!(&response[9..12], b"101");
    let gauge = |text: String| {
        text.lines().find_map(|l| {
            l.strip_prefix("taskhooks_consumer_websocket_clients ")?
                .parse::<u64>()
                .ok()
        })
    };
    assert_eq!(gauge(app.metrics().await), Some(1));

    // Masked ping frames with a 125-byte payload (a zero mask leaves it as is),
    // written until the server stops reading or closes; never a byte read back.
    let mut ping = vec![0x89, 0x80 | 125, 0, 0, 0, 0];
    ping.extend([b'p'; 125]);
    let pings: Vec<u8> = ping.repeat(1000);
    let flood = tokio::spawn(async move {
        for _ in 0..1000 {
            if stream.write_all(&pings).await.is_err() {
                break;
            }
        }
        stream
    });

    eventually_within(
        SEND_TIMEOUT + WAIT,
        "the stalled socket's task to end",
        || async { (gauge(app.metrics().await) == Some(0)).then_some(()) },
    )
    .await;
    flood.abort();
}

#[tokio::test]
async fn a_hundred_sockets_asking_at_once_share_two_snapshot_reads() {
    let redis = RedisServer::start();
    let broker = Broker::Redis(
        RedisBroker::new(
            taskhooks_shared::redis_client::RedisClient::open(&redis.url()).expect("a Redis URL"),
            "shared",
        )
        .expect("a broker"),
    );
    broker
        .accept(Some("msg_1"), &task("b", 1, Priority::Low))
        .await
        .expect("accepted");
    let snapshots = SharedSnapshots::new(broker);
    let mut conn = redis_connection(&redis).await;
    snapshots
        .read()
        .await
        .expect("a first read loads the script");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .expect("reset");

    let reads = futures_util::future::join_all((0..100).map(|_| snapshots.read())).await;

    assert!(
        reads
            .iter()
            .all(|r| r.as_ref().is_ok_and(|s| s.seq == 1 && s.totals.sum() == 1))
    );
    assert!(
        calls(&mut conn, &["evalsha", "eval"]).await <= 2,
        "one read in flight and one for all who asked during it"
    );
}

#[tokio::test]
async fn sockets_connecting_while_tasks_arrive_end_with_exact_totals() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    const TASKS: u64 = 150;
    let posting = async {
        for id in 0..TASKS {
            assert_eq!(
                app.post_task(&task("b", id, Priority::Major))
                    .await
                    .status(),
                200
            );
        }
    };
    let connecting = futures_util::future::join_all((0..20).map(|_| async {
        let mut ws = app.websocket().await;
        let snapshot = ws.snapshot().await;
        (ws, snapshot["totals"]["Major"].as_u64().expect("a total"))
    }));

    let ((), sockets) = tokio::join!(posting, connecting);

    for (mut ws, in_snapshot) in sockets {
        let live = ws.tasks((TASKS - in_snapshot) as usize).await.len() as u64;
        assert_eq!(
            in_snapshot + live,
            TASKS,
            "snapshot {in_snapshot} + live {live}"
        );
    }
}

#[tokio::test]
async fn stats_read_the_totals_without_the_recent_list() {
    let redis = RedisServer::start();
    let app = spawn_app(Some(&redis)).await;
    assert_eq!(
        app.post_task(&task("b", 1, Priority::Low)).await.status(),
        200
    );
    let mut conn = redis_connection(&redis).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .expect("reset");

    let stats = app.stats().await;

    assert_eq!(stats["totals"]["Low"], 1, "{stats}");
    assert_eq!(calls(&mut conn, &["hgetall"]).await, 1);
    assert_eq!(calls(&mut conn, &["lrange"]).await, 0);
}

/// An HTTP/1.1 request on its own connection, answered: the connection stays open.
async fn kept_alive(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connects");
    stream
        .write_all(&head("GET /healthz", &[]))
        .await
        .expect("sent");
    let (status, _, _) = read_response(&mut stream).await;
    assert_eq!(status, 200);
    stream
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let secret = Secret::generate();
    let args = [
        "--webhook-secret".to_owned(),
        secret.to_whsec(),
        "--max-connections".to_owned(),
        "2".to_owned(),
    ];
    let app = spawn_app_with(secret, &args).await;
    // The cap is shared evenly among the workers, rounded up.
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let cap = 2usize.div_ceil(workers) * workers;
    let mut open = Vec::new();
    for _ in 0..cap {
        open.push(kept_alive(&app).await);
    }

    let mut waiting = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("the kernel queues it");
    waiting
        .write_all(&head("GET /healthz", &[]))
        .await
        .expect("sent");
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_secs(1), waiting.peek(&mut byte)).await;
    assert!(early.is_err(), "a connection over the cap is not served");
    drop(open.pop());
    let (status, _, _) = read_response(&mut waiting).await;

    assert_eq!(status, 200, "served once a connection closed");
}
