//! The subscriber: one per process, forwarding the events channel to this
//! process's hub, and resubscribing (and resyncing every socket) whenever the
//! subscription is lost. On a cluster it listens on any node (classic pub/sub
//! reaches all), moving to the next seed when its node fails.

use super::{RedisBroker, timed};
use crate::broker::error::BrokerError;
use crate::event::Event;
use crate::hub::{Hub, HubMessage};
use futures_util::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How often the subscriber checks that its connection still answers.
pub(crate) const SUBSCRIBER_PING_INTERVAL: Duration = Duration::from_secs(5);
/// First and longest wait between subscriber reconnection attempts.
pub(crate) const RECONNECT_DELAY: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(2));

impl RedisBroker {
    /// Forwards the channel to `hub` until `shutdown`, reconnecting whenever the
    /// subscription is lost and asking every socket to resync after each
    /// (re)subscription, since events published meanwhile were not forwarded.
    /// `subscribed` is notified each time the subscription is in place.
    pub(crate) async fn run_subscriber(
        self,
        hub: Hub,
        shutdown: CancellationToken,
        subscribed: Arc<Notify>,
    ) {
        let (first, longest) = RECONNECT_DELAY;
        let mut delay = first;
        while !shutdown.is_cancelled() {
            match self
                .subscribe_once(&hub, &shutdown, &subscribed, &mut delay)
                .await
            {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(%err, retry_in = ?delay, "Redis subscriber lost");
                    hub.send(HubMessage::Unavailable(Arc::from(format!(
                        "Redis is unreachable ({err}): no events reach dashboards, and webhooks get 503 while it stays so"
                    ))));
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(longest);
        }
        tracing::debug!("Redis subscriber stopped");
    }

    async fn subscribe_once(
        &self,
        hub: &Hub,
        shutdown: &CancellationToken,
        subscribed: &Notify,
        delay: &mut Duration,
    ) -> Result<(), BrokerError> {
        let (mut sink, mut stream) = timed(self.client.pubsub()).await?.split();
        let channel = events_channel(&self.prefix);
        timed(sink.subscribe(&channel)).await?;
        tracing::info!(%channel, "subscribed to Redis channel");
        *delay = RECONNECT_DELAY.0;
        hub.send(HubMessage::Resync);
        subscribed.notify_one();
        let mut health = tokio::time::interval(SUBSCRIBER_PING_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                message = stream.next() => {
                    let message = message.ok_or(BrokerError::Disconnected)?;
                    forward(hub, message.get_payload_bytes());
                }
                _ = health.tick() => {
                    timed(sink.ping::<redis::Value>()).await?;
                }
            }
        }
    }
}

/// The channel the accept script publishes on, for the keys' `prefix` (`v2`: see
/// `redis_accept.rs`).
pub(super) fn events_channel(prefix: &str) -> String {
    format!("{prefix}:v2:events")
}

fn forward(hub: &Hub, payload: &[u8]) {
    let parsed = std::str::from_utf8(payload)
        .map_err(|err| err.to_string())
        .and_then(|text| Event::batch_from_json(text).map_err(|err| err.to_string()));
    match parsed {
        Ok(events) => {
            for event in events {
                hub.send(HubMessage::Event(event));
            }
        }
        Err(err) => tracing::warn!(%err, "ignoring a malformed message on the channel"),
    }
}
