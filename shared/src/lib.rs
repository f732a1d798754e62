//! Taskhooks' shared vocabulary: the [`Task`] both programs exchange and the
//! Standard Webhooks [`signing`] that proves a task came from our producer.
//!
//! Nothing in here knows about HTTP servers, Redis or browsers; both binaries
//! depend on it, so it stays small and pure.

pub mod assets;
pub mod signing;
pub mod task;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use signing::{Secret, SigningError, WebhookHeaders};
pub use task::{Priority, Task};
