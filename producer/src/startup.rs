//! Building and running the web application: the shared client, the HTTP server,
//! and the shutdown sequence.

use crate::config::Config;
use crate::delivery::Deliverer;
use crate::routes;
use crate::state::{AppState, PageSettings};
use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::store::redis::{Limits, OP_TIMEOUT, RedisStore};
use crate::worker::Pipeline;
use actix_web::dev::{Server, ServerHandle};
use actix_web::web;
use anyhow::Context as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use taskhooks_shared::exposure::check_exposure;
use taskhooks_shared::redact_url;
use taskhooks_shared::redis_client::{
    RedisClient, RedisSettings, wait_replicas_by_default, watch_topology,
};
use taskhooks_shared::signing::Signing;
use taskhooks_shared::web::connection::remember_connection;
use taskhooks_shared::web::{ServerSettings, serve};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    /// The pipeline and every delivery, so shutdown can wait for them.
    tracker: TaskTracker,
}

impl Application {
    /// Checks the configuration and binds the listener. Fails with a message saying
    /// what to do when the configuration is unusable (no secret, a bad URL, …).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        config.check_batch_range()?;
        let origins = web::Data::new(
            config
                .origin_policy()?
                .open_to_any_host(routes::OPEN_TO_ANY_HOST),
        );
        let delivery = config.delivery.settings()?;
        check_exposure(config.published_on.as_deref(), &delivery.signing)
            .map_err(anyhow::Error::msg)?;
        if matches!(delivery.signing, Signing::Unsigned) {
            tracing::warn!("--unsigned: sending webhooks WITHOUT signatures");
        }
        let target = redact_url(delivery.target.as_str());
        let deliverer = Arc::new(Deliverer::new(delivery, config.delivery.max_in_flight)?);
        let page = PageSettings {
            target_url: target.clone(),
            dashboard_url: redact_url(&config.dashboard_url),
            min_tasks: config.min_tasks,
            max_tasks: config.max_tasks,
            pace_ms: config.pace_ms,
        };
        let shutdown = CancellationToken::new();
        let settings = RedisSettings {
            url: config.redis_url.as_deref(),
            cluster_urls: config.redis_cluster_urls.as_deref(),
            ca_cert: config.redis_ca_cert.as_deref(),
            wait_replicas: config.redis_wait_replicas,
        };
        let store: Arc<dyn Store> = match settings.client()? {
            Some(client) => redis_store(&config, client, &shutdown).await?,
            None => Arc::new(MemoryStore::new(&shutdown)),
        };
        let tracker = TaskTracker::new();
        // On this runtime, not an HTTP worker's: the client's pooled connections
        // outlive the worker that started a batch.
        let pipeline = Pipeline::spawn(
            store.clone(),
            deliverer.clone(),
            config.delivery.max_in_flight,
            shutdown.clone(),
            tracker.clone(),
        );
        let state = web::Data::new(AppState::new(
            page,
            (store, pipeline, deliverer),
            config.delivery.seed,
            config.max_event_streams as usize,
            shutdown,
        ));
        let listener = TcpListener::bind(&config.bind)
            .with_context(|| format!("cannot listen on {} (set --bind or BIND)", config.bind))?;
        let port = listener.local_addr()?.port();
        let settings = ServerSettings {
            shutdown_grace: SHUTDOWN_GRACE,
            max_connections: None,
            on_connect: Some(remember_connection),
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
            tracker,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled, then: refuses new batches (503), takes
    /// no more tasks (a batch kept in memory is stopped: nothing new is sent), lets
    /// deliveries in flight finish within [`SHUTDOWN_GRACE`], ends every SSE
    /// stream and stops the server.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        tokio::spawn(wind_down(
            shutdown,
            self.state.clone(),
            self.tracker,
            handle,
        ));
        self.server.await.context("the HTTP server failed")
    }
}

/// Connects the store in Redis and starts its background work.
async fn redis_store(
    config: &Config,
    client: RedisClient,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<dyn Store>> {
    anyhow::ensure!(
        config.claim_after >= MIN_CLAIM_AFTER,
        "--claim-after / CLAIM_AFTER must be at least {MIN_CLAIM_AFTER:?}"
    );
    anyhow::ensure!(
        config.keep_finished >= Duration::from_secs(1),
        "--keep-finished / KEEP_FINISHED must be at least 1s"
    );
    let shown = client.shown().to_owned();
    let (kind, setting) = if client.is_cluster() {
        ("the Redis Cluster", "REDIS_CLUSTER_URLS")
    } else {
        ("Redis", "REDIS_URL")
    };
    let limits = Limits {
        keep_finished: config.keep_finished,
        max_waiting: config.max_waiting_tasks,
        claim_after: config.claim_after,
        wait_replicas: match config.redis_wait_replicas {
            Some(replicas) => replicas,
            None => wait_replicas_by_default(&client, OP_TIMEOUT).await,
        },
    };
    if client.is_cluster() {
        let conn = client.shared_connection(OP_TIMEOUT)?;
        tokio::spawn(watch_topology(conn, shutdown.clone()));
    }
    let store = RedisStore::new(client, limits)
        .with_context(|| format!("{setting} {shown} is not usable"))?;
    store.connect().await.with_context(|| {
        format!("cannot reach {kind} at {shown} ({setting}) to set up the outbox")
    })?;
    let store = Arc::new(store);
    store.spawn(shutdown);
    tracing::info!(redis = %shown, name = %store.name(), wait_replicas = limits.wait_replicas, "durable outbox in {kind}");
    Ok(store)
}

async fn wind_down(
    shutdown: CancellationToken,
    state: web::Data<AppState>,
    tracker: TaskTracker,
    server: ServerHandle,
) {
    shutdown.cancelled().await;
    tracing::info!("shutting down: no new batches; letting deliveries in flight finish");
    state.shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("deliveries still in flight after {SHUTDOWN_GRACE:?}; abandoning them");
    }
    state.closing.cancel();
    server.stop(true).await;
}
