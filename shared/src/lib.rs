//! Taskhooks' shared vocabulary: the [`Task`] both programs exchange and the
//! Standard Webhooks [`signing`] that proves a task came from our producer.
//!
//! It also embeds the front-end [`assets`], and, with the `web` feature (which both
//! programs enable), holds the few pieces of actix-web plumbing they would otherwise
//! write twice: `web` (their error answers, JSON 404/405, static files, request ids,
//! the shutdown signal). Without that feature nothing in here knows about HTTP
//! servers; outside `testing` (the suites' support, feature `testing`), nothing
//! knows about Redis or the pages.

pub mod assets;
pub mod exposure;
pub mod healthcheck;
pub mod json;
pub mod redact;
#[cfg(feature = "redis")]
pub mod redis_client;
pub mod signing;
pub mod sync;
pub mod task;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "web")]
pub mod web;

pub use redact::redact_url;
pub use signing::{Secret, SigningError, WebhookHeaders};
pub use task::{Priority, Task};
