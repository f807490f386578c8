//! Dry-run previews, the run history and `b24sync doctor` on real SQLite files.

use std::path::{Path, PathBuf};

use b24sync::load::sqlite::SqliteSink;
use b24sync::model::{
    lead_column_index, Batch, Cell, ContactRow, LeadRecord, LeadRow, Problem, ProblemKind,
    RejectedLead, LEAD_COLUMNS,
};
use b24sync::prepare::prepare;
use b24sync::store::{
    BatchWriter, Diagnosis, RunHistory, RunRecord, SchemaAdmin, StateStore, StoreError,
};
use chrono::{NaiveDate, NaiveDateTime};
use rusqlite::types::Value;

fn dt(d: u32, h: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 3, d)
        .unwrap()
        .and_hms_opt(h, 4, 5)
        .unwrap()
}

fn lead(id: i32, title: &str, phones: &[(&str, &str)]) -> LeadRecord {
    let mut cells = vec![Cell::Null; LEAD_COLUMNS.len()];
    cells[lead_column_index("TITLE").unwrap()] = Cell::Text(title.to_string());
    cells[lead_column_index("DATE_MODIFY").unwrap()] = Cell::DateTime(dt(1, 10));
    LeadRecord {
        lead: LeadRow { id, cells },
        contacts: phones
            .iter()
            .map(|(cid, v)| ContactRow {
                lead_id: id,
                contact_id: Some(cid.to_string()),
                value_type: Some("WORK".into()),
                value: Some(v.to_string()),
                type_id: "PHONE".into(),
            })
            .collect(),
        solution: (id % 2 == 0).then(|| format!("solution {id}")),
        problems: vec![],
        phones: vec![],
        raw_json: format!(r#"{{"ID":"{id}","TITLE":"{title}"}}"#),
    }
}

fn batch(records: Vec<LeadRecord>) -> Batch {
    Batch {
        records,
        rejected: vec![],
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    sink: SqliteSink,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oktell.db");
    let sink = SqliteSink::open(&path).unwrap();
    Fixture {
        _dir: dir,
        path,
        sink,
    }
}

/// Every row of every table (the staging tables are temporary, so not in the file), by
/// table name and rowid: what "nothing changed" is compared on.
fn dump_all(path: &Path) -> Vec<(String, Vec<Vec<Value>>)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut names = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables: Vec<String> = names
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))
                .unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
                .unwrap()
                .collect::<Result<Vec<Vec<Value>>, _>>()
                .unwrap();
            (t, rows)
        })
        .collect()
}

fn check<'a>(report: &'a [Diagnosis], name: &str) -> &'a Diagnosis {
    report
        .iter()
        .find(|d| d.check == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:?}"))
}

fn first_batch() -> Batch {
    let mut with_problem = lead(3, "three", &[]);
    with_problem.problems.push(Problem {
        field: "TITLE".into(),
        kind: ProblemKind::Truncated,
        detail: "cut".into(),
    });
    Batch {
        records: vec![
            lead(1, "one", &[("11", "+7 900 000-00-01")]),
            lead(
                2,
                "two",
                &[("21", "+7 900 000-00-02"), ("22", "+7 900 000-00-03")],
            ),
            with_problem,
        ],
        rejected: vec![RejectedLead {
            lead_id: Some("4".into()),
            reason: "no TITLE".into(),
            raw_json: r#"{"ID":"4"}"#.into(),
        }],
    }
}

