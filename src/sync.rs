//! Locking that survives a panic elsewhere.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking the data even if another holder panicked: every value the crate guards is
/// plain data, consistent after each assignment, so a poisoned lock must not take a router, a
/// simulator or a drill down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
