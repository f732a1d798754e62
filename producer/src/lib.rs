//! The Taskhooks producer: generates batches of fake tasks and delivers each one
//! as a signed webhook, with a live page and a headless load mode.
//!
//! The path of one task, file by file:
//! 1. `generator.rs` makes it (seeded, so batches can be reproduced);
//! 2. `runner.rs` starts its delivery at the pace, within the in-flight bound;
//! 3. `delivery.rs` signs and POSTs it, retrying as `retry.rs` decides, recording
//!    every attempt (`outcome.rs`);
//! 4. each step is told to a sink: for the page, the batch's event log in
//!    [`batches`], streamed by [`sse`]; for `producer send`, the progress display
//!    and the [`report`].

mod batch;
pub mod batches;
pub mod config;
mod deliveries;
mod delivery;
mod error;
mod generator;
mod metrics;
mod outbox;
mod outcome;
mod progress;
pub mod report;
mod retry;
mod routes;
mod runner;
pub mod send;
pub mod sse;
mod startup;
mod state;

pub use config::{Cli, Command, Config};
pub use startup::Application;
pub use taskhooks_shared::web::shutdown_signal;
