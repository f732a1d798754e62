//! `GET /ws`: one task per dashboard socket.
//!
//! The socket first gets a snapshot (totals, recent events, sequence number), then
//! the events after it. An event that finds the socket idle (no events frame in the
//! last flush interval, `--ws-flush-interval`, [`FLUSH_INTERVAL`] by default) is sent
//! at once; under load events are held and sent together once the interval since the
//! last frame has passed ([`due`]), so a burst costs the browser at most about one
//! frame per interval. Events already
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
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// The default least time between two events frames of one socket
/// (`--ws-flush-interval`): 50 ms turns thousands of events a second into at most
/// about 20 frames, the browser's budget, while an idle socket's event goes at once.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// The longest `--ws-flush-interval` accepted: past it a dashboard is no longer live.
const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(3600);
/// Most events in one frame; a burst beyond it is sent at once in several frames.
pub const MAX_BATCH: usize = 500;
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
            flush_interval: state.flush_interval,
            last_frame: None,
            flush_timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
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
    /// The least time between two events frames.
    flush_interval: Duration,
    /// When the last events frame was sent; snapshots do not count.
    last_frame: Option<Instant>,
    /// Fires when pending events are [`due`]; reset at each events frame. One timer
    /// per socket, not one per event: a burst must not cost a timer entry per event.
    flush_timer: Pin<Box<Sleep>>,
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
                received = events.recv() => match received {
                    Ok(HubMessage::Event(event)) => self.queue(event).await?,
                    Ok(HubMessage::Resync) | Err(RecvError::Lagged(_)) => self.send_snapshot(snapshots).await?,
                    Ok(HubMessage::Unavailable(reason)) => self.send_unavailable(&reason).await?,
                    Err(RecvError::Closed) => return self.close(CloseCode::Away, "server shutting down").await,
                },
                () = &mut self.flush_timer, if !self.pending.is_empty() => self.flush().await?,
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
        let idle = due(self.last_frame, Instant::now(), self.flush_interval).is_none();
        if idle || self.pending.len() >= MAX_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends the pending events as one frame; nothing when none are pending. The
    /// next frame is then due one flush interval from now.
    async fn flush(&mut self) -> Result<(), Ended> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        self.last_frame = Some(now);
        self.flush_timer.as_mut().reset(now + self.flush_interval);
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

/// When pending events may be sent, given when the last events frame went out:
/// `None` for at once (none yet, or the interval has passed since), else the
/// instant the interval since it ends. The rule that keeps an idle socket live and
/// a busy one within the browser's budget of frames.
fn due(last_frame: Option<Instant>, now: Instant, interval: Duration) -> Option<Instant> {
    let next = last_frame? + interval;
    (next > now).then_some(next)
}

/// Parses `--ws-flush-interval`: a duration with units (`50ms`, `1s`), from 0 (every
/// event in its own frame, no coalescing) to one hour.
pub(crate) fn parse_flush_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text)
        .map_err(|err| format!("{err}: give a duration with units, for example 50ms"))?;
    if interval > MAX_FLUSH_INTERVAL {
        return Err(format!(
            "{text} is over 1h: a dashboard would not be live; the default is 50ms"
        ));
    }
    Ok(interval)
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

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(50);

    #[test]
    fn the_first_events_of_a_socket_are_due_at_once() {
        assert_eq!(due(None, Instant::now(), INTERVAL), None);
    }

    #[test]
    fn events_after_a_quiet_interval_are_due_at_once() {
        let sent = Instant::now();
        assert_eq!(due(Some(sent), sent + INTERVAL, INTERVAL), None);
        assert_eq!(due(Some(sent), sent + 3 * INTERVAL, INTERVAL), None);
    }

    #[test]
    fn events_soon_after_a_frame_wait_for_the_interval_to_end() {
        let sent = Instant::now();
        let soon = sent + Duration::from_millis(1);
        assert_eq!(due(Some(sent), sent, INTERVAL), Some(sent + INTERVAL));
        assert_eq!(due(Some(sent), soon, INTERVAL), Some(sent + INTERVAL));
    }

    #[test]
    fn a_zero_interval_sends_every_event_at_once() {
        let sent = Instant::now();
        assert_eq!(due(Some(sent), sent, Duration::ZERO), None);
    }

    /// The rule as the socket's loop applies it: an event goes out at once when due,
    /// else pending events go out when the timer set at the last frame fires.
    #[test]
    fn a_steady_burst_gets_about_one_frame_per_interval() {
        let start = Instant::now();
        let (mut last_frame, mut pending, mut frames) = (None, 0, 0);
        for ms in 0..1000 {
            let now = start + Duration::from_millis(ms);
            if pending > 0 && due(last_frame, now, INTERVAL).is_none() {
                (last_frame, pending, frames) = (Some(now), 0, frames + 1);
            }
            pending += 1; // one event a millisecond
            if due(last_frame, now, INTERVAL).is_none() {
                (last_frame, pending, frames) = (Some(now), 0, frames + 1);
            }
        }
        assert_eq!(frames, 20, "1000 events over 1 s in 50 ms frames");
        assert!(pending > 0);
    }

    #[test]
    fn the_flush_interval_takes_units_and_is_bounded() {
        assert_eq!(parse_flush_interval("50ms"), Ok(FLUSH_INTERVAL));
        assert_eq!(parse_flush_interval("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_flush_interval("10m"), Ok(Duration::from_secs(600)));
        let no_unit = parse_flush_interval("50").expect_err("a bare number is refused");
        assert!(no_unit.contains("with units"), "{no_unit}");
        let long = parse_flush_interval("2h").expect_err("over an hour is refused");
        assert!(long.contains("over 1h"), "{long}");
    }
}
