//! Numbered migrations, recorded in `b24sync_migrations`; each runs once, in its own
//! transaction. They only create what is missing (`IF NOT EXISTS`), never drop or alter.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::collections::BTreeSet;

use super::{db_err, sql};
use crate::schema::{self, Dialect};
use crate::store::{SchemaReport, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "contract tables, loader indexes, b24sync_state",
        sql: sql::MIGRATION_0001,
    },
    Migration {
        version: 2,
        name: "run history (b24sync_runs)",
        sql: sql::MIGRATION_0002,
    },
    Migration {
        version: 3,
        name: "caller lookup: b24sync_lead_phones, b24sync_operators, b24sync_caller_phones",
        sql: sql::MIGRATION_0003,
    },
    Migration {
        version: 4,
        name: "lead fingerprints: b24sync_lead_fingerprints",
        sql: sql::MIGRATION_0004,
    },
    Migration {
        version: 5,
        name: "contacts and companies: bitrix_contacts, bitrix_companies and their tables",
        sql: sql::MIGRATION_0005,
    },
    Migration {
        version: 6,
        name: "event queue: b24sync_event_queue",
        sql: sql::MIGRATION_0006,
    },
    Migration {
        version: 7,
        name: "caller lookup over leads, contacts and companies: b24sync_caller_phones",
        sql: sql::MIGRATION_0007,
    },
];

/// (version, name) of every migration this build knows, for `b24sync doctor`.
pub(super) fn known_migrations() -> impl Iterator<Item = (i64, &'static str)> {
    MIGRATIONS.iter().map(|m| (m.version, m.name))
}

/// The columns the loader reads or writes, per table (the contract's names, from the schema
/// description). `bitrix_oauth` is the token store's, used only with an OAuth application.
fn required_columns() -> Vec<(&'static str, Vec<String>)> {
    schema::contract_tables()
        .filter(|t| t.name != "bitrix_oauth")
        .map(|t| {
            let cols = t
                .columns_on(Dialect::Sqlite)
                .map(|c| c.name.to_string())
                .collect();
            (t.name, cols)
        })
        .collect()
}

/// Apply the pending migrations and check the tables the loader needs.
/// `target` names the database in messages.
pub(super) fn migrate(conn: &mut Connection, target: &str) -> Result<SchemaReport, StoreError> {
    let mut report = SchemaReport::default();
    let newest = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    for migration in MIGRATIONS {
        // IMMEDIATE: two processes starting at once serialise here instead of both
        // applying the same migration.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err("starting a schema migration"))?;
        let before = objects_of(&tx)?;
        tx.execute_batch(sql::MIGRATIONS_TABLE)
            .map_err(db_err("creating b24sync_migrations"))?;
        let applied = applied_versions(&tx)?;
        if let Some(v) = applied.iter().copied().find(|v| *v > newest) {
            return Err(StoreError::Schema(format!(
                "the database {target} has schema version {v}, made by a newer b24sync \
                 (this one knows up to {newest}); use that version"
            )));
        }
        if applied.contains(&migration.version) {
            // Commit anyway: on a brand-new file the bootstrap table was just created.
            tx.commit().map_err(db_err("committing a schema check"))?;
            continue;
        }
        if migration.version == 1 {
            // Tables made before b24sync (by hand, or another tool) are kept as they are;
            // the migration's indexes and checks need their columns, so name what is
            // missing rather than fail on SQL.
            check_columns(&tx, target, true)?;
            check_duplicate_leads(&tx, target)?;
        }
        tx.execute_batch(migration.sql).map_err(db_err(&format!(
            "applying schema migration {} ({})",
            migration.version, migration.name
        )))?;
        tx.execute(
            sql::MIGRATION_RECORD,
            rusqlite::params![migration.version, migration.name],
        )
        .map_err(db_err("recording a schema migration"))?;
        let after = objects_of(&tx)?;
        tx.commit()
            .map_err(db_err("committing a schema migration"))?;
        report.objects.extend(
            after
                .difference(&before)
                .map(|(kind, name)| format!("{kind} {name}")),
        );
        report.created.push(format!(
            "migration {} ({})",
            migration.version, migration.name
        ));
    }
    check_columns(conn, target, false)?;
    Ok(report)
}

/// (type, name) of every table and index; reads only.
pub(super) fn objects_of(tx: &Connection) -> Result<BTreeSet<(String, String)>, StoreError> {
    let context = "listing the schema";
    let mut stmt = tx.prepare(sql::SCHEMA_OBJECTS).map_err(db_err(context))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_err(context))?;
    rows.collect::<Result<_, _>>().map_err(db_err(context))
}

/// The versions recorded in `b24sync_migrations` (which must exist); reads only.
pub(super) fn applied_versions(tx: &Connection) -> Result<BTreeSet<i64>, StoreError> {
    let context = "reading b24sync_migrations";
    let mut stmt = tx
        .prepare(sql::MIGRATIONS_APPLIED)
        .map_err(db_err(context))?;
    let rows = stmt.query_map([], |r| r.get(0)).map_err(db_err(context))?;
    rows.collect::<Result<_, _>>().map_err(db_err(context))
}

