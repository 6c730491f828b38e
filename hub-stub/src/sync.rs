//! Locking shared state.

use std::sync::Mutex;

/// Locks a mutex, surviving poisoning (counters stay usable after a panic elsewhere).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
