//! `load_batch`: stage the prepared batch in temp tables with prepared statements (SQLite's
//! bulk load), then bring the real tables in line with a few set-based statements, all in
//! one transaction. Duplicates, sizes and ranges were settled by `prepare`. The statements
//! are the batch's entity's (`entity_sql.rs`); the solution's are the lead's only.

use chrono::NaiveDateTime;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::entity_sql::{self, EntitySql};
use super::{db_err, sql, DATETIME_FORMAT};
use crate::model::{Batch, Cell, ErrorRow};
use crate::prepare::{FingerprintRow, PreparedBatch};
use crate::store::{BatchOutcome, StoreError};

/// Binds a [`Cell`] without copying its text (COMMENTS can be large).
struct SqlCell<'a>(&'a Cell);

impl ToSql for SqlCell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Cell::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Cell::DateTime(d) => ToSqlOutput::from(d.format(DATETIME_FORMAT).to_string()),
        })
    }
}

/// Load `batch` in one transaction. With `commit` false the same statements run and their
/// counts are returned, but the transaction is rolled back (a dry-run preview): the counts
/// are exactly what a committed load would report, because they come from the same
/// statements against the same rows.
pub(super) fn load(
    conn: &mut Connection,
    batch: PreparedBatch,
    now: NaiveDateTime,
    commit: bool,
) -> Result<BatchOutcome, StoreError> {
    let errors = batch.error_rows();
    let fingerprints = batch.fingerprint_rows();
    let batch = batch.into_batch();
    let entity = batch.entity;
    let statements = entity_sql::statements(entity);

    // IMMEDIATE takes the write lock up front, so a concurrent reader cannot make the
    // later upgrade fail with SQLITE_BUSY halfway through.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err("starting the batch transaction"))?;
    tx.execute_batch(&statements.stage_create)
        .map_err(db_err("creating the staging tables"))?;
    // Cleared first as well as last: a batch that failed mid-way leaves nothing behind.
    tx.execute_batch(&statements.stage_clear)
        .map_err(db_err("clearing the staging tables"))?;
    stage_records(&tx, statements, &batch)?;
    super::lookup::stage_phones(&tx, &batch)?;
    stage_errors(&tx, &batch, &errors)?;

    let run = |statement: &str, context: &str| -> Result<u64, StoreError> {
        let n = tx.execute(statement, []).map_err(db_err(context))?;
        Ok(n as u64)
    };
    let s = statements;
    // Update before insert, so each statement's change count is exactly its own rows.
    let leads_updated = run(&s.records_update, "updating changed records")?;
    let leads_inserted = run(&s.records_insert, "inserting new records")?;
    let contacts_deleted = run(&s.multi_delete, "deleting removed multi-field values")?;
    let contacts_written = run(&s.multi_update, "updating changed multi-field values")?
        + run(&s.multi_insert, "inserting new multi-field values")?;
    // The normalised phones change with the multi-field values, in the same transaction.
    super::lookup::sync_phones(&tx, s)?;
    if entity.solution_table.is_some() {
        run(sql::SOLUTION_DELETE, "deleting removed solutions")?;
        run(sql::SOLUTION_UPDATE, "updating changed solutions")?;
        run(sql::SOLUTION_INSERT, "inserting new solutions")?;
    }
    run(&s.errors_delete, "deleting resolved error rows")?;
    run(&s.errors_update, "refreshing kept error rows")?;
    let error_rows_new = tx
        .execute(&s.errors_insert, [now.format(DATETIME_FORMAT).to_string()])
        .map_err(db_err("inserting new error rows"))? as u64;
    // In the same transaction as the rows they describe (see `prepare::fingerprint`).
    write_fingerprints(&tx, s, &fingerprints)?;
    // Frees the staged text (large COMMENTS) instead of keeping it until the next batch.
    tx.execute_batch(&s.stage_clear)
        .map_err(db_err("clearing the staging tables"))?;
    if commit {
        tx.commit().map_err(db_err("committing the batch"))?;
    } else {
        tx.rollback().map_err(db_err("rolling the preview back"))?;
    }

    let staged = batch.records.len() as u64;
    Ok(BatchOutcome {
        leads_inserted,
        leads_updated,
        leads_unchanged: staged.saturating_sub(leads_inserted + leads_updated),
        contacts_written,
        contacts_deleted,
        error_rows: errors.len() as u64,
        error_rows_new,
    })
}

