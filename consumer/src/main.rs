//! The consumer binary: parse the configuration, start the application, stop on
//! Ctrl-C or SIGTERM.

use clap::Parser as _;
use consumer::{Application, Config, shutdown_signal};
use tokio_util::sync::CancellationToken;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    taskhooks_shared::telemetry::init();
    let config = Config::parse();
    let app = Application::build(config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}
