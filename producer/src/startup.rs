//! Building and running the web application: the shared client, the HTTP server,
//! and the shutdown sequence.

use crate::config::Config;
use crate::delivery::Deliverer;
use crate::outbox::redis::RedisStore;
use crate::outbox::worker::Workers;
use crate::routes;
use crate::sse;
use crate::state::{AppState, PageSettings};
use actix_web::dev::{Server, ServerHandle};
use actix_web::web;
use anyhow::Context as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use taskhooks_shared::exposure::check_exposure;
use taskhooks_shared::redact_url;
use taskhooks_shared::signing::Signing;
use taskhooks_shared::web::{ServerSettings, serve};
use tokio_util::sync::CancellationToken;

/// How long deliveries in flight may take to finish once shutdown starts, and
/// then how long HTTP connections may take to close. The default per-attempt
/// timeout (5 s) fits inside it.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The shortest `--claim-after`: a live producer re-claims its own tasks every
/// third of it, which must stay well above a Redis round trip.
const MIN_CLAIM_AFTER: Duration = Duration::from_millis(300);

/// A bound, not yet running, producer.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Checks the configuration and binds the listener. Fails with a message saying
    /// what to do when the configuration is unusable (no secret, a bad URL, …).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        config.check_batch_range()?;
        let origins = web::Data::new(config.origin_policy()?);
        let delivery = config.delivery.settings()?;
        check_exposure(config.published_on.as_deref(), &delivery.signing)
            .map_err(anyhow::Error::msg)?;
        if matches!(delivery.signing, Signing::Unsigned) {
            tracing::warn!("--unsigned: sending webhooks WITHOUT signatures");
        }
        let target = redact_url(delivery.target.as_str());
        let deliverer = Deliverer::new(delivery, config.delivery.max_in_flight)?;
        let page = PageSettings {
            target_url: target.clone(),
            dashboard_url: redact_url(&config.dashboard_url),
            min_tasks: config.min_tasks,
            max_tasks: config.max_tasks,
            pace_ms: config.pace_ms,
        };
        let runtime = tokio::runtime::Handle::current();
        let mut state = AppState::new(
            page,
            deliverer,
            config.delivery.max_in_flight,
            config.delivery.seed,
            runtime,
        );
        state.limit_event_streams(config.max_event_streams as usize);
        if let Some(url) = &config.redis_url {
            state.workers = Some(durable_outbox(&config, url, &state).await?);
        }
        let state = web::Data::new(state);
        let listener = TcpListener::bind(&config.bind)
            .with_context(|| format!("cannot listen on {} (set --bind or BIND)", config.bind))?;
        let port = listener.local_addr()?.port();
        let settings = ServerSettings {
            shutdown_grace: SHUTDOWN_GRACE,
            max_connections: None,
            on_connect: Some(sse::remember_connection),
            h1_write_buffer_size: None,
        };
        let server = serve(
            listener,
            state.clone(),
            origins,
            routes::configure,
            settings,
        )?;
        let host = config.bind.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
        tracing::info!("producer listening on http://{host}:{port}, sending webhooks to {target}");
        Ok(Application {
            port,
            server,
            state,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled, then: refuses new batches (503), stops
    /// the running ones (nothing new is sent), lets deliveries in flight finish
    /// within [`SHUTDOWN_GRACE`], ends every SSE stream and stops the server.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        tokio::spawn(wind_down(shutdown, self.state.clone(), handle));
        self.server.await.context("the HTTP server failed")
    }
}

/// Connects the durable outbox and starts its workers.
async fn durable_outbox(
    config: &Config,
    url: &str,
    state: &AppState,
) -> anyhow::Result<Arc<Workers>> {
    anyhow::ensure!(
        config.claim_after >= MIN_CLAIM_AFTER,
        "--claim-after / CLAIM_AFTER must be at least {MIN_CLAIM_AFTER:?}"
    );
    anyhow::ensure!(
        config.keep_finished >= Duration::from_secs(1),
        "--keep-finished / KEEP_FINISHED must be at least 1s"
    );
    let shown = redact_url(url);
    let store = RedisStore::new(url, config.keep_finished)
        .with_context(|| format!("REDIS_URL {shown} is not a usable Redis URL"))?
        .with_max_waiting(config.max_waiting_tasks);
    store.ensure_group().await.with_context(|| {
        format!("cannot reach Redis at {shown} (REDIS_URL) to set up the outbox")
    })?;
    let workers = Workers::new(
        store,
        state.deliverer.clone(),
        (state.in_flight.clone(), config.delivery.max_in_flight),
        state.shutdown.clone(),
        state.tracker.clone(),
        config.claim_after,
    );
    workers.spawn();
    tracing::info!(redis = %shown, name = %workers.name, "durable outbox in Redis");
    Ok(workers)
}

async fn wind_down(shutdown: CancellationToken, state: web::Data<AppState>, server: ServerHandle) {
    shutdown.cancelled().await;
    tracing::info!("shutting down: no new batches; letting deliveries in flight finish");
    state.shutdown.cancel();
    state.tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, state.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("deliveries still in flight after {SHUTDOWN_GRACE:?}; abandoning them");
    }
    state.closing.cancel();
    server.stop(true).await;
}
