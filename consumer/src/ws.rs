//! `GET /ws`: one task per dashboard socket.
//!
//! The socket first gets a snapshot (totals, recent events, sequence number), then
//! the hub's events frames, which the hub paces and serialises once for every
//! socket ([`crate::hub`]). A socket that finds several frames waiting (its task ran
//! late: a busy process, a slow client) sends them as one, up to [`MAX_BATCH`]
//! events, so the slower a socket's turn comes the fewer and fuller its frames.
//! Events already in the snapshot are skipped by sequence number, so none is
//! counted twice. A socket whose client falls behind lags on the hub and is given a
//! fresh snapshot instead of an unbounded queue; one that stops answering pings is
//! dropped. When Redis is lost, the socket is told `{"type":"status","status":
//! "unavailable","error":…}`; the snapshot that follows its return says events flow
//! again.
//!
//! At most `--max-websockets` sockets are open at once (one more is refused with 503
//! before the upgrade); snapshots are shared by sockets that ask at the same time
//! ([`crate::snapshots`]); every frame sent, pings and pongs included, has
//! [`SEND_TIMEOUT`], so a client that stops reading cannot hold its task for ever.

use crate::error::ApiError;
use crate::frame::{Frame, compose};
use crate::hub::Fanout;
pub use crate::hub::{FLUSH_INTERVAL, MAX_BATCH};
use crate::snapshots::SharedSnapshots;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use bytestring::ByteString;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
    /// The last event the client has, by a frame or in its snapshot.
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
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return self.close(CloseCode::Away, "server shutting down").await,
                received = events.recv() => self.forward(received, &mut events, snapshots).await?,
                _ = heartbeat.tick() => self.heartbeat().await?,
                message = self.stream.recv() => self.handle_client(message).await?,
            }
        }
    }

    /// Acts on what the hub sent: frames, with any others already waiting sent as
    /// one (up to [`MAX_BATCH`] events a frame, at most two frames a call, so the
    /// loop still hears the client), then whatever came after them.
    async fn forward(
        &mut self,
        received: Result<Fanout, RecvError>,
        events: &mut Receiver<Fanout>,
        snapshots: &SharedSnapshots,
    ) -> Result<(), Ended> {
        let mut frames: Vec<Arc<Frame>> = Vec::new();
        let mut held = 0;
        let mut next = Some(received);
        while let Some(received) = next.take() {
            let frame = match received {
                Ok(Fanout::Frame(frame)) => frame,
                other => {
                    self.send_frames(&frames).await?;
                    return self.act(other, snapshots).await;
                }
            };
            let full = !frames.is_empty() && held + frame.len() > MAX_BATCH;
            if full {
                self.send_frames(&frames).await?;
                frames.clear();
                held = 0;
            }
            held += frame.len();
            frames.push(frame);
            if !full {
                next = waiting(events);
            }
        }
        self.send_frames(&frames).await
    }

    /// Acts on a hub message other than a frame.
    async fn act(
        &mut self,
        received: Result<Fanout, RecvError>,
        snapshots: &SharedSnapshots,
    ) -> Result<(), Ended> {
        match received {
            Ok(Fanout::Frame(frames)) => self.send_frames(&[frames]).await,
            Ok(Fanout::Resync) | Err(RecvError::Lagged(_)) => self.send_snapshot(snapshots).await,
            Ok(Fanout::Unavailable(reason)) => self.send_unavailable(&reason).await,
            Err(RecvError::Closed) => self.close(CloseCode::Away, "server shutting down").await,
        }
    }

    /// Sends the events of `frames` the client does not have yet, as one frame.
    async fn send_frames(&mut self, frames: &[Arc<Frame>]) -> Result<(), Ended> {
        let Some(last) = frames.last() else {
            return Ok(());
        };
        let text = compose(frames, self.last_seq);
        self.last_seq = self.last_seq.max(last.last_seq());
        match text {
            Some(text) => self.send(text).await,
            None => Ok(()), // all already in the snapshot this client has
        }
    }

    async fn send(&mut self, text: impl Into<ByteString>) -> Result<(), Ended> {
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
        self.last_seq = snapshot.seq;
        self.send(snapshot.to_message()).await
    }

    /// Tells the client that events have stopped flowing, and why; the next
    /// snapshot says they flow again.
    async fn send_unavailable(&mut self, reason: &str) -> Result<(), Ended> {
        let message =
            serde_json::json!({ "type": "status", "status": "unavailable", "error": reason });
        self.send(message.to_string()).await
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

/// The next hub message if one is already waiting, without waiting for one.
fn waiting(events: &mut Receiver<Fanout>) -> Option<Result<Fanout, RecvError>> {
    match events.try_recv() {
        Ok(message) => Some(Ok(message)),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
        Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
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
