//! Building and running the application: the broker, the hub, the HTTP server and
//! the shutdown sequence.

use crate::broker::redis::{OP_TIMEOUT, RedisBroker};
use crate::broker::{self, Broker, BrokerError};
use crate::config::Config;
use crate::faults::Faults;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::routes;
use crate::snapshot_reads::SharedSnapshots;
use crate::state::AppState;
use actix_web::dev::Server;
use actix_web::web;
use anyhow::Context as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use taskhooks_shared::exposure::check_exposure;
use taskhooks_shared::redact_url;
use taskhooks_shared::redis_client::{RedisSettings, wait_replicas_by_default, watch_topology};
use taskhooks_shared::signing::Signing;
use taskhooks_shared::web::origin::OriginPolicy;
use taskhooks_shared::web::{ServerSettings, serve};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long requests in flight may take to finish once shutdown starts.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A bound, not yet running, consumer.
pub struct Application {
    port: u16,
    server: Server,
    stopping: CancellationToken,
    subscriber: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Binds the listener and prepares the broker. Fails with a message saying what
    /// to do when the configuration is unusable.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let signing = Signing::choose(
            config.webhook_secret.as_deref(),
            config.allow_unsigned,
            "--allow-unsigned",
        )?;
        check_exposure(config.published_on.as_deref(), &signing).map_err(anyhow::Error::msg)?;
        if matches!(signing, Signing::Unsigned) {
            tracing::warn!("--allow-unsigned: accepting webhooks WITHOUT signature checks");
        }
        let signed = !matches!(signing, Signing::Unsigned);
        let origins = web::Data::new(
            OriginPolicy::new(&config.allowed_origins, &config.allowed_hosts)?
                .open_to_any_host(routes::open_to_any_host(signed)),
        );
        let hub = Hub::new(config.ws_flush_interval);
        let mut metrics = Metrics::new(&hub);
        let stopping = CancellationToken::new();
        let settings = RedisSettings {
            url: config.redis_url.as_deref(),
            cluster_urls: config.redis_cluster_urls.as_deref(),
            ca_cert: config.redis_ca_cert.as_deref(),
            wait_replicas: config.redis_wait_replicas,
        };
        let (broker, subscriber) = match settings.client()? {
            Some(client) => {
                let wait_replicas = match config.redis_wait_replicas {
                    Some(replicas) => replicas,
                    None => wait_replicas_by_default(&client, OP_TIMEOUT).await,
                };
                if client.is_cluster() {
                    let conn = client.shared_connection(OP_TIMEOUT)?;
                    tokio::spawn(watch_topology(conn, stopping.clone()));
                }
                let redis = RedisBroker::new(client, &config.channel)
                    .context("cannot prepare the Redis connection")?
                    .with_window(config.dedupe_window)
                    .with_wait_replicas(wait_replicas)
                    .with_accept_histogram(metrics.redis_accept_histogram());
                let subscribed = Arc::new(Notify::new());
                let task = tokio::spawn(redis.clone().run_subscriber(
                    hub.clone(),
                    stopping.clone(),
                    subscribed.clone(),
                ));
                report_redis(&redis, wait_replicas, &subscribed).await;
                (Broker::Redis(redis), Some(task))
            }
            None => {
                tracing::warn!(
                    "neither REDIS_URL nor REDIS_CLUSTER_URLS is set: using the in-process \
                     broker; only this process's dashboards see events and totals reset on restart"
                );
                (
                    broker::memory_with_window(hub.clone(), config.dedupe_window),
                    None,
                )
            }
        };
        let faults = config
            .fault_injection
            .then(|| Arc::new(Faults::new(&broker)));
        if let Some(faults) = &faults {
            tracing::warn!("--fault-injection: /api/faults can make this consumer refuse webhooks");
            let (faults, stopping) = (faults.clone(), stopping.clone());
            tokio::spawn(async move { faults.refresh_until(stopping).await });
        }
        let state = web::Data::new(AppState {
            snapshots: SharedSnapshots::new(broker.clone()),
            websockets: Arc::new(Semaphore::new(config.max_websockets)),
            max_websockets: config.max_websockets,
            broker,
            metrics,
            hub,
            signing,
            producer_url: redact_url(&config.producer_url),
            faults: faults.clone(),
            shutdown: stopping.clone(),
        });
        let listener = TcpListener::bind(&config.bind)
            .with_context(|| format!("cannot listen on {} (set --bind or BIND)", config.bind))?;
        let port = listener.local_addr()?.port();
        let settings = ServerSettings {
            shutdown_grace: SHUTDOWN_GRACE,
            max_connections: Some(config.max_connections),
            // Each connection is remembered only when an answer may be dropped.
            on_connect: Some(if faults.is_some() {
                send_without_delay_and_remember
            } else {
                crate::ws::send_without_delay
            }),
            h1_write_buffer_size: Some(crate::ws::WRITE_BUFFER_FILL),
        };
        let server = serve(listener, state, origins, routes::configure, settings)?;
        tracing::info!(
            "consumer listening on http://{}:{port}",
            listen_host(&config.bind)
        );
        Ok(Application {
            port,
            server,
            stopping,
            subscriber,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled, then closes sockets with a close frame,
    /// lets requests in flight finish and stops the subscriber.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let stopping = self.stopping.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tracing::info!("shutting down");
            stopping.cancel();
            handle.stop(true).await;
        });
        self.server.await.context("the HTTP server failed")?;
        self.stopping.cancel();
        if let Some(subscriber) = self.subscriber {
            let _ = subscriber.await;
        }
        Ok(())
    }
}

/// Logs whether Redis answers, waiting briefly for the subscription so that a
/// consumer that says it is up already forwards events.
async fn report_redis(redis: &RedisBroker, wait_replicas: u32, subscribed: &Notify) {
    let url = redis.client().shown();
    let kind = if redis.client().is_cluster() {
        "the Redis Cluster"
    } else {
        "Redis"
    };
    let ready = async {
        redis.ping().await?;
        tokio::time::timeout(OP_TIMEOUT, subscribed.notified())
            .await
            .map_err(|_| BrokerError::Timeout(OP_TIMEOUT))
    };
    match ready.await {
        Ok(()) => {
            tracing::info!(
                wait_replicas,
                "using {kind} at {url} for pub/sub and totals"
            );
            redis.eviction_risk().await.log();
        }
        Err(err) => tracing::warn!(
            %err,
            "{kind} at {url} is not ready yet; webhooks get 503 until it answers"
        ),
    }
}

/// The `on_connect` hook with `--fault-injection`: what every connection gets, and
/// a handle on it kept so that a dropped answer can close it.
fn send_without_delay_and_remember(io: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    crate::ws::send_without_delay(io, data);
    taskhooks_shared::web::connection::remember_connection(io, data);
}

fn listen_host(bind: &str) -> &str {
    bind.rsplit_once(':').map_or(bind, |(host, _)| host)
}
