//! Command-line flags, each with an environment-variable fallback, and their
//! validation into the settings the rest of the program uses.
//!
//! `producer [serve]` runs the web page ([`Config`]), `producer send` one headless
//! batch ([`SendArgs`]); both take the delivery flags ([`DeliveryArgs`]).

use crate::delivery::DeliverySettings;
use crate::delivery::retry::RetryPolicy;
use anyhow::Context as _;
use std::time::Duration;
use taskhooks_shared::redact_url;
use taskhooks_shared::signing::Signing;
use taskhooks_shared::web::origin::OriginPolicy;

/// The command line: a subcommand, or the web page's flags (`producer --bind …`
/// is `producer serve --bind …`).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "producer",
    version,
    about,
    args_override_self = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; without a subcommand, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The web page's flags, when no subcommand is given.
    #[command(flatten)]
    pub serve: Config,
}

/// The subcommands.
// One is parsed, once, at start: its size does not matter, and clap reads the
// variants' fields as they are.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Run the web page (the default).
    #[command(args_override_self = true)]
    Serve(Config),
    /// Send one batch from the command line and print a report (a load generator).
    #[command(args_override_self = true)]
    Send(SendArgs),
}

/// How webhooks are made and delivered: the flags `serve` and `send` share.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Delivery")]
pub struct DeliveryArgs {
    /// Where webhooks are sent: the consumer's /consumetasks (http or https).
    #[arg(
        long,
        env = "WEBHOOK_RECEIVER_URL",
        default_value = "http://127.0.0.1:5001/consumetasks",
        hide_env_values = true
    )]
    pub target: String,

    /// Shared webhook secret, `whsec_<base64>` of 24 to 64 bytes; the consumer must hold
    /// the same one. Several, space-separated, to rotate: each webhook is signed with all.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Send webhooks without signature headers (for a receiver that does not check them).
    #[arg(long, env = "SEND_UNSIGNED")]
    pub unsigned: bool,

    /// Seconds one delivery attempt may take, connection included (fractions allowed).
    #[arg(long, env = "TIMEOUT_SECS", default_value_t = 5.0)]
    pub timeout_secs: f64,

    /// Seconds to establish a connection (fractions allowed).
    #[arg(long, env = "CONNECT_TIMEOUT_SECS", default_value_t = 2.0)]
    pub connect_timeout_secs: f64,

    /// Attempts per task, the first included (1: never retry).
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,

    /// Milliseconds before the first retry; doubled for each further one, with jitter.
    #[arg(long, env = "RETRY_BACKOFF_MS", default_value_t = 500)]
    pub retry_backoff_ms: u64,

    /// Most deliveries in flight at once, over all batches.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 32)]
    pub max_in_flight: usize,

    /// Seed for the task generator: the same seed gives the same batches.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// The web page's settings (`producer serve`, or `producer` alone).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "producer",
    args_override_self = true,
    next_help_heading = "Web page"
)]
pub struct Config {
    /// Address the web page listens on (port 0 picks a free one).
    #[arg(long, env = "BIND", default_value = "127.0.0.1:5000")]
    pub bind: String,

    /// Smallest batch the page produces by default.
    #[arg(long, env = "MIN_NBR_TASKS", default_value_t = 1)]
    pub min_tasks: u32,

    /// Largest batch the page produces by default.
    #[arg(long, env = "MAX_NBR_TASKS", default_value_t = 100)]
    pub max_tasks: u32,

    /// Milliseconds between the starts of two deliveries of a page batch (0: as fast as
    /// possible).
    #[arg(long, env = "WAIT_TIME_MS", default_value_t = 50)]
    pub pace_ms: u64,

