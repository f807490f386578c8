//! The run history (`dbo.b24sync_runs`, migration 5) and `b24sync doctor`'s checks on SQL
//! Server. The checks only read (catalog views, `HAS_PERMS_BY_NAME`, counts); a check that
//! cannot run (a denied SELECT, say) is reported as failed with the server's words rather
//! than ending the whole diagnosis.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDateTime, Timelike};
use tiberius::Row;

use super::{conn::Target, run, server_text, sql, Client};
use crate::model::{truncate_utf16, ColumnKind, LEAD_COLUMNS};
use crate::store::{Diagnosis, RunRecord};

/// Sizes of the run-history text columns: longer text would be an error, not a cut.
const MODE_CHARS: usize = 40;
const STATUS_CHARS: usize = 20;
const MESSAGE_CHARS: usize = 2000;

/// `datetime2(0)` would round fractions to the nearest second; cut them instead, as the
/// embedded database's text format does, so both store the same second.
fn whole_second(t: NaiveDateTime) -> NaiveDateTime {
    t.with_nanosecond(0).unwrap_or(t)
}

fn now_local() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}

pub(super) async fn run_started(c: &mut Client, record: &RunRecord) -> tiberius::Result<i64> {
    let started = whole_second(record.started_at.unwrap_or_else(now_local));
    let mode = truncate_utf16(&record.mode, MODE_CHARS);
    let sets = c
        .query(sql::RUNS_INSERT, &[&started, &mode])
        .await?
        .into_results()
        .await?;
    last_row(&sets)
        .and_then(|r| r.get::<i64, _>("Id"))
        .ok_or_else(|| tiberius::error::Error::Protocol("runs_insert.sql returned no Id".into()))
}

/// Returns how many rows were completed (0: no run with that Id).
pub(super) async fn run_finished(c: &mut Client, record: &RunRecord) -> tiberius::Result<u64> {
    let finished = whole_second(record.finished_at.unwrap_or_else(now_local));
    let status = truncate_utf16(&record.status, STATUS_CHARS);
    let message = truncate_utf16(record.message.as_deref().unwrap_or(""), MESSAGE_CHARS);
    // No NULL parameter (see runs_finish.sql): a flag says whether the exit code is known.
    let (has_exit, exit) = match record.exit_code {
        Some(code) => (1i32, i32::try_from(code).unwrap_or(i32::MAX)),
        None => (0i32, 0i32),
    };
    let sets = c
        .query(
            sql::RUNS_FINISH,
            &[
                &record.id,
                &finished,
                &status,
                &record.leads_read,
                &record.leads_upserted,
                &record.leads_deleted,
                &record.contact_values,
                &record.error_rows,
                &record.requests,
                &record.server_seconds,
                &record.seconds,
                &has_exit,
                &exit,
                &message,
            ],
        )
        .await?
        .into_results()
        .await?;
    let n = last_row(&sets)
        .and_then(|r| r.get::<i32, _>("runs_updated"))
        .unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The first row of the last result set: the statement files end with the SELECT that
/// answers, whatever the statements before it report.
fn last_row(sets: &[Vec<Row>]) -> Option<&Row> {
    sets.iter().rev().find_map(|s| s.first())
}

pub(super) async fn recent_runs(c: &mut Client, limit: u32) -> tiberius::Result<Vec<RunRecord>> {
    let rows = c
        .query(sql::RUNS_RECENT, &[&i64::from(limit)])
        .await?
        .into_first_result()
        .await?;
    rows.iter().map(run_record).collect()
}

fn run_record(r: &Row) -> tiberius::Result<RunRecord> {
    let n = |name: &str| -> tiberius::Result<i64> { Ok(r.try_get::<i64, _>(name)?.unwrap_or(0)) };
    let f = |name: &str| -> tiberius::Result<f64> { Ok(r.try_get::<f64, _>(name)?.unwrap_or(0.0)) };
    let s = |name: &str| -> tiberius::Result<Option<String>> {
        Ok(r.try_get::<&str, _>(name)?.map(str::to_string))
    };
    Ok(RunRecord {
        id: n("Id")?,
        started_at: r.try_get::<NaiveDateTime, _>("started_at")?,
        finished_at: r.try_get::<NaiveDateTime, _>("finished_at")?,
        mode: s("mode")?.unwrap_or_default(),
        status: s("status")?.unwrap_or_default(),
        leads_read: n("leads_read")?,
        leads_upserted: n("leads_upserted")?,
        leads_deleted: n("leads_deleted")?,
        contact_values: n("contact_values")?,
        error_rows: n("error_rows")?,
        requests: n("requests")?,
        server_seconds: f("server_seconds")?,
        seconds: f("seconds")?,
        exit_code: r.try_get::<i32, _>("exit_code")?.map(i64::from),
        message: s("message")?,
    })
}

/// One contract column as `INFORMATION_SCHEMA.COLUMNS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ContractColumn {
    pub name: String,
    /// `DATA_TYPE`: int, nvarchar, ntext, datetime.
    pub data_type: &'static str,
    /// `CHARACTER_MAXIMUM_LENGTH` for nvarchar (ntext's is not compared).
    pub max_length: Option<i32>,
    pub nullable: bool,
}

