//! The consumer binary: parse the configuration, start the application, stop on
//! Ctrl-C or SIGTERM; `consumer healthcheck` GETs a running one's /healthz instead.

use clap::Parser as _;
use consumer::{Application, Config, shutdown_signal};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[actix_web::main]
async fn main() -> anyhow::Result<ExitCode> {
    if let Some(code) = taskhooks_shared::healthcheck::run_if_asked("127.0.0.1:5001") {
        return Ok(code);
    }
    taskhooks_shared::telemetry::init();
    let config = Config::parse();
    let app = Application::build(config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
