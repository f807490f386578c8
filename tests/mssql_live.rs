//! The SQL Server sink against a real server. Each test creates its own database
//! `b24sync_test_<random>` through master and drops it at the end.
//!
//! Every test that needs a server is `#[ignore]`d, so a plain `cargo test` reports it as
//! ignored (not as passed). Run them with an ADO.NET string whose login may create databases
//! (e.g. sa on a test server):
//!     B24SYNC_TEST_MSSQL='Server=tcp:localhost,1433;User Id=sa;Password=...;TrustServerCertificate=true' \
//!         cargo test --test mssql_live -- --include-ignored --test-threads=2
//! Asked to run without the variable, they fail saying so. Arrangements a server may refuse
//! (statistics, users, logins, KILL, ALTER COLUMN) are in `mssql_support::arrange` and fail
//! as "could not arrange: ...". The tests that need no server (a closed port) always run.

mod mssql_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use b24sync::load::mssql::{sql, MssqlOptions, MssqlSink};
use b24sync::load::{BatchOutcome, Sink, StoreError};
use b24sync::model::{Batch, Cell, LeadRecord, Problem, ProblemKind, RejectedLead};
use mssql_support::*;

fn opts() -> MssqlOptions {
    MssqlOptions {
        pool_size: 2,
        connect_timeout: Duration::from_secs(20),
        ..MssqlOptions::default()
    }
}

async fn sink(db: &TestDb) -> MssqlSink {
    MssqlSink::connect(&db.conn, opts()).await.expect("connect")
}

async fn ready_sink(db: &TestDb) -> MssqlSink {
    let s = sink(db).await;
    s.init_schema().await.expect("init_schema");
    s
}

fn batch(records: Vec<LeadRecord>) -> Batch {
    Batch {
        records,
        rejected: vec![],
    }
}

fn now() -> chrono::NaiveDateTime {
    dt(2024, 6, 1, 10, 0, 0)
}

/// (sql_ID → (Id, row)) of everything in bitrix_leads.
async fn leads(c: &mut Raw) -> BTreeMap<i32, (i32, b24sync::model::LeadRow)> {
    exec(c, &lead_select())
        .await
        .iter()
        .flatten()
        .map(|r| {
            let (id, row) = read_lead(r);
            (row.id, (id, row))
        })
        .collect()
}

/// (Id, lead, contact id, value type, value, type) of every contact row, by Id.
async fn contacts(
    c: &mut Raw,
) -> Vec<(
    i32,
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
)> {
    let s = |r: &tiberius::Row, n: &str| r.get::<&str, _>(n).map(str::to_string);
    exec(c, "SELECT Id, sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID FROM dbo.bitrix_lead_contacts ORDER BY Id")
        .await
        .iter()
        .flatten()
        .map(|r| {
            (
                r.get::<i32, _>("Id").expect("Id"),
                r.get::<i32, _>("sql_LEAD_ID").expect("lead"),
                s(r, "sql_CONTACT_ID"),
                s(r, "sql_VALUE_TYPE"),
                s(r, "sql_VALUE"),
                s(r, "sql_TYPE_ID"),
            )
        })
        .collect()
}

/// (Id, sql_ID, sql_error, json, date) of every error row, by Id.
async fn errors(c: &mut Raw) -> Vec<(i32, Option<String>, String, String, chrono::NaiveDateTime)> {
    exec(
        c,
        "SELECT Id, sql_ID, sql_error, CAST(sql_full_lead_info AS nvarchar(max)) AS info, sql_date_error \
         FROM dbo.bitrix_import_lead_error ORDER BY Id",
    )
    .await
    .iter()
    .flatten()
    .map(|r| {
        (
            r.get::<i32, _>("Id").expect("Id"),
            r.get::<&str, _>("sql_ID").map(str::to_string),
            r.get::<&str, _>("sql_error").unwrap_or_default().to_string(),
            r.get::<&str, _>("info").unwrap_or_default().to_string(),
            r.get::<chrono::NaiveDateTime, _>("sql_date_error").expect("date"),
        )
    })
    .collect()
}

