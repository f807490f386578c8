//! The role traits. Contracts that hold for every backend are written here once and tested
//! once, for both backends, by `tests/stores.rs`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;

use super::{
    BatchOutcome, Diagnosis, RunLockGuard, RunRecord, SchemaReport, StoreError, StoredError,
};
use crate::model::caller::{CallerMatch, CallerQuery, EntityFilter};
use crate::model::{LeadId, Operator};
use crate::prepare::{Fingerprint, PreparedBatch};
use crate::schema::Entity;

/// Creates and checks the schema (`init-db`, `doctor`).
#[async_trait]
pub trait SchemaAdmin: Send + Sync {
    /// Create what is missing of the schema; never drops or alters data.
    async fn init_schema(&self) -> Result<SchemaReport, StoreError>;

    /// Check the database for `b24sync doctor`: allowed to create what it needs, the
    /// contract tables intact (columns and types), the indexes present, no duplicate
    /// `sql_ID`. Never changes anything.
    async fn diagnose(&self) -> Result<Vec<Diagnosis>, StoreError>;
}

/// One run at a time per database.
#[async_trait]
pub trait RunLock: Send + Sync {
    /// Take the run lock, waiting at most `wait` ([`StoreError::LockBusy`] after that).
    async fn lock_run(&self, wait: Duration) -> Result<RunLockGuard, StoreError>;
}

/// Writes prepared batches: the contract tables' rows, in one transaction per batch.
///
/// Leads are upserted by `sql_ID` (an unchanged row is not touched); a lead's contact
/// values and solution are replaced; `bitrix_import_lead_error` keeps the current problems
/// of each lead in the batch (an unchanged problem keeps its row and first-seen date).
/// `b24sync_lead_fingerprints` gets the batch's fingerprints in the same transaction
/// (`PreparedBatch::fingerprint_rows`: a lead without one loses any stored one), so a
/// stored fingerprint never describes rows that were not committed. A preview writes none.
#[async_trait]
pub trait BatchWriter: Send + Sync {
    /// Write one batch in one transaction. `now` stamps new error rows.
    async fn load_batch(
        &self,
        batch: PreparedBatch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError>;

    /// What [`BatchWriter::load_batch`] would change, changing nothing (`sync --dry-run`).
    async fn preview_batch(
        &self,
        batch: PreparedBatch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError>;
}

/// The records of an entity the database holds, and their removal. Only `run`'s deletion
/// guard calls [`DeletionStore::delete_records`].
#[async_trait]
pub trait DeletionStore: Send + Sync {
    /// Every `sql_ID` in the entity's table (`bitrix_leads` for the lead), sorted.
    async fn record_ids(&self, entity: Entity) -> Result<Vec<LeadId>, StoreError>;

    /// Remove these records with their multi-field values, phones, solution (the lead's),
    /// error rows and fingerprints, in one transaction. Returns how many rows of the
    /// entity's table went.
    async fn delete_records(&self, entity: Entity, ids: Vec<LeadId>) -> Result<u64, StoreError>;
}

/// The records' content fingerprints (`b24sync_lead_fingerprints` and each entity's own),
/// which [`BatchWriter::load_batch`] writes with the rows they describe. A full sync reads
/// them once and skips the records whose fingerprint did not change
/// (`prepare::skip_unchanged`).
#[async_trait]
pub trait FingerprintStore: Send + Sync {
    /// Every stored (record ID, fingerprint) of the entity. Reads only.
    async fn fingerprints(&self, entity: Entity) -> Result<Vec<(LeadId, Fingerprint)>, StoreError>;
}

/// The project's state table (`b24sync_state`): watermarks, schedules, portal identity.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn read_state(&self, name: &str) -> Result<Option<String>, StoreError>;
    async fn write_state(&self, name: &str, value: &str) -> Result<(), StoreError>;
}

/// The run history (`b24sync_runs`) and the Oktell `bitrix_lead_runtime` stamp.
#[async_trait]
pub trait RunHistory: Send + Sync {
    /// Write a row for a run that starts now (status `running`); returns its Id.
    async fn run_started(&self, record: &RunRecord) -> Result<i64, StoreError>;

    /// Complete a row (`record.id`) with the run's outcome.
    async fn run_finished(&self, record: &RunRecord) -> Result<(), StoreError>;

    /// The last `limit` rows, newest first.
    async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError>;

    /// Stamp `bitrix_lead_runtime` (the row with Id = 1) when a run has finished.
    async fn stamp_runtime(&self, finished: NaiveDateTime) -> Result<(), StoreError>;
}

/// The error table (`bitrix_import_lead_error`) for people and for clean-ups.
#[async_trait]
pub trait ErrorReview: Send + Sync {
    /// Every row, oldest first.
    async fn error_rows(&self) -> Result<Vec<StoredError>, StoreError>;

    /// Delete the rows dated before `before`; returns how many went.
    async fn clear_errors(&self, before: NaiveDateTime) -> Result<u64, StoreError>;

    /// Delete the rows with these `Id`s; returns how many went.
    async fn delete_error_rows(&self, row_ids: Vec<i64>) -> Result<u64, StoreError>;
}

/// The leads' operators (`b24sync_operators`).
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// The user IDs stored (each sync refreshes them all).
    async fn operator_ids(&self) -> Result<Vec<String>, StoreError>;

    /// Upsert operators in one transaction. One with `details` false is only added when
    /// missing: details stored earlier are kept.
    async fn store_operators(&self, operators: Vec<Operator>) -> Result<(), StoreError>;
}

/// Caller lookup: one indexed query, never a scan.
#[async_trait]
pub trait CallerLookup: Send + Sync {
    /// The records of the entities `filter` allows (leads, contacts, companies) with a
    /// phone matching the caller, one row per record, with their operators: contacts and
    /// companies first, then leads; within each, most recently modified first, then the
    /// higher ID (docs/caller-lookup.md). At most `query.limit` rows.
    async fn lookup_caller_in(
        &self,
        query: &CallerQuery,
        filter: &EntityFilter,
    ) -> Result<Vec<CallerMatch>, StoreError>;

    /// [`CallerLookup::lookup_caller_in`] over every entity.
    async fn lookup_caller(&self, query: &CallerQuery) -> Result<Vec<CallerMatch>, StoreError> {
        self.lookup_caller_in(query, &EntityFilter::all()).await
    }
}
