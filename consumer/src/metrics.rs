//! Prometheus metrics, served at `GET /metrics` in the OpenMetrics text format.
//!
//! Durations are histograms with [`duration_buckets`], from 25 µs to about 6.6 s, so
//! that a loopback Redis call (tens of µs), a webhook (well under a millisecond), a
//! Redis at its 2 s timeout and a body at its 5 s deadline each fall in a bucket.

use crate::broker::Accepted;
use crate::error::ApiError;
use crate::hub::Hub;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Upper bounds, in seconds, of the duration histograms' buckets: 25 µs doubling
/// 19 times, to 6.55 s (then `+Inf`).
pub(crate) fn duration_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_025, 2.0, 19)
}

fn duration_histogram() -> Histogram {
    Histogram::new(duration_buckets())
}

/// What became of one received webhook.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values are snake_case in Prometheus
pub(crate) enum Outcome {
    /// Counted and published.
    published,
    /// A retry of one already accepted.
    duplicate,
    /// Signature headers missing or wrong (401).
    unauthorized,
    /// Body too large (413).
    too_large,
    /// The body did not arrive in time (408).
    too_slow,
    /// Not JSON (415).
    unsupported_media_type,
    /// Not a valid task (400).
    invalid,
    /// Broker unavailable (503).
    unavailable,
    /// Refused on purpose by fault injection (`fail_next`, `fail_percent`).
    fault_refused,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: Outcome,
}

impl Outcome {
    /// Every outcome, so each series exists (at 0) from the start.
    const ALL: [Outcome; 9] = [
        Outcome::published,
        Outcome::duplicate,
        Outcome::unauthorized,
        Outcome::too_large,
        Outcome::too_slow,
        Outcome::unsupported_media_type,
        Outcome::invalid,
        Outcome::unavailable,
        Outcome::fault_refused,
    ];
}

/// Why a dashboard socket was closed.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values are snake_case in Prometheus
pub(crate) enum Closed {
    /// The client sent a close frame.
    client_closed,
    /// The connection ended without a close frame (the client's machine or network
    /// went away, or it just hung up).
    connection_lost,
    /// The client sent something that is not the WebSocket protocol, or too large.
    protocol_error,
    /// Dropped by the consumer: no answer to its pings within `CLIENT_TIMEOUT`.
    no_pong,
    /// Dropped by the consumer: with 32 of its pings and pongs waiting for the client,
    /// one more not taken within `SEND_TIMEOUT`.
    too_slow,
    /// The store could not be read for the socket's snapshot.
    store_unavailable,
    /// The consumer is shutting down.
    shutdown,
    /// The socket's task ended without saying why (a panic: a bug).
    aborted,
}

