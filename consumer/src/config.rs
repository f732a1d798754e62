//! Command-line flags, each with an environment-variable fallback.

use crate::broker::dedupe::{self, DedupeWindow};
use taskhooks_shared::Secret;

/// The consumer's settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "consumer", version, about)]
pub struct Config {
    /// Address to listen on (use 0.0.0.0:5001 inside a container; port 0 picks a free one).
    #[arg(long, env = "BIND", default_value = "127.0.0.1:5001")]
    pub bind: String,

    /// Redis URL (redis://host:6379, redis+unix:///path). Without it an in-process
    /// broker is used: only this process's dashboards see events.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Shared webhook secret, `whsec_<base64>`; the producer must use the same one.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,

    /// Accept unsigned webhooks when no secret is set (for the original Python producer).
    #[arg(long, env = "ALLOW_UNSIGNED")]
    pub allow_unsigned: bool,

    /// Redis pub/sub channel, also the prefix of the keys holding totals.
    #[arg(long, env = "REDIS_CHANNEL", default_value = "taskhooks")]
    pub channel: String,

    /// Where the producer page is, for the dashboard's "no tasks yet" hint.
    #[arg(long, env = "PRODUCER_URL", default_value = "http://127.0.0.1:5000")]
    pub producer_url: String,

    /// How long a webhook id is remembered to drop retries (e.g. 90s, 10m, 1h; 1s to
    /// 24h). A retry arriving later is counted again. Every replica must use the same.
    #[arg(long, env = "DEDUPE_WINDOW", default_value = dedupe::DEFAULT_WINDOW,
          value_parser = dedupe::parse_window)]
    pub dedupe_window: DedupeWindow,
}

/// The message given when neither a secret nor `--allow-unsigned` is set.
pub const MISSING_SECRET: &str = "no webhook secret: set WEBHOOK_SECRET (or --webhook-secret) to a \
    whsec_<base64> value shared with the producer, for example \
    `export WEBHOOK_SECRET=whsec_$(head -c32 /dev/urandom | base64)`; or pass --allow-unsigned \
    to accept unsigned webhooks";