#[tokio::test]
async fn unreachable_server_is_one_line_without_password() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let conn = "Server=tcp:127.0.0.1,1;Database=oktell;User Id=b24;Password=Very$ecret42;TrustServerCertificate=true";
    let err = MssqlSink::connect(
        conn,
        MssqlOptions {
            connect_timeout: Duration::from_secs(5),
            ..opts()
        },
    )
    .await
    .expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(
        text.starts_with("cannot open the database 127.0.0.1:1/oktell: "),
        "{text}"
    );
    assert!(
        !text.contains("Very$ecret42") && !text.contains('\n'),
        "{text}"
    );
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn refused_login_names_the_user_not_the_password() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let bad = format!("{};User Id=b24sync_nobody;Password=Wr0ng$ecret", db.conn);
    let err = MssqlSink::connect(&bad, opts())
        .await
        .expect_err("login must fail");
    let text = err.to_string();
    assert!(
        text.contains("login failed for user 'b24sync_nobody'"),
        "{text}"
    );
    assert!(text.contains(&format!("/{}", db.name)), "{text}");
    assert!(
        !text.contains("Wr0ng$ecret") && !text.contains('\n'),
        "{text}"
    );
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn schema_is_created_on_an_empty_database_and_init_is_idempotent() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = sink(&db).await;
    assert_eq!(s.describe().split('/').nth(1), Some(db.name.as_str()));

    // Loading before init-db is refused with what to do.
    let err = s
        .load_batch(batch(vec![lead(1, 0)]), now())
        .await
        .expect_err("not prepared");
    assert!(
        matches!(err, StoreError::Schema(_)) && err.to_string().contains("b24sync init-db"),
        "{err}"
    );

    let report = s.init_schema().await.expect("init");
    // One line for the tables (and row Id = 1), then one per migration; no more.
    let tables = format!(
        "{} table(s): {}; row Id = 1 of dbo.bitrix_lead_runtime",
        sql::SCHEMA_TABLES.len(),
        sql::SCHEMA_TABLES
            .iter()
            .map(|t| format!("dbo.{t}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut expected = vec![tables];
    expected.extend(
        sql::MIGRATIONS
            .iter()
            .map(|m| format!("migration {:04} {}", m.version, m.name)),
    );
    assert_eq!(report.created, expected);
    assert!(report.warnings.is_empty(), "{report:?}");

    let again = s.init_schema().await.expect("second init");
    assert!(
        again.created.is_empty() && again.warnings.is_empty(),
        "{again:?}"
    );

    let mut c = db.raw().await;
    // Columns as the contract says (INFORMATION_SCHEMA keeps names' case).
    let rows = exec(
        &mut c,
        "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE FROM INFORMATION_SCHEMA.COLUMNS \
         WHERE TABLE_SCHEMA = N'dbo' AND TABLE_NAME = N'bitrix_leads' ORDER BY ORDINAL_POSITION",
    )
    .await;
    let got: Vec<(String, String, Option<i32>, String)> = rows[0]
        .iter()
        .map(|r| {
            (
                r.get::<&str, _>(0).unwrap_or_default().to_string(),
                r.get::<&str, _>(1).unwrap_or_default().to_string(),
                r.get::<i32, _>(2),
                r.get::<&str, _>(3).unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(got.len(), 35);
    assert_eq!(got[0], ("Id".into(), "int".into(), None, "NO".into()));
    assert_eq!(got[1], ("sql_ID".into(), "int".into(), None, "NO".into()));
    for (c, g) in b24sync::model::LEAD_COLUMNS.iter().zip(&got[2..]) {
        assert_eq!(g.0, c.sql_name());
        assert_eq!(g.3, "YES");
        match c.kind {
            b24sync::model::ColumnKind::Text { max_chars } => {
                assert_eq!(
                    (g.1.as_str(), g.2),
                    ("nvarchar", Some(max_chars as i32)),
                    "{}",
                    g.0
                )
            }
            b24sync::model::ColumnKind::LongText => assert_eq!(g.1, "ntext"),
            _ => assert_eq!(g.1, "datetime"),
        }
    }
    // The unique index is there: a second row with the same sql_ID is refused.
    exec(&mut c, "INSERT INTO dbo.bitrix_leads (sql_ID) VALUES (42);").await;
    let dup = c
        .execute("INSERT INTO dbo.bitrix_leads (sql_ID) VALUES (42);", &[])
        .await
        .map(|_| ());
    assert!(
        matches!(
            dup.as_ref().err().and_then(|e| e.code()),
            Some(2601) | Some(2627)
        ),
        "{dup:?}"
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_migrations WHERE checksum LIKE N'fnv1a64:%'"
        )
        .await,
        sql::MIGRATIONS.len() as i32
    );
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn existing_oktell_database_with_duplicates_is_reported_then_fixed() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let mut c = db.raw().await;
    // The original layout: the six tables, no indexes, no b24sync tables.
    exec(&mut c, sql::OKTELL_TABLES).await;
    exec(&mut c, "DROP TABLE dbo.b24sync_migrations;").await;
    exec(
        &mut c,
        "INSERT INTO dbo.bitrix_oauth (client_id, domain, access_token, dateexec) VALUES (N'app.1', N'portal.bitrix24.ru', N'tok', '2024-01-01T00:00:00');
         INSERT INTO dbo.bitrix_leads (sql_ID, sql_TITLE, sql_COMMENTS) VALUES
             (1, N'one', N'c1'), (2, N'two old', N'c2'), (2, N'two new', N'c2b'), (3, N'three a', NULL),
             (3, N'three b', NULL), (3, N'three c', NULL), (4, N'four', NULL);
         INSERT INTO dbo.bitrix_lead_contacts (sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID)
             VALUES (1, N'11', N'WORK', N'+7 900', N'PHONE');
         SET IDENTITY_INSERT dbo.bitrix_lead_runtime ON;
         INSERT INTO dbo.bitrix_lead_runtime (Id, lead_list_dt) VALUES (1, '2023-12-31T23:00:00');
         SET IDENTITY_INSERT dbo.bitrix_lead_runtime OFF;",
    )
    .await;

    let s = sink(&db).await;
    let err = s
        .init_schema()
        .await
        .expect_err("duplicates block the unique index");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
    assert!(
        text.contains("2 sql_ID value(s) stored more than once (3 surplus row(s))"),
        "{text}"
    );
    assert!(
        text.contains("2 (2 rows)") && text.contains("3 (3 rows)"),
        "{text}"
    );
    assert!(
        text.contains("fix_duplicate_leads.sql") && text.contains("sqlcmd"),
        "{text}"
    );
    // Nothing was lost, and the other changes went in.
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_leads").await,
        7
    );
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_oauth").await,
        1
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_migrations WHERE version = 4"
        )
        .await,
        0
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_migrations WHERE version < 4"
        )
        .await,
        3
    );

    // The documented fix, as sqlcmd would send it (one batch, no GO).
    let removed = exec(&mut c, sql::FIX_DUPLICATE_LEADS).await;
    assert_eq!(
        removed
            .iter()
            .flatten()
            .next()
            .and_then(|r| r.get::<i32, _>(0)),
        Some(3)
    );

    let report = s.init_schema().await.expect("init after the fix");
    // 0004 and every later migration (the first init stopped at 0004).
    assert_eq!(
        report.created,
        sql::MIGRATIONS
            .iter()
            .filter(|m| m.version >= 4)
            .map(|m| format!("migration {:04} {}", m.version, m.name))
            .collect::<Vec<_>>()
    );
    let kept = exec(
        &mut c,
        "SELECT sql_ID, sql_TITLE FROM dbo.bitrix_leads ORDER BY sql_ID",
    )
    .await;
    let kept: Vec<(i32, String)> = kept[0]
        .iter()
        .map(|r| {
            (
                r.get::<i32, _>(0).unwrap_or(0),
                r.get::<&str, _>(1).unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        vec![
            (1, "one".into()),
            (2, "two new".into()),
            (3, "three c".into()),
            (4, "four".into())
        ]
    );
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_lead_contacts").await,
        1
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.bitrix_oauth WHERE access_token = N'tok'"
        )
        .await,
        1
    );

    // The loader now works on top of the old data: lead 1 keeps its Id.
    let id_before = scalar_i32(&mut c, "SELECT Id FROM dbo.bitrix_leads WHERE sql_ID = 1").await;
    let out = s
        .load_batch(batch(vec![lead(1, 0), lead(5, 0)]), now())
        .await
        .expect("load");
    assert_eq!((out.leads_inserted, out.leads_updated), (1, 1));
    assert_eq!(
        scalar_i32(&mut c, "SELECT Id FROM dbo.bitrix_leads WHERE sql_ID = 1").await,
        id_before
    );
    // Lead 1 has one contact in Bitrix24 now (id % 4 == 1): the old value 11 is replaced by 10.
    let ids: Vec<_> = contacts(&mut c)
        .await
        .into_iter()
        .filter(|r| r.1 == 1)
        .map(|r| r.2)
        .collect();
    assert_eq!(ids, vec![Some("10".to_string())]);
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn full_load_reads_back_exactly_and_reruns_change_nothing() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;

    let mut records: Vec<LeadRecord> = (1..=300).map(|id| lead(id, 0)).collect();
    let huge = "Письмо 📧 !".repeat(10_000); // 100,000 chars, 110,000 UTF-16 units
    assert_eq!(huge.chars().count(), 100_000);
    for r in records.iter_mut().filter(|r| r.lead.id % 97 == 0) {
        r.lead.cells[idx("COMMENTS")] = Cell::Text(huge.clone());
    }
    records[10].lead.cells[idx("TITLE")] = Cell::Text("😀".repeat(2000)); // 4,000 units: the column's size
    records[11].lead.cells[idx("COMMENTS")] = Cell::Text("x".repeat(32_767)); // the bulk path's limit
    records[12].lead.cells[idx("COMMENTS")] = Cell::Text("y".repeat(32_768)); // just over it

    let mut total = BatchOutcome::default();
    for chunk in records.chunks(100) {
        total.add(
            &s.load_batch(batch(chunk.to_vec()), now())
                .await
                .expect("load"),
        );
    }
    let expected_contacts: u64 = records.iter().map(|r| r.contacts.len() as u64).sum();
    assert_eq!(
        total,
        BatchOutcome {
            leads_inserted: 300,
            contacts_written: expected_contacts,
            ..BatchOutcome::default()
        }
    );

    let mut c = db.raw().await;
    let stored = leads(&mut c).await;
    assert_eq!(stored.len(), 300);
    for r in &records {
        let (_, row) = &stored[&r.lead.id];
        assert_eq!(row, &r.lead, "lead {} reads back exactly", r.lead.id);
    }
    let mut want: Vec<_> = records
        .iter()
        .flat_map(|r| {
            r.contacts
                .iter()
                .map(|k| (k.lead_id, k.contact_id.clone(), k.value.clone()))
        })
        .collect();
    want.sort();
    let mut got: Vec<_> = contacts(&mut c)
        .await
        .into_iter()
        .map(|k| (k.1, k.2, k.4))
        .collect();
    got.sort();
    assert_eq!(got, want);
    let solutions = exec(
        &mut c,
        "SELECT sql_LEAD_ID, sql_solution FROM dbo.bitrix_lead_solution ORDER BY sql_LEAD_ID",
    )
    .await;
    let solutions: Vec<(i32, String)> = solutions[0]
        .iter()
        .map(|r| {
            (
                r.get::<i32, _>(0).unwrap_or(0),
                r.get::<&str, _>(1).unwrap_or_default().to_string(),
            )
        })
        .collect();
    let want: Vec<(i32, String)> = records
        .iter()
        .filter_map(|r| r.solution.clone().map(|s| (r.lead.id, s)))
        .collect();
    assert_eq!(solutions, want);

    // Re-run: nothing changes, Ids stay.
    let ids_before: Vec<(i32, i32)> = stored.iter().map(|(k, (id, _))| (*k, *id)).collect();
    let contacts_before = contacts(&mut c).await;
    let mut again = BatchOutcome::default();
    for chunk in records.chunks(100) {
        again.add(
            &s.load_batch(batch(chunk.to_vec()), now())
                .await
                .expect("reload"),
        );
    }
    assert_eq!(
        again,
        BatchOutcome {
            leads_unchanged: 300,
            ..BatchOutcome::default()
        }
    );
    let ids_after: Vec<(i32, i32)> = leads(&mut c)
        .await
        .iter()
        .map(|(k, (id, _))| (*k, *id))
        .collect();
    assert_eq!(ids_after, ids_before);
    assert_eq!(contacts(&mut c).await, contacts_before);

    // Changes that a case-insensitive, trailing-space-blind comparison would miss count too.
    let mut changed = vec![
        records[0].clone(),
        records[1].clone(),
        records[2].clone(),
        records[95].clone(),
    ];
    changed[0].lead.cells[idx("NAME")] = Cell::Text("IVAN".into());
    changed[1].lead.cells[idx("NAME")] = Cell::Text("ivan".into());
    let out = s
        .load_batch(batch(changed[..2].to_vec()), now())
        .await
        .expect("load");
    assert_eq!(out.leads_updated, 2);
    let out = s
        .load_batch(batch(changed[..2].to_vec()), now())
        .await
        .expect("load");
    assert_eq!(out.leads_updated, 0, "same values again");
    changed[0].lead.cells[idx("NAME")] = Cell::Text("ivan".into());
    changed[1].lead.cells[idx("NAME")] = Cell::Text("ivan ".into());
    changed[2].lead.cells[idx("DATE_MODIFY")] = Cell::DateTime(dt(2030, 1, 1, 0, 0, 1));
    changed[3].lead.cells[idx("COMMENTS")] = Cell::Text(format!("{huge}!"));
    changed[3].solution = None;
    let out = s
        .load_batch(batch(changed.clone()), now())
        .await
        .expect("load");
    assert_eq!((out.leads_updated, out.leads_unchanged), (4, 0));
    let stored = leads(&mut c).await;
    for r in &changed {
        assert_eq!(stored[&r.lead.id].1, r.lead);
    }
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.bitrix_lead_solution WHERE sql_LEAD_ID = 96"
        )
        .await,
        0
    );
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn removed_and_changed_contact_values_are_replaced() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut r = lead(7, 0); // 3 values: 70, 71, 72
    assert_eq!(r.contacts.len(), 3);
    s.load_batch(batch(vec![r.clone()]), now())
        .await
        .expect("load");
    let mut c = db.raw().await;
    let before = contacts(&mut c).await;
    // An extra copy of value 70, as the original scripts could leave.
    exec(
        &mut c,
        "INSERT INTO dbo.bitrix_lead_contacts (sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID) \
         VALUES (7, N'70', N'WORK', N'+7 (900) 000-07-00', N'PHONE');",
    )
    .await;

    r.contacts.remove(2); // 72 removed in Bitrix24
    r.contacts[1].value = Some("+7 (900) 999-99-99".into()); // 71 changed
    let out = s
        .load_batch(batch(vec![r.clone()]), now())
        .await
        .expect("load");
    assert_eq!(
        (out.contacts_deleted, out.contacts_written),
        (2, 1),
        "72 and the extra copy; 71"
    );
    let after = contacts(&mut c).await;
    assert_eq!(after.len(), 2);
    assert_eq!(after[0], before[0], "70 untouched, same Id");
    assert_eq!(after[1].0, before[1].0, "71 updated in place");
    assert_eq!(after[1].4.as_deref(), Some("+7 (900) 999-99-99"));

    // All values removed: none left. Other leads' values are not touched.
    s.load_batch(batch(vec![lead(5, 0)]), now())
        .await
        .expect("load");
    r.contacts.clear();
    let out = s.load_batch(batch(vec![r]), now()).await.expect("load");
    assert_eq!(out.contacts_deleted, 2);
    let left = contacts(&mut c).await;
    assert!(left.iter().all(|k| k.1 == 5) && left.len() == 1, "{left:?}");
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn error_rows_follow_the_contract() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut c = db.raw().await;

    let mut with_problem = lead(3, 0);
    with_problem.problems.push(Problem {
        field: "TITLE".into(),
        kind: ProblemKind::Truncated,
        detail: "5,120 characters; the column holds 4,000: stored the first 4,000".into(),
    });
    with_problem.raw_json = format!("{{\"ID\":\"3\",\"COMMENTS\":\"{}\"}}", "ж".repeat(60_000)); // long JSON
    let no_id = RejectedLead {
        lead_id: None,
        reason: "no ID".into(),
        raw_json: "{\"TITLE\":\"x\"}".into(),
    };
    let b = Batch {
        records: vec![with_problem.clone(), lead(4, 0)],
        rejected: vec![no_id.clone()],
    };
    let out = s.load_batch(b.clone(), now()).await.expect("load");
    assert_eq!((out.leads_inserted, out.error_rows), (2, 2));
    let first = errors(&mut c).await;
    assert_eq!(first.len(), 2);
    // Batch::error_rows lists rejected leads first, and new rows get Ids in that order.
    assert_eq!(first[0].1, None);
    assert_eq!(first[0].3, no_id.raw_json);
    assert_eq!(first[1].1.as_deref(), Some("3"));
    assert!(
        first[1].2.starts_with("loaded with changes: TITLE: "),
        "{}",
        first[1].2
    );
    assert_eq!(first[1].3, with_problem.raw_json, "long JSON stored whole");
    assert_eq!(first[1].4, now());

    // Same batch later: rows kept as they were (Id and first-seen date).
    let later = dt(2024, 6, 2, 10, 0, 0);
    let out = s.load_batch(b, later).await.expect("reload");
    assert_eq!(out.error_rows, 2);
    assert_eq!(errors(&mut c).await, first);

    // A new problem adds a row, the old one goes; then the lead loads cleanly: no rows left.
    let mut other = with_problem.clone();
    other.problems[0] = Problem {
        field: "BIRTHDATE".into(),
        kind: ProblemKind::Unparseable,
        detail: "'31.02' is not a date".into(),
    };
    s.load_batch(batch(vec![other]), later).await.expect("load");
    let rows: Vec<_> = errors(&mut c)
        .await
        .into_iter()
        .filter(|e| e.1.as_deref() == Some("3"))
        .collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].2.contains("BIRTHDATE") && rows[0].4 == later);
    let out = s
        .load_batch(batch(vec![lead(3, 0)]), later)
        .await
        .expect("clean");
    assert_eq!(out.error_rows, 0);
    assert!(errors(&mut c)
        .await
        .iter()
        .all(|e| e.1.as_deref() != Some("3")));
    assert_eq!(errors(&mut c).await.len(), 1, "the row without an ID stays");
}

