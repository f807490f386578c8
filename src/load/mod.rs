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
use std::time::Duration;

use crate::lookup::{CallerMatch, CallerQuery};
use crate::model::{Batch, LeadId, Operator};

/// What one `load_batch` call changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub leads_inserted: u64,
    pub leads_updated: u64,
    pub leads_unchanged: u64,
    /// Contact values written (inserted or changed) and removed.
    pub contacts_written: u64,
    pub contacts_deleted: u64,
    /// Rows this batch left in `bitrix_import_lead_error` (new or kept).
    pub error_rows: u64,
    /// Of those, rows this batch inserted: problems not in the table before (a kept row
    /// is a problem someone has already been told about).
    pub error_rows_new: u64,
}

impl BatchOutcome {
    pub fn add(&mut self, other: &BatchOutcome) {
        self.leads_inserted += other.leads_inserted;
        self.leads_updated += other.leads_updated;
        self.leads_unchanged += other.leads_unchanged;
        self.contacts_written += other.contacts_written;
        self.contacts_deleted += other.contacts_deleted;
        self.error_rows += other.error_rows;
        self.error_rows_new += other.error_rows_new;
    }
}

/// What `init_schema` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaReport {
    /// What this call did, one line per migration applied (`migration 1 (...)`), for the
    /// log at INFO.
    pub created: Vec<String>,
    /// The objects those migrations created (`table bitrix_leads`, `index ...`), for the
    /// log at debug (`-v`).
    pub objects: Vec<String>,
    /// Problems that need a person (e.g. duplicate `sql_ID` rows), each with what to do.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The database cannot be opened or reached; `target` never holds a password.
    #[error("cannot open the database {target}: {reason}")]
    Unreachable { target: String, reason: String },
    /// Another run holds the run lock.
    #[error("another b24sync run holds the lock on {target} (waited {waited_secs} s); try again later or raise --lock-wait")]
    LockBusy { target: String, waited_secs: u64 },
    /// The schema is not what the loader needs (run `b24sync init-db`, or fix what it says).
    #[error("{0}")]
    Schema(String),
    /// A statement failed.
    #[error("database error while {context}: {reason}")]
    Database { context: String, reason: String },
}

/// One row of `bitrix_import_lead_error`, for `b24sync errors list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredError {
    /// The row's `Id`.
    pub row_id: i64,
    /// `sql_ID`: the lead ID as received.
    pub lead_id: Option<String>,
    /// `sql_error`.
    pub reason: Option<String>,
    /// `sql_date_error`.
    pub at: Option<NaiveDateTime>,
}

impl StoredError {
    /// The lead ID as a Bitrix24 lead ID (a positive number), if it is one: only such rows
    /// can be read again by `errors retry`.
    pub fn numeric_lead_id(&self) -> Option<LeadId> {
        self.lead_id
            .as_deref()
            .and_then(crate::model::parse_lead_id)
    }
}

/// One row of the run history (`b24sync_runs`): written when a run starts, completed when
/// it ends, so a run that died shows as unfinished (`finished_at` NULL, status `running`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunRecord {
    /// The row's `Id` (0 before it is written).
    pub id: i64,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    /// `full`, `incremental`, `dry-run full`, `errors retry`, ...
    pub mode: String,
    /// `running`, `ok`, `errors` (finished with rows in the error table), `failed`,
    /// `refused` (the deletion guard refused after the leads were loaded), `interrupted`.
    pub status: String,
    pub leads_read: i64,
    /// Leads inserted or changed.
    pub leads_upserted: i64,
    pub leads_deleted: i64,
    pub contact_values: i64,
    pub error_rows: i64,
    pub requests: i64,
    /// Server time Bitrix24 reported for the run.
    pub server_seconds: f64,
    pub seconds: f64,
    pub exit_code: Option<i64>,
    /// The summary line, or the error (never a secret).
    pub message: Option<String>,
}

/// One verdict of `b24sync doctor` about the database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnosis {
    /// Short name: `tables`, `columns`, `indexes`, `duplicates`, `permissions`, ...
    pub check: String,
    pub ok: bool,
    /// What was found, in one line.
    pub detail: String,
    /// What to do when not ok (empty when ok).
    pub fix: String,
}

