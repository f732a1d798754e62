//! Taskhooks' shared vocabulary: the [`Task`] both programs exchange and the
//! Standard Webhooks [`signing`] that proves a task came from our producer.
//!
//! It also holds the few pieces of web plumbing both actix apps would otherwise
//! write twice ([`web`]: JSON 404/405, static files, the shutdown signal;
//! [`request_log`]: a request id per request) and the
//! embedded front-end [`assets`]. Nothing in here knows about Redis or the pages.

pub mod assets;
pub mod json;
pub mod request_log;
pub mod signing;
pub mod task;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod web;

pub use signing::{Secret, SigningError, WebhookHeaders};
pub use task::{Priority, Task};
