//! The load stage: sinks that write [`Batch`]es into a database.
//!
//! Every sink keeps the same six Oktell tables (`docs/oktell-schema.md`) with the
//! same table and column names, so the queries a telephony system runs work on both.
//! A sink's contract, whatever the database:
//! - `load_batch` is one transaction and set-based (stage the rows, then a few statements);
//! - leads are upserted by `sql_ID`; a row whose values did not change is not touched;
//! - a lead's contact values and solution are *replaced*: a value removed in Bitrix24
//!   disappears here too;
//! - `bitrix_import_lead_error` holds the current problems of each lead in the batch: a
//!   lead that now loads cleanly loses its old error rows, an unchanged problem keeps its
//!   row (and its first-seen date), a new problem adds one. So a re-run changes nothing.

pub mod mssql;
pub mod sqlite;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use std::sync::Arc;
use std::time::Duration;

use crate::extract::oauth::TokenStore;
use crate::prepare::PreparedBatch;
use crate::store::{
    BatchWriter, CallerLookup, DeletionStore, ErrorReview, HeldLock, OperatorStore, RunHistory,
    RunLock, RunLockGuard, SchemaAdmin, StateStore,
};
// TRANSITION: the types moved to `crate::store`; these re-exports go with `Sink`.
pub use crate::store::{BatchOutcome, Diagnosis, RunRecord, SchemaReport, StoreError, StoredError};

use crate::model::caller::{CallerMatch, CallerQuery};
use crate::model::{Batch, LeadId, Operator};

/// A database the pipeline writes into. See the module docs for the contract.
#[async_trait]
pub trait Sink: Send + Sync {
    /// A name for messages: the file path or `host:port/database` (never a password).
    fn describe(&self) -> String;

    /// Create what is missing of the schema (`b24sync init-db`); never drops or alters data.
    async fn init_schema(&self) -> Result<SchemaReport, StoreError>;

    /// Take the run lock so two runs cannot interleave; wait at most `wait`.
    /// Held until [`Sink::unlock_run`] or the process ends.
    async fn lock_run(&self, wait: Duration) -> Result<(), StoreError>;

    /// Release the run lock (a no-op when not held).
    async fn unlock_run(&self) -> Result<(), StoreError>;

