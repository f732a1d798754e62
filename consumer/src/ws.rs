//! `GET /ws`: one task per dashboard socket.
//!
//! The socket first gets a snapshot (totals, recent events, sequence number), then
//! the events after it, in batches at most every [`FLUSH_INTERVAL`]. Events already
//! in the snapshot are skipped by sequence number, so none is counted twice. A
//! socket whose client falls behind lags on the hub and is given a fresh snapshot
//! instead of an unbounded queue; one that stops answering pings is dropped. When
//! Redis is lost, the socket is told `{"type":"status","status":"unavailable",
//! "error":…}`; the snapshot that follows its return says events flow again.
//!
//! At most `--max-websockets` sockets are open at once (one more is refused with 503
//! before the upgrade); snapshots are shared by sockets that ask at the same time
//! ([`crate::snapshots`]); every frame sent, pings and pongs included, has
//! [`SEND_TIMEOUT`], so a client that stops reading cannot hold its task for ever.

use crate::error::ApiError;
use crate::hub::{Event, HubMessage};
use crate::snapshots::SharedSnapshots;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use serde_json::value::RawValue;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Longest wait before pending events are sent: 50 ms keeps the page live while
/// turning thousands of events a second into 20 frames.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Most events in one frame; a burst beyond it is sent at once in several frames.
pub(crate) const MAX_BATCH: usize = 500;
/// How often the server pings.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A client silent for this long is considered gone.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);
/// A frame the client does not take within this time closes the socket.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame accepted from a client (clients only send pongs and closes).
const MAX_CLIENT_FRAME: usize = 4 * 1024;

/// Upgrades the request and spawns the socket's task.
pub(crate) async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (response, session, stream) =
        actix_ws::handle(&req, body).map_err(|err| ApiError::NotWebSocket(err.to_string()))?;
    let permit = state.websockets.clone().try_acquire_owned().map_err(|_| {
        state.metrics.socket_refused();
        ApiError::TooManyWebSockets {
            limit: state.max_websockets,
        }
    })?;
    let stream = stream.max_frame_size(MAX_CLIENT_FRAME);
    let state = state.into_inner();
    // Counted before the handshake is answered, so a client that sees the upgrade
    // also sees itself in `/metrics`.
    let open = state.metrics.socket_opened();
    actix_web::rt::spawn(async move {
        let _open = (open, permit);
        let socket = Socket {
            session,
            stream,
            pending: Vec::new(),
            last_seq: 0,
            last_heard: Instant::now(),
        };
        if let Err(reason) = socket
            .run(&state.snapshots, &state.hub, &state.shutdown)
            .await
        {
            tracing::debug!(%reason, "WebSocket closed");
        }
    });
    Ok(response)
}

struct Socket {
    session: Session,
    stream: MessageStream,
    pending: Vec<Event>,
    last_seq: u64,
    last_heard: Instant,
}

/// Why a socket's task ended, for the debug log.
type Ended = String;

impl Socket {
    async fn run(
        mut self,
        snapshots: &SharedSnapshots,
        hub: &crate::hub::Hub,
        shutdown: &CancellationToken,
    ) -> Result<(), Ended> {
        // Subscribe before reading the snapshot, so no event falls between the two.
        let mut events = hub.subscribe();
        self.send_snapshot(snapshots).await?;
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return self.close(CloseCode::Away, "server shutting down").await,
                received = events.recv() => match received {
                    Ok(HubMessage::Event(event)) => self.queue(event).await?,
                    Ok(HubMessage::Resync) | Err(RecvError::Lagged(_)) => self.send_snapshot(snapshots).await?,
                    Ok(HubMessage::Unavailable(reason)) => self.send_unavailable(&reason).await?,
                    Err(RecvError::Closed) => return self.close(CloseCode::Away, "server shutting down").await,
                },
                _ = flush.tick(), if !self.pending.is_empty() => self.flush().await?,
                _ = heartbeat.tick() => self.heartbeat().await?,
                message = self.stream.recv() => self.handle_client(message).await?,
            }
        }
    }

    async fn send(&mut self, text: String) -> Result<(), Ended> {
        within_send_timeout(self.session.text(text)).await
    }

    async fn send_snapshot(&mut self, snapshots: &SharedSnapshots) -> Result<(), Ended> {
        let snapshot = match snapshots.read().await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                let reason = format!("store unavailable: {err}");
                self.close(CloseCode::Again, &reason).await?;
                return Err(reason);
            }
        };
        self.pending.clear();
        self.last_seq = snapshot.seq;
        self.send(snapshot.to_message()).await
    }

    /// Tells the client that events have stopped flowing, and why; the next
    /// snapshot says they flow again.
    async fn send_unavailable(&mut self, reason: &str) -> Result<(), Ended> {
        self.flush().await?;
        let message =
            serde_json::json!({ "type": "status", "status": "unavailable", "error": reason });
        self.send(message.to_string()).await
    }

    async fn queue(&mut self, event: Event) -> Result<(), Ended> {
        if event.seq <= self.last_seq {
            return Ok(()); // already in the snapshot this client has
        }
        self.last_seq = event.seq;
        self.pending.push(event);
        if self.pending.len() >= MAX_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends the pending events as one frame; nothing when none are pending.
    async fn flush(&mut self) -> Result<(), Ended> {
        if self.pending.is_empty() {
            return Ok(());
        }
        #[derive(serde::Serialize)]
        struct EventsFrame<'a> {
            r#type: &'static str,
            events: Vec<&'a RawValue>,
        }
        let frame = EventsFrame {
            r#type: "events",
            events: self.pending.iter().map(|event| &*event.json).collect(),
        };
        // unwrap: JSON already checked always serialises.
        #[allow(clippy::unwrap_used)]
        let text = serde_json::to_string(&frame).unwrap();
        self.pending.clear();
        self.send(text).await
    }

    async fn heartbeat(&mut self) -> Result<(), Ended> {
        if self.last_heard.elapsed() > CLIENT_TIMEOUT {
            self.close(CloseCode::Policy, "no answer to pings").await?;
            return Err("client stopped answering pings".into());
        }
        within_send_timeout(self.session.ping(b"")).await
    }

    async fn handle_client(
        &mut self,
        message: Option<Result<Message, actix_ws::ProtocolError>>,
    ) -> Result<(), Ended> {
        self.last_heard = Instant::now();
        match message {
            Some(Ok(Message::Ping(bytes))) => within_send_timeout(self.session.pong(&bytes)).await,
            Some(Ok(Message::Close(reason))) => {
                let _ = self.session.clone().close(reason).await;
                Err("client closed the socket".into())
            }
            Some(Ok(_)) => Ok(()),
            Some(Err(err)) => Err(format!("protocol error: {err}")),
            None => Err("connection ended".into()),
        }
    }

    async fn close(&mut self, code: CloseCode, description: &str) -> Result<(), Ended> {
        let reason = CloseReason {
            code,
            description: Some(description.to_owned()),
        };
        let _ = self.session.clone().close(Some(reason)).await;
        Err(description.to_owned())
    }
}

/// Waits for one frame to be taken by the connection, at most [`SEND_TIMEOUT`].
async fn within_send_timeout(
    send: impl Future<Output = Result<(), actix_ws::Closed>>,
) -> Result<(), Ended> {
    match tokio::time::timeout(SEND_TIMEOUT, send).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_closed)) => Err("client went away".into()),
        Err(_) => Err("client too slow to take a frame".into()),
    }
}
