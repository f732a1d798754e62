//! A dashboard socket's outgoing bytes, pulled by the connection: snapshots and
//! events go out only when the connection asks for more, that is once it has
//! written what it had.
//!
//! The HTTP dispatcher polls a response body for the next chunk when its write
//! buffer has room, then writes it to the socket. [`Feed`] wraps the body that
//! `actix-ws` gives (the socket task's pings, pongs and close, always first); when
//! that has nothing, it sends the snapshot the task handed it, in fragments of at
//! most [`MAX_FRAME_BYTES`] (RFC 6455 continuation frames: the client sees one
//! message), or else takes the frames waiting for this socket on the hub, up to
//! [`MAX_FRAME_BYTES`], as one WebSocket frame. After each it yields once, so the
//! dispatcher writes it before asking for the next: the bytes held for a socket are
//! one frame, not a queue, whatever the load, and actix's write buffer never grows
//! ([`super::write_buffer`]). A socket whose client stops reading is simply not
//! asked; its frames wait in the hub's channel (shared by every socket, bounded)
//! until it lags and is resynchronised, or is dropped for not answering pings.
//!
//! When the hub says events were missed (a lag, or a resync after the broker
//! reconnected), the feed stops taking events and asks the socket task for a fresh
//! snapshot; once the task hands it one, the feed sends it, then the events after
//! its `seq`.

use super::frame_header::{MAX_HEADER, write_header, ws_frame};
use crate::events_frame::{Frame, payload_len, write_payload};
use crate::hub::{Fanout, MAX_FRAME_BYTES};
use crate::metrics::{Resync, Resyncs};
use crate::snapshot_reads::ReadSnapshot;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::sync::Notify;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::ReusableBoxFuture;

/// One hub message, and the receiver to wait for the next one with.
type Received = (Result<Fanout, RecvError>, Receiver<Fanout>);

/// The socket's response body: the session's messages, then the hub's events.
pub(crate) struct Feed {
    session: BoxBody,
    hub: ReusableBoxFuture<'static, Received>,
    /// A message taken from the hub after the frames before it, to act on next.
    carried: Option<Result<Fanout, RecvError>>,
    /// The last event the client has, by a frame or in its snapshot.
    last_seq: u64,
    /// No events until the socket task has queued a snapshot (the first one too).
    paused: bool,
    /// Set after a frame of ours: the next poll yields, so that frame is written first.
    just_sent: bool,
    /// The snapshot being sent, and how many of its bytes are sent.
    snapshot: Option<(Arc<ReadSnapshot>, usize)>,
    /// Shared with the socket task: snapshots handed over, and requests for them.
    control: Arc<FeedControl>,
    /// Counts the snapshots this feed asks for in place of events.
    resyncs: Resyncs,
}

/// Between the feed and its socket task: a slot and two wake-ups, not two channels,
/// which cost more memory per socket (docs/benchmarks.md, the memory goal).
#[derive(Default)]
pub(crate) struct FeedControl {
    /// The next snapshot to send; a newer one replaces one not yet started.
    // A std Mutex: held for one assignment, never across an .await.
    snapshot: Mutex<Option<Arc<ReadSnapshot>>>,
    /// Wakes the feed when a snapshot is handed over.
    feed: AtomicWaker,
    /// Wakes the socket task when the feed asks for a snapshot; a request made while
    /// the task is busy is kept (one permit), and one snapshot answers all before it.
    resync: Notify,
}

impl FeedControl {
    /// Hands the feed a snapshot to send, then the events after its `seq`.
    pub(crate) fn send_snapshot(&self, snapshot: Arc<ReadSnapshot>) {
        *self.lock() = Some(snapshot);
        self.feed.wake();
    }

