//! Headless mode, `producer send`: one batch of `--count` tasks from the command
//! line, a progress bar on a terminal (a plain line a second otherwise), then the
//! [`Report`]. The exit status is non-zero when any task was not delivered.
//!
//! The batch is split between `--threads` threads, each with its own
//! single-threaded tokio runtime, its own HTTP client and its own share of the
//! tasks and of `--concurrency`: a delivery starts, is answered and ends on one
//! thread, so no thread wakes another per task (a multi-threaded runtime's work
//! stealing did, seen with `perf stat`). The tasks
//! come from the one seeded generator, handed out in chunks.

mod progress;
pub mod report;
mod runner;

use crate::config::SendArgs;
use crate::delivery::Deliverer;
use crate::delivery::task::Queued;
use crate::generator::{BatchTasks, Generator};
use anyhow::Context as _;
use progress::{Progress, Shard};
use report::Report;
use runner::Runner;
use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use taskhooks_shared::sync::lock;
use taskhooks_shared::web::shutdown_signal;
use taskhooks_shared::{Task, redact_url};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

/// Tasks a runtime takes from the generator at once: the generator's lock is
/// taken once per chunk, not once per task.
const CHUNK: usize = 64;

/// `producer send` from the binary's `main`: a single-threaded runtime on the
/// main thread hears Ctrl-C and SIGTERM and shows the progress, while [`run`]
/// sends the batch on `--threads` threads (one per core by default).
pub fn run_on_all_cores(args: SendArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the main thread's runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(shutdown_signal(shutdown.clone()));
        run(args, shutdown).await
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

/// Sends the batch on `--threads` threads of their own (see the module's doc)
/// and returns the report, its counts added up over the threads; cancelling
/// `shutdown` stops every thread's share.
pub async fn execute(args: SendArgs, shutdown: CancellationToken) -> anyhow::Result<Report> {
    anyhow::ensure!(args.count >= 1, "--count must be at least 1");
    let concurrency = args.concurrency.unwrap_or(args.delivery.max_in_flight);
    anyhow::ensure!(concurrency >= 1, "--concurrency must be at least 1");
    let pace = pace_for(args.rate)?;
    let settings = args.delivery.settings()?;
    let shares = split(args.count, concurrency, args.worker_threads()?);
    let tasks = Generator::new(args.delivery.seed).batch_of(args.count);
    eprintln!(
        "sending {} task{} (batch {}) to {}, at most {concurrency} in flight, {}, on {} thread{}",
        args.count,
        if args.count == 1 { "" } else { "s" },
        tasks.batchid,
        redact_url(settings.target.as_str()),
        args.rate
            .map_or("as fast as possible".to_owned(), |r| format!(
                "{r} per second"
            )),
        shares.len(),
        if shares.len() == 1 { "" } else { "s" },
    );
    let handout = Arc::new(Handout::new(tasks));
    let progress = Arc::new(Progress::new(args.count, shares.len()));
    let mut ends = Vec::with_capacity(shares.len());
    for (number, (share, shard)) in shares.iter().zip(progress.shards()).enumerate() {
        let part = Part {
            deliverer: Deliverer::new(settings.clone(), share.concurrency)?,
            tasks: Tasks::new(handout.clone(), share.count),
            total: args.count,
            concurrency: share.concurrency,
            // Each thread keeps every n-th slot of the pace, the next thread one
            // slot later, so that the starts stay evenly spread.
            pace: pace * shares.len() as u32,
            first_after: pace * number as u32,
            sink: shard.clone(),
            stop: shutdown.clone(),
        };
        ends.push(part.spawn(number)?);
    }
    let ticker = progress.start_ticker();
    let mut span: Option<(Instant, Instant)> = None;
    let mut failure = None;
    for end in ends {
        match end.await {
            Ok(Ok((start, end))) => {
                span = Some(span.map_or((start, end), |(s, e)| (s.min(start), e.max(end))));
            }
            Ok(Err(err)) => failure = Some(err),
            Err(_) => failure = Some(anyhow::anyhow!("a sending thread ended abnormally")),
        }
    }
    ticker.cancel();
    if let Some(err) = failure {
        return Err(err);
    }
    Ok(progress.finish(span.map_or(Duration::ZERO, |(start, end)| end - start)))
}

/// One thread's share of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Share {
    /// Tasks it sends.
    count: u64,
    /// Deliveries it has in flight at most.
    concurrency: usize,
}

/// Splits `count` tasks and `concurrency` between `threads` threads as evenly as
/// whole numbers allow (the first ones get one more), on no more threads than
/// there are tasks or slots in flight: every thread sends at least one task.
fn split(count: u64, concurrency: usize, threads: usize) -> Vec<Share> {
    let n = threads
        .min(concurrency)
        .min(usize::try_from(count).unwrap_or(usize::MAX));
    let n = n.max(1);
    let n64 = n as u64;
    (0..n)
        .map(|i| Share {
            count: count / n64 + u64::from((i as u64) < count % n64),
            concurrency: concurrency / n + usize::from(i < concurrency % n),
        })
        .collect()
}

