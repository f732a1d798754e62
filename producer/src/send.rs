//! Headless mode, `producer send`: one batch of `--count` tasks from the command
//! line, a progress bar on a terminal (a plain line a second otherwise), then the
//! [`Report`]. The exit status is non-zero when any task was not delivered.

use crate::config::SendArgs;
use crate::delivery::Deliverer;
use crate::generator::Generator;
use crate::report::Report;
use crate::runner::{Queued, Runner, Sink, State, Summary, TaskEvent};
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use taskhooks_shared::redact_url;
use taskhooks_shared::web::shutdown_signal;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How often a plain (non-terminal) progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(1);
/// Failed tasks listed one by one; more are only counted, so a dead target does
/// not flood the terminal.
const MAX_FAILURES_LISTED: u64 = 20;
const BAR_TEMPLATE: &str = "{elapsed_precise} [{wide_bar}] {pos}/{len} {per_sec} {msg}";

/// `producer send` from the binary's `main`: builds a multi-threaded runtime of
/// `--threads` workers (one per core by default), so that generating, signing and
/// sending use every core, and runs [`run`] on it until the batch is over or
/// Ctrl-C or SIGTERM stops it.
pub fn run_on_all_cores(args: SendArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads()?)
        .thread_name("producer-send")
        .enable_all()
        .build()
        .context("could not start the runtime's worker threads")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(shutdown_signal(shutdown.clone()));
        // Spawned, not awaited in place: `block_on` polls its future on this main
        // thread, outside the workers, so every delivery that ends would have to
        // wake it across threads (a futex call per task, seen with `perf`). On a
        // worker, the runner is woken where the deliveries run.
        tokio::spawn(run(args, shutdown))
            .await
            .context("the send task ended abnormally")?
    })
}

/// Runs `producer send`, prints the report on stdout and returns the exit status:
/// 0 when every task was delivered, 1 otherwise.
pub async fn run(args: SendArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let report = execute(args, shutdown).await?;
    println!("{report}");
    Ok(if report.all_delivered() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Sends the batch on the caller's runtime (`args.threads` is for
/// [`run_on_all_cores`]) and returns the report; cancelling `shutdown` stops it early.
pub async fn execute(args: SendArgs, shutdown: CancellationToken) -> anyhow::Result<Report> {
    anyhow::ensure!(args.count >= 1, "--count must be at least 1");
    let concurrency = args.concurrency.unwrap_or(args.delivery.max_in_flight);
    anyhow::ensure!(concurrency >= 1, "--concurrency must be at least 1");
    let pace = pace_for(args.rate)?;
    let deliverer = Deliverer::new(args.delivery.settings()?, concurrency)?;
    let tasks = Generator::new(args.delivery.seed).batch_of(args.count);
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    eprintln!(
        "sending {} task{} (batch {}) to {}, at most {concurrency} in flight, {}, on {threads} thread{}",
        args.count,
        if args.count == 1 { "" } else { "s" },
        tasks.batchid,
        redact_url(deliverer.target().as_str()),
        args.rate
            .map_or("as fast as possible".to_owned(), |r| format!(
                "{r} per second"
            )),
        if threads == 1 { "" } else { "s" },
    );
    let progress = Arc::new(Progress::new(args.count));
    let ticker = progress.start_plain_lines();
    let runner = Runner {
        deliverer: Arc::new(deliverer),
        in_flight: Arc::new(Semaphore::new(concurrency)),
        pace,
        stop: shutdown,
    };
    let summary = runner
        .run(
            (1..)
                .zip(tasks)
                .map(|(index, task)| Queued::fresh(index, task)),
            (args.count, args.count),
            progress.clone(),
        )
        .await;
    ticker.cancel();
    Ok(progress.report(&summary))
}

/// The pace for `--rate` tasks per second (none: zero, no pacing).
fn pace_for(rate: Option<f64>) -> anyhow::Result<Duration> {
    let Some(rate) = rate else {
        return Ok(Duration::ZERO);
    };
    anyhow::ensure!(
        rate.is_finite() && rate > 0.0,
        "--rate must be a positive number of tasks per second, got {rate}"
    );
    Ok(Duration::from_secs_f64(1.0 / rate))
}

/// The headless sink: counts for the report, a bar or plain lines for the eye.
struct Progress {
    total: u64,
    bar: Option<ProgressBar>,
    report: Mutex<Report>,
    failures: AtomicU64,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let style = ProgressStyle::with_template(BAR_TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = ProgressBar::new(total).with_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            total,
            bar,
            report: Mutex::new(Report {
                total,
                ..Report::default()
            }),
            failures: AtomicU64::new(0),
        }
    }

    fn with_report<T>(&self, f: impl FnOnce(&mut Report) -> T) -> T {
        f(&mut self.report.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Without a terminal, prints a progress line every [`PLAIN_EVERY`] until the
    /// returned token is cancelled.
    fn start_plain_lines(self: &Arc<Self>) -> CancellationToken {
        let done = CancellationToken::new();
        if self.bar.is_some() {
            return done;
        }
        let (progress, stop) = (self.clone(), done.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PLAIN_EVERY);
            every.tick().await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = every.tick() => eprintln!("{}", progress.line()),
                }
            }
        });
        done
    }

    fn line(&self) -> String {
        self.with_report(|r| {
            let finished = r.delivered + r.failed + r.cancelled;
            let cancelled = if r.cancelled > 0 {
                format!(", {} cancelled", r.cancelled)
            } else {
                String::new()
            };
            format!(
                "{finished}/{} done: {} delivered, {} failed{cancelled}, {} retries",
                self.total, r.delivered, r.failed, r.retries
            )
        })
    }

    fn say(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn report(&self, summary: &Summary) -> Report {
        self.with_report(|r| {
            r.elapsed = summary.elapsed;
            r.clone()
        })
    }

    fn note_failure(&self, event: &TaskEvent) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= MAX_FAILURES_LISTED {
            let error = event.error.as_deref().unwrap_or("unknown error");
            self.say(&format!(
                "task {} of {} failed: {error}",
                event.index, event.total
            ));
        } else if n == MAX_FAILURES_LISTED + 1 {
            self.say("(further failures are counted, not listed)");
        }
    }
}

impl Sink for Progress {
    fn publish(&self, event: TaskEvent) {
        let finished = self.with_report(|r| match event.state {
            State::Queued => false,
            State::Sending => {
                r.sent += 1;
                false
            }
            State::Retrying => {
                r.retries += 1;
                false
            }
            State::Delivered => {
                r.delivered += 1;
                r.latencies.extend(event.elapsed);
                true
            }
            State::Failed => {
                r.failed += 1;
                true
            }
            State::Cancelled => {
                r.cancelled += 1;
                true
            }
        });
        if event.state == State::Failed {
            self.note_failure(&event);
        }
        if let (true, Some(bar)) = (finished, &self.bar) {
            bar.inc(1);
            bar.set_message(self.line());
        }
    }

    /// Tasks never sent are only counted: stopping a huge run is instant.
    fn each_unsent(&self) -> bool {
        false
    }

    fn unsent(&self, count: u64) {
        self.with_report(|r| r.cancelled += count);
        if let Some(bar) = &self.bar {
            bar.inc(count);
        }
    }

    fn finish(&self, _summary: &Summary) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{}", self.line()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_becomes_a_pace() {
        assert_eq!(pace_for(None).ok(), Some(Duration::ZERO));
        assert_eq!(pace_for(Some(200.0)).ok(), Some(Duration::from_millis(5)));
        for bad in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            assert!(pace_for(Some(bad)).is_err(), "{bad}");
        }
    }
}
