//! Where an OAuth application's tokens live (`bitrix_oauth`), for the OAuth session in
//! `extract::oauth`. Both backends implement it.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::model::oauth::StoredApp;

/// Where an application's tokens live: `bitrix_oauth`, one row per `client_id`.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// For messages (the database, never a password).
    fn describe(&self) -> String;

    /// The app's row, if it was ever authorized.
    async fn load_app(&self, client_id: &str) -> Result<Option<StoredApp>, StoreError>;

    /// Write the app's row (insert, or update it in place), in one transaction.
    async fn save_app(&self, app: &StoredApp) -> Result<(), StoreError>;

    /// Take the app's refresh lock, waiting at most `wait`: held until the returned guard
    /// is dropped; the guard reads and writes the row while it is held. A crashed holder
    /// must release it (an OS lock, a session-owned app lock).
    async fn lock_app(
        &self,
        client_id: &str,
        wait: Duration,
    ) -> Result<Box<dyn TokenLock>, StoreError>;
}

/// The refresh lock of one application, with access to its row.
#[async_trait]
pub trait TokenLock: Send {
    async fn read(&mut self) -> Result<Option<StoredApp>, StoreError>;
    /// Durable once it returns.
    async fn write(&mut self, app: &StoredApp) -> Result<(), StoreError>;
}