/// (seeks, scans) per index of bitrix_import_lead_error: `true` for the clustered primary key,
/// `false` for the index on sql_ID (migration 0007). Reading usage needs VIEW SERVER STATE.
async fn error_index_usage(c: &mut Raw) -> BTreeMap<bool, (i64, i64)> {
    let sets = arrange::arrange(
        c,
        "reading sys.dm_db_index_usage_stats",
        "SELECT i.type AS kind, LOWER(i.name) AS name, \
                CAST(ISNULL(u.user_seeks, 0) AS bigint) AS seeks, CAST(ISNULL(u.user_scans, 0) AS bigint) AS scans \
         FROM sys.indexes AS i \
         LEFT JOIN sys.dm_db_index_usage_stats AS u \
                ON u.object_id = i.object_id AND u.index_id = i.index_id AND u.database_id = DB_ID() \
         WHERE i.object_id = OBJECT_ID(N'dbo.bitrix_import_lead_error');",
    )
    .await;
    let mut out = BTreeMap::new();
    for r in sets.iter().flatten() {
        let clustered = r.get::<u8, _>("kind") == Some(1);
        let name = r.get::<&str, _>("name").unwrap_or_default();
        if clustered || names(name, "IX_bitrix_import_lead_error_sql_ID") {
            out.insert(
                clustered,
                (
                    r.get::<i64, _>("seeks").unwrap_or(0),
                    r.get::<i64, _>("scans").unwrap_or(0),
                ),
            );
        }
    }
    assert_eq!(
        out.len(),
        2,
        "the primary key and the sql_ID index: {out:?}"
    );
    out
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn a_batch_seeks_its_error_rows_instead_of_scanning_the_table() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut c = db.raw().await;
    // A grown error table: 20,000 rows of other leads.
    arrange::arrange(
        &mut c,
        "20,000 error rows",
        "WITH n AS (SELECT TOP (20000) ROW_NUMBER() OVER (ORDER BY (SELECT NULL)) AS i \
                    FROM sys.all_columns AS a CROSS JOIN sys.all_columns AS b) \
         INSERT INTO dbo.bitrix_import_lead_error (sql_ID, sql_error, sql_full_lead_info, sql_date_error) \
         SELECT CONVERT(nvarchar(20), 100000 + i), N'old problem', N'{}', '2024-01-01T00:00:00' FROM n;",
    )
    .await;
    arrange::update_statistics(&mut c, "dbo.bitrix_import_lead_error").await;
    let before = error_index_usage(&mut c).await;
    let records: Vec<LeadRecord> = (1..=20)
        .map(|id| with_problem(id, &format!("problem of {id}")))
        .collect();
    for _ in 0..2 {
        // First inserts the error rows, then finds and keeps them.
        s.load_batch(batch(records.clone()), now())
            .await
            .expect("load");
    }
    let delete: Vec<i32> = (1..=5).collect();
    s.delete_leads(delete).await.expect("delete");
    let after = error_index_usage(&mut c).await;
    assert!(
        after[&false].0 > before[&false].0,
        "the index on sql_ID was sought: {before:?} -> {after:?}"
    );
    assert_eq!(
        after[&true].1, before[&true].1,
        "no scan of the whole error table: {before:?} -> {after:?}"
    );
    assert_eq!(errors(&mut c).await.len(), 20_000 + 15);
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn a_row_the_server_rejects_is_isolated_and_the_rest_loads() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut c = db.raw().await;
    // Something the loader cannot foresee: a DBA's CHECK constraint.
    exec(&mut c, "ALTER TABLE dbo.bitrix_leads ADD CONSTRAINT CK_test_no_reject CHECK (sql_TITLE IS NULL OR sql_TITLE NOT LIKE N'%REJECT%');").await;

    let mut records: Vec<LeadRecord> = (1..=64).map(|id| lead(id, 0)).collect();
    records[17].lead.cells[idx("TITLE")] = Cell::Text("please REJECT me".into());
    records[50].lead.cells[idx("TITLE")] = Cell::Text("REJECT too".into());
    let out = s
        .load_batch(batch(records.clone()), now())
        .await
        .expect("the batch survives");
    assert_eq!(out.leads_inserted, 62);
    assert_eq!(out.error_rows, 2);
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_leads").await,
        62
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.bitrix_leads WHERE sql_ID IN (18, 51)"
        )
        .await,
        0
    );
    let errs = errors(&mut c).await;
    let ids: Vec<_> = errs
        .iter()
        .map(|e| e.1.clone().unwrap_or_default())
        .collect();
    assert_eq!(ids, vec!["18".to_string(), "51".to_string()]);
    for e in &errs {
        assert!(
            e.2.contains("SQL Server rejected the lead") && names(&e.2, "CK_test_no_reject"),
            "{}",
            e.2
        );
        assert!(e.3.contains("\"ID\""), "the lead's JSON is kept");
    }
    // The rejected leads' contacts were not written either.
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.bitrix_lead_contacts WHERE sql_LEAD_ID IN (18, 51)"
        )
        .await,
        0
    );

    // Fixed in Bitrix24: it loads and its error row goes.
    records[17].lead.cells[idx("TITLE")] = Cell::Text("fine now".into());
    let out = s
        .load_batch(batch(vec![records[17].clone()]), now())
        .await
        .expect("load");
    assert_eq!(out.leads_inserted, 1);
    assert_eq!(errors(&mut c).await.len(), 1);
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn one_run_at_a_time() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let a = ready_sink(&db).await;
    let b = sink(&db).await;
    a.lock_run(Duration::from_secs(1))
        .await
        .expect("first run gets the lock");
    a.lock_run(Duration::from_secs(1))
        .await
        .expect("taking it again is a no-op");

    let started = Instant::now();
    let err = b
        .lock_run(Duration::from_millis(1500))
        .await
        .expect_err("second run waits, then gives up");
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "waited {:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, StoreError::LockBusy { waited_secs: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&db.name));

    // The holder can still load while it holds the lock (the lock is on its own connection).
    a.load_batch(batch(vec![lead(1, 0)]), now())
        .await
        .expect("load under the lock");

    a.unlock_run().await.expect("unlock");
    a.unlock_run().await.expect("unlock again is a no-op");
    b.lock_run(Duration::from_secs(1)).await.expect("free now");
    b.unlock_run().await.expect("unlock");

    // A sink that goes away without unlocking frees the lock with its connection.
    a.lock_run(Duration::from_secs(1)).await.expect("lock");
    drop(a);
    b.lock_run(Duration::from_secs(10))
        .await
        .expect("freed when the holder's session ended");
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn a_run_whose_lock_session_died_commits_nothing_more() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let a = ready_sink(&db).await;
    a.lock_run(Duration::from_secs(5)).await.expect("lock");
    a.load_batch(batch(vec![lead(1, 0)]), now())
        .await
        .expect("load under the lock");
    a.write_state("test.key", "before").await.expect("state");
    let spid = a.run_lock_session().expect("the lock's session is known");

    // The lock's session ends (a DBA's KILL, a server-side timeout, a dropped connection).
    let mut c = db.raw().await;
    arrange::kill_session(&mut c, spid).await;

    // Another run may take the lock now, and does.
    let b = ready_sink(&db).await;
    b.lock_run(Duration::from_secs(10))
        .await
        .expect("the lock went with its session");

    // The first run finds out at its next write, and nothing of it is committed.
    let err = a
        .load_batch(batch(vec![lead(2, 0)]), now())
        .await
        .expect_err("the run lock was lost");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
    assert!(
        text.contains("run lock") && text.contains("was lost"),
        "{text}"
    );
    for (what, result) in [
        ("state", a.write_state("test.key", "after").await),
        ("stamp", a.stamp_runtime(now()).await),
        ("deletion", a.delete_leads(vec![1]).await.map(|_| ())),
    ] {
        let err = result.expect_err(what);
        assert!(err.to_string().contains("was lost"), "{what}: {err}");
    }
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.bitrix_leads WHERE sql_ID = 2"
        )
        .await,
        0,
        "the batch after the loss was rolled back"
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.bitrix_leads WHERE sql_ID = 1"
        )
        .await,
        1,
        "the deletion after the loss was rolled back"
    );
    assert_eq!(
        b.read_state("test.key").await.expect("read").as_deref(),
        Some("before")
    );
    // The new holder writes normally.
    b.load_batch(batch(vec![lead(3, 0)]), now())
        .await
        .expect("the new holder loads");
    b.unlock_run().await.expect("unlock");
    a.unlock_run()
        .await
        .expect("unlocking a lost lock is quiet");
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn a_transaction_in_flight_when_the_lock_goes_commits_before_the_next_run() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let a = ready_sink(&db).await;
    a.lock_run(Duration::from_secs(5)).await.expect("lock");
    let spid = a.run_lock_session().expect("session");
    let mut c = db.raw().await;
    // Hold a write transaction of the run open by hand: it took the shared write lock the
    // way lock_guard.sql does. While it is open, a new run gets the run lock only after it.
    let mut tx = db.raw().await;
    exec(
        &mut tx,
        "BEGIN TRANSACTION; EXEC sp_getapplock @Resource = N'b24sync:writes', @LockMode = N'Shared', @LockOwner = N'Transaction', @LockTimeout = 1000;",
    )
    .await;
    arrange::kill_session(&mut c, spid).await;
    let b = sink(&db).await;
    let err = b
        .lock_run(Duration::from_millis(1500))
        .await
        .expect_err("the barrier waits for the transaction in flight");
    assert!(matches!(err, StoreError::LockBusy { .. }), "{err:?}");
    exec(&mut tx, "COMMIT TRANSACTION;").await;
    b.lock_run(Duration::from_secs(5))
        .await
        .expect("free once it committed");
    b.unlock_run().await.expect("unlock");
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn runtime_row_one_is_stamped() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut c = db.raw().await;
    // init-db created row 1, empty; the stamp only updates it.
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.bitrix_lead_runtime WHERE Id = 1 AND lead_list_dt IS NULL"
        )
        .await,
        1
    );
    s.stamp_runtime(dt(2024, 6, 1, 10, 0, 0))
        .await
        .expect("first stamp");
    s.stamp_runtime(dt(2024, 6, 1, 11, 30, 15))
        .await
        .expect("second updates it");
    let rows = exec(
        &mut c,
        "SELECT Id, lead_get_by_id_dt, lead_list_dt FROM dbo.bitrix_lead_runtime",
    )
    .await;
    assert_eq!(rows[0].len(), 1);
    let r = &rows[0][0];
    assert_eq!(r.get::<i32, _>(0), Some(1));
    assert_eq!(
        r.get::<chrono::NaiveDateTime, _>(1),
        Some(dt(2024, 6, 1, 11, 30, 15))
    );
    assert_eq!(
        r.get::<chrono::NaiveDateTime, _>(2),
        Some(dt(2024, 6, 1, 11, 30, 15))
    );
    // IDENTITY_INSERT was switched off again: a plain insert still works.
    exec(
        &mut c,
        "INSERT INTO dbo.bitrix_lead_runtime (lead_list_dt) VALUES (NULL);",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn many_batches_on_a_small_pool() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    // Concurrent inserts into one table can deadlock on key-range locks; the sink retries.
    let s = MssqlSink::connect(
        &db.conn,
        MssqlOptions {
            deadlock_retries: 10,
            ..opts()
        },
    )
    .await
    .expect("connect");
    s.init_schema().await.expect("init");
    let s = std::sync::Arc::new(s);
    // Concurrent batches on separate leads: each batch has its own connection and staging
    // tables, so they do not see each other's rows.
    let mut tasks = Vec::new();
    for k in 0..6 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let records: Vec<_> = (1..=50).map(|i| lead(k * 1000 + i, 0)).collect();
            s.load_batch(batch(records), now()).await
        }));
    }
    let mut total = BatchOutcome::default();
    for t in tasks {
        total.add(&t.await.expect("task").expect("load"));
    }
    assert_eq!(total.leads_inserted, 300);
    let mut c = db.raw().await;
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_leads").await,
        300
    );
}