#[tokio::test]
async fn preview_reports_what_the_load_then_does_and_changes_nothing() {
    let f = fixture();
    f.sink.init_schema().await.unwrap();
    f.sink.write_state("watermark", "w1").await.unwrap();

    let before = dump_all(&f.path);
    let preview = f
        .sink
        .preview_batch(prepare(first_batch()), dt(2, 9))
        .await
        .unwrap();
    assert_eq!(
        dump_all(&f.path),
        before,
        "the preview changed the database"
    );
    let loaded = f
        .sink
        .load_batch(prepare(first_batch()), dt(2, 9))
        .await
        .unwrap();
    assert_eq!(preview, loaded);
    assert_eq!(
        (
            loaded.leads_inserted,
            loaded.contacts_written,
            loaded.error_rows
        ),
        (3, 3, 2)
    );
    assert_ne!(dump_all(&f.path), before, "the load itself did write");

    // A second batch over existing rows: a changed lead, a removed and a changed contact
    // value, an unchanged lead, a lead whose problem is gone.
    let second = || {
        batch(vec![
            lead(1, "one", &[("11", "+7 900 000-00-01")]),
            lead(2, "two, renamed", &[("22", "+7 900 000-00-99")]),
            lead(3, "three", &[]),
            lead(5, "five", &[("51", "+7 900 000-00-05")]),
        ])
    };
    let before = dump_all(&f.path);
    let preview = f
        .sink
        .preview_batch(prepare(second()), dt(3, 9))
        .await
        .unwrap();
    assert_eq!(
        dump_all(&f.path),
        before,
        "the preview changed the database"
    );
    // Previewing twice gives the same answer: nothing of the first preview stayed behind.
    assert_eq!(
        f.sink
            .preview_batch(prepare(second()), dt(3, 9))
            .await
            .unwrap(),
        preview
    );
    let loaded = f
        .sink
        .load_batch(prepare(second()), dt(3, 9))
        .await
        .unwrap();
    assert_eq!(preview, loaded);
    assert_eq!(
        (
            loaded.leads_inserted,
            loaded.leads_updated,
            loaded.leads_unchanged,
            loaded.contacts_written,
            loaded.contacts_deleted
        ),
        (1, 1, 2, 2, 1)
    );
}

#[tokio::test]
async fn preview_on_a_new_file_leaves_no_lead_behind() {
    let f = fixture();
    let seven = || prepare(batch(vec![lead(7, "seven", &[("71", "1")])]));
    // A dry run changes nothing, not even the schema: on a new file (as on a SQL Server
    // database init-db has not prepared) the preview says what to run instead.
    let err = f.sink.preview_batch(seven(), dt(1, 1)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Schema(m) if m.contains("run `b24sync init-db` first")),
        "{err:?}"
    );
    assert!(dump_all(&f.path).is_empty(), "the preview created tables");
    f.sink.init_schema().await.unwrap();
    let preview = f.sink.preview_batch(seven(), dt(1, 1)).await.unwrap();
    assert_eq!(preview.leads_inserted, 1);
    for (table, rows) in dump_all(&f.path) {
        if table.starts_with("bitrix_") {
            assert!(rows.is_empty(), "{table}: {rows:?}");
        }
    }
}