    /// The consumer's dashboard, linked from the page.
    #[arg(
        long,
        env = "DASHBOARD_URL",
        default_value = "http://127.0.0.1:5001",
        hide_env_values = true
    )]
    pub dashboard_url: String,

    /// Pages of other origins allowed to start and stop batches, comma-separated
    /// (`https://tasks.example`); the page's own origin on localhost or an IP
    /// address needs no entry.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Host names the page may be opened by, comma-separated (`tasks.example`);
    /// localhost and IP addresses need no entry (a guard against DNS rebinding).
    #[arg(long, env = "ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// The address the page's port is published on (docker-compose.yml passes
    /// TASKHOOKS_HOST). Beyond loopback, a missing or the public demo secret is refused.
    #[arg(long, env = "PUBLISHED_ON")]
    pub published_on: Option<String>,

    /// Most batch event streams (`GET /batches/{id}/events`) open at once, over every
    /// batch; one more is refused with 503 and `Retry-After`. With REDIS_URL each open
    /// stream holds a Redis connection of its own, so this also bounds those.
    #[arg(long, env = "MAX_EVENT_STREAMS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_event_streams: u32,

    /// Redis URL (redis://host:6379, rediss://user:password@host:6380 for TLS and an
    /// ACL user, redis+unix:///path) of a durable outbox:
    /// batches are written there before they are answered, survive a producer
    /// crash, and are shared by every producer on it. Without it, batches live in
    /// this process's memory only.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// A Redis Cluster's seed nodes for the outbox, comma-separated
    /// (redis://10.0.0.1:7000,redis://10.0.0.2:7000; rediss:// and a user as for
    /// REDIS_URL). Instead of REDIS_URL, not with it.
    #[arg(long, env = "REDIS_CLUSTER_URLS", hide_env_values = true)]
    pub redis_cluster_urls: Option<String>,

    /// How many replicas must have a new batch before it is answered 202 (WAIT);
    /// else 503. Default: 1 with a REDIS_CLUSTER_URLS cluster that has replicas,
    /// else 0.
    #[arg(long, env = "REDIS_WAIT_REPLICAS")]
    pub redis_wait_replicas: Option<u32>,

    /// PEM file of the CA that signed the Redis servers' certificates, for
    /// rediss:// (TLS) URLs whose servers the system's store does not trust.
    #[arg(long, env = "REDIS_CA_CERT")]
    pub redis_ca_cert: Option<std::path::PathBuf>,

    /// How long a finished batch, its attempts and its events are kept in Redis
    /// (`30m`, `1h`, `2d`).
    #[arg(long, env = "KEEP_FINISHED", default_value = "1h", value_parser = humantime::parse_duration)]
    pub keep_finished: Duration,

    /// Most tasks waiting in the Redis outbox (queued or in flight, every batch
    /// of every producer together); a batch that would go past it is refused with
    /// 429, so a flood of batches cannot fill Redis. The default is what the
    /// in-memory mode allows: 64 running batches of the page's largest size.
    #[arg(long, env = "MAX_WAITING_TASKS", default_value_t = 640_000)]
    pub max_waiting_tasks: u64,

    /// How long a task may be pending on a producer that shows no sign of life
    /// before another producer takes it over (`30s`).
    #[arg(long, env = "CLAIM_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    pub claim_after: Duration,

    /// How webhooks are made and delivered.
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// Flags of `producer send`.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// How many tasks to send.
    #[arg(long)]
    pub count: u64,

    /// Tasks started per second (default: as fast as --concurrency allows).
    #[arg(long)]
    pub rate: Option<f64>,

    /// Most deliveries in flight (default: --max-in-flight).
    #[arg(long)]
    pub concurrency: Option<usize>,

    /// Threads that sign and send, each with its own runtime and share of the
    /// batch (default: one per available core).
    #[arg(long, env = "PRODUCER_THREADS")]
    pub threads: Option<usize>,

    /// How webhooks are made and delivered.
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// The most `--threads`: far beyond any core count here, so that a typo such as
/// `100000` is refused instead of starting that many threads.
const MAX_THREADS: usize = 1024;

