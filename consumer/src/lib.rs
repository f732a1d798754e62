//! The Taskhooks consumer: receives task webhooks, verifies them, fans them out
//! through a broker and pushes them to live dashboards over WebSocket.
//!
//! The path of one webhook, file by file:
//! 1. [`routes::webhook`] reads the body, checks size, signature, content type and
//!    JSON, then asks the [`broker`] to accept it;
//! 2. [`broker`] deduplicates, counts and publishes it as an event (`event.rs`) in
//!    one Redis round trip (or in process when no Redis is configured) and answers
//!    only once it is published;
//! 3. the broker's subscriber hands every published event to the process's hub
//!    (`hub.rs`), which paces them into events frames (`events_frame.rs`), each
//!    serialised once for every socket;
//! 4. [`ws`] runs one task per dashboard socket, whose connection pulls the snapshot
//!    ([`snapshot_reads`]), then the frames waiting for it (`ws/feed.rs`).
//!
//! With `--fault-injection`, `faults/` refuses, delays or drops the answer of the
//! webhooks `/api/faults` says, after step 1's checks (`routes/faults.rs`).

pub mod broker;
mod config;
mod error;
mod event;
mod events_frame;
mod faults;
mod hub;
mod metrics;
pub mod routes;
pub mod snapshot_reads;
mod startup;
mod state;
pub mod ws;

pub use config::Config;
pub use startup::Application;
pub use taskhooks_shared::web::shutdown_signal;
