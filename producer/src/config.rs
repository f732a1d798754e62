//! Command-line flags, each with an environment-variable fallback, and their
//! validation into the settings the rest of the program uses.

use crate::delivery::DeliverySettings;
use crate::retry::RetryPolicy;
use anyhow::Context as _;
use std::time::Duration;
use taskhooks_shared::redact_url;
use taskhooks_shared::signing::Signing;
use taskhooks_shared::web::origin::OriginPolicy;

/// The producer's settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "producer", version, about, args_override_self = true)]
pub struct Config {
    /// What to do; without a subcommand, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address the web page listens on (port 0 picks a free one).
    #[arg(
        long,
        env = "BIND",
        default_value = "127.0.0.1:5000",
        global = true,
        help_heading = "Web page (ignored by send)"
    )]
    pub bind: String,

    /// Where webhooks are sent: the consumer's /consumetasks (http or https).
    #[arg(
        long,
        env = "WEBHOOK_RECEIVER_URL",
        default_value = "http://127.0.0.1:5001/consumetasks",
        hide_env_values = true,
        global = true
    )]
    pub target: String,

    /// Shared webhook secret, `whsec_<base64>` of 24 to 64 bytes; the consumer must hold
    /// the same one. Several, space-separated, to rotate: each webhook is signed with all.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true, global = true)]
    pub webhook_secret: Option<String>,

    /// Send webhooks without signature headers (for a receiver that does not check them).
    #[arg(long, env = "SEND_UNSIGNED", global = true)]
    pub unsigned: bool,

    /// Smallest batch the page produces by default.
    #[arg(
        long,
        env = "MIN_NBR_TASKS",
        default_value_t = 1,
        global = true,
        help_heading = "Web page (ignored by send)"
    )]
    pub min_tasks: u32,

    /// Largest batch the page produces by default.
    #[arg(
        long,
        env = "MAX_NBR_TASKS",
        default_value_t = 100,
        global = true,
        help_heading = "Web page (ignored by send)"
    )]
    pub max_tasks: u32,

    /// Milliseconds between the starts of two deliveries of a page batch (0: as fast as
    /// possible); `send` uses --rate instead.
    #[arg(
        long,
        env = "WAIT_TIME_MS",
        default_value_t = 50,
        global = true,
        help_heading = "Web page (ignored by send)"
    )]
    pub pace_ms: u64,

    /// Seconds one delivery attempt may take, connection included (fractions allowed).
    #[arg(long, env = "TIMEOUT_SECS", default_value_t = 5.0, global = true)]
    pub timeout_secs: f64,

    /// Seconds to establish a connection (fractions allowed).
    #[arg(
        long,
        env = "CONNECT_TIMEOUT_SECS",
        default_value_t = 2.0,
        global = true
    )]
    pub connect_timeout_secs: f64,

    /// Attempts per task, the first included (1: never retry).
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 5, global = true)]
    pub max_attempts: u32,

    /// Milliseconds before the first retry; doubled for each further one, with jitter.
    #[arg(long, env = "RETRY_BACKOFF_MS", default_value_t = 500, global = true)]
    pub retry_backoff_ms: u64,

    /// Most deliveries in flight at once, over all batches.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 32, global = true)]
    pub max_in_flight: usize,

    /// The consumer's dashboard, linked from the page.
    #[arg(
        long,
        env = "DASHBOARD_URL",
        default_value = "http://127.0.0.1:5001",
        hide_env_values = true,
        global = true,
        help_heading = "Web page (ignored by send)"
    )]
    pub dashboard_url: String,

    /// Pages of other origins allowed to start and stop batches, comma-separated
    /// (`https://tasks.example`); the page's own origin on localhost or an IP
    /// address needs no entry.
    #[arg(
        long,
        env = "ALLOWED_ORIGINS",
        value_delimiter = ',',
        global = true,
        help_heading = "Web page (ignored by send)"
    )]
    pub allowed_origins: Vec<String>,

    /// Host names the page may be opened by, comma-separated (`tasks.example`);
    /// localhost and IP addresses need no entry (a guard against DNS rebinding).
    #[arg(
        long,
        env = "ALLOWED_HOSTS",
        value_delimiter = ',',
        global = true,
        help_heading = "Web page (ignored by send)"
    )]
    pub allowed_hosts: Vec<String>,

    /// The address the page's port is published on (docker-compose.yml passes
    /// TASKHOOKS_HOST). Beyond loopback, a missing or the public demo secret is refused.
    #[arg(
        long,
        env = "PUBLISHED_ON",
        global = true,
        help_heading = "Web page (ignored by send)"
    )]
    pub published_on: Option<String>,

    /// Seed for the task generator: the same seed gives the same batches.
    #[arg(long, global = true)]
    pub seed: Option<u64>,
}

/// The subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Run the web page (the default).
    Serve,
    /// Send one batch from the command line and print a report (a load generator).
    Send(SendArgs),
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
}

impl Config {
    /// How requests are signed; fails when there is no secret and `--unsigned` is not set.
    pub fn signing(&self) -> anyhow::Result<Signing> {
        Ok(Signing::choose(
            self.webhook_secret.as_deref(),
            self.unsigned,
            "--unsigned",
        )?)
    }

    /// The validated delivery settings.
    pub fn delivery(&self) -> anyhow::Result<DeliverySettings> {
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

    /// Who may start and stop batches from a browser.
    pub fn origin_policy(&self) -> anyhow::Result<OriginPolicy> {
        Ok(OriginPolicy::new(
            &self.allowed_origins,
            &self.allowed_hosts,
        )?)
    }

    /// Checks the default batch the page offers: its size range, and that it is
    /// paced to last no longer than [`crate::batches::MAX_BATCH_DURATION`].
    pub fn check_batch_range(&self) -> anyhow::Result<()> {
        crate::generator::check_range(self.min_tasks, self.max_tasks)
            .map_err(|why| anyhow::anyhow!("--min-tasks / --max-tasks: {why}"))?;
        let pace = Duration::from_millis(self.pace_ms);
        crate::batches::check_duration(self.max_tasks, pace)
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
        let err = parse(&[]).signing().expect_err("no secret");
        assert!(err.to_string().contains("WEBHOOK_SECRET"), "{err}");
        assert!(matches!(
            parse(&["--unsigned"]).signing(),
            Ok(Signing::Unsigned)
        ));
    }

    #[test]
    fn global_flags_may_follow_the_subcommand() {
        let config = parse(&[
            "send",
            "--count",
            "3",
            "--target",
            "http://x/y",
            "--seed",
            "7",
        ]);
        assert_eq!(config.target, "http://x/y");
        assert_eq!(config.seed, Some(7));
        assert!(matches!(
            config.command,
            Some(Command::Send(SendArgs { count: 3, .. }))
        ));
    }

    #[test]
    fn bad_targets_and_timeouts_are_explained() {
        let bad = [
            &["--unsigned", "--target", "ftp://x"][..],
            &["--unsigned", "--timeout-secs", "0"],
            &["--unsigned", "--max-attempts", "0"],
        ];
        for args in bad {
            assert!(parse(args).delivery().is_err(), "{args:?}");
        }
        assert!(
            parse(&["--unsigned", "--timeout-secs", "0.25"])
                .delivery()
                .is_ok()
        );
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
