//! The producer binary: the web page by default, `producer send` for a headless
//! run; either stops on Ctrl-C or SIGTERM. `producer healthcheck` GETs a running
//! page's /healthz instead.

use clap::Parser as _;
use producer::{Application, Cli, Command, shutdown_signal};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[actix_web::main]
async fn main() -> anyhow::Result<ExitCode> {
    if let Some(code) = taskhooks_shared::healthcheck::run_if_asked("127.0.0.1:5000") {
        return Ok(code);
    }
    taskhooks_shared::telemetry::init();
    let cli = Cli::parse();
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));
    let config = match cli.command {
        Some(Command::Send(args)) => return producer::send::run(args, shutdown).await,
        Some(Command::Serve(config)) => config,
        None => cli.serve,
    };
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
