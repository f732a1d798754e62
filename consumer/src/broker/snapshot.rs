//! The state a dashboard starts from: the totals per priority, the recent events
//! and the sequence number they are current to.

use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use taskhooks_shared::Priority;

/// How many recent events are kept for a dashboard that opens late.
pub(crate) const RECENT_CAP: usize = 200;

/// Tasks counted per priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals(pub(crate) [u64; 4]);

impl Totals {
    pub(crate) fn get(&self, priority: Priority) -> u64 {
        self.0[priority.index()]
    }

    pub fn sum(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl Serialize for Totals {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(4))?;
        for priority in Priority::ALL {
            map.serialize_entry(priority.as_str(), &self.get(priority))?;
        }
        map.end()
    }
}

/// The state a dashboard starts from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sequence number of the last event included; later events are new.
    pub seq: u64,
    pub totals: Totals,
    /// The most recent events' JSON, newest first.
    pub(crate) recent: Vec<Arc<RawValue>>,
}

/// What `/api/stats` returns: the totals, the sequence number they are current
/// to, and how many webhooks were answered `duplicate`, every replica together.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub seq: u64,
    pub totals: Totals,
    /// Webhooks answered `duplicate` (retries of one already accepted).
    pub duplicates: u64,
}