    /// Upsert one batch in one transaction. `now` stamps new error rows.
    async fn load_batch(
        &self,
        batch: Batch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError>;

    /// Stamp `bitrix_lead_runtime` (the row with Id = 1) when a run has finished.
    async fn stamp_runtime(&self, finished: NaiveDateTime) -> Result<(), StoreError>;

    /// A value of the project's state table (`b24sync_state`: watermarks, schedules).
    async fn read_state(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Set a value of the project's state table.
    async fn write_state(&self, name: &str, value: &str) -> Result<(), StoreError>;

    /// Every `sql_ID` in `bitrix_leads` (for the deletion check).
    async fn lead_ids(&self) -> Result<Vec<LeadId>, StoreError>;

    /// Remove leads deleted in Bitrix24, with their contact values, solution and error
    /// rows, in one transaction. Returns how many `bitrix_leads` rows went.
    async fn delete_leads(&self, ids: Vec<LeadId>) -> Result<u64, StoreError>;

    /// The rows of `bitrix_import_lead_error`, oldest first.
    async fn error_rows(&self) -> Result<Vec<StoredError>, StoreError>;

    /// Delete the error rows dated before `before`; returns how many went.
    async fn clear_errors(&self, before: NaiveDateTime) -> Result<u64, StoreError>;

    /// Delete the error rows with these `Id`s (a full sync's clean-up of rows whose lead ID
    /// is not a number, once the complete read no longer returns such a lead); returns
    /// how many went.
    async fn delete_error_rows(&self, row_ids: Vec<i64>) -> Result<u64, StoreError>;

    /// What `load_batch` would change, without changing anything (`sync --dry-run`): the
    /// same statements in a transaction that is rolled back.
    async fn preview_batch(
        &self,
        batch: Batch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError>;

    /// Write a run-history row for a run that starts now (status `running`); returns its Id.
    async fn run_started(&self, record: &RunRecord) -> Result<i64, StoreError>;

    /// Complete a run-history row (`record.id`) with the run's outcome.
    async fn run_finished(&self, record: &RunRecord) -> Result<(), StoreError>;

    /// The last `limit` run-history rows, newest first.
    async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError>;

    /// The user IDs in `b24sync_operators` (each sync refreshes them all).
    async fn operator_ids(&self) -> Result<Vec<String>, StoreError>;

    /// Upsert operators into `b24sync_operators` in one transaction. One with `details`
    /// false is only added when missing: details stored earlier are kept.
    async fn store_operators(&self, operators: Vec<Operator>) -> Result<(), StoreError>;

    /// The leads with a phone matching the caller, with their operators, most recently
    /// modified first (see [`crate::lookup`]): one indexed query, never a scan.
    async fn lookup_caller(&self, query: &CallerQuery) -> Result<Vec<CallerMatch>, StoreError>;

    /// Check the database for `b24sync doctor`: reachable (it is, if this runs), allowed to
    /// create what it needs, the contract tables intact (columns and types), the indexes
    /// present, no duplicate `sql_ID`. Never changes anything.
    async fn diagnose(&self) -> Result<Vec<Diagnosis>, StoreError>;
}

/// TRANSITION (old API): open the database as one `Sink`. Use [`open_stores`].
pub async fn open(db: &str, pool_size: u32) -> Result<Box<dyn Sink>, StoreError> {
    if mssql::is_connection_string(db) {
        let opts = mssql::MssqlOptions {
            pool_size,
            ..Default::default()
        };
        Ok(Box::new(mssql::MssqlSink::connect(db, opts).await?))
    } else {
        Ok(Box::new(sqlite::SqliteSink::open(std::path::Path::new(
            db,
        ))?))
    }
}

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
    pub state: Arc<dyn StateStore>,
    pub history: Arc<dyn RunHistory>,
    pub errors: Arc<dyn ErrorReview>,
    pub operators: Arc<dyn OperatorStore>,
    pub lookup: Arc<dyn CallerLookup>,
    pub tokens: Arc<dyn TokenStore>,
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
            + StateStore
            + RunHistory
            + ErrorReview
            + OperatorStore
            + CallerLookup
            + TokenStore
            + 'static,
    {
        Stores {
            target,
            schema: backend.clone(),
            lock: backend.clone(),
            batches: backend.clone(),
            deletions: backend.clone(),
            state: backend.clone(),
            history: backend.clone(),
            errors: backend.clone(),
            operators: backend.clone(),
            lookup: backend.clone(),
            tokens: backend,
        }
    }
}

impl Stores {
    /// TRANSITION: the stores of an old-style [`Sink`].
    pub fn bridged(sink: Arc<dyn Sink>, tokens: Arc<dyn TokenStore>) -> Stores {
        let target = sink.describe();
        let b = Arc::new(Bridged(sink));
        Stores {
            target,
            schema: b.clone(),
            lock: b.clone(),
            batches: b.clone(),
            deletions: b.clone(),
            state: b.clone(),
            history: b.clone(),
            errors: b.clone(),
            operators: b.clone(),
            lookup: b,
            tokens,
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
        let sink = Arc::new(mssql::MssqlSink::connect(db, opts).await?);
        Ok(Stores::bridged(sink.clone(), sink))
    } else {
        let sink = Arc::new(sqlite::SqliteSink::open(std::path::Path::new(db))?);
        Ok(Stores::bridged(sink.clone(), sink))
    }
}

// ---------------------------------------------------------------------------------------
// TRANSITION bridge: a `Sink` serves every role through `Bridged` until the backends
// implement the role traits themselves; then `Sink`, this bridge and `open` go.

/// An old-style [`Sink`] under the new role traits.
pub struct Bridged(pub Arc<dyn Sink>);

struct BridgeLock(Arc<dyn Sink>);

#[async_trait]
impl HeldLock for BridgeLock {
    async fn release(self: Box<Self>) -> Result<(), StoreError> {
        self.0.unlock_run().await
    }
}

#[async_trait]
impl SchemaAdmin for Bridged {
    async fn init_schema(&self) -> Result<SchemaReport, StoreError> {
        self.0.init_schema().await
    }
    async fn diagnose(&self) -> Result<Vec<Diagnosis>, StoreError> {
        self.0.diagnose().await
    }
}

#[async_trait]
impl RunLock for Bridged {
    async fn lock_run(&self, wait: Duration) -> Result<RunLockGuard, StoreError> {
        self.0.lock_run(wait).await?;
        Ok(RunLockGuard::new(Box::new(BridgeLock(self.0.clone()))))
    }
}

#[async_trait]
impl BatchWriter for Bridged {
    async fn load_batch(
        &self,
        batch: PreparedBatch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError> {
        self.0.load_batch(batch.into_batch(), now).await
    }
    async fn preview_batch(
        &self,
        batch: PreparedBatch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError> {
        self.0.preview_batch(batch.into_batch(), now).await
    }
}

#[async_trait]
impl DeletionStore for Bridged {
    async fn lead_ids(&self) -> Result<Vec<LeadId>, StoreError> {
        self.0.lead_ids().await
    }
    async fn delete_leads(&self, ids: Vec<LeadId>) -> Result<u64, StoreError> {
        self.0.delete_leads(ids).await
    }
}

#[async_trait]
impl StateStore for Bridged {
    async fn read_state(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.0.read_state(name).await
    }
    async fn write_state(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.0.write_state(name, value).await
    }
}

#[async_trait]
impl RunHistory for Bridged {
    async fn run_started(&self, record: &RunRecord) -> Result<i64, StoreError> {
        self.0.run_started(record).await
    }
    async fn run_finished(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.0.run_finished(record).await
    }
    async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        self.0.recent_runs(limit).await
    }
    async fn stamp_runtime(&self, finished: NaiveDateTime) -> Result<(), StoreError> {
        self.0.stamp_runtime(finished).await
    }
}

#[async_trait]
impl ErrorReview for Bridged {
    async fn error_rows(&self) -> Result<Vec<StoredError>, StoreError> {
        self.0.error_rows().await
    }
    async fn clear_errors(&self, before: NaiveDateTime) -> Result<u64, StoreError> {
        self.0.clear_errors(before).await
    }
    async fn delete_error_rows(&self, row_ids: Vec<i64>) -> Result<u64, StoreError> {
        self.0.delete_error_rows(row_ids).await
    }
}

#[async_trait]
impl OperatorStore for Bridged {
    async fn operator_ids(&self) -> Result<Vec<String>, StoreError> {
        self.0.operator_ids().await
    }
    async fn store_operators(&self, operators: Vec<Operator>) -> Result<(), StoreError> {
        self.0.store_operators(operators).await
    }
}

#[async_trait]
impl CallerLookup for Bridged {
    async fn lookup_caller(&self, query: &CallerQuery) -> Result<Vec<CallerMatch>, StoreError> {
        self.0.lookup_caller(query).await
    }
}
