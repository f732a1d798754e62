//! The hub's pacing: the rule ([`due`]) and the frames a subscriber receives. The
//! runtime's clock is paused, so a held frame comes when the clock reaches its
//! moment, however slow the machine.

use super::*;
use tokio::sync::broadcast::error::TryRecvError;

const INTERVAL: Duration = Duration::from_millis(50);

fn event(seq: u64) -> HubMessage {
    HubMessage::Event(crate::event::test_event(seq))
}

/// The seqs of the next message, which must be a frame.
fn seqs(received: Result<Fanout, impl std::fmt::Debug>) -> Vec<u64> {
    match received {
        Ok(Fanout::Frame(frame)) => frame.seqs(),
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[test]
fn the_first_events_are_due_at_once() {
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

#[test]
fn many_sockets_stretch_the_interval_to_the_write_budget() {
    let two_ms = Duration::from_millis(2);
    assert_eq!(paced_interval(two_ms, 10), two_ms);
    assert_eq!(paced_interval(two_ms, 100), two_ms, "exactly the budget");
    assert_eq!(paced_interval(two_ms, 1000), Duration::from_millis(20));
    assert_eq!(
        paced_interval(Duration::from_millis(50), 1000),
        Duration::from_millis(50)
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_on_an_idle_hub_goes_out_at_once_in_its_own_frame() {
    let hub = Hub::new(INTERVAL);
    let mut frames = hub.subscribe();

    hub.send(event(1));

    assert_eq!(seqs(frames.try_recv()), [1], "without the clock moving");
}

#[tokio::test(start_paused = true)]
async fn events_soon_after_a_frame_are_held_then_sent_together() {
    let hub = Hub::new(INTERVAL);
    let mut frames = hub.subscribe();
    hub.send(event(1));
    let first_sent = Instant::now();

    hub.send(event(2));
    hub.send(event(3));

    assert_eq!(seqs(frames.try_recv()), [1]);
    assert!(matches!(frames.try_recv(), Err(TryRecvError::Empty)));
    assert_eq!(seqs(frames.recv().await), [2, 3]);
    assert_eq!(
        Instant::now(),
        first_sent + INTERVAL,
        "one interval after the first"
    );
}

#[tokio::test(start_paused = true)]
async fn held_events_that_fill_a_frame_go_out_without_waiting() {
    let hub = Hub::new(INTERVAL);
    let mut frames = hub.subscribe();
    hub.send(event(1));

    for seq in 2..=400 {
        hub.send(event(seq));
    }

    assert_eq!(seqs(frames.try_recv()), [1]);
    let Ok(Fanout::Frame(full)) = frames.try_recv() else {
        panic!("a full frame without the clock moving");
    };
    let count = full.seqs().len() as u64;
    assert_eq!(full.seqs(), (2..count + 2).collect::<Vec<_>>());
    assert!(full.bytes() <= MAX_FRAME_BYTES, "{} bytes", full.bytes());
    assert!(
        full.bytes() > MAX_FRAME_BYTES - 40,
        "full: one more would not fit"
    );
    assert!(
        matches!(frames.try_recv(), Err(TryRecvError::Empty)),
        "the rest held"
    );
}

#[tokio::test(start_paused = true)]
async fn a_status_message_follows_the_events_held_before_it() {
    let hub = Hub::new(INTERVAL);
    let mut frames = hub.subscribe();
    hub.send(event(1));
    hub.send(event(2));

    hub.send(HubMessage::Unavailable(Arc::from("lost")));
    hub.send(HubMessage::Resync);

    assert_eq!(seqs(frames.try_recv()), [1]);
    assert_eq!(seqs(frames.try_recv()), [2], "flushed before the status");
    assert!(matches!(frames.try_recv(), Ok(Fanout::Unavailable(reason)) if &*reason == "lost"));
    assert!(matches!(frames.try_recv(), Ok(Fanout::Resync)));
}

#[tokio::test(start_paused = true)]
async fn a_gap_or_a_step_back_in_seq_asks_every_socket_to_resync_but_not_after_a_resubscription() {
    let hub = Hub::new(INTERVAL);
    let mut frames = hub.subscribe();
    hub.send(event(1));
    hub.send(event(3)); // 2 lost

    assert_eq!(seqs(frames.try_recv()), [1]);
    assert!(matches!(frames.try_recv(), Ok(Fanout::Gap)), "a gap");
    tokio::time::advance(INTERVAL).await;
    assert_eq!(
        seqs(frames.recv().await),
        [3],
        "the event itself still goes out"
    );

    hub.send(event(2)); // handed out again after a failover
    assert!(matches!(frames.try_recv(), Ok(Fanout::Gap)), "a step back");

    hub.send(HubMessage::Resync);
    tokio::time::advance(INTERVAL).await;
    hub.send(event(9));
    let after: Vec<Fanout> = std::iter::from_fn(|| frames.try_recv().ok()).collect();
    assert!(
        !after.iter().any(|f| matches!(f, Fanout::Gap)),
        "after a resubscription the next event starts afresh: {after:?}"
    );
}

/// A steady stream of one event a millisecond for a second gets one frame per
/// interval: at 0, 50, …, 950 ms, and the last events' at 1,000 ms.
#[tokio::test(start_paused = true)]
async fn a_steady_stream_gets_one_frame_per_interval() {
    let hub = Hub::new(INTERVAL);
    let mut frames = hub.subscribe();

    for seq in 1..=1000 {
        hub.send(event(seq));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let (mut count, mut received) = (0, Vec::new());
    while received.len() < 1000 {
        received.extend(seqs(frames.recv().await));
        count += 1;
    }
    assert_eq!(received, (1..=1000).collect::<Vec<u64>>());
    assert_eq!(count, 21, "1,000 events over 1 s in 50 ms frames");
}