impl Cli {
    /// The subcommand to run: `serve` with the page's flags when none was given.
    pub fn command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

impl SendArgs {
    /// The threads that send: `--threads`, or one per core the process
    /// may use (its CPU affinity and cgroup quota counted).
    pub(crate) fn worker_threads(&self) -> anyhow::Result<usize> {
        let Some(threads) = self.threads else {
            return Ok(std::thread::available_parallelism().map_or(1, usize::from));
        };
        anyhow::ensure!(
            (1..=MAX_THREADS).contains(&threads),
            "--threads / PRODUCER_THREADS must be from 1 to {MAX_THREADS}, got {threads}"
        );
        Ok(threads)
    }
}

impl DeliveryArgs {
    /// How requests are signed; fails when there is no secret and `--unsigned` is not set.
    pub(crate) fn signing(&self) -> anyhow::Result<Signing> {
        Ok(Signing::choose(
            self.webhook_secret.as_deref(),
            self.unsigned,
            "--unsigned",
        )?)
    }

    /// The validated delivery settings.
    pub(crate) fn settings(&self) -> anyhow::Result<DeliverySettings> {
        let target = reqwest::Url::parse(&self.target).with_context(|| {
            format!(
                "--target / WEBHOOK_RECEIVER_URL {:?}",
                redact_url(&self.target)
            )
        })?;
        anyhow::ensure!(
            matches!(target.scheme(), "http" | "https"),
            "--target / WEBHOOK_RECEIVER_URL must be an http:// or https:// URL, got {}",
            redact_url(target.as_str())
        );
        anyhow::ensure!(
            self.max_attempts >= 1,
            "--max-attempts / MAX_ATTEMPTS must be at least 1"
        );
        anyhow::ensure!(
            self.max_in_flight >= 1,
            "--max-in-flight / MAX_IN_FLIGHT must be at least 1"
        );
        Ok(DeliverySettings {
            target,
            signing: self.signing()?,
            timeout: seconds("--timeout-secs", self.timeout_secs)?,
            connect_timeout: seconds("--connect-timeout-secs", self.connect_timeout_secs)?,
            policy: RetryPolicy {
                max_attempts: self.max_attempts,
                base_backoff: Duration::from_millis(self.retry_backoff_ms),
                ..RetryPolicy::default()
            },
        })
    }
}

impl Config {
    /// Who may reach the producer from a browser, and start and stop batches.
    pub(crate) fn origin_policy(&self) -> anyhow::Result<OriginPolicy> {
        Ok(OriginPolicy::new(
            &self.allowed_origins,
            &self.allowed_hosts,
        )?)
    }

    /// Checks the default batch the page offers: its size range, and that it is
    /// paced to last no longer than [`crate::store::memory::MAX_BATCH_DURATION`].
    pub(crate) fn check_batch_range(&self) -> anyhow::Result<()> {
        crate::generator::check_range(self.min_tasks, self.max_tasks)
            .map_err(|why| anyhow::anyhow!("--min-tasks / --max-tasks: {why}"))?;
        let pace = Duration::from_millis(self.pace_ms);
        crate::store::memory::check_duration(self.max_tasks, pace)
            .map_err(|why| anyhow::anyhow!("--max-tasks / --pace-ms: {why}"))
    }
}

/// A positive, finite number of seconds as a duration.
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a positive number of seconds, got {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["producer"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).expect("arguments parse")
    }

    #[test]
    fn refuses_to_start_without_a_secret_unless_unsigned() {
        let err = parse(&[]).delivery.signing().expect_err("no secret");
        assert!(err.to_string().contains("WEBHOOK_SECRET"), "{err}");
        assert!(matches!(
            parse(&["--unsigned"]).delivery.signing(),
            Ok(Signing::Unsigned)
        ));
    }

