//! The fan-out benchmark's client (`scripts/bench-stages/fanout.sh`): one process
//! opens `--sockets` dashboard WebSockets to the consumer's `/ws`, as a browser
//! would (with the page's own `Origin`), and checks for every socket that every
//! event of the window `(--after-seq, --after-seq + --events]` is accounted for
//! exactly once by its `seq` (received, or covered by a snapshot: see [`tally`]).
//! The latency from each task's `created_at` to the arrival of its frame goes into
//! an HDR histogram. It prints `ready: …` on stderr once every socket has its first
//! snapshot (start the load then), and one JSON line on stdout at the end: once
//! every socket is complete, or once no frame has come for `--quiet-secs` (the load
//! is over and what is missing will not come: a slow machine sends the load for
//! longer, and is still measured), or `--timeout-secs` after `ready`. The exit status is
//! 0 when every socket got every event exactly once, 1 otherwise. A socket that the
//! consumer closed is counted in `dropped_by_consumer`, with the first close code and
//! reason ([`Dropped`]).
//!
//! Kept cheap so that it is not what is measured: one multi-threaded runtime, one
//! task per socket, events frames scanned for `seq` and `created_at` only
//! ([`frames`]), one lock per frame for the latencies. `created_at` is in whole
//! milliseconds, stamped by the producer when it starts a delivery: each latency is
//! the true one plus 0 to 1 ms.
//!
//! `cargo run --release -p consumer --example wsclient -- --url ws://127.0.0.1:5001/ws --sockets 10 --events 1000 --after-seq "$(curl -s 127.0.0.1:5001/api/stats | jq .seq)"`

mod frames;
mod tally;

use anyhow::Context as _;
use clap::Parser as _;
use frames::Frame;
use futures_util::{StreamExt as _, TryStreamExt as _};
use hdrhistogram::Histogram;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tally::Tally;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The client's flags.
#[derive(Debug, clap::Parser)]
struct Args {
    /// The consumer's dashboard socket.
    #[arg(long, default_value = "ws://127.0.0.1:5001/ws")]
    url: String,
    /// Sockets to open, all in this process.
    #[arg(long, default_value_t = 10)]
    sockets: usize,
    /// Events every socket must account for, those after --after-seq.
    #[arg(long)]
    events: u64,
    /// The consumer's last `seq` before the events (`seq` of `GET /api/stats`).
    #[arg(long, default_value_t = 0)]
    after_seq: u64,
    /// Give up this many seconds after every socket is open.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Give up on a socket that has had no frame for this many seconds (the
    /// events still missing then are counted as missing).
    #[arg(long, default_value_t = 10)]
    quiet_secs: u64,
}

/// Handshakes in flight at once: a thousand at the same instant would overflow the
/// consumer's listen queue and measure SYN retries.
const OPENING_AT_ONCE: usize = 64;
/// How long one socket may take to open and get its first snapshot.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer per socket. tungstenite allocates its default, 128 KiB, at once:
/// 128 MB for 1,000 sockets; a frame larger than this is simply read in pieces.
const READ_BUFFER: usize = 16 * 1024;
/// Latency histograms, each shared by every `SHARDS`-th socket and locked once per
/// frame: one per socket would cost about 200 KB each.
const SHARDS: usize = 16;
/// The longest latency recorded as itself, in µs; a longer one counts as this.
const MAX_LATENCY_US: u64 = 60_000_000;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    anyhow::ensure!(args.sockets >= 1, "--sockets must be at least 1");
    anyhow::ensure!(args.events >= 1, "--events must be at least 1");
    let started = Instant::now();
    let sockets = open_all(&args).await?;
    let opened = started.elapsed();
    eprintln!(
        "ready: {} sockets open in {:.2} s",
        sockets.len(),
        opened.as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let quiet = Duration::from_secs(args.quiet_secs);
    let latencies = Arc::new(Latencies::new()?);
    let followers: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, (ws, tally))| {
            tokio::spawn(follow(ws, tally, deadline, quiet, latencies.clone(), i))
        })
        .collect();
    let mut ends = Vec::with_capacity(followers.len());
    for follower in followers {
        ends.push(follower.await.context("a socket's task panicked")?);
    }
    let summary = summarise(&ends, &latencies.merged()?, &args, opened);
    println!("{summary}");
    let ok = summary["ok"] == true;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Opens every socket, [`OPENING_AT_ONCE`] at a time, each with its first snapshot read.