fn stage_records(
    tx: &Transaction<'_>,
    statements: &EntitySql,
    batch: &Batch,
) -> Result<(), StoreError> {
    let mut lead_stmt = tx
        .prepare_cached(&statements.stage_record)
        .map_err(db_err("preparing to stage records"))?;
    let mut contact_stmt = tx
        .prepare_cached(&statements.stage_multi)
        .map_err(db_err("preparing to stage multi-field values"))?;
    for record in &batch.records {
        let lead = &record.lead;
        let cells: Vec<SqlCell<'_>> = lead.cells.iter().map(SqlCell).collect();
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(cells.len() + 2);
        params.push(&lead.id);
        params.extend(cells.iter().map(|c| c as &dyn ToSql));
        params.push(&record.solution);
        lead_stmt
            .execute(params.as_slice())
            .map_err(db_err("staging a record"))?;

        for c in &record.contacts {
            contact_stmt
                .execute(rusqlite::params![
                    lead.id,
                    c.contact_id,
                    c.value_type,
                    c.value,
                    c.type_id
                ])
                .map_err(db_err("staging a multi-field value"))?;
        }
    }
    Ok(())
}

/// Each record's fingerprint upserted, or deleted when it has none.
fn write_fingerprints(
    tx: &Transaction<'_>,
    statements: &EntitySql,
    rows: &[FingerprintRow],
) -> Result<(), StoreError> {
    let context = "writing the fingerprints";
    let mut upsert = tx
        .prepare_cached(&statements.fingerprint_upsert)
        .map_err(db_err(context))?;
    let mut delete = tx
        .prepare_cached(&statements.fingerprint_delete)
        .map_err(db_err(context))?;
    for (id, fingerprint) in rows {
        match fingerprint {
            Some(f) => upsert.execute(rusqlite::params![id, f]),
            None => delete.execute([id]),
        }
        .map_err(db_err(context))?;
    }
    Ok(())
}

fn stage_errors(
    tx: &Transaction<'_>,
    batch: &Batch,
    errors: &[ErrorRow],
) -> Result<(), StoreError> {
    let mut id_stmt = tx
        .prepare_cached(sql::STAGE_ERROR_ID)
        .map_err(db_err("preparing to stage lead IDs"))?;
    // Every lead of the batch, clean or not, has its error rows brought up to date.
    for record in &batch.records {
        id_stmt
            .execute([record.lead.id.to_string()])
            .map_err(db_err("staging a lead ID"))?;
    }
    for id in batch.rejected.iter().filter_map(|r| r.lead_id.as_deref()) {
        id_stmt.execute([id]).map_err(db_err("staging a lead ID"))?;
    }
    let mut error_stmt = tx
        .prepare_cached(sql::STAGE_ERROR)
        .map_err(db_err("preparing to stage lead errors"))?;
    for e in errors {
        error_stmt
            .execute(rusqlite::params![e.lead_id, e.reason, e.lead_json])
            .map_err(db_err("staging a lead error"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::{fixtures, prepare};

    #[test]
    fn the_awkward_batch_leaves_exactly_the_prepared_rows() {
        // The same batch and the same expectation as the SQL Server staging test
        // (load/mssql/stage.rs), so both backends get the same rows.
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, "test").unwrap();
        let prepared = prepare(fixtures::awkward_batch());
        let expected = fixtures::expected_rows(&prepared);
        load(&mut conn, prepared, NaiveDateTime::default(), true).unwrap();
        let rows = |q: &str| -> Vec<(
            rusqlite::types::Value,
            rusqlite::types::Value,
            rusqlite::types::Value,
        )> {
            let mut stmt = conn.prepare(q).unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        use rusqlite::types::Value as V;
        let text = |v: &V| match v {
            V::Text(s) => Some(s.clone()),
            _ => None,
        };
        let int = |v: &V| match v {
            V::Integer(i) => i32::try_from(*i).unwrap(),
            other => panic!("{other:?}"),
        };
        let leads: Vec<_> =
            rows("SELECT sql_ID, sql_TITLE, sql_BIRTHDATE FROM bitrix_leads ORDER BY 1, 2, 3")
                .iter()
                .map(|(a, b, c)| (int(a), text(b), text(c)))
                .collect();
        let contacts: Vec<_> = rows(
            "SELECT sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE FROM bitrix_lead_contacts ORDER BY 1, 2, 3",
        )
        .iter()
        .map(|(a, b, c)| (int(a), text(b), text(c)))
        .collect();
        let errors: Vec<_> = rows(
            "SELECT sql_ID, sql_error, sql_full_lead_info FROM bitrix_import_lead_error ORDER BY 1, 2, 3",
        )
        .iter()
        .map(|(a, b, c)| (text(a), text(b).unwrap(), text(c).unwrap()))
        .collect();
        assert_eq!((leads, contacts, errors), expected);
    }
}
