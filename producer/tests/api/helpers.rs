//! Test harness: a producer on port 0 aimed at a test [`Receiver`], calls to its
//! API, and a Server-Sent Events client.

pub use crate::receiver::{Receiver, Reply};
use clap::Parser as _;
use producer::{Application, Config};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use taskhooks_shared::testing::TestClient;
pub use taskhooks_shared::testing::{WAIT, eventually, eventually_within, http_client};

/// A running producer.
pub struct TestApp {
    pub http: TestClient,
    pub shutdown: CancellationToken,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A test app is used as its client: `app.call(…)`, `app.address`.
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

/// The flags every test producer gets: port 0, aimed at `receiver`, no pacing
/// and quick retries unless `extra` says otherwise (later flags win).
pub fn config(receiver: &Receiver, extra: &[&str]) -> Config {
    let secret = receiver.secret.to_whsec();
    let mut args = vec![
        "producer",
        "--bind",
        "127.0.0.1:0",
        "--target",
        &receiver.url,
    ];
    args.extend([
        "--webhook-secret",
        &secret,
        "--pace-ms",
        "0",
        "--retry-backoff-ms",
        "20",
    ]);
    args.extend_from_slice(extra);
    Config::try_parse_from(args).expect("test arguments parse")
}

/// Runs `scenario` once for each store a producer can keep its batches in: in
/// memory, then in a real Redis (started here). It gets the flags that choose
/// the store; [`flags`] adds its own.
pub async fn on_each_store<F, Fut>(scenario: F)
where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    scenario(Vec::new()).await;
    let redis = taskhooks_shared::testing::RedisServer::start();
    let url = redis.url();
    scenario(redis_flags(&url).iter().map(|f| f.to_string()).collect()).await;
}

/// The flags of a producer keeping its batches in the Redis at `url`: tasks of a
/// dead producer are claimed after a second, so tests need not wait the
/// default 30 s.
pub fn redis_flags(url: &str) -> [&str; 4] {
    ["--redis-url", url, "--claim-after", "1s"]
}

/// A store's flags followed by `extra`.
pub fn flags<'a>(store: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    store
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect()
}

/// A producer sending to `receiver`.
pub async fn spawn_app(receiver: &Receiver, extra: &[&str]) -> TestApp {
    spawn_with(config(receiver, extra)).await
}

/// A producer with this configuration.
pub async fn spawn_with(config: Config) -> TestApp {
    let app = Application::build(config).await.expect("producer builds");
    let port = app.port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        http: TestClient::new(port),
        shutdown,
        server: Some(server),
    }
}

/// What `POST /producetasks` answered.
#[derive(Debug, Clone)]
pub struct Started {
    pub batchid: String,
    pub total: u64,
    pub events_url: String,
    pub stop_url: String,
}

impl TestApp {
    /// Starts a batch with this JSON body and checks the 202.
    pub async fn start(&self, body: Value) -> Started {
        let (status, json) = self
            .call("POST", "/producetasks", Some(&body.to_string()))
            .await;
        assert_eq!(status, 202, "{json}");
        let text = |key: &str| json[key].as_str().expect("a string field").to_owned();
        Started {
            batchid: text("batchid"),
            total: json["total"].as_u64().expect("total"),
            events_url: text("events_url"),
            stop_url: text("stop_url"),
        }
    }

    /// Opens a batch's event stream, resuming after `last_event_id` if given.
    pub async fn events(&self, started: &Started, last_event_id: Option<u64>) -> SseClient {
        let id = last_event_id.map(|id| id.to_string());
        self.events_from(started, id.as_deref()).await
    }

    /// Opens a batch's event stream, resuming after this opaque event id if given.
    pub async fn events_from(&self, started: &Started, last_event_id: Option<&str>) -> SseClient {
        let mut request = self
            .client
            .get(format!("{}{}", self.address, started.events_url));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("the stream opens");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseClient {
            response,
            buffer: String::new(),
        }
    }

    /// All events of a batch from the start through `done`.
    pub async fn all_events(&self, started: &Started) -> Vec<SseEvent> {
        self.events(started, None).await.until_done().await
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The id as a number (memory mode); 0 when it is not one.
    pub id: u64,
    /// The id as sent (opaque: a Redis stream entry id in durable mode).
    pub raw_id: String,
    pub event: String,
    pub data: Value,
}

/// A streaming SSE reader.
pub struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

impl SseClient {
    /// The next event (comments skipped), or `None` when the stream ends.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("an event in time")
                .expect("the stream reads")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// Events up to and including `done`; then the stream must end.
    pub async fn until_done(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        loop {
            let event = self
                .next_event()
                .await
                .expect("the stream goes on until done");
            let done = event.event == "done";
            events.push(event);
            if done {
                assert_eq!(self.next_event().await, None, "the stream ends after done");
                return events;
            }
        }
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(v).expect("JSON data"));
        }
    }
    let raw_id: String = id?;
    Some(SseEvent {
        id: raw_id.parse().unwrap_or(0),
        raw_id,
        event: event?,
        data: data?,
    })
}

/// The final `task` event of each task, in task id order.
pub fn final_states(events: &[SseEvent]) -> Vec<Value> {
    let mut finals: Vec<Value> = events
        .iter()
        .filter(|e| e.event == "task")
        .filter(|e| {
            matches!(
                e.data["state"].as_str(),
                Some("delivered" | "failed" | "cancelled")
            )
        })
        .map(|e| e.data.clone())
        .collect();
    finals.sort_by_key(|d| d["task"]["id"].as_u64());
    finals
}

/// The `done` event's data.
pub fn done(events: &[SseEvent]) -> Value {
    let last = events.last().expect("some events");
    assert_eq!(last.event, "done");
    last.data.clone()
}
