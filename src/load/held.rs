//! A sink's run lock while guards hold it. The lock itself is owned by the guards (an open
//! file, a server session); the sink keeps only a weak reference, so that
//! - taking the lock again through the same sink while it holds it is a no-op (the new
//!   guard shares the hold, and the lock ends with the last guard), and
//! - the sink can tell its write transactions which lock they run under (SQL Server checks
//!   the token) without keeping the lock alive itself.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_trait::async_trait;

use crate::store::{HeldLock, RunLockGuard, StoreError};

/// The lock a sink holds through its guards, if any.
pub(crate) struct HeldBy<H> {
    held: Mutex<Weak<H>>,
    /// Serialises taking the lock, so two tasks of one sink do not both start to take it.
    taking: tokio::sync::Mutex<()>,
}

impl<H> Default for HeldBy<H> {
    fn default() -> Self {
        HeldBy {
            held: Mutex::new(Weak::new()),
            taking: tokio::sync::Mutex::new(()),
        }
    }
}

impl<H: HeldLock + 'static> HeldBy<H> {
    /// The held lock, while a guard holds it.
    pub fn current(&self) -> Option<Arc<H>> {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade()
    }

    /// A guard sharing the held lock, or else one for the lock `take` acquires.
    pub async fn guard<F>(&self, take: F) -> Result<RunLockGuard, StoreError>
    where
        F: std::future::Future<Output = Result<H, StoreError>>,
    {
        let _taking = self.taking.lock().await;
        let held = match self.current() {
            Some(held) => held,
            None => {
                let held = Arc::new(take.await?);
                *self.held.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(&held);
                held
            }
        };
        Ok(RunLockGuard::new(Box::new(Shared(held))))
    }
}

/// One guard's share of a held lock; the last share releases it.
struct Shared<H>(Arc<H>);

#[async_trait]
impl<H: HeldLock + 'static> HeldLock for Shared<H> {
    async fn release(self: Box<Self>) -> Result<(), StoreError> {
        match Arc::try_unwrap(self.0) {
            Ok(last) => Box::new(last).release().await,
            // Another guard of this sink still holds it.
            Err(_) => Ok(()),
        }
    }
}
