//! What only the SQL Server backend has, against a real server: connection and login
//! messages, the DDL and migrations, old Oktell databases, the application locks' sessions,
//! bisecting a row the server rejects, index use, permissions, the T-SQL lookup objects,
//! collation. The store contracts both backends share are tested once, for both, in
//! `tests/stores.rs`. Each test creates its own database `b24sync_test_<random>` through
//! master and drops it at the end.
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

use b24sync::schema::LEAD;
use std::collections::BTreeMap;
use std::time::Duration;

use b24sync::load::mssql::{sql, MssqlOptions, MssqlSink};
use b24sync::load::Stores;
use b24sync::model::{Batch, Cell, LeadRecord, Problem, ProblemKind, RejectedLead};
use b24sync::prepare::{prepare, PreparedBatch};
use b24sync::store::{BatchOutcome, StoreError};
use mssql_support::*;

fn opts() -> MssqlOptions {
    MssqlOptions {
        pool_size: 2,
        connect_timeout: Duration::from_secs(20),
        ..MssqlOptions::default()
    }
}

/// The stores of the test database (through `load::Stores` and the role traits, as the
/// program uses them).
async fn sink(db: &TestDb) -> Stores {
    MssqlSink::connect(&db.conn, opts())
        .await
        .expect("connect")
        .into_stores()
}

async fn ready_sink(db: &TestDb) -> Stores {
    let s = sink(db).await;
    s.schema.init_schema().await.expect("init_schema");
    s
}

fn batch(records: Vec<LeadRecord>) -> PreparedBatch {
    prepare(Batch {
        entity: b24sync::schema::LEAD,
        records,
        rejected: vec![],
    })
}

