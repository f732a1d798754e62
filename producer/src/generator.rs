//! Fake tasks: batch sizes, batch ids, owners unique within a batch and uniform
//! priorities, all drawn from one random number generator so that `--seed`
//! reproduces every batch, batch id included.
//!
//! Owners are unique among the last [`OWNER_WINDOW`] tasks: that is every task of
//! a page's batch, and any run of that many in a headless `producer send` of any
//! size, whose memory stays constant however long it runs.

use fake::Fake as _;
use fake::faker::name::en::Name;
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
use taskhooks_shared::{Priority, Task};

/// Fake names drawn before falling back to a numbered one. There are about 1.4
/// million English first/last name pairs, so this only matters for huge batches.
const NAME_TRIES: usize = 20;

/// How many of the latest owners a batch keeps unique: far above the page's
/// [`MAX_BATCH_TASKS`], and about 1.5 MB of remembered hashes at the most.
pub(crate) const OWNER_WINDOW: usize = 65_536;

/// Makes batches of tasks.
#[derive(Debug)]
pub(crate) struct Generator {
    rng: StdRng,
}

impl Generator {
    /// A generator seeded with `seed`, or from the operating system's entropy.
    pub(crate) fn new(seed: Option<u64>) -> Generator {
        let rng = seed.map_or_else(rand::make_rng, StdRng::seed_from_u64);
        Generator { rng }
    }

    /// A batch of a random size in `min..=max` (checked by [`check_range`]).
    pub(crate) fn batch(&mut self, min: u32, max: u32) -> BatchTasks {
        let size = self.rng.random_range(min.min(max)..=max);
        self.batch_of(u64::from(size))
    }

    /// A batch of exactly `size` tasks.
    pub(crate) fn batch_of(&mut self, size: u64) -> BatchTasks {
        let batchid = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
        BatchTasks {
            batchid: batchid.to_string(),
            total: size,
            next: 0,
            rng: StdRng::seed_from_u64(self.rng.random()),
            owners: RecentOwners::new(OWNER_WINDOW),
        }
    }
}

/// The tasks of one batch, made one at a time so a huge headless batch is not
/// held in memory. Only the latest owners are remembered, to keep them unique.
#[derive(Debug)]
pub(crate) struct BatchTasks {
    /// The batch id, a UUIDv4.
    pub(crate) batchid: String,
    /// How many tasks the batch has.
    pub(crate) total: u64,
    next: u64,
    rng: StdRng,
    owners: RecentOwners,
}

impl Iterator for BatchTasks {
    type Item = Task;

