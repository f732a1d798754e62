//! The retry policy: a pure function from one attempt's result to what happens
//! next, so every rule is unit-tested without a network.
//!
//! Retried: connection errors, timeouts, 408, 429 and 5xx — the failures a later
//! attempt can cure. Any other 4xx means the receiver will never take this request
//! (bad signature, bad body), so retrying would only repeat the refusal.

use std::time::{Duration, SystemTime};

/// Longest wait a `Retry-After` header may impose; a receiver asking for more is
/// retried after this instead, so a batch never stalls for minutes.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Longest computed backoff between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// When to retry and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Attempts per task, the first included.
    pub(crate) max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub(crate) base_backoff: Duration,
    /// Cap on the doubled wait.
    pub(crate) max_backoff: Duration,
    /// Cap on a `Retry-After` wait.
    pub(crate) max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: MAX_BACKOFF,
            max_retry_after: MAX_RETRY_AFTER,
        }
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The receiver answered with this status (and maybe a `Retry-After`).
    Status {
        code: u16,
        /// The parsed `Retry-After` header, if any.
        retry_after: Option<Duration>,
    },
    /// No answer: the connection failed, timed out or broke.
    Transport,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A 2xx: the task is delivered.
    Delivered,
    /// Try again after this wait.
    Retry(Duration),
    /// Stop: the receiver refused for good, or attempts are used up.
    GiveUp(GiveUp),
}

/// Why a task is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    /// A status no retry can change (a 4xx other than 408 and 429, a 3xx).
    Refused,
    /// Every attempt failed with a retryable error.
    Exhausted,
}

/// Whether a status is worth another attempt.
pub(crate) fn retryable_status(code: u16) -> bool {
    matches!(code, 408 | 429 | 500..=599)
}

impl RetryPolicy {
    /// Decides after attempt number `attempt` (from 1). `jitter` in `[0, 1]` is
    /// drawn by the caller, so this stays deterministic.
    pub(crate) fn decide(&self, attempt: u32, verdict: Verdict, jitter: f64) -> Decision {
        let retry_after = match verdict {
            Verdict::Status { code, .. } if (200..300).contains(&code) => {
                return Decision::Delivered;
            }
            Verdict::Status { code, .. } if !retryable_status(code) => {
                return Decision::GiveUp(GiveUp::Refused);
            }
            Verdict::Status { retry_after, .. } => retry_after,
            Verdict::Transport => None,
        };
        if attempt >= self.max_attempts {
            return Decision::GiveUp(GiveUp::Exhausted);
        }
        let backoff = self.backoff(attempt, jitter);
        match retry_after {
            Some(asked) => Decision::Retry(self.after_retry_after(asked, jitter).max(backoff)),
            None => Decision::Retry(backoff),
        }
    }

    /// A `Retry-After` is honoured as the earliest time to come back (capped), not as
    /// the exact one: up to a quarter more is added at random, so tasks refused
    /// together do not return together, and the growing backoff still applies once
    /// it is longer. Otherwise a receiver that always says `Retry-After: 1` would get
    /// every retry of every task in lockstep, one second apart, for as long as it is
    /// down, and `--retry-backoff-ms` would have no effect.
    fn after_retry_after(&self, asked: Duration, jitter: f64) -> Duration {
        // Capped first: the header is the receiver's input, and u64::MAX seconds plus
        // a quarter would overflow.
        let asked = asked.min(self.max_retry_after);
        asked
            .saturating_add(asked.mul_f64(0.25 * jitter.clamp(0.0, 1.0)))
            .min(self.max_retry_after)
    }