/// The server session holding the run lock (session-owned application lock `b24sync`,
/// `sql/mssql/lock_acquire.sql`), read from `sys.dm_tran_locks` (needs VIEW SERVER STATE).
async fn run_lock_session(c: &mut Raw) -> i32 {
    let sets = arrange::arrange(
        c,
        "reading the run lock's session from sys.dm_tran_locks",
        "SELECT request_session_id FROM sys.dm_tran_locks \
         WHERE resource_type = N'APPLICATION' AND request_owner_type = N'SESSION' \
           AND resource_database_id = DB_ID() AND request_status = N'GRANT' \
           AND (resource_description LIKE N'%:[[]b24sync]:%' OR resource_description LIKE N'%:b24sync:(%');",
    )
    .await;
    let spids: Vec<i32> = sets
        .iter()
        .flatten()
        .filter_map(|r| r.get::<i32, _>(0))
        .collect();
    assert_eq!(spids.len(), 1, "one session holds the run lock: {spids:?}");
    spids[0]
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
    assert_eq!(s.target.split('/').nth(1), Some(db.name.as_str()));

    // Loading before init-db is refused with what to do.
    let err = s
        .batches
        .load_batch(batch(vec![lead(1, 0)]), now())
        .await
        .expect_err("not prepared");
    assert!(
        matches!(err, StoreError::Schema(_)) && err.to_string().contains("b24sync init-db"),
        "{err}"
    );

    let report = s.schema.init_schema().await.expect("init");
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

    // (A second init changing nothing: tests/stores.rs, init_schema_is_idempotent.)

    let mut c = db.raw().await;
    // init-db created row 1 of bitrix_lead_runtime, empty, so a sync needs no ALTER; the
    // stamp only updates it (tests/stores.rs, runtime_row_one_is_stamped).
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.bitrix_lead_runtime WHERE Id = 1 AND lead_list_dt IS NULL"
        )
        .await,
        1
    );
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
        .schema
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

    let report = s.schema.init_schema().await.expect("init after the fix");
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
        .batches
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
        s.batches
            .load_batch(batch(records.clone()), now())
            .await
            .expect("load");
    }
    let delete: Vec<i32> = (1..=5).collect();
    s.deletions
        .delete_records(LEAD, delete)
        .await
        .expect("delete");
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
        .batches
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
        .batches
        .load_batch(batch(vec![records[17].clone()]), now())
        .await
        .expect("load");
    assert_eq!(out.leads_inserted, 1);
    assert_eq!(errors(&mut c).await.len(), 1);
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn a_run_whose_lock_session_died_commits_nothing_more() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let a = ready_sink(&db).await;
    let a_lock = a.lock.lock_run(Duration::from_secs(5)).await.expect("lock");
    a.batches
        .load_batch(batch(vec![lead(1, 0)]), now())
        .await
        .expect("load under the lock");
    a.state
        .write_state("test.key", "before")
        .await
        .expect("state");
    let mut c = db.raw().await;
    let spid = run_lock_session(&mut c).await;

    // The lock's session ends (a DBA's KILL, a server-side timeout, a dropped connection).
    arrange::kill_session(&mut c, spid).await;

    // Another run may take the lock now, and does.
    let b = ready_sink(&db).await;
    let b_lock = b
        .lock
        .lock_run(Duration::from_secs(10))
        .await
        .expect("the lock went with its session");

    // The first run finds out at its next write, and nothing of it is committed.
    let err = a
        .batches
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
        ("state", a.state.write_state("test.key", "after").await),
        ("stamp", a.history.stamp_runtime(now()).await),
        (
            "deletion",
            a.deletions.delete_records(LEAD, vec![1]).await.map(|_| ()),
        ),
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
        b.state
            .read_state("test.key")
            .await
            .expect("read")
            .as_deref(),
        Some("before")
    );
    // The new holder writes normally.
    b.batches
        .load_batch(batch(vec![lead(3, 0)]), now())
        .await
        .expect("the new holder loads");
    b_lock.release().await.expect("release");
    a_lock
        .release()
        .await
        .expect("releasing a lost lock is quiet");
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn a_transaction_in_flight_when_the_lock_goes_commits_before_the_next_run() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let a = ready_sink(&db).await;
    let _a_lock = a.lock.lock_run(Duration::from_secs(5)).await.expect("lock");
    let mut c = db.raw().await;
    let spid = run_lock_session(&mut c).await;
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
        .lock
        .lock_run(Duration::from_millis(1500))
        .await
        .expect_err("the barrier waits for the transaction in flight");
    assert!(matches!(err, StoreError::LockBusy { .. }), "{err:?}");
    exec(&mut tx, "COMMIT TRANSACTION;").await;
    b.lock
        .lock_run(Duration::from_secs(5))
        .await
        .expect("free once it committed")
        .release()
        .await
        .expect("release");
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
    .expect("connect")
    .into_stores();
    s.schema.init_schema().await.expect("init");
    // Concurrent batches on separate leads: each batch has its own connection and staging
    // tables, so they do not see each other's rows.
    let mut tasks = Vec::new();
    for k in 0..6 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let records: Vec<_> = (1..=50).map(|i| lead(k * 1000 + i, 0)).collect();
            s.batches.load_batch(batch(records), now()).await
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

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn state_before_init_db_and_by_the_database_collation() {
    // The round trips, overwrites, awkward values and racing writers: tests/stores.rs,
    // state_round_trips_and_is_overwritten. Here what is SQL Server's own.
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = sink(&db).await;
    // Before init-db the state table may not exist: a clear message, not "Invalid object name".
    let err = s
        .state
        .read_state("watermark")
        .await
        .expect_err("not prepared");
    assert!(
        matches!(err, StoreError::Schema(_)) && err.to_string().contains("b24sync init-db"),
        "{err}"
    );
    s.schema.init_schema().await.expect("init");
    let mut c = db.raw().await;
    s.state
        .write_state("watermark", "2024-06-02T11:30:15+03:00")
        .await
        .expect("write");
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
    assert_eq!(
        s.state.read_state("WATERMARK ").await.expect("read"),
        direct
    );

    // Writers racing on a new name, then: no transaction (and so no lock) was left open on
    // the pooled connections: another session can update every row at once. (Locks, not
    // the DMVs, which need VIEW SERVER STATE.)
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for k in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.state.write_state("raced", &format!("v{k}")).await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("concurrent write");
    }
    exec(
        &mut c,
        "SET LOCK_TIMEOUT 5000; UPDATE dbo.b24sync_state SET updated_at = updated_at; SET LOCK_TIMEOUT -1;",
    )
    .await;
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
    let rows = s.errors.error_rows().await.expect("list");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].lead_id.as_deref(), Some("12"));
    assert_eq!(rows[0].at, Some(dt(2023, 3, 4, 5, 6, 7)));
    assert_eq!(
        s.errors
            .clear_errors(dt(2024, 1, 1, 0, 0, 0))
            .await
            .expect("clear"),
        1
    );
    // The deletion check, though, needs init-db (it relies on sql_ID being unique).
    let err = s
        .deletions
        .record_ids(LEAD)
        .await
        .expect_err("not prepared");
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
    s.state.write_state("watermark", "w1").await.expect("state");
    s.batches
        .load_batch(batch((1..=20).map(|id| lead(id, 0)).collect()), now())
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
            entity: b24sync::schema::LEAD,
            records,
            rejected: vec![RejectedLead {
                lead_id: Some("32".into()),
                reason: "no TITLE".into(),
                raw_json: "{\"ID\":\"32\"}".into(),
            }],
        }
    };
    let before = snapshot(&mut c).await;
    let preview = s
        .batches
        .preview_batch(prepare(next()), now())
        .await
        .expect("preview");
    assert_eq!(snapshot(&mut c).await, before, "the preview changed data");
    assert_eq!(
        s.batches
            .preview_batch(prepare(next()), now())
            .await
            .expect("again"),
        preview,
        "a second preview sees the same database"
    );
    let loaded = s
        .batches
        .load_batch(prepare(next()), now())
        .await
        .expect("load");
    assert_eq!(preview, loaded);
    assert_eq!(loaded.leads_inserted, 10, "21..=31 but the rejected 25");
    assert_eq!(loaded.leads_updated, 6, "every third of 1..=20");
    assert!(
        loaded.contacts_deleted >= 1 && loaded.error_rows == 3,
        "{loaded:?}"
    );
    assert_ne!(snapshot(&mut c).await, before);
}

