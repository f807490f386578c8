//! `b24sync doctor` on SQL Server: every check, reading only (catalog views,
//! `HAS_PERMS_BY_NAME`, counts). A check that cannot run (a denied SELECT, say) is reported as
//! failed with the server's words rather than ending the whole diagnosis.

use std::collections::BTreeSet;

use super::super::{conn::Target, run, server_text, sql, Client};
use super::columns::{check_columns, found_columns};
use super::perms::check_permissions;
use crate::schema;
use crate::store::Diagnosis;

pub(super) fn passed(check: &str, detail: String) -> Diagnosis {
    Diagnosis {
        check: check.into(),
        ok: true,
        detail,
        fix: String::new(),
    }
}

pub(super) fn failed(check: &str, detail: String, fix: String) -> Diagnosis {
    Diagnosis {
        check: check.into(),
        ok: false,
        detail,
        fix,
    }
}

/// A check whose statement failed: say so with the server's words.
fn not_checked(check: &str, target: &Target, e: &tiberius::error::Error) -> Diagnosis {
    failed(
        check,
        format!("could not check: {}", target.scrub(&server_text(e))),
        "see the permissions check; the login needs to read the catalog and the tables".into(),
    )
}

/// What the server says about duplicate `sql_ID` rows: (IDs, surplus rows, examples).
pub(in crate::load::mssql) async fn duplicates(
    c: &mut Client,
) -> tiberius::Result<Option<(i32, i32, Vec<String>)>> {
    let sets = run(c, sql::CHECK_DUPLICATE_LEADS).await?;
    let summary = sets.first().and_then(|s| s.first());
    let ids = summary
        .and_then(|r| r.get::<i32, _>("duplicated_ids"))
        .unwrap_or(0);
    if ids == 0 {
        return Ok(None);
    }
    let surplus = summary
        .and_then(|r| r.get::<i32, _>("surplus_rows"))
        .unwrap_or(0);
    let examples = sets
        .get(1)
        .map(|rows| {
            rows.iter()
                .filter_map(|r| {
                    Some(format!(
                        "{} ({} rows)",
                        r.get::<i32, _>("sql_ID")?,
                        r.get::<i32, _>("copies")?
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Some((ids, surplus, examples)))
}

/// The sqlcmd line that runs the shipped fix for duplicates against this database.
pub(in crate::load::mssql) fn fix_duplicates_command(t: &Target) -> String {
    format!(
        "sqlcmd -S tcp:{},{} -d {} -U <login> -C -b -i sql/mssql/fix_duplicate_leads.sql",
        t.host,
        t.port,
        t.database.as_deref().unwrap_or("<database>"),
    )
}

/// Every check of `b24sync doctor`, reading only.
pub(in crate::load::mssql) async fn diagnose(c: &mut Client, target: &Target) -> Vec<Diagnosis> {
    let mut out = Vec::new();

    // tables
    let present: Option<BTreeSet<String>> = match run(c, sql::TABLES_PRESENT).await {
        Ok(sets) => Some(
            sets.iter()
                .flatten()
                .filter_map(|r| r.get::<&str, _>("name").map(str::to_lowercase))
                .collect(),
        ),
        Err(e) => {
            out.push(not_checked("tables", target, &e));
            None
        }
    };
    let missing_tables: Vec<&str> = match &present {
        Some(p) => schema::contract_tables()
            .map(|t| t.name)
            .filter(|t| !p.contains(*t))
            .collect(),
        None => Vec::new(),
    };
    if present.is_some() {
        out.push(if missing_tables.is_empty() {
            passed("tables", "the six Oktell tables exist in dbo".into())
        } else {
            failed(
                "tables",
                format!(
                    "missing: {}",
                    missing_tables
                        .iter()
                        .map(|t| format!("dbo.{t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "run `b24sync init-db` (it creates only what is missing)".into(),
            )
        });
    }

    // columns
    let mut leads_has_sql_id = false;
    match run(c, sql::CONTRACT_COLUMNS).await {
        Ok(sets) => {
            let found = found_columns(sets.first().map(Vec::as_slice).unwrap_or(&[]));
            leads_has_sql_id = found
                .get("bitrix_leads")
                .is_some_and(|cols| cols.iter().any(|c| c.0.eq_ignore_ascii_case("sql_ID")));
            out.push(check_columns(&found));
        }
        Err(e) => out.push(not_checked("columns", target, &e)),
    }

    // indexes: every migration applied
    let mut pending = true;
    match run(c, sql::MIGRATIONS_APPLIED).await {
        Ok(sets) => {
            let applied: BTreeSet<i32> = sets
                .iter()
                .flatten()
                .filter_map(|r| r.get::<i32, _>("version"))
                .collect();
            let missing: Vec<String> = sql::MIGRATIONS
                .iter()
                .filter(|m| !applied.contains(&m.version))
                .map(|m| format!("{:04} {}", m.version, m.name))
                .collect();
            pending = !missing.is_empty();
            out.push(if missing.is_empty() {
                passed(
                    "indexes",
                    format!(
                        "all {} migrations applied (the loader's indexes and tables exist)",
                        sql::MIGRATIONS.len()
                    ),
                )
            } else {
                failed(
                    "indexes",
                    format!("migrations not applied: {}", missing.join(", ")),
                    "run `b24sync init-db`".into(),
                )
            });
        }
        Err(e) => out.push(not_checked("indexes", target, &e)),
    }

    // duplicates
    if !leads_has_sql_id {
        out.push(failed(
            "duplicates",
            "not checked: dbo.bitrix_leads or its sql_ID column is missing".into(),
            "fix the tables and columns checks first".into(),
        ));
    } else {
        match duplicates(c).await {
            Ok(None) => out.push(passed(
                "duplicates",
                "every sql_ID is stored once in dbo.bitrix_leads".into(),
            )),
            Ok(Some((ids, surplus, examples))) => out.push(failed(
                "duplicates",
                format!(
                    "dbo.bitrix_leads has {ids} sql_ID value(s) stored more than once \
                     ({surplus} surplus row(s)), e.g. sql_ID {}",
                    examples.join(", ")
                ),
                format!(
                    "keep the row with the highest Id of each sql_ID with sql/mssql/fix_duplicate_leads.sql \
                     (one transaction): {} -- then run `b24sync init-db`. The script:\n{}",
                    fix_duplicates_command(target),
                    sql::FIX_DUPLICATE_LEADS.trim()
                ),
            )),
            Err(e) => out.push(not_checked("duplicates", target, &e)),
        }
    }

    // permissions
    let setup_needed = pending || !missing_tables.is_empty();
    match run(c, sql::PERMISSIONS).await {
        Ok(sets) => out.push(check_permissions(&sets, setup_needed)),
        Err(e) => out.push(not_checked("permissions", target, &e)),
    }
    out
}
