//! The pace rule of a run of tasks: when the next one may start, given when this
//! one was due and when it really started. Used by `producer send` and by the
//! memory store; the Redis store's `RESERVE` script keeps a batch's starts
//! apart by its pace too, shared by every producer.

use std::time::{Duration, Instant};

/// How late a start may run behind the schedule and still be caught up on.
/// Later than this (the in-flight limit held it back), the schedule restarts from
/// now rather than firing a burst.
const MAX_CATCH_UP: Duration = Duration::from_millis(100);

/// When the start after one due at `due` (`None`: the first) and begun at `now`
/// may come, `pace` later (`None`: no pacing). It keeps to the schedule when on
/// time, so that sub-millisecond paces average right, and restarts it from `now`
/// when far behind.
pub(crate) fn next_start(due: Option<Instant>, now: Instant, pace: Duration) -> Option<Instant> {
    if pace.is_zero() {
        return None;
    }
    let base = match due {
        Some(due) if now.saturating_duration_since(due) < MAX_CATCH_UP => due,
        _ => now,
    };
    Some(base + pace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_keeps_time_when_on_time_and_restarts_when_far_behind() {
        let t0 = Instant::now();
        let pace = Duration::from_millis(10);
        let first = next_start(None, t0, pace);
        assert_eq!(first, Some(t0 + pace));
        let on_time = next_start(first, t0 + Duration::from_millis(12), pace);
        assert_eq!(on_time, Some(t0 + Duration::from_millis(20)));
        let late = t0 + Duration::from_secs(5);
        assert_eq!(next_start(on_time, late, pace), Some(late + pace));
        assert_eq!(next_start(None, t0, Duration::ZERO), None);
    }
}