/// (Id, lead, solution) of every solution row, by Id.
async fn solutions(c: &mut Raw) -> Vec<(i32, i32, String)> {
    exec(
        c,
        "SELECT Id, sql_LEAD_ID, sql_solution FROM dbo.bitrix_lead_solution ORDER BY Id",
    )
    .await
    .iter()
    .flatten()
    .map(|r| {
        (
            r.get::<i32, _>(0).expect("Id"),
            r.get::<i32, _>(1).expect("lead"),
            r.get::<&str, _>(2).unwrap_or_default().to_string(),
        )
    })
    .collect()
}

/// A lead that loads with a problem, so the batch leaves an error row for it.
fn with_problem(id: i32, detail: &str) -> LeadRecord {
    let mut r = lead(id, 0);
    r.problems.push(Problem {
        field: "TITLE".into(),
        kind: ProblemKind::Truncated,
        detail: detail.into(),
    });
    r
}

/// A lead the transform refused, with or without an ID: only an error row.
fn rejected(id: Option<&str>, why: &str) -> RejectedLead {
    RejectedLead {
        lead_id: id.map(str::to_string),
        reason: why.into(),
        raw_json: format!("{{\"ID\":\"{}\"}}", id.unwrap_or("")),
    }
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn state_round_trips_and_is_overwritten() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = sink(&db).await;
    // Before init-db the state table may not exist: a clear message, not "Invalid object name".
    let err = s.read_state("watermark").await.expect_err("not prepared");
    assert!(
        matches!(err, StoreError::Schema(_)) && err.to_string().contains("b24sync init-db"),
        "{err}"
    );
    s.init_schema().await.expect("init");
    let mut c = db.raw().await;

    assert_eq!(s.read_state("watermark").await.expect("read"), None);
    s.write_state("watermark", "2024-06-01T10:00:00+03:00")
        .await
        .expect("insert");
    assert_eq!(
        s.read_state("watermark").await.expect("read").as_deref(),
        Some("2024-06-01T10:00:00+03:00")
    );
    s.write_state("watermark", "2024-06-02T11:30:15+03:00")
        .await
        .expect("overwrite");
    assert_eq!(
        s.read_state("watermark").await.expect("read").as_deref(),
        Some("2024-06-02T11:30:15+03:00")
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_state WHERE name = N'watermark'"
        )
        .await,
        1,
        "overwritten in place, not added"
    );
    // updated_at is UTC now (the server's clock, so no skew with this machine's).
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_state WHERE name = N'watermark' \
             AND ABS(DATEDIFF(second, updated_at, SYSUTCDATETIME())) < 300"
        )
        .await,
        1
    );

    // Other names are independent; awkward values come back exactly, including one longer
    // than 4,000 characters (sent as nvarchar(max)) and the empty string (not NULL).
    let long = format!("«{}» 'quoted' \"too\" 😀", "Ж".repeat(10_000));
    s.write_state("runs_since_deletion_check", "0")
        .await
        .expect("write");
    s.write_state("long", &long).await.expect("write long");
    s.write_state("empty", "").await.expect("write empty");
    assert_eq!(
        s.read_state("long").await.expect("read").as_deref(),
        Some(long.as_str())
    );
    assert_eq!(
        s.read_state("empty").await.expect("read").as_deref(),
        Some("")
    );
    assert_eq!(
        s.read_state("runs_since_deletion_check")
            .await
            .expect("read")
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        s.read_state("watermark").await.expect("read").as_deref(),
        Some("2024-06-02T11:30:15+03:00")
    );
    // Names compare by the database's collation (usually case-insensitive, trailing spaces
    // ignored): whatever it is, the sink answers as a direct query does.
    let direct = exec(
        &mut c,
        "SELECT value FROM dbo.b24sync_state WHERE name = N'WATERMARK '",
    )
    .await
    .iter()
    .flatten()
    .next()
    .and_then(|r| r.get::<&str, _>(0).map(str::to_string));
    assert_eq!(s.read_state("WATERMARK ").await.expect("read"), direct);

    // Writers racing on a new name: all succeed, one row, one of their values.
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for k in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.write_state("raced", &format!("v{k}")).await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("concurrent write");
    }
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_state WHERE name = N'raced'"
        )
        .await,
        1
    );
    let raced = s.read_state("raced").await.expect("read");
    assert!(
        matches!(raced.as_deref(), Some("v0" | "v1" | "v2" | "v3")),
        "{raced:?}"
    );
    // No transaction (and so no lock) was left open on the pooled connections: another session
    // can update every row at once. (Locks, not the DMVs, which need VIEW SERVER STATE.)
    exec(
        &mut c,
        "SET LOCK_TIMEOUT 5000; UPDATE dbo.b24sync_state SET updated_at = updated_at; SET LOCK_TIMEOUT -1;",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn lead_ids_lists_every_stored_lead() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    assert_eq!(s.lead_ids().await.expect("ids"), Vec::<i32>::new());
    s.load_batch(batch(vec![lead(5, 0), lead(1, 0), lead(3, 0)]), now())
        .await
        .expect("load");
    // A lead that only has an error row (rejected) is not a stored lead.
    s.load_batch(
        Batch {
            records: (1000..1250).map(|id| lead(id, 0)).collect(),
            rejected: vec![rejected(Some("77"), "not loaded: test")],
        },
        now(),
    )
    .await
    .expect("load");
    let mut want = vec![1, 3, 5];
    want.extend(1000..1250);
    assert_eq!(s.lead_ids().await.expect("ids"), want, "sorted, each once");
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn delete_leads_removes_exactly_those_leads_and_their_rows() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut c = db.raw().await;

    // Leads 1..=8: contacts for id % 4 != 0, a solution for even ids; 2, 3 and 5 have an error
    // row; a rejected lead 99 (error row, no lead) and one without an ID.
    let mut records: Vec<LeadRecord> = (1..=8).map(|id| lead(id, 0)).collect();
    for id in [2, 3, 5] {
        records[id - 1] = with_problem(id as i32, &format!("problem of {id}"));
    }
    let out = s
        .load_batch(
            Batch {
                records: records.clone(),
                rejected: vec![
                    rejected(Some("99"), "not loaded: 99"),
                    rejected(None, "no ID"),
                ],
            },
            now(),
        )
        .await
        .expect("load");
    assert_eq!((out.leads_inserted, out.error_rows), (8, 5));
    // Rows the original scripts could leave: a contact and a solution of a lead that is not
    // in bitrix_leads (99), and an extra copy of lead 6's solution.
    exec(
        &mut c,
        "INSERT INTO dbo.bitrix_lead_contacts (sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID) \
             VALUES (99, N'990', N'WORK', N'+7 999', N'PHONE');
         INSERT INTO dbo.bitrix_lead_solution (sql_LEAD_ID, sql_solution) VALUES (99, N'x'), (6, N'copy');",
    )
    .await;

    let leads_before = leads(&mut c).await;
    let contacts_before = contacts(&mut c).await;
    let errors_before = errors(&mut c).await;
    let solutions_before = solutions(&mut c).await;

    assert_eq!(s.delete_leads(vec![]).await.expect("nothing to delete"), 0);

    // 2, 3, 6 are stored; 3 is listed twice; 99 has only dependent rows; the 2,000 IDs
    // from 10,000 exist nowhere (they make the bulk path carry more than one packet).
    let gone = [2, 3, 6, 99];
    let mut ids = vec![3, 2, 3, 6, 99];
    ids.extend(10_000..12_000);
    let deleted = s.delete_leads(ids).await.expect("delete");
    assert_eq!(deleted, 3, "bitrix_leads rows deleted");

    let kept = |lead: i32| !gone.contains(&lead);
    let leads_after = leads(&mut c).await;
    let want: BTreeMap<_, _> = leads_before
        .into_iter()
        .filter(|(id, _)| kept(*id))
        .collect();
    assert_eq!(
        leads_after, want,
        "the others untouched (same Ids, same values)"
    );
    assert_eq!(s.lead_ids().await.expect("ids"), vec![1, 4, 5, 7, 8]);

    let want: Vec<_> = contacts_before.into_iter().filter(|k| kept(k.1)).collect();
    assert!(!want.is_empty());
    assert_eq!(contacts(&mut c).await, want);

    let want: Vec<_> = solutions_before.into_iter().filter(|o| kept(o.1)).collect();
    assert_eq!(
        want.iter().map(|o| o.1).collect::<Vec<_>>(),
        vec![4, 8],
        "only the kept leads' solutions"
    );
    assert_eq!(solutions(&mut c).await, want);

    let want: Vec<_> = errors_before
        .into_iter()
        .filter(|e| match e.1.as_deref() {
            Some(id) => kept(id.parse().expect("numeric ID")),
            None => true, // no lead to tie it to: never deleted
        })
        .collect();
    assert_eq!(
        want.iter().map(|e| e.1.clone()).collect::<Vec<_>>(),
        vec![None, Some("5".to_string())]
    );
    assert_eq!(errors(&mut c).await, want);

    // Deleting again: nothing left to delete; the staging table was dropped and is recreated.
    assert_eq!(s.delete_leads(vec![2, 3]).await.expect("again"), 0);
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn delete_leads_is_one_transaction() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut c = db.raw().await;
    s.load_batch(
        batch(vec![
            with_problem(1, "p1"),
            lead(2, 0),
            with_problem(5, "p5"),
        ]),
        now(),
    )
    .await
    .expect("load");
    // Something the loader cannot foresee makes the last DELETE (bitrix_leads) fail: a DBA's
    // table referencing lead 5 (the unique index on sql_ID can be referenced).
    exec(
        &mut c,
        "CREATE TABLE dbo.test_pin (sql_ID int NOT NULL CONSTRAINT FK_test_pin REFERENCES dbo.bitrix_leads (sql_ID));
         INSERT INTO dbo.test_pin (sql_ID) VALUES (5);",
    )
    .await;
    let leads_before = leads(&mut c).await;
    let contacts_before = contacts(&mut c).await;
    let errors_before = errors(&mut c).await;
    assert!(contacts_before.iter().any(|k| k.1 == 1) && contacts_before.iter().any(|k| k.1 == 5));
    assert_eq!(errors_before.len(), 2);

    let err = s
        .delete_leads(vec![1, 5])
        .await
        .expect_err("the foreign key refuses deleting lead 5");
    assert!(
        matches!(err, StoreError::Database { .. }) && names(&err.to_string(), "FK_test_pin"),
        "{err}"
    );
    // Nothing went, not even lead 1's rows deleted before the failing statement.
    assert_eq!(leads(&mut c).await, leads_before);
    assert_eq!(contacts(&mut c).await, contacts_before);
    assert_eq!(errors(&mut c).await, errors_before);
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_lead_solution").await,
        1,
        "lead 2's solution"
    );

    // The pooled connection went back clean: the sink keeps working.
    exec(&mut c, "DROP TABLE dbo.test_pin;").await;
    assert_eq!(s.delete_leads(vec![1, 5]).await.expect("delete"), 2);
    assert_eq!(s.lead_ids().await.expect("ids"), vec![2]);
    assert!(errors(&mut c).await.is_empty());
    assert!(contacts(&mut c).await.iter().all(|k| k.1 == 2));
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn error_rows_are_listed_with_dates_and_cleared_by_date() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut c = db.raw().await;
    assert!(s.error_rows().await.expect("list").is_empty());

    let (t1, t2, t3) = (
        dt(2024, 6, 1, 10, 0, 0),
        dt(2024, 6, 2, 10, 0, 0),
        dt(2024, 6, 3, 23, 59, 59),
    );
    s.load_batch(batch(vec![with_problem(1, "first")]), t1)
        .await
        .expect("load");
    s.load_batch(
        Batch {
            records: vec![with_problem(2, "second")],
            rejected: vec![rejected(Some("abc"), "not loaded: ID is not a number")],
        },
        t2,
    )
    .await
    .expect("load");
    s.load_batch(
        Batch {
            records: vec![],
            rejected: vec![rejected(None, "no ID")],
        },
        t3,
    )
    .await
    .expect("load");
    // A row written by someone else without a date.
    exec(
        &mut c,
        "INSERT INTO dbo.bitrix_import_lead_error (sql_ID, sql_error, sql_full_lead_info, sql_date_error) \
         VALUES (N'7', N'hand-made', N'{}', NULL);",
    )
    .await;

    let rows = s.error_rows().await.expect("list");
    let raw = errors(&mut c).await;
    assert_eq!(rows.len(), 5);
    // Oldest first, by Id; each field as stored.
    let ids: Vec<i64> = rows.iter().map(|r| r.row_id).collect();
    let raw_ids: Vec<i64> = raw.iter().map(|e| i64::from(e.0)).collect();
    assert_eq!(ids, raw_ids);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let summary: Vec<_> = rows.iter().map(|r| (r.lead_id.as_deref(), r.at)).collect();
    assert_eq!(
        summary,
        vec![
            (Some("1"), Some(t1)),
            (Some("abc"), Some(t2)),
            (Some("2"), Some(t2)),
            (None, Some(t3)),
            (Some("7"), None),
        ]
    );
    assert_eq!(
        rows[0].reason.as_deref(),
        Some("loaded with changes: TITLE: first")
    );
    assert_eq!(
        rows[1].reason.as_deref(),
        Some("not loaded: ID is not a number")
    );
    assert_eq!(rows[4].reason.as_deref(), Some("hand-made"));

    // Strictly before: the rows of t2 itself stay; undated rows are never cleared by date.
    assert_eq!(
        s.clear_errors(dt(2024, 1, 1, 0, 0, 0))
            .await
            .expect("clear"),
        0
    );
    assert_eq!(s.clear_errors(t2).await.expect("clear"), 1);
    let left: Vec<_> = s
        .error_rows()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.lead_id)
        .collect();
    assert_eq!(
        left,
        vec![
            Some("abc".to_string()),
            Some("2".to_string()),
            None,
            Some("7".to_string())
        ]
    );
    assert_eq!(
        s.clear_errors(t2 + chrono::Duration::seconds(1))
            .await
            .expect("clear"),
        2
    );
    assert_eq!(
        s.clear_errors(dt(2030, 1, 1, 0, 0, 0))
            .await
            .expect("clear"),
        1
    );
    let left = s.error_rows().await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].lead_id.as_deref(), left[0].at), (Some("7"), None));
    // The other tables are not touched.
    assert_eq!(s.lead_ids().await.expect("ids"), vec![1, 2]);
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn error_review_works_before_init_db() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let mut c = db.raw().await;
    // An Oktell database as the original scripts left it: no b24sync migrations applied.
    exec(&mut c, sql::OKTELL_TABLES).await;
    exec(
        &mut c,
        "INSERT INTO dbo.bitrix_import_lead_error (sql_ID, sql_error, sql_full_lead_info, sql_date_error) \
         VALUES (N'12', N'old', N'{}', '2023-03-04T05:06:07');",
    )
    .await;
    let s = sink(&db).await;
    let rows = s.error_rows().await.expect("list");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].lead_id.as_deref(), Some("12"));
    assert_eq!(rows[0].at, Some(dt(2023, 3, 4, 5, 6, 7)));
    assert_eq!(
        s.clear_errors(dt(2024, 1, 1, 0, 0, 0))
            .await
            .expect("clear"),
        1
    );
    // The deletion check, though, needs init-db (it relies on sql_ID being unique).
    let err = s.lead_ids().await.expect_err("not prepared");
    assert!(err.to_string().contains("b24sync init-db"), "{err}");
}

