//! Incremental sync, deletions, the mass-deletion guard, the error review and scheduled
//! runs, end to end through the simulator and a real SQLite file.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use b24sync::run::{self, DeletionPolicy, RunError, SyncMode, SyncOptions};
use b24sync_simulator::{Simulator, SimulatorConfig};
use common::*;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

fn ids_in_db(db: &std::path::Path) -> BTreeSet<i64> {
    query_strings(db, "SELECT sql_ID FROM bitrix_leads")
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect()
}

/// The crm.lead.get requests a run needs to keep the whole lead in the error rows of
/// `db`'s leads: one per 50.
fn full_lead_rereads(db: &std::path::Path) -> u64 {
    (count(
        db,
        "SELECT COUNT(DISTINCT sql_ID) FROM bitrix_import_lead_error",
    ) as u64)
        .div_ceil(50)
}

fn ids_on_portal(sim: &Simulator) -> BTreeSet<i64> {
    sim.portal().lead_ids().into_iter().collect()
}

fn new_lead(title: &str, phone: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("TITLE".into(), json!(title));
    m.insert(
        "PHONE".into(),
        json!([{"ID": "880001", "VALUE_TYPE": "WORK", "VALUE": phone, "TYPE_ID": "PHONE"}]),
    );
    m
}

fn every_run_checks_deletions() -> SyncOptions {
    SyncOptions {
        deletion: DeletionPolicy {
            every_runs: 1,
            ..DeletionPolicy::default()
        },
        ..options()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_reflect_edits_additions_and_deletions_with_few_requests() {
    let sim = simulator(12_000).await;
    let db = test_db();
    let full = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(full.mode, "full");
    assert!(full.deletion_checked, "a full run always checks deletions");
    // The run's questions, ceil(12,000 / 2,500) = 5 batches of leads, their operators,
    // and one crm.lead.get batch for the leads with error rows (their rows keep the whole
    // lead).
    let full_requests = sim.stats().http_requests;
    assert_eq!(
        full_requests,
        7 + full_lead_rereads(&db.path),
        "{:?}",
        sim.stats().by_method
    );

    let portal = sim.portal();
    assert!(portal.update_lead(17, |l| {
        l.insert("TITLE".into(), json!("Изменено менеджером"));
        l.remove("PHONE");
    }));
    let added = portal.add_lead(new_lead("Новый лид", "+7 912 000-00-01"));
    assert!(portal.delete_lead(42));
    assert!(portal.delete_lead(11_999));

    // The next incremental run (deletion check not due): the questions, which find the
    // two changed leads, one request for them, and one for their operators (user.get).
    sim.reset_stats();
    let inc = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(inc.mode, "incremental");
    assert!(!inc.deletion_checked);
    assert_eq!(
        (inc.outcome.leads_updated, inc.outcome.leads_inserted),
        (1, 1),
        "{inc:?}"
    );
    assert_eq!(sim.stats().http_requests, 3, "{:?}", sim.stats().by_method);
    assert!(ids_in_db(&db.path).contains(&added));
    let t = query_strings(
        &db.path,
        "SELECT sql_TITLE FROM bitrix_leads WHERE sql_ID = 17",
    );
    assert_eq!(t[0][0].as_deref(), Some("Изменено менеджером"));
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM bitrix_lead_contacts WHERE sql_LEAD_ID = 17 AND sql_TYPE_ID = 'PHONE'"),
        0,
        "the removed phones are gone"
    );

    // A run whose deletion check is due: the deleted leads go, with their contact
    // values and solution. The questions, one request re-reading the two leads changed
    // within the overlap window, and the ID-only listing: a request per 2,500 IDs (cheap
    // ones, one field per lead).
    sim.reset_stats();
    let inc = sync_into(&sim, &db.path, &every_run_checks_deletions())
        .await
        .unwrap();
    assert_eq!(inc.mode, "incremental");
    assert_eq!(inc.leads_deleted, 2);
    assert_eq!(ids_in_db(&db.path), ids_on_portal(&sim));
    assert_eq!(
        count(
            &db.path,
            "SELECT COUNT(*) FROM bitrix_lead_contacts WHERE sql_LEAD_ID IN (42, 11999)"
        ),
        0
    );
    assert_eq!(
        count(
            &db.path,
            "SELECT COUNT(*) FROM bitrix_lead_solution WHERE sql_LEAD_ID IN (42, 11999)"
        ),
        0
    );
    assert_eq!(
        sim.stats().http_requests,
        1 + 1 + 5,
        "{:?}",
        sim.stats().by_method
    );

    // An unchanged portal, deletion check not due: a single request. (Leads changed within
    // the overlap before the last run's start are read again, so let the portal's clock
    // move past it first, with one run to take the watermark along.)
    portal.advance_clock(std::time::Duration::from_secs(600));
    sync_into(&sim, &db.path, &options()).await.unwrap();
    sim.reset_stats();
    let quiet = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(quiet.mode, "incremental");
    assert!(!quiet.deletion_checked);
    assert_eq!(sim.stats().http_requests, 1, "{:?}", sim.stats().by_method);
    assert_eq!(
        (quiet.outcome.leads_inserted, quiet.outcome.leads_updated),
        (0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_modified_during_a_run_is_picked_up_by_the_next() {
    let sim = Simulator::start(SimulatorConfig {
        leads: 1500,
        latency: Duration::from_millis(300),
        ..Default::default()
    })
    .await
    .unwrap();
    let db = test_db();
    let portal = sim.portal();
    // Paging by next: 30 requests of 300 ms; lead 3 is read in the first one and edited later.
    let opts = SyncOptions {
        paging: b24sync::extract::paging::Paging::Next,
        ..options()
    };
    let editor = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        portal.update_lead(3, |l| {
            l.insert("TITLE".into(), json!("edited while the run was reading"));
        })
    });
    sync_into(&sim, &db.path, &opts).await.unwrap();
    assert!(editor.await.unwrap());
    let stale = query_strings(
        &db.path,
        "SELECT sql_TITLE FROM bitrix_leads WHERE sql_ID = 3",
    );
    assert_ne!(
        stale[0][0].as_deref(),
        Some("edited while the run was reading"),
        "the first run read lead 3 before the edit"
    );
    let next = sync_into(&sim, &db.path, &opts).await.unwrap();
    assert_eq!(next.mode, "incremental");
    let fresh = query_strings(
        &db.path,
        "SELECT sql_TITLE FROM bitrix_leads WHERE sql_ID = 3",
    );
    assert_eq!(
        fresh[0][0].as_deref(),
        Some("edited while the run was reading")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_time_zones_ahead_and_behind_lose_nothing() {
    for offset_hours in [3, -5, 10] {
        let sim = Simulator::start(SimulatorConfig {
            leads: 400,
            utc_offset_secs: offset_hours * 3600,
            ..Default::default()
        })
        .await
        .unwrap();
        let db = test_db();
        sync_into(&sim, &db.path, &options()).await.unwrap();
        let watermark = b24sync::load::sqlite::SqliteSink::open(&db.path)
            .unwrap()
            .read_state_value(run::state_keys::WATERMARK)
            .await
            .unwrap()
            .expect("a watermark");
        let sign = if offset_hours >= 0 { '+' } else { '-' };
        assert!(
            watermark.ends_with(&format!("{sign}{:02}:00", offset_hours.abs())),
            "the portal's own clock: {watermark}"
        );
        // Edits right after the run, in the portal's zone, are all found.
        for id in [1, 200, 400] {
            assert!(sim.portal().update_lead(id, |l| {
                l.insert("NAME".into(), json!(format!("tz{offset_hours}")));
            }));
        }
        let inc = sync_into(&sim, &db.path, &options()).await.unwrap();
        assert_eq!(inc.mode, "incremental");
        assert_eq!(
            inc.outcome.leads_updated, 3,
            "offset {offset_hours}: {inc:?}"
        );
        assert_eq!(
            count(
                &db.path,
                &format!("SELECT COUNT(*) FROM bitrix_leads WHERE sql_NAME = 'tz{offset_hours}'")
            ),
            3
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mass_deletion_guard_refuses_when_the_portal_looks_empty() {
    let sim = simulator(500).await;
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    for id in sim.portal().lead_ids() {
        sim.portal().delete_lead(id);
    }
    let err = sync_into(
        &sim,
        &db.path,
        &SyncOptions {
            mode: SyncMode::Full,
            ..options()
        },
    )
    .await
    .unwrap_err();
    match &err {
        RunError::DeletionGuard {
            would_delete,
            in_table,
            ..
        } => assert_eq!((*would_delete, *in_table), (500, 500)),
        other => panic!("expected the guard, got {other:?}"),
    }
    assert!(err.to_string().contains("CRM permission"), "{err}");
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"),
        500,
        "nothing deleted"
    );
    assert!(count(&db.path, "SELECT COUNT(*) FROM bitrix_lead_contacts") > 0);
    // A real mass deletion goes through when allowed explicitly.
    let allowed = SyncOptions {
        mode: SyncMode::Full,
        deletion: DeletionPolicy {
            max_share: 1.0,
            ..DeletionPolicy::default()
        },
        ..options()
    };
    let s = sync_into(&sim, &db.path, &allowed).await.unwrap();
    assert_eq!(s.leads_deleted, 500);
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_reads_only_recent_leads_and_the_next_run_continues_from_there() {
    let sim = simulator(800).await;
    let leads = sim.portal().leads();
    let mut modified: Vec<String> = leads
        .iter()
        .map(|l| text_field(l, "DATE_MODIFY").unwrap())
        .collect();
    modified.sort();
    let since = modified[600].clone(); // the most recent ~200
    let expected: BTreeSet<i64> = leads
        .iter()
        .filter(|l| {
            let t = chrono::DateTime::parse_from_rfc3339(&text_field(l, "DATE_MODIFY").unwrap())
                .unwrap();
            t >= chrono::DateTime::parse_from_rfc3339(&since).unwrap()
        })
        .map(|l| text_field(l, "ID").unwrap().parse().unwrap())
        .collect();
    let db = test_db();
    let s = sync_into(
        &sim,
        &db.path,
        &SyncOptions {
            mode: SyncMode::Since(since.clone()),
            ..options()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.mode, "incremental");
    assert_eq!(ids_in_db(&db.path), expected);
    // Without an offset, --since is read in the portal's zone (+03:00 here).
    let db2 = test_db();
    let naive = since[..19].to_string();
    sync_into(
        &sim,
        &db2.path,
        &SyncOptions {
            mode: SyncMode::Since(naive),
            ..options()
        },
    )
    .await
    .unwrap();
    assert_eq!(ids_in_db(&db2.path), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_retry_removes_fixed_leads_and_keeps_failing_ones_once() {
    let sim = simulator(300).await;
    let portal = sim.portal();
    for id in [21, 22, 23, 24] {
        assert!(portal.set_field_raw(id, "BIRTHDATE", json!("31.02.1990")));
    }
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(
        count(
            &db.path,
            "SELECT COUNT(*) FROM bitrix_import_lead_error WHERE sql_ID IN ('21','22','23','24')"
        ),
        4
    );

    // Fix two in Bitrix24, delete one, leave one broken.
    for id in [21, 22] {
        assert!(portal.update_lead(id, |l| {
            l.insert("BIRTHDATE".into(), json!("1990-02-28T03:00:00+03:00"));
        }));
    }
    assert!(portal.delete_lead(23));
    let client = client_for(&sim, CancellationToken::new());
    let sink = run::RunStores::from(
        &b24sync::load::sqlite::SqliteSink::open(&db.path)
            .unwrap()
            .into_stores(),
    );
    sim.reset_stats();
    let r = run::retry_errors(&client, &sink, &options()).await.unwrap();
    assert_eq!(
        (r.retried, r.now_clean, r.still_failing, r.gone),
        (3, 2, 1, 1),
        "{r:?}"
    );
    // The questions, the leads, and their whole JSON for the one still failing.
    assert!(
        sim.stats().http_requests <= 3,
        "{:?}",
        sim.stats().by_method
    );
    let left = query_strings(
        &db.path,
        "SELECT sql_ID, sql_error FROM bitrix_import_lead_error ORDER BY sql_ID",
    );
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0][0].as_deref(), Some("24"));
    assert!(left[0][1].as_deref().unwrap().contains("BIRTHDATE"));
    let birth = query_strings(
        &db.path,
        "SELECT sql_BIRTHDATE FROM bitrix_leads WHERE sql_ID = 21",
    );
    assert_eq!(birth[0][0].as_deref(), Some("1990-02-28 00:00:00"));
    assert_eq!(
        count(
            &db.path,
            "SELECT COUNT(*) FROM bitrix_leads WHERE sql_ID = 23"
        ),
        0,
        "a lead gone from Bitrix24 goes here too"
    );
    // Retrying again changes nothing and duplicates nothing.
    let again = run::retry_errors(&client, &sink, &options()).await.unwrap();
    assert_eq!((again.retried, again.still_failing), (1, 1));
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM bitrix_import_lead_error"),
        1
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_every_syncs_each_interval_and_stops_cleanly_on_sigterm() {
    let sim = simulator(300).await;
    let db = test_db();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_b24sync"));
    cmd.args(["run", "--every", "1s", "--db"])
        .arg(&db.path)
        .env("B24SYNC_WEBHOOK", sim.webhook_url())
        .env_remove("B24SYNC_CONFIG")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    let pid = child.id().unwrap();
    // Wait for the first (full) run, then edit, then wait for an incremental run to load it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_or_zero(&db.path, "SELECT COUNT(*) FROM bitrix_leads") < 300
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sim.portal().update_lead(9, |l| {
        l.insert("TITLE".into(), json!("seen by the next interval"));
    });
    while count_or_zero(
        &db.path,
        "SELECT COUNT(*) FROM bitrix_leads WHERE sql_TITLE = 'seen by the next interval'",
    ) == 0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("full sync finished") && err.contains("incremental sync finished"),
        "{err}"
    );
    assert!(err.contains("stopped"), "{err}");
    assert_eq!(
        count(
            &db.path,
            "SELECT COUNT(*) FROM bitrix_leads WHERE sql_TITLE = 'seen by the next interval'"
        ),
        1
    );
}