/// What one thread runs.
struct Part {
    deliverer: Deliverer,
    tasks: Tasks,
    total: u64,
    concurrency: usize,
    pace: Duration,
    first_after: Duration,
    sink: Arc<Shard>,
    stop: CancellationToken,
}

impl Part {
    /// Starts the thread; the receiver gets when its share started and ended.
    fn spawn(
        self,
        number: usize,
    ) -> anyhow::Result<oneshot::Receiver<anyhow::Result<(Instant, Instant)>>> {
        let (done, ended) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("producer-send-{number}"))
            .spawn(move || {
                // A send fails only when `execute` is gone, which then needs no answer.
                let _ = done.send(self.run());
            })
            .context("could not start a sending thread")?;
        Ok(ended)
    }

    fn run(self) -> anyhow::Result<(Instant, Instant)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("could not start a sending thread's runtime")?;
        runtime.block_on(async move {
            let started = Instant::now();
            tokio::select! {
                biased;
                () = self.stop.cancelled() => {}
                () = tokio::time::sleep(self.first_after) => {}
            }
            let count = self.tasks.left;
            let runner = Runner {
                deliverer: Arc::new(self.deliverer),
                in_flight: Arc::new(Semaphore::new(self.concurrency)),
                pace: self.pace,
                stop: self.stop,
            };
            runner.run(self.tasks, (count, self.total), self.sink).await;
            Ok((started, Instant::now()))
        })
    }
}

/// The batch's tasks, numbered from 1, made by the one seeded generator and
/// handed out to the threads a chunk at a time.
struct Handout {
    next: Mutex<(u64, BatchTasks)>,
}

impl Handout {
    fn new(tasks: BatchTasks) -> Handout {
        Handout {
            next: Mutex::new((1, tasks)),
        }
    }

    /// Moves up to `n` next tasks, with their positions, into `into`.
    fn take(&self, n: usize, into: &mut VecDeque<(u64, Task)>) {
        let mut next = lock(&self.next);
        let (index, tasks) = &mut *next;
        for task in tasks.by_ref().take(n) {
            into.push_back((*index, task));
            *index += 1;
        }
    }
}

/// One thread's share of the tasks: `left` more from the [`Handout`].
struct Tasks {
    handout: Arc<Handout>,
    left: u64,
    chunk: VecDeque<(u64, Task)>,
}

impl Tasks {
    fn new(handout: Arc<Handout>, count: u64) -> Tasks {
        Tasks {
            handout,
            left: count,
            chunk: VecDeque::with_capacity(CHUNK),
        }
    }
}

impl Iterator for Tasks {
    type Item = Queued;

    fn next(&mut self) -> Option<Queued> {
        if self.left == 0 {
            return None;
        }
        if self.chunk.is_empty() {
            let n = usize::try_from(self.left).map_or(CHUNK, |left| left.min(CHUNK));
            self.handout.take(n, &mut self.chunk);
        }
        let (index, task) = self.chunk.pop_front()?;
        self.left -= 1;
        // The webhook-id is drawn here, on the sending thread, outside the lock.
        Some(Queued::fresh(index, task))
    }
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

    fn shares(count: u64, concurrency: usize, threads: usize) -> Vec<(u64, usize)> {
        split(count, concurrency, threads)
            .iter()
            .map(|s| (s.count, s.concurrency))
            .collect()
    }

    #[test]
    fn the_batch_and_its_slots_are_split_evenly_and_add_up_exactly() {
        assert_eq!(shares(20_001, 64, 2), [(10_001, 32), (10_000, 32)]);
        assert_eq!(shares(10, 5, 3), [(4, 2), (3, 2), (3, 1)]);
        assert_eq!(shares(7, 8, 1), [(7, 8)]);
    }

    #[test]
    fn no_thread_is_started_without_a_task_or_a_slot() {
        assert_eq!(shares(100, 1, 4), [(100, 1)], "one slot, one thread");
        assert_eq!(
            shares(2, 64, 8),
            [(1, 32), (1, 32)],
            "two tasks, two threads"
        );
        assert_eq!(shares(1, 1, 1024), [(1, 1)]);
    }

    #[test]
    fn the_threads_share_out_the_one_seeded_batch_each_task_once() {
        let expected: Vec<_> = Generator::new(Some(5)).batch_of(300).collect();
        let handout = Arc::new(Handout::new(Generator::new(Some(5)).batch_of(300)));
        let (mut a, mut b) = (Tasks::new(handout.clone(), 150), Tasks::new(handout, 150));

        let mut got = Vec::new();
        // Interleaved, as two threads would take them.
        loop {
            let (x, y) = (a.next(), b.next());
            if x.is_none() && y.is_none() {
                break;
            }
            got.extend(x.into_iter().chain(y));
        }

        got.sort_by_key(|q| q.index);
        let indexes: Vec<u64> = got.iter().map(|q| q.index).collect();
        assert_eq!(indexes, (1..=300).collect::<Vec<_>>());
        let tasks: Vec<_> = got.into_iter().map(|q| q.task).collect();
        assert_eq!(tasks, expected);
    }
}
