//! The poisoned flag every backend latches on its first failed write or sync.

use parking_lot::Mutex;

use crate::error::StorageError;
use crate::persister::Result;

/// Latched on the first failed write or sync. Once set, every write is refused.
#[derive(Debug, Default)]
pub(crate) struct Poison(Mutex<Option<String>>);

impl Poison {
    /// Fails with [`StorageError::Poisoned`] if an earlier write failed.
    pub(crate) fn check(&self, refused: &'static str) -> Result<()> {
        match &*self.0.lock() {
            Some(cause) => Err(StorageError::Poisoned {
                cause: cause.clone(),
                refused,
            }),
            None => Ok(()),
        }
    }

    /// Passes `result` through, latching the flag if it is an error.
    pub(crate) fn latch<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            let mut slot = self.0.lock();
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }
        result
    }

    /// True once latched.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.0.lock().is_some()
    }
}
