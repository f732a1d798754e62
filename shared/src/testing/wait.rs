//! Waiting for a condition in a test: poll it until it holds, failing after a
//! limit, never a fixed sleep that is too short on a loaded machine and too long
//! everywhere else.

use super::WAIT;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How often a condition is polled: often enough that a test does not idle, rarely
/// enough that polling does not load the program under test.
const POLL: Duration = Duration::from_millis(50);

/// One look at a condition: ready with a value, or not yet.
pub trait Attempt {
    /// What the condition gives once it holds.
    type Ready;
    /// `Ok` once ready; otherwise what was seen, if worth telling when time runs out.
    fn ready(self) -> Result<Self::Ready, Option<String>>;
}

/// `None` is not yet.
impl<T> Attempt for Option<T> {
    type Ready = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Err(seen)` is not yet, and the last `seen` is in the failure message.
impl<T, E: Display> Attempt for Result<T, E> {
    type Ready = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Polls `check` until it is ready, failing after [`WAIT`].
///
/// # Panics
/// When `check` is not ready within [`WAIT`]; the message names `what`.
pub async fn eventually<A, F, Fut>(what: impl Display, check: F) -> A::Ready
where
    A: Attempt,
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
{
    eventually_within(WAIT, what, check).await
}

/// Polls `check` until it is ready, failing after `limit`.
///
/// # Panics
/// When `check` is not ready within `limit`; the message names `what` and the
/// last thing `check` saw, when it said.
pub async fn eventually_within<A, F, Fut>(
    limit: Duration,
    what: impl Display,
    mut check: F,
) -> A::Ready
where
    A: Attempt,
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let seen = match check().await.ready() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= deadline {
            match seen {
                Some(seen) => panic!("timed out waiting for {what}: {seen}"),
                None => panic!("timed out waiting for {what}"),
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
