//! What only the SQLite backend has (its SQL Server counterparts are in
//! `tests/mssql_live.rs`): `doctor` on hand-made files, a read-only file, a dry run on a file
//! `init-db` never saw.

use std::path::Path;

use b24sync::load::sqlite::SqliteSink;
use b24sync::store::{Diagnosis, StoreError};

use crate::backend::{Backend, Kind};
use crate::build::*;

fn check<'a>(report: &'a [Diagnosis], name: &str) -> &'a Diagnosis {
    report
        .iter()
        .find(|d| d.check == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:?}"))
}

/// Migration 1's DDL without its indexes, with `edit` applied: a hand-made database.
fn hand_made(path: &Path, edit: impl Fn(String) -> String) {
    let ddl = include_str!("../../sql/sqlite/0001_contract_tables.sql");
    let tables_only = ddl
        .split("-- The upsert key")
        .next()
        .expect("the DDL")
        .to_string();
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch(&edit(tables_only))
        .expect("hand-made tables");
}

async fn fresh() -> (Backend, std::path::PathBuf) {
    let b = Backend::fresh(Kind::Sqlite).await;
    let path = b.sqlite_path().expect("a file").to_path_buf();
    (b, path)
}

#[tokio::test]
async fn sqlite_only_preview_on_a_new_file_leaves_no_lead_behind() {
    let (b, _) = fresh().await;
    let seven = || batch(vec![small_lead(7, "seven", &[("71", "1")])]);
    // A dry run changes nothing, not even the schema: on a new file (as on a SQL Server
    // database init-db has not prepared) the preview says what to run instead.
    let err = b
        .stores
        .batches
        .preview_batch(seven(), dt(2024, 3, 1, 1, 4, 5))
        .await
        .expect_err("a preview before init-db");
    assert!(
        err.to_string().contains("run `b24sync init-db` first"),
        "{err}"
    );
    assert!(
        b.table_names().await.is_empty(),
        "the preview created tables"
    );
    b.stores.schema.init_schema().await.expect("init");
    let preview = b
        .stores
        .batches
        .preview_batch(seven(), dt(2024, 3, 1, 1, 4, 5))
        .await
        .expect("preview");
    assert_eq!(preview.leads_inserted, 1);
    for table in b.table_names().await {
        if table.starts_with("bitrix_") {
            let n = b.count(&format!("SELECT COUNT(*) FROM {table}")).await;
            assert_eq!(n, 0, "{table}");
        }
    }
}

#[tokio::test]
async fn sqlite_only_diagnose_names_a_renamed_contract_column() {
    let (b, path) = fresh().await;
    hand_made(&path, |ddl| {
        ddl.replace(
            "sql_TITLE NVARCHAR(4000) NULL",
            "sql_TITLE_OLD NVARCHAR(4000) NULL",
        )
        .replace(
            "sql_NAME NVARCHAR(3000) NULL",
            "sql_NAME NVARCHAR(100) NULL",
        )
    });
    let report = b.stores.schema.diagnose().await.expect("diagnose");
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
    let names = b.table_names().await;
    assert!(!names.iter().any(|n| n.starts_with("b24sync")), "{names:?}");
}

#[tokio::test]
async fn sqlite_only_diagnose_counts_duplicate_lead_rows_and_gives_the_fix() {
    let (b, path) = fresh().await;
    hand_made(&path, |ddl| ddl);
    b.exec(
        "INSERT INTO bitrix_leads (sql_ID, sql_TITLE) VALUES
           (5, 'old'), (5, 'new'), (9, 'a'), (9, 'b'), (9, 'c'), (10, 'single');",
    )
    .await;
    let report = b.stores.schema.diagnose().await.expect("diagnose");
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
    assert_eq!(b.count("SELECT COUNT(*) FROM bitrix_leads").await, 6);
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_only_diagnose_reports_a_read_only_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("oktell.db");
    let stores = SqliteSink::open(&path).expect("open").into_stores();
    stores.schema.init_schema().await.expect("init");
    drop(stores);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    // A process that may not write the file may not get past opening it either; when it
    // does, doctor must say why the next sync would fail.
    match SqliteSink::open(&path) {
        Err(e) => assert!(matches!(e, StoreError::Unreachable { .. }), "{e:?}"),
        Ok(sink) => {
            let report = sink
                .into_stores()
                .schema
                .diagnose()
                .await
                .expect("diagnose");
            let perms = check(&report, "permissions");
            assert!(!perms.ok, "{perms:?}");
            assert!(perms.detail.contains("read-only"), "{perms:?}");
            assert!(perms.fix.contains("write"), "{perms:?}");
            for name in ["tables", "columns", "indexes", "duplicates"] {
                assert!(check(&report, name).ok, "{report:?}");
            }
        }
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

#[tokio::test]
async fn sqlite_only_fingerprints_commit_and_roll_back_with_their_rows() {
    // Crash safety: a fingerprint never says "written" for rows that were not committed, nor
    // are rows committed without it. Triggers a test sets up make either write fail midway.
    let b = Backend::ready(Kind::Sqlite).await;
    let count_of = |table: &'static str| {
        let b = &b;
        async move { b.count(&format!("SELECT COUNT(*) FROM {table}")).await }
    };
    // Lead 2 has a solution (see `small_lead`), written before the fingerprints.
    b.exec(
        "CREATE TRIGGER refuse AFTER INSERT ON bitrix_lead_solution \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    )
    .await;
    let two = || batch(vec![small_lead(2, "two", &[("21", "+7 900 000-00-21")])]);
    let err = b
        .stores
        .batches
        .load_batch(two(), now())
        .await
        .expect_err("the trigger refuses the solution");
    assert!(err.to_string().contains("refused by the test"), "{err}");
    assert_eq!(count_of("bitrix_leads").await, 0);
    assert_eq!(count_of("b24sync_lead_fingerprints").await, 0);

    b.exec(
        "DROP TRIGGER refuse; CREATE TRIGGER refuse AFTER INSERT ON b24sync_lead_fingerprints \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    )
    .await;
    b.stores
        .batches
        .load_batch(two(), now())
        .await
        .expect_err("the trigger refuses the fingerprint");
    for table in [
        "bitrix_leads",
        "bitrix_lead_contacts",
        "bitrix_lead_solution",
    ] {
        assert_eq!(
            count_of(table).await,
            0,
            "{table}: rolled back with the fingerprint"
        );
    }

    b.exec("DROP TRIGGER refuse;").await;
    b.stores
        .batches
        .load_batch(two(), now())
        .await
        .expect("load");
    assert_eq!(count_of("bitrix_leads").await, 1);
    assert_eq!(count_of("b24sync_lead_fingerprints").await, 1);
}