    /// Waits until the feed asks for a fresh snapshot.
    pub(crate) async fn resync_asked(&self) {
        self.resync.notified().await;
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<ReadSnapshot>>> {
        taskhooks_shared::sync::lock(&self.snapshot)
    }
}

impl Feed {
    /// The feed of `session` (the body `actix-ws` made) and of `events` (subscribed
    /// before the first snapshot is read, so no event falls between the two).
    pub(crate) fn new(
        session: BoxBody,
        events: Receiver<Fanout>,
        resyncs: Resyncs,
    ) -> (Feed, Arc<FeedControl>) {
        let control = Arc::new(FeedControl::default());
        let feed = Feed {
            session,
            hub: ReusableBoxFuture::new(next(events)),
            carried: None,
            last_seq: 0,
            paused: true,
            just_sent: false,
            snapshot: None,
            control: control.clone(),
            resyncs,
        };
        (feed, control)
    }

    /// The next events frame, or a status frame, from the hub; `None` when there is
    /// nothing to send now (the hub has nothing, or the feed waits for a snapshot).
    fn poll_hub(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let first = match self.carried.take() {
            Some(carried) => carried,
            None => {
                let (received, mut events) = std::task::ready!(self.hub.poll(cx));
                let (frames, after) = take_waiting(received, &mut events);
                self.hub.set(next(events));
                self.carried = after;
                if !frames.is_empty() {
                    return Poll::Ready(self.events_frame(&frames));
                }
                match self.carried.take() {
                    Some(first) => first,
                    None => return Poll::Ready(None),
                }
            }
        };
        Poll::Ready(self.act(first))
    }

    /// The frame for the events of `frames` the client does not have yet, written
    /// straight into the WebSocket frame.
    fn events_frame(&mut self, frames: &[Arc<Frame>]) -> Option<Bytes> {
        let seen = self.last_seq;
        if let Some(last) = frames.last() {
            self.last_seq = seen.max(last.last_seq());
        }
        let len = payload_len(frames, seen);
        if len == 0 {
            return None; // all already in the snapshot this client has
        }
        let mut frame = BytesMut::with_capacity(len + MAX_HEADER);
        write_header(&mut frame, true, true, len);
        write_payload(frames, seen, &mut frame);
        self.just_sent = true;
        Some(frame.freeze())
    }

    /// The next fragment of the snapshot being sent, if any; the last one also
    /// ends it, and events after its `seq` may follow.
    fn snapshot_fragment(&mut self) -> Option<Bytes> {
        let (snapshot, sent) = self.snapshot.as_mut()?;
        let message = &snapshot.message;
        let end = message.len().min(*sent + MAX_FRAME_BYTES);
        let fragment = ws_frame(*sent == 0, end == message.len(), &message[*sent..end]);
        *sent = end;
        if end == message.len() {
            self.last_seq = snapshot.seq;
            self.paused = false;
            self.snapshot = None;
        }
        self.just_sent = true;
        Some(fragment)
    }

    /// Stops taking events and asks the socket task for a fresh snapshot.
    fn ask_snapshot(&mut self, why: Resync) -> Option<Bytes> {
        self.resyncs.count(why);
        self.paused = true;
        // A request already waiting is not doubled (one permit): one snapshot,
        // read after both, answers both.
        self.control.resync.notify_one();
        None
    }

