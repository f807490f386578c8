//! Tests against real SQLite files, read back through a second connection.

use super::*;
use crate::model::{
    lead_column_index, ContactRow, LeadRecord, LeadRow, Problem, ProblemKind, RejectedLead,
    LEAD_COLUMNS,
};
use crate::prepare::prepare;
use crate::store::{BatchOutcome, BatchWriter, RunHistory, RunLock, SchemaAdmin};
use chrono::NaiveDate;
use chrono::NaiveDateTime;
use rusqlite::types::{ToSql, Value};
use std::time::Instant;
use tempfile::TempDir;

fn dt(d: u32, h: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 3, d)
        .unwrap()
        .and_hms_opt(h, 4, 5)
        .unwrap()
}

fn lead(id: LeadId, title: &str) -> LeadRecord {
    let mut cells = vec![Cell::Null; LEAD_COLUMNS.len()];
    cells[lead_column_index("TITLE").unwrap()] = Cell::Text(title.to_string());
    cells[lead_column_index("DATE_MODIFY").unwrap()] = Cell::DateTime(dt(1, 10));
    LeadRecord {
        lead: LeadRow { id, cells },
        contacts: vec![],
        phones: vec![],
        solution: None,
        problems: vec![],
        raw_json: format!(r#"{{"ID":"{id}","TITLE":"{title}"}}"#),
    }
}

fn set(record: &mut LeadRecord, field: &str, cell: Cell) {
    record.lead.cells[lead_column_index(field).unwrap()] = cell;
}

fn phone(lead_id: LeadId, contact_id: Option<&str>, value: &str) -> ContactRow {
    ContactRow {
        lead_id,
        contact_id: contact_id.map(str::to_string),
        value_type: Some("WORK".to_string()),
        value: Some(value.to_string()),
        type_id: "PHONE".to_string(),
    }
}

fn problem(field: &str) -> Problem {
    Problem {
        field: field.to_string(),
        kind: ProblemKind::Truncated,
        detail: "cut".to_string(),
    }
}

fn batch(records: Vec<LeadRecord>) -> Batch {
    Batch {
        entity: crate::schema::LEAD,
        records,
        rejected: vec![],
    }
}

use crate::model::{Batch, Cell, LeadId};

struct Fixture {
    _dir: TempDir,
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

impl Fixture {
    fn read(&self) -> Connection {
        Connection::open(&self.path).unwrap()
    }

    /// All rows of a table, ordered by `Id`, every column as stored.
    fn dump(&self, table: &str) -> Vec<Vec<Value>> {
        let conn = self.read();
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY Id"))
            .unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    fn dump_all(&self) -> Vec<Vec<Vec<Value>>> {
        [
            "bitrix_leads",
            "bitrix_lead_contacts",
            "bitrix_lead_solution",
            "bitrix_import_lead_error",
            "bitrix_lead_runtime",
        ]
        .iter()
        .map(|t| self.dump(t))
        .collect()
    }

    fn rows<T: rusqlite::types::FromSql>(&self, query: &str) -> Vec<T> {
        let conn = self.read();
        let mut stmt = conn.prepare(query).unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    async fn load(&self, b: Batch) -> BatchOutcome {
        self.sink.load_batch(prepare(b), dt(2, 12)).await.unwrap()
    }
}

fn text(v: &str) -> Value {
    Value::Text(v.to_string())
}

#[tokio::test]
async fn new_leads_store_every_column_exactly() {
    let f = fixture();
    let mut rec = lead(7, "Заявка \"тест\" 'quoted' \\ 😀");
    for (i, c) in LEAD_COLUMNS.iter().enumerate() {
        if matches!(c.kind, crate::model::ColumnKind::Text { .. }) && c.field != "TITLE" {
            rec.lead.cells[i] = Cell::Text(format!("{}=значение{i}", c.field));
        }
    }
    set(&mut rec, "ADDRESS_2", Cell::Null);
    let midnight = NaiveDate::from_ymd_opt(2024, 3, 5)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    set(&mut rec, "BIRTHDATE", Cell::DateTime(midnight));
    set(&mut rec, "DATE_CREATE", Cell::DateTime(dt(3, 23)));
    set(&mut rec, "DATE_CLOSED", Cell::Null);
    let comments = "ж😀".repeat(50_000);
    set(&mut rec, "COMMENTS", Cell::Text(comments.clone()));
    let outcome = f.load(batch(vec![rec.clone(), lead(8, "second")])).await;
    assert_eq!(
        outcome,
        BatchOutcome {
            leads_inserted: 2,
            ..BatchOutcome::default()
        }
    );

    let rows = f.dump("bitrix_leads");
    assert_eq!(rows.len(), 2);
    let row = &rows[0];
    assert_eq!(row.len(), 35, "Id + 34 contract columns");
    assert_eq!(row[0], Value::Integer(1));
    assert_eq!(row[1], Value::Integer(7));
    for (i, cell) in rec.lead.cells.iter().enumerate() {
        let expected = match cell {
            Cell::Null => Value::Null,
            Cell::Text(s) => text(s),
            Cell::DateTime(d) => text(&d.format("%Y-%m-%d %H:%M:%S").to_string()),
        };
        assert_eq!(row[i + 2], expected, "column {}", LEAD_COLUMNS[i].field);
    }
    let c: Vec<String> = f.rows("SELECT sql_COMMENTS FROM bitrix_leads WHERE sql_ID = 7");
    assert_eq!(c[0].chars().count(), 100_000);
    assert_eq!(c[0], comments);
    let birth: Vec<String> = f.rows("SELECT sql_BIRTHDATE FROM bitrix_leads WHERE sql_ID = 7");
    assert_eq!(birth, vec!["2024-03-05 00:00:00".to_string()]);
    let types: Vec<String> = f.rows(
        "SELECT typeof(sql_DATE_CREATE) || typeof(sql_ID) FROM bitrix_leads WHERE sql_ID = 7",
    );
    assert_eq!(types, vec!["textinteger".to_string()]);
}

#[tokio::test]
async fn identical_reload_touches_nothing() {
    let f = fixture();
    let mut a = lead(1, "a");
    a.contacts = vec![phone(1, Some("11"), "+7 900"), phone(1, None, "no id")];
    a.solution = Some("Купил, Думает".to_string());
    a.problems = vec![problem("TITLE")];
    let mut b = lead(2, "b");
    b.contacts = vec![phone(2, Some("21"), "+7 901")];
    let c = lead(3, "c");
    let make = || Batch {
        entity: crate::schema::LEAD,
        records: vec![a.clone(), b.clone(), c.clone()],
        rejected: vec![RejectedLead {
            lead_id: Some("x1".into()),
            reason: "bad ID".into(),
            raw_json: "{}".into(),
        }],
    };
    let first = f.load(make()).await;
    assert_eq!(first.leads_inserted, 3);
    assert_eq!(first.contacts_written, 3);
    assert_eq!(first.error_rows, 2);
    let before = f.dump_all();

    let second = f.sink.load_batch(prepare(make()), dt(9, 9)).await.unwrap();
    assert_eq!(
        second,
        BatchOutcome {
            leads_unchanged: 3,
            error_rows: 2,
            ..BatchOutcome::default()
        }
    );
    assert_eq!(f.dump_all(), before);
    let staged: Vec<i64> = {
        // Staging tables are per connection; they must be empty after a batch.
        let db = lock_ignoring_poison(&f.sink.db);
        vec![db
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM temp.stage_leads) + (SELECT count(*) FROM temp.stage_lead_contacts) \
                 + (SELECT count(*) FROM temp.stage_errors) + (SELECT count(*) FROM temp.stage_error_ids)",
                [],
                |r| r.get(0),
            )
            .unwrap()]
    };
    assert_eq!(staged, vec![0]);
}

#[tokio::test]
async fn changed_title_updates_only_that_lead() {
    let f = fixture();
    f.load(batch(vec![lead(1, "a"), lead(2, "b")])).await;
    let outcome = f
        .load(batch(vec![lead(1, "a"), lead(2, "B!"), lead(3, "c")]))
        .await;
    assert_eq!(
        outcome,
        BatchOutcome {
            leads_inserted: 1,
            leads_updated: 1,
            leads_unchanged: 1,
            ..Default::default()
        }
    );
    let rows: Vec<(i64, i64, String)> = {
        let conn = f.read();
        let mut s = conn
            .prepare("SELECT Id, sql_ID, sql_TITLE FROM bitrix_leads ORDER BY Id")
            .unwrap();
        let r = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        r.collect::<Result<_, _>>().unwrap()
    };
    assert_eq!(
        rows,
        vec![(1, 1, "a".into()), (2, 2, "B!".into()), (3, 3, "c".into())]
    );
    // A value becoming NULL is a change too.
    let mut cleared = lead(1, "a");
    set(&mut cleared, "DATE_MODIFY", Cell::Null);
    assert_eq!(f.load(batch(vec![cleared])).await.leads_updated, 1);
}

#[tokio::test]
async fn a_batch_repeating_a_lead_keeps_the_last_record() {
    let f = fixture();
    let outcome = f.load(batch(vec![lead(1, "old"), lead(1, "new")])).await;
    assert_eq!(outcome.leads_inserted, 1);
    assert_eq!(outcome.leads_unchanged, 0);
    let titles: Vec<String> = f.rows("SELECT sql_TITLE FROM bitrix_leads");
    assert_eq!(titles, vec!["new".to_string()]);
}

type ContactDump = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn contacts(f: &Fixture) -> Vec<ContactDump> {
    let conn = f.read();
    let mut s = conn
        .prepare(
            "SELECT Id, sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID \
             FROM bitrix_lead_contacts ORDER BY Id",
        )
        .unwrap();
    let r = s
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap();
    r.collect::<Result<_, _>>().unwrap()
}

#[tokio::test]
async fn contact_sets_are_replaced_and_untouched_values_keep_their_id() {
    let f = fixture();
    let mut a = lead(1, "a");
    a.contacts = vec![
        phone(1, Some("11"), "+7 111"),
        phone(1, Some("12"), "+7 112"),
        phone(1, None, "keyless"),
        phone(1, None, "keyless gone"),
    ];
    let mut b = lead(2, "b");
    b.contacts = vec![phone(2, Some("21"), "+7 221")];
    f.load(batch(vec![a.clone(), b])).await;
    let first = contacts(&f);
    assert_eq!(first.len(), 5);

    // 12 removed in Bitrix24, 11 untouched, 13 added, keyless kept, "keyless gone" removed;
    // lead 2 now has no contacts at all.
    a.contacts = vec![
        phone(1, Some("11"), "+7 111"),
        phone(1, Some("13"), "+7 113"),
        phone(1, None, "keyless"),
    ];
    let b = lead(2, "b");
    let outcome = f.load(batch(vec![a.clone(), b])).await;
    assert_eq!(outcome.contacts_deleted, 3);
    assert_eq!(outcome.contacts_written, 1);
    assert_eq!(outcome.leads_unchanged, 2);
    let second = contacts(&f);
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        second,
        vec![
            (1, 1, s("11"), s("WORK"), s("+7 111"), s("PHONE")),
            (3, 1, None, s("WORK"), s("keyless"), s("PHONE")),
            (6, 1, s("13"), s("WORK"), s("+7 113"), s("PHONE")),
        ]
    );

    // A changed value under the same Bitrix24 ID is updated in place.
    a.contacts[1].value = s("+7 999");
    a.contacts[1].value_type = s("MOBILE");
    let outcome = f.load(batch(vec![a])).await;
    assert_eq!((outcome.contacts_written, outcome.contacts_deleted), (1, 0));
    let third = contacts(&f);
    assert_eq!(
        third[2],
        (6, 1, s("13"), s("MOBILE"), s("+7 999"), s("PHONE"))
    );
    assert_eq!(third[..2], second[..2]);
}

#[tokio::test]
async fn old_duplicate_contact_rows_are_collapsed() {
    let f = fixture();
    f.sink.init_schema().await.unwrap();
    f.read()
        .execute_batch(
            "INSERT INTO bitrix_lead_contacts (sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE, sql_TYPE_ID) VALUES
               (1, '11', 'old', 'PHONE'), (1, '11', 'old', 'PHONE'), (1, NULL, 'x', 'PHONE'), (1, NULL, 'x', 'PHONE');",
        )
        .unwrap();
    let mut a = lead(1, "a");
    a.contacts = vec![phone(1, Some("11"), "new"), phone(1, None, "x")];
    a.contacts[1].value_type = None;
    let outcome = f.load(batch(vec![a])).await;
    assert_eq!((outcome.contacts_written, outcome.contacts_deleted), (1, 2));
    let ids: Vec<i64> = f.rows("SELECT Id FROM bitrix_lead_contacts ORDER BY Id");
    assert_eq!(ids, vec![1, 3]);
}

#[tokio::test]
async fn solution_is_set_changed_and_removed() {
    let f = fixture();
    let solution = |f: &Fixture| -> Vec<(i64, i64, String)> {
        let conn = f.read();
        let mut s = conn
            .prepare("SELECT Id, sql_LEAD_ID, sql_solution FROM bitrix_lead_solution ORDER BY Id")
            .unwrap();
        let r = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        r.collect::<Result<_, _>>().unwrap()
    };
    let mut a = lead(1, "a");
    a.solution = Some("Купил".into());
    let mut b = lead(2, "b");
    b.solution = Some("Думает".into());
    f.load(batch(vec![a.clone(), b.clone(), lead(3, "c")]))
        .await;
    assert_eq!(
        solution(&f),
        vec![(1, 1, "Купил".into()), (2, 2, "Думает".into())]
    );

    a.solution = Some("Купил, Вернул".into());
    b.solution = None;
    let outcome = f.load(batch(vec![a.clone(), b])).await;
    assert_eq!(
        outcome.leads_unchanged, 2,
        "the solution is not a bitrix_leads column"
    );
    assert_eq!(solution(&f), vec![(1, 1, "Купил, Вернул".into())]);

    let mut c = lead(3, "c");
    c.solution = Some("new".into());
    f.load(batch(vec![a, c])).await;
    assert_eq!(
        solution(&f),
        vec![(1, 1, "Купил, Вернул".into()), (3, 3, "new".into())]
    );
}

type ErrorDump = (i64, Option<String>, String, String, String);

fn errors(f: &Fixture) -> Vec<ErrorDump> {
    let conn = f.read();
    let mut s = conn
        .prepare(
            "SELECT Id, sql_ID, sql_error, sql_full_lead_info, sql_date_error \
             FROM bitrix_import_lead_error ORDER BY Id",
        )
        .unwrap();
    let r = s
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap();
    r.collect::<Result<_, _>>().unwrap()
}

#[tokio::test]
async fn error_rows_follow_the_current_problems() {
    let f = fixture();
    let mut a = lead(1, "a");
    a.problems = vec![problem("TITLE")];
    let mut b = lead(2, "b");
    b.problems = vec![problem("PHONE")];
    let rejected = |id: Option<&str>, reason: &str| RejectedLead {
        lead_id: id.map(str::to_string),
        reason: reason.to_string(),
        raw_json: format!(r#"{{"ID":{id:?}}}"#),
    };
    let first = Batch {
        entity: crate::schema::LEAD,
        records: vec![a.clone(), b.clone()],
        rejected: vec![
            rejected(Some("abc"), "ID is not a number"),
            rejected(None, "no ID"),
        ],
    };
    let outcome = f
        .sink
        .load_batch(prepare(first.clone()), dt(1, 1))
        .await
        .unwrap();
    assert_eq!(outcome.error_rows, 4);
    let e1 = errors(&f);
    assert_eq!(e1.len(), 4);
    assert_eq!(e1[0].1.as_deref(), Some("abc"));
    assert_eq!(e1[1].1, None);
    assert_eq!(e1[2].1.as_deref(), Some("1"));
    assert_eq!(e1[2].2, "loaded with changes: TITLE: cut");
    assert_eq!(e1[2].3, a.raw_json);
    assert!(e1.iter().all(|e| e.4 == "2024-03-01 01:04:05"));

    // Same problems later: same rows, same first-seen dates.
    f.sink.load_batch(prepare(first), dt(5, 5)).await.unwrap();
    assert_eq!(errors(&f), e1);

    // Lead 1 loads clean, lead 2's JSON changed (same problem), abc has a new problem.
    a.problems.clear();
    b.raw_json = r#"{"ID":"2","new":true}"#.to_string();
    let third = Batch {
        entity: crate::schema::LEAD,
        records: vec![a, b.clone()],
        rejected: vec![rejected(Some("abc"), "still bad")],
    };
    let outcome = f.sink.load_batch(prepare(third), dt(7, 7)).await.unwrap();
    assert_eq!(outcome.error_rows, 2);
    let e3 = errors(&f);
    assert_eq!(e3.len(), 3);
    assert_eq!(e3[0], e1[1], "the row without a lead ID is left alone");
    assert_eq!(e3[1].0, e1[3].0);
    assert_eq!(e3[1].3, b.raw_json);
    assert_eq!(e3[1].4, "2024-03-01 01:04:05");
    assert_eq!(e3[2].1.as_deref(), Some("abc"));
    assert_eq!(e3[2].2, "still bad");
    assert_eq!(e3[2].4, "2024-03-07 07:04:05");
}

#[tokio::test]
async fn stamp_runtime_keeps_one_row_with_id_1() {
    let f = fixture();
    f.sink.stamp_runtime(dt(1, 1)).await.unwrap();
    f.sink.stamp_runtime(dt(2, 2)).await.unwrap();
    assert_eq!(
        f.dump("bitrix_lead_runtime"),
        vec![vec![
            Value::Integer(1),
            text("2024-03-02 02:04:05"),
            text("2024-03-02 02:04:05")
        ]]
    );
}

#[tokio::test]
async fn init_schema_is_idempotent() {
    let f = fixture();
    let first = f.sink.init_schema().await.unwrap();
    for expected in [
        "table bitrix_oauth",
        "table bitrix_leads",
        "table bitrix_lead_contacts",
        "table bitrix_lead_solution",
        "table bitrix_import_lead_error",
        "table bitrix_lead_runtime",
        "table b24sync_state",
        "table b24sync_migrations",
        "index ux_bitrix_leads_sql_ID",
        "index ix_bitrix_lead_contacts_lead_contact",
        "index ix_bitrix_lead_solution_lead",
        "index ix_bitrix_import_lead_error_sql_ID",
    ] {
        assert!(
            first.objects.iter().any(|c| c == expected),
            "{expected} in {:?}",
            first.objects
        );
    }
    // One line per migration for the log at INFO; the objects are the detail (debug).
    assert_eq!(
        first.created.len(),
        super::schema::known_migrations().count(),
        "{:?}",
        first.created
    );
    assert!(first.created.iter().all(|c| c.starts_with("migration ")));
    assert!(first.created.iter().any(|c| c.starts_with("migration 1 ")));
    assert!(first.warnings.is_empty());
    let second = f.sink.init_schema().await.unwrap();
    assert_eq!(second, SchemaReport::default());
    // A second sink on the same file finds everything in place too.
    let other = SqliteSink::open(&f.path).unwrap();
    assert_eq!(other.init_schema().await.unwrap(), SchemaReport::default());
    let versions: Vec<i64> = f.rows("SELECT version FROM b24sync_migrations");
    assert_eq!(
        versions,
        schema::known_migrations().map(|m| m.0).collect::<Vec<_>>()
    );
    let columns: Vec<String> = f.rows("SELECT name FROM pragma_table_info('bitrix_leads')");
    let mut expected = vec!["Id".to_string(), "sql_ID".to_string()];
    expected.extend(LEAD_COLUMNS.iter().map(|c| c.sql_name()));
    assert_eq!(columns, expected);
}

#[tokio::test]
async fn load_batch_creates_the_schema_on_first_use() {
    let f = fixture();
    assert_eq!(f.load(batch(vec![lead(1, "a")])).await.leads_inserted, 1);
    assert!(f.sink.init_schema().await.unwrap().created.is_empty());
}

#[tokio::test]
async fn a_newer_schema_version_is_refused() {
    let f = fixture();
    f.sink.init_schema().await.unwrap();
    f.read()
        .execute("INSERT INTO b24sync_migrations (version) VALUES (99)", [])
        .unwrap();
    let other = SqliteSink::open(&f.path).unwrap();
    let err = other.init_schema().await.unwrap_err().to_string();
    assert!(err.contains("newer b24sync"), "{err}");
}

#[tokio::test]
async fn duplicate_lead_rows_are_explained_with_the_fix() {
    let f = fixture();
    let conn = f.read();
    conn.execute_batch(
        sql::MIGRATION_0001
            .split("CREATE UNIQUE INDEX")
            .next()
            .unwrap(),
    )
    .unwrap();
    conn.execute_batch(
        "INSERT INTO bitrix_leads (sql_ID, sql_TITLE) VALUES
           (5, 'old'), (5, 'new'), (9, 'a'), (9, 'b'), (9, 'c'), (10, 'single');",
    )
    .unwrap();
    let err = f.sink.init_schema().await.unwrap_err();
    let StoreError::Schema(message) = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("2 lead ID(s) stored more than once"),
        "{message}"
    );
    assert!(message.contains("3 extra row(s)"), "{message}");
    assert!(message.contains("e.g. sql_ID 5, 9"), "{message}");
    assert!(
        message.contains(sql::FIX_DUPLICATE_LEADS.trim()),
        "{message}"
    );
    // Nothing of the migration was applied.
    let created: Vec<i64> = f.rows(
        "SELECT count(*) FROM sqlite_master WHERE name IN ('b24sync_migrations', 'ux_bitrix_leads_sql_ID', 'b24sync_state')",
    );
    assert_eq!(created, vec![0]);
    // load_batch reports the same instead of failing obscurely.
    let err = f
        .sink
        .load_batch(prepare(batch(vec![lead(5, "x")])), dt(1, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");

    conn.execute_batch(sql::FIX_DUPLICATE_LEADS).unwrap();
    f.sink.init_schema().await.unwrap();
    let kept: Vec<String> = f.rows("SELECT sql_TITLE FROM bitrix_leads ORDER BY sql_ID");
    assert_eq!(kept, vec!["new", "c", "single"]);
}

#[tokio::test]
async fn a_table_missing_contract_columns_is_named() {
    let f = fixture();
    f.read()
        .execute_batch(
            "CREATE TABLE bitrix_lead_solution (Id INTEGER PRIMARY KEY, sql_LEAD_ID INT);",
        )
        .unwrap();
    let err = f.sink.init_schema().await.unwrap_err().to_string();
    assert!(
        err.contains("bitrix_lead_solution lacks sql_solution"),
        "{err}"
    );
}

// 16.8: an old bitrix_leads without sql_ID is named, not reported as raw SQL.
#[tokio::test]
async fn a_leads_table_without_sql_id_is_named_not_raw_sql() {
    let f = fixture();
    f.read()
        .execute_batch("CREATE TABLE bitrix_leads (Id INTEGER PRIMARY KEY, sql_TITLE TEXT);")
        .unwrap();
    let err = f.sink.init_schema().await.unwrap_err();
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
    let err = err.to_string();
    assert!(
        err.contains("bitrix_leads lacks") && err.contains("sql_ID"),
        "{err}"
    );
    assert!(err.contains("add the columns"), "{err}");
    assert!(
        !err.contains("no such column") && !err.contains("--"),
        "{err}"
    );
}

#[tokio::test]
async fn the_run_lock_excludes_a_second_sink_until_released() {
    let f = fixture();
    let held = f.sink.lock_run(Duration::ZERO).await.unwrap();
    let again = f.sink.lock_run(Duration::ZERO).await.unwrap(); // already ours
    let other = SqliteSink::open(&f.path).unwrap();
    let started = Instant::now();
    let err = other
        .lock_run(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        matches!(&err, StoreError::LockBusy { target, .. } if *target == f.path.display().to_string()),
        "{err:?}"
    );
    again.release().await.unwrap(); // `held` still holds it
    assert!(matches!(
        other.lock_run(Duration::ZERO).await,
        Err(StoreError::LockBusy { .. })
    ));
    held.release().await.unwrap();
    let held_other = other.lock_run(Duration::from_millis(300)).await.unwrap();
    assert!(matches!(
        f.sink.lock_run(Duration::ZERO).await,
        Err(StoreError::LockBusy { .. })
    ));
    drop(held_other); // dropping the guard closes the file and so releases the lock
    f.sink.lock_run(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn lookups_by_lead_id_use_the_unique_index() {
    let f = fixture();
    f.sink.init_schema().await.unwrap();
    let conn = f.read();
    let mut stmt = conn
        .prepare("EXPLAIN QUERY PLAN SELECT * FROM bitrix_leads WHERE sql_ID = ?1")
        .unwrap();
    let plan: Vec<String> = stmt
        .query_map([42], |r| r.get("detail"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().any(|p| p.contains("ux_bitrix_leads_sql_ID")),
        "{plan:?}"
    );
}

#[tokio::test]
async fn state_values_round_trip() {
    let f = fixture();
    // A read never creates the schema (a dry run changes nothing): it says what to run.
    let err = f.sink.read_state_value("watermark").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Schema(m) if m.contains("run `b24sync init-db` first")),
        "{err:?}"
    );
    let n: Vec<i64> = f.rows("SELECT count(*) FROM sqlite_master");
    assert_eq!(n, vec![0], "the read created nothing");
    f.sink.init_schema().await.unwrap();
    assert_eq!(f.sink.read_state_value("watermark").await.unwrap(), None);
    f.sink
        .write_state_value("watermark", "2024-03-01 00:00:00")
        .await
        .unwrap();
    f.sink
        .write_state_value("watermark", "2024-03-02 00:00:00")
        .await
        .unwrap();
    assert_eq!(
        f.sink
            .read_state_value("watermark")
            .await
            .unwrap()
            .as_deref(),
        Some("2024-03-02 00:00:00")
    );
    let n: Vec<i64> = f.rows("SELECT count(*) FROM b24sync_state");
    assert_eq!(n, vec![1]);
}

#[test]
fn unopenable_paths_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no such folder").join("x.db");
    match SqliteSink::open(&missing) {
        Err(StoreError::Unreachable { target, reason }) => {
            assert_eq!(target, missing.display().to_string());
            assert!(reason.contains("does not exist"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        SqliteSink::open(dir.path()),
        Err(StoreError::Unreachable { .. })
    ));
    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        "this is not a database, just text long enough to matter",
    )
    .unwrap();
    match SqliteSink::open(&garbage) {
        Err(StoreError::Unreachable { reason, .. }) => {
            assert!(reason.contains("not a database"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let ok = SqliteSink::open(&dir.path().join("fine.db")).unwrap();
    assert_eq!(
        ok.describe(),
        dir.path().join("fine.db").display().to_string()
    );
}

/// The `sql_` identifiers of a text, in order (`sql_ID`, `s.sql_TITLE` → `sql_TITLE`, ...).
fn sql_identifiers(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("sql_") {
        let start = i + pos;
        let mut end = start + 4;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if boundary {
            out.push(&text[start..end]);
        }
        i = end;
    }
    out
}

/// The part of `text` from the line containing `from` up to the next `;`.
fn statement<'a>(text: &'a str, from: &str) -> &'a str {
    let start = text.find(from).unwrap();
    let end = start + text[start..].find(';').unwrap();
    &text[start..end]
}

#[test]
fn static_column_lists_name_exactly_the_lead_columns() {
    let data: Vec<String> = LEAD_COLUMNS.iter().map(|c| c.sql_name()).collect();
    let data: Vec<&str> = data.iter().map(String::as_str).collect();
    let with_id = |extra: &[&'static str]| -> Vec<&str> {
        let mut v = vec!["sql_ID"];
        v.extend(&data);
        v.extend(extra);
        v
    };
    assert_eq!(
        sql_identifiers(statement(
            sql::MIGRATION_0001,
            "CREATE TABLE IF NOT EXISTS bitrix_leads"
        )),
        with_id(&[])
    );
    let lead = super::entity_sql::statements(crate::schema::LEAD);
    assert_eq!(
        sql_identifiers(statement(&lead.stage_create, "stage_leads")),
        with_id(&["sql_solution"])
    );
    assert_eq!(
        sql_identifiers(&lead.stage_record),
        with_id(&["sql_solution"])
    );
    assert_eq!(lead.stage_record.matches('?').count(), data.len() + 2);

    let mut insert = with_id(&[]);
    insert.extend(with_id(&[]));
    insert.extend(["sql_ID", "sql_ID", "sql_ID"]);
    assert_eq!(sql_identifiers(&lead.records_insert), insert);

    let mut update: Vec<&str> = data.iter().flat_map(|c| [*c, *c]).collect();
    update.extend(["sql_ID", "sql_ID"]);
    update.extend(data.iter().flat_map(|c| [*c, *c]));
    assert_eq!(sql_identifiers(&lead.records_update), update);
}

#[tokio::test]
async fn batch_statements_never_scan_a_whole_table() {
    let f = fixture();
    f.sink.init_schema().await.unwrap();
    let db = lock_ignoring_poison(&f.sink.db);
    db.conn.execute_batch(sql::LOOKUP_STAGE_CREATE).unwrap();
    let mut all: Vec<(&str, &str)> = vec![
        ("solution_delete", sql::SOLUTION_DELETE),
        ("solution_update", sql::SOLUTION_UPDATE),
        ("solution_insert", sql::SOLUTION_INSERT),
    ];
    for e in crate::schema::ENTITIES {
        let s = super::entity_sql::statements(*e);
        db.conn.execute_batch(&s.stage_create).unwrap();
        all.extend([
            ("records_update", s.records_update.as_str()),
            ("records_insert", s.records_insert.as_str()),
            ("multi_delete", s.multi_delete.as_str()),
            ("multi_update", s.multi_update.as_str()),
            ("multi_insert", s.multi_insert.as_str()),
            ("phones_delete", s.phones_delete.as_str()),
            ("phones_insert", s.phones_insert.as_str()),
            ("errors_delete", s.errors_delete.as_str()),
            ("errors_update", s.errors_update.as_str()),
            ("errors_insert", s.errors_insert.as_str()),
        ]);
    }
    for (name, statement) in all {
        let mut stmt = db
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
            .unwrap();
        let params: &[&dyn ToSql] = if name == "errors_insert" {
            &[&"now"]
        } else {
            &[]
        };
        let plan: Vec<String> = stmt
            .query_map(params, |r| r.get("detail"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for line in &plan {
            if let Some(scanned) = line.strip_prefix("SCAN ") {
                assert!(
                    scanned == "s" || scanned.contains("stage_"),
                    "{name} scans {scanned}: {plan:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_large_batch_loads_and_reloads_set_based() {
    let f = fixture();
    let make = |title: &str| {
        let records = (1..=5_000)
            .map(|id| {
                let mut r = lead(id, &format!("{title} {id}"));
                r.contacts = vec![
                    phone(id, Some(&format!("{id}1")), "+7 1"),
                    phone(id, Some(&format!("{id}2")), "+7 2"),
                ];
                r
            })
            .collect();
        batch(records)
    };
    let first = f.load(make("lead")).await;
    assert_eq!(
        (first.leads_inserted, first.contacts_written),
        (5_000, 10_000)
    );
    let mut changed = make("lead");
    changed.records[10] = lead(11, "changed");
    let second = f.load(changed).await;
    assert_eq!(
        second,
        BatchOutcome {
            leads_updated: 1,
            leads_unchanged: 4_999,
            contacts_deleted: 2,
            ..Default::default()
        }
    );
}
