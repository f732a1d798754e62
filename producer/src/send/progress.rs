//! The headless run's sink: each runtime of `producer send` counts its own
//! tasks in its own [`Shard`] (a lock no other thread takes while it runs), and
//! [`Progress`] adds the shards up: a bar or a plain line a second for the eye,
//! and the [`Report`] at the end.

use super::report::Report;
use crate::delivery::task::{Sink, State, TaskEvent};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskhooks_shared::sync::lock;
use tokio_util::sync::CancellationToken;

/// How often a plain (non-terminal) progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(1);
/// How often the bar (on a terminal) is brought up to date from the shards.
const BAR_EVERY: Duration = Duration::from_millis(200);
/// Failed tasks listed one by one; more are only counted, so a dead target does
/// not flood the terminal.
const MAX_FAILURES_LISTED: u64 = 20;
const BAR_TEMPLATE: &str = "{elapsed_precise} [{wide_bar}] {pos}/{len} {per_sec} {msg}";

/// The whole run's progress: one [`Shard`] per runtime.
pub(crate) struct Progress {
    total: u64,
    shards: Vec<Arc<Shard>>,
    out: Output,
}

/// Where lines go: above the bar on a terminal, else to stderr. Shared by the
/// shards, so that at most [`MAX_FAILURES_LISTED`] failures are listed in all.
#[derive(Clone)]
struct Output {
    bar: Option<ProgressBar>,
    failures: Arc<AtomicU64>,
}

/// One runtime's counts; the [`Sink`] its runner tells everything.
pub(crate) struct Shard {
    report: Mutex<Report>,
    out: Output,
}

impl Progress {
    /// Progress of `total` tasks counted in `shards` shards.
    pub(crate) fn new(total: u64, shards: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let style = ProgressStyle::with_template(BAR_TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = ProgressBar::new(total).with_style(style);
            bar.enable_steady_tick(BAR_EVERY);
            bar
        });
        let out = Output {
            bar,
            failures: Arc::new(AtomicU64::new(0)),
        };
        let shards = (0..shards)
            .map(|_| {
                Arc::new(Shard {
                    report: Mutex::new(Report {
                        total,
                        ..Report::default()
                    }),
                    out: out.clone(),
                })
            })
            .collect();
        Progress { total, shards, out }
    }

    /// The shards, one per runtime.
    pub(crate) fn shards(&self) -> &[Arc<Shard>] {
        &self.shards
    }

    /// Brings the bar up to date every [`BAR_EVERY`], or prints a plain line
    /// every [`PLAIN_EVERY`] without a terminal, until the returned token is
    /// cancelled. Runs on the caller's runtime, away from the deliveries.
    pub(crate) fn start_ticker(self: &Arc<Self>) -> CancellationToken {
        let done = CancellationToken::new();
        let (progress, stop) = (self.clone(), done.clone());
        let period = if self.out.bar.is_some() {
            BAR_EVERY
        } else {
            PLAIN_EVERY
        };
        tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            every.tick().await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => progress.show(),
                }
            }
        });
        done
    }

    fn show(&self) {
        let sum = self.sum(false);
        let line = self.line(&sum);
        match &self.out.bar {
            Some(bar) => {
                bar.set_position(finished(&sum));
                bar.set_message(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// The shards' counts added up, and their latencies when `latencies` is
    /// set (a progress line does without: the shards' locks are held shorter).
    fn sum(&self, latencies: bool) -> Report {
        let mut sum = Report {
            total: self.total,
            ..Report::default()
        };
        for shard in &self.shards {
            shard.with_report(|r| {
                if latencies {
                    sum.add(r);
                } else {
                    sum.add_counts(r);
                }
            });
        }
        sum
    }

    fn line(&self, r: &Report) -> String {
        let cancelled = if r.cancelled > 0 {
            format!(", {} cancelled", r.cancelled)
        } else {
            String::new()
        };
        format!(
            "{}/{} done: {} delivered, {} failed{cancelled}, {} retries",
            finished(r),
            self.total,
            r.delivered,
            r.failed,
            r.retries
        )
    }

    /// Ends the display (the bar is cleared; without a terminal a last line is
    /// printed) and returns the report of the run, which took `elapsed`.
    pub(crate) fn finish(&self, elapsed: Duration) -> Report {
        let mut report = self.sum(true);
        report.elapsed = elapsed;
        match &self.out.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{}", self.line(&report)),
        }
        report
    }
}

fn finished(r: &Report) -> u64 {
    r.delivered + r.failed + r.cancelled
}

impl Output {
    fn say(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn note_failure(&self, event: &TaskEvent) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= MAX_FAILURES_LISTED {
            let error = event.error.as_deref().unwrap_or("unknown error");
            self.say(&format!("task {} failed: {error}", event.task.id));
        } else if n == MAX_FAILURES_LISTED + 1 {
            self.say("(further failures are counted, not listed)");
        }
    }
}

impl Shard {
    fn with_report<T>(&self, f: impl FnOnce(&mut Report) -> T) -> T {
        f(&mut lock(&self.report))
    }
}

impl Sink for Shard {
    fn publish(&self, event: TaskEvent) {
        self.with_report(|r| match event.state {
            State::Queued => {}
            State::Sending => r.sent += 1,
            State::Retrying => r.retries += 1,
            State::Delivered => {
                r.delivered += 1;
                r.latencies.extend(event.elapsed);
            }
            State::Failed => r.failed += 1,
            State::Cancelled => r.cancelled += 1,
        });
        if event.state == State::Failed {
            self.out.note_failure(&event);
        }
    }
}

impl Shard {
    /// `count` tasks were never sent (the run was stopped): only counted, so
    /// that stopping a huge run is instant.
    pub(crate) fn unsent(&self, count: u64) {
        self.with_report(|r| r.cancelled += count);
    }
}
