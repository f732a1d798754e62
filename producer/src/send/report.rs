//! The headless report: what was sent and what came of it, throughput, and
//! latency percentiles.
//!
//! Latencies go into a fixed-size histogram, not a list, so a run of any length
//! (`producer send --count 100000000`) keeps the report in constant memory.

use hdrhistogram::Histogram;
use std::fmt;
use std::time::Duration;

/// The longest latency the histogram tells apart, in microseconds (one hour);
/// longer ones are counted as one hour.
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;
/// Significant decimal digits kept: 3 means within 0.1 % (about 190 KB in all).
const LATENCY_DIGITS: u8 = 3;

/// The outcome of a `producer send` run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Tasks in the run.
    pub total: u64,
    /// Tasks with at least one attempt.
    pub sent: u64,
    /// Tasks the receiver took (2xx).
    pub delivered: u64,
    /// Tasks given up.
    pub failed: u64,
    /// Tasks stopped (Ctrl-C) before delivery.
    pub cancelled: u64,
    /// Attempts beyond each task's first.
    pub retries: u64,
    /// The whole run's duration.
    pub elapsed: Duration,
    /// For each delivered task: its first attempt's start to its 2xx.
    pub latencies: Latencies,
}

/// Latencies in a histogram of fixed size, to 0.1 %, from 1 µs to an hour.
#[derive(Debug, Clone, PartialEq)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Latencies {
        // unwrap: the bounds are constants that new_with_bounds accepts (low >= 1,
        // high >= 2 * low, digits <= 5); the test below builds one.
        #[allow(clippy::unwrap_used)]
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, LATENCY_DIGITS).unwrap();
        Latencies(histogram)
    }
}

impl Latencies {
    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    /// How many latencies were counted.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether none was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Counts every latency of `other` too (the runtimes of one run each keep
    /// their own).
    pub fn add(&mut self, other: &Latencies) {
        if self.0.add(&other.0).is_err() {
            // Not met: every `Latencies` has the same bounds, so `add` fits. Were
            // it to fail, each value is still counted, clamped as `record` does.
            for value in other.0.iter_recorded() {
                self.0
                    .saturating_record_n(value.value_iterated_to(), value.count_at_value());
            }
        }
    }

    /// The latency percentile `p` (0–100): the smallest latency with at least
    /// `p` percent of them at or below it, to 0.1 %; `None` with no latencies.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.0.is_empty() {
            return None;
        }
        let micros = self.0.value_at_percentile(p.clamp(0.0, 100.0));
        Some(Duration::from_micros(micros))
    }
}

impl Extend<Duration> for Latencies {
    fn extend<I: IntoIterator<Item = Duration>>(&mut self, latencies: I) {
        latencies
            .into_iter()
            .for_each(|latency| self.record(latency));
    }
}

impl Report {
    /// Delivered tasks per second over the whole run.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.delivered as f64 / secs
        } else {
            0.0
        }
    }

    /// Adds `other`'s counts and latencies to these (not its elapsed time).
    pub fn add(&mut self, other: &Report) {
        self.add_counts(other);
        self.latencies.add(&other.latencies);
    }

    /// Adds `other`'s counts to these: what a progress line needs.
    pub fn add_counts(&mut self, other: &Report) {
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        self.retries += other.retries;
    }

    /// Whether every task was delivered.
    pub fn all_delivered(&self) -> bool {
        self.delivered == self.total
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sent        {} of {} tasks", self.sent, self.total)?;
        writeln!(f, "delivered   {}", self.delivered)?;
        writeln!(f, "failed      {}", self.failed)?;
        if self.cancelled > 0 {
            writeln!(f, "cancelled   {}", self.cancelled)?;
        }
        writeln!(f, "retries     {}", self.retries)?;
        writeln!(f, "elapsed     {:.2} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "throughput  {:.1} tasks/s", self.throughput())?;
        let show = |p| self.latencies.percentile(p).map_or("-".to_owned(), millis);
        write!(
            f,
            "latency     p50 {}  p90 {}  p99 {}  max {}  (delivered tasks, first attempt to 2xx)",
            show(50.0),
            show(90.0),
            show(99.0),
            show(100.0)
        )
    }
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Latencies {
        let mut latencies = Latencies::default();
        latencies.extend(values.iter().map(|&v| Duration::from_millis(v)));
        latencies
    }

    /// Within the histogram's 0.1 %.
    fn about(latency: Option<Duration>, millis: u64) -> bool {
        latency.is_some_and(|l| {
            l.as_micros().abs_diff(u128::from(millis) * 1000) <= u128::from(millis)
        })
    }

    #[test]
    fn percentiles_use_the_nearest_rank_to_a_tenth_of_a_percent() {
        let hundred = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(hundred.len(), 100);
        for (p, expected) in [(50.0, 50), (99.0, 99), (100.0, 100), (0.0, 1)] {
            assert!(
                about(hundred.percentile(p), expected),
                "p{p}: {:?}",
                hundred.percentile(p)
            );
        }
        let few = ms(&[10, 20, 30]);
        assert!(about(few.percentile(50.0), 20) && about(few.percentile(90.0), 30));
        assert_eq!(Latencies::default().percentile(50.0), None);
    }

    #[test]
    fn latencies_take_constant_memory_and_clamp_the_extremes() {
        let mut latencies = Latencies::default();
        latencies.extend([Duration::ZERO, Duration::from_secs(86_400)]);
        assert_eq!(latencies.len(), 2);
        assert_eq!(latencies.percentile(0.0), Some(Duration::from_micros(1)));
        let hour = latencies.percentile(100.0).expect("two latencies");
        assert!(hour.as_secs().abs_diff(3600) <= 4, "{hour:?}");
    }

    #[test]
    fn reports_add_up_counts_and_latencies_but_keep_their_total() {
        let mut sum = Report {
            total: 5,
            ..Report::default()
        };
        let part = |delivered, failed, latencies: &[u64]| Report {
            total: 5,
            sent: delivered + failed,
            delivered,
            failed,
            retries: 1,
            latencies: ms(latencies),
            ..Report::default()
        };

        sum.add(&part(2, 1, &[10, 30]));
        sum.add(&part(2, 0, &[20, 40]));

        assert_eq!(
            (sum.total, sum.sent, sum.delivered, sum.failed, sum.retries),
            (5, 5, 4, 1, 2)
        );
        assert_eq!(sum.latencies.len(), 4);
        assert!(about(sum.latencies.percentile(50.0), 20));
        assert!(about(sum.latencies.percentile(100.0), 40));
    }

    #[test]
    fn the_report_shows_counts_throughput_and_latencies() {
        let report = Report {
            total: 4,
            sent: 4,
            delivered: 3,
            failed: 1,
            retries: 2,
            elapsed: Duration::from_secs(2),
            latencies: ms(&[30, 10, 20]),
            ..Report::default()
        };
        assert!((report.throughput() - 1.5).abs() < 1e-9);
        assert!(!report.all_delivered());
        assert!(about(report.latencies.percentile(50.0), 20));
        let text = report.to_string();
        for expected in [
            "sent        4 of 4",
            "failed      1",
            "retries     2",
            "1.5 tasks/s",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        assert!(
            text.contains("p50 20.0 ms") && text.contains("max 30.0 ms"),
            "{text}"
        );
        assert!(!text.contains("cancelled"));
    }
}
