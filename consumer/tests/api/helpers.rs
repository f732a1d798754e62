//! Test harness: spawn a consumer, sign and post tasks, read its WebSocket.

use clap::Parser as _;
use consumer::{Application, Config};
use futures_util::StreamExt as _;
use serde_json::Value;
use taskhooks_shared::signing::{self, unix_now};
use taskhooks_shared::testing::{RedisServer, TestClient, named_events};
use taskhooks_shared::{Priority, Secret, Task};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub use taskhooks_shared::testing::{WAIT, eventually, eventually_within, http_client};

/// A running consumer.
pub struct TestApp {
    pub http: TestClient,
    pub port: u16,
    pub secret: Secret,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A test app is used as its client: `app.get(…)`, `app.address`.
impl std::ops::Deref for TestApp {
    type Target = TestClient;
    fn deref(&self) -> &TestClient {
        &self.http
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A connection of the test's own to `redis`, to read or set what the consumer keeps there.
pub async fn redis_connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers")
}

/// A consumer with a fresh secret, on `redis` (or the in-process broker).
pub async fn spawn_app(redis: Option<&RedisServer>) -> TestApp {
    let secret = Secret::generate();
    let mut args = vec!["--webhook-secret".to_owned(), secret.to_whsec()];
    if let Some(redis) = redis {
        args.extend(["--redis-url".to_owned(), redis.url()]);
    }
    spawn_app_with(secret, &args).await
}

/// A consumer with extra command-line arguments.
pub async fn spawn_app_with(secret: Secret, extra: &[String]) -> TestApp {
    let app = Application::build(config(extra))
        .await
        .expect("consumer builds");
    let port = app.port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        http: TestClient::new(port),
        port,
        secret,
        shutdown,
        server,
    }
}

/// A configuration as the command line would give it, bound to a free port.
pub fn config(extra: &[String]) -> Config {
    let mut args = vec!["consumer".to_owned(), "--bind".into(), "127.0.0.1:0".into()];
    args.extend_from_slice(extra);
    Config::try_parse_from(args).expect("test arguments parse")
}

/// The task ids of a snapshot's `recent` list, in its order (newest first).
pub fn recent_ids(snapshot: &Value) -> Vec<u64> {
    snapshot["recent"]
        .as_array()
        .expect("recent array")
        .iter()
        .map(|event| event["task"]["id"].as_u64().expect("task id"))
        .collect()
}

/// A task of batch `batch`.
pub fn task(batch: &str, id: u64, priority: Priority) -> Task {
    Task {
        batchid: batch.to_owned(),
        id,
        owner: format!("Owner {id}"),
        priority,
        created_at: None,
    }
}

impl TestApp {
    /// POSTs `body` signed with this app's secret under `webhook_id`.
    pub async fn post_signed(&self, webhook_id: &str, body: Vec<u8>) -> reqwest::Response {
        self.post_signed_as(webhook_id, "application/json", body)
            .await
    }

    /// POSTs `body` as `content_type`, signed with this app's secret under `webhook_id`.
    pub async fn post_signed_as(
        &self,
        webhook_id: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let headers = self.secret.headers(webhook_id, unix_now(), &body);
        self.client
            .post(format!("{}/consumetasks", self.address))
            .header("content-type", content_type)
            .header(signing::HEADER_ID, headers.id)
            .header(signing::HEADER_TIMESTAMP, headers.timestamp.to_string())
            .header(signing::HEADER_SIGNATURE, headers.signature)
            .body(body)
            .send()
            .await
            .expect("request is sent")
    }

    /// POSTs one task with a webhook id derived from it.
    pub async fn post_task(&self, task: &Task) -> reqwest::Response {
        let id = format!("msg_{}_{}", task.batchid, task.id);
        self.post_signed(&id, serde_json::to_vec(task).expect("task serialises"))
            .await
    }

    /// Delivers one task as a sender does: posts it, and posts it again (same
    /// webhook id) for as long as the consumer answers 503, failing after [`WAIT`].
    /// A busy machine can make Redis slower than the consumer's timeout, and a 503
    /// that is retried is the contract, not a failure.
    pub async fn deliver(&self, task: &Task) {
        eventually("the consumer to accept a task", || async {
            let status = self.post_task(task).await.status().as_u16();
            assert!(matches!(status, 200 | 503), "status {status}");
            (status == 200).then_some(())
        })
        .await;
    }

    /// `GET /api/stats`.
    pub async fn stats(&self) -> Value {
        let (status, body) = self.get_json("/api/stats").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .await
            .text()
            .await
            .expect("metrics text")
    }

    /// One sample of the consumer's `/metrics`: `name` after the
    /// `taskhooks_consumer_` prefix, labels included; 0 when it has none.
    pub async fn counter(&self, name: impl AsRef<str>) -> u64 {
        let sample = format!("taskhooks_consumer_{} ", name.as_ref());
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(&sample))
            .map_or(0, |n| n.trim().parse().expect("a count"))
    }

    /// Opens the dashboard WebSocket.
    pub async fn websocket(&self) -> WsClient {
        let url = format!("ws://127.0.0.1:{}/ws", self.port);
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connects");
        WsClient { stream }
    }
}

/// A dashboard's WebSocket, read the way the page reads it.
pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// The next JSON text message, failing after [`WAIT`], each event in it (the
    /// arrays of an events frame's `events` or a snapshot's `recent`) turned into
    /// `{"seq":N,"task":{…}}` by the message's `fields`, as the page does.
    pub async fn next_json(&mut self) -> Value {
        let text = self.next_text().await;
        named_events(serde_json::from_str(&text).expect("JSON message"))
    }

    /// The next text message as it came, failing after [`WAIT`].
    pub async fn next_text(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("a WebSocket message in time")
                .expect("the socket is open")
                .expect("a valid frame");
            match frame {
                Message::Text(text) => return text.to_string(),
                Message::Close(frame) => panic!("socket closed: {frame:?}"),
                _ => continue, // pings are answered by tungstenite itself
            }
        }
    }

    /// The next message, which must be a snapshot.
    pub async fn snapshot(&mut self) -> Value {
        let message = self.next_json().await;
        assert_eq!(message["type"], "snapshot", "{message}");
        message
    }

    /// Tasks from `events` messages until `n` have arrived; a snapshot fails the test.
    pub async fn tasks(&mut self, n: usize) -> Vec<Task> {
        let mut tasks = Vec::new();
        while tasks.len() < n {
            let message = self.next_json().await;
            assert_eq!(
                message["type"], "events",
                "expected live events, got {message}"
            );
            for event in message["events"].as_array().expect("events array") {
                tasks.push(serde_json::from_value(event["task"].clone()).expect("a task"));
            }
        }
        tasks
    }
}

/// Opens `/ws` on `port` with the header `name` set to `value` (an `Origin` or a
/// `Host`): `Ok(())`, or the refusal's status and body.
pub async fn open_ws_with(port: u16, name: &str, value: &str) -> Result<(), (u16, String)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::{Error as WsError, http::HeaderValue};
    let mut request = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .expect("a request");
    let value = HeaderValue::from_str(value).expect("a header value");
    let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
        .expect("a header name");
    request.headers_mut().insert(name, value);
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            Err((
                response.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            ))
        }
        Err(other) => panic!("unexpected failure: {other}"),
    }
}
