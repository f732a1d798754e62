//! `GET /ws`: one task per dashboard socket.
//!
//! The socket first gets a snapshot (totals, recent events, sequence number), then
//! the hub's events frames, which the hub paces and serialises once for every
//! socket ([`crate::hub`]). Both are pulled by the connection ([`feed`]): a frame
//! is taken from the hub only once the previous one is written, and a socket whose
//! turn comes late takes every frame waiting (up to [`MAX_FRAME_BYTES`]) as one,
//! so the slower a socket, the fewer and fuller its frames, and the bytes held per
//! socket stay one frame. Events already in the snapshot are skipped by sequence
//! number, so none is counted twice. A socket whose client falls behind lags on the
//! hub and is given a fresh snapshot instead of an unbounded queue; one that stops
//! answering pings is dropped. When Redis is lost, the socket is told
//! `{"type":"status","status":"unavailable","error":…}`; the snapshot that follows
//! its return says events flow again.
//!
//! At most `--max-websockets` sockets are open at once (one more is refused with 503
//! before the upgrade); snapshots are shared by sockets that ask at the same time
//! ([`crate::snapshot_reads`]) and sent in fragments like events; every message the task
//! sends itself (pings, pongs) has [`SEND_TIMEOUT`], so a client that stops reading
//! cannot hold its task for ever.

mod feed;
mod frame_header;
mod write_buffer;

use crate::error::ApiError;
pub use crate::event::EventRow;
/// How every events frame begins: `{"type":"events","fields":[…],"events":[`.
pub use crate::events_frame::HEAD as EVENTS_FRAME_HEAD;
pub use crate::hub::{FLUSH_INTERVAL, MAX_FRAME_BYTES};
use crate::metrics::Closed;
use crate::snapshot_reads::SharedSnapshots;
use crate::state::AppState;
use actix_web::dev::Extensions;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, ProtocolError, Session};
use feed::{Feed, FeedControl};
use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
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

pub use write_buffer::{ACTIX_WRITE_BUFFER, WRITE_BUFFER_FILL};

/// The server's `on_connect` hook: turns off Nagle's algorithm on every connection.
/// A dashboard's frames are small and frequent; with Nagle on, a frame written while
/// the last one is unacknowledged waits for the client's (delayed) ACK, which
/// multiplied the latency from creation to socket (docs/benchmarks.md). Webhook
/// responses are one write each, so they lose nothing by it.
pub(crate) fn send_without_delay(connection: &dyn Any, _data: &mut Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Err(err) = tcp.set_nodelay(true)
    {
        tracing::debug!(%err, "TCP_NODELAY could not be set");
    }
}

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
    // Subscribed before the first snapshot is read, so no event falls between the two.
    let (response, session_body) = response.into_parts();
    let (feed, control) = Feed::new(session_body, state.hub.subscribe(), state.metrics.resyncs());
    let response = response.set_body(feed).map_into_boxed_body();
    let state = state.into_inner();
    // Counted before the handshake is answered, so a client that sees the upgrade
    // also sees itself in `/metrics`.
    let mut open = state.metrics.socket_opened();
    actix_web::rt::spawn(async move {
        let _permit = permit;
        let socket = Socket {
            session,
            stream,
            control,
            last_heard: Instant::now(),
        };
        let Ended { why, detail } = socket.run(&state.snapshots, &state.shutdown).await;
        open.ended(why);
        tracing::debug!(?why, %detail, "WebSocket closed");
    });
    Ok(response)
}

struct Socket {
    session: Session,
    stream: MessageStream,
    /// The socket's events feed: asks for snapshots, is told their `seq`.
    control: Arc<FeedControl>,
    last_heard: Instant,
}

/// Why a socket's task ended: the metrics' label and the debug log's words.
struct Ended {
    why: Closed,
    detail: String,
}

impl Ended {
    fn new(why: Closed, detail: impl Into<String>) -> Ended {
        Ended {
            why,
            detail: detail.into(),
        }
    }
}

impl Socket {
    /// Serves the socket until it ends, and says why it did.
    async fn run(mut self, snapshots: &SharedSnapshots, shutdown: &CancellationToken) -> Ended {
        let Err(ended) = self.serve(snapshots, shutdown).await;
        ended
    }

    /// The socket's loop: it only ever ends, with the reason.
    async fn serve(
        &mut self,
        snapshots: &SharedSnapshots,
        shutdown: &CancellationToken,
    ) -> Result<Infallible, Ended> {
        self.send_snapshot(snapshots).await?;
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    return Err(self.close(Closed::shutdown, CloseCode::Away, "server shutting down").await);
                }
                () = self.control.resync_asked() => self.send_snapshot(snapshots).await?,
                _ = heartbeat.tick() => self.heartbeat().await?,
                message = self.stream.recv() => self.handle_client(message).await?,
            }
        }
    }

    async fn send_snapshot(&mut self, snapshots: &SharedSnapshots) -> Result<(), Ended> {
        let snapshot = match snapshots.read().await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                let reason = format!("store unavailable: {err}");
                return Err(self
                    .close(Closed::store_unavailable, CloseCode::Again, &reason)
                    .await);
            }
        };
        // The feed sends it, then the events after its seq.
        self.control.send_snapshot(snapshot);
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<(), Ended> {
        if self.last_heard.elapsed() > CLIENT_TIMEOUT {
            return Err(self
                .close(Closed::no_pong, CloseCode::Policy, "no answer to pings")
                .await);
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
                let _ =
                    tokio::time::timeout(SEND_TIMEOUT, self.session.clone().close(reason)).await;
                Err(Ended::new(
                    Closed::client_closed,
                    "client closed the socket",
                ))
            }
            Some(Ok(_)) => Ok(()),
            // How actix reports a TCP end (FIN or reset) without a close frame.
            Some(Err(ProtocolError::Io(err))) => Err(Ended::new(
                Closed::connection_lost,
                format!("connection lost: {err}"),
            )),
            Some(Err(err)) => Err(Ended::new(
                Closed::protocol_error,
                format!("protocol error: {err}"),
            )),
            None => Err(Ended::new(Closed::connection_lost, "connection ended")),
        }
    }

    /// Sends a close frame with `code` and `description`: the socket ends for `why`.
    async fn close(&mut self, why: Closed, code: CloseCode, description: &str) -> Ended {
        let reason = CloseReason {
            code,
            description: Some(description.to_owned()),
        };
        // Bounded like any frame we send: a full queue must not hold the task for ever.
        let _ = tokio::time::timeout(SEND_TIMEOUT, self.session.clone().close(Some(reason))).await;
        Ended::new(why, description)
    }
}

/// Waits for one frame to be taken by the connection, at most [`SEND_TIMEOUT`].
async fn within_send_timeout(
    send: impl Future<Output = Result<(), actix_ws::Closed>>,
) -> Result<(), Ended> {
    match tokio::time::timeout(SEND_TIMEOUT, send).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_closed)) => Err(Ended::new(Closed::connection_lost, "client went away")),
        Err(_) => Err(Ended::new(
            Closed::too_slow,
            "client too slow to take a frame",
        )),
    }
}
