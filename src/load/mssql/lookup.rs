//! The caller lookup on SQL Server (migrations 0006 and 0012, `sql/mssql/lookup_*.sql`): the batch's
//! normalised phones as staging rows, the operators, and the lookup through
//! `dbo.b24sync_lookup_caller_keys`. Only statements of `sql/mssql/` are sent; values are
//! bulk-loaded or passed as (never NULL) parameters.

use std::borrow::Cow;

use futures::TryStreamExt;
use tiberius::{ColumnData, Row, TokenRow};

use super::{bulk, check_lock, run, sql, Client, TxError};
use crate::model::caller::{CallerMatch, CallerQuery, EntityFilter};
use crate::model::{truncate_utf16, Batch, Operator};

/// The `#stage_phones` rows of a batch, in `lookup_stage_create.sql`'s column order.
pub(super) fn phone_rows(batch: &Batch) -> Vec<TokenRow<'_>> {
    let mut rows = Vec::new();
    let mut seq: i32 = 0;
    for r in &batch.records {
        for p in &r.phones {
            seq += 1;
            let mut row = TokenRow::with_capacity(9);
            row.push(ColumnData::I32(Some(seq)));
            // The record's own ID counts, as for its contact values.
            row.push(ColumnData::I32(Some(r.lead.id)));
            row.push(text(p.contact_id.as_deref()));
            row.push(text(Some(p.value.as_str())));
            row.push(text(p.e164.as_deref()));
            row.push(text(p.extension.as_deref()));
            row.push(text(p.digits_rev.as_deref()));
            row.push(ColumnData::I32(Some(i32::from(p.e164.is_some()))));
            row.push(text(p.reason.as_deref()));
            rows.push(row);
        }
    }
    rows
}

fn text(s: Option<&str>) -> ColumnData<'_> {
    ColumnData::String(s.map(Cow::Borrowed))
}

/// Column sizes of `dbo.b24sync_operators`: SQL Server refuses a longer value, so cut.
const USER_ID_CHARS: usize = 50;
const NAME_CHARS: usize = 200;
const EXTENSION_CHARS: usize = 50;

fn clipped(s: &Option<String>, max: usize) -> ColumnData<'static> {
    ColumnData::String(
        s.as_deref()
            .map(|s| Cow::Owned(truncate_utf16(s, max).to_string())),
    )
}

/// The `#stage_operators` rows, each user once (the table's primary key).
pub(super) fn operator_rows(operators: &[Operator]) -> Vec<TokenRow<'static>> {
    let mut seen = std::collections::HashSet::new();
    operators
        .iter()
        .filter(|op| seen.insert(truncate_utf16(&op.user_id, USER_ID_CHARS).to_string()))
        .map(|op| {
            let mut row = TokenRow::with_capacity(7);
            row.push(clipped(&Some(op.user_id.clone()), USER_ID_CHARS));
            row.push(clipped(&op.name, NAME_CHARS));
            row.push(clipped(&op.last_name, NAME_CHARS));
            row.push(clipped(&op.email, NAME_CHARS));
            row.push(clipped(&op.phone_inner, EXTENSION_CHARS));
            row.push(ColumnData::I32(op.active.map(i32::from)));
            row.push(ColumnData::I32(Some(i32::from(op.details))));
            row
        })
        .collect()
}

