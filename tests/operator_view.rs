//! The operator's view: JSON logs, no progress bar off a terminal, run history, doctor,
//! dry runs, `status` and `config example`, through the real binary.

mod common;

use std::time::Duration;

use b24sync_simulator::{Fault, FaultKind, Simulator, SimulatorConfig};
use common::*;
use serde_json::{json, Value};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_and_end_with_the_summary_fields() {
    let sim = simulator(150).await;
    let db = test_db();
    let out = run_cmd(
        b24sync()
            .args([
                "--log-format",
                "json",
                "sync",
                "--solution-field",
                SOLUTION,
                "--db",
            ])
            .arg(&db.path)
            .env("B24SYNC_WEBHOOK", sim.webhook_url()),
    )
    .await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let events = json_lines(&err);
    let summary = events
        .iter()
        .find(|e| e["summary"] == json!(true))
        .unwrap_or_else(|| panic!("no summary event: {err}"));
    for field in [
        "mode",
        "leads_read",
        "leads_upserted",
        "leads_deleted",
        "contact_values",
        "error_rows",
        "requests",
        "server_secs",
        "seconds",
        "exit_code",
    ] {
        assert!(
            summary.get(field).is_some(),
            "summary lacks {field}: {summary}"
        );
    }
    assert_eq!(summary["leads_read"], json!(150));
    assert_eq!(summary["leads_upserted"], json!(150));
    assert_eq!(summary["exit_code"], json!(0));
    assert_eq!(summary["mode"], json!("full"));
    assert!(!err.contains("sim0secret0webhook"));

    // A failure ends with a JSON summary too, with its exit code.
    let wrong = sim.webhook_url().replace("sim0secret0webhook", "nope");
    let out = run_cmd(
        b24sync()
            .args(["--log-format", "json", "sync", "--webhook", &wrong, "--db"])
            .arg(&db.path),
    )
    .await;
    assert_eq!(out.status.code(), Some(4));
    let events = json_lines(&text(&out.stderr));
    let last = events.last().unwrap();
    assert_eq!(last["exit_code"], json!(4), "{last}");
    assert_eq!(last["summary"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_progress_bar_when_stderr_is_not_a_terminal() {
    let sim = simulator(300).await;
    let db = test_db();
    let out = run_cmd(
        b24sync()
            .args(["sync", "--paging", "next", "--batch-size", "50", "--db"])
            .arg(&db.path)
            .env("B24SYNC_WEBHOOK", sim.webhook_url()),
    )
    .await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !err.contains('\r')
            && !err.contains("ETA")
            && !err.contains("leads/s")
            && !err.contains('\u{1b}'),
        "{err:?}"
    );
    assert!(err.contains("300 leads read"), "{err}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_stays_unfinished_in_the_history_and_the_next_run_works() {
    let sim = Simulator::start(SimulatorConfig {
        leads: 3000,
        latency: Duration::from_millis(150),
        ..Default::default()
    })
    .await
    .unwrap();
    let db = test_db();
    let child = b24sync()
        .args(["sync", "--paging", "next", "--batch-size", "50", "--db"])
        .arg(&db.path)
        .env("B24SYNC_WEBHOOK", sim.webhook_url())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    wait_until_positive(&db.path, "SELECT COUNT(*) FROM bitrix_leads").await;
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let _ = child.wait_with_output().await;
    let rows = query_strings(
        &db.path,
        "SELECT status, finished_at FROM b24sync_runs ORDER BY Id",
    );
    assert_eq!(
        rows,
        vec![vec![Some("running".to_string()), None]],
        "the killed run is unfinished"
    );

    let out = run_cmd(
        b24sync()
            .args(["sync", "--db"])
            .arg(&db.path)
            .env("B24SYNC_WEBHOOK", sim.webhook_url()),
    )
    .await;
    // 0, or 3 when some of the simulator's over-long titles were cut.
    let code = if count(&db.path, "SELECT COUNT(*) FROM bitrix_import_lead_error") > 0 {
        3
    } else {
        0
    };
    assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"), 3000);
    let rows = query_strings(
        &db.path,
        "SELECT status, exit_code, leads_read FROM b24sync_runs ORDER BY Id",
    );
    assert_eq!(rows.len(), 2);
    let status = if code == 0 { "ok" } else { "errors" };
    assert_eq!(
        rows[1],
        vec![
            Some(status.into()),
            Some(code.to_string()),
            Some("3000".into())
        ]
    );

    let out = run_cmd(b24sync().args(["status", "--db"]).arg(&db.path)).await;
    let status = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        status.contains("unfinished") && status.contains("watermark: 20"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_and_reports_what_would_change() {
    let sim = simulator(400).await;
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let portal = sim.portal();
    for id in [3, 4] {
        portal.update_lead(id, |l| {
            l.insert("TITLE".into(), json!("changed"));
        });
    }
    portal.add_lead(serde_json::Map::from_iter([(
        "TITLE".to_string(),
        json!("new"),
    )]));
    portal.delete_lead(10);
    let tables = [
        "bitrix_leads",
        "bitrix_lead_contacts",
        "bitrix_lead_solution",
        "bitrix_import_lead_error",
        "bitrix_lead_runtime",
        "b24sync_state",
        "b24sync_runs",
    ];
    let before: Vec<_> = tables.iter().map(|t| dump_any(&db.path, t)).collect();
    let out = run_cmd(
        b24sync()
            .args([
                "--log-format",
                "json",
                "sync",
                "--dry-run",
                "--full",
                "--solution-field",
                SOLUTION,
                "--db",
            ])
            .arg(&db.path)
            .env("B24SYNC_WEBHOOK", sim.webhook_url()),
    )
    .await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let after: Vec<_> = tables.iter().map(|t| dump_any(&db.path, t)).collect();
    for ((table, b), a) in tables.iter().zip(&before).zip(&after) {
        let changed: Vec<_> = b.iter().zip(a).filter(|(x, y)| x != y).take(2).collect();
        assert!(
            b.len() == a.len() && changed.is_empty(),
            "a dry run wrote to {table}: {} → {} rows; {changed:?}",
            b.len(),
            a.len()
        );
    }
    let summary = json_lines(&err)
        .into_iter()
        .find(|e| e["summary"] == json!(true))
        .unwrap();
    assert_eq!(summary["mode"], json!("dry-run full"));
    assert_eq!(summary["leads_inserted"], json!(1), "{summary}");
    assert_eq!(summary["leads_updated"], json!(2), "{summary}");
    assert_eq!(summary["leads_deleted"], json!(1), "{summary}");
    // 16.13: nothing was written, so the line says what would be, and which lead would go.
    let line = summary["message"].as_str().unwrap_or_default();
    assert!(line.contains("would load (1 new, 2 changed"), "{line}");
    assert!(line.contains(" 1 would delete (lead IDs 10)"), "{line}");
    assert!(!line.contains(" loaded ("), "{line}");
}

// 16.13: a dry run lists the first 20 IDs it would delete, then how many more.
#[test]
fn dry_run_summary_lists_the_first_ids_it_would_delete() {
    let s = b24sync::run::RunSummary {
        mode: "dry-run full".into(),
        leads_deleted: 25,
        deleted_sample: (1..=20).collect(),
        ..Default::default()
    };
    let line = b24sync::run::summary_line(&s);
    assert!(
        line.contains("25 would delete (lead IDs 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 and 5 more)"),
        "{line}"
    );
    let real = b24sync::run::RunSummary {
        mode: "full".into(),
        leads_loaded: 3,
        ..Default::default()
    };
    assert!(b24sync::run::summary_line(&real).contains("3 loaded ("));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_on_a_healthy_setup_and_names_each_failure() {
    let sim = simulator(50).await;
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let doctor = |extra: Vec<String>| {
        let mut c = b24sync();
        c.arg("doctor").args(extra);
        c
    };
    let healthy = vec![
        "--webhook".into(),
        sim.webhook_url(),
        "--solution-field".into(),
        SOLUTION.into(),
        "--db".into(),
        db.path.display().to_string(),
    ];
    let out = run_cmd(&mut doctor(healthy.clone())).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    assert!(report.contains("all checks passed"), "{report}");

    // Wrong webhook.
    let mut bad = healthy.clone();
    bad[1] = sim.webhook_url().replace("sim0secret0webhook", "wrong");
    let out = run_cmd(&mut doctor(bad)).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(10), "{report}");
    assert!(
        report.contains("FAIL bitrix24") && report.contains("NO_AUTH_FOUND"),
        "{report}"
    );
    assert!(
        !report.contains("wrong"),
        "no secret in the report: {report}"
    );

    // Missing CRM scope.
    sim.inject(Fault {
        method: Some("crm.lead.list".into()),
        kind: FaultKind::Error {
            status: 401,
            code: "insufficient_scope".into(),
            description: "The request requires higher privileges".into(),
        },
        times: 1,
    });
    let out = run_cmd(&mut doctor(healthy.clone())).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(10), "{report}");
    assert!(
        report.contains("insufficient_scope") && report.contains("CRM (crm)"),
        "{report}"
    );

    // A solution field that does not exist.
    let mut bad = healthy.clone();
    bad[3] = "UF_CRM_NOPE".into();
    let out = run_cmd(&mut doctor(bad)).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(10));
    assert!(
        report.contains("FAIL solution field") && report.contains("UF_CRM_NOPE does not exist"),
        "{report}"
    );

    // An unreachable database.
    let mut bad = healthy.clone();
    bad[5] = "/nonexistent/folder/leads.db".into();
    let out = run_cmd(&mut doctor(bad)).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(10));
    assert!(
        report.contains("FAIL database") && report.contains("/nonexistent/folder"),
        "{report}"
    );

    // A renamed contract column.
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    conn.execute_batch("ALTER TABLE bitrix_leads RENAME COLUMN sql_TITLE TO sql_TITLE_old;")
        .unwrap();
    drop(conn);
    let out = run_cmd(&mut doctor(healthy)).await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(10));
    assert!(
        report.contains("FAIL") && report.contains("sql_TITLE"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_example_is_a_file_b24sync_accepts() {
    let out = run_cmd(b24sync().args(["config", "example"])).await;
    let example = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        example.contains("B24SYNC_WEBHOOK") && example.contains("max_delete_share"),
        "{example}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b24sync.toml");
    // Commented out as printed, it is valid; with one real setting, it is used.
    std::fs::write(
        &file,
        format!(
            "{example}\ndb = \"{}\"\n",
            dir.path().join("x.db").display()
        ),
    )
    .unwrap();
    let out = run_cmd(b24sync().args(["init-db", "--config"]).arg(&file)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(dir.path().join("x.db").exists());
}

/// A table's rows, or an empty list when it does not exist.
fn dump_any(db: &std::path::Path, table: &str) -> Vec<Vec<rusqlite::types::Value>> {
    let exists = count(
        db,
        &format!("SELECT COUNT(*) FROM sqlite_master WHERE name = '{table}'"),
    );
    if exists == 0 {
        return vec![];
    }
    dump(db, table)
}

// 16.4: a quiet scheduled run says nothing when nothing needs a person, and one line per
// new error row when something does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_runs_print_only_new_error_rows() {
    let sim = simulator(300).await;
    let portal = sim.portal();
    assert!(portal.update_lead(5, |l| {
        l.insert("BIRTHDATE".into(), json!("31.02.1990"));
    }));
    let db = test_db();
    let quiet_sync = || {
        let mut cmd = b24sync();
        cmd.args(["sync", "-q", "--solution-field", SOLUTION, "--db"])
            .arg(&db.path)
            .env("B24SYNC_WEBHOOK", sim.webhook_url());
        cmd
    };
    let first = run_cmd(&mut quiet_sync()).await;
    assert_eq!(first.status.code(), Some(3), "{}", text(&first.stderr));
    assert!(
        text(&first.stderr).contains("lead 5"),
        "{}",
        text(&first.stderr)
    );
    // Let the overlap window pass, with one run to take the watermark along.
    portal.advance_clock(Duration::from_secs(600));
    run_cmd(&mut quiet_sync()).await;

    let unchanged = run_cmd(&mut quiet_sync()).await;
    assert_eq!(unchanged.status.code(), Some(3), "old error rows remain");
    assert_eq!(text(&unchanged.stdout), "");
    assert_eq!(text(&unchanged.stderr), "", "nothing for cron to mail");

    assert!(portal.update_lead(9, |l| {
        l.insert("BIRTHDATE".into(), json!("32.13.1991"));
    }));
    let new_bad = run_cmd(&mut quiet_sync()).await;
    let err = text(&new_bad.stderr);
    assert_eq!(new_bad.status.code(), Some(3), "{err}");
    assert_eq!(text(&new_bad.stdout), "");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("lead 9")
            && lines[0].contains("BIRTHDATE")
            && lines[0].contains("32.13.1991"),
        "{err}"
    );
}

// 16.9: no solution field: each sync warns once, and doctor says so with the candidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_solution_field_is_warned_about_by_sync_and_doctor() {
    let sim = simulator(50).await;
    let db = test_db();
    let s = sync_into(&sim, &db.path, &b24sync::run::SyncOptions::default())
        .await
        .unwrap();
    let warned: Vec<_> = s
        .warnings
        .iter()
        .filter(|w| w.contains("bitrix_lead_solution stays empty"))
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", s.warnings);
    assert!(warned[0].contains("--solution-field"), "{}", warned[0]);
    let out = run_cmd(
        b24sync()
            .args(["doctor", "--webhook", &sim.webhook_url(), "--db"])
            .arg(&db.path),
    )
    .await;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let line = report
        .lines()
        .find(|l| l.starts_with("warn solution field"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        line.contains("bitrix_lead_solution stays empty") && line.contains(SOLUTION),
        "{report}"
    );
    assert!(
        report.contains("crm.lead.userfield.list") && report.contains("Custom fields"),
        "{report}"
    );
    assert!(report.contains("1 warning(s)"), "{report}");
}

// 16.12: a run the deletion guard refused keeps its real counts in the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_run_records_what_it_did() {
    let sim = simulator(500).await;
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let portal = sim.portal();
    for id in 1..=300 {
        portal.delete_lead(id);
    }
    for id in [401, 402] {
        portal.update_lead(id, |l| {
            l.insert("TITLE".into(), json!("changed before the refusal"));
        });
    }
    let full = b24sync::run::SyncOptions {
        mode: b24sync::run::SyncMode::Full,
        ..options()
    };
    let err = sync_into(&sim, &db.path, &full).await.unwrap_err();
    assert_eq!(b24sync::exit::for_error(&err), 9, "{err}");
    let row = query_strings(
        &db.path,
        "SELECT status, exit_code, leads_read, leads_upserted, leads_deleted, message FROM b24sync_runs ORDER BY Id DESC LIMIT 1",
    );
    let row = &row[0];
    assert_eq!(row[0].as_deref(), Some("refused"), "{row:?}");
    assert_eq!(row[1].as_deref(), Some("9"));
    assert_eq!(row[2].as_deref(), Some("200"), "{row:?}");
    assert_eq!(row[3].as_deref(), Some("2"), "{row:?}");
    assert_eq!(row[4].as_deref(), Some("0"));
    assert!(
        row[5]
            .as_deref()
            .unwrap_or("")
            .contains("refusing to delete 300"),
        "{row:?}"
    );
}

// 16.12: `status` says "running" while a run holds the lock, "unfinished" once none does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_a_running_run_from_a_dead_one() {
    use b24sync::store::{RunHistory, RunLock};
    let db = test_db();
    let sink = b24sync::load::sqlite::SqliteSink::open(&db.path).unwrap();
    sink.run_started(&b24sync::store::RunRecord {
        started_at: Some(b24sync::run::local_now()),
        mode: "full".into(),
        status: "running".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let held = sink.lock_run(Duration::ZERO).await.unwrap();
    let status = || {
        let mut c = b24sync();
        c.args(["status", "--db"]).arg(&db.path);
        c
    };
    let out = run_cmd(&mut status()).await;
    let report = text(&out.stdout);
    assert!(report.contains(" running "), "{report}");
    assert!(!report.contains("unfinished"), "{report}");
    held.release().await.unwrap();
    let out = run_cmd(&mut status()).await;
    let report = text(&out.stdout);
    assert!(report.contains("unfinished"), "{report}");
    assert!(!report.contains(" running "), "{report}");
}
