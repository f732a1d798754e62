//! What a delivery came to: each attempt, and how it ended. Plain data, made by
//! [`crate::delivery`] and read by [`crate::metrics`], the runner and the report.

use std::time::Duration;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// The status, when the receiver answered.
    pub status: Option<u16>,
    /// What went wrong, when it did.
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration: Duration,
}

/// How a task's delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver refused, or every attempt failed; the reason says which.
    Failed(String),
    /// Stopped (by the Stop button or shutdown) before it could be delivered.
    Cancelled(String),
}

/// The full story of one task's delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// How it ended.
    pub outcome: Outcome,
    /// Every attempt made, in order.
    pub attempts: Vec<Attempt>,
    /// From the first attempt's start to the end.
    pub elapsed: Duration,
}
