//! Command-line flags, each with an environment-variable fallback.

use crate::broker::dedupe::{self, DedupeWindow};
use std::time::Duration;

/// The consumer's settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "consumer", version, about)]
pub struct Config {
    /// Address to listen on (use 0.0.0.0:5001 inside a container; port 0 picks a free one).
    #[arg(long, env = "BIND", default_value = "127.0.0.1:5001")]
    pub bind: String,

    /// Redis URL (redis://host:6379, rediss://user:password@host:6380 for TLS and
    /// an ACL user, redis+unix:///path). Without it an in-process
    /// broker is used: only this process's dashboards see events.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// A Redis Cluster's seed nodes, comma-separated
    /// (redis://10.0.0.1:7000,redis://10.0.0.2:7000; rediss:// and a user as for
    /// REDIS_URL). Instead of REDIS_URL, not with it.
    #[arg(long, env = "REDIS_CLUSTER_URLS", hide_env_values = true)]
    pub redis_cluster_urls: Option<String>,

    /// How many replicas must have a webhook's write before it is answered 2xx
    /// (WAIT); else 503, and the sender retries. Default: 1 with a
    /// REDIS_CLUSTER_URLS cluster that has replicas, else 0.
    #[arg(long, env = "REDIS_WAIT_REPLICAS")]
    pub redis_wait_replicas: Option<u32>,

    /// PEM file of the CA that signed the Redis servers' certificates, for
    /// rediss:// (TLS) URLs whose servers the system's store does not trust.
    #[arg(long, env = "REDIS_CA_CERT")]
    pub redis_ca_cert: Option<std::path::PathBuf>,

    /// Shared webhook secret, `whsec_<base64>` of 24 to 64 bytes; the producer must use
    /// the same one. Several, space-separated, to rotate: a webhook signed by any is accepted.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Accept unsigned webhooks when no secret is set (for the original Python producer).
    #[arg(long, env = "ALLOW_UNSIGNED")]
    pub allow_unsigned: bool,

    /// The hash tag of the consumer's Redis keys, `{<channel>}:…`, and of its
    /// pub/sub channel, `{<channel>}:v2:events`.
    #[arg(long, env = "REDIS_CHANNEL", default_value = "taskhooks", value_parser = parse_channel)]
    pub channel: String,

    /// Where the producer page is, for the dashboard's "no tasks yet" hint.
    #[arg(
        long,
        env = "PRODUCER_URL",
        default_value = "http://127.0.0.1:5000",
        hide_env_values = true
    )]
    pub producer_url: String,

    /// The address the ports are published on (docker-compose.yml passes TASKHOOKS_HOST).
    /// Beyond loopback, a missing or the public demo secret is refused at start.
    #[arg(long, env = "PUBLISHED_ON")]
    pub published_on: Option<String>,

    /// How long a webhook id is remembered to drop retries (e.g. 90s, 10m, 1h; 1s to
    /// 24h). A retry arriving later is counted again. Every replica must use the same.
    #[arg(long, env = "DEDUPE_WINDOW", default_value = dedupe::DEFAULT_WINDOW,
          value_parser = dedupe::parse_window)]
    pub dedupe_window: DedupeWindow,

    /// Pages of other origins allowed to open the dashboard's WebSocket,
    /// comma-separated (`https://tasks.example`); the page's own origin on
    /// localhost or an IP address needs no entry.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Host names the dashboard may be opened by, comma-separated; localhost and
    /// IP addresses need no entry (a guard against DNS rebinding).
    #[arg(long, env = "ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Most open HTTP connections (WebSockets included), shared evenly among the worker
    /// threads; beyond it new connections wait in the listen queue until one closes.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most dashboard WebSockets open at once; one more is refused with 503 before the upgrade.
    #[arg(long, env = "MAX_WEBSOCKETS", default_value_t = 1_000)]
    pub max_websockets: usize,

    /// Least time between two events frames of this consumer's dashboards (e.g. 50ms;
    /// 0s to 1h): an event that finds them idle is sent at once, a burst in one frame
    /// per interval (longer with over 100 sockets).
    #[arg(long, env = "WS_FLUSH_INTERVAL", default_value = "2ms",
          value_parser = parse_flush_interval)]
    pub ws_flush_interval: Duration,

    /// Let /api/faults make this consumer refuse, delay or leave unanswered the
    /// webhooks it is told to (every replica on the same Redis alike), to watch
    /// retries and the dedupe at work. For demos and tests, never production.
    #[arg(long, env = "FAULT_INJECTION")]
    pub fault_injection: bool,
}

/// The longest `--ws-flush-interval` accepted: past it a dashboard is no longer live.
const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(3600);

/// Parses `--ws-flush-interval`: a duration with units (`2ms`, `1s`), from 0 (every
/// event in its own frame, no coalescing) to one hour.
fn parse_flush_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text)
        .map_err(|err| format!("{err}: give a duration with units, for example 2ms"))?;
    if interval > MAX_FLUSH_INTERVAL {
        return Err(format!(
            "{text} is over 1h: a dashboard would not be live; the default is 2ms"
        ));
    }
    Ok(interval)
}

/// Parses `--channel`: the text of a hash tag, so neither empty nor with a brace
/// (Redis would hash only part of it, and the keys could land in several slots).
fn parse_channel(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(['{', '}']) {
        return Err(format!(
            "{text:?}: give a name without braces, e.g. taskhooks (the keys are {{<name>}}:…)"
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::FLUSH_INTERVAL;

    #[test]
    fn the_flush_interval_takes_units_and_is_bounded() {
        assert_eq!(parse_flush_interval("2ms"), Ok(FLUSH_INTERVAL));
        assert_eq!(parse_flush_interval("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_flush_interval("10m"), Ok(Duration::from_secs(600)));
        let no_unit = parse_flush_interval("50").expect_err("a bare number is refused");
        assert!(no_unit.contains("with units"), "{no_unit}");
        let long = parse_flush_interval("2h").expect_err("over an hour is refused");
        assert!(long.contains("over 1h"), "{long}");
    }
}
