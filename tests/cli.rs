//! The `b24sync` binary as a DBA or a scheduler runs it: exit codes and messages.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use b24sync::simulator::{Simulator, SimulatorConfig};
use common::*;
use serde_json::json;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_webhook_secret_fails_fast_with_a_clear_message() {
    let sim = simulator(100).await;
    let wrong = sim
        .webhook_url()
        .replace("sim0secret0webhook", "wrong0secret0value");
    let db = test_db();
    let started = Instant::now();
    let out = run_cmd(
        b24sync()
            .args(["sync", "--webhook", &wrong, "--db"])
            .arg(&db.path),
    )
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no retries on a refusal"
    );
    assert!(
        err.contains("NO_AUTH_FOUND") && err.contains("webhook"),
        "{err}"
    );
    assert!(
        !err.contains("wrong0secret0value"),
        "the secret never appears: {err}"
    );
    assert_eq!(sim.stats().http_requests, 1, "one request, not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_name_the_setting_and_exit_2() {
    let db = test_db();
    let out = run_cmd(b24sync().args(["sync", "--db"]).arg(&db.path)).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("B24SYNC_WEBHOOK"), "{}", stderr(&out));

    let out = run_cmd(
        b24sync()
            .args([
                "sync",
                "--webhook",
                "http://acme.bitrix24.ru/rest/1/topsecret/",
                "--db",
            ])
            .arg(&db.path),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("https") && !stderr(&out).contains("topsecret"),
        "{}",
        stderr(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b24sync.toml");
    std::fs::write(
        &file,
        "webhook = \"https://acme.bitrix24.ru/rest/1/x/\"\nsoluton_field = \"UF_CRM_1\"\n",
    )
    .unwrap();
    let out = run_cmd(b24sync().args(["sync", "--config"]).arg(&file)).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("soluton_field"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_exits_0_when_clean_and_3_when_leads_went_to_the_error_table() {
    let sim = simulator(120).await;
    let db = test_db();
    let out = run_cmd(
        b24sync()
            .args(["sync", "--solution-field", SOLUTION, "--db"])
            .arg(&db.path)
            .env("B24SYNC_WEBHOOK", sim.webhook_url()),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("120 leads read"),
        "the summary line: {}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("sim0secret0webhook"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"), 120);

    // An edit in Bitrix24 that leaves a value the column cannot hold.
    assert!(sim.portal().update_lead(7, |l| {
        l.insert("BIRTHDATE".into(), json!("31.02.2020"));
    }));
    let out = run_cmd(
        b24sync()
            .args(["sync", "--db"])
            .arg(&db.path)
            .env("B24SYNC_WEBHOOK", sim.webhook_url()),
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        count(
            &db.path,
            "SELECT COUNT(*) FROM bitrix_import_lead_error WHERE sql_ID = '7'"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_db_creates_the_tables_once() {
    let db = test_db();
    let out = run_cmd(b24sync().args(["init-db", "--db"]).arg(&db.path)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for t in [
        "bitrix_oauth",
        "bitrix_leads",
        "bitrix_lead_contacts",
        "bitrix_lead_solution",
        "bitrix_import_lead_error",
        "bitrix_lead_runtime",
    ] {
        assert_eq!(
            count(
                &db.path,
                &format!(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{t}'"
                )
            ),
            1,
            "{t}"
        );
    }
    let out = run_cmd(b24sync().args(["init-db", "--db"]).arg(&db.path)).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to create"));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_commits_the_batch_in_flight_and_exits_130() {
    let sim = Simulator::start(SimulatorConfig {
        leads: 3000,
        latency: Duration::from_millis(150),
        ..Default::default()
    })
    .await
    .unwrap();
    let db = test_db();
    let child = b24sync()
        .args(["sync", "--paging", "next", "--batch-size", "100", "--db"])
        .arg(&db.path)
        .env("B24SYNC_WEBHOOK", sim.webhook_url())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    // Wait until the first batch is committed, then interrupt.
    wait_until_positive(&db.path, "SELECT COUNT(*) FROM bitrix_leads").await;
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let stored = count(&db.path, "SELECT COUNT(*) FROM bitrix_leads");
    assert!(stored > 0 && stored < 3000, "{stored}");
    assert_eq!(stored % 50, 0, "whole pages only: {stored}");
}