// ---- dry-run preview, run history, doctor, OAuth token store ----

/// Everything the preview must leave alone, read back in full.
async fn snapshot(c: &mut Raw) -> String {
    let state = exec(c, "SELECT name, value FROM dbo.b24sync_state ORDER BY name")
        .await
        .iter()
        .flatten()
        .map(|r| {
            format!(
                "{}={}",
                r.get::<&str, _>(0).unwrap_or_default(),
                r.get::<&str, _>(1).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        leads(c).await,
        contacts(c).await,
        solutions(c).await,
        errors(c).await,
        state
    )
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn preview_reports_what_the_load_then_does_and_changes_nothing() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut c = db.raw().await;
    s.write_state("watermark", "w1").await.expect("state");
    s.load_batch(batch((1..=20).map(|id| lead(id, 0)).collect()), now())
        .await
        .expect("first load");
    // A row the server rejects, so the preview bisects like the load does.
    exec(&mut c, "ALTER TABLE dbo.bitrix_leads ADD CONSTRAINT CK_test_no_reject CHECK (sql_TITLE IS NULL OR sql_TITLE NOT LIKE N'%REJECT%');").await;

    let next = || {
        let mut records: Vec<LeadRecord> = (1..=30)
            .map(|id| lead(id, if id % 3 == 0 { 1 } else { 0 }))
            .collect();
        records[4].contacts.clear(); // lead 5 loses its value
        records[24].lead.cells[idx("TITLE")] = Cell::Text("please REJECT me".into());
        records.push(with_problem(31, "cut"));
        Batch {
            records,
            rejected: vec![RejectedLead {
                lead_id: Some("32".into()),
                reason: "no TITLE".into(),
                raw_json: "{\"ID\":\"32\"}".into(),
            }],
        }
    };
    let before = snapshot(&mut c).await;
    let preview = s.preview_batch(next(), now()).await.expect("preview");
    assert_eq!(snapshot(&mut c).await, before, "the preview changed data");
    assert_eq!(
        s.preview_batch(next(), now()).await.expect("again"),
        preview,
        "a second preview sees the same database"
    );
    let loaded = s.load_batch(next(), now()).await.expect("load");
    assert_eq!(preview, loaded);
    assert_eq!(loaded.leads_inserted, 10, "21..=31 but the rejected 25");
    assert_eq!(loaded.leads_updated, 6, "every third of 1..=20");
    assert!(
        loaded.contacts_deleted >= 1 && loaded.error_rows == 3,
        "{loaded:?}"
    );
    assert_ne!(snapshot(&mut c).await, before);
}

fn run_record(started: chrono::NaiveDateTime, mode: &str) -> b24sync::load::RunRecord {
    b24sync::load::RunRecord {
        started_at: Some(started),
        mode: mode.into(),
        ..Default::default()
    }
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn run_history_starts_finishes_and_lists_newest_first() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let id1 = s
        .run_started(&run_record(dt(2024, 6, 1, 8, 0, 0), "full"))
        .await
        .expect("start");
    let runs = s.recent_runs(5).await.expect("recent");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].id, runs[0].status.as_str(), runs[0].finished_at),
        (id1, "running", None)
    );
    assert_eq!(runs[0].started_at, Some(dt(2024, 6, 1, 8, 0, 0)));

    let long = "é😀".repeat(1500); // 4,500 UTF-16 units; the column holds 2,000
    let done = b24sync::load::RunRecord {
        id: id1,
        started_at: Some(dt(2024, 6, 1, 8, 0, 0)),
        finished_at: Some(dt(2024, 6, 1, 8, 1, 30)),
        mode: "full".into(),
        status: "errors".into(),
        leads_read: 120,
        leads_upserted: 100,
        leads_deleted: 3,
        contact_values: 240,
        error_rows: 2,
        requests: 7,
        server_seconds: 1.5,
        seconds: 90.25,
        exit_code: Some(2),
        message: Some(long.clone()),
    };
    s.run_finished(&done).await.expect("finish");
    let id2 = s
        .run_started(&run_record(dt(2024, 6, 2, 8, 0, 0), "incremental"))
        .await
        .expect("second start");
    assert!(id2 > id1);

    let runs = s.recent_runs(10).await.expect("recent");
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![id2, id1]
    );
    assert_eq!(
        (
            runs[0].status.as_str(),
            runs[0].finished_at,
            runs[0].exit_code
        ),
        ("running", None, None),
        "a run that never finished stays running"
    );
    let got = &runs[1];
    let message = got.message.clone().expect("message");
    assert_eq!(
        message.encode_utf16().count(),
        1999,
        "cut, never inside a character"
    );
    assert!(long.starts_with(&message));
    assert_eq!(
        b24sync::load::RunRecord {
            message: None,
            ..got.clone()
        },
        b24sync::load::RunRecord {
            message: None,
            ..done.clone()
        }
    );
    // No message and no exit code are stored as NULL (no NULL parameter is sent).
    s.run_finished(&b24sync::load::RunRecord {
        id: id2,
        status: "interrupted".into(),
        exit_code: None,
        message: None,
        ..run_record(dt(2024, 6, 2, 8, 0, 0), "incremental")
    })
    .await
    .expect("finish without code");
    let mut c = db.raw().await;
    assert_eq!(
        scalar_i32(
            &mut c,
            &format!("SELECT COUNT(*) FROM dbo.b24sync_runs WHERE Id = {id2} AND exit_code IS NULL AND message IS NULL AND finished_at IS NOT NULL")
        )
        .await,
        1
    );
    assert_eq!(s.recent_runs(1).await.expect("one").len(), 1);
    let err = s
        .run_finished(&b24sync::load::RunRecord {
            id: id2 + 100,
            status: "ok".into(),
            ..Default::default()
        })
        .await
        .expect_err("no such run");
    assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
}

