//! The SQLite sink under each store role (`crate::store`); the run lock is in `lock.rs`,
//! the token store in `tokens.rs`. Writes create the schema on first use; reads never
//! change it (see the module docs of `load::sqlite`).

use crate::schema::Entity;
use async_trait::async_trait;
use chrono::NaiveDateTime;

use super::{admin, batch, db_err, lookup, ops, schema, sql, SqliteSink, DATETIME_FORMAT};
use crate::model::caller::{CallerMatch, CallerQuery, EntityFilter};
use crate::model::{LeadId, Operator};
use crate::prepare::{Fingerprint, PreparedBatch};
use crate::store::{
    BatchOutcome, BatchWriter, CallerLookup, DeletionStore, Diagnosis, ErrorReview,
    FingerprintStore, OperatorStore, RunHistory, RunRecord, SchemaAdmin, SchemaReport, StateStore,
    StoreError, StoredError,
};

#[async_trait]
impl SchemaAdmin for SqliteSink {
    async fn init_schema(&self) -> Result<SchemaReport, StoreError> {
        let target = self.describe();
        self.with_db("creating the schema", move |db| {
            let report = schema::migrate(&mut db.conn, &target)?;
            db.schema_ready = true;
            Ok(report)
        })
        .await
    }

    /// Reads only: no migration runs first (see `ops`).
    async fn diagnose(&self) -> Result<Vec<Diagnosis>, StoreError> {
        let path = self.path.clone();
        self.with_db("checking the database", move |db| {
            ops::diagnose(&db.conn, &path)
        })
        .await
    }
}

#[async_trait]
impl BatchWriter for SqliteSink {
    async fn load_batch(
        &self,
        batch: PreparedBatch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError> {
        self.with_schema("loading a batch", move |conn| {
            batch::load(conn, batch, now, true)
        })
        .await
    }

    /// The same statements as `load_batch`, rolled back. Like every read it needs the
    /// schema already there (`init-db`, or an earlier sync): a dry run creates nothing.
    async fn preview_batch(
        &self,
        batch: PreparedBatch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError> {
        self.with_ready("previewing a batch", move |conn| {
            batch::load(conn, batch, now, false)
        })
        .await
    }
}

#[async_trait]
impl DeletionStore for SqliteSink {
    async fn record_ids(&self, entity: Entity) -> Result<Vec<LeadId>, StoreError> {
        self.with_ready("reading the record IDs", move |conn| {
            admin::record_ids(conn, entity)
        })
        .await
    }

    async fn delete_records(&self, entity: Entity, ids: Vec<LeadId>) -> Result<u64, StoreError> {
        self.with_schema("deleting records", move |conn| {
            admin::delete_records(conn, entity, ids)
        })
        .await
    }
}

#[async_trait]
impl FingerprintStore for SqliteSink {
    async fn fingerprints(&self, entity: Entity) -> Result<Vec<(LeadId, Fingerprint)>, StoreError> {
        self.with_ready("reading the fingerprints", move |conn| {
            admin::fingerprints(conn, entity)
        })
        .await
    }
}

#[async_trait]
impl StateStore for SqliteSink {
    async fn read_state(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.read_state_value(name).await
    }

    async fn write_state(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.write_state_value(name, value).await
    }
}

#[async_trait]
impl RunHistory for SqliteSink {
    async fn run_started(&self, record: &RunRecord) -> Result<i64, StoreError> {
        let record = record.clone();
        self.with_schema("writing b24sync_runs", move |conn| {
            ops::run_started(conn, &record)
        })
        .await
    }

    async fn run_finished(&self, record: &RunRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.with_schema("completing b24sync_runs", move |conn| {
            ops::run_finished(conn, &record)
        })
        .await
    }

    async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        self.with_ready("reading b24sync_runs", move |conn| {
            ops::recent_runs(conn, limit)
        })
        .await
    }

    async fn stamp_runtime(&self, finished: NaiveDateTime) -> Result<(), StoreError> {
        let finished = finished.format(DATETIME_FORMAT).to_string();
        self.with_schema("stamping bitrix_lead_runtime", move |conn| {
            conn.execute(sql::RUNTIME_STAMP, [&finished])
                .map(drop)
                .map_err(db_err("stamping bitrix_lead_runtime"))
        })
        .await
    }
}

#[async_trait]
impl ErrorReview for SqliteSink {
    async fn error_rows(&self) -> Result<Vec<StoredError>, StoreError> {
        self.with_ready("reading bitrix_import_lead_error", admin::error_rows)
            .await
    }

    async fn clear_errors(&self, before: NaiveDateTime) -> Result<u64, StoreError> {
        self.with_schema("clearing bitrix_import_lead_error", move |conn| {
            admin::clear_errors(conn, before)
        })
        .await
    }

    async fn delete_error_rows(&self, row_ids: Vec<i64>) -> Result<u64, StoreError> {
        self.with_schema(
            "deleting stale rows of bitrix_import_lead_error",
            move |conn| admin::delete_error_rows(conn, row_ids),
        )
        .await
    }
}

#[async_trait]
impl OperatorStore for SqliteSink {
    async fn operator_ids(&self) -> Result<Vec<String>, StoreError> {
        self.with_ready("reading b24sync_operators", lookup::operator_ids)
            .await
    }

    async fn store_operators(&self, operators: Vec<Operator>) -> Result<(), StoreError> {
        self.with_schema("writing b24sync_operators", move |conn| {
            lookup::store_operators(conn, operators)
        })
        .await
    }
}

#[async_trait]
impl CallerLookup for SqliteSink {
    async fn lookup_caller_in(
        &self,
        query: &CallerQuery,
        filter: &EntityFilter,
    ) -> Result<Vec<CallerMatch>, StoreError> {
        let query = query.clone();
        let filter = filter.clone();
        self.with_ready("looking up the caller", move |conn| {
            lookup::lookup_caller(conn, &query, &filter)
        })
        .await
    }
}
