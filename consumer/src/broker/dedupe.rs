//! The dedupe window: how long a webhook id is remembered, how it is hashed and
//! where both brokers keep it, so memory stays bounded at any rate and duration.
//!
//! An id is remembered as 8 bytes of its SHA-256 (a [`IdHash`]), never as the id
//! itself. In Redis the hashes live in small hashes, one per time bucket and
//! shard, `<ch>:seen:<bucket>:<shard>`, each expiring once its bucket has left the
//! window; a lookup checks the id's shard in the current bucket and the one before.

use sha2::{Digest as _, Sha256};
use std::time::Duration;

/// The window when `--dedupe-window` is not given: 10 minutes, about a hundred times
/// the producer's default retry horizon (5–8 s) and ten times its longest useful one
/// (about a minute with more attempts).
pub(crate) const DEFAULT_WINDOW: &str = "10m";

/// Shortest accepted window: below a second, a retry after a quick backoff would
/// already be counted twice.
const MIN_WINDOW: Duration = Duration::from_secs(1);
/// Longest accepted window: a day; longer only costs memory, no sender retries that long.
const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The older buckets a lookup reads besides the current one: one, as long as the
/// window. An id is forgotten between one and two windows after it was accepted, so
/// Redis holds at most two windows of ids; a lookup reads `BUCKETS + 1` = 2 hashes,
/// a `redis.call` each, the dearest part of Redis's work per webhook
/// (`scripts/profile ingest`, docs/benchmarks.md). Four buckets of a quarter window
/// held at most 1.25 windows for 5 lookups; issue 28 chose the memory over the calls.
pub(crate) const BUCKETS: u64 = 1;

/// The webhook rate, per second, for which the Redis shards are sized. Above it a
/// shard may outgrow [`LISTPACK_FILL`]'s margin and Redis converts it to a real hash
/// table (about 4 times the memory for that shard); nothing breaks.
const DESIGN_RATE: u64 = 50_000;

/// Ids per shard (per bucket) at [`DESIGN_RATE`]. Redis keeps a hash in its compact
/// listpack encoding (about 12 bytes per 8-byte field) up to
/// `hash-max-listpack-entries` = 128 entries; 80 on average leaves room for the
/// random spread between shards (the fullest of 40,000 shards holds about 80 + 4.5
/// × √80 ≈ 120).
const LISTPACK_FILL: u64 = 80;

/// How long ids are remembered, and the bucket and shard layout that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeWindow {
    window: Duration,
}

impl Default for DedupeWindow {
    fn default() -> DedupeWindow {
        // unwrap: the default is a valid window, which a unit test checks.
        #[allow(clippy::unwrap_used)]
        parse_window(DEFAULT_WINDOW).unwrap()
    }
}

/// Parses `--dedupe-window`: a duration with units (`90s`, `10m`, `1h 30m`) from one
/// second to one day.
pub(crate) fn parse_window(text: &str) -> Result<DedupeWindow, String> {
    let window = humantime::parse_duration(text)
        .map_err(|err| format!("{err}: give a duration with units, for example 10m, 90s or 1h"))?;
    if !(MIN_WINDOW..=MAX_WINDOW).contains(&window) {
        return Err(format!(
            "{text} is outside 1s..24h: give a window that covers your senders' retries, for \
             example 10m"
        ));
    }
    Ok(DedupeWindow { window })
}

impl DedupeWindow {
    /// The window itself: ids are remembered at least this long.
    pub(crate) fn duration(&self) -> Duration {
        self.window
    }

    /// Length of one time bucket, in milliseconds.
    pub(crate) fn bucket_ms(&self) -> u64 {
        (self.window.as_millis() as u64 / BUCKETS).max(1)
    }

    /// Shards per bucket, so that a bucket at [`DESIGN_RATE`] fills each to about
    /// [`LISTPACK_FILL`] ids.
    pub(crate) fn shards(&self) -> u64 {
        (self.bucket_ms() * DESIGN_RATE / 1000).div_ceil(LISTPACK_FILL)
    }

    /// The hash of `webhook_id` and its shard.
    pub(crate) fn hash(&self, webhook_id: &str) -> IdHash {
        let digest = Sha256::digest(webhook_id.as_bytes());
        let mut field = [0; 8];
        field.copy_from_slice(&digest[..8]);
        let mut shard = [0; 8];
        shard.copy_from_slice(&digest[8..16]);
        IdHash {
            field,
            shard: u64::from_le_bytes(shard) % self.shards(),
        }
    }
}

/// What is remembered of a webhook id: 8 bytes of its SHA-256, plus the shard
/// (from 8 other bytes) it is kept in. Two distinct ids are confused only when
/// both their shard and their 64 bits agree; at 50,000 webhooks a second, Redis holds
/// up to 60 million ids (two 10-minute windows) and the chance that any of the 30
/// million of one window is dropped as a false duplicate is under 10⁻⁹ (each is
/// compared with the about 160 ids of its shard in the 2 buckets looked up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct IdHash {
    /// The 8 bytes stored.
    pub(crate) field: [u8; 8],
    /// The shard it is stored in, below [`DedupeWindow::shards`].
    pub(crate) shard: u64,
}

impl IdHash {
    /// The 64 bits as one number, for the in-process broker's set.
    pub(crate) fn as_u64(&self) -> u64 {
        u64::from_le_bytes(self.field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_window_is_ten_minutes_in_buckets_of_ten() {
        let window = DedupeWindow::default();
        assert_eq!(window.duration(), Duration::from_secs(600));
        assert_eq!(window.bucket_ms(), 600_000);
        assert_eq!(window.shards(), 375_000);
    }

    #[test]
    fn windows_take_units_and_refuse_what_no_sender_needs() {
        assert_eq!(
            parse_window("90s").map(|w| w.duration()),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(
            parse_window("1h 30m").map(|w| w.duration()),
            Ok(Duration::from_secs(5400))
        );
        let no_unit = parse_window("600").expect_err("a bare number is refused");
        assert!(no_unit.contains("with units"), "{no_unit}");
        let short = parse_window("500ms").expect_err("under a second is refused");
        assert!(short.contains("1s..24h"), "{short}");
        assert!(parse_window("2days").is_err());
    }

    #[test]
    fn an_id_always_hashes_to_the_same_field_and_shard() {
        let window = DedupeWindow::default();
        let a = window.hash("msg_a");
        assert_eq!(a, window.hash("msg_a"));
        assert_ne!(a.field, window.hash("msg_b").field);
        assert!(a.shard < window.shards());
    }
}