#[tokio::test]
async fn run_history_starts_finishes_and_lists_newest_first() {
    let f = fixture();
    let first = RunRecord {
        started_at: Some(dt(5, 8)),
        mode: "full".into(),
        ..RunRecord::default()
    };
    let id1 = f.sink.run_started(&first).await.unwrap();
    assert!(id1 > 0);
    let runs = f.sink.recent_runs(10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].id, runs[0].status.as_str(), runs[0].finished_at),
        (id1, "running", None)
    );
    assert_eq!(runs[0].started_at, Some(dt(5, 8)));
    assert_eq!(runs[0].mode, "full");

    let long = "é😀".repeat(1500); // 4,500 UTF-16 units
    let done = RunRecord {
        id: id1,
        started_at: Some(dt(5, 8)),
        finished_at: Some(dt(5, 9)),
        mode: "full".into(),
        status: "errors".into(),
        leads_read: 120,
        leads_upserted: 100,
        leads_deleted: 3,
        contact_values: 240,
        error_rows: 2,
        requests: 7,
        server_seconds: 1.5,
        seconds: 61.25,
        exit_code: Some(2),
        message: Some(long.clone()),
    };
    f.sink.run_finished(&done).await.unwrap();

    // A second run that never finishes (the process died): it stays `running`.
    let id2 = f
        .sink
        .run_started(&RunRecord {
            started_at: Some(dt(6, 8)),
            mode: "incremental".into(),
            status: "ok".into(), // ignored: a run starts as `running`
            ..RunRecord::default()
        })
        .await
        .unwrap();
    assert!(id2 > id1);

    let runs = f.sink.recent_runs(10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![id2, id1]
    );
    assert_eq!(runs[0].status, "running");
    assert_eq!(runs[0].finished_at, None);
    assert_eq!(runs[0].exit_code, None);
    let got = &runs[1];
    let message = got.message.clone().unwrap();
    // Cut to 2,000 UTF-16 units (nvarchar(2000) on SQL Server), never inside a character:
    // the emoji that would straddle the limit goes whole.
    assert_eq!(message.encode_utf16().count(), 1999);
    assert!(long.starts_with(&message));
    assert_eq!(
        RunRecord {
            message: None,
            ..got.clone()
        },
        RunRecord {
            message: None,
            ..done
        }
    );
    assert_eq!(f.sink.recent_runs(1).await.unwrap().len(), 1);
    assert_eq!(f.sink.recent_runs(1).await.unwrap()[0].id, id2);

    let err = f
        .sink
        .run_finished(&RunRecord {
            id: id2 + 100,
            status: "ok".into(),
            ..RunRecord::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
}

#[tokio::test]
async fn diagnose_passes_on_a_fresh_database() {
    let f = fixture();
    f.sink.init_schema().await.unwrap();
    let report = f.sink.diagnose().await.unwrap();
    let names: Vec<&str> = report.iter().map(|d| d.check.as_str()).collect();
    assert_eq!(
        names,
        ["tables", "columns", "indexes", "duplicates", "permissions"]
    );
    for d in &report {
        assert!(d.ok, "{d:?}");
        assert!(d.fix.is_empty(), "{d:?}");
        assert!(!d.detail.is_empty(), "{d:?}");
    }
}

#[tokio::test]
async fn diagnose_changes_nothing_on_an_empty_file() {
    let f = fixture();
    let report = f.sink.diagnose().await.unwrap();
    let tables = check(&report, "tables");
    assert!(!tables.ok);
    assert!(tables.detail.contains("bitrix_leads"), "{tables:?}");
    assert!(tables.fix.contains("b24sync init-db"), "{tables:?}");
    let indexes = check(&report, "indexes");
    assert!(
        !indexes.ok && indexes.fix.contains("b24sync init-db"),
        "{indexes:?}"
    );
    assert!(dump_all(&f.path).is_empty(), "diagnose created tables");
}

/// Migration 1's DDL without its indexes, with `edit` applied: a hand-made database.
fn hand_made(path: &Path, edit: impl Fn(String) -> String) {
    let ddl = include_str!("../sql/sqlite/0001_contract_tables.sql");
    let tables_only = ddl.split("-- The upsert key").next().unwrap().to_string();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&edit(tables_only)).unwrap();
}

#[tokio::test]
async fn diagnose_names_a_renamed_contract_column() {
    let f = fixture();
    hand_made(&f.path, |ddl| {
        ddl.replace(
            "sql_TITLE NVARCHAR(4000) NULL",
            "sql_TITLE_OLD NVARCHAR(4000) NULL",
        )
        .replace(
            "sql_NAME NVARCHAR(3000) NULL",
            "sql_NAME NVARCHAR(100) NULL",
        )
    });
    let report = f.sink.diagnose().await.unwrap();
    assert!(check(&report, "tables").ok, "{report:?}");
    let columns = check(&report, "columns");
    assert!(!columns.ok);
    assert!(
        columns
            .detail
            .contains("bitrix_leads.sql_TITLE is missing (should be NVARCHAR(4000) NULL)"),
        "{columns:?}"
    );
    assert!(
        columns.detail.contains(
            "bitrix_leads.sql_NAME is NVARCHAR(100) NULL (should be NVARCHAR(3000) NULL)"
        ),
        "{columns:?}"
    );
    assert!(columns.detail.contains("sql_TITLE_OLD"), "{columns:?}");
    assert!(!columns.fix.is_empty());
    // Diagnose did not run the migrations.
    assert!(!check(&report, "indexes").ok);
    let names: Vec<String> = dump_all(&f.path).into_iter().map(|t| t.0).collect();
    assert!(!names.iter().any(|n| n.starts_with("b24sync")), "{names:?}");
}