/// A database the pipeline writes into. See the module docs for the contract.
#[async_trait]
pub trait Sink: Send + Sync {
    /// A name for messages: the file path or `host:port/database` (never a password).
    fn describe(&self) -> String;

    /// Create what is missing of the schema (`b24sync init-db`); never drops or alters data.
    async fn init_schema(&self) -> Result<SchemaReport, LoadError>;

    /// Take the run lock so two runs cannot interleave; wait at most `wait`.
    /// Held until [`Sink::unlock_run`] or the process ends.
    async fn lock_run(&self, wait: Duration) -> Result<(), LoadError>;

    /// Release the run lock (a no-op when not held).
    async fn unlock_run(&self) -> Result<(), LoadError>;

    /// Upsert one batch in one transaction. `now` stamps new error rows.
    async fn load_batch(&self, batch: Batch, now: NaiveDateTime)
        -> Result<BatchOutcome, LoadError>;

    /// Stamp `bitrix_lead_runtime` (the row with Id = 1) when a run has finished.
    async fn stamp_runtime(&self, finished: NaiveDateTime) -> Result<(), LoadError>;

    /// A value of the project's state table (`b24sync_state`: watermarks, schedules).
    async fn read_state(&self, name: &str) -> Result<Option<String>, LoadError>;

    /// Set a value of the project's state table.
    async fn write_state(&self, name: &str, value: &str) -> Result<(), LoadError>;

    /// Every `sql_ID` in `bitrix_leads` (for the deletion check).
    async fn lead_ids(&self) -> Result<Vec<LeadId>, LoadError>;

    /// Remove leads deleted in Bitrix24, with their contact values, solution and error
    /// rows, in one transaction. Returns how many `bitrix_leads` rows went.
    async fn delete_leads(&self, ids: Vec<LeadId>) -> Result<u64, LoadError>;

    /// The rows of `bitrix_import_lead_error`, oldest first.
    async fn error_rows(&self) -> Result<Vec<StoredError>, LoadError>;

    /// Delete the error rows dated before `before`; returns how many went.
    async fn clear_errors(&self, before: NaiveDateTime) -> Result<u64, LoadError>;

    /// Delete the error rows with these `Id`s (a full sync's clean-up of rows whose lead ID
    /// is not a number, once the complete read no longer returns such a lead); returns
    /// how many went.
    async fn delete_error_rows(&self, row_ids: Vec<i64>) -> Result<u64, LoadError>;

    /// What `load_batch` would change, without changing anything (`sync --dry-run`): the
    /// same statements in a transaction that is rolled back.
    async fn preview_batch(
        &self,
        batch: Batch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, LoadError>;

    /// Write a run-history row for a run that starts now (status `running`); returns its Id.
    async fn run_started(&self, record: &RunRecord) -> Result<i64, LoadError>;

    /// Complete a run-history row (`record.id`) with the run's outcome.
    async fn run_finished(&self, record: &RunRecord) -> Result<(), LoadError>;

    /// The last `limit` run-history rows, newest first.
    async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, LoadError>;

    /// The user IDs in `b24sync_operators` (each sync refreshes them all).
    async fn operator_ids(&self) -> Result<Vec<String>, LoadError>;

    /// Upsert operators into `b24sync_operators` in one transaction. One with `details`
    /// false is only added when missing: details stored earlier are kept.
    async fn store_operators(&self, operators: Vec<Operator>) -> Result<(), LoadError>;

    /// The leads with a phone matching the caller, with their operators, most recently
    /// modified first (see [`crate::lookup`]): one indexed query, never a scan.
    async fn lookup_caller(&self, query: &CallerQuery) -> Result<Vec<CallerMatch>, LoadError>;

    /// Check the database for `b24sync doctor`: reachable (it is, if this runs), allowed to
    /// create what it needs, the contract tables intact (columns and types), the indexes
    /// present, no duplicate `sql_ID`. Never changes anything.
    async fn diagnose(&self) -> Result<Vec<Diagnosis>, LoadError>;
}

/// Open the database named by `--db`: a SQL Server connection string, or else a file path
/// for the embedded database.
pub async fn open(db: &str, pool_size: u32) -> Result<Box<dyn Sink>, LoadError> {
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