fn find<'a>(report: &'a [b24sync::load::Diagnosis], check: &str) -> &'a b24sync::load::Diagnosis {
    report
        .iter()
        .find(|d| d.check == check)
        .unwrap_or_else(|| panic!("no {check} in {report:?}"))
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn diagnose_passes_on_a_fresh_database() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let report = s.diagnose().await.expect("diagnose");
    assert_eq!(
        report.iter().map(|d| d.check.as_str()).collect::<Vec<_>>(),
        ["tables", "columns", "indexes", "duplicates", "permissions"]
    );
    for d in &report {
        assert!(d.ok && d.fix.is_empty(), "{d:?}");
    }
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn diagnose_reports_each_failure_and_changes_nothing() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let mut c = db.raw().await;
    // An old installation, damaged: a renamed and a retyped column, a missing table, duplicate
    // leads, and no b24sync migration applied.
    exec(&mut c, sql::OKTELL_TABLES).await;
    exec(
        &mut c,
        "EXEC sp_rename N'dbo.bitrix_leads.sql_TITLE', N'sql_TITLE_old', N'COLUMN';
         DROP TABLE dbo.bitrix_lead_solution;
         INSERT INTO dbo.bitrix_leads (sql_ID) VALUES (5), (5), (9), (9), (9), (10);",
    )
    .await;
    arrange::alter_column(&mut c, "dbo.bitrix_leads", "sql_NAME", "nvarchar(100) NULL").await;
    let s = sink(&db).await;
    let report = s.diagnose().await.expect("diagnose");

    let tables = find(&report, "tables");
    assert!(
        !tables.ok && tables.detail == "missing: dbo.bitrix_lead_solution",
        "{tables:?}"
    );
    assert!(tables.fix.contains("b24sync init-db"));
    let columns = find(&report, "columns");
    assert!(!columns.ok, "{columns:?}");
    for part in [
        "dbo.bitrix_leads.sql_TITLE is missing (should be nvarchar(4000) NULL)",
        "dbo.bitrix_leads.sql_NAME is nvarchar(100) NULL (should be nvarchar(3000) NULL)",
        "sql_TITLE_old",
    ] {
        assert!(columns.detail.contains(part), "{part}: {columns:?}");
    }
    let indexes = find(&report, "indexes");
    assert!(
        !indexes.ok && indexes.fix.contains("b24sync init-db"),
        "{indexes:?}"
    );
    assert!(
        indexes.detail.contains("0004 leads_unique_sql_id"),
        "{indexes:?}"
    );
    let dups = find(&report, "duplicates");
    assert!(!dups.ok, "{dups:?}");
    assert!(
        dups.detail
            .contains("2 sql_ID value(s) stored more than once (3 surplus row(s))"),
        "{dups:?}"
    );
    assert!(
        dups.fix.contains("fix_duplicate_leads.sql") && dups.fix.contains("DELETE l"),
        "{dups:?}"
    );
    // sa may do everything; init-db still has work, and may do it.
    assert!(find(&report, "permissions").ok, "{report:?}");

    // Nothing changed.
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_leads").await,
        6
    );
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.b24sync_migrations").await,
        0
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM sys.tables WHERE name IN (N'b24sync_state', N'b24sync_runs', N'bitrix_lead_solution')"
        )
        .await,
        0
    );
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn permissions_statement_sees_a_limited_user() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let _ready = ready_sink(&db).await;
    let mut c = db.raw().await;
    arrange::user_without_login(
        &mut c,
        "b24sync_limited",
        "SELECT, INSERT, UPDATE ON SCHEMA::dbo",
    )
    .await;
    // permissions.sql as that user: what doctor would see with a login mapped to it.
    let sets = exec(
        &mut c,
        &format!(
            "EXECUTE AS USER = N'b24sync_limited';\n{}\nREVERT;",
            sql::PERMISSIONS
        ),
    )
    .await;
    let first = &sets[0][0];
    assert_eq!(first.get::<i32, _>("create_table"), Some(0));
    assert_eq!(first.get::<i32, _>("alter_schema"), Some(0));
    // (INSERT, DELETE, ALTER) per table.
    type Granted = (Option<i32>, Option<i32>, Option<i32>);
    let tables: BTreeMap<String, Granted> = sets[1]
        .iter()
        .map(|r| {
            (
                r.get::<&str, _>("table_name")
                    .unwrap_or_default()
                    .to_string(),
                (
                    r.get::<i32, _>("can_insert"),
                    r.get::<i32, _>("can_delete"),
                    r.get::<i32, _>("can_alter"),
                ),
            )
        })
        .collect();
    assert_eq!(tables.len(), 11, "{tables:?}");
    assert_eq!(tables["bitrix_leads"], (Some(1), Some(0), Some(0)));
    // init-db created row Id = 1 (runtime_row.sql), so a sync needs no ALTER.
    assert_eq!(sets[2][0].get::<i32, _>("runtime_rows"), Some(1));
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn a_login_with_only_dml_rights_runs_a_full_sync() {
    use b24sync::extract::client::{Bitrix24Client, ClientConfig};
    use b24sync::extract::Webhook;
    use b24sync_simulator::{Simulator, SimulatorConfig};
    use tokio_util::sync::CancellationToken;

    let server = require_server();
    let db = TestDb::create(&server).await;
    // init-db as the test's admin login: tables, migrations and bitrix_lead_runtime's row 1.
    let _ = ready_sink(&db).await;
    let login = format!(
        "b24sync_dml_{}",
        db.name.trim_start_matches("b24sync_test_")
    );
    let password = "Dml-0nly!pass";
    let mut master = raw(&with_database(&server, "master")).await;
    arrange::login_with_grants(
        &mut master,
        &db.name,
        &login,
        password,
        "SELECT, INSERT, UPDATE, DELETE ON SCHEMA::dbo",
    )
    .await;
    let conn = as_login(&db.conn, &login, password);
    let check = db.conn.clone();
    // Run the part that can fail on a task of its own, so the login is dropped either way.
    let outcome = tokio::spawn(async move {
        let sink = MssqlSink::connect(&conn, opts())
            .await
            .expect("the DML login connects");
        let report = sink.diagnose().await.expect("diagnose");
        let perms = find(&report, "permissions");
        assert!(perms.ok, "doctor finds the DML rights enough: {perms:?}");
        let sim = Simulator::start(SimulatorConfig {
            leads: 300,
            ..SimulatorConfig::default()
        })
        .await
        .expect("simulator");
        let cancel = CancellationToken::new();
        let client = Bitrix24Client::new(
            Webhook::parse(&sim.webhook_url()).expect("webhook"),
            ClientConfig::default(),
            cancel.clone(),
        )
        .expect("client");
        let summary = b24sync::run::sync(
            &client,
            &sink,
            &b24sync::run::SyncOptions::default(),
            cancel,
        )
        .await
        .expect("a full sync with only SELECT, INSERT, UPDATE, DELETE");
        assert_eq!(summary.leads_read, 300);
        let code = b24sync::exit::for_summary(&summary);
        // 0, or 3 for leads the simulator makes unloadable on purpose: never 6.
        assert!(
            code == b24sync::exit::OK || code == b24sync::exit::LOADED_WITH_ERRORS,
            "exit {code}: {summary:?}"
        );
        // The run went to the end: stamped, and its watermark written.
        let mut c = raw(&check).await;
        assert_eq!(
            scalar_i32(
                &mut c,
                "SELECT COUNT(*) FROM dbo.bitrix_lead_runtime WHERE Id = 1 AND lead_list_dt IS NOT NULL"
            )
            .await,
            1
        );
        assert_eq!(
            scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_leads").await as u64,
            summary.leads_loaded
        );
    })
    .await;
    drop(db);
    arrange::drop_login(&mut master, &login).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn a_sync_without_row_one_and_without_alter_stops_before_writing() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let _ = ready_sink(&db).await;
    let mut c = db.raw().await;
    exec(&mut c, "DELETE FROM dbo.bitrix_lead_runtime;").await;
    let login = format!(
        "b24sync_dml_{}",
        db.name.trim_start_matches("b24sync_test_")
    );
    let password = "Dml-0nly!pass";
    let mut master = raw(&with_database(&server, "master")).await;
    arrange::login_with_grants(
        &mut master,
        &db.name,
        &login,
        password,
        "SELECT, INSERT, UPDATE, DELETE ON SCHEMA::dbo",
    )
    .await;
    let conn = as_login(&db.conn, &login, password);
    let outcome = tokio::spawn(async move {
        let sink = MssqlSink::connect(&conn, opts()).await.expect("connect");
        // The schema check every sync starts with says what to run, before anything is written.
        let err = sink
            .init_schema()
            .await
            .expect_err("row 1 cannot be created");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
        assert!(
            text.contains("no row Id = 1")
                && text.contains("b24sync init-db")
                && text.contains("ALTER"),
            "{text}"
        );
        let report = sink.diagnose().await.expect("diagnose");
        let perms = find(&report, "permissions");
        assert!(
            !perms.ok && perms.detail.contains("row Id = 1"),
            "{perms:?}"
        );
    })
    .await;
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_lead_runtime").await,
        0
    );
    // init-db as a login that may creates it.
    let report = sink(&db).await.init_schema().await.expect("init-db");
    assert!(
        report
            .created
            .iter()
            .any(|c| c.contains("bitrix_lead_runtime")),
        "{report:?}"
    );
    drop(c);
    drop(db);
    arrange::drop_login(&mut master, &login).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn stored_app(
    client_id: &str,
    access: &str,
    redirect: Option<&str>,
) -> b24sync::extract::oauth::StoredApp {
    use b24sync::extract::oauth::{Secret, StoredApp, TokenSet};
    let obtained = chrono::DateTime::from_timestamp(1_717_236_000, 0).expect("time");
    StoredApp {
        client_id: client_id.into(),
        client_secret: Secret::new("s3cret"),
        redirect_uri: redirect.map(str::to_string),
        oauth_server: Some("https://oauth.bitrix.info".into()),
        tokens: TokenSet {
            access_token: Secret::new(access),
            refresh_token: Secret::new(format!("refresh-{access}")),
            expires_in: "3600".into(),
            expires_at: obtained.timestamp() + 3600,
            obtained_at: obtained,
            scope: "crm".into(),
            domain: "acme.bitrix24.ru".into(),
            member_id: "m1".into(),
            user_id: "1".into(),
            client_endpoint: "https://acme.bitrix24.ru/rest/".into(),
            server_endpoint: Some("https://oauth.bitrix.info/rest/".into()),
        },
    }
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn token_store_locks_per_app_and_round_trips() {
    use b24sync::extract::oauth::TokenStore;
    let server = require_server();
    let db = TestDb::create(&server).await;
    let a = ready_sink(&db).await;
    let b = sink(&db).await;
    let mut c = db.raw().await;

    let mut first = a
        .lock_app("app.1", Duration::from_secs(1))
        .await
        .expect("first holder");
    assert_eq!(first.read().await.expect("read"), None);

    // A second holder of the same app waits, then gives up.
    let started = Instant::now();
    let err = match b.lock_app("app.1", Duration::from_millis(1500)).await {
        Ok(_) => panic!("the lock is held"),
        Err(e) => e,
    };
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert!(matches!(err, StoreError::LockBusy { .. }), "{err:?}");
    // Another app is not blocked.
    drop(
        b.lock_app("app.2", Duration::from_secs(1))
            .await
            .expect("another app"),
    );

    let app = stored_app("app.1", "tok-1", Some("https://example.org/cb"));
    first.write(&app).await.expect("write");
    assert_eq!(first.read().await.expect("read"), Some(app.clone()));
    assert!(first
        .write(&stored_app("app.other", "x", None))
        .await
        .is_err());

    // Released when the guard drops: a waiting holder gets it then.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        drop(first);
    });
    let started = Instant::now();
    let mut second = b
        .lock_app("app.1", Duration::from_secs(15))
        .await
        .expect("free once the first guard dropped");
    assert!(started.elapsed() >= Duration::from_millis(700));
    release.await.expect("release task");
    assert_eq!(second.read().await.expect("read"), Some(app.clone()));

    // Updated in place; no redirect_uri keeps the stored one.
    let mut next = stored_app("app.1", "tok-2", None);
    next.tokens.obtained_at += chrono::Duration::seconds(3000);
    next.tokens.expires_at += 3000;
    second.write(&next).await.expect("second write");
    drop(second);
    let read = a.load_app("app.1").await.expect("load").expect("stored");
    assert_eq!(read.redirect_uri.as_deref(), Some("https://example.org/cb"));
    assert_eq!(
        read,
        b24sync::extract::oauth::StoredApp {
            redirect_uri: Some("https://example.org/cb".into()),
            ..next.clone()
        }
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.bitrix_oauth WHERE client_id = N'app.1' AND access_token = N'tok-2' AND code IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_oauth").await,
        1
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_state WHERE name = N'oauth:app.1'"
        )
        .await,
        1
    );
    // save_app takes the lock itself.
    b.save_app(&stored_app("app.3", "tok-3", None))
        .await
        .expect("save");
    assert_eq!(
        b.load_app("app.3").await.expect("load"),
        Some(stored_app("app.3", "tok-3", None))
    );

    // A row refreshed by something else (an Oktell job: other dateexec) is read on its own.
    exec(
        &mut c,
        "UPDATE dbo.bitrix_oauth SET access_token = N'oktell', expires_in = N'3600', dateexec = '2024-06-01T10:20:30.500' WHERE client_id = N'app.1';",
    )
    .await;
    let read = a.load_app("app.1").await.expect("load").expect("stored");
    assert_eq!(read.tokens.access_token.expose(), "oktell");
    assert_eq!(
        read.tokens.client_endpoint,
        "https://acme.bitrix24.ru/rest/"
    );
    assert_eq!(
        read.oauth_server, None,
        "the side record describes another pair"
    );
    assert_eq!(a.load_app("nobody").await.expect("load"), None);
}

