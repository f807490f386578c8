//! The caller lookup on the embedded database (migrations 3 and 7, `sql/sqlite/lookup_*.sql`):
//! keeping `b24sync_lead_phones` in step inside `load_batch`'s transaction, the operators,
//! and the lookup query itself.

use chrono::NaiveDateTime;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::entity_sql::EntitySql;
use super::{db_err, sql, DATETIME_FORMAT};
use crate::model::caller::{CallerMatch, CallerQuery, EntityFilter};
use crate::model::{truncate_utf16, Batch, Operator};
use crate::store::StoreError;

/// Stage the batch's normalised phones (called after the leads are staged).
pub(super) fn stage_phones(tx: &Transaction<'_>, batch: &Batch) -> Result<(), StoreError> {
    tx.execute_batch(sql::LOOKUP_STAGE_CREATE)
        .map_err(db_err("creating the phone staging table"))?;
    let mut stmt = tx
        .prepare_cached(sql::LOOKUP_STAGE_PHONE)
        .map_err(db_err("preparing to stage phones"))?;
    for record in &batch.records {
        for p in &record.phones {
            // The record's ID counts, as for its multi-field values.
            stmt.execute(rusqlite::params![
                record.lead.id,
                p.contact_id,
                p.value,
                p.e164,
                p.extension,
                p.digits_rev,
                p.e164.is_some(),
                p.reason
            ])
            .map_err(db_err("staging a phone"))?;
        }
    }
    Ok(())
}

/// Bring the entity's phones table (`b24sync_lead_phones`, ...) in line with the staged
/// phones of the staged records.
pub(super) fn sync_phones(tx: &Transaction<'_>, statements: &EntitySql) -> Result<(), StoreError> {
    tx.execute(&statements.phones_delete, [])
        .map_err(db_err("deleting removed phones"))?;
    tx.execute(&statements.phones_insert, [])
        .map_err(db_err("inserting new phones"))?;
    tx.execute_batch("DELETE FROM temp.stage_phones;")
        .map_err(db_err("clearing the phone staging table"))?;
    Ok(())
}

pub(super) fn operator_ids(conn: &mut Connection) -> Result<Vec<String>, StoreError> {
    let context = "reading b24sync_operators";
    let mut stmt = conn
        .prepare_cached(sql::LOOKUP_OPERATOR_IDS)
        .map_err(db_err(context))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(db_err(context))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err(context))
}

/// Longest operator texts kept (the columns' declared sizes; SQL Server enforces them).
const NAME_CHARS: usize = 200;
const EXTENSION_CHARS: usize = 50;

fn clip(s: &Option<String>, max: usize) -> Option<String> {
    s.as_deref().map(|s| truncate_utf16(s, max).to_string())
}

pub(super) fn store_operators(
    conn: &mut Connection,
    operators: Vec<Operator>,
) -> Result<(), StoreError> {
    let context = "writing b24sync_operators";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err(context))?;
    {
        let mut upsert = tx
            .prepare_cached(sql::LOOKUP_OPERATOR_UPSERT)
            .map_err(db_err(context))?;
        let mut id_only = tx
            .prepare_cached(sql::LOOKUP_OPERATOR_INSERT_ID)
            .map_err(db_err(context))?;
        for op in &operators {
            if op.details {
                upsert
                    .execute(rusqlite::params![
                        op.user_id,
                        clip(&op.name, NAME_CHARS),
                        clip(&op.last_name, NAME_CHARS),
                        clip(&op.email, NAME_CHARS),
                        clip(&op.phone_inner, EXTENSION_CHARS),
                        op.active
                    ])
                    .map_err(db_err(context))?;
            } else {
                id_only.execute([&op.user_id]).map_err(db_err(context))?;
            }
        }
    }
    tx.commit().map_err(db_err(context))
}

pub(super) fn lookup_caller(
    conn: &mut Connection,
    query: &CallerQuery,
    filter: &EntityFilter,
) -> Result<Vec<CallerMatch>, StoreError> {
    let context = "looking up the caller";
    let (e164, tail_rev) = query.params();
    // The fallback's range: every digit string starting with tail_rev sorts in
    // [tail_rev, tail_rev + ":"), ':' being the character after '9'. Empty: no fallback.
    let (lo, hi) = if tail_rev.is_empty() {
        (String::new(), String::new())
    } else {
        (tail_rev.clone(), format!("{tail_rev}:"))
    };
    let [t1, t2, t3] = filter.params();
    let mut stmt = conn
        .prepare_cached(sql::LOOKUP_CALLER)
        .map_err(db_err(context))?;
    let rows = stmt
        .query_map(
            rusqlite::params![e164, lo, hi, query.limit, t1, t2, t3],
            |r| {
                let date: Option<String> = r.get(9)?;
                Ok(CallerMatch {
                    entity_type: r.get(0)?,
                    entity_id: r.get(1)?,
                    title: r.get(3)?,
                    name: r.get(4)?,
                    last_name: r.get(5)?,
                    company_id: r.get(6)?,
                    company_title: r.get(7)?,
                    status_or_type: r.get(8)?,
                    date_modify: date
                        .and_then(|d| NaiveDateTime::parse_from_str(&d, DATETIME_FORMAT).ok()),
                    operator_id: r.get(10)?,
                    operator_name: r.get(11)?,
                    operator_last_name: r.get(12)?,
                    operator_extension: r.get(13)?,
                    phone_value: r.get(14)?,
                })
            },
        )
        .map_err(db_err(context))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err(context))
}