#[tokio::test]
async fn diagnose_names_a_missing_table() {
    let f = fixture();
    f.sink.init_schema().await.unwrap();
    rusqlite::Connection::open(&f.path)
        .unwrap()
        .execute_batch("DROP TABLE bitrix_lead_solution;")
        .unwrap();
    let report = f.sink.diagnose().await.unwrap();
    let tables = check(&report, "tables");
    assert!(!tables.ok);
    assert_eq!(tables.detail, "missing: bitrix_lead_solution");
    // Its index went with it; the other checks stand.
    let indexes = check(&report, "indexes");
    assert!(
        !indexes.ok && indexes.detail.contains("ix_bitrix_lead_solution_lead"),
        "{indexes:?}"
    );
    for name in ["columns", "duplicates", "permissions"] {
        assert!(check(&report, name).ok, "{report:?}");
    }
}

#[tokio::test]
async fn diagnose_counts_duplicate_lead_rows_and_gives_the_fix() {
    let f = fixture();
    hand_made(&f.path, |ddl| ddl);
    rusqlite::Connection::open(&f.path)
        .unwrap()
        .execute_batch(
            "INSERT INTO bitrix_leads (sql_ID, sql_TITLE) VALUES
               (5, 'old'), (5, 'new'), (9, 'a'), (9, 'b'), (9, 'c'), (10, 'single');",
        )
        .unwrap();
    let report = f.sink.diagnose().await.unwrap();
    let dups = check(&report, "duplicates");
    assert!(!dups.ok);
    assert!(
        dups.detail.contains(
            "2 lead ID(s) stored more than once in bitrix_leads (3 extra row(s); e.g. sql_ID 5, 9)"
        ),
        "{dups:?}"
    );
    assert!(
        dups.fix.contains(
            "DELETE FROM bitrix_leads WHERE Id NOT IN (SELECT MAX(Id) FROM bitrix_leads GROUP BY sql_ID);"
        ),
        "{dups:?}"
    );
    assert!(check(&report, "tables").ok && check(&report, "columns").ok);
    assert_eq!(
        rusqlite::Connection::open(&f.path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM bitrix_leads", [], |r| r
                .get::<_, i64>(0))
            .unwrap(),
        6
    );
}

#[cfg(unix)]
#[tokio::test]
async fn diagnose_reports_a_read_only_file() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    f.sink.init_schema().await.unwrap();
    let Fixture { _dir, path, sink } = f;
    drop(sink);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    // A process that may not write the file may not get past opening it either; when it
    // does, doctor must say why the next sync would fail.
    match SqliteSink::open(&path) {
        Err(e) => assert!(matches!(e, StoreError::Unreachable { .. }), "{e:?}"),
        Ok(sink) => {
            let report = sink.diagnose().await.unwrap();
            let perms = check(&report, "permissions");
            assert!(!perms.ok, "{perms:?}");
            assert!(perms.detail.contains("read-only"), "{perms:?}");
            assert!(perms.fix.contains("write"), "{perms:?}");
            for name in ["tables", "columns", "indexes", "duplicates"] {
                assert!(check(&report, name).ok, "{report:?}");
            }
        }
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
}
