//! The run history (`b24sync_runs`) and `b24sync doctor`'s checks on the embedded file.
//!
//! `diagnose` only reads: it runs no migration (unlike every other call of this sink), so
//! a hand-made or damaged file is reported as it is, not "repaired" first.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::path::Path;

use chrono::NaiveDateTime;
use rusqlite::{Connection, DatabaseName, OptionalExtension};

use super::{db_err, schema, sql, DATETIME_FORMAT};
use crate::model::truncate_utf16;
use crate::schema::{
    contract_tables, Dialect, RUN_MESSAGE_CHARS, RUN_MODE_CHARS, RUN_STATUS_CHARS,
};
use crate::store::{Diagnosis, RunRecord, StoreError};

/// The indexes migration 1 creates; the loader's upsert and replace statements rely on them.
const LOADER_INDEXES: [&str; 4] = [
    "ux_bitrix_leads_sql_ID",
    "ix_bitrix_lead_contacts_lead_contact",
    "ix_bitrix_lead_solution_lead",
    "ix_bitrix_import_lead_error_sql_ID",
];

/// Sizes of the run-history text columns (the schema description's; on SQL Server longer
/// text is an error).
const MODE_CHARS: usize = RUN_MODE_CHARS;
const STATUS_CHARS: usize = RUN_STATUS_CHARS;
const MESSAGE_CHARS: usize = RUN_MESSAGE_CHARS;

fn now_local() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}

fn text(t: NaiveDateTime) -> String {
    t.format(DATETIME_FORMAT).to_string()
}

pub(super) fn run_started(conn: &mut Connection, record: &RunRecord) -> Result<i64, StoreError> {
    let started = text(record.started_at.unwrap_or_else(now_local));
    conn.execute(
        sql::RUNS_INSERT,
        rusqlite::params![started, truncate_utf16(&record.mode, MODE_CHARS)],
    )
    .map_err(db_err("writing b24sync_runs"))?;
    Ok(conn.last_insert_rowid())
}

pub(super) fn run_finished(conn: &mut Connection, record: &RunRecord) -> Result<(), StoreError> {
    let finished = text(record.finished_at.unwrap_or_else(now_local));
    let message = record
        .message
        .as_deref()
        .map(|m| truncate_utf16(m, MESSAGE_CHARS));
    let updated = conn
        .execute(
            sql::RUNS_FINISH,
            rusqlite::params![
                record.id,
                finished,
                truncate_utf16(&record.status, STATUS_CHARS),
                record.leads_read,
                record.leads_upserted,
                record.leads_deleted,
                record.contact_values,
                record.error_rows,
                record.requests,
                record.server_seconds,
                record.seconds,
                record.exit_code,
                message,
            ],
        )
        .map_err(db_err("completing b24sync_runs"))?;
    if updated == 0 {
        return Err(StoreError::Database {
            context: "completing b24sync_runs".into(),
            reason: format!("there is no run with Id {}", record.id),
        });
    }
    Ok(())
}

pub(super) fn recent_runs(conn: &mut Connection, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
    let context = "reading b24sync_runs";
    let mut stmt = conn.prepare(sql::RUNS_RECENT).map_err(db_err(context))?;
    let date = |t: Option<String>| {
        t.and_then(|t| NaiveDateTime::parse_from_str(t.trim(), DATETIME_FORMAT).ok())
    };
    let rows = stmt
        .query_map([i64::from(limit)], |r| {
            let n = |i: usize| -> rusqlite::Result<i64> {
                Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0))
            };
            let f = |i: usize| -> rusqlite::Result<f64> {
                Ok(r.get::<_, Option<f64>>(i)?.unwrap_or(0.0))
            };
            Ok(RunRecord {
                id: r.get(0)?,
                started_at: date(r.get(1)?),
                finished_at: date(r.get(2)?),
                mode: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                status: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                leads_read: n(5)?,
                leads_upserted: n(6)?,
                leads_deleted: n(7)?,
                contact_values: n(8)?,
                error_rows: n(9)?,
                requests: n(10)?,
                server_seconds: f(11)?,
                seconds: f(12)?,
                exit_code: r.get(13)?,
                message: r.get(14)?,
            })
        })
        .map_err(db_err(context))?;
    rows.collect::<Result<_, _>>().map_err(db_err(context))
}

/// One column as migration 1 declares it.
struct Expected {
    name: String,
    decl: String,
    not_null: bool,
}

/// The contract's columns per table, in SQLite's declared types, from the schema
/// description (`0001_contract_tables.sql` is tested against the same description).
fn contract_columns() -> impl Iterator<Item = (&'static str, Vec<Expected>)> {
    contract_tables().map(|t| {
        let cols = t
            .columns_on(Dialect::Sqlite)
            .map(|c| {
                let (decl, nullable) = c.sqlite_decl();
                Expected {
                    name: c.name.to_string(),
                    decl,
                    not_null: !nullable,
                }
            })
            .collect();
        (t.name, cols)
    })
}