fn find<'a>(report: &'a [b24sync::store::Diagnosis], check: &str) -> &'a b24sync::store::Diagnosis {
    report
        .iter()
        .find(|d| d.check == check)
        .unwrap_or_else(|| panic!("no {check} in {report:?}"))
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
    let report = s.schema.diagnose().await.expect("diagnose");

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
        let stores = MssqlSink::connect(&conn, opts())
            .await
            .expect("the DML login connects")
            .into_stores();
        let report = stores.schema.diagnose().await.expect("diagnose");
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
        let sink = MssqlSink::connect(&conn, opts())
            .await
            .expect("the DML login connects");
        let summary = b24sync::run::sync(
            &client,
            &b24sync::run::RunStores::from(&sink.into_stores()),
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
        let stores = MssqlSink::connect(&conn, opts())
            .await
            .expect("connect")
            .into_stores();
        // The schema check every sync starts with says what to run, before anything is written.
        let err = stores
            .schema
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
        let report = stores.schema.diagnose().await.expect("diagnose");
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
    let report = sink(&db).await.schema.init_schema().await.expect("init-db");
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

// ---- The caller lookup (migration 0006) ----

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
async fn caller_lookup_through_the_t_sql_functions_and_the_view() {
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let (leads, anna) = caller_leads();
    s.batches
        .load_batch(batch(leads), now())
        .await
        .expect("load");
    s.operators
        .store_operators(vec![anna])
        .await
        .expect("operators");

    // Through the store (any spelling, newest first, operators): tests/stores.rs,
    // caller_lookup_matches_any_spelling_newest_first. Here the T-SQL objects.
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
        s.batches
            .load_batch(batch(chunk.to_vec()), now())
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

/// A prepared batch of `e`'s records.
fn batch_of(e: b24sync::schema::Entity, records: Vec<LeadRecord>) -> PreparedBatch {
    let mut b = Batch::of(e);
    b.records = records;
    prepare(b)
}

/// (sql_ID → (Id, row)) of everything in `e`'s table.
async fn records_of(
    c: &mut Raw,
    e: b24sync::schema::Entity,
) -> BTreeMap<i32, (i32, b24sync::model::LeadRow)> {
    exec(c, &record_select(e))
        .await
        .iter()
        .flatten()
        .map(|r| {
            let (id, row) = read_record(e, r);
            (row.id, (id, row))
        })
        .collect()
}

/// Every row of every table of `e`, as the server holds them.
async fn entity_snapshot(c: &mut Raw, e: b24sync::schema::Entity) -> String {
    let mut out = Vec::new();
    for (table, order) in [
        (e.table, "Id"),
        (e.multi_table, "Id"),
        (e.phones_table, "Id"),
        (e.error_table, "Id"),
        (e.fingerprints_table, e.phones_owner),
    ] {
        let rows: Vec<String> = exec(c, &format!("SELECT * FROM dbo.{table} ORDER BY {order}"))
            .await
            .into_iter()
            .flatten()
            .map(|r| format!("{:?}", r.into_iter().collect::<Vec<_>>()))
            .collect();
        out.push(format!("{table}: {rows:?}"));
    }
    out.join("\n")
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn contacts_and_companies_load_reload_edit_and_delete_on_the_server() {
    use b24sync::schema::{COMPANY, CONTACT};
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut c = db.raw().await;
    for e in [CONTACT, COMPANY] {
        let count = |table: &str| format!("SELECT COUNT(*) FROM dbo.{table}");
        let comments = e.field_index("COMMENTS").expect("COMMENTS");
        let mut all: Vec<LeadRecord> = (1..=120).map(|id| record_of(e, id, 0)).collect();
        // Past the bulk path's 32,767 UTF-16 units: staged NULL, then set by UPDATE.
        all[7].lead.cells[comments] = Cell::Text("Письмо 📧 ".repeat(6_000));
        // A problem with a JSON as long: the error row's JSON takes the same path.
        all[8].problems.push(Problem {
            field: "COMMENTS".into(),
            kind: ProblemKind::Truncated,
            detail: "cut".into(),
        });
        all[8].raw_json = format!("{{\"ID\":\"9\",\"X\":\"{}\"}}", "я".repeat(40_000));
        let values: u64 = all.iter().map(|r| r.contacts.len() as u64).sum();
        let mut total = BatchOutcome::default();
        for chunk in all.chunks(50) {
            total.add(
                &s.batches
                    .load_batch(batch_of(e, chunk.to_vec()), now())
                    .await
                    .expect("load"),
            );
        }
        assert_eq!(
            (
                total.leads_inserted,
                total.contacts_written,
                total.error_rows_new
            ),
            (120, values, 1),
            "{}",
            e.name
        );
        let stored = records_of(&mut c, e).await;
        assert_eq!(stored.len(), 120);
        for r in &all {
            assert_eq!(stored[&r.lead.id].1, r.lead, "{} {}", e.name, r.lead.id);
        }
        assert_eq!(
            scalar_i32(&mut c, &count(e.multi_table)).await as u64,
            values
        );
        let phones: usize = all.iter().map(|r| r.phones.len()).sum();
        assert_eq!(
            scalar_i32(&mut c, &count(e.phones_table)).await as usize,
            phones
        );
        assert_eq!(scalar_i32(&mut c, &count(e.fingerprints_table)).await, 119);
        assert_eq!(
            scalar_i32(
                &mut c,
                &format!(
                    "SELECT COUNT(*) FROM dbo.{} WHERE sql_ID = N'9' AND LEN(CAST({} AS nvarchar(max))) > 40000",
                    e.error_table, e.error_json
                )
            )
            .await,
            1
        );

        // Reloaded unchanged: no row is touched, Ids stay.
        let before = entity_snapshot(&mut c, e).await;
        let mut again = BatchOutcome::default();
        for chunk in all.chunks(50) {
            again.add(
                &s.batches
                    .load_batch(batch_of(e, chunk.to_vec()), now())
                    .await
                    .expect("reload"),
            );
        }
        assert_eq!(
            (
                again.leads_unchanged,
                again.leads_updated,
                again.leads_inserted
            ),
            (120, 0, 0),
            "{}",
            e.name
        );
        assert_eq!(
            (
                again.contacts_written,
                again.contacts_deleted,
                again.error_rows_new
            ),
            (0, 0, 0)
        );
        assert_eq!(
            entity_snapshot(&mut c, e).await,
            before,
            "{}: a reload changes nothing",
            e.name
        );

        // Edited: a case-only change counts; a multi-field value goes.
        let mut edited = vec![all[0].clone(), all[2].clone()];
        let at = e
            .fields
            .iter()
            .position(|f| matches!(f.kind, b24sync::schema::ColumnKind::Text { .. }))
            .expect("a text field");
        edited[0].lead.cells[at] = Cell::Text("MiXeD".into());
        let removed = edited[1].contacts.remove(0);
        edited[1].phones = b24sync::transform::phones::phone_rows(
            &edited[1].contacts,
            &b24sync::transform::phone::DefaultRegion::default(),
        );
        let out = s
            .batches
            .load_batch(batch_of(e, edited.clone()), now())
            .await
            .expect("edit");
        // Record 1's field changed; record 3 only lost a value.
        assert_eq!(
            (out.leads_updated, out.leads_unchanged, out.contacts_deleted),
            (1, 1, 1),
            "{}",
            e.name
        );
        let mut lower = edited[0].clone();
        lower.lead.cells[at] = Cell::Text("mixed".into());
        let out = s
            .batches
            .load_batch(batch_of(e, vec![lower]), now())
            .await
            .expect("case");
        assert_eq!(
            out.leads_updated, 1,
            "{}: a change of case is a change",
            e.name
        );
        assert_eq!(
            scalar_i32(
                &mut c,
                &format!(
                    "SELECT COUNT(*) FROM dbo.{} WHERE {} = 3 AND {} = N'{}'",
                    e.multi_table,
                    e.multi_owner,
                    e.multi_value_id,
                    removed.contact_id.as_deref().unwrap_or("")
                )
            )
            .await,
            0
        );

        // Deleted: the records and everything of theirs, in one transaction.
        let deleted = s
            .deletions
            .delete_records(e, vec![1, 3, 9, 500])
            .await
            .expect("delete");
        assert_eq!(deleted, 3, "{}", e.name);
        let ids = s.deletions.record_ids(e).await.expect("ids");
        assert_eq!(ids.len(), 117);
        for (table, owner) in [
            (e.multi_table, e.multi_owner),
            (e.phones_table, e.phones_owner),
            (e.fingerprints_table, e.phones_owner),
        ] {
            assert_eq!(
                scalar_i32(
                    &mut c,
                    &format!("SELECT COUNT(*) FROM dbo.{table} WHERE {owner} IN (1, 3, 9)")
                )
                .await,
                0,
                "{table}"
            );
        }
        assert_eq!(scalar_i32(&mut c, &count(e.error_table)).await, 0);
        let kept = s.fingerprints.fingerprints(e).await.expect("fingerprints");
        assert_eq!(
            kept.len(),
            117,
            "{}: 120, less 9 (a problem), less 1 and 3",
            e.name
        );
    }
    // The lead's tables were never written.
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_leads").await,
        0
    );
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.b24sync_lead_phones").await,
        0
    );
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn a_contact_the_server_rejects_is_isolated_into_its_error_table() {
    use b24sync::schema::CONTACT;
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    let mut c = db.raw().await;
    exec(&mut c, "ALTER TABLE dbo.bitrix_contacts ADD CONSTRAINT CK_test_no_reject CHECK (sql_NAME IS NULL OR sql_NAME NOT LIKE N'%REJECT%');").await;
    let name = CONTACT.field_index("NAME").expect("NAME");
    let mut all: Vec<LeadRecord> = (1..=32).map(|id| record_of(CONTACT, id, 0)).collect();
    all[20].lead.cells[name] = Cell::Text("please REJECT me".into());
    let out = s
        .batches
        .load_batch(batch_of(CONTACT, all), now())
        .await
        .expect("the batch survives");
    assert_eq!((out.leads_inserted, out.error_rows), (31, 1));
    let rows = exec(
        &mut c,
        "SELECT sql_ID, sql_error FROM dbo.bitrix_import_contact_error",
    )
    .await;
    let row = rows.iter().flatten().next().expect("an error row");
    assert_eq!(row.get::<&str, _>("sql_ID"), Some("21"));
    let why = row.get::<&str, _>("sql_error").unwrap_or_default();
    assert!(
        why.contains("SQL Server rejected the contact") && names(why, "CK_test_no_reject"),
        "{why}"
    );
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.bitrix_import_lead_error").await,
        0
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.bitrix_contact_multifields WHERE sql_CONTACT_ID = 21"
        )
        .await,
        0
    );
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn a_login_with_only_dml_rights_writes_and_deletes_contacts_and_companies() {
    use b24sync::schema::{COMPANY, CONTACT};
    let server = require_server();
    let db = TestDb::create(&server).await;
    let _ = ready_sink(&db).await;
    let login = format!(
        "b24sync_dml_e_{}",
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
        let stores = MssqlSink::connect(&conn, opts())
            .await
            .expect("the DML login connects")
            .into_stores();
        let report = stores.schema.diagnose().await.expect("diagnose");
        let perms = find(&report, "permissions");
        assert!(perms.ok, "{perms:?}");
        assert!(perms.detail.contains("22 table(s)"), "{perms:?}");
        for e in [CONTACT, COMPANY] {
            let all: Vec<LeadRecord> = (1..=10).map(|id| record_of(e, id, 0)).collect();
            for variant in [all.clone(), all] {
                stores
                    .batches
                    .load_batch(batch_of(e, variant), now())
                    .await
                    .expect("load with DML rights");
            }
            let edited: Vec<LeadRecord> = (1..=10).map(|id| record_of(e, id, 1)).collect();
            let out = stores
                .batches
                .load_batch(batch_of(e, edited), now())
                .await
                .expect("update with DML rights");
            assert_eq!(out.leads_updated, 10);
            assert_eq!(
                stores
                    .fingerprints
                    .fingerprints(e)
                    .await
                    .expect("read")
                    .len(),
                10
            );
            assert_eq!(
                stores
                    .deletions
                    .delete_records(e, vec![1, 2])
                    .await
                    .expect("delete with DML rights"),
                2
            );
            assert_eq!(stores.deletions.record_ids(e).await.expect("ids").len(), 8);
        }
    })
    .await;
    drop(db);
    arrange::drop_login(&mut master, &login).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---- The caller lookup over leads, contacts and companies (migration 0012) ----

/// (entity_type, entity_id) rows of a T-SQL lookup, in order.
async fn kinds_of(c: &mut Raw, sql: &str) -> Vec<(String, i32)> {
    exec(c, sql)
        .await
        .iter()
        .flatten()
        .filter_map(|r| Some((r.get::<&str, _>(0)?.to_string(), r.get::<i32, _>(1)?)))
        .collect()
}

/// INSERTs of a contact's or a company's phone (`phones_table`, `owner` column), normalised
/// by `transform::phones::phone_rows` as a sync normalises it. The writing statements are
/// the SQL Server writer's; the lookup only reads the tables.
fn phone_insert(entity: b24sync::schema::Entity, owner: i32, value: &str) -> String {
    let contacts = [b24sync::model::ContactRow {
        lead_id: owner,
        contact_id: Some(format!("{owner}1")),
        value_type: Some("WORK".into()),
        value: Some(value.into()),
        type_id: "PHONE".into(),
    }];
    let p = &b24sync::transform::phones::phone_rows(
        &contacts,
        &b24sync::transform::phone::DefaultRegion::default(),
    )[0];
    format!(
        "INSERT INTO dbo.{} ({}, value_id, value, e164, extension, digits_rev, normalisable) \
         VALUES ({owner}, N'{owner}1', N'{value}', '{}', NULL, '{}', 1);",
        entity.phones_table,
        entity.phones_owner,
        p.e164.as_deref().expect("a number"),
        p.digits_rev.as_deref().expect("digits"),
    )
}

#[tokio::test]
#[ignore = "needs B24SYNC_TEST_MSSQL (a SQL Server connection string)"]
async fn caller_lookup_over_contacts_and_companies_through_the_t_sql_functions() {
    use b24sync::model::caller::{CallerQuery, EntityFilter};
    use b24sync::schema::{COMPANY, CONTACT};
    let server = require_server();
    let db = TestDb::create(&server).await;
    let s = ready_sink(&db).await;
    // Lead 300 (modified 10 May) shares its number with contact 300 (4 May).
    let mut lead = lead_with_phones(300, "5", &[("1", "8 (912) 300-00-00")]);
    lead.lead.cells[idx("DATE_MODIFY")] = Cell::DateTime(dt(2024, 5, 10, 9, 0, 0));
    s.batches
        .load_batch(batch(vec![lead]), now())
        .await
        .expect("load");
    let mut c = db.raw().await;
    exec(
        &mut c,
        &[
            "INSERT INTO dbo.bitrix_companies (sql_ID, sql_TITLE, sql_COMPANY_TYPE, sql_DATE_MODIFY) \
             VALUES (900, N'ООО Ромашка', N'CUSTOMER', '2024-05-01T09:00:00'), \
                    (200, N'АО Ландыш', N'PARTNER', '2024-05-03T09:00:00');"
                .to_string(),
            "INSERT INTO dbo.bitrix_contacts (sql_ID, sql_NAME, sql_SECOND_NAME, sql_LAST_NAME, sql_COMPANY_ID, \
             sql_TYPE_ID, sql_ASSIGNED_BY_ID, sql_DATE_MODIFY) \
             VALUES (100, N'Иван', N'Петрович', N'Сидоров', N'900', N'CLIENT', N'6', '2024-05-02T09:00:00'), \
                    (300, N'Анна', NULL, N'Смирнова', N'не число', N'CLIENT', N'6', '2024-05-04T09:00:00');"
                .to_string(),
            phone_insert(CONTACT, 100, "+7 (912) 100-00-00"),
            phone_insert(COMPANY, 200, "8 912 200 00 00"),
            phone_insert(CONTACT, 300, "+7 912 300-00-00"),
        ]
        .join("\n"),
    )
    .await;
    let order = "ORDER BY priority, date_modify DESC, entity_id DESC, entity_type";
    let arrangements: [(&str, Vec<(String, i32)>); 3] = [
        ("100", vec![("contact".into(), 100)]),
        ("200", vec![("company".into(), 200)]),
        // The known customer first, though the lead is newer.
        ("300", vec![("contact".into(), 300), ("lead".into(), 300)]),
    ];
    for (n, expected) in &arrangements {
        for caller in [
            format!("8912{n}0000"),
            format!("+7 (912) {n}-00-00"),
            format!("7912{n}0000"),
            format!("912{n}0000"),
        ] {
            let sql = format!(
                "SELECT entity_type, entity_id FROM dbo.b24sync_lookup_caller(N'{caller}', 10) {order}"
            );
            assert_eq!(&kinds_of(&mut c, &sql).await, expected, "{caller}");
        }
    }
    // The type filter is a WHERE on the type column; the keys function and the view agree.
    assert_eq!(
        kinds_of(
            &mut c,
            &format!("SELECT entity_type, entity_id FROM dbo.b24sync_lookup_caller_keys('+79123000000', '') \
                      WHERE entity_type IN ('lead') {order}")
        )
        .await,
        [("lead".into(), 300)]
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT COUNT(*) FROM dbo.b24sync_caller_phones WHERE e164 = '+79123000000' \
             AND entity_type IN ('contact', 'company')"
        )
        .await,
        1
    );
    // Old scenarios' columns: lead_id on a lead's row only.
    assert_eq!(
        ids_of(
            &mut c,
            "SELECT lead_id FROM dbo.b24sync_lookup_caller(N'89123000000', 10) WHERE lead_id IS NOT NULL"
        )
        .await,
        vec![300]
    );
    // Through the store, as `b24sync lookup` reads it: names, the contact's company.
    let q = |n: &str| CallerQuery::new(n, &b24sync::transform::phone::DefaultRegion::default(), 10);
    let m = s
        .lookup
        .lookup_caller(&q("89121000000"))
        .await
        .expect("lookup");
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(
        (m[0].entity_type.as_str(), m[0].entity_id),
        ("contact", 100)
    );
    assert_eq!(m[0].title.as_deref(), Some("Иван Петрович Сидоров"));
    assert_eq!(m[0].company_id, Some(900));
    assert_eq!(m[0].company_title.as_deref(), Some("ООО Ромашка"));
    assert_eq!(m[0].status_or_type.as_deref(), Some("CLIENT"));
    assert_eq!(m[0].phone_value.as_deref(), Some("+7 (912) 100-00-00"));
    let m = s
        .lookup
        .lookup_caller(&q("89123000000"))
        .await
        .expect("lookup");
    assert_eq!(
        m.iter()
            .map(|m| (m.entity_type.as_str(), m.entity_id))
            .collect::<Vec<_>>(),
        [("contact", 300), ("lead", 300)]
    );
    assert_eq!(m[0].title.as_deref(), Some("Анна Смирнова"));
    assert_eq!(
        m[0].company_title, None,
        "a COMPANY_ID that is not a number joins nothing"
    );
    let m = s
        .lookup
        .lookup_caller_in(&q("89123000000"), &EntityFilter::only(&[CONTACT, COMPANY]))
        .await
        .expect("lookup");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].entity_type, "contact");
    let m = s
        .lookup
        .lookup_caller(&q("89122000000"))
        .await
        .expect("lookup");
    assert_eq!(
        (m[0].entity_type.as_str(), m[0].company_title.as_deref()),
        ("company", Some("АО Ландыш"))
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
    assert!(live >= 18, "{live} live tests found");
    // Without the variable, asking for them is a failure that says what is missing.
    if std::env::var(ENV).map_or(true, |v| v.trim().is_empty()) {
        let err = std::panic::catch_unwind(require_server).expect_err("must not pass");
        let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("B24SYNC_TEST_MSSQL is not set"), "{text}");
    }
}