impl ContractColumn {
    /// As a DBA writes it: `nvarchar(3000) NULL`.
    pub fn describe(&self) -> String {
        type_text(self.data_type, self.max_length, self.nullable)
    }
}

fn type_text(data_type: &str, max_length: Option<i32>, nullable: bool) -> String {
    let null = if nullable { "NULL" } else { "NOT NULL" };
    let ty = data_type.to_lowercase();
    match max_length {
        _ if matches!(ty.as_str(), "ntext" | "text" | "image" | "xml") => format!("{ty} {null}"),
        Some(-1) => format!("{ty}(max) {null}"),
        Some(n) => format!("{ty}({n}) {null}"),
        None => format!("{ty} {null}"),
    }
}

/// The six Oktell tables (without `dbo.`), in the contract's order.
pub(super) const CONTRACT_TABLES: [&str; 6] = [
    "bitrix_oauth",
    "bitrix_leads",
    "bitrix_lead_contacts",
    "bitrix_lead_solution",
    "bitrix_import_lead_error",
    "bitrix_lead_runtime",
];

/// What a sync (and `errors`, `auth`, `lookup`) does to each table, and so the rights `doctor`
/// asks for: nothing more is ever needed once `init-db` has run (it creates bitrix_lead_runtime's
/// row Id = 1, the one thing that needs ALTER). `sql_tests.rs` checks the statements the sink
/// sends against this list. bitrix_oauth is used only with an OAuth application.
pub(super) const SYNC_RIGHTS: [(&str, &[&str]); 11] = [
    ("bitrix_oauth", &["SELECT", "INSERT", "UPDATE"]),
    ("bitrix_leads", &["SELECT", "INSERT", "UPDATE", "DELETE"]),
    (
        "bitrix_lead_contacts",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    (
        "bitrix_lead_solution",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    (
        "bitrix_import_lead_error",
        &["SELECT", "INSERT", "UPDATE", "DELETE"],
    ),
    ("bitrix_lead_runtime", &["SELECT", "UPDATE"]),
    ("b24sync_migrations", &["SELECT"]),
    ("b24sync_state", &["SELECT", "INSERT", "UPDATE"]),
    ("b24sync_runs", &["SELECT", "INSERT", "UPDATE"]),
    ("b24sync_lead_phones", &["SELECT", "INSERT", "DELETE"]),
    ("b24sync_operators", &["SELECT", "INSERT", "UPDATE"]),
];

/// The contract (docs/oktell-schema.md) per table; `sql_tests.rs` checks it against
/// its own copy written out from the document.
pub(super) fn contract_columns() -> Vec<(&'static str, Vec<ContractColumn>)> {
    let col =
        |name: &str, data_type: &'static str, max_length: Option<i32>, nullable| ContractColumn {
            name: name.to_string(),
            data_type,
            max_length,
            nullable,
        };
    let id = || col("Id", "int", None, false);
    let text2000 = |n: &str| col(n, "nvarchar", Some(2000), true);

    let mut oauth = vec![id()];
    for n in [
        "access_token",
        "expires_in",
        "scope",
        "user_id",
        "refresh_token",
        "domain",
        "member_id",
        "redirect_uri",
        "client_id",
        "client_secret",
        "code",
    ] {
        oauth.push(text2000(n));
    }
    oauth.push(col("dateexec", "datetime", None, true));

    let mut leads = vec![id(), col("sql_ID", "int", None, false)];
    leads.extend(LEAD_COLUMNS.iter().map(|c| match c.kind {
        ColumnKind::Text { max_chars } => col(
            &c.sql_name(),
            "nvarchar",
            Some(i32::try_from(max_chars).unwrap_or(i32::MAX)),
            true,
        ),
        ColumnKind::LongText => col(&c.sql_name(), "ntext", None, true),
        ColumnKind::DateTime | ColumnKind::Date => col(&c.sql_name(), "datetime", None, true),
    }));

    let mut contacts = vec![id(), col("sql_LEAD_ID", "int", None, true)];
    for n in [
        "sql_CONTACT_ID",
        "sql_VALUE_TYPE",
        "sql_VALUE",
        "sql_TYPE_ID",
    ] {
        contacts.push(text2000(n));
    }
    let solution = vec![
        id(),
        col("sql_LEAD_ID", "int", None, true),
        text2000("sql_solution"),
    ];
    let errors = vec![
        id(),
        text2000("sql_ID"),
        text2000("sql_error"),
        col("sql_full_lead_info", "ntext", None, true),
        col("sql_date_error", "datetime", None, true),
    ];
    let runtime = vec![
        id(),
        col("lead_get_by_id_dt", "datetime", None, true),
        col("lead_list_dt", "datetime", None, true),
    ];
    vec![
        ("bitrix_oauth", oauth),
        ("bitrix_leads", leads),
        ("bitrix_lead_contacts", contacts),
        ("bitrix_lead_solution", solution),
        ("bitrix_import_lead_error", errors),
        ("bitrix_lead_runtime", runtime),
    ]
}

fn passed(check: &str, detail: String) -> Diagnosis {
    Diagnosis {
        check: check.into(),
        ok: true,
        detail,
        fix: String::new(),
    }
}

fn failed(check: &str, detail: String, fix: String) -> Diagnosis {
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
pub(super) async fn duplicates(
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
pub(super) fn fix_duplicates_command(t: &Target) -> String {
    format!(
        "sqlcmd -S tcp:{},{} -d {} -U <login> -C -b -i sql/mssql/fix_duplicate_leads.sql",
        t.host,
        t.port,
        t.database.as_deref().unwrap_or("<database>"),
    )
}

/// Every check of `b24sync doctor`, reading only.
pub(super) async fn diagnose(c: &mut Client, target: &Target) -> Vec<Diagnosis> {
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
        Some(p) => CONTRACT_TABLES
            .iter()
            .copied()
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

/// (column, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, nullable) per lower-cased table name.
type Found = BTreeMap<String, Vec<(String, String, Option<i32>, bool)>>;

fn found_columns(rows: &[Row]) -> Found {
    let mut found: Found = BTreeMap::new();
    for r in rows {
        let text = |n: &str| r.get::<&str, _>(n).unwrap_or_default().to_string();
        found
            .entry(text("table_name").to_lowercase())
            .or_default()
            .push((
                text("column_name"),
                text("data_type"),
                r.get::<i32, _>("max_length"),
                text("is_nullable").eq_ignore_ascii_case("YES"),
            ));
    }
    found
}

fn check_columns(found: &Found) -> Diagnosis {
    let mut problems = Vec::new();
    let mut checked = 0;
    for (table, expected) in contract_columns() {
        // A missing table is the tables check's finding.
        let Some(present) = found.get(table) else {
            continue;
        };
        checked += 1;
        let before = problems.len();
        for e in &expected {
            let should = e.describe();
            match present.iter().find(|p| p.0.eq_ignore_ascii_case(&e.name)) {
                None => problems.push(format!(
                    "dbo.{table}.{} is missing (should be {should})",
                    e.name
                )),
                Some((_, ty, len, nullable)) => {
                    let same = ty.eq_ignore_ascii_case(e.data_type)
                        && (e.max_length.is_none() || *len == e.max_length)
                        && *nullable == e.nullable;
                    if !same {
                        problems.push(format!(
                            "dbo.{table}.{} is {} (should be {should})",
                            e.name,
                            type_text(ty, *len, *nullable)
                        ));
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
        if problems.len() > before && !unknown.is_empty() {
            problems.push(format!(
                "dbo.{table} also has columns the contract does not list: {}",
                unknown.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        passed(
            "columns",
            format!("every contract column is present with its type in the {checked} table(s)"),
        )
    } else {
        failed(
            "columns",
            problems.join("; "),
            "restore the columns as docs/oktell-schema.md lists them (Oktell's scenarios query \
             them by these names and types); b24sync never alters an existing table"
                .into(),
        )
    }
}

/// What `permissions.sql` answered.
#[derive(Debug, Default)]
struct Perms {
    create_table: bool,
    alter_schema: bool,
    /// Per existing table: SELECT, INSERT, UPDATE, DELETE, ALTER granted.
    tables: Vec<(String, [bool; 5])>,
    /// `bitrix_lead_runtime` has its row Id = 1 (so IDENTITY_INSERT is not needed).
    runtime_row: bool,
}

fn read_perms(sets: &[Vec<Row>]) -> Perms {
    let yes = |r: &Row, n: &str| r.get::<i32, _>(n) == Some(1);
    let first = sets.first().and_then(|s| s.first());
    Perms {
        create_table: first.is_some_and(|r| yes(r, "create_table")),
        alter_schema: first.is_some_and(|r| yes(r, "alter_schema")),
        tables: sets
            .get(1)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .map(|r| {
                (
                    r.get::<&str, _>("table_name")
                        .unwrap_or_default()
                        .to_string(),
                    [
                        yes(r, "can_select"),
                        yes(r, "can_insert"),
                        yes(r, "can_update"),
                        yes(r, "can_delete"),
                        yes(r, "can_alter"),
                    ],
                )
            })
            .collect(),
        runtime_row: sets
            .get(2)
            .and_then(|s| s.first())
            .and_then(|r| r.get::<i32, _>("runtime_rows"))
            .unwrap_or(0)
            > 0,
    }
}

fn check_permissions(sets: &[Vec<Row>], setup_needed: bool) -> Diagnosis {
    judge_permissions(&read_perms(sets), setup_needed)
}

/// `setup_needed`: tables or migrations are missing, so init-db must still create things.
fn judge_permissions(p: &Perms, setup_needed: bool) -> Diagnosis {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let (create, alter) = (p.create_table, p.alter_schema);
    if !(create && alter) {
        let lacking = [
            (!create, "CREATE TABLE in the database"),
            (!alter, "ALTER on schema dbo"),
        ]
        .iter()
        .filter(|(l, _)| *l)
        .map(|(_, w)| *w)
        .collect::<Vec<_>>()
        .join(" and ");
        if setup_needed {
            problems.push(format!(
                "cannot create what init-db must create: no {lacking}"
            ));
        } else {
            notes.push(format!(
                "no {lacking} (only `b24sync init-db` needs it, and everything is in place)"
            ));
        }
    }
    let tables = p.tables.len();
    for (table, granted) in &p.tables {
        let [select, insert, update, delete, alter_table] = *granted;
        let rights = SYNC_RIGHTS
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(table))
            .map(|(_, r)| *r)
            .unwrap_or(&["SELECT", "INSERT", "UPDATE", "DELETE"]);
        let has = |right: &str| match right {
            "SELECT" => select,
            "INSERT" => insert,
            "UPDATE" => update,
            _ => delete,
        };
        let mut lacking: Vec<&str> = rights.iter().copied().filter(|r| !has(r)).collect();
        // Row Id = 1 is created by init-db (runtime_row.sql); without it a sync stops at its
        // start unless this login may create it.
        if table == "bitrix_lead_runtime" && !p.runtime_row && !alter_table {
            lacking.push(
                "ALTER (to create row Id = 1: or run `b24sync init-db` once as a login that may)",
            );
        }
        if !lacking.is_empty() {
            problems.push(format!("no {} on dbo.{table}", lacking.join(", ")));
        }
    }
    if problems.is_empty() {
        let mut detail = format!("the login may read and write the {tables} table(s) b24sync uses");
        if create && alter {
            detail.push_str(" and create tables in dbo");
        }
        for n in notes {
            detail.push_str("; ");
            detail.push_str(&n);
        }
        passed("permissions", detail)
    } else {
        failed(
            "permissions",
            problems.join("; "),
            "a DBA grants them, e.g. `GRANT SELECT, INSERT, UPDATE, DELETE ON SCHEMA::dbo TO <user>;` \
             (and, for init-db, `GRANT CREATE TABLE TO <user>; GRANT ALTER ON SCHEMA::dbo TO <user>;`)"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract as the server would describe it after `oktell_tables.sql`.
    fn intact() -> Found {
        contract_columns()
            .into_iter()
            .map(|(t, cols)| {
                let rows = cols
                    .into_iter()
                    .map(|c| {
                        let len = match c.data_type {
                            "ntext" => Some(1_073_741_823),
                            _ => c.max_length,
                        };
                        (c.name, c.data_type.to_string(), len, c.nullable)
                    })
                    .collect();
                (t.to_string(), rows)
            })
            .collect()
    }

    #[test]
    fn intact_contract_passes_the_columns_check() {
        let d = check_columns(&intact());
        assert!(d.ok, "{d:?}");
        assert!(d.detail.contains("6 table(s)"), "{d:?}");
    }

    #[test]
    fn renamed_and_retyped_columns_are_named_with_what_they_should_be() {
        let mut found = intact();
        let leads = found.get_mut("bitrix_leads").expect("leads");
        let title = leads
            .iter_mut()
            .find(|c| c.0 == "sql_TITLE")
            .expect("sql_TITLE");
        title.0 = "sql_TITLE_old".into();
        let name = leads
            .iter_mut()
            .find(|c| c.0 == "sql_NAME")
            .expect("sql_NAME");
        name.2 = Some(100);
        let sql_id = leads.iter_mut().find(|c| c.0 == "sql_ID").expect("sql_ID");
        sql_id.3 = true;
        found.remove("bitrix_lead_solution"); // the tables check's business
        let d = check_columns(&found);
        assert!(!d.ok);
        for part in [
            "dbo.bitrix_leads.sql_TITLE is missing (should be nvarchar(4000) NULL)",
            "dbo.bitrix_leads.sql_NAME is nvarchar(100) NULL (should be nvarchar(3000) NULL)",
            "dbo.bitrix_leads.sql_ID is int NULL (should be int NOT NULL)",
            "dbo.bitrix_leads also has columns the contract does not list: sql_TITLE_old",
        ] {
            assert!(d.detail.contains(part), "{part}\n{}", d.detail);
        }
        assert!(!d.detail.contains("bitrix_lead_solution"), "{}", d.detail);
        assert!(d.fix.contains("oktell-schema.md"));
    }

    #[test]
    fn column_case_does_not_matter_but_ntext_length_is_not_compared() {
        let mut found = intact();
        for cols in found.values_mut() {
            for c in cols.iter_mut() {
                c.0 = c.0.to_lowercase();
                c.1 = c.1.to_uppercase();
            }
        }
        assert!(check_columns(&found).ok);
    }

    fn all_granted() -> Perms {
        // Exactly the rights a sync needs, no ALTER anywhere.
        let tables: Vec<(String, [bool; 5])> = SYNC_RIGHTS
            .iter()
            .map(|(t, rights)| {
                let has = |r: &str| rights.contains(&r);
                (
                    t.to_string(),
                    [
                        has("SELECT"),
                        has("INSERT"),
                        has("UPDATE"),
                        has("DELETE"),
                        false,
                    ],
                )
            })
            .collect();
        Perms {
            create_table: true,
            alter_schema: true,
            tables,
            runtime_row: true,
        }
    }

    #[test]
    fn permissions_name_what_is_missing() {
        // Exactly SYNC_RIGHTS, no ALTER anywhere, row Id = 1 in place: all a sync needs.
        let d = judge_permissions(&all_granted(), false);
        assert!(d.ok, "{d:?}");
        assert!(d.detail.contains("11 table(s)") && d.detail.contains("create tables"));

        let mut p = all_granted();
        p.tables[1].1[3] = false; // DELETE on bitrix_leads
        p.tables[9].1[3] = false; // DELETE on b24sync_lead_phones (phones are replaced)
        p.runtime_row = false; // and row 1 missing, without ALTER to create it
        let d = judge_permissions(&p, false);
        assert!(!d.ok);
        assert!(d.detail.contains("no DELETE on dbo.bitrix_leads"), "{d:?}");
        assert!(
            d.detail.contains("no DELETE on dbo.b24sync_lead_phones"),
            "{d:?}"
        );
        assert!(
            d.detail
                .contains("no ALTER (to create row Id = 1: or run `b24sync init-db` once as a login that may) on dbo.bitrix_lead_runtime"),
            "{d:?}"
        );
        assert!(d.fix.contains("GRANT"), "{d:?}");
        // With ALTER, the schema check at the start of the sync creates the row itself.
        p.tables[1].1[3] = true;
        p.tables[9].1[3] = true;
        p.tables[5].1[4] = true;
        assert!(judge_permissions(&p, false).ok);
        // Nothing beyond SYNC_RIGHTS is asked for: no DELETE on the state, for instance.
        assert_eq!(p.tables[7].0, "b24sync_state");
        p.tables[7].1[3] = false;
        assert!(judge_permissions(&p, false).ok);
    }

    #[test]
    fn create_permissions_matter_only_while_init_db_has_work() {
        let mut p = all_granted();
        p.create_table = false;
        let d = judge_permissions(&p, false);
        assert!(d.ok && d.detail.contains("no CREATE TABLE"), "{d:?}");
        let d = judge_permissions(&p, true);
        assert!(
            !d.ok && d.detail.contains("cannot create what init-db must create"),
            "{d:?}"
        );
    }

    #[test]
    fn type_text_reads_like_ddl() {
        assert_eq!(type_text("nvarchar", Some(-1), true), "nvarchar(max) NULL");
        assert_eq!(type_text("NTEXT", Some(1_073_741_823), true), "ntext NULL");
        assert_eq!(type_text("int", None, false), "int NOT NULL");
    }

    #[test]
    fn run_times_are_cut_to_the_second() {
        let t = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .and_then(|d| d.and_hms_milli_opt(3, 4, 5, 999))
            .expect("date");
        assert_eq!(whole_second(t).to_string(), "2024-01-02 03:04:05");
    }
}
