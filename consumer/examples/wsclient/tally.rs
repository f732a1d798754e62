//! Exactly-once accounting for one socket, by sequence number.
//!
//! The socket must account for every event in the window `(after, after + events]`:
//! each one either arrives once in an events frame, or is covered by a snapshot
//! (the first one, or a resync after the client fell behind or Redis came back),
//! whose `seq` says that every event up to it is in its totals. An event at or
//! below what the socket already has is a duplicate; a jump past the next number
//! leaves a gap. The consumer numbers events 1, 2, … with no hole, so for every
//! socket `received + before_open + in_snapshots + gaps + missing == events`.

/// What one socket saw of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// The last seq before the window.
    after: u64,
    /// The last seq of the window.
    target: u64,
    /// The highest seq this socket has, by an event or a snapshot.
    high: u64,
    /// Window events that arrived in events frames, each once.
    pub(crate) received: u64,
    /// Window events covered by the first snapshot: published before the socket
    /// opened (none when the load starts after every socket is open).
    pub(crate) before_open: u64,
    /// Window events covered by a resync snapshot instead of arriving.
    pub(crate) in_snapshots: u64,
    /// Snapshots after the first: resyncs.
    pub(crate) resyncs: u64,
    /// Events at or below what the socket already had.
    pub(crate) duplicates: u64,
    /// Window events skipped over: neither received nor in a snapshot.
    pub(crate) gaps: u64,
    /// "Redis unavailable" status frames.
    pub(crate) unavailable: u64,
    snapshots: u64,
}

impl Tally {
    /// A socket that must account for the `events` after seq `after`.
    pub(crate) fn new(after: u64, events: u64) -> Tally {
        Tally {
            after,
            target: after + events,
            high: after,
            ..Tally::default()
        }
    }

    /// A snapshot of the state after event `seq`.
    pub(crate) fn snapshot(&mut self, seq: u64) {
        let covered = seq.min(self.target).saturating_sub(self.high);
        if self.snapshots == 0 {
            self.before_open += covered;
        } else {
            self.resyncs += 1;
            self.in_snapshots += covered;
        }
        self.snapshots += 1;
        self.high = self.high.max(seq);
    }

    /// An event; true when it is a window event's first and only arrival (the one
    /// whose latency counts).
    pub(crate) fn event(&mut self, seq: u64) -> bool {
        if seq <= self.after {
            return false; // before the window: not ours to count
        }
        if seq <= self.high {
            self.duplicates += 1;
            return false;
        }
        self.gaps += (seq - 1).min(self.target).saturating_sub(self.high);
        self.high = seq;
        let in_window = seq <= self.target;
        if in_window {
            self.received += 1;
        }
        in_window
    }

    /// Whether every window event has been accounted for.
    pub(crate) fn complete(&self) -> bool {
        self.high >= self.target
    }

    /// Window events not seen yet (none once complete).
    pub(crate) fn missing(&self) -> u64 {
        self.target.saturating_sub(self.high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounted(tally: &Tally) -> u64 {
        tally.received + tally.before_open + tally.in_snapshots + tally.gaps + tally.missing()
    }

    #[test]
    fn every_event_once_after_the_first_snapshot_completes_the_socket() {
        let mut tally = Tally::new(10, 3);
        tally.snapshot(10);

        let counted: Vec<bool> = (11..=13).map(|seq| tally.event(seq)).collect();

        assert_eq!(counted, [true, true, true]);
        assert!(tally.complete());
        assert_eq!((tally.received, tally.duplicates, tally.gaps), (3, 0, 0));
        assert_eq!((tally.resyncs, tally.in_snapshots), (0, 0));
    }

    #[test]
    fn a_resync_snapshot_accounts_for_the_events_it_covers() {
        let mut tally = Tally::new(0, 10);
        tally.snapshot(0);
        tally.event(1);
        tally.event(2);

        tally.snapshot(6);
        (7..=10).for_each(|seq| {
            tally.event(seq);
        });

        assert!(tally.complete());
        assert_eq!(
            (tally.received, tally.in_snapshots, tally.resyncs),
            (6, 4, 1)
        );
        assert_eq!((tally.duplicates, tally.gaps), (0, 0));
        assert_eq!(accounted(&tally), 10);
    }

    #[test]
    fn repeated_and_skipped_events_are_counted_as_such() {
        let mut tally = Tally::new(0, 10);
        tally.snapshot(0);
        tally.event(1);
        tally.event(2);

        assert!(!tally.event(2), "a repeat");
        assert!(tally.event(5), "after a gap of two");
        tally.snapshot(3); // older than what the socket has: covers nothing new
        assert!(!tally.event(4), "a repeat after the old snapshot");

        assert_eq!((tally.received, tally.duplicates, tally.gaps), (3, 2, 2));
        assert_eq!(tally.missing(), 5);
        assert!(!tally.complete());
        assert_eq!(accounted(&tally), 10);
    }

    #[test]
    fn events_outside_the_window_are_neither_counted_nor_errors() {
        let mut tally = Tally::new(5, 2);
        tally.snapshot(4);

        assert!(!tally.event(5), "before the window");
        assert!(tally.event(6));
        assert!(tally.event(7));
        assert!(!tally.event(8), "after the window");

        assert_eq!((tally.received, tally.duplicates, tally.gaps), (2, 0, 0));
        assert!(tally.complete());
    }

    #[test]
    fn a_first_snapshot_taken_late_covers_the_events_before_it() {
        let mut tally = Tally::new(0, 5);
        tally.snapshot(2);
        (3..=5).for_each(|seq| {
            tally.event(seq);
        });

        assert_eq!(
            (tally.received, tally.before_open, tally.resyncs),
            (3, 2, 0)
        );
        assert_eq!(tally.in_snapshots, 0);
        assert_eq!(accounted(&tally), 5);
    }
}
