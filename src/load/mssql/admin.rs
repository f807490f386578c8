//! The project's state, the deletion check, the records' fingerprints and the error review on
//! SQL Server: the small
//! operations besides the load, with the same meaning as the embedded database's
//! (`src/load/sqlite/admin.rs`). The sink maps their errors and decides on retries; these
//! only send the statements of `sql/mssql/` and read the answers.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use futures::TryStreamExt;
use tiberius::{ColumnData, Row, TokenRow};

use super::{bulk, check_lock, entity_sql, run, sql, Client, TxError};
use crate::model::LeadId;
use crate::prepare::Fingerprint;
use crate::schema::Entity;
use crate::store::StoredError;

pub(super) async fn read_state(c: &mut Client, name: &str) -> tiberius::Result<Option<String>> {
    let row = c.query(sql::STATE_READ, &[&name]).await?.into_row().await?;
    match row {
        Some(r) => Ok(r.try_get::<&str, _>("value")?.map(str::to_string)),
        None => Ok(None),
    }
}

pub(super) async fn write_state(c: &mut Client, name: &str, value: &str) -> tiberius::Result<()> {
    // Both values are present strings: no NULL parameter is ever sent (see the notes).
    c.execute(sql::STATE_WRITE, &[&name, &value]).await?;
    Ok(())
}

/// Every stored record ID of `entity` (`record_ids.sql`).
pub(super) async fn record_ids(c: &mut Client, entity: Entity) -> tiberius::Result<Vec<LeadId>> {
    // Streamed: the table can hold millions of records, and only the IDs are kept.
    let s = entity_sql::statements(entity);
    let mut rows = c.simple_query(&s.record_ids).await?.into_row_stream();
    let mut ids = Vec::new();
    while let Some(r) = rows.try_next().await? {
        ids.push(required(
            r.try_get::<i32, _>(0)?,
            &format!("{}.sql_ID", entity.table),
        )?);
    }
    Ok(ids)
}

/// Every stored fingerprint of `entity` (`record_fingerprints.sql`): (record ID, fingerprint).
pub(super) async fn record_fingerprints(
    c: &mut Client,
    entity: Entity,
) -> tiberius::Result<Vec<(LeadId, Fingerprint)>> {
    // Streamed, like the IDs: one row per record. Read by position: the key column is named
    // after the entity (lead_id, contact_id, ...).
    let s = entity_sql::statements(entity);
    let mut rows = c
        .simple_query(&s.record_fingerprints)
        .await?
        .into_row_stream();
    let mut out = Vec::new();
    let table = entity.fingerprints_table;
    while let Some(r) = rows.try_next().await? {
        out.push((
            required(
                r.try_get::<i32, _>(0)?,
                &format!("{table}.{}", entity.phones_owner),
            )?,
            required(r.try_get::<i64, _>(1)?, &format!("{table}.fingerprint"))?,
        ));
    }
    Ok(out)
}

/// The staging rows for [`sql::STAGE_DELETE_IDS`]: each ID once (its primary key would refuse
/// a repeat, and the trait does not promise distinct IDs), in order.
pub(super) fn delete_id_rows(ids: &[LeadId]) -> Vec<TokenRow<'static>> {
    ids.iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|id| {
            let mut row = TokenRow::with_capacity(1);
            row.push(ColumnData::I32(Some(id)));
            row
        })
        .collect()
}

/// One try of the deletion of `entity`'s records `ids`: stage the IDs, then the
/// one-transaction delete (`delete_records.sql`), checked under the run lock (`token`, see
/// lock_guard.sql). The caller rolls back on failure.
pub(super) async fn delete_records(
    c: &mut Client,
    (entity, ids): (Entity, &[LeadId]),
    token: Option<&str>,
) -> Result<u64, TxError> {
    let s = entity_sql::statements(entity);
    run(c, sql::STAGE_DELETE_CREATE).await?;
    bulk(c, sql::STAGE_DELETE_IDS, delete_id_rows(ids)).await?;
    run(c, sql::TX_BEGIN).await?;
    check_lock(c, token).await?;
    let sets = run(c, &s.delete_records).await?;
    run(c, sql::TX_COMMIT).await?;
    Ok(last_count(&sets, "leads_deleted", "delete_records.sql")?)
}

pub(super) async fn error_rows(c: &mut Client) -> tiberius::Result<Vec<StoredError>> {
    let mut rows = c.simple_query(sql::ERROR_ROWS).await?.into_row_stream();
    let mut out = Vec::new();
    while let Some(r) = rows.try_next().await? {
        out.push(stored_error(&r)?);
    }
    Ok(out)
}

fn stored_error(r: &Row) -> tiberius::Result<StoredError> {
    let text = |name: &str| -> tiberius::Result<Option<String>> {
        Ok(r.try_get::<&str, _>(name)?.map(str::to_string))
    };
    Ok(StoredError {
        row_id: required(r.try_get::<i64, _>("Id")?, "bitrix_import_lead_error.Id")?,
        lead_id: text("sql_ID")?,
        reason: text("sql_error")?,
        at: r.try_get::<NaiveDateTime, _>("sql_date_error")?,
    })
}

pub(super) async fn clear_errors(c: &mut Client, before: NaiveDateTime) -> tiberius::Result<u64> {
    let sets = c
        .query(sql::ERRORS_CLEAR, &[&before])
        .await?
        .into_results()
        .await?;
    last_count(&sets, "errors_deleted", "errors_clear.sql")
}

/// Delete the error rows with these `Id`s, one statement each (a full sync's few stale rows).
pub(super) async fn delete_error_rows(c: &mut Client, ids: Vec<i64>) -> tiberius::Result<u64> {
    let mut deleted = 0;
    for id in ids {
        let sets = c
            .query(sql::ERRORS_DELETE_ROW, &[&id])
            .await?
            .into_results()
            .await?;
        deleted += last_count(&sets, "errors_deleted", "errors_delete_row.sql")?;
    }
    Ok(deleted)
}

/// The count a statement file selects as its last result (a single int column).
fn last_count(sets: &[Vec<Row>], column: &str, file: &str) -> tiberius::Result<u64> {
    let n = sets
        .iter()
        .rev()
        .find_map(|s| s.first())
        .map(|r| r.try_get::<i32, _>(column))
        .transpose()?
        .flatten()
        .ok_or_else(|| {
            tiberius::error::Error::Protocol(format!("{file} returned no {column}").into())
        })?;
    Ok(count(n))
}

/// A row count from T-SQL's `int` as the trait's `u64`; a count is never negative.
pub(super) fn count(n: i32) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn required<T>(v: Option<T>, what: &str) -> tiberius::Result<T> {
    v.ok_or_else(|| tiberius::error::Error::Protocol(format!("{what} is NULL").into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_ids_are_staged_once_each_in_order() {
        let rows = delete_id_rows(&[7, 3, 7, 12, 3, -1]);
        let ids: Vec<_> = rows
            .iter()
            .map(|r| {
                assert_eq!(r.len(), 1, "one column: #stage_delete_ids.sql_ID");
                match r.get(0) {
                    Some(ColumnData::I32(Some(id))) => *id,
                    other => panic!("not a non-NULL int: {other:?}"),
                }
            })
            .collect();
        assert_eq!(ids, vec![-1, 3, 7, 12]);
        assert!(delete_id_rows(&[]).is_empty());
    }

    #[test]
    fn counts_are_never_negative() {
        assert_eq!(count(0), 0);
        assert_eq!(count(41), 41);
        assert_eq!(count(i32::MAX), 2_147_483_647);
        assert_eq!(count(-1), 0);
    }
}