/// (name, declared type, NOT NULL, primary-key position) of a table's columns.
type Declared = (String, String, bool, i64);

fn declared_columns(conn: &Connection, table: &str) -> Result<Vec<Declared>, StoreError> {
    let context = "reading table columns";
    let mut stmt = conn
        .prepare(sql::TABLE_COLUMNS_TYPED)
        .map_err(db_err(context))?;
    let rows = stmt
        .query_map([table], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                r.get::<_, i64>(2)? != 0,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(db_err(context))?;
    rows.collect::<Result<_, _>>().map_err(db_err(context))
}

/// Declared types compared the way a person reads them: case and spaces do not matter.
fn same_type(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_uppercase()
    };
    norm(a) == norm(b)
}

fn null_word(not_null: bool) -> &'static str {
    if not_null {
        "NOT NULL"
    } else {
        "NULL"
    }
}

fn ok(check: &str, detail: String) -> Diagnosis {
    Diagnosis {
        check: check.into(),
        ok: true,
        detail,
        fix: String::new(),
    }
}

fn fail(check: &str, detail: String, fix: String) -> Diagnosis {
    Diagnosis {
        check: check.into(),
        ok: false,
        detail,
        fix,
    }
}

/// Every check of `b24sync doctor`, reading only.
pub(super) fn diagnose(conn: &Connection, path: &Path) -> Result<Vec<Diagnosis>, StoreError> {
    let objects = schema::objects_of(conn)?;
    let has = |kind: &str, name: &str| objects.contains(&(kind.to_string(), name.to_string()));
    let missing_tables: Vec<&str> = contract_tables()
        .map(|t| t.name)
        .filter(|t| !has("table", t))
        .collect();

    let mut out = Vec::new();
    out.push(if missing_tables.is_empty() {
        ok("tables", "the six Oktell tables exist".into())
    } else {
        fail(
            "tables",
            format!("missing: {}", missing_tables.join(", ")),
            "run `b24sync init-db` (it creates only what is missing)".into(),
        )
    });
    out.push(check_columns(conn, &missing_tables)?);
    out.push(check_indexes(conn, &has)?);
    out.push(check_duplicates(conn)?);
    out.push(check_permissions(conn, path));
    Ok(out)
}

fn check_columns(conn: &Connection, missing_tables: &[&str]) -> Result<Diagnosis, StoreError> {
    let mut problems = Vec::new();
    for (table, expected) in contract_columns() {
        if missing_tables.contains(&table) {
            continue;
        }
        let present = declared_columns(conn, table)?;
        for e in &expected {
            let should = format!("{} {}", e.decl, null_word(e.not_null));
            match present.iter().find(|p| p.0.eq_ignore_ascii_case(&e.name)) {
                None => problems.push(format!(
                    "{table}.{} is missing (should be {should})",
                    e.name
                )),
                Some((_, decl, not_null, pk)) => {
                    // Id: the rowid alias (INTEGER PRIMARY KEY) is what numbers new rows.
                    let type_ok = same_type(decl, &e.decl) && (e.name != "Id" || *pk == 1);
                    if !type_ok || *not_null != e.not_null {
                        let is = format!("{decl} {}", null_word(*not_null));
                        let should = if e.name == "Id" {
                            "INTEGER PRIMARY KEY".to_string()
                        } else {
                            should
                        };
                        problems.push(format!("{table}.{} is {is} (should be {should})", e.name));
                    }
                }
            }
        }
        // A renamed column shows up as one missing and one unknown: name the unknown ones.
        let unknown: Vec<&str> = present
            .iter()
            .map(|p| p.0.as_str())
            .filter(|p| !expected.iter().any(|e| e.name.eq_ignore_ascii_case(p)))
            .collect();
        if !unknown.is_empty() && problems.iter().any(|p| p.starts_with(&format!("{table}."))) {
            problems.push(format!(
                "{table} also has columns the contract does not list: {}",
                unknown.join(", ")
            ));
        }
    }
    let checked = contract_tables().count() - missing_tables.len();
    Ok(if problems.is_empty() {
        ok(
            "columns",
            format!("every contract column is present with its type in the {checked} table(s)"),
        )
    } else {
        fail(
            "columns",
            problems.join("; "),
            "restore the columns as docs/oktell-schema.md lists them (Oktell queries them by \
             these names and types); b24sync never alters an existing table"
                .into(),
        )
    })
}