fn table_columns(conn: &Connection, table: &str) -> Result<Vec<String>, StoreError> {
    let context = "reading table columns";
    let mut stmt = conn.prepare(sql::TABLE_COLUMNS).map_err(db_err(context))?;
    let rows = stmt
        .query_map([table], |r| r.get(0))
        .map_err(db_err(context))?;
    rows.collect::<Result<_, _>>().map_err(db_err(context))
}

/// The unique index on `bitrix_leads(sql_ID)` cannot be built over the duplicate rows the
/// old row-by-row scripts could leave; say so plainly, with the fix, instead of failing
/// with SQLite's "UNIQUE constraint failed".
fn check_duplicate_leads(tx: &Transaction<'_>, target: &str) -> Result<(), StoreError> {
    let context = "looking for duplicate sql_ID rows";
    if table_columns(tx, "bitrix_leads")?.is_empty() {
        return Ok(());
    }
    let (ids, surplus): (i64, i64) = tx
        .query_row(sql::DUPLICATE_LEADS_SUMMARY, [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(db_err(context))?
        .unwrap_or((0, 0));
    if ids == 0 {
        return Ok(());
    }
    let mut stmt = tx
        .prepare(sql::DUPLICATE_LEADS_EXAMPLES)
        .map_err(db_err(context))?;
    let examples: Vec<String> = stmt
        .query_map([], |r| r.get::<_, rusqlite::types::Value>(0))
        .map_err(db_err(context))?
        .map(|v| v.map(|v| display_value(&v)))
        .collect::<Result<_, _>>()
        .map_err(db_err(context))?;
    Err(StoreError::Schema(format!(
        "the database {target} has {ids} lead ID(s) stored more than once in bitrix_leads \
         ({surplus} extra row(s); e.g. sql_ID {}), probably left by the old row-by-row import. \
         b24sync keeps one row per lead (a unique index on sql_ID) and cannot create that index \
         over them. Keep the newest row of each (the highest Id) with\n    {}\nthen run \
         `b24sync init-db` again.",
        examples.join(", "),
        sql::FIX_DUPLICATE_LEADS.trim(),
    )))
}

pub(super) fn display_value(v: &rusqlite::types::Value) -> String {
    use rusqlite::types::Value;
    match v {
        Value::Null => "NULL".to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => format!("'{t}'"),
        Value::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

/// A table that existed before b24sync (made by hand or another tool) may lack columns;
/// `CREATE TABLE IF NOT EXISTS` keeps it as it is, so name what is missing.
/// `existing_only`: check only the tables that exist (before the migrations create the rest).
fn check_columns(conn: &Connection, target: &str, existing_only: bool) -> Result<(), StoreError> {
    let mut problems = Vec::new();
    for (table, required) in required_columns() {
        let present = table_columns(conn, table)?;
        if existing_only && present.is_empty() {
            continue;
        }
        let missing: Vec<&str> = required
            .iter()
            .filter(|c| !present.iter().any(|p| p.eq_ignore_ascii_case(c)))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            problems.push(format!("{table} lacks {}", missing.join(", ")));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Schema(format!(
            "the database {target} has tables that do not match the Oktell layout: {}; \
             add the columns (see docs/oktell-schema.md) or start from a new file",
            problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, declared type, nullable, primary-key position) as SQLite reports a table.
    fn declared(conn: &Connection, table: &str) -> Vec<(String, String, bool, i64)> {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)? == 0,
                r.get::<_, i64>(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    #[test]
    fn ddl_declares_every_described_table_as_described() {
        // The hand-written migrations under sql/sqlite/, applied to a new database, give
        // every table of the schema description with each column's type, size and
        // nullability, the described primary key, and no table it does not know.
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, "test").unwrap();
        for t in schema::tables() {
            let got = declared(&conn, t.name);
            let want: Vec<(String, String, bool)> = t
                .columns_on(Dialect::Sqlite)
                .map(|c| {
                    let (decl, nullable) = c.sqlite_decl();
                    (c.name.to_string(), decl, nullable)
                })
                .collect();
            let got_cols: Vec<_> = got
                .iter()
                .map(|g| (g.0.clone(), g.1.clone(), g.2))
                .collect();
            assert_eq!(got_cols, want, "{}", t.name);
            let mut key: Vec<_> = got.iter().filter(|g| g.3 > 0).collect();
            key.sort_by_key(|g| g.3);
            let key: Vec<&str> = key.iter().map(|g| g.0.as_str()).collect();
            assert_eq!(key, t.key, "{}: primary key", t.name);
        }
        let objects = objects_of(&conn).unwrap();
        let unknown: Vec<_> = objects
            .iter()
            .filter(|(kind, name)| kind == "table" && name != "sqlite_sequence")
            .filter(|(_, name)| schema::table(name).is_none())
            .collect();
        assert!(
            unknown.is_empty(),
            "tables the description does not know: {unknown:?}"
        );
    }
}
