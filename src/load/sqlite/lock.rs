//! The SQLite locks: OS advisory locks on side files, each held by the open file that its
//! guard owns. Closing the file (dropping the guard, or the process ending) frees the lock,
//! so a run that panics or is killed never leaves it behind.
//!
//! - the run lock, `<db path>.lock`, owned by the [`RunLockGuard`]s of one sink (taking it
//!   again through the same sink shares the hold, see `load::held`);
//! - the OAuth refresh lock, `<db path>.oauth-<app>.lock`, one per application (see `tokens.rs`).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{SqliteSink, LOCK_RETRY};
use crate::store::{HeldLock, RunLock, RunLockGuard, StoreError};

/// The held run lock: the open lock file.
pub(super) struct SqliteRunLock {
    file: File,
    path: PathBuf,
}

#[async_trait]
impl HeldLock for SqliteRunLock {
    async fn release(self: Box<Self>) -> Result<(), StoreError> {
        let SqliteRunLock { file, path } = *self;
        let failed = |reason: String| StoreError::Database {
            context: format!("releasing the run lock {}", path.display()),
            reason,
        };
        // Closing the file releases the OS lock; unlocking first reports a failure.
        tokio::task::spawn_blocking(move || file.unlock())
            .await
            .map_err(|e| failed(format!("the lock task failed: {e}")))?
            .map_err(|e| failed(e.to_string()))
    }
}

#[async_trait]
impl RunLock for SqliteSink {
    async fn lock_run(&self, wait: Duration) -> Result<RunLockGuard, StoreError> {
        let path = self.lock_path();
        let take = async {
            let file = lock_file(&path, wait, "the run lock", self.describe()).await?;
            Ok(SqliteRunLock {
                file,
                path: path.clone(),
            })
        };
        self.run_lock.guard(take).await
    }
}

/// Take the OS lock on `path`, waiting at most `wait`; [`StoreError::LockBusy`] naming
/// `busy_target` after that. The lock belongs to the open file returned, so a second attempt
/// in this process waits like another process would. `what` names the lock in messages.
pub(super) async fn lock_file(
    path: &Path,
    wait: Duration,
    what: &'static str,
    busy_target: String,
) -> Result<File, StoreError> {
    let started = Instant::now();
    loop {
        let attempt = path.to_path_buf();
        let taken = tokio::task::spawn_blocking(move || try_lock(&attempt, what))
            .await
            .map_err(|e| StoreError::Database {
                context: format!("taking {what}"),
                reason: format!("the lock task failed: {e}"),
            })??;
        if let Some(file) = taken {
            return Ok(file);
        }
        let waited = started.elapsed();
        if waited >= wait {
            return Err(StoreError::LockBusy {
                target: busy_target,
                waited_secs: waited.as_secs(),
            });
        }
        tokio::time::sleep(LOCK_RETRY.min(wait - waited)).await;
    }
}

/// One attempt: the open, locked file when the lock was free.
fn try_lock(path: &Path, what: &str) -> Result<Option<File>, StoreError> {
    let err = |reason: String| StoreError::Database {
        context: format!("taking {what} {}", path.display()),
        reason,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(err(e.to_string())),
    }
}
