//! Logging set-up shared by both binaries.

use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

/// Installs a `tracing` subscriber writing to stderr.
///
/// The level comes from `RUST_LOG` (default `info`). With `LOG_FORMAT=json`
/// each line is a JSON object, for log collectors. Colours only when stderr is a
/// terminal: in a file or a collector they are noise, and the formatter writes
/// them into every span's fields as the span is made, on every webhook
/// (`scripts/profile ingest`, docs/benchmarks.md).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // try_init: a second call (several apps in one test binary) is not an error.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