    /// The wait after failed attempt `attempt`: `base × 2^(attempt-1)`, capped, with
    /// "equal jitter" — half fixed, half random — so that many tasks failing
    /// together do not all come back at the same instant, yet none retries at once.
    pub(crate) fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let full = self
            .base_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        let half = full / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Reads a `Retry-After` value: whole seconds, or an HTTP date (relative to `now`).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date: actix_web::http::header::HttpDate = value.parse().ok()?;
    let at: SystemTime = date.into();
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Verdict {
        Verdict::Status {
            code,
            retry_after: None,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base_backoff: Duration::from_millis(100),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn two_hundreds_are_delivered_whatever_the_attempt() {
        for code in [200, 201, 204, 299] {
            assert_eq!(policy().decide(5, status(code), 0.5), Decision::Delivered);
        }
    }

    #[test]
    fn transient_failures_are_retried_and_other_statuses_are_not() {
        for verdict in [
            status(408),
            status(429),
            status(500),
            status(503),
            Verdict::Transport,
        ] {
            assert!(
                matches!(policy().decide(1, verdict, 0.0), Decision::Retry(_)),
                "{verdict:?}"
            );
        }
        for code in [301, 400, 401, 403, 404, 413, 415, 422] {
            assert_eq!(
                policy().decide(1, status(code), 0.0),
                Decision::GiveUp(GiveUp::Refused),
                "{code}"
            );
        }
    }

    #[test]
    fn the_last_attempt_gives_up() {
        let policy = policy();
        assert!(matches!(
            policy.decide(4, status(500), 0.0),
            Decision::Retry(_)
        ));
        assert_eq!(
            policy.decide(5, status(500), 0.0),
            Decision::GiveUp(GiveUp::Exhausted)
        );
        let once = RetryPolicy {
            max_attempts: 1,
            ..policy
        };
        assert_eq!(
            once.decide(1, Verdict::Transport, 0.0),
            Decision::GiveUp(GiveUp::Exhausted)
        );
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_up_to_the_cap() {
        let policy = policy();
        let ms = |attempt, jitter| policy.backoff(attempt, jitter).as_millis();
        assert_eq!((ms(1, 0.0), ms(1, 1.0)), (50, 100));
        assert_eq!((ms(2, 0.0), ms(2, 1.0)), (100, 200));
        assert_eq!((ms(3, 0.5), ms(4, 0.5)), (300, 600));
        assert_eq!(policy.backoff(40, 1.0), MAX_BACKOFF);
        assert_eq!(ms(1, 7.0), 100, "jitter is clamped to [0, 1]");
    }

    #[test]
    fn retry_after_is_the_earliest_return_with_up_to_a_quarter_more() {
        let with = |secs| Verdict::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        let wait = |attempt, secs, jitter| match policy().decide(attempt, with(secs), jitter) {
            Decision::Retry(wait) => wait.as_millis(),
            other => panic!("expected a retry, got {other:?}"),
        };
        assert_eq!((wait(1, 2, 0.0), wait(1, 2, 1.0)), (2000, 2500));
        assert_eq!(wait(1, 3600, 0.9), MAX_RETRY_AFTER.as_millis(), "capped");
        assert_eq!(
            wait(1, u64::MAX, 1.0),
            MAX_RETRY_AFTER.as_millis(),
            "no overflow"
        );
        // Retry-After: 0 is no reason to hammer the receiver: the backoff applies.
        assert_eq!(wait(1, 0, 1.0), 100);
        assert_eq!(
            policy().decide(5, with(1), 0.9),
            Decision::GiveUp(GiveUp::Exhausted)
        );
    }

    #[test]
    fn a_backoff_longer_than_retry_after_wins() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_millis(500),
            ..RetryPolicy::default()
        };
        let verdict = Verdict::Status {
            code: 503,
            retry_after: Some(Duration::from_secs(1)),
        };
        // After the 5th attempt the backoff is 4–8 s, well over the 1 s asked for.
        assert_eq!(
            policy.decide(5, verdict, 0.5),
            Decision::Retry(Duration::from_secs(6))
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_198_117);
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Mon, 07 Nov 1994 08:48:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Mon, 07 Nov 1994 08:48:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