    fn next(&mut self) -> Option<Task> {
        if self.next >= self.total {
            return None;
        }
        let id = self.next;
        self.next += 1;
        let owner = self.unique_owner();
        let priority = Priority::ALL[self.rng.random_range(0..Priority::ALL.len())];
        Some(Task {
            batchid: self.batchid.clone(),
            id,
            owner,
            priority,
            created_at: None,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.total - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl BatchTasks {
    fn unique_owner(&mut self) -> String {
        let mut name: String = Name().fake_with_rng(&mut self.rng);
        for _ in 0..NAME_TRIES {
            if !self.owners.contains(&name) {
                break;
            }
            name = Name().fake_with_rng(&mut self.rng);
        }
        let base = name.clone();
        let mut n = 2;
        while self.owners.contains(&name) {
            name = format!("{base} {n}");
            n += 1;
        }
        self.owners.insert(&name);
        name
    }
}

/// The hashes of the latest `capacity` owners, oldest forgotten first. A hash,
/// not the name, keeps it small; two names with one hash only cost a redraw.
#[derive(Debug)]
struct RecentOwners {
    capacity: usize,
    order: VecDeque<u64>,
    seen: HashSet<u64>,
}

impl RecentOwners {
    fn new(capacity: usize) -> RecentOwners {
        RecentOwners {
            capacity,
            order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// The same for the same name in every run (SipHash with fixed keys), so a
    /// seed reproduces its batches.
    fn hash(name: &str) -> u64 {
        BuildHasherDefault::<DefaultHasher>::default().hash_one(name)
    }

    fn contains(&self, name: &str) -> bool {
        self.seen.contains(&RecentOwners::hash(name))
    }

    fn insert(&mut self, name: &str) {
        let hash = RecentOwners::hash(name);
        if !self.seen.insert(hash) {
            return;
        }
        self.order.push_back(hash);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
    }
}

/// Largest batch the web page may ask for. A batch keeps its event log in memory
/// (about 2 events of ~300 bytes per task) until it is dropped, so this bounds one
/// batch's memory to a few megabytes.
pub(crate) const MAX_BATCH_TASKS: u32 = 10_000;

/// Checks a batch size range: at least 1, `min <= max`, at most [`MAX_BATCH_TASKS`].
pub(crate) fn check_range(min: u32, max: u32) -> Result<(), String> {
    if min == 0 {
        return Err("min must be at least 1 task".into());
    }
    if min > max {
        return Err(format!("min ({min}) must not exceed max ({max})"));
    }
    if max > MAX_BATCH_TASKS {
        return Err(format!(
            "max ({max}) is over the limit of {MAX_BATCH_TASKS} tasks per batch; use the command line (producer send) for bigger loads"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_batches() {
        let (mut a, mut b) = (Generator::new(Some(42)), Generator::new(Some(42)));
        for _ in 0..3 {
            let first: Vec<Task> = a.batch(1, 100).collect();
            let second: Vec<Task> = b.batch(1, 100).collect();
            assert_eq!(first, second);
        }
        let other: Vec<Task> = Generator::new(Some(43)).batch(1, 100).collect();
        let again: Vec<Task> = Generator::new(Some(42)).batch(1, 100).collect();
        assert_ne!(other, again);
    }

    #[test]
    fn a_batch_has_ids_from_zero_one_uuid_and_unique_owners() {
        let tasks: Vec<Task> = Generator::new(Some(1)).batch_of(3000).collect();
        assert_eq!(tasks.len(), 3000);
        assert!(tasks.iter().enumerate().all(|(i, t)| t.id == i as u64));
        let batchid = uuid::Uuid::parse_str(&tasks[0].batchid).expect("a UUID");
        assert_eq!(batchid.get_version_num(), 4);
        assert!(tasks.iter().all(|t| t.batchid == tasks[0].batchid));
        let owners: HashSet<&str> = tasks.iter().map(|t| t.owner.as_str()).collect();
        assert_eq!(owners.len(), tasks.len());
        assert!(
            tasks
                .iter()
                .all(|t| t.owner.contains(' ') && t.created_at.is_none())
        );
    }

    #[test]
    fn generated_owners_and_batchids_stay_within_the_consumers_limits() {
        // A large batch, so the " 2", " 3"… suffixes of repeated names are exercised.
        let tasks: Vec<Task> = Generator::new(Some(11)).batch_of(20_000).collect();
        assert!(tasks.iter().all(|t| t.check_sizes().is_ok()));
        let longest = tasks.iter().map(|t| t.owner.chars().count()).max();
        assert!(
            longest.is_some_and(|n| n <= taskhooks_shared::task::MAX_OWNER_CHARS / 2),
            "{longest:?}"
        );
    }

    #[test]
    fn only_the_latest_owners_are_remembered() {
        let mut recent = RecentOwners::new(3);
        for name in ["a", "b", "c", "d"] {
            recent.insert(name);
        }
        assert!(!recent.contains("a"), "the oldest is forgotten");
        assert!(["b", "c", "d"].iter().all(|n| recent.contains(n)));
        assert_eq!((recent.order.len(), recent.seen.len()), (3, 3));
        let page_batch = usize::try_from(MAX_BATCH_TASKS).expect("fits");
        assert!(OWNER_WINDOW > page_batch);
    }

    #[test]
    fn sizes_stay_in_range_and_priorities_cover_all_four() {
        let mut generator = Generator::new(Some(7));
        for _ in 0..50 {
            let batch = generator.batch(3, 9);
            assert!((3..=9).contains(&batch.total));
        }
        let mut seen = [0usize; 4];
        for task in generator.batch_of(4000) {
            seen[task.priority.index()] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }

    #[test]
    fn bad_ranges_are_explained() {
        assert!(check_range(1, 100).is_ok());
        assert!(
            check_range(0, 5)
                .expect_err("rejected")
                .contains("at least 1")
        );
        assert!(
            check_range(6, 5)
                .expect_err("rejected")
                .contains("must not exceed")
        );
        assert!(
            check_range(1, MAX_BATCH_TASKS + 1)
                .expect_err("rejected")
                .contains("limit")
        );
    }
}
