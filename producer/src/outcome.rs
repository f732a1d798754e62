//! What a delivery came to: each attempt, and how it ended. Plain data, made by
//! [`crate::delivery`] and read by [`crate::metrics`], the runner and the report.

use std::time::Duration;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// 1 for the first attempt.
    pub(crate) number: u32,
    /// The status, when the receiver answered.
    pub(crate) status: Option<u16>,
    /// What went wrong, when it did.
    pub(crate) error: Option<String>,
    /// How long the attempt took.
    pub(crate) duration: Duration,
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
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// Every attempt made, in order.
    pub(crate) attempts: Vec<Attempt>,
    /// From the first attempt's start to the end.
    pub(crate) elapsed: Duration,
}
