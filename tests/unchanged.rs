//! Issue 15 item 2 end to end, on the embedded database: an unchanged lead costs the database
//! nothing. A second full sync of a portal where nothing changed writes no row; an edit in
//! Bitrix24 writes exactly that lead; a DBA's manual edit of `bitrix_leads` is not seen by
//! `sync --full` (the lead's fingerprint still matches what Bitrix24 has) and is repaired by
//! `sync --full --verify`. The rule lives in src/prepare/fingerprint.rs.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use b24sync::run::{SyncMode, SyncOptions};
use common::*;
use serde_json::json;

/// The table the test's triggers fill: one row per row written in a table a batch touches.
const WRITES: &str = "test_writes";

/// The tables a batch writes, with the column naming the lead.
const LEAD_TABLES: [(&str, &str); 6] = [
    ("bitrix_leads", "sql_ID"),
    ("bitrix_lead_contacts", "sql_LEAD_ID"),
    ("bitrix_lead_solution", "sql_LEAD_ID"),
    ("bitrix_import_lead_error", "sql_ID"),
    ("b24sync_lead_phones", "lead_id"),
    ("b24sync_lead_fingerprints", "lead_id"),
];

/// Record every INSERT, UPDATE and DELETE of a row of the lead tables from now on.
fn record_writes(db: &Path) {
    let mut ddl =
        format!("CREATE TABLE {WRITES} (tbl TEXT NOT NULL, op TEXT NOT NULL, lead TEXT);\n");
    for (table, lead) in LEAD_TABLES {
        for op in ["INSERT", "UPDATE", "DELETE"] {
            let row = if op == "DELETE" { "OLD" } else { "NEW" };
            ddl.push_str(&format!(
                "CREATE TRIGGER test_{table}_{op} AFTER {op} ON {table} BEGIN \
                 INSERT INTO {WRITES} VALUES ('{table}', '{op}', CAST({row}.{lead} AS TEXT)); END;\n"
            ));
        }
    }
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(&ddl)
        .unwrap();
}

/// The writes recorded since the last call (table, operation, lead), and forget them.
fn take_writes(db: &Path) -> Vec<(String, String, String)> {
    let rows = query_strings(
        db,
        &format!("SELECT tbl, op, lead FROM {WRITES} ORDER BY rowid"),
    )
    .into_iter()
    .map(|r| {
        (
            r[0].clone().unwrap_or_default(),
            r[1].clone().unwrap_or_default(),
            r[2].clone().unwrap_or_default(),
        )
    })
    .collect();
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(&format!("DELETE FROM {WRITES};"))
        .unwrap();
    rows
}

fn leads_written(writes: &[(String, String, String)]) -> BTreeSet<String> {
    writes.iter().map(|w| w.2.clone()).collect()
}

fn title(db: &Path, id: i64) -> Option<String> {
    query_strings(
        db,
        &format!("SELECT sql_TITLE FROM bitrix_leads WHERE sql_ID = {id}"),
    )[0][0]
        .clone()
}

fn full(verify: bool) -> SyncOptions {
    SyncOptions {
        mode: SyncMode::Full,
        verify,
        ..options()
    }
}

