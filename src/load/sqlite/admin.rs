//! The deletion check, the leads' fingerprints and the error review: small set-based
//! operations besides the load.

use chrono::NaiveDateTime;
use rusqlite::{Connection, TransactionBehavior};

use super::entity_sql;
use super::{db_err, sql, DATETIME_FORMAT};
use crate::model::LeadId;
use crate::prepare::Fingerprint;
use crate::schema::Entity;
use crate::store::{StoreError, StoredError};

pub(super) fn record_ids(conn: &mut Connection, entity: Entity) -> Result<Vec<LeadId>, StoreError> {
    let context = "reading the record IDs";
    let mut stmt = conn
        .prepare_cached(&entity_sql::statements(entity).record_ids)
        .map_err(db_err(context))?;
    let ids = stmt
        .query_map([], |r| r.get::<_, LeadId>(0))
        .map_err(db_err(context))?;
    ids.collect::<Result<Vec<_>, _>>().map_err(db_err(context))
}

pub(super) fn fingerprints(
    conn: &mut Connection,
    entity: Entity,
) -> Result<Vec<(LeadId, Fingerprint)>, StoreError> {
    let context = "reading the fingerprints";
    let mut stmt = conn
        .prepare_cached(&entity_sql::statements(entity).fingerprints)
        .map_err(db_err(context))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, LeadId>(0)?, r.get::<_, Fingerprint>(1)?))
        })
        .map_err(db_err(context))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err(context))
}

pub(super) fn delete_records(
    conn: &mut Connection,
    entity: Entity,
    ids: Vec<LeadId>,
) -> Result<u64, StoreError> {
    let context = "deleting records removed in Bitrix24";
    let statements = entity_sql::statements(entity);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err(context))?;
    tx.execute_batch(sql::STAGE_DELETE_CREATE)
        .map_err(db_err(context))?;
    {
        let mut stage = tx
            .prepare_cached(sql::STAGE_DELETE_ID)
            .map_err(db_err(context))?;
        for id in &ids {
            stage.execute([id]).map_err(db_err(context))?;
        }
    }
    tx.execute_batch(&statements.delete_dependents)
        .map_err(db_err(context))?;
    if entity.solution_table.is_some() {
        tx.execute_batch(sql::DELETE_SOLUTIONS)
            .map_err(db_err(context))?;
    }
    let deleted = tx
        .execute(&statements.delete_records, [])
        .map_err(db_err(context))?;
    tx.execute_batch("DELETE FROM stage_delete_ids;")
        .map_err(db_err(context))?;
    tx.commit().map_err(db_err(context))?;
    Ok(deleted as u64)
}

pub(super) fn error_rows(conn: &mut Connection) -> Result<Vec<StoredError>, StoreError> {
    let context = "reading bitrix_import_lead_error";
    let mut stmt = conn
        .prepare_cached(sql::ERROR_ROWS)
        .map_err(db_err(context))?;
    let rows = stmt
        .query_map([], |r| {
            let at: Option<String> = r.get(3)?;
            Ok(StoredError {
                row_id: r.get(0)?,
                lead_id: r.get(1)?,
                reason: r.get(2)?,
                at: at.and_then(|t| NaiveDateTime::parse_from_str(&t, DATETIME_FORMAT).ok()),
            })
        })
        .map_err(db_err(context))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err(context))
}

pub(super) fn clear_errors(
    conn: &mut Connection,
    before: NaiveDateTime,
) -> Result<u64, StoreError> {
    let before = before.format(DATETIME_FORMAT).to_string();
    conn.execute(sql::ERRORS_CLEAR, [&before])
        .map(|n| n as u64)
        .map_err(db_err("clearing bitrix_import_lead_error"))
}

/// Delete the error rows with these `Id`s, in one transaction; returns how many went.
pub(super) fn delete_error_rows(conn: &mut Connection, ids: Vec<i64>) -> Result<u64, StoreError> {
    let context = "deleting stale rows of bitrix_import_lead_error";
    let tx = conn.transaction().map_err(db_err(context))?;
    let mut deleted = 0u64;
    {
        let mut stmt = tx
            .prepare_cached(sql::ERRORS_DELETE_ROW)
            .map_err(db_err(context))?;
        for id in ids {
            deleted += stmt.execute([id]).map_err(db_err(context))? as u64;
        }
    }
    tx.commit().map_err(db_err(context))?;
    Ok(deleted)
}
