//! `remember`: get-or-compute with single-flight.
//!
//! **Guarantee**: concurrent misses of one key in one process run the loader once; every
//! caller of that flight gets the loaded value (or the loader's error). If the caller
//! running the loader is cancelled (its future dropped), one of the waiting callers runs
//! its own loader instead, so a flight never hangs. Loader errors are never cached: the
//! next call after a failed flight loads again.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

/// What a flight produced: the value or the loader's error, type-erased (each key is
/// loaded with one value and error type in practice; a mismatch is handled by loading
/// again).
pub(crate) type FlightResult = Result<Arc<dyn Any + Send + Sync>, Arc<dyn Any + Send + Sync>>;

/// In-flight loads, by stored key.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Arc<OnceCell<FlightResult>>>>,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &self.map.lock().len())
            .finish()
    }
}

impl Flights {
    /// The flight for `key`, joining the one in progress if any.
    pub(crate) fn join(&self, key: &str) -> Arc<OnceCell<FlightResult>> {
        self.map
            .lock()
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone()
    }

    /// Ends `flight` for `key` (if it is still the registered one), so the next miss
    /// starts a new flight instead of reusing this result.
    pub(crate) fn land(&self, key: &str, flight: &Arc<OnceCell<FlightResult>>) {
        let mut map = self.map.lock();
        if map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            map.remove(key);
        }
    }
}

/// The error of [`Namespace::remember`](crate::Namespace::remember).
#[derive(Debug, thiserror::Error)]
pub enum RememberError<E> {
    /// The cache failed (invalid key or TTL, backend unavailable...).
    #[error(transparent)]
    Cache(#[from] crate::Error),
    /// The loader failed. Callers that joined the same flight share the error.
    #[error("loader failed: {0}")]
    Loader(Arc<E>),
}

impl<E> RememberError<E> {
    /// The loader's error, if the loader failed.
    pub fn loader_error(&self) -> Option<&E> {
        match self {
            RememberError::Loader(e) => Some(e),
            RememberError::Cache(_) => None,
        }
    }
}
