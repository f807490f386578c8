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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts how often the lock was taken, released explicitly, and dropped.
    #[derive(Default)]
    struct Counts {
        taken: AtomicUsize,
        released: AtomicUsize,
        dropped: AtomicUsize,
    }

    struct Fake(Arc<Counts>);

    impl Drop for Fake {
        fn drop(&mut self) {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl HeldLock for Fake {
        async fn release(self: Box<Self>) -> Result<(), StoreError> {
            self.0.released.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    async fn take(held: &HeldBy<Fake>, counts: &Arc<Counts>) -> RunLockGuard {
        let counts = Arc::clone(counts);
        held.guard(async move {
            counts.taken.fetch_add(1, Ordering::SeqCst);
            Ok(Fake(counts))
        })
        .await
        .unwrap()
    }

    fn seen(c: &Counts) -> (usize, usize, usize) {
        let n = |a: &AtomicUsize| a.load(Ordering::SeqCst);
        (n(&c.taken), n(&c.released), n(&c.dropped))
    }

    #[tokio::test]
    async fn guards_of_one_sink_share_the_hold_and_the_last_one_releases() {
        let (held, counts) = (HeldBy::default(), Arc::new(Counts::default()));
        let first = take(&held, &counts).await;
        let second = take(&held, &counts).await;
        assert_eq!(seen(&counts), (1, 0, 0), "taken once");
        first.release().await.unwrap();
        assert_eq!(seen(&counts), (1, 0, 0), "the second guard still holds it");
        assert!(held.current().is_some());
        second.release().await.unwrap();
        assert_eq!(seen(&counts), (1, 1, 1));
        assert!(held.current().is_none());
        let _again = take(&held, &counts).await;
        assert_eq!(seen(&counts), (2, 1, 1), "taken anew once it was released");
    }

    #[tokio::test]
    async fn dropping_the_guards_drops_the_lock_without_release() {
        let (held, counts) = (HeldBy::default(), Arc::new(Counts::default()));
        let first = take(&held, &counts).await;
        let second = take(&held, &counts).await;
        drop(first);
        assert_eq!(seen(&counts), (1, 0, 0));
        drop(second);
        assert_eq!(
            seen(&counts),
            (1, 0, 1),
            "dropped, never released by a task"
        );
        assert!(held.current().is_none());
    }

    #[tokio::test]
    async fn a_failed_take_leaves_nothing_held() {
        let held: HeldBy<Fake> = HeldBy::default();
        let err = held
            .guard(async {
                Err(StoreError::LockBusy {
                    target: "db".into(),
                    waited_secs: 0,
                })
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::LockBusy { .. }), "{err:?}");
        assert!(held.current().is_none());
    }
}
