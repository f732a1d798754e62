//! The hub: from the broker's subscriber to every WebSocket task of this process.
//!
//! The hub, not each socket, paces the events: an event that finds the hub idle (no
//! frame in the last flush interval, `--ws-flush-interval`) goes out at once in its
//! own frame; events arriving sooner are held and go together once the interval
//! since the last frame has passed ([`due`]), or at once when they would make a
//! frame of more than [`MAX_FRAME_BYTES`]. Each frame is serialised once
//! ([`Frame`]) and handed to every socket through one broadcast channel, so a
//! thousand sockets cost one serialisation and one wake-up each per frame, not per
//! event.

use crate::event::Event;
use crate::events_frame::{FRAME_OVERHEAD, Frame};
use prometheus_client::metrics::counter::Counter;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// The default least time between two events frames (`--ws-flush-interval`). An
/// event waits at most this long, short enough for the latency goal from creation to
/// socket (docs/benchmarks.md); the page redraws at most once per animation frame
/// whatever the frame rate, so a browser pays per frame only a `JSON.parse` and a few
/// counter updates.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(2);
/// Socket writes a second the hub aims to stay under when it has many sockets: each
/// frame costs one write per socket, so with more than `WRITE_BUDGET ×` the flush
/// interval sockets the interval grows with them (1,000 sockets: 20 ms), rather than
/// the writes taking the machine (docs/benchmarks.md, the fan-out stage).
const WRITE_BUDGET: u32 = 50_000;
/// Most bytes in one events frame (one event larger than this has a frame of its
/// own); events that would make a longer one are sent at once in several frames.
/// Small enough that a frame fits the write buffer actix gives each connection
/// (`ws::ACTIX_WRITE_BUFFER`), which then never grows: with a thousand sockets,
/// every KiB held per socket is a megabyte.
pub const MAX_FRAME_BYTES: usize = 7 * 1024;
/// How many frames the hub holds for a slow socket before that socket lags. A
/// lagging socket is resynchronised with a fresh snapshot, so this bounds memory,
/// not correctness: the channel keeps its last `HUB_CAPACITY` frames, and a socket
/// may fall at least a second behind at the default interval before it lags.
pub(crate) const HUB_CAPACITY: usize = 512;

/// What the broker hands the hub.
#[derive(Debug, Clone)]
pub(crate) enum HubMessage {
    /// A newly published event.
    Event(Event),
    /// Events may have been missed (the subscriber reconnected): every socket
    /// should send its client a fresh snapshot.
    Resync,
    /// The broker's subscription is lost (the reason says why): no events flow
    /// until a [`HubMessage::Resync`] says it is back.
    Unavailable(Arc<str>),
}

/// What every socket receives from the hub, in the order the broker sent it.
#[derive(Debug, Clone)]
pub(crate) enum Fanout {
    /// Events, in `seq` order, as one frame shared by every socket.
    Frame(Arc<Frame>),
    /// See [`HubMessage::Resync`].
    Resync,
    /// An event's `seq` did not follow the one before it: events were lost on the
    /// way (a cluster's bus may drop a message under load), or a failover promoted
    /// a replica that had not had the last writes, so numbers were handed out again.
    /// Either way the totals the sockets' clients hold may be wrong: every socket
    /// sends a fresh snapshot, as for [`Fanout::Resync`].
    Gap,
    /// See [`HubMessage::Unavailable`].
    Unavailable(Arc<str>),
}

/// The sending side; clone it freely.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    shared: Arc<Shared>,
    forwarded: Counter,
}

#[derive(Debug)]
struct Shared {
    sender: broadcast::Sender<Fanout>,
    interval: Duration,
    // A std Mutex: held to append an event or to build and hand on one frame, never
    // across an .await; it also keeps frames and status messages in order.
    pacing: Mutex<Pacing>,
}

/// The events held back, and when the last frame went out.
#[derive(Debug, Default)]
struct Pacing {
    pending: Vec<Event>,
    /// The length of `pending`'s events in a frame.
    pending_bytes: usize,
    last_frame: Option<Instant>,
    /// A task waits to flush `pending` when it is due: one at a time, not one per event.
    timer_armed: bool,
    /// The last event's `seq`, to see a gap ([`Fanout::Gap`]); `None` after a
    /// resubscription, when the next event starts afresh.
    last_seq: Option<u64>,
}