async fn open_all(args: &Args) -> anyhow::Result<Vec<(Ws, Tally)>> {
    let origin = page_origin(&args.url)?;
    futures_util::stream::iter(0..args.sockets)
        .map(|index| {
            let opening = open(&args.url, &origin, args);
            async move {
                tokio::time::timeout(OPEN_TIMEOUT, opening)
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("no snapshot within {OPEN_TIMEOUT:?}")))
                    .with_context(|| {
                        format!(
                            "could not open socket {} of {} at {}",
                            index + 1,
                            args.sockets,
                            args.url
                        )
                    })
            }
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .try_collect()
        .await
}

/// The `Origin` a dashboard page served by the same consumer sends: the socket's
/// address with `http`/`https` for `ws`/`wss`, which the consumer's origin guard lets through.
fn page_origin(url: &str) -> anyhow::Result<HeaderValue> {
    let request = url
        .into_client_request()
        .with_context(|| format!("--url {url} is not a ws:// or wss:// URL"))?;
    let uri = request.uri();
    let scheme = if uri.scheme_str() == Some("wss") {
        "https"
    } else {
        "http"
    };
    let authority = uri.authority().context("--url has no host")?;
    Ok(HeaderValue::from_str(&format!("{scheme}://{authority}"))?)
}

async fn open(url: &str, origin: &HeaderValue, args: &Args) -> anyhow::Result<(Ws, Tally)> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(header::ORIGIN, origin.clone());
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(refusal)?;
    let mut tally = Tally::new(args.after_seq, args.events);
    match next_frame(&mut ws).await? {
        Frame::Snapshot { seq } => tally.snapshot(seq),
        other => anyhow::bail!("the first frame was not a snapshot but {other:?}"),
    }
    Ok((ws, tally))
}

/// A failed handshake, with what to do about it.
fn refusal(err: WsError) -> anyhow::Error {
    match err {
        WsError::Http(response) => {
            let body = response.body().clone().unwrap_or_default();
            let hint = if response.status().as_u16() == 503 {
                " (more sockets than the consumer's --max-websockets?)"
            } else {
                ""
            };
            anyhow::anyhow!(
                "the consumer answered {}{hint}: {}",
                response.status(),
                String::from_utf8_lossy(&body)
            )
        }
        WsError::Io(io) if io.raw_os_error() == Some(24) => anyhow::anyhow!(
            "{io}: this process is out of file descriptors; raise the limit (`ulimit -n`)"
        ),
        other => anyhow::Error::new(other).context("the WebSocket handshake failed"),
    }
}

/// The next text frame, parsed; pings are answered by tungstenite itself.
async fn next_frame(ws: &mut Ws) -> anyhow::Result<Frame> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                return frames::parse(text.as_str()).map_err(anyhow::Error::msg);
            }
            Some(Ok(Message::Close(frame))) => {
                let reason = frame.map_or_else(
                    || "no reason given".to_owned(),
                    |frame| format!("{} {}", u16::from(frame.code), frame.reason),
                );
                // The bench stage reads the JSON line with sed and puts the reason in
                // a Markdown table: no quote, backslash, comma, bar or control character.
                let reason = reason.replace(
                    |c: char| matches!(c, '"' | '\\' | ',' | '|') || c.is_control(),
                    " ",
                );
                return Err(Dropped(reason).into());
            }
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(anyhow::Error::new(err).context("reading the socket")),
            None => anyhow::bail!("the connection ended"),
        }
    }
}

/// The consumer closed the socket, with this code and reason: in a run most likely
/// 1008, a client too far behind to answer its pings in time, which is the server
/// keeping its memory bounded, not a lost event (else 1001, the consumer stopping,
/// or 1013, its store unavailable).
#[derive(Debug)]
struct Dropped(String);

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the consumer closed the socket: {}", self.0)
    }
}

impl std::error::Error for Dropped {}

/// How one socket's run ended.
struct SocketEnd {
    tally: Tally,
    /// When its first events frame arrived.
    first_event: Option<Instant>,
    /// When it had accounted for every event.
    completed: Option<Instant>,
    /// Why it stopped before that.
    error: Option<String>,
    /// The consumer's close reason, when that is why.
    dropped: Option<String>,
}

