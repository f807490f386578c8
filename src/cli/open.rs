//! Opening what `--db` names, as each command may: the stores by role, created or not.

use std::path::Path;

use super::settings::Settings;
use super::{exit, ui};
use b24sync::load::sqlite::SqliteSink;
use b24sync::load::{mssql, Stores};
use b24sync::store::StoreError;

/// Whether a command may create the embedded database it is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DbOpen {
    /// Only an existing b24sync database: `lookup`, `status`, `errors`, `doctor`, `token`.
    /// A mistyped `--db` fails naming the path instead of answering from a new, empty file
    /// (a telephony lookup would say "unknown caller" for everyone).
    #[default]
    MustExist,
    /// Create the file when missing: `sync`, `run`, `init-db`, `auth` (and `demo`).
    Create,
}

/// The stores behind `--db`, opened as the command's [`DbOpen`] allows. SQL Server
/// databases are never created by b24sync (a DBA makes them), so the mode only changes
/// the file case.
pub(crate) async fn open_db_stores(
    db: &str,
    pool_size: u32,
    mode: DbOpen,
) -> Result<Stores, StoreError> {
    if mode == DbOpen::MustExist && !mssql::is_connection_string(db) {
        return Ok(SqliteSink::open_existing(Path::new(db))?.into_stores());
    }
    b24sync::load::open_stores(db, pool_size).await
}

/// [`open_db_stores`] for a command's settings; a failure is printed and becomes exit 6.
pub(crate) async fn open_stores(s: &Settings) -> Result<Stores, u8> {
    open_db_stores(&s.db, s.pool_size, s.db_open)
        .await
        .map_err(|e| {
            ui::error(&e.to_string());
            exit::DATABASE
        })
}