// ---- The caller lookup (migration 0006) ----

/// A lead with these PHONE values, normalised as the transform does (region RU).
fn lead_with_phones(id: i32, assigned: &str, phones: &[(&str, &str)]) -> LeadRecord {
    let mut r = lead(id, 0);
    r.lead.cells[idx("ASSIGNED_BY_ID")] = Cell::Text(assigned.to_string());
    r.contacts = phones
        .iter()
        .map(|(cid, v)| b24sync::model::ContactRow {
            lead_id: id,
            contact_id: Some(cid.to_string()),
            value_type: Some("WORK".into()),
            value: Some(v.to_string()),
            type_id: "PHONE".into(),
        })
        .collect();
    r.phones = b24sync::transform::phones::phone_rows(
        &r.contacts,
        &b24sync::transform::phone::DefaultRegion::default(),
    );
    r
}

fn query(number: &str) -> b24sync::model::caller::CallerQuery {
    b24sync::model::caller::CallerQuery::new(
        number,
        &b24sync::transform::phone::DefaultRegion::default(),
        10,
    )
}

async fn found(s: &MssqlSink, number: &str) -> Vec<i64> {
    s.lookup_caller(&query(number))
        .await
        .expect("lookup")
        .iter()
        .map(|m| m.lead_id)
        .collect()
}