fn check_indexes(
    conn: &Connection,
    has: &dyn Fn(&str, &str) -> bool,
) -> Result<Diagnosis, StoreError> {
    let applied: BTreeSet<i64> = if has("table", "b24sync_migrations") {
        schema::applied_versions(conn)?
    } else {
        BTreeSet::new()
    };
    let pending: Vec<String> = schema::known_migrations()
        .filter(|(v, _)| !applied.contains(v))
        .map(|(v, name)| format!("{v} ({name})"))
        .collect();
    let missing_indexes: Vec<&str> = LOADER_INDEXES
        .iter()
        .copied()
        .filter(|i| !has("index", i))
        .collect();
    let mut problems = Vec::new();
    if !pending.is_empty() {
        problems.push(format!("migrations not applied: {}", pending.join(", ")));
    }
    if !missing_indexes.is_empty() {
        problems.push(format!("indexes missing: {}", missing_indexes.join(", ")));
    }
    Ok(if problems.is_empty() {
        ok(
            "indexes",
            format!(
                "all {} migrations applied; the loader's indexes exist",
                schema::known_migrations().count()
            ),
        )
    } else {
        fail(
            "indexes",
            problems.join("; "),
            "run `b24sync init-db`".into(),
        )
    })
}

fn check_duplicates(conn: &Connection) -> Result<Diagnosis, StoreError> {
    let context = "looking for duplicate sql_ID rows";
    let columns = declared_columns(conn, "bitrix_leads")?;
    if !columns.iter().any(|c| c.0.eq_ignore_ascii_case("sql_ID")) {
        return Ok(fail(
            "duplicates",
            "not checked: bitrix_leads or its sql_ID column is missing".into(),
            "fix the tables and columns checks first".into(),
        ));
    }
    let (ids, surplus): (i64, i64) = conn
        .query_row(sql::DUPLICATE_LEADS_SUMMARY, [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(db_err(context))?
        .unwrap_or((0, 0));
    if ids == 0 {
        return Ok(ok(
            "duplicates",
            "every sql_ID is stored once in bitrix_leads".into(),
        ));
    }
    let mut stmt = conn
        .prepare(sql::DUPLICATE_LEADS_EXAMPLES)
        .map_err(db_err(context))?;
    let examples: Vec<String> = stmt
        .query_map([], |r| r.get::<_, rusqlite::types::Value>(0))
        .map_err(db_err(context))?
        .map(|v| v.map(|v| schema::display_value(&v)))
        .collect::<Result<_, _>>()
        .map_err(db_err(context))?;
    Ok(fail(
        "duplicates",
        format!(
            "{ids} lead ID(s) stored more than once in bitrix_leads ({surplus} extra row(s); \
             e.g. sql_ID {})",
            examples.join(", ")
        ),
        format!(
            "keep the newest row of each (the highest Id) with: {} -- then run `b24sync init-db`",
            sql::FIX_DUPLICATE_LEADS.trim()
        ),
    ))
}

/// The file must be writable, and so must its folder: SQLite creates the `-wal` and `-shm`
/// files there, and b24sync its `.lock` files. Write permission bits are checked as well as
/// access, so a file marked read-only is reported even to a process (root) that could
/// write it anyway: the scheduled run may not be root.
fn check_permissions(conn: &Connection, path: &Path) -> Diagnosis {
    let mut problems = Vec::new();
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().readonly() => {
            problems.push(format!("the file {} is marked read-only", path.display()))
        }
        Ok(_) => {}
        Err(e) => problems.push(format!("cannot read {}: {e}", path.display())),
    }
    // Opening for writing without truncating or creating changes nothing.
    if let Err(e) = OpenOptions::new().write(true).open(path) {
        problems.push(format!("cannot open {} for writing: {e}", path.display()));
    }
    if conn.is_readonly(DatabaseName::Main).unwrap_or(false) {
        problems.push("SQLite opened the database read-only".to_string());
    }
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(folder) {
        Ok(m) if m.permissions().readonly() => problems.push(format!(
            "the folder {} is marked read-only",
            folder.display()
        )),
        Ok(_) => {
            if let Err(e) = probe_folder(folder) {
                problems.push(format!(
                    "cannot create files in the folder {}: {e}",
                    folder.display()
                ));
            }
        }
        Err(e) => problems.push(format!("cannot read the folder {}: {e}", folder.display())),
    }
    if problems.is_empty() {
        ok(
            "permissions",
            format!("{} and its folder are writable", path.display()),
        )
    } else {
        fail(
            "permissions",
            problems.join("; "),
            format!(
                "let the account that runs b24sync write {} and create files in {}",
                path.display(),
                folder.display()
            ),
        )
    }
}

/// Whether files can be created in `folder`: the only reliable test is to create one (and
/// remove it at once); permission bits do not tell about ACLs or read-only mounts.
fn probe_folder(folder: &Path) -> std::io::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let probe = folder.join(format!(
        ".b24sync-doctor-{}-{nanos}.tmp",
        std::process::id()
    ));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}
