//! The headless report: what was sent and what came of it, throughput, and
//! latency percentiles.

use std::fmt;
use std::time::Duration;

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
    pub latencies: Vec<Duration>,
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

    /// Whether every task was delivered.
    pub fn all_delivered(&self) -> bool {
        self.delivered == self.total
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least
/// `p` percent of the values at or below it.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
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
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let show = |p| percentile(&sorted, p).map_or("-".to_owned(), millis);
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

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&sorted, 0.0), Some(Duration::from_millis(1)));
        let few = ms(&[10, 20, 30]);
        assert_eq!(percentile(&few, 50.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&few, 90.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&[], 50.0), None);
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
        let mut sorted = report.latencies.clone();
        sorted.sort_unstable();
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(20)));
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