    /// Acts on a hub message that is not events: a status frame, or a pause until
    /// the socket task has handed over a fresh snapshot.
    fn act(&mut self, message: Result<Fanout, RecvError>) -> Option<Bytes> {
        match message {
            Ok(Fanout::Frame(frame)) => self.events_frame(&[frame]),
            Ok(Fanout::Unavailable(reason)) => Some(ws_frame(
                true,
                true,
                unavailable_message(&reason).as_bytes(),
            )),
            Ok(Fanout::Resync) => self.ask_snapshot(Resync::broker_reconnected),
            Ok(Fanout::Gap) => self.ask_snapshot(Resync::gap),
            Err(RecvError::Lagged(_)) => self.ask_snapshot(Resync::lagged),
            // The hub is gone: the server is stopping, and the socket task closes.
            Err(RecvError::Closed) => {
                self.paused = true;
                None
            }
        }
    }
}

impl MessageBody for Feed {
    type Error = Box<dyn StdError>;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        loop {
            // The session first: pongs and the close frame do not wait for events.
            match Pin::new(&mut this.session).poll_next(cx) {
                Poll::Ready(chunk) => return Poll::Ready(chunk),
                Poll::Pending => {}
            }
            if std::mem::take(&mut this.just_sent) {
                // Let the dispatcher write the last frame before it takes another.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if let Some(fragment) = this.snapshot_fragment() {
                return Poll::Ready(Some(Ok(fragment)));
            }
            this.control.feed.register(cx.waker());
            if let Some(snapshot) = this.control.lock().take() {
                this.snapshot = Some((snapshot, 0));
                continue;
            }
            if this.paused {
                return Poll::Pending;
            }
            match this.poll_hub(cx) {
                Poll::Ready(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Poll::Ready(None) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The status message `{"type":"status","status":"unavailable","error":…}`, which
/// the dashboard reads (`static/js/dashboard.js`, `onFrame`); its shape is pinned
/// by `tests::the_messages_the_dashboard_reads_keep_their_shape`.
fn unavailable_message(reason: &str) -> String {
    serde_json::json!({ "type": "status", "status": "unavailable", "error": reason }).to_string()
}

/// Waits for the hub's next message.
async fn next(mut events: Receiver<Fanout>) -> Received {
    (events.recv().await, events)
}

/// The frames waiting from `first` on, up to [`MAX_FRAME_BYTES`] (at least one), and
/// the first message after them that is not taken (a status, or a frame too many).
fn take_waiting(
    first: Result<Fanout, RecvError>,
    events: &mut Receiver<Fanout>,
) -> (Vec<Arc<Frame>>, Option<Result<Fanout, RecvError>>) {
    let mut frames = Vec::new();
    let mut bytes = 0;
    let mut message = first;
    loop {
        match message {
            Ok(Fanout::Frame(frame))
                if frames.is_empty() || bytes + frame.bytes() <= MAX_FRAME_BYTES =>
            {
                bytes += frame.bytes();
                frames.push(frame);
            }
            other => return (frames, Some(other)),
        }
        message = match events.try_recv() {
            Ok(message) => Ok(message),
            Err(TryRecvError::Empty) => return (frames, None),
            Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{Snapshot, Totals};
    use crate::hub::{HUB_CAPACITY, Hub, HubMessage};
    use actix_web::body::BodyStream;
    use futures_util::FutureExt as _;
    use serde_json::Value;
    use std::time::Duration;

    /// A feed on `hub` whose session never sends anything.
    fn feed(hub: &Hub) -> (Feed, Arc<FeedControl>) {
        feed_counting(hub, Resyncs::default())
    }

    /// The same, counting its resyncs in `resyncs`.
    fn feed_counting(hub: &Hub, resyncs: Resyncs) -> (Feed, Arc<FeedControl>) {
        let silent = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
        Feed::new(
            BoxBody::new(BodyStream::new(silent)),
            hub.subscribe(),
            resyncs,
        )
    }

    /// Every message the feed gives now, as JSON (fragments joined), polling as the
    /// dispatcher does until it has nothing more (two Pendings in a row: the first
    /// may be the yield after a frame).
    fn drain(feed: &mut Feed) -> Vec<Value> {
        let texts = drain_text(feed).into_iter();
        texts
            .map(|text| serde_json::from_str(&text).expect("JSON"))
            .collect()
    }

    /// The same, as the text the client receives.
    fn drain_text(feed: &mut Feed) -> Vec<String> {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let (mut messages, mut partial, mut idle) = (Vec::new(), Vec::new(), 0);
        while idle < 2 {
            let Poll::Ready(Some(chunk)) = Pin::new(&mut *feed).poll_next(&mut cx) else {
                idle += 1;
                continue;
            };
            idle = 0;
            let chunk = chunk.expect("no error");
            let (fin, header) = (
                chunk[0] & 0x80 != 0,
                match chunk[1] {
                    126 => 4,
                    127 => 10,
                    _ => 2,
                },
            );
            partial.extend_from_slice(&chunk[header..]);
            if fin {
                messages.push(String::from_utf8(std::mem::take(&mut partial)).expect("UTF-8"));
            }
        }
        messages
    }

    fn send_events(hub: &Hub, seqs: std::ops::RangeInclusive<u64>) {
        for seq in seqs {
            hub.send(HubMessage::Event(crate::event::test_event(seq)));
        }
    }

    fn snapshot(seq: u64) -> Arc<ReadSnapshot> {
        Arc::new(ReadSnapshot::new(Snapshot {
            seq,
            ..Snapshot::default()
        }))
    }

    fn event_seqs(messages: &[Value]) -> Vec<u64> {
        let events = messages.iter().flat_map(|m| {
            assert_eq!(m["type"], "events", "{m}");
            m["events"].as_array().expect("events").clone()
        });
        events.map(|e| e[0].as_u64().expect("seq")).collect()
    }

    #[test]
    fn nothing_before_the_snapshot_then_the_events_after_it() {
        let hub = Hub::new(Duration::ZERO); // every event its own frame
        let (mut feed, control) = feed(&hub);
        send_events(&hub, 1..=3);
        assert!(drain(&mut feed).is_empty(), "no events before a snapshot");

        control.send_snapshot(snapshot(2));

        let messages = drain(&mut feed);
        assert_eq!(messages[0]["type"], "snapshot");
        assert_eq!(
            event_seqs(&messages[1..]),
            [3],
            "1 and 2 are in the snapshot"
        );
    }

    #[test]
    fn a_socket_that_lags_asks_for_a_snapshot_and_resumes_after_it() {
        let hub = Hub::new(Duration::ZERO);
        let resyncs = Resyncs::default();
        let (mut feed, control) = feed_counting(&hub, resyncs.clone());
        control.send_snapshot(snapshot(0));
        assert_eq!(drain(&mut feed).len(), 1, "the first snapshot");
        let last = HUB_CAPACITY as u64 + 10;

        send_events(&hub, 1..=last); // more frames than the hub keeps for it

        assert!(drain(&mut feed).is_empty(), "no events once it has lagged");
        assert_eq!(
            control.resync_asked().now_or_never(),
            Some(()),
            "a snapshot asked for"
        );
        assert_eq!(
            (
                resyncs.counted(Resync::lagged),
                resyncs.counted(Resync::broker_reconnected)
            ),
            (1, 0),
            "counted as lagged"
        );
        control.send_snapshot(snapshot(last - 5));
        let messages = drain(&mut feed);
        assert_eq!(messages[0]["type"], "snapshot");
        let resumed: Vec<u64> = (last - 4..=last).collect();
        assert_eq!(
            event_seqs(&messages[1..]),
            resumed,
            "only what the snapshot lacks"
        );
    }

    /// The three messages the dashboard's page reads (`static/js/dashboard.js`,
    /// `onFrame`; the fan-out benchmark's client too, `examples/wsclient/frames.rs`),
    /// exactly as a socket sends them.
    #[test]
    fn the_messages_the_dashboard_reads_keep_their_shape() {
        let hub = Hub::new(Duration::ZERO);
        let (mut feed, control) = feed(&hub);
        let recent = crate::event::test_event(1).json;
        control.send_snapshot(Arc::new(ReadSnapshot::new(Snapshot {
            seq: 1,
            totals: Totals([1, 0, 0, 0]),
            recent: vec![recent],
        })));

        send_events(&hub, 2..=3);
        hub.send(HubMessage::Unavailable(Arc::from("Redis is unreachable")));

        assert_eq!(
            drain_text(&mut feed),
            [
                r#"{"type":"snapshot","seq":1,"totals":{"Low":1,"Moderate":0,"Major":0,"Critical":0},"fields":["seq","batchid","id","owner","priority","created_at"],"recent":[[1,"b",1,"o","Low",null]]}"#,
                r#"{"type":"events","fields":["seq","batchid","id","owner","priority","created_at"],"events":[[2,"b",2,"o","Low",null],[3,"b",3,"o","Low",null]]}"#,
                r#"{"error":"Redis is unreachable","status":"unavailable","type":"status"}"#,
            ]
        );
    }
}
