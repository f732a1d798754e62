//! Delivering one task as a webhook: the shared HTTP client, a fresh signature per
//! attempt, retries by the [`retry`] policy, and a record of every attempt.

pub(crate) mod attempt;
pub(crate) mod metrics;
pub(crate) mod retry;
pub(crate) mod task;

use anyhow::Context as _;
use attempt::{Attempt, Delivery, Outcome, excerpt, now_millis};
use bytes::Bytes;
use metrics::Metrics;
use rand::RngExt as _;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use retry::{Decision, GiveUp, RetryPolicy, Verdict};
use std::time::{Duration, Instant, SystemTime};
use taskhooks_shared::redact_url;
use taskhooks_shared::signing::{self, Signing, unix_now};
use tokio_util::sync::CancellationToken;

/// How much of a refusal's body is quoted in the task's error, in characters.
const MAX_ERROR_DETAIL: usize = 300;
/// How much of a response body is read at most; the rest is dropped with the connection.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The webhook headers' names and the body's type, made once: given as text,
/// each request would parse and copy them (seen with `scripts/profile producer`).
const WEBHOOK_ID: HeaderName = HeaderName::from_static(signing::HEADER_ID);
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static(signing::HEADER_TIMESTAMP);
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static(signing::HEADER_SIGNATURE);
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Everything delivery needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct DeliverySettings {
    /// The receiver's URL.
    pub(crate) target: reqwest::Url,
    /// How requests are signed: with every secret of the list (one `v1,` signature
    /// each, so a receiver holding any one of them accepts), or not at all
    /// (`--unsigned`; the `webhook-id` is still sent).
    pub(crate) signing: Signing,
    /// Time allowed for one attempt, connection included.
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// When to retry.
    pub(crate) policy: RetryPolicy,
}

/// One webhook: the same id and body on every attempt.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// The `webhook-id`, which lets the receiver drop a retry it already accepted.
    pub(crate) webhook_id: std::sync::Arc<str>,
    pub(crate) body: Bytes,
    /// Attempts made by earlier deliveries of this message (a redelivery's
    /// attempts are numbered on from them; each delivery has its own
    /// `--max-attempts`).
    pub(crate) earlier_attempts: u32,
}

/// Sends webhooks through one pooled client.
#[derive(Debug)]
pub(crate) struct Deliverer {
    client: reqwest::Client,
    settings: DeliverySettings,
    metrics: Metrics,
}

impl Deliverer {
    /// Builds the shared client: keep-alive pooling for `pool_size` connections per
    /// host, the timeouts, and no redirects (a webhook answered with 3xx is refused).
    pub(crate) fn new(settings: DeliverySettings, pool_size: usize) -> anyhow::Result<Deliverer> {
        // The provider may already be installed (tests start several apps); that is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("taskhooks-producer/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(pool_size)
            .redirect(reqwest::redirect::Policy::none())
            // reqwest's own retries only replay HTTP/2 and HTTP/3 refusals, which an
            // HTTP/1.1 client never meets, yet they copy every request's headers in
            // case (seen with `scripts/profile producer`); our retry policy decides.
            .retry(reqwest::retry::never().max_retries_per_request(0));
        if settings.target.scheme() == "http" {
            // No TLS is spoken, so no CA certificates are needed: a slim container
            // without any must still be able to send plain HTTP webhooks.
            builder = builder.tls_certs_only([]);
        }
        let client = builder.build().with_context(|| {
            format!(
                "cannot build the HTTP client for {} (for https, the system's CA \
                 certificates are needed: install ca-certificates, or set SSL_CERT_FILE)",
                redact_url(settings.target.as_str())
            )
        })?;
        Ok(Deliverer {
            client,
            settings,
            metrics: Metrics::new(),
        })
    }