/// Lead IDs a T-SQL lookup returns (first column), in order.
async fn ids_of(c: &mut Raw, sql: &str) -> Vec<i32> {
    exec(c, sql)
        .await
        .iter()
        .flatten()
        .filter_map(|r| r.get::<i32, _>(0))
        .collect()
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn caller_lookup_through_the_sink_the_functions_and_the_view() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut first = lead_with_phones(
        1,
        "5",
        &[("11", "8 (912) 345-67-89 доб. 12"), ("12", "не звонить")],
    );
    first.lead.cells[idx("DATE_MODIFY")] = Cell::DateTime(dt(2024, 5, 1, 9, 0, 0));
    let mut second = lead_with_phones(2, "6", &[("21", "+7 912 345 67 89")]);
    second.lead.cells[idx("DATE_MODIFY")] = Cell::DateTime(dt(2024, 5, 2, 9, 0, 0));
    let odd = lead_with_phones(3, "6", &[("31", "+7 (000) 345-67-89")]);
    s.load_batch(batch(vec![first.clone(), second, odd]), now())
        .await
        .expect("load");
    s.store_operators(vec![b24sync::model::Operator {
        user_id: "6".into(),
        name: Some("Анна".into()),
        last_name: Some("Смирнова".into()),
        phone_inner: Some("106".into()),
        active: Some(true),
        details: true,
        ..Default::default()
    }])
    .await
    .expect("operators");

    // Through the sink: E.164 from any spelling, newest first; the fallback on the tail.
    for caller in ["89123456789", "+79123456789", "9123456789"] {
        assert_eq!(found(&s, caller).await, vec![2, 1], "{caller}");
    }
    assert_eq!(found(&s, "7 000 345 67 89").await, vec![3]);
    let m = s
        .lookup_caller(&query("89123456789"))
        .await
        .expect("lookup");
    assert_eq!(m[0].operator_extension.as_deref(), Some("106"));
    assert_eq!(m[0].operator_name.as_deref(), Some("Анна"));
    assert_eq!(m[1].operator_id.as_deref(), Some("5"));
    assert_eq!(m[1].operator_name, None);
    assert_eq!(m[0].date_modify, Some(dt(2024, 5, 2, 9, 0, 0)));

    // What a telephony system runs: the number function, in the switch's formats.
    let mut c = db.raw().await;
    for caller in [
        "89123456789",
        "+7 (912) 345-67-89",
        "79123456789",
        "9123456789",
        "8-912-345-67-89",
    ] {
        let got = ids_of(
            &mut c,
            &format!("SELECT lead_id FROM dbo.b24sync_lookup_caller(N'{caller}', 10) ORDER BY date_modify DESC"),
        )
        .await;
        assert_eq!(got, vec![2, 1], "{caller}");
    }
    assert_eq!(
        ids_of(
            &mut c,
            "SELECT lead_id FROM dbo.b24sync_lookup_caller(N'70003456789', 10)"
        )
        .await,
        vec![3],
        "not a valid RU number: the last 10 digits"
    );
    assert_eq!(
        ids_of(
            &mut c,
            "SELECT lead_id FROM dbo.b24sync_lookup_caller(N'anonymous', 10)"
        )
        .await,
        Vec::<i32>::new()
    );
    assert_eq!(
        ids_of(
            &mut c,
            "SELECT lead_id FROM dbo.b24sync_lookup_caller_keys('+79123456789', '') ORDER BY lead_id"
        )
        .await,
        vec![1, 2]
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_caller_phones WHERE e164 = '+79123456789' AND phone_extension = '12'"
        )
        .await,
        1
    );
    // The value that is not a number is kept as typed, marked, and made no error row.
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_lead_phones WHERE lead_id = 1 AND value = N'не звонить' AND normalisable = 0 AND e164 IS NULL AND reason LIKE N'not a phone number%'"
        )
        .await,
        1
    );

    // A number removed in Bitrix24 stops matching; a re-load of the same lead changes nothing.
    let rows = "SELECT Id FROM dbo.b24sync_lead_phones ORDER BY Id";
    let ids_before = ids_of(&mut c, rows).await;
    s.load_batch(batch(vec![first.clone()]), now())
        .await
        .expect("reload");
    assert_eq!(ids_of(&mut c, rows).await, ids_before);
    let without = lead_with_phones(1, "5", &[("12", "не звонить")]);
    s.load_batch(batch(vec![without]), now())
        .await
        .expect("load");
    assert_eq!(found(&s, "89123456789").await, vec![2]);
    // A deleted lead's phones go with it.
    s.delete_leads(vec![2]).await.expect("delete");
    assert!(found(&s, "89123456789").await.is_empty());
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_lead_phones WHERE lead_id = 2"
        )
        .await,
        0
    );
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn caller_lookup_seeks_the_phone_indexes() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let leads: Vec<LeadRecord> = (1..=2000)
        .map(|i| {
            let number = format!("+7 912 {:03} {:04}", i / 10_000, i % 10_000);
            lead_with_phones(i, "1", &[("1", number.as_str())])
        })
        .collect();
    for chunk in leads.chunks(500) {
        s.load_batch(batch(chunk.to_vec()), now())
            .await
            .expect("load");
    }
    assert_eq!(found(&s, "+79120000777").await, vec![777]);
    let mut c = db.raw().await;
    arrange::update_statistics(&mut c, "dbo.b24sync_lead_phones").await;
    for (lookup, index) in [
        (
            "SELECT lead_id FROM dbo.b24sync_lookup_caller(N'89120000777', 10)",
            "IX_b24sync_lead_phones_e164",
        ),
        (
            "SELECT lead_id FROM dbo.b24sync_lookup_caller_keys('', '0000777')",
            "IX_b24sync_lead_phones_digits_rev",
        ),
    ] {
        arrange::arrange(&mut c, "SET SHOWPLAN_TEXT ON", "SET SHOWPLAN_TEXT ON;").await;
        let plan: Vec<String> = exec(&mut c, lookup)
            .await
            .iter()
            .flatten()
            .filter_map(|r| r.get::<&str, _>(0).map(str::to_string))
            .collect();
        exec(&mut c, "SET SHOWPLAN_TEXT OFF;").await;
        let text = plan.join("\n");
        assert!(
            text.contains(&format!(
                "Index Seek(OBJECT:([{}].[dbo].[b24sync_lead_phones].[{index}]",
                db.name
            )),
            "{lookup}:\n{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.contains("Scan(OBJECT:") && l.contains("[b24sync_lead_phones]")),
            "no scan of the phones:\n{text}"
        );
    }
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn operators_are_upserted_and_id_only_rows_keep_their_details() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let op = |id: &str, name: Option<&str>, details: bool| b24sync::model::Operator {
        user_id: id.into(),
        name: name.map(str::to_string),
        phone_inner: name.map(|_| format!("1{id}")),
        active: name.map(|_| true),
        details,
        ..Default::default()
    };
    s.store_operators(vec![op("3", Some("Анна"), true), op("4", None, false)])
        .await
        .expect("store");
    let mut c = db.raw().await;
    // ID only: a new row is added, a known one keeps its details.
    s.store_operators(vec![op("3", None, false), op("5", None, false)])
        .await
        .expect("store");
    assert_eq!(s.operator_ids().await.expect("ids"), vec!["3", "4", "5"]);
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_operators WHERE user_id = N'3' AND name = N'Анна' AND phone_inner = N'13' AND active = 1"
        )
        .await,
        1
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_operators WHERE details_at IS NULL"
        )
        .await,
        2
    );
    // New details replace old ones.
    s.store_operators(vec![op("4", Some("Борис"), true)])
        .await
        .expect("store");
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_operators WHERE user_id = N'4' AND name = N'Борис' AND details_at IS NOT NULL"
        )
        .await,
        1
    );
}

/// Runs without a server: what the live tests promise about themselves.
#[test]
fn every_test_that_needs_a_server_is_ignored_without_one() {
    let source = include_str!("mssql_live.rs");
    let lines: Vec<&str> = source.lines().collect();
    let mut live = 0;
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with("async fn ") {
            continue;
        }
        let body: String = lines[i..]
            .iter()
            .skip(1)
            .take_while(|l| !l.starts_with('}'))
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        let attrs = &lines[i.saturating_sub(2)..i];
        if body.contains("require_server()") {
            live += 1;
            assert!(
                attrs.contains(&format!("#[ignore = \"{NEEDS}\"]").as_str()),
                "{line}: needs a server but is not #[ignore = \"{NEEDS}\"]"
            );
        }
    }
    assert!(live >= 30, "{live} live tests found");
    // Without the variable, asking for them is a failure that says what is missing.
    if std::env::var(ENV).map_or(true, |v| v.trim().is_empty()) {
        let err = std::panic::catch_unwind(require_server).expect_err("must not pass");
        let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("B24SYNC_TEST_MSSQL is not set"), "{text}");
    }
}
