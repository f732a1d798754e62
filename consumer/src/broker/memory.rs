//! The in-process broker, used when no Redis is configured: the same semantics as
//! the Redis broker (dedupe, totals, recent events, ordered sequence numbers) for
//! the dashboards of this one process.

use super::dedupe::DedupeWindow;
use super::snapshot::{Counts, RECENT_CAP, Snapshot, Totals};
use crate::event::Event;
use crate::hub::{Hub, HubMessage};
use serde_json::value::RawValue;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use taskhooks_shared::Task;

/// The webhook ids of the dedupe window, as 64-bit hashes: a queue in arrival
/// order and a set for lookups, always holding the same hashes. Each accept pops
/// the expired ones from the front, so pruning costs O(1) amortised per webhook and
/// memory is bounded by the ids of one window (about 40 bytes each).
#[derive(Default)]
struct Seen {
    order: VecDeque<(Instant, u64)>,
    set: HashSet<u64>,
}

impl Seen {
    /// Forgets what arrived before `horizon`.
    fn forget_before(&mut self, horizon: Instant) {
        while let Some(&(at, hash)) = self.order.front() {
            if at >= horizon {
                break;
            }
            self.order.pop_front();
            self.set.remove(&hash);
        }
    }

    /// Remembers `hash`; false when it was already remembered.
    fn insert(&mut self, hash: u64, now: Instant) -> bool {
        let fresh = self.set.insert(hash);
        if fresh {
            self.order.push_back((now, hash));
        }
        fresh
    }
}

#[derive(Default)]
struct State {
    seen: Seen,
    totals: Totals,
    recent: VecDeque<Arc<RawValue>>,
    seq: u64,
    duplicates: u64,
}

/// Events and totals held in this process.
pub struct MemoryBroker {
    // A std Mutex: it is held only for a few non-blocking steps, never across .await.
    state: Mutex<State>,
    hub: Hub,
    window: DedupeWindow,
}

impl MemoryBroker {
    /// A broker publishing to `hub` that remembers webhook ids for `window`.
    pub(crate) fn with_window(hub: Hub, window: DedupeWindow) -> MemoryBroker {
        MemoryBroker {
            state: Mutex::default(),
            hub,
            window,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        taskhooks_shared::sync::lock(&self.state)
    }

    /// Deduplicates, counts and publishes one task: its event's `seq`, `None` for
    /// a duplicate.
    pub(crate) fn accept(&self, webhook_id: Option<&str>, task: &Task) -> Option<u64> {
        let now = Instant::now();
        let hash = webhook_id.map(|id| self.window.hash(id).as_u64());
        let mut state = self.lock();
        if let Some(horizon) = now.checked_sub(self.window.duration()) {
            state.seen.forget_before(horizon);
        }
        if let Some(hash) = hash
            && !state.seen.insert(hash, now)
        {
            state.duplicates += 1;
            return None;
        }
        state.seq += 1;
        let seq = state.seq;
        state.totals.0[task.priority.index()] += 1;
        let event = Event::new(seq, task);
        state.recent.push_front(event.json.clone());
        state.recent.truncate(RECENT_CAP);
        // Sent under the lock so that the hub sees events in sequence order.
        self.hub.send(HubMessage::Event(event));
        Some(seq)
    }

    /// The current totals and recent events.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot {
            seq: state.seq,
            totals: state.totals,
            recent: state.recent.iter().cloned().collect(),
        }
    }

    /// The sequence number, the totals and the duplicates, without the recent events.
    pub(crate) fn totals(&self) -> Counts {
        let state = self.lock();
        Counts {
            seq: state.seq,
            totals: state.totals,
            duplicates: state.duplicates,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_id_is_remembered_until_the_window_has_passed_then_forgotten() {
        let start = Instant::now();
        let later = |secs| start + Duration::from_secs(secs);
        let mut seen = Seen::default();
        assert!(seen.insert(1, start));
        assert!(seen.insert(2, later(5)));

        seen.forget_before(later(3));
        assert!(!seen.insert(2, later(6)), "still inside the window");
        assert!(seen.insert(1, later(6)), "forgotten once out of the window");
        seen.forget_before(later(100));

        assert!(seen.order.is_empty() && seen.set.is_empty());
    }
}
