//! The run lock as a value: holding a [`RunLockGuard`] is holding the lock.

use async_trait::async_trait;

use super::StoreError;

/// A backend's held run lock. Dropping it must release the lock too (closing the lock
/// file, ending the session that holds the application lock), so a run that panics or
/// returns early never leaves the lock behind.
#[async_trait]
pub trait HeldLock: Send + Sync {
    /// Release the lock now, reporting a failure (dropping releases silently).
    async fn release(self: Box<Self>) -> Result<(), StoreError>;
}

/// The run lock, held until [`RunLockGuard::release`] or drop.
pub struct RunLockGuard {
    held: Option<Box<dyn HeldLock>>,
}

impl RunLockGuard {
    pub fn new(held: Box<dyn HeldLock>) -> RunLockGuard {
        RunLockGuard { held: Some(held) }
    }

    /// Release the lock, reporting a failure.
    pub async fn release(mut self) -> Result<(), StoreError> {
        match self.held.take() {
            Some(held) => held.release().await,
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for RunLockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunLockGuard")
    }
}
