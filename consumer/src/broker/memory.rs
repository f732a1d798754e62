//! The in-process broker, used when no Redis is configured: the same semantics as
//! the Redis broker (dedupe, totals, recent events, ordered sequence numbers) for
//! the dashboards of this one process.

use super::{Accepted, DEDUPE_TTL, RECENT_CAP, Snapshot, Totals};
use crate::hub::{Event, Hub, HubMessage, event_json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use taskhooks_shared::Task;

/// Forget expired webhook ids once every this many new ids, keeping the map bounded
/// by one day of traffic without a timer task.
const PRUNE_EVERY: u64 = 4096;

#[derive(Default)]
struct State {
    seen: HashMap<String, Instant>,
    totals: Totals,
    recent: VecDeque<Arc<str>>,
    seq: u64,
}

/// Events and totals held in this process.
pub struct MemoryBroker {
    // A std Mutex: it is held only for a few non-blocking steps, never across .await.
    state: Mutex<State>,
    hub: Hub,
}

impl MemoryBroker {
    /// A broker publishing to `hub`.
    pub fn new(hub: Hub) -> MemoryBroker {
        MemoryBroker {
            state: Mutex::default(),
            hub,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the counters half-updated in a
        // way worse than losing the process, so a poisoned lock is used as is.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Deduplicates, counts and publishes one task.
    pub fn accept(&self, webhook_id: Option<&str>, task: &Task) -> Accepted {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(id) = webhook_id {
            if state
                .seen
                .get(id)
                .is_some_and(|at| now.duration_since(*at) < DEDUPE_TTL)
            {
                return Accepted::Duplicate;
            }
            state.seen.insert(id.to_owned(), now);
        }
        state.seq += 1;
        let seq = state.seq;
        if seq.is_multiple_of(PRUNE_EVERY) {
            state
                .seen
                .retain(|_, at| now.duration_since(*at) < DEDUPE_TTL);
        }
        state.totals.0[task.priority.index()] += 1;
        // unwrap: a Task is plain strings and numbers, which always serialise.
        #[allow(clippy::unwrap_used)]
        let json: Arc<str> = event_json(seq, &serde_json::to_string(task).unwrap()).into();
        state.recent.push_front(json.clone());
        state.recent.truncate(RECENT_CAP);
        // Sent under the lock so that the hub sees events in sequence order.
        self.hub.send(HubMessage::Event(Event { seq, json }));
        Accepted::Published { seq }
    }

    /// The current totals and recent events.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot {
            seq: state.seq,
            totals: state.totals,
            recent: state.recent.iter().cloned().collect(),
        }
    }

    /// The sequence number and the totals, without the recent events.
    pub fn totals(&self) -> (u64, Totals) {
        let state = self.lock();
        (state.seq, state.totals)
    }
}
