//! Prometheus metrics of the deliveries, served by the web app at `GET /metrics`
//! (OpenMetrics text format). `producer send` prints its own report instead.

use super::attempt::{Attempt, Delivery, Outcome};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a task's delivery ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values are snake_case in Prometheus
enum DeliveryOutcome {
    delivered,
    failed,
    cancelled,
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum AttemptOutcome {
    /// 2xx.
    success,
    /// Any other status (the `status` label says which class).
    refused,
    /// No answer in time.
    timeout,
    /// No connection, or it broke.
    transport_error,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabel {
    outcome: DeliveryOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabel {
    outcome: AttemptOutcome,
    /// `2xx`, `4xx`, `5xx`…, or `none` when no status came back.
    status: &'static str,
}

/// The producer's delivery metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    deliveries: Family<DeliveryLabel, Counter>,
    attempts: Family<AttemptLabel, Counter>,
    delivery_seconds: Histogram,
    attempt_seconds: Histogram,
    in_flight: Gauge,
    event_streams: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("taskhooks_producer");
        let deliveries = Family::<DeliveryLabel, Counter>::default();
        let attempts = Family::<AttemptLabel, Counter>::default();
        // 1 ms to about 33 s: a loopback delivery up to a long retry sequence.
        let delivery_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let attempt_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let in_flight = Gauge::default();
        let event_streams = Gauge::default();
        // The counters' usual series exist from the start, at 0: a series that first
        // appears at 1 shows no increase to `rate()` or `increase()`, so the first
        // failed delivery would go unseen by an alert.
        for outcome in [
            DeliveryOutcome::delivered,
            DeliveryOutcome::failed,
            DeliveryOutcome::cancelled,
        ] {
            deliveries.get_or_create_owned(&DeliveryLabel { outcome });
        }
        for (outcome, status) in [
            (AttemptOutcome::success, "2xx"),
            (AttemptOutcome::refused, "4xx"),
            (AttemptOutcome::refused, "5xx"),
            (AttemptOutcome::timeout, "none"),
            (AttemptOutcome::transport_error, "none"),
        ] {
            attempts.get_or_create_owned(&AttemptLabel { outcome, status });
        }
        registry.register(
            "deliveries",
            "Tasks whose delivery ended, by outcome (delivered, failed, cancelled)",
            deliveries.clone(),
        );
        registry.register(
            "attempts",
            "Webhook POSTs made, by outcome and status class",
            attempts.clone(),
        );
        registry.register(
            "delivery_duration_seconds",
            "Time from a delivered task's first attempt to its 2xx, retries included",
            delivery_seconds.clone(),
        );
        registry.register(
            "attempt_duration_seconds",
            "Time one webhook POST took, answered or not",
            attempt_seconds.clone(),
        );
        registry.register(
            "deliveries_in_flight",
            "Tasks being delivered right now (attempting or waiting to retry)",
            in_flight.clone(),
        );
        registry.register(
            "event_streams",
            "Server-Sent Events clients being fed a batch's events right now",
            event_streams.clone(),
        );
        Metrics {
            registry,
            deliveries,
            attempts,
            delivery_seconds,
            attempt_seconds,
            in_flight,
            event_streams,
        }
    }

    /// An event stream starts; the guard counts it as open until dropped.
    pub(crate) fn follow(&self) -> InFlight {
        self.event_streams.inc();
        InFlight(self.event_streams.clone())
    }

    /// A delivery starts; the returned guard counts it as in flight until dropped.
    pub(crate) fn start(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Counts one attempt; `timed_out` tells a timeout from other transport errors.
    pub(crate) fn attempt(&self, attempt: &Attempt, timed_out: bool) {
        let (outcome, status) = match attempt.status {
            Some(code) => {
                let class = status_class(code);
                if class == "2xx" {
                    (AttemptOutcome::success, class)
                } else {
                    (AttemptOutcome::refused, class)
                }
            }
            None if timed_out => (AttemptOutcome::timeout, "none"),
            None => (AttemptOutcome::transport_error, "none"),
        };
        self.attempts
            .get_or_create(&AttemptLabel { outcome, status })
            .inc();
        self.attempt_seconds.observe(attempt.duration.as_secs_f64());
    }

    /// Counts one finished delivery; a delivered one's duration goes in the histogram.
    pub(crate) fn delivery(&self, delivery: &Delivery) {
        let outcome = match delivery.outcome {
            Outcome::Delivered => {
                self.delivery_seconds
                    .observe(delivery.elapsed.as_secs_f64());
                DeliveryOutcome::delivered
            }
            Outcome::Failed(_) => DeliveryOutcome::failed,
            Outcome::Cancelled(_) => DeliveryOutcome::cancelled,
        };
        self.deliveries
            .get_or_create(&DeliveryLabel { outcome })
            .inc();
    }

    /// Counts `count` tasks stopped before their first attempt (they never
    /// reached [`Deliverer::deliver`](crate::delivery::Deliverer::deliver)).
    pub(crate) fn cancelled_before_sending(&self, count: u64) {
        self.deliveries
            .get_or_create(&DeliveryLabel {
                outcome: DeliveryOutcome::cancelled,
            })
            .inc_by(count);
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

/// Counts a delivery (or an event stream) as in flight while it lives.
#[derive(Debug)]
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn status_class(code: u16) -> &'static str {
    match code / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn attempt(status: Option<u16>) -> Attempt {
        Attempt {
            number: 1,
            started_at: 0,
            status,
            error: None,
            duration: Duration::from_millis(3),
            response: None,
        }
    }

    #[test]
    fn attempts_and_deliveries_are_counted_by_outcome() {
        let metrics = Metrics::new();
        metrics.attempt(&attempt(Some(503)), false);
        metrics.attempt(&attempt(None), true);
        metrics.attempt(&attempt(None), false);
        metrics.attempt(&attempt(Some(200)), false);
        metrics.delivery(&Delivery {
            outcome: Outcome::Delivered,
            attempts: vec![],
            elapsed: Duration::from_millis(40),
        });
        metrics.delivery(&Delivery {
            outcome: Outcome::Failed("HTTP 400".into()),
            attempts: vec![],
            elapsed: Duration::from_millis(1),
        });
        metrics.cancelled_before_sending(1);
        let text = metrics.encode();
        for line in [
            r#"taskhooks_producer_deliveries_total{outcome="cancelled"} 1"#,
            r#"taskhooks_producer_attempts_total{outcome="refused",status="5xx"} 1"#,
            r#"taskhooks_producer_attempts_total{outcome="timeout",status="none"} 1"#,
            r#"taskhooks_producer_attempts_total{outcome="transport_error",status="none"} 1"#,
            r#"taskhooks_producer_attempts_total{outcome="success",status="2xx"} 1"#,
            r#"taskhooks_producer_deliveries_total{outcome="delivered"} 1"#,
            r#"taskhooks_producer_deliveries_total{outcome="failed"} 1"#,
            "taskhooks_producer_delivery_duration_seconds_count 1",
            "taskhooks_producer_attempt_duration_seconds_count 4",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_in_flight_gauge_follows_its_guards() {
        let metrics = Metrics::new();
        let first = metrics.start();
        let second = metrics.start();
        assert!(metrics.encode().contains("deliveries_in_flight 2"));
        drop(first);
        drop(second);
        assert!(metrics.encode().contains("deliveries_in_flight 0"));
    }
}