impl Closed {
    /// Every reason, so each series exists (at 0) from the start.
    const ALL: [Closed; 8] = [
        Closed::client_closed,
        Closed::connection_lost,
        Closed::protocol_error,
        Closed::no_pong,
        Closed::too_slow,
        Closed::store_unavailable,
        Closed::shutdown,
        Closed::aborted,
    ];
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabel {
    why: Closed,
}

/// Why an open dashboard socket was sent a fresh snapshot in place of events.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values are snake_case in Prometheus
pub(crate) enum Resync {
    /// Its client fell so far behind that the hub dropped frames it had not taken.
    lagged,
    /// The subscription to the broker was lost and is back: events may be missing.
    broker_reconnected,
    /// An event's `seq` did not follow the last one's: events were lost, or numbers
    /// handed out again after a failover (`hub::Fanout::Gap`).
    gap,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResyncLabel {
    why: Resync,
}

/// The counters of [`Resync`]s, one per reason, handed to each socket's feed.
#[derive(Debug, Clone)]
pub(crate) struct Resyncs(Family<ResyncLabel, Counter>);

impl Resyncs {
    /// Counts one fresh snapshot asked for `why`.
    pub(crate) fn count(&self, why: Resync) {
        self.0.get_or_create(&ResyncLabel { why }).inc();
    }
}

#[cfg(test)]
impl Default for Resyncs {
    /// Counters registered nowhere, for the feed's unit tests.
    fn default() -> Resyncs {
        Resyncs(Family::default())
    }
}

#[cfg(test)]
impl Resyncs {
    /// How many were counted for `why`.
    pub(crate) fn counted(&self, why: Resync) -> u64 {
        self.0.get_or_create(&ResyncLabel { why }).get()
    }
}

pub(crate) struct Metrics {
    registry: Registry,
    webhooks: Family<OutcomeLabel, Counter>,
    webhook_seconds: Family<OutcomeLabel, Histogram, fn() -> Histogram>,
    websocket_clients: Gauge,
    websockets_refused: Counter,
    websockets_closed: Family<ClosedLabel, Counter>,
    websocket_resyncs: Resyncs,
    answers_dropped: Counter,
}

/// One open dashboard socket, counted in `websocket_clients` while it lives and in
/// `websockets_closed` once it ends: a guard, so a panic or an early return cannot
/// skip either, and a socket is counted closed exactly once.
pub(crate) struct OpenSocket {
    clients: Gauge,
    closed: Family<ClosedLabel, Counter>,
    why: Closed,
}

impl OpenSocket {
    /// Says why the socket ended; counted when the guard is dropped.
    pub(crate) fn ended(&mut self, why: Closed) {
        self.why = why;
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        // Counted closed before it leaves the gauge: whoever sees it gone from the
        // gauge also sees why.
        self.closed
            .get_or_create(&ClosedLabel { why: self.why })
            .inc();
        self.clients.dec();
    }
}

impl Metrics {
    /// Registers every metric, including the hub's count of forwarded events.
    pub(crate) fn new(hub: &Hub) -> Metrics {
        let mut registry = Registry::with_prefix("taskhooks_consumer");
        let webhooks = Family::<OutcomeLabel, Counter>::default();
        let webhook_seconds = Family::new_with_constructor(duration_histogram as fn() -> _);
        let websocket_clients = Gauge::default();
        let websockets_refused = Counter::default();
        let websockets_closed = Family::<ClosedLabel, Counter>::default();
        let websocket_resyncs = Family::<ResyncLabel, Counter>::default();
        let answers_dropped = Counter::default();
        // Every counter's series exists from the start, at 0: a series that first
        // appears at 1 shows no increase to `rate()` or `increase()`, so the first
        // refused webhook or dropped socket would go unseen by an alert.
        for outcome in Outcome::ALL {
            webhooks.get_or_create_owned(&OutcomeLabel { outcome });
        }
        for why in Closed::ALL {
            websockets_closed.get_or_create_owned(&ClosedLabel { why });
        }
        for why in [Resync::lagged, Resync::broker_reconnected] {
            websocket_resyncs.get_or_create_owned(&ResyncLabel { why });
        }
        registry.register(
            "webhooks_received",
            "Webhooks received, by outcome (published, duplicate, or why refused; fault_refused: \
             on purpose, by fault injection)",
            webhooks.clone(),
        );
        registry.register(
            "answers_dropped",
            "Webhooks published whose answer fault injection dropped (drop_next): the \
             connection was closed, so the sender retries and is answered duplicate",
            answers_dropped.clone(),
        );
        registry.register(
            "webhook_duration_seconds",
            "Time from a webhook's headers to its answer, body and broker included, by outcome",
            webhook_seconds.clone(),
        );
        registry.register(
            "events_forwarded",
            "Events received from the broker and handed to this process's sockets",
            hub.forwarded(),
        );
        registry.register(
            "websocket_clients",
            "Open dashboard WebSockets",
            websocket_clients.clone(),
        );
        registry.register(
            "websockets_refused",
            "Dashboard WebSockets refused with 503 because --max-websockets were open",
            websockets_refused.clone(),
        );
        registry.register(
            "websockets_closed",
            "Dashboard WebSockets closed, by why: the client closed (client_closed), hung up or \
             vanished (connection_lost), broke the protocol (protocol_error), did not answer \
             pings (no_pong) or take ours (too_slow); the snapshot could not be read \
             (store_unavailable); the consumer stopped (shutdown); a bug (aborted)",
            websockets_closed.clone(),
        );
        registry.register(
            "websocket_resyncs",
            "Fresh snapshots sent to open dashboard WebSockets in place of missed events, by \
             why: the socket fell the hub's whole buffer behind (lagged: its client reads too \
             slowly, or its last snapshot took that long), or the broker's subscription came back",
            websocket_resyncs.clone(),
        );
        Metrics {
            registry,
            webhooks,
            webhook_seconds,
            websocket_clients,
            websockets_refused,
            websockets_closed,
            websocket_resyncs: Resyncs(websocket_resyncs),
            answers_dropped,
        }
    }

    /// The resync counters, for a socket's feed.
    pub(crate) fn resyncs(&self) -> Resyncs {
        self.websocket_resyncs.clone()
    }

    /// Counts one more open dashboard socket until the guard is dropped.
    pub(crate) fn socket_opened(&self) -> OpenSocket {
        self.websocket_clients.inc();
        OpenSocket {
            clients: self.websocket_clients.clone(),
            closed: self.websockets_closed.clone(),
            why: Closed::aborted,
        }
    }

    /// Counts one webhook whose answer fault injection dropped.
    pub(crate) fn answer_dropped(&self) {
        self.answers_dropped.inc();
    }

    /// Counts one dashboard socket refused for the cap.
    pub(crate) fn socket_refused(&self) {
        self.websockets_refused.inc();
    }

    /// Registers the histogram of the Redis accept script's time and returns it for
    /// the Redis broker to fill. Called only when Redis is used: the in-process
    /// broker's publish is a lock and a channel send, nothing an operator tunes.
    pub(crate) fn redis_accept_histogram(&mut self) -> Histogram {
        let histogram = duration_histogram();
        self.registry.register(
            "redis_accept_duration_seconds",
            "Per webhook that reached Redis: time from joining its worker's next call of \
             the script that dedupes, counts and publishes to that call's answer or failure",
            histogram.clone(),
        );
        histogram
    }

    /// Counts one webhook by what became of it, and the time it took (500s are not
    /// a client outcome).
    pub(crate) fn record(&self, result: &Result<Accepted, ApiError>, took: Duration) {
        let outcome = match result {
            Ok(Accepted::Published { .. }) => Outcome::published,
            Ok(Accepted::Duplicate) => Outcome::duplicate,
            Err(ApiError::Signature(_)) => Outcome::unauthorized,
            Err(ApiError::TooLarge { .. }) => Outcome::too_large,
            Err(ApiError::BodyTimeout(_)) => Outcome::too_slow,
            Err(ApiError::NotJson(_)) => Outcome::unsupported_media_type,
            Err(
                ApiError::InvalidTask(_) | ApiError::FieldTooLong(_) | ApiError::UnreadableBody(_),
            ) => Outcome::invalid,
            Err(ApiError::Unavailable(_)) => Outcome::unavailable,
            Err(ApiError::FaultInjected(_)) => Outcome::fault_refused,
            Err(_) => return,
        };
        let label = OutcomeLabel { outcome };
        self.webhooks.get_or_create(&label).inc();
        self.webhook_seconds
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// The metrics in the OpenMetrics text format.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        // unwrap: writing into a String cannot fail.
        #[allow(clippy::unwrap_used)]
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }
}
