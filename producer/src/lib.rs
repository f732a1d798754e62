//! The Taskhooks producer: generates batches of fake tasks and delivers each one
//! as a signed webhook, with a live page and a headless load mode.
//!
//! The path of one task of the page, folder by folder:
//! 1. `generator.rs` makes it (seeded, so batches can be reproduced), and
//!    `routes/` keeps its batch in the [`store`] (memory, or Redis with
//!    `REDIS_URL`), which queues it;
//! 2. `worker.rs`, the one pipeline, takes it from the store's queue at its
//!    batch's pace, within the in-flight bound;
//! 3. `delivery/` signs and POSTs it, retrying as `delivery/retry.rs` decides,
//!    and tells each step to the pipeline, which records it in the store
//!    (`record.rs` is what is recorded);
//! 4. [`events`] streams the batch's event log to the page.
//!
//! `producer send` ([`send`]) delivers through the same `delivery/`, keeping
//! nothing per task: it counts, and prints a report.

pub mod config;
mod delivery;
mod error;
pub mod events;
mod generator;
mod pace;
mod record;
mod routes;
pub mod send;
mod startup;
mod state;
pub mod store;
mod worker;

pub use config::{Cli, Command, Config};
pub use startup::Application;
pub use taskhooks_shared::web::shutdown_signal;