impl Hub {
    /// A hub whose frames are at least `interval` apart while events keep coming.
    pub(crate) fn new(interval: Duration) -> Hub {
        let shared = Shared {
            sender: broadcast::channel(HUB_CAPACITY).0,
            interval,
            pacing: Mutex::default(),
        };
        Hub {
            shared: Arc::new(shared),
            forwarded: Counter::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pacing> {
        taskhooks_shared::sync::lock(&self.shared.pacing)
    }

    /// Hands a message to every current subscriber (none is fine): an event at once
    /// or in the next frame, anything else at once, after the events held before it.
    pub(crate) fn send(&self, message: HubMessage) {
        let mut pacing = self.lock();
        let status = match message {
            HubMessage::Event(event) => {
                self.forwarded.inc();
                let follows = pacing.last_seq.is_none_or(|last| event.seq == last + 1);
                pacing.last_seq = Some(event.seq);
                if !follows {
                    self.flush(&mut pacing, Instant::now());
                    let _ = self.shared.sender.send(Fanout::Gap);
                }
                let bytes = Frame::length_of(&event);
                if FRAME_OVERHEAD + pacing.pending_bytes + bytes > MAX_FRAME_BYTES {
                    self.flush(&mut pacing, Instant::now()); // a full frame goes at once
                }
                pacing.pending_bytes += bytes;
                pacing.pending.push(event);
                return self.pace(&mut pacing);
            }
            HubMessage::Resync => {
                pacing.last_seq = None;
                Fanout::Resync
            }
            HubMessage::Unavailable(reason) => Fanout::Unavailable(reason),
        };
        self.flush(&mut pacing, Instant::now());
        let _ = self.shared.sender.send(status);
    }

    /// The least time between two frames now: the flush interval, or longer with
    /// more sockets than [`WRITE_BUDGET`] allows at it.
    fn interval(&self) -> Duration {
        let sockets = self.shared.sender.receiver_count();
        paced_interval(self.shared.interval, sockets)
    }

    /// Sends the held events if they are due, else makes sure a timer will.
    fn pace(&self, pacing: &mut Pacing) {
        let now = Instant::now();
        let due_at = due(pacing.last_frame, now, self.interval());
        if due_at.is_none() {
            return self.flush(pacing, now);
        }
        if let Some(at) = due_at
            && !pacing.timer_armed
        {
            // Without a runtime (none outside the server) nothing could wake a timer.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return self.flush(pacing, now);
            };
            pacing.timer_armed = true;
            runtime.spawn(self.clone().flush_when_due(at));
        }
    }

    /// The timer: flushes the held events once they are due (a full frame sent
    /// meanwhile moves the moment on).
    async fn flush_when_due(self, mut at: Instant) {
        loop {
            tokio::time::sleep_until(at).await;
            let mut pacing = self.lock();
            let now = Instant::now();
            match due(pacing.last_frame, now, self.interval()) {
                Some(later) if !pacing.pending.is_empty() => at = later,
                _ => {
                    pacing.timer_armed = false;
                    return self.flush(&mut pacing, now);
                }
            }
        }
    }

    /// Sends the held events as one frame; nothing when none are held.
    fn flush(&self, pacing: &mut Pacing, now: Instant) {
        if pacing.pending.is_empty() {
            return;
        }
        let frame = Frame::build(&pacing.pending);
        pacing.pending.clear();
        pacing.pending_bytes = 0;
        pacing.last_frame = Some(now);
        let _ = self.shared.sender.send(Fanout::Frame(Arc::new(frame)));
    }

    /// The count of events handed to the hub, for the metrics.
    pub(crate) fn forwarded(&self) -> Counter {
        self.forwarded.clone()
    }

    /// A new receiver, seeing messages sent from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Fanout> {
        self.shared.sender.subscribe()
    }
}

/// When held events may be sent, given when the last frame went out: `None` for at
/// once (none yet, or the interval has passed since), else the instant the interval
/// since it ends. The rule that keeps an idle dashboard live and a busy one paced.
fn due(last_frame: Option<Instant>, now: Instant, interval: Duration) -> Option<Instant> {
    let next = last_frame? + interval;
    (next > now).then_some(next)
}

/// The least time between two frames with `sockets` subscribed: `interval`, or the
/// time in which [`WRITE_BUDGET`] writes a second allow one frame to every socket.
fn paced_interval(interval: Duration, sockets: usize) -> Duration {
    let sockets = u32::try_from(sockets).unwrap_or(u32::MAX);
    interval.max(Duration::from_secs(1) * sockets / WRITE_BUDGET)
}

#[cfg(test)]
mod tests;
