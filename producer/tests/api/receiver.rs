//! The test receiver: a webhook endpoint on port 0 that verifies each request's
//! signature with `shared`, records it into a channel, and answers from a script.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use taskhooks_shared::signing::{self, ReceivedHeaders, unix_now};
use taskhooks_shared::testing::WAIT;
use taskhooks_shared::{Secret, SigningError, Task};
use tokio::sync::mpsc;

/// One scripted answer of the receiver.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub retry_after: Option<&'static str>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
            retry_after: None,
        }
    }

    pub fn ok() -> Reply {
        Reply::status(200)
    }

    /// Answers only after `delay` (to make an attempt time out).
    pub fn after(self, delay: Duration) -> Reply {
        Reply { delay, ..self }
    }

    pub fn retry_after(self, value: &'static str) -> Reply {
        Reply {
            retry_after: Some(value),
            ..self
        }
    }
}

/// A request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: Option<String>,
    pub content_type: Option<String>,
    /// The signature check against the receiver's secret.
    pub verified: Result<String, SigningError>,
    pub task: Option<Task>,
    pub at: Instant,
}

#[derive(Clone)]
struct ReceiverState {
    secret: Secret,
    script: Arc<Mutex<VecDeque<Reply>>>,
    requests: mpsc::UnboundedSender<Received>,
}

/// A webhook receiver on 127.0.0.1:0 answering from a script (then 200s).
pub struct Receiver {
    pub url: String,
    pub secret: Secret,
    requests: mpsc::UnboundedReceiver<Received>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    Some(req.headers().get(name)?.to_str().ok()?.to_owned())
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<ReceiverState>,
) -> HttpResponse {
    let (id, timestamp, signature) = (
        header(&req, signing::HEADER_ID),
        header(&req, signing::HEADER_TIMESTAMP),
        header(&req, signing::HEADER_SIGNATURE),
    );
    let headers = ReceivedHeaders {
        id: id.as_deref(),
        timestamp: timestamp.as_deref(),
        signature: signature.as_deref(),
    };
    let verified = state
        .secret
        .verify(headers, &body, unix_now())
        .map(str::to_owned);
    let received = Received {
        webhook_id: id.clone(),
        content_type: header(&req, "content-type"),
        verified,
        task: serde_json::from_slice(&body).ok(),
        at: Instant::now(),
    };
    let _ = state.requests.send(received);
    let reply = state
        .script
        .lock()
        .expect("script lock")
        .pop_front()
        .unwrap_or_else(Reply::ok);
    tokio::time::sleep(reply.delay).await;
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(reply.status).expect("a valid status"),
    );
    if let Some(value) = reply.retry_after {
        response.insert_header(("retry-after", value));
    }
    if reply.status < 300 {
        response.json(serde_json::json!({ "status": "published" }))
    } else {
        response.json(serde_json::json!({ "error": format!("scripted {}", reply.status) }))
    }
}

impl Receiver {
    /// Starts a receiver with a fresh secret answering `script` first.
    pub async fn start(script: impl IntoIterator<Item = Reply>) -> Receiver {
        let secret = Secret::generate();
        let (tx, requests) = mpsc::unbounded_channel();
        let state = web::Data::new(ReceiverState {
            secret: secret.clone(),
            script: Arc::new(Mutex::new(script.into_iter().collect())),
            requests: tx,
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .expect("listens")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/consumetasks"),
            secret,
            requests,
            handle,
        }
    }

    /// The next request, failing after [`WAIT`].
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .expect("a request in time")
            .expect("the receiver is running")
    }

    /// The next `n` requests.
    pub async fn take(&mut self, n: usize) -> Vec<Received> {
        let mut all = Vec::with_capacity(n);
        for _ in 0..n {
            all.push(self.next().await);
        }
        all
    }

    /// Every request that arrives until none has for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Received> {
        let mut all = Vec::new();
        while let Ok(Some(request)) = tokio::time::timeout(quiet, self.requests.recv()).await {
            all.push(request);
        }
        all
    }

    /// Fails if any request arrives within `quiet`: proves nothing more is sent.
    pub async fn assert_no_more_within(&mut self, quiet: Duration) {
        if let Ok(Some(extra)) = tokio::time::timeout(quiet, self.requests.recv()).await {
            panic!("unexpected request: {extra:?}");
        }
    }
}
