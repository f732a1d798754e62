//! What Redis's memory policy means for the consumer's keys, read once at start.
//!
//! The dedupe buckets are the only keys the consumer gives a TTL, so under a
//! `volatile-*` policy a full Redis can only evict dedupe state (the oldest buckets
//! first under `volatile-ttl`): a retry of an old webhook may then be counted twice,
//! but totals, `seq` and the recent list stay.

/// How the server's `maxmemory` and `maxmemory-policy` treat the consumer's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvictionRisk {
    /// No `maxmemory`: nothing is evicted (the dedupe window bounds our memory).
    Unlimited,
    /// A `volatile-*` policy: only dedupe state can be evicted.
    DedupeOnly { policy: String },
    /// An `allkeys-*` policy: totals, `seq` and the recent list can be evicted.
    AnyKey { policy: String },
    /// `noeviction` with a `maxmemory`: a full Redis refuses every webhook (503).
    RefusesWhenFull {
        /// The limit, in bytes.
        maxmemory: u64,
    },
    /// The policy could not be read (managed Redis often refuses `CONFIG`).
    Unknown { reason: String },
}

impl EvictionRisk {
    /// What `maxmemory` (bytes, 0 = none) and `policy` mean for the consumer's keys.
    pub(crate) fn decide(policy: &str, maxmemory: u64) -> EvictionRisk {
        let policy = policy.to_ascii_lowercase();
        if maxmemory == 0 {
            EvictionRisk::Unlimited
        } else if policy.starts_with("volatile-") {
            EvictionRisk::DedupeOnly { policy }
        } else if policy.starts_with("allkeys-") {
            EvictionRisk::AnyKey { policy }
        } else if policy == "noeviction" {
            EvictionRisk::RefusesWhenFull { maxmemory }
        } else {
            EvictionRisk::Unknown {
                reason: format!("unknown maxmemory-policy {policy:?}"),
            }
        }
    }

    /// Logs what this means for an operator: a warning saying what to change, or a
    /// line saying all is well.
    pub(crate) fn log(&self) {
        const FIX: &str = "set `maxmemory-policy volatile-ttl` in Redis, so that only dedupe \
            state can be evicted";
        match self {
            EvictionRisk::Unlimited => tracing::info!(
                "Redis has no maxmemory; the consumer's keys are bounded by its dedupe window"
            ),
            EvictionRisk::DedupeOnly { policy } => tracing::info!(
                "Redis maxmemory-policy is {policy}: only dedupe state can be evicted"
            ),
            EvictionRisk::AnyKey { policy } => tracing::warn!(
                "Redis maxmemory-policy is {policy}: a full Redis may evict the totals, `seq` \
                 or the recent list, and dashboards would silently miss events; {FIX}"
            ),
            EvictionRisk::RefusesWhenFull { maxmemory } => tracing::warn!(
                "Redis maxmemory is {maxmemory} bytes with maxmemory-policy noeviction: once \
                 full it refuses every webhook (503); {FIX}"
            ),
            EvictionRisk::Unknown { reason } => tracing::warn!(
                "could not check Redis's eviction policy ({reason}); make sure it is \
                 volatile-ttl or volatile-lru, so that totals are never evicted"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EvictionRisk;

    #[test]
    fn only_a_volatile_policy_or_no_limit_keeps_totals_safe() {
        assert_eq!(
            EvictionRisk::decide("allkeys-lru", 0),
            EvictionRisk::Unlimited
        );
        assert!(matches!(
            EvictionRisk::decide("volatile-ttl", 1 << 28),
            EvictionRisk::DedupeOnly { .. }
        ));
        assert!(matches!(
            EvictionRisk::decide("allkeys-lfu", 1 << 28),
            EvictionRisk::AnyKey { .. }
        ));
        assert_eq!(
            EvictionRisk::decide("noeviction", 100),
            EvictionRisk::RefusesWhenFull { maxmemory: 100 }
        );
    }
}
