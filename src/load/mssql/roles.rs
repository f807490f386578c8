//! The SQL Server sink under the store roles that are plain statements (`crate::store`):
//! state, deletions, fingerprints, run history, error review, operators and caller lookup.
//! Every write transaction checks the run lock first (`check_lock`, see `lock.rs`).

use crate::schema::Entity;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;

use super::{admin, check_lock, lookup, ops, run, sql, Client, MssqlSink, TxError};
use crate::model::caller::{CallerMatch, CallerQuery, EntityFilter};
use crate::model::{LeadId, Operator};
use crate::prepare::Fingerprint;
use crate::store::{
    CallerLookup, DeletionStore, ErrorReview, FingerprintStore, OperatorStore, RunHistory,
    RunRecord, StateStore, StoreError, StoredError,
};

#[async_trait]
impl StateStore for MssqlSink {
    async fn read_state(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        admin::read_state(c, name)
            .await
            .map_err(|e| self.db_error("reading b24sync_state", &e))
    }

    async fn write_state(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let context = "writing b24sync_state";
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let token = self.token();
        let result = async {
            run(c, sql::TX_BEGIN).await?;
            check_lock(c, token.as_deref()).await?;
            admin::write_state(c, name, value).await?;
            run(c, sql::TX_COMMIT).await?;
            Ok::<(), TxError>(())
        }
        .await;
        if let Err(e) = result {
            self.rollback(c, context).await;
            return Err(self.tx_error(context, &e));
        }
        Ok(())
    }
}

#[async_trait]
impl DeletionStore for MssqlSink {
    async fn record_ids(&self, entity: Entity) -> Result<Vec<LeadId>, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        // The deletion check compares these with the portal's IDs; it is only meaningful once
        // init-db made sql_ID unique.
        self.ensure_ready(c).await?;
        admin::record_ids(c, entity)
            .await
            .map_err(|e| self.db_error(&format!("reading the {} IDs", entity.name), &e))
    }

    /// Stages the IDs in `#stage_delete_ids` and runs the entity's `delete_records.sql` (one
    /// transaction).
    /// A deadlock (e.g. with Oktell reading the same rows) rolls everything back, so the whole
    /// sequence is simply tried again, like a batch.
    async fn delete_records(&self, entity: Entity, ids: Vec<LeadId>) -> Result<u64, StoreError> {
        let context = &format!("deleting {} removed in Bitrix24", entity.plural);
        if ids.is_empty() {
            return Ok(0);
        }
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let token = self.token();
        let mut tries = 0;
        loop {
            match admin::delete_records(c, (entity, &ids), token.as_deref()).await {
                Ok(n) => return Ok(n),
                Err(e) => {
                    self.rollback(c, context).await;
                    let deadlock = matches!(&e, TxError::Db(d) if d.is_deadlock());
                    if deadlock && tries < self.opts.deadlock_retries {
                        tries += 1;
                        tracing::info!(
                            try_no = tries,
                            "deletion chosen as a deadlock victim; retrying"
                        );
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                        continue;
                    }
                    return Err(self.tx_error(context, &e));
                }
            }
        }
    }
}

#[async_trait]
impl FingerprintStore for MssqlSink {
    async fn fingerprints(&self, entity: Entity) -> Result<Vec<(LeadId, Fingerprint)>, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        admin::record_fingerprints(c, entity)
            .await
            .map_err(|e| self.db_error(&format!("reading dbo.{}", entity.fingerprints_table), &e))
    }
}

#[async_trait]
impl RunHistory for MssqlSink {
    async fn run_started(&self, record: &RunRecord) -> Result<i64, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        ops::run_started(c, record)
            .await
            .map_err(|e| self.db_error("writing dbo.b24sync_runs", &e))
    }

    async fn run_finished(&self, record: &RunRecord) -> Result<(), StoreError> {
        let context = "completing dbo.b24sync_runs";
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        match ops::run_finished(c, record).await {
            Ok(0) => Err(StoreError::Database {
                context: context.into(),
                reason: format!("there is no run with Id {}", record.id),
            }),
            Ok(_) => Ok(()),
            Err(e) => Err(self.db_error(context, &e)),
        }
    }

    async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        ops::recent_runs(c, limit)
            .await
            .map_err(|e| self.db_error("reading dbo.b24sync_runs", &e))
    }

    async fn stamp_runtime(&self, finished: NaiveDateTime) -> Result<(), StoreError> {
        let context = "stamping bitrix_lead_runtime";
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        let token = self.token();
        let result = async {
            run(c, sql::TX_BEGIN).await?;
            check_lock(c, token.as_deref()).await?;
            let sets = c
                .query(sql::STAMP_RUNTIME, &[&finished])
                .await?
                .into_results()
                .await?;
            run(c, sql::TX_COMMIT).await?;
            Ok::<_, TxError>(
                sets.iter()
                    .rev()
                    .find_map(|s| s.first())
                    .and_then(|r| r.get::<i32, _>("runtime_rows"))
                    .unwrap_or(0),
            )
        }
        .await;
        match result {
            Err(e) => {
                self.rollback(c, context).await;
                Err(self.tx_error(context, &e))
            }
            Ok(0) => Err(StoreError::Schema(format!(
                "dbo.bitrix_lead_runtime on {} has no row Id = 1 any more (the row each run stamps; \
                 the data of this run is in): run `b24sync init-db` to create it again",
                self.target.describe()
            ))),
            Ok(_) => Ok(()),
        }
    }
}

#[async_trait]
impl ErrorReview for MssqlSink {
    // The error review reads and deletes only in the Oktell error table, which the original
    // scripts already created: it works before (or without) `init-db`, so a DBA can look at a
    // database b24sync has not prepared yet.
    async fn error_rows(&self) -> Result<Vec<StoredError>, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        admin::error_rows(c)
            .await
            .map_err(|e| self.db_error("reading bitrix_import_lead_error", &e))
    }

    async fn clear_errors(&self, before: NaiveDateTime) -> Result<u64, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        admin::clear_errors(c, before)
            .await
            .map_err(|e| self.db_error("clearing bitrix_import_lead_error", &e))
    }

    async fn delete_error_rows(&self, row_ids: Vec<i64>) -> Result<u64, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        admin::delete_error_rows(c, row_ids)
            .await
            .map_err(|e| self.db_error("deleting stale rows of bitrix_import_lead_error", &e))
    }
}

#[async_trait]
impl OperatorStore for MssqlSink {
    async fn operator_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        lookup::operator_ids(c)
            .await
            .map_err(|e| self.db_error("reading b24sync_operators", &e))
    }

    async fn store_operators(&self, operators: Vec<Operator>) -> Result<(), StoreError> {
        let context = "writing b24sync_operators";
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let token = self.token();
        if let Err(e) = lookup::store_operators(c, &operators, token.as_deref()).await {
            self.rollback(c, context).await;
            return Err(self.tx_error(context, &e));
        }
        Ok(())
    }
}

#[async_trait]
impl CallerLookup for MssqlSink {
    /// Runs `dbo.b24sync_lookup_caller_keys`, the function telephony systems call. Works
    /// without the run lock, alongside a sync.
    async fn lookup_caller_in(
        &self,
        query: &CallerQuery,
        filter: &EntityFilter,
    ) -> Result<Vec<CallerMatch>, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        lookup::lookup_caller(c, query, filter)
            .await
            .map_err(|e| self.db_error("looking up the caller", &e))
    }
}
