//! The producer binary: the web page by default, `producer send` for a headless
//! run; either stops on Ctrl-C or SIGTERM. `producer healthcheck` GETs a running
//! page's /healthz instead.
//!
//! The runtime fits the subcommand: the page runs on actix's system runtime (its
//! HttpServer needs one), `send` on one single-threaded tokio runtime per thread
//! (`send/`), so that a load run uses every core.

use clap::Parser as _;
use producer::{Application, Cli, Command, Config, shutdown_signal};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// mimalloc, not the system's allocator: a delivery makes and frees many small
/// allocations (reqwest, hyper, the task's JSON), and glibc's malloc and free
/// were a large share of `producer send`'s CPU (docs/benchmarks.md, "The
/// producer: one runtime per thread, mimalloc, and not hyper").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<ExitCode> {
    if let Some(code) = taskhooks_shared::healthcheck::run_if_asked("127.0.0.1:5000") {
        return Ok(code);
    }
    taskhooks_shared::telemetry::init();
    match Cli::parse().command() {
        Command::Send(args) => producer::send::run_on_all_cores(args),
        Command::Serve(config) => actix_web::rt::System::new().block_on(serve(config)),
    }
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
