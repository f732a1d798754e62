//! What a delivery came to: each attempt, and how it ended. Plain data, made by
//! [`crate::delivery`] and read by its metrics, the pipeline and `producer send`.

use std::time::Duration;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// 1 for the first attempt; a redelivery's attempts count on from the earlier ones.
    pub(crate) number: u32,
    /// When it started, in Unix milliseconds.
    pub(crate) started_at: u64,
    /// The status, when the receiver answered.
    pub(crate) status: Option<u16>,
    /// What went wrong, when it did.
    pub(crate) error: Option<String>,
    pub(crate) duration: Duration,
    /// The start of the response body (at most [`MAX_RECORDED_RESPONSE`] bytes),
    /// when the receiver answered.
    pub(crate) response: Option<String>,
}

/// How much of a response body an attempt keeps, in bytes: enough for any JSON
/// error of a webhook receiver, and 64 batches of 10,000 tasks stay in memory.
pub(crate) const MAX_RECORDED_RESPONSE: usize = 1024;

/// The first `MAX_RECORDED_RESPONSE` bytes of `body`, cut at a character boundary.
pub(crate) fn excerpt(body: &str) -> String {
    let mut end = body.len().min(MAX_RECORDED_RESPONSE);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_owned()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a task's delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver refused, or every attempt failed; the reason says which.
    Failed(String),
    /// Stopped (by the Stop button or shutdown) before it could be delivered.
    Cancelled(String),
}

/// The full story of one task's delivery.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) outcome: Outcome,
    /// Every attempt made, in order.
    pub(crate) attempts: Vec<Attempt>,
    /// From the first attempt's start to the end.
    pub(crate) elapsed: Duration,
}