    #[test]
    fn send_takes_the_delivery_flags_and_no_subcommand_means_serve() {
        let cli = Cli::try_parse_from([
            "producer",
            "send",
            "--count",
            "3",
            "--target",
            "http://x/y",
            "--seed",
            "7",
        ])
        .expect("arguments parse");
        let Some(Command::Send(args)) = cli.command else {
            panic!("not send: {cli:?}");
        };
        assert_eq!(args.count, 3);
        assert_eq!(args.delivery.target, "http://x/y");
        assert_eq!(args.delivery.seed, Some(7));

        let cli = Cli::try_parse_from(["producer", "--bind", "127.0.0.1:7", "--seed", "7"])
            .expect("arguments parse");
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.bind, "127.0.0.1:7");
        assert_eq!(cli.serve.delivery.seed, Some(7));
        let page_flag_to_send = ["producer", "send", "--count", "1", "--bind", "x:1"];
        assert!(Cli::try_parse_from(page_flag_to_send).is_err());
    }

    #[test]
    fn send_runs_on_one_thread_per_core_unless_told_and_refuses_zero() {
        let threads = |extra: &[&str]| {
            let mut all = vec!["producer", "send", "--count", "1"];
            all.extend_from_slice(extra);
            let Ok(Cli {
                command: Some(Command::Send(args)),
                ..
            }) = Cli::try_parse_from(all)
            else {
                panic!("not send: {extra:?}");
            };
            args.worker_threads()
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(threads(&[]).ok(), Some(cores));
        assert_eq!(threads(&["--threads", "3"]).ok(), Some(3));
        for bad in ["0", "1025"] {
            let err = threads(&["--threads", bad]).expect_err("out of range");
            assert!(err.to_string().contains("PRODUCER_THREADS"), "{err}");
        }
    }

    #[test]
    fn bad_targets_and_timeouts_are_explained() {
        let bad = [
            &["--unsigned", "--target", "ftp://x"][..],
            &["--unsigned", "--timeout-secs", "0"],
            &["--unsigned", "--max-attempts", "0"],
        ];
        for args in bad {
            assert!(parse(args).delivery.settings().is_err(), "{args:?}");
        }
        assert!(
            parse(&["--unsigned", "--timeout-secs", "0.25"])
                .delivery
                .settings()
                .is_ok()
        );
    }

    #[test]
    fn the_durable_outbox_is_off_by_default_and_its_durations_read_as_words() {
        let memory = parse(&[]);
        assert_eq!(memory.redis_url, None);
        assert_eq!(memory.keep_finished, Duration::from_secs(3600));
        assert_eq!(memory.claim_after, Duration::from_secs(30));
        let durable = parse(&[
            "--redis-url",
            "redis://r:6379",
            "--keep-finished",
            "2d",
            "--claim-after",
            "500ms",
        ]);
        assert_eq!(durable.redis_url.as_deref(), Some("redis://r:6379"));
        assert_eq!(durable.keep_finished, Duration::from_secs(2 * 86_400));
        assert_eq!(durable.claim_after, Duration::from_millis(500));
        let mut all = vec!["producer", "--keep-finished", "forever"];
        assert!(Config::try_parse_from(&all).is_err());
        all.truncate(1);
        assert!(Config::try_parse_from(all).is_ok());
    }

    #[test]
    fn a_default_batch_paced_over_an_hour_or_a_bad_allowed_origin_stops_the_start() {
        let slow = parse(&["--unsigned", "--max-tasks", "10000", "--pace-ms", "1000"]);
        let err = slow.check_batch_range().expect_err("too long");
        assert!(err.to_string().contains("--pace-ms"), "{err}");
        let bad = parse(&["--unsigned", "--allowed-origins", "tasks.example"]);
        let err = bad.origin_policy().expect_err("not an origin");
        assert!(err.to_string().contains("scheme://host"), "{err}");
        let good = parse(&["--allowed-origins", "https://a.example,https://b.example"]);
        assert_eq!(good.allowed_origins.len(), 2);
        assert!(good.origin_policy().is_ok());
    }
}
