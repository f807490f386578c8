//! The load stage: the backends that keep the tables in a database, and the [`Stores`]
//! value that hands one backend out under every role of `crate::store`.
//!
//! Every backend keeps the same six Oktell tables (`docs/oktell-schema.md`) with the
//! same table and column names, so the queries a telephony system runs work on both.
//! A backend's contract, whatever the database:
//! - `load_batch` is one transaction and set-based (stage the rows, then a few statements);
//! - leads are upserted by `sql_ID`; a row whose values did not change is not touched;
//! - a lead's contact values and solution are *replaced*: a value removed in Bitrix24
//!   disappears here too;
//! - `bitrix_import_lead_error` holds the current problems of each lead in the batch: a
//!   lead that now loads cleanly loses its old error rows, an unchanged problem keeps its
//!   row (and its first-seen date), a new problem adds one. So a re-run changes nothing;
//! - a read never creates or migrates the schema: on a database `b24sync init-db` has not
//!   prepared it refuses, saying so ([`not_prepared`]).

mod held;
pub mod mssql;
pub(crate) mod oauth_row;
pub mod sqlite;

use std::sync::Arc;

use crate::store::{
    BatchWriter, CallerLookup, DeletionStore, ErrorReview, EventQueue, FingerprintStore,
    OperatorStore, RunHistory, RunLock, SchemaAdmin, StateStore, StoreError, TokenStore,
};

/// One database's stores, by role (see `crate::store`). Every field is the same backend
/// value; cloning is cheap.
#[derive(Clone)]
pub struct Stores {
    /// A name for messages: the file path or `host:port/database` (never a password).
    pub target: String,
    pub schema: Arc<dyn SchemaAdmin>,
    pub lock: Arc<dyn RunLock>,
    pub batches: Arc<dyn BatchWriter>,
    pub deletions: Arc<dyn DeletionStore>,
    pub fingerprints: Arc<dyn FingerprintStore>,
    pub state: Arc<dyn StateStore>,
    pub history: Arc<dyn RunHistory>,
    pub errors: Arc<dyn ErrorReview>,
    pub operators: Arc<dyn OperatorStore>,
    pub lookup: Arc<dyn CallerLookup>,
    pub tokens: Arc<dyn TokenStore>,
    /// The event queue of `b24sync serve`.
    pub queue: Arc<dyn EventQueue>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("target", &self.target)
            .finish()
    }
}

impl Stores {
    /// Hand out one backend value under every role.
    pub fn of<B>(target: String, backend: Arc<B>) -> Stores
    where
        B: SchemaAdmin
            + RunLock
            + BatchWriter
            + DeletionStore
            + FingerprintStore
            + StateStore
            + RunHistory
            + ErrorReview
            + OperatorStore
            + CallerLookup
            + TokenStore
            + EventQueue
            + 'static,
    {
        Stores {
            target,
            schema: backend.clone(),
            lock: backend.clone(),
            batches: backend.clone(),
            deletions: backend.clone(),
            fingerprints: backend.clone(),
            state: backend.clone(),
            history: backend.clone(),
            errors: backend.clone(),
            operators: backend.clone(),
            lookup: backend.clone(),
            tokens: backend.clone(),
            queue: backend,
        }
    }
}

/// Open the database named by `--db`: a SQL Server connection string, or else a file path
/// for the embedded database.
pub async fn open_stores(db: &str, pool_size: u32) -> Result<Stores, StoreError> {
    if mssql::is_connection_string(db) {
        let opts = mssql::MssqlOptions {
            pool_size,
            ..Default::default()
        };
        Ok(mssql::MssqlSink::connect(db, opts).await?.into_stores())
    } else {
        Ok(sqlite::SqliteSink::open(std::path::Path::new(db))?.into_stores())
    }
}

/// The OAuth token store behind `--db`: `bitrix_oauth` in SQL Server when `db` is a
/// connection string, else in the embedded database file. For `b24sync auth`, `token` and
/// `sync --client-id`. A SQL Server database must have had `b24sync init-db` (the store keeps
/// a side record in `b24sync_state`).
pub async fn open_token_store(db: &str) -> Result<Arc<dyn TokenStore>, StoreError> {
    if mssql::is_connection_string(db) {
        // The refresh lock takes a dedicated connection besides these.
        let opts = mssql::MssqlOptions {
            pool_size: 2,
            ..mssql::MssqlOptions::default()
        };
        Ok(Arc::new(mssql::MssqlSink::connect(db, opts).await?))
    } else {
        Ok(Arc::new(sqlite::SqliteSink::open(std::path::Path::new(
            db,
        ))?))
    }
}

/// Why a read refuses a database that lacks migrations of this build (`missing`, as
/// "0001 name"): the same words from every backend.
pub(crate) fn not_prepared(target: &str, missing: &[String]) -> StoreError {
    StoreError::Schema(format!(
        "the database {target} is not prepared for b24sync (not applied: {}); run `b24sync init-db` first",
        missing.join(", ")
    ))
}
