//! The `b24sync` binary as a DBA or a scheduler runs it: exit codes and messages.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use b24sync_simulator::{Simulator, SimulatorConfig};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_db_says_one_line_per_migration_and_nothing_with_q() {
    // Issue 16.5: the first init-db printed a line per table and index, even with -q.
    let quiet = test_db();
    let out = run_cmd(b24sync().args(["init-db", "-q", "--db"]).arg(&quiet.path)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "init-db -q printed on stdout"
    );
    assert_eq!(stderr(&out), "", "init-db -q printed on stderr");
    assert!(
        count(&quiet.path, "SELECT COUNT(*) FROM bitrix_leads") == 0,
        "tables exist"
    );

    let loud = test_db();
    let out = run_cmd(b24sync().args(["init-db", "--db"]).arg(&loud.path)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines = stdout.lines().filter(|l| l.starts_with("created ")).count();
    let migrations = count(&loud.path, "SELECT COUNT(*) FROM b24sync_migrations") as usize;
    assert!(lines >= 1, "init-db said nothing it created: {stdout}");
    assert!(
        lines <= migrations,
        "{lines} 'created' lines for {migrations} migrations: {stdout}"
    );
    assert!(
        !stdout.contains("created index"),
        "per-object detail at INFO: {stdout}"
    );
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

/// Runs `args` with stdout a pipe whose reading end is closed at once, as `| head -0`
/// would, and returns what the process left on stderr and its exit status.
async fn with_closed_stdout(args: &[&str], db: &std::path::Path) -> Output {
    let mut child = b24sync()
        .args(args)
        .arg("--db")
        .arg(db)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("b24sync finishes")
        .unwrap()
}

fn assert_quiet_end(what: &str, out: &Output) {
    let err = stderr(out);
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(!err.contains("Broken pipe"), "{what}: {err}");
    assert_ne!(out.status.code(), Some(101), "{what}: {err}");
    assert_eq!(out.status.code(), Some(0), "{what}: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_lookup_errors_list_and_status_quietly() {
    // 20 leads (the lookup's most) with one number and titles of 3,000 Cyrillic letters:
    // about 120 KB of answer, more than a pipe holds, so a write fails whatever the timing.
    let sim = simulator(40).await;
    for id in sim.portal().lead_ids().into_iter().take(25) {
        assert!(sim.portal().update_lead(id, |l| {
            l.insert(
                "PHONE".into(),
                json!([{ "VALUE": "+7 912 345-67-01", "VALUE_TYPE": "WORK" }]),
            );
            l.insert("TITLE".into(), json!("Я".repeat(3000)));
        }));
    }
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let full = run_cmd(
        b24sync()
            .args(["lookup", "89123456701", "--db"])
            .arg(&db.path),
    )
    .await;
    assert!(
        full.stdout.len() > 100_000,
        "the arrangement: {} bytes",
        full.stdout.len()
    );
    let out = with_closed_stdout(&["lookup", "89123456701"], &db.path).await;
    assert_quiet_end("lookup", &out);

    // Error rows and runs enough for ~250 KB of listing each.
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    for i in 0..2000 {
        conn.execute(
            "INSERT INTO bitrix_import_lead_error (sql_ID, sql_error, sql_date_error) \
             VALUES (?1, ?2, '2026-01-01 00:00:00')",
            rusqlite::params![i.to_string(), "x".repeat(120)],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO b24sync_runs (started_at, finished_at, mode, status, leads_read, \
             leads_upserted, leads_deleted, error_rows, seconds, exit_code) \
             VALUES ('2026-01-01 00:00:00', '2026-01-01 00:00:01', 'incremental', 'ok', 1, 1, 0, 0, 1.0, 0)",
            [],
        )
        .unwrap();
    }
    drop(conn);
    let out = with_closed_stdout(&["errors", "list"], &db.path).await;
    assert_quiet_end("errors list", &out);
    let out = with_closed_stdout(&["status", "--limit", "2000"], &db.path).await;
    assert_quiet_end("status", &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_on_a_missing_database_fail_naming_it_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("leads-typo.db");
    let shown = missing.display().to_string();
    let cases: &[&[&str]] = &[
        &["lookup", "89123456789"],
        &["lookup", "89123456789", "--json"],
        &["status"],
        &["status", "--json"],
        &["errors", "list"],
        &["errors", "clear", "--before", "2024-01-01"],
        &[
            "errors",
            "retry",
            "--webhook",
            "https://acme.bitrix24.ru/rest/1/s3cr3t/",
        ],
        &["token", "status", "--client-id", "local.abc"],
        &["token", "refresh", "--client-id", "local.abc"],
    ];
    for args in cases {
        let out = run_cmd(b24sync().args(*args).arg("--db").arg(&missing)).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {err}");
        assert!(err.contains(&shown), "{args:?} names the path: {err}");
        assert!(
            err.contains("no database") && err.contains("b24sync init-db"),
            "{args:?} says what to do: {err}"
        );
        assert!(!missing.exists(), "{args:?} created {shown}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?} left files behind"
        );
    }
    // doctor reports it as a failed check (exit 10), and creates nothing either.
    let out = run_cmd(b24sync().args(["doctor", "--db"]).arg(&missing)).await;
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(10), "{report}");
    assert!(
        report.contains(&shown) && report.contains("no database"),
        "{report}"
    );
    assert!(!missing.exists());

    // The commands that fill a database still create it.
    let out = run_cmd(b24sync().args(["init-db", "--db"]).arg(&missing)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run_cmd(b24sync().args(["status", "--db"]).arg(&missing)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_b24sync_database_is_named_and_left_alone() {
    let db = test_db();
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);")
        .unwrap();
    drop(conn);
    for args in [
        &["lookup", "89123456789"][..],
        &["status"],
        &["errors", "list"],
    ] {
        let out = run_cmd(b24sync().args(args).arg("--db").arg(&db.path)).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {err}");
        assert!(
            err.contains("not a b24sync database") && err.contains(&db.path.display().to_string()),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        count(
            &db.path,
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
        ),
        1,
        "no table was created in it"
    );
    let mode: String = rusqlite::Connection::open(&db.path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "its journal mode was not changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_status_in_webhook_mode_says_webhooks_keep_no_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("leads.db");
    let out = run_cmd(b24sync().args(["token", "status", "--db"]).arg(&db).env(
        "B24SYNC_WEBHOOK",
        "https://acme.bitrix24.ru/rest/1/s3cr3tw3bh00k/",
    ))
    .await;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("webhook mode keeps no tokens"), "{text}");
    assert!(!text.contains("pass --client-id"), "{text}");
    assert!(!text.contains("s3cr3tw3bh00k"), "{text}");
    assert!(!db.exists());
    // Neither a webhook nor an app: the old advice still applies.
    let out = run_cmd(b24sync().args(["token", "status", "--db"]).arg(&db)).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--client-id"), "{}", stderr(&out));
}

async fn help(args: &[&str]) -> String {
    let out = run_cmd(b24sync().args(args).arg("--help")).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_command_lists_only_the_flags_it_uses() {
    for cmd in [&["doctor"][..], &["run"], &["errors", "retry"]] {
        let text = help(cmd).await;
        for flag in ["--dry-run", "--full", "--since", "--rebind-portal"] {
            assert!(!text.contains(flag), "{cmd:?} --help lists {flag}:\n{text}");
        }
        assert!(
            text.contains("--webhook") && text.contains("--db"),
            "{cmd:?}:\n{text}"
        );
    }
    let text = help(&["sync"]).await;
    for flag in [
        "--dry-run",
        "--full",
        "--since",
        "--rebind-portal",
        "--give-up-after",
        "--overlap",
    ] {
        assert!(text.contains(flag), "sync --help lacks {flag}:\n{text}");
    }
    let text = help(&["errors", "clear"]).await;
    let line = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("--before"))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        line.contains("sql_date_error") && line.contains("YYYY-MM-DD"),
        "errors clear --help explains --before: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_rate_is_refused_by_value_with_the_valid_range() {
    let db = test_db();
    let out = run_cmd(
        b24sync()
            .args([
                "sync",
                "--webhook",
                "https://acme.bitrix24.ru/rest/1/x/",
                "--rate",
                "-1",
                "--db",
            ])
            .arg(&db.path),
    )
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("unexpected argument"), "{err}");
    assert!(
        err.contains("--rate")
            && err.contains("got -1")
            && err.contains("above 0")
            && err.contains("1000"),
        "{err}"
    );
    assert!(!db.path.exists(), "a refused setting writes nothing");
    let out = run_cmd(
        b24sync()
            .args([
                "sync",
                "--webhook",
                "https://acme.bitrix24.ru/rest/1/x/",
                "--give-up-after",
                "0",
                "--db",
            ])
            .arg(&db.path),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--give-up-after"), "{}", stderr(&out));
}

/// The lookup's help promises that these forms find the lead; on a synced database with a
/// Russian and a Belarusian number they do (and the Belarusian national form needs the
/// region, as the help says).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lookup_help_examples_find_the_leads_they_promise() {
    let text = help(&["lookup"]).await.replace('\n', " ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for example in [
        "89123456789",
        "+7 (912) 345-67-89",
        "+375 29 123-45-67",
        "80291234567 needs --phone-region BY",
    ] {
        assert!(
            text.contains(example),
            "lookup --help shows {example:?}: {text}"
        );
    }
    let sim = simulator(30).await;
    let ids = sim.portal().lead_ids();
    let (ru, by) = (ids[3], ids[4]);
    for (id, phone) in [(ru, "+7 912 345-67-89"), (by, "+375 29 123-45-67")] {
        assert!(sim.portal().update_lead(id, |l| {
            l.insert(
                "PHONE".into(),
                json!([{ "VALUE": phone, "VALUE_TYPE": "WORK" }]),
            );
        }));
    }
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let found = |args: Vec<&'static str>| {
        let path = db.path.clone();
        async move {
            let out = run_cmd(b24sync().args(&args).arg("--json").arg("--db").arg(&path)).await;
            assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let ids: Vec<i64> = doc["matches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["entity_id"].as_i64().unwrap())
                .collect();
            (doc["e164"].clone(), ids)
        }
    };
    for args in [
        vec!["lookup", "89123456789"],
        vec!["lookup", "+7 (912) 345-67-89"],
    ] {
        let (e164, ids) = found(args.clone()).await;
        assert_eq!(e164, json!("+79123456789"), "{args:?}");
        assert!(ids.contains(&ru), "{args:?}: {ids:?}");
    }
    for args in [
        vec!["lookup", "+375 29 123-45-67"],
        vec!["lookup", "80291234567", "--phone-region", "BY"],
    ] {
        let (e164, ids) = found(args.clone()).await;
        assert_eq!(e164, json!("+375291234567"), "{args:?}");
        assert!(ids.contains(&by), "{args:?}: {ids:?}");
    }
    // What the help warns about: read as Russian, the BY national form finds nobody.
    let (_, ids) = found(vec!["lookup", "80291234567"]).await;
    assert!(!ids.contains(&by), "{ids:?}");
}