/// Two leads without error rows (so they have a fingerprint), in ID order.
fn two_clean_leads(db: &Path) -> (i64, i64) {
    let ids: Vec<i64> = query_strings(
        db,
        "SELECT lead_id FROM b24sync_lead_fingerprints ORDER BY lead_id LIMIT 2",
    )
    .into_iter()
    .map(|r| r[0].as_deref().unwrap().parse().unwrap())
    .collect();
    (ids[0], ids[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_lead_is_skipped_and_verify_repairs_a_manual_edit() {
    let sim = simulator(300).await;
    let db = test_db();
    let first = sync_into(&sim, &db.path, &full(false)).await.unwrap();
    assert_eq!(first.outcome.leads_inserted, 300);
    let with_errors = count(
        &db.path,
        "SELECT COUNT(DISTINCT sql_ID) FROM bitrix_import_lead_error",
    );
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM b24sync_lead_fingerprints"),
        300 - with_errors,
        "every lead written without problems has its fingerprint"
    );
    record_writes(&db.path);

    // 1. Nothing changed in Bitrix24: a full sync reads every lead and writes no row.
    let again = sync_into(&sim, &db.path, &full(false)).await.unwrap();
    assert_eq!(again.leads_read, 300);
    assert_eq!(again.leads_loaded, 300);
    assert_eq!(
        (
            again.outcome.leads_inserted,
            again.outcome.leads_updated,
            again.outcome.leads_unchanged
        ),
        (0, 0, 300),
        "skipped leads are counted as unchanged"
    );
    assert_eq!(again.outcome.contacts_written, 0);
    assert_eq!(
        take_writes(&db.path),
        vec![],
        "an unchanged portal writes no row"
    );

    // 2. One lead edited in Bitrix24: exactly that lead is written.
    let (edited, by_hand) = two_clean_leads(&db.path);
    assert!(sim.portal().update_lead(edited, |l| {
        l.insert("TITLE".into(), json!("Edited in Bitrix24"));
    }));
    let after_edit = sync_into(&sim, &db.path, &full(false)).await.unwrap();
    assert_eq!(
        (
            after_edit.outcome.leads_inserted,
            after_edit.outcome.leads_updated,
            after_edit.outcome.leads_unchanged
        ),
        (0, 1, 299)
    );
    let writes = take_writes(&db.path);
    assert_eq!(
        leads_written(&writes),
        BTreeSet::from([edited.to_string()]),
        "{writes:?}"
    );
    assert!(writes.contains(&("bitrix_leads".into(), "UPDATE".into(), edited.to_string())));
    assert!(writes.contains(&(
        "b24sync_lead_fingerprints".into(),
        "UPDATE".into(),
        edited.to_string()
    )));
    assert_eq!(
        title(&db.path, edited).as_deref(),
        Some("Edited in Bitrix24")
    );

    // 3. A DBA edits a row by hand: the lead's fingerprint still matches Bitrix24's content,
    // so a plain full sync does not see the edit...
    let original = title(&db.path, by_hand);
    rusqlite::Connection::open(&db.path)
        .unwrap()
        .execute(
            "UPDATE bitrix_leads SET sql_TITLE = 'edited by hand' WHERE sql_ID = ?1",
            [by_hand],
        )
        .unwrap();
    take_writes(&db.path);
    let plain = sync_into(&sim, &db.path, &full(false)).await.unwrap();
    assert_eq!(plain.outcome.leads_updated, 0);
    assert_eq!(take_writes(&db.path), vec![]);
    assert_eq!(title(&db.path, by_hand).as_deref(), Some("edited by hand"));

    // ... and `sync --full --verify` (the binary, as a DBA runs it) compares every lead with
    // the table and repairs it, writing nothing else.
    let out = run_cmd(
        b24sync()
            .args([
                "sync",
                "--full",
                "--verify",
                "--solution-field",
                SOLUTION,
                "--db",
            ])
            .arg(&db.path)
            .env("B24SYNC_WEBHOOK", sim.webhook_url()),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(matches!(out.status.code(), Some(0) | Some(3)), "{stderr}");
    assert!(
        stderr.contains("(0 new, 1 changed, 299 unchanged)"),
        "the summary line: {stderr}"
    );
    assert_eq!(title(&db.path, by_hand), original);
    let writes = take_writes(&db.path);
    assert_eq!(
        writes,
        vec![("bitrix_leads".into(), "UPDATE".into(), by_hand.to_string())],
        "the repaired row only (its fingerprint was already right)"
    );

    // 4. Repaired and verified: the next full sync skips every lead again.
    let last = sync_into(&sim, &db.path, &full(false)).await.unwrap();
    assert_eq!(last.outcome.leads_unchanged, 300);
    assert_eq!(take_writes(&db.path), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_skips_like_a_sync_and_deleted_leads_lose_their_fingerprints() {
    let sim = simulator(120).await;
    let db = test_db();
    sync_into(&sim, &db.path, &full(false)).await.unwrap();
    let (edited, deleted) = two_clean_leads(&db.path);
    assert!(sim.portal().update_lead(edited, |l| {
        l.insert("NAME".into(), json!("Renamed"));
    }));
    assert!(sim.portal().delete_lead(deleted));
    let fingerprints_before = dump(&db.path, "b24sync_lead_fingerprints");

    // A dry run reports what the sync then does, and writes nothing (no fingerprint either).
    let dry = sync_into(
        &sim,
        &db.path,
        &SyncOptions {
            dry_run: true,
            ..full(false)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (dry.outcome.leads_updated, dry.outcome.leads_unchanged),
        (1, 118)
    );
    assert_eq!(
        dump(&db.path, "b24sync_lead_fingerprints"),
        fingerprints_before
    );

    let real = sync_into(&sim, &db.path, &full(false)).await.unwrap();
    assert_eq!(
        (real.outcome.leads_updated, real.outcome.leads_unchanged),
        (1, 118)
    );
    assert_eq!(real.leads_deleted, 1);
    let gone = format!("SELECT COUNT(*) FROM b24sync_lead_fingerprints WHERE lead_id = {deleted}");
    assert_eq!(
        count(&db.path, &gone),
        0,
        "the deleted lead's fingerprint went with it"
    );
    assert_ne!(
        dump(&db.path, "b24sync_lead_fingerprints"),
        fingerprints_before
    );
}