    /// What every delivery so far came to (served at `GET /metrics`).
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Delivers `message`, retrying as the policy says. `on_retry` hears of each
    /// failed attempt that will be retried, and the wait before the next. Once
    /// `stop` is cancelled no further attempt starts; one in flight is let finish.
    pub(crate) async fn deliver(
        &self,
        message: &Message,
        stop: &CancellationToken,
        mut on_retry: impl FnMut(&Attempt, Duration),
    ) -> Delivery {
        let _in_flight = self.metrics.start();
        let started = Instant::now();
        let mut attempts: Vec<Attempt> = Vec::new();
        let outcome = loop {
            if stop.is_cancelled() {
                break Outcome::Cancelled(stopped_reason(&attempts));
            }
            let number = attempts.len() as u32 + 1;
            let (attempt, verdict) = self
                .attempt(message, message.earlier_attempts + number)
                .await;
            let jitter = rand::rng().random::<f64>();
            match self.settings.policy.decide(number, verdict, jitter) {
                Decision::Delivered => {
                    attempts.push(attempt);
                    break Outcome::Delivered;
                }
                Decision::GiveUp(why) => {
                    let reason = give_up(why, &attempt);
                    attempts.push(attempt);
                    break Outcome::Failed(reason);
                }
                Decision::Retry(wait) => {
                    on_retry(&attempt, wait);
                    attempts.push(attempt);
                    tokio::select! {
                        biased;
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        };
        let delivery = Delivery {
            outcome,
            attempts,
            elapsed: started.elapsed(),
        };
        self.metrics.delivery(&delivery);
        delivery
    }

    async fn attempt(&self, message: &Message, number: u32) -> (Attempt, Verdict) {
        let started_at = now_millis();
        let started = Instant::now();
        let result = self.post(message).await;
        let duration = started.elapsed();
        let timed_out = matches!(&result, Err(err) if err.is_timeout());
        let (status, error, response, verdict) = match result {
            Ok((code, retry_after, body)) => {
                let ok = (200..300).contains(&code);
                // Borrowed when the body is valid UTF-8: one copy, the excerpt kept.
                let detail = String::from_utf8_lossy(&body);
                let error = (!ok).then(|| refusal(code, &detail));
                let verdict = Verdict::Status { code, retry_after };
                (Some(code), error, Some(excerpt(&detail)), verdict)
            }
            Err(err) => (None, Some(self.describe(&err)), None, Verdict::Transport),
        };
        let attempt = Attempt {
            number,
            started_at,
            status,
            error,
            duration,
            response,
        };
        self.metrics.attempt(&attempt, timed_out);
        (attempt, verdict)
    }

    /// Sends the request, signed when a secret is set, and reads the answer:
    /// status, `Retry-After`, body (its first [`MAX_RESPONSE_BYTES`] at least).
    async fn post(
        &self,
        message: &Message,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), reqwest::Error> {
        let mut request = self
            .client
            .post(self.settings.target.clone())
            .header(CONTENT_TYPE, APPLICATION_JSON)
            .header(WEBHOOK_ID, &*message.webhook_id);
        if let Signing::Secrets(secrets) = &self.settings.signing {
            // Signed afresh for each attempt: the timestamp must be recent.
            let signed = secrets.headers(&message.webhook_id, unix_now(), &message.body);
            request = request
                .header(WEBHOOK_TIMESTAMP, signed.timestamp)
                .header(WEBHOOK_SIGNATURE, signed.signature);
        }
        let mut response = request.body(message.body.clone()).send().await?;
        let code = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_RESPONSE_BYTES {
                break;
            }
        }
        Ok((code, retry_after, body))
    }

    /// A transport error in words, naming its root cause.
    fn describe(&self, err: &reqwest::Error) -> String {
        if err.is_timeout() {
            let limit = if err.is_connect() {
                self.settings.connect_timeout
            } else {
                self.settings.timeout
            };
            return format!("timed out after {limit:?}");
        }
        let mut root: &dyn std::error::Error = err;
        while let Some(source) = root.source() {
            root = source;
        }
        if err.is_connect() {
            format!("could not connect: {root}")
        } else if let Some(words) = closed_before_an_answer(root) {
            words
        } else {
            format!("request failed: {root}")
        }
    }
}

/// An attempt whose connection was closed after it was made and before any
/// answer came: the receiver may have taken the webhook (a retry is then
/// answered `duplicate`), so it is told apart from a failure to connect.
const CLOSED_BEFORE_AN_ANSWER: &str = "connection closed before an answer";

/// [`CLOSED_BEFORE_AN_ANSWER`], when `root` (a transport error's root cause,
/// once connected) is the connection closed or reset before the answer; an
/// I/O error's own words follow in brackets. hyper says "connection closed
/// before message completed" for a clean close (its `IncompleteMessage`, a type
/// reqwest does not expose): the test
/// `an_answer_lost_to_a_closed_connection_says_so_and_is_retried` holds this
/// text to hyper's, against a real socket that reads the request and closes.
fn closed_before_an_answer(root: &(dyn std::error::Error + 'static)) -> Option<String> {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match root.downcast_ref::<std::io::Error>() {
        Some(io) => matches!(
            io.kind(),
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
        )
        .then(|| format!("{CLOSED_BEFORE_AN_ANSWER} ({io})")),
        None => root
            .to_string()
            .starts_with("connection closed before message completed")
            .then(|| CLOSED_BEFORE_AN_ANSWER.to_owned()),
    }
}

/// A non-2xx answer in words: `HTTP 401 Unauthorized: <the receiver's error>`.
fn refusal(code: u16, body: &str) -> String {
    let reason = reqwest::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned());
    let detail: String = detail.chars().take(MAX_ERROR_DETAIL).collect();
    match (reason, detail.is_empty()) {
        (_, true) => format!("HTTP {code} {reason}").trim_end().to_owned(),
        _ => format!("HTTP {code} {reason}: {detail}"),
    }
}

fn give_up(why: GiveUp, last: &Attempt) -> String {
    let error = last.error.as_deref().unwrap_or("no error");
    match why {
        GiveUp::Refused => format!("{error} (not retried: the receiver refused this request)"),
        GiveUp::Exhausted => format!("gave up after {} attempts; last: {error}", last.number),
    }
}

fn stopped_reason(attempts: &[Attempt]) -> String {
    match attempts.last() {
        None => "stopped before it was sent".to_owned(),
        Some(last) => format!(
            "stopped after {} attempt(s); last: {}",
            last.number,
            last.error.as_deref().unwrap_or("no error")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_quote_the_receivers_error() {
        let json = r#"{"error":"no webhook-signature matched the body"}"#;
        assert_eq!(
            refusal(401, json),
            "HTTP 401 Unauthorized: no webhook-signature matched the body"
        );
        assert_eq!(
            refusal(500, "  boom \n"),
            "HTTP 500 Internal Server Error: boom"
        );
        assert_eq!(refusal(503, ""), "HTTP 503 Service Unavailable");
        assert_eq!(refusal(599, ""), "HTTP 599");
        assert_eq!(
            refusal(418, &"x".repeat(1000)).len(),
            "HTTP 418 I'm a teapot: ".len() + 300
        );
    }

    #[test]
    fn a_connection_closed_or_reset_once_connected_reads_as_a_lost_answer() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let words = closed_before_an_answer(&reset).expect("a lost answer");
        assert!(
            words.starts_with("connection closed before an answer ("),
            "{words}"
        );
        let other = std::io::Error::other("disk on fire");
        assert_eq!(closed_before_an_answer(&other), None);
    }

    #[test]
    fn stopped_tasks_say_how_far_they_got() {
        assert_eq!(stopped_reason(&[]), "stopped before it was sent");
        let attempt = Attempt {
            number: 2,
            started_at: 0,
            status: Some(503),
            error: Some("HTTP 503 Service Unavailable".into()),
            duration: Duration::ZERO,
            response: None,
        };
        assert_eq!(
            stopped_reason(&[attempt]),
            "stopped after 2 attempt(s); last: HTTP 503 Service Unavailable"
        );
    }
}