/// Reads one socket until it has accounted for every event, or `deadline`, or
/// `quiet` passed without a frame.
async fn follow(
    mut ws: Ws,
    mut tally: Tally,
    deadline: Instant,
    quiet: Duration,
    latencies: Arc<Latencies>,
    index: usize,
) -> SocketEnd {
    let mut first_event = None;
    let reading = async {
        while !tally.complete() {
            let frame = tokio::time::timeout(quiet, next_frame(&mut ws))
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "no frame for {} s with events still missing",
                        quiet.as_secs()
                    )
                })??;
            match frame {
                Frame::Snapshot { seq } => tally.snapshot(seq),
                Frame::Unavailable => tally.unavailable += 1,
                Frame::Events(events) => {
                    first_event.get_or_insert_with(Instant::now);
                    record(&mut tally, &events, &mut latencies.shard(index));
                }
            }
        }
        anyhow::Ok(())
    };
    let (error, dropped) = match tokio::time::timeout_at(deadline, reading).await {
        Ok(Ok(())) => (None, None),
        Ok(Err(err)) => {
            let dropped = err.downcast_ref::<Dropped>().map(|d| d.0.clone());
            (Some(format!("{err:#}")), dropped)
        }
        Err(_) => (
            Some("timed out before every event arrived".to_owned()),
            None,
        ),
    };
    let completed = tally.complete().then(Instant::now);
    // A polite close, but the run's result does not depend on it.
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    SocketEnd {
        tally,
        first_event,
        completed,
        error,
        dropped,
    }
}

/// Counts one events frame and records the latency of each first arrival.
fn record(tally: &mut Tally, events: &[(u64, Option<u64>)], latencies: &mut Histogram<u64>) {
    let now_us = micros_since_epoch();
    for &(seq, created_at) in events {
        if tally.event(seq)
            && let Some(created_at) = created_at
        {
            latencies.saturating_record(now_us.saturating_sub(created_at.saturating_mul(1000)));
        }
    }
}

fn micros_since_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Latency histograms in µs, in [`SHARDS`].
struct Latencies(Vec<Mutex<Histogram<u64>>>);

impl Latencies {
    fn new() -> anyhow::Result<Latencies> {
        let shards = (0..SHARDS)
            .map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Latencies(shards))
    }

    /// The shard of socket `index`.
    fn shard(&self, index: usize) -> MutexGuard<'_, Histogram<u64>> {
        // A poisoned histogram is still a histogram: a panic cannot leave it half-written
        // in a way that matters here.
        self.0[index % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn merged(&self) -> anyhow::Result<Histogram<u64>> {
        let mut all = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?;
        for index in 0..SHARDS {
            all.add(&*self.shard(index))?;
        }
        Ok(all)
    }
}

/// The one line of results.
fn summarise(
    ends: &[SocketEnd],
    latencies: &Histogram<u64>,
    args: &Args,
    opened: Duration,
) -> serde_json::Value {
    let sum = |field: fn(&Tally) -> u64| ends.iter().map(|end| field(&end.tally)).sum::<u64>();
    let received = ends.iter().map(|end| end.tally.received);
    let complete = ends.iter().filter(|end| end.completed.is_some()).count();
    let errors: Vec<&str> = ends.iter().filter_map(|end| end.error.as_deref()).collect();
    for error in errors.iter().take(5) {
        eprintln!("a socket stopped early: {error}");
    }
    let dropped: Vec<&str> = ends
        .iter()
        .filter_map(|end| end.dropped.as_deref())
        .collect();
    let first = ends.iter().filter_map(|end| end.first_event).min();
    let last = ends.iter().filter_map(|end| end.completed).max();
    let duration = first
        .zip(last)
        .map_or(0.0, |(first, last)| (last - first).as_secs_f64());
    let (duplicates, gaps) = (sum(|t| t.duplicates), sum(|t| t.gaps));
    let ms = |quantile: f64| latencies.value_at_quantile(quantile) as f64 / 1000.0;
    serde_json::json!({
        "sockets": args.sockets,
        "events_per_socket": args.events,
        "complete_sockets": complete,
        "received_total": sum(|t| t.received),
        "received_min": received.clone().min().unwrap_or(0),
        "received_max": received.max().unwrap_or(0),
        "before_open": sum(|t| t.before_open),
        "in_snapshots": sum(|t| t.in_snapshots),
        "resyncs": sum(|t| t.resyncs),
        "duplicates": duplicates,
        "gaps": gaps,
        "missing": sum(Tally::missing),
        "unavailable": sum(|t| t.unavailable),
        "errors": errors.len(),
        "dropped_by_consumer": dropped.len(),
        "dropped_reason": dropped.first().copied().unwrap_or(""),
        "latency_samples": latencies.len(),
        "latency_p50_ms": ms(0.5),
        "latency_p90_ms": ms(0.9),
        "latency_p99_ms": ms(0.99),
        "latency_max_ms": latencies.max() as f64 / 1000.0,
        "created_at_resolution_ms": 1,
        "open_seconds": opened.as_secs_f64(),
        "duration_seconds": duration,
        "ok": complete == ends.len() && duplicates == 0 && gaps == 0,
    })
}
