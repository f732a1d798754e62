//! The producer binary: the web page by default, `producer send` for a headless
//! run; either stops on Ctrl-C or SIGTERM. `producer healthcheck` GETs a running
//! page's /healthz instead.

use clap::Parser as _;
use producer::{Application, Command, Config, shutdown_signal};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[actix_web::main]
async fn main() -> anyhow::Result<ExitCode> {
    if let Some(code) = taskhooks_shared::healthcheck::run_if_asked("127.0.0.1:5000") {
        return Ok(code);
    }
    taskhooks_shared::telemetry::init();
    let config = Config::parse();
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));
    if let Some(Command::Send(args)) = &config.command {
        let args = args.clone();
        return producer::send::run(config, args, shutdown).await;
    }
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
