//! The one way both programs take their std mutexes.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking it even when a panic poisoned it. Every mutex of both
/// programs is held only for a change that leaves its data consistent (a push,
/// a field or map write), never across an `.await`: a panic elsewhere while
/// holding it cannot leave it half changed, and refusing the lock would turn one
/// panicked task into a broken process.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_mutex_is_taken_as_it_was_left() {
        let mutex = std::sync::Arc::new(Mutex::new(vec![1]));
        let held = mutex.clone();
        let panicked = std::thread::spawn(move || {
            let mut data = lock(&held);
            data.push(2);
            panic!("poisons the mutex");
        })
        .join();
        assert!(panicked.is_err() && mutex.is_poisoned());
        assert_eq!(*lock(&mutex), [1, 2]);
    }
}