pub(super) async fn operator_ids(c: &mut Client) -> tiberius::Result<Vec<String>> {
    let mut rows = c
        .simple_query(sql::LOOKUP_OPERATOR_IDS)
        .await?
        .into_row_stream();
    let mut ids = Vec::new();
    while let Some(r) = rows.try_next().await? {
        if let Some(id) = r.try_get::<&str, _>("user_id")? {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

/// Stage and upsert, checked under the run lock (`token`, see lock_guard.sql); the caller
/// rolls back on failure.
pub(super) async fn store_operators(
    c: &mut Client,
    operators: &[Operator],
    token: Option<&str>,
) -> Result<(), TxError> {
    if operators.is_empty() {
        return Ok(());
    }
    run(c, sql::LOOKUP_OPERATORS_STAGE_CREATE).await?;
    bulk(c, sql::STAGE_OPERATORS, operator_rows(operators)).await?;
    run(c, sql::TX_BEGIN).await?;
    check_lock(c, token).await?;
    run(c, sql::LOOKUP_OPERATORS_UPSERT).await?;
    run(c, sql::TX_COMMIT).await?;
    Ok(())
}

pub(super) async fn lookup_caller(
    c: &mut Client,
    query: &CallerQuery,
    filter: &EntityFilter,
) -> tiberius::Result<Vec<CallerMatch>> {
    // Every key is a present string ('' for none): no NULL parameter is sent (see the notes).
    let e164 = query.e164.clone().unwrap_or_default();
    let tail = query.tail.clone().unwrap_or_default();
    let limit = i32::try_from(query.limit).unwrap_or(i32::MAX);
    let [t1, t2, t3] = filter.params();
    let mut rows = c
        .query(sql::LOOKUP_CALLER, &[&e164, &tail, &limit, &t1, &t2, &t3])
        .await?
        .into_row_stream();
    let mut out = Vec::new();
    while let Some(r) = rows.try_next().await? {
        out.push(caller_match(&r)?);
    }
    Ok(out)
}

fn caller_match(r: &Row) -> tiberius::Result<CallerMatch> {
    let text = |name: &str| -> tiberius::Result<Option<String>> {
        Ok(r.try_get::<&str, _>(name)?.map(str::to_string))
    };
    let int = |name: &str| -> tiberius::Result<Option<i64>> {
        Ok(r.try_get::<i32, _>(name)?.map(i64::from))
    };
    Ok(CallerMatch {
        entity_type: text("entity_type")?.unwrap_or_default(),
        entity_id: int("entity_id")?.unwrap_or(0),
        title: text("title")?,
        name: text("name")?,
        last_name: text("last_name")?,
        company_id: int("company_id")?,
        company_title: text("company_title")?,
        status_or_type: text("status_or_type")?,
        date_modify: r.try_get::<chrono::NaiveDateTime, _>("date_modify")?,
        operator_id: text("operator_id")?,
        operator_name: text("operator_name")?,
        operator_last_name: text("operator_last_name")?,
        operator_extension: text("operator_extension")?,
        phone_value: text("phone_value")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cell, LeadRecord, LeadRow, PhoneRow, LEAD_COLUMNS};
    use sqlparser::ast::Statement;
    use sqlparser::dialect::MsSqlDialect;
    use sqlparser::parser::Parser;

    fn parse(text: &str) -> Vec<Statement> {
        Parser::parse_sql(&MsSqlDialect {}, text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn migration() -> &'static str {
        sql::MIGRATIONS
            .iter()
            .find(|m| m.name == "caller_lookup")
            .expect("registered")
            .sql
    }

    #[test]
    fn the_migration_adds_its_own_objects_and_leaves_the_contract_alone() {
        let text = migration();
        let batches = sql::batches(text);
        // Tables; drop view; view; drop ×2; two functions; the record.
        assert_eq!(batches.len(), 8, "{batches:#?}");
        let mut functions = Vec::new();
        let mut views = Vec::new();
        for b in &batches {
            for s in parse(b) {
                match &s {
                    Statement::CreateFunction(f) => functions.push(f.name.to_string()),
                    Statement::CreateView(v) => views.push(v.name.to_string()),
                    _ => {}
                }
            }
        }
        assert_eq!(
            functions,
            [
                "dbo.b24sync_lookup_caller_keys",
                "dbo.b24sync_lookup_caller"
            ]
        );
        assert_eq!(views, ["dbo.b24sync_caller_phones"]);
        // Every object created is the project's own; the Oktell tables are only read.
        let upper = text.to_uppercase();
        for verb in ["ALTER TABLE", "DROP TABLE", "CREATE TRIGGER", "TRUNCATE"] {
            assert!(!upper.contains(verb), "{verb}");
        }
        for line in text.lines().map(str::trim) {
            if line.starts_with("CREATE ") && !line.starts_with("CREATE FUNCTION") {
                assert!(
                    line.contains("b24sync_") || line.starts_with("CREATE INDEX"),
                    "{line}"
                );
            }
            if let Some(on) = line.strip_prefix("ON ") {
                assert!(
                    on.starts_with("dbo.b24sync_"),
                    "indexes only on our tables: {line}"
                );
            }
        }
        // The number form delegates to the keys form: one lookup, two entry points.
        assert!(text.contains("CROSS APPLY dbo.b24sync_lookup_caller_keys("));
        // The recording comes last, after everything it records exists.
        let last = batches.last().expect("batches");
        assert!(last.contains("VALUES (6, N'caller_lookup', N'manual', SYSUTCDATETIME())"));
    }

    #[test]
    fn the_lookup_and_the_staging_bind_what_the_sink_sends() {
        assert!(sql::LOOKUP_CALLER.contains("dbo.b24sync_lookup_caller_keys(@P1, @P2)"));
        assert!(sql::LOOKUP_CALLER.contains("TOP (@P3)"));
        assert!(sql::LOOKUP_CALLER.contains("WHERE entity_type IN (@P4, @P5, @P6)"));
        assert!(!sql::LOOKUP_CALLER.contains("@P7"));
        assert!(sql::LOOKUP_CALLER
            .contains("ORDER BY priority, date_modify DESC, entity_id DESC, entity_type;"));
        for text in [
            sql::LOOKUP_STAGE_CREATE,
            sql::LOOKUP_PHONES_SYNC,
            sql::LOOKUP_OPERATORS_STAGE_CREATE,
            sql::LOOKUP_OPERATORS_UPSERT,
            sql::LOOKUP_OPERATOR_IDS,
        ] {
            assert!(!text.contains("@P1"), "sent as a plain batch");
            assert!(!text.to_uppercase().contains("MERGE "), "no MERGE");
        }
        // The staging table's columns are in the order phone_rows pushes them.
        let cols = [
            "seq",
            "lead_id",
            "contact_id",
            "value",
            "e164",
            "extension",
            "digits_rev",
            "normalisable",
            "reason",
        ];
        let body = sql::LOOKUP_STAGE_CREATE;
        let mut at = 0;
        for c in cols {
            let pos = body[at..]
                .find(&format!("        {c} "))
                .unwrap_or_else(|| panic!("{c} after position {at}"));
            at += pos + 1;
        }
        let ops = [
            "user_id",
            "name",
            "last_name",
            "email",
            "phone_inner",
            "active",
            "details",
        ];
        let body = sql::LOOKUP_OPERATORS_STAGE_CREATE;
        let mut at = 0;
        for c in ops {
            let pos = body[at..]
                .find(&format!("        {c} "))
                .unwrap_or_else(|| panic!("{c} after position {at}"));
            at += pos + 1;
        }
    }

    #[test]
    fn staging_rows_follow_the_records() {
        let phone = |v: &str, e: Option<&str>| PhoneRow {
            lead_id: 999,
            contact_id: Some("5".into()),
            value: v.into(),
            e164: e.map(str::to_string),
            extension: None,
            digits_rev: None,
            reason: None,
        };
        let batch = Batch {
            entity: crate::schema::LEAD,
            records: vec![LeadRecord {
                lead: LeadRow {
                    id: 7,
                    cells: vec![Cell::Null; LEAD_COLUMNS.len()],
                },
                contacts: vec![],
                phones: vec![phone("8 912", Some("+79120000000")), phone("x", None)],
                solution: None,
                problems: vec![],
                raw_json: "{}".into(),
            }],
            rejected: vec![],
        };
        let rows = phone_rows(&batch);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].get(0), Some(&ColumnData::I32(Some(2))));
        assert_eq!(rows[0].get(1), Some(&ColumnData::I32(Some(7))));
        assert_eq!(rows[0].get(7), Some(&ColumnData::I32(Some(1))));
        assert_eq!(rows[1].get(7), Some(&ColumnData::I32(Some(0))));

        let ops = operator_rows(&[
            Operator {
                user_id: "3".into(),
                name: Some("я".repeat(300)),
                active: Some(true),
                details: true,
                ..Operator::default()
            },
            Operator {
                user_id: "3".into(),
                ..Operator::default()
            },
        ]);
        assert_eq!(ops.len(), 1, "each user once");
        match ops[0].get(1) {
            Some(ColumnData::String(Some(s))) => assert_eq!(s.chars().count(), 200),
            other => panic!("{other:?}"),
        }
        assert_eq!(ops[0].get(5), Some(&ColumnData::I32(Some(1))));
    }
}
