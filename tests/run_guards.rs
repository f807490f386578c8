//! The run's integrity guards, end to end: deletions only behind the mass-deletion guard,
//! answers that cannot be read never taken for "gone", a database bound to one portal,
//! `--since` that cannot skip leads.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use b24sync::exit;
use b24sync::extract::client::{Bitrix24Client, ClientConfig};
use b24sync::extract::Webhook;
use b24sync::load::sqlite::SqliteSink;
use b24sync::prepare::prepare;
use b24sync::run::{self, RunError};
use b24sync::store::{BatchWriter, StateStore};
use b24sync::transform::{self, TransformContext};
use b24sync_simulator::{Simulator, SimulatorConfig};
use common::*;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// What the stub answers for one call: (method, query string or JSON params) → `result`.
type Answer = dyn Fn(&str, &str) -> Value + Send + Sync;

/// A portal stand-in that answers every method (also inside `batch`) with what the test
/// says: for answers the simulator never gives (tampered, malformed).
struct StubPortal {
    base: String,
    requests: Arc<AtomicU64>,
    _task: tokio::task::JoinHandle<()>,
}

impl StubPortal {
    async fn start(answer: impl Fn(&str, &str) -> Value + Send + Sync + 'static) -> StubPortal {
        let answer: Arc<Answer> = Arc::new(answer);
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: bytes::Bytes| {
            let answer = answer.clone();
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let method = uri
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .trim_end_matches(".json")
                    .to_string();
                let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let result = if method == "batch" {
                    let mut results = serde_json::Map::new();
                    if let Some(cmd) = params.get("cmd").and_then(Value::as_object) {
                        for (name, command) in cmd {
                            let command = command.as_str().unwrap_or("");
                            let (m, q) = command.split_once('?').unwrap_or((command, ""));
                            results.insert(name.clone(), answer(m, q));
                        }
                    }
                    json!({"result": results, "result_error": [], "result_total": [],
                           "result_next": [], "result_time": []})
                } else {
                    answer(&method, &params.to_string())
                };
                axum::Json(json!({ "result": result }))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StubPortal {
            base: format!("http://{addr}/rest/1/stubsecret/"),
            requests,
            _task: task,
        }
    }

    fn client(&self) -> Bitrix24Client {
        let config = ClientConfig {
            max_attempts: 1,
            ..ClientConfig::default()
        };
        Bitrix24Client::new(
            Webhook::parse(&self.base).unwrap(),
            config,
            CancellationToken::new(),
        )
        .unwrap()
    }
}

fn portal_now() -> Value {
    json!("2026-11-20T10:00:00+03:00")
}

fn lead(id: i64, birthdate: &str) -> Value {
    json!({
        "ID": id.to_string(),
        "TITLE": format!("Lead {id}"),
        "BIRTHDATE": birthdate,
        "DATE_MODIFY": "2026-11-01T10:00:00+03:00",
        "PHONE": [{"ID": format!("{}", id * 10), "VALUE_TYPE": "WORK", "VALUE": "+7 900 000-00-00", "TYPE_ID": "PHONE"}],
    })
}

/// Loads `leads` straight through the sink (no portal involved, so no portal binding).
async fn seed(db: &std::path::Path, leads: &[Value]) {
    let sink = SqliteSink::open(db).unwrap();
    let ctx = TransformContext {
        time_policy: transform::TimePolicy::Portal,
        solution_field: None,
        solution_labels: Default::default(),
        phone_region: Default::default(),
    };
    let batch = transform::transform_page(b24sync::schema::LEAD, leads, &ctx);
    sink.load_batch(prepare(batch), run::local_now())
        .await
        .unwrap();
}

fn table_dump(db: &std::path::Path) -> Vec<Vec<Vec<rusqlite::types::Value>>> {
    [
        "bitrix_leads",
        "bitrix_lead_contacts",
        "bitrix_lead_solution",
        "bitrix_import_lead_error",
    ]
    .iter()
    .map(|t| dump(db, t))
    .collect()
}

// 11.1: `errors retry` against a portal whose lists come back empty (what a webhook that
// lost its CRM permission sees) must not delete the leads it cannot find.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_retry_goes_through_the_deletion_guard() {
    let sim = simulator(5_700).await;
    let portal = sim.portal();
    let ids = portal.lead_ids();
    let broken: Vec<i64> = ids.iter().copied().take(1_203).collect();
    for id in &broken {
        assert!(portal.set_field_raw(*id, "BIRTHDATE", json!("31.02.1990")));
    }
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let error_rows = count(&db.path, "SELECT COUNT(*) FROM bitrix_import_lead_error");
    assert!(error_rows >= 1_203, "{error_rows}");
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"), 5_700);
    let before = table_dump(&db.path);

    // The portal now lists nothing: every `@ID` listing comes back empty.
    for id in &ids {
        portal.delete_lead(*id);
    }
    let client = client_for(&sim, CancellationToken::new());
    let sink = run::RunStores::from(&SqliteSink::open(&db.path).unwrap().into_stores());
    let err = run::retry_errors(&client, &sink, &options())
        .await
        .unwrap_err();
    match &err {
        RunError::DeletionGuard {
            would_delete,
            in_table,
            ..
        } => {
            assert!(*would_delete >= 1_203, "{err}");
            assert_eq!(*in_table, 5_700, "the share is judged against the table");
        }
        other => panic!("expected the deletion guard, got {other:?}"),
    }
    assert_eq!(exit::for_error(&err), exit::DELETION_REFUSED);
    assert_eq!(table_dump(&db.path), before, "nothing changed");

    // The same deletions go through when allowed explicitly, by the same flag as sync.
    let allowed = run::SyncOptions {
        deletion: run::DeletionPolicy {
            max_share: 1.0,
            ..Default::default()
        },
        ..options()
    };
    let r = run::retry_errors(&client, &sink, &allowed).await.unwrap();
    assert!(r.gone >= 1_203, "{r:?}");
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"),
        5_700 - r.gone as i64
    );
}

// 11.1: a sub-answer that is not a list is a protocol error, never "these leads are gone".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_retry_treats_a_non_list_answer_as_a_protocol_error() {
    let db = test_db();
    seed(
        &db.path,
        &[lead(1, "31.02.1990"), lead(2, "1990-01-01T00:00:00+03:00")],
    )
    .await;
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM bitrix_import_lead_error"),
        1
    );
    let before = table_dump(&db.path);
    let stub = StubPortal::start(|method, _| match method {
        "server.time" => portal_now(),
        // An object where the list of leads belongs.
        "crm.lead.list" => json!({"error": "tampered"}),
        _ => json!([]),
    })
    .await;
    let sink = run::RunStores::from(&SqliteSink::open(&db.path).unwrap().into_stores());
    let err = run::retry_errors(
        &stub.client(),
        &sink,
        &run::SyncOptions {
            deletion: run::DeletionPolicy {
                max_share: 1.0,
                ..Default::default()
            },
            ..run::SyncOptions::default()
        },
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert_eq!(exit::for_error(&err), exit::BITRIX_UNREACHABLE, "{msg}");
    assert!(
        msg.contains("crm.lead.list") && msg.contains("an object") && msg.contains("tampered"),
        "{msg}"
    );
    assert_eq!(table_dump(&db.path), before, "nothing deleted");
    assert!(stub.requests.load(Ordering::SeqCst) >= 2);
}

fn state(db: &std::path::Path, key: &str) -> Option<String> {
    query_strings(
        db,
        &format!("SELECT value FROM b24sync_state WHERE name = '{key}'"),
    )
    .into_iter()
    .next()
    .and_then(|r| r[0].clone())
}

fn host_of(sim: &b24sync_simulator::Simulator) -> String {
    sim.base_url().trim_start_matches("http://").to_string()
}

// 11.3: a database belongs to the portal it was first synced from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refuses_another_portal_until_rebound_on_purpose() {
    let a = simulator(200).await;
    let db = test_db();
    sync_into(&a, &db.path, &options()).await.unwrap();
    assert_eq!(
        state(&db.path, run::state_keys::PORTAL_DOMAIN).as_deref(),
        Some(host_of(&a).as_str())
    );
    let watermark_a = state(&db.path, run::state_keys::WATERMARK).unwrap();

    // Another portal (another simulator: another host:port), with other leads.
    let b = Simulator::start(SimulatorConfig {
        leads: 150,
        seed: 7,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    b.portal()
        .advance_clock(std::time::Duration::from_secs(86_400 * 30));
    let before = table_dump(&db.path);
    let runs_before = count(&db.path, "SELECT COUNT(*) FROM b24sync_runs");
    let states_before = dump(&db.path, "b24sync_state");
    let err = sync_into(&b, &db.path, &options()).await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(exit::for_error(&err), exit::CONFIG, "{msg}");
    assert!(
        msg.contains(&host_of(&a)) && msg.contains(&host_of(&b)) && msg.contains("--rebind-portal"),
        "{msg}"
    );
    assert_eq!(table_dump(&db.path), before, "no row changed");
    assert_eq!(dump(&db.path, "b24sync_state"), states_before);
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM b24sync_runs"),
        runs_before
    );
    assert_eq!(
        b.stats().http_requests,
        0,
        "nothing was read from the other portal"
    );
    // `errors retry` refuses as well.
    let sink = run::RunStores::from(&SqliteSink::open(&db.path).unwrap().into_stores());
    let client_b = client_for(&b, CancellationToken::new());
    let err = run::retry_errors(&client_b, &sink, &options())
        .await
        .unwrap_err();
    assert_eq!(exit::for_error(&err), exit::CONFIG, "{err}");

    // On purpose: --rebind-portal binds it to B and reads every lead of B.
    let rebind = run::SyncOptions {
        rebind_portal: true,
        deletion: run::DeletionPolicy {
            max_share: 1.0,
            ..Default::default()
        },
        ..options()
    };
    let s = sync_into(&b, &db.path, &rebind).await.unwrap();
    assert_eq!(s.mode, "full");
    assert_eq!(s.leads_read, 150);
    assert_eq!(
        state(&db.path, run::state_keys::PORTAL_DOMAIN).as_deref(),
        Some(host_of(&b).as_str())
    );
    let watermark_b = state(&db.path, run::state_keys::WATERMARK).unwrap();
    assert_ne!(watermark_a, watermark_b, "the watermark is B's clock now");
    assert!(watermark_b > watermark_a, "{watermark_a} / {watermark_b}");
    // And from now on A is the other portal.
    let err = sync_into(&a, &db.path, &options()).await.unwrap_err();
    assert_eq!(exit::for_error(&err), exit::CONFIG, "{err}");
}

// 11.3: a database synced by the previous version (data, no portal recorded) is adopted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_a_recorded_portal_is_adopted_by_the_first_sync() {
    let sim = simulator(100).await;
    let db = test_db();
    seed(&db.path, &[lead(1, "1990-01-01T00:00:00+03:00")]).await;
    assert_eq!(state(&db.path, run::state_keys::PORTAL_DOMAIN), None);
    sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(
        state(&db.path, run::state_keys::PORTAL_DOMAIN).as_deref(),
        Some(host_of(&sim).as_str())
    );
}

// 11.3: the demo never writes into a database bound to a real portal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_refuses_a_database_bound_to_a_real_portal() {
    let db = test_db();
    let sink = SqliteSink::open(&db.path).unwrap();
    sink.write_state(run::state_keys::PORTAL_DOMAIN, "acme.bitrix24.ru")
        .await
        .unwrap();
    drop(sink);
    let out = run_cmd(
        b24sync()
            .args(["demo", "--leads", "50", "--db"])
            .arg(&db.path),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::CONFIG as i32), "{stderr}");
    assert!(stderr.contains("acme.bitrix24.ru"), "{stderr}");
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"), 0);
}

// 11.3 / 16.15: the demo's own file, named; a second demo re-binds to the new simulator
// port, reports the error rows the table holds and exits like sync (3 with error rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_uses_its_own_file_and_exits_like_sync() {
    let dir = tempfile::tempdir().unwrap();
    let run_demo = || async {
        run_cmd(
            b24sync()
                .current_dir(dir.path())
                .args(["demo", "--leads", "10000"]),
        )
        .await
    };
    let first = run_demo().await;
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        stdout.contains("10000 leads read, 10000 loaded"),
        "{stdout}"
    );
    assert!(stdout.contains("b24sync-demo.db"), "{stdout}");
    for table in [
        "bitrix_leads",
        "bitrix_lead_contacts",
        "bitrix_lead_solution",
        "bitrix_import_lead_error",
        "bitrix_lead_runtime",
        "bitrix_oauth",
    ] {
        assert!(stdout.contains(table), "{table}: {stdout}");
    }
    assert!(
        !dir.path().join("b24sync.db").exists(),
        "never the sync's file"
    );
    let db = dir.path().join("b24sync-demo.db");
    let held = count(&db, "SELECT COUNT(*) FROM bitrix_import_lead_error");
    assert!(held > 0, "the simulator seeds error rows");
    assert_eq!(
        first.status.code(),
        Some(exit::LOADED_WITH_ERRORS as i32),
        "{stdout}"
    );
    let second = run_demo().await;
    let stdout = String::from_utf8_lossy(&second.stdout).to_string();
    let stderr = String::from_utf8_lossy(&second.stderr).to_string();
    assert_eq!(
        second.status.code(),
        Some(exit::LOADED_WITH_ERRORS as i32),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("10000 leads read, 10000 loaded"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{held} rows in bitrix_import_lead_error (")),
        "{stdout}"
    );
}

// 11.4: a --since later than the portal's now is refused, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_in_the_future_is_refused() {
    let sim = simulator(100).await;
    let db = test_db();
    let err = sync_into(
        &sim,
        &db.path,
        &run::SyncOptions {
            mode: run::SyncMode::Since("2999-01-01".into()),
            ..options()
        },
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert_eq!(exit::for_error(&err), exit::CONFIG, "{msg}");
    let now = sim.portal().now().format("%Y-%m-%d").to_string();
    assert!(msg.contains("2999-01-01") && msg.contains(&now), "{msg}");
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"), 0);
    assert_eq!(state(&db.path, run::state_keys::WATERMARK), None);
}

// 11.4: a --since run is not the full sync incremental runs start from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_run_never_creates_nor_skips_the_watermark() {
    let sim = simulator(300).await;
    let db = test_db();
    let since = |s: &str| run::SyncOptions {
        mode: run::SyncMode::Since(s.into()),
        ..options()
    };
    // New database: loads, but leaves no watermark and no full-run count behind.
    let s = sync_into(&sim, &db.path, &since("2026-10-01"))
        .await
        .unwrap();
    assert!(s.leads_read < 300, "{}", s.leads_read);
    assert_eq!(state(&db.path, run::state_keys::WATERMARK), None);
    assert_eq!(state(&db.path, run::state_keys::FULL_RUN_LEADS), None);
    let next = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(next.mode, "full", "the next run reads everything");
    assert_eq!(next.leads_read, 300);
    let full_count = state(&db.path, run::state_keys::FULL_RUN_LEADS);
    assert_eq!(full_count.as_deref(), Some("300"));

    // With a watermark: a --since after it read less than an incremental run would, so
    // the watermark stays; one before it may move it.
    let w1 = state(&db.path, run::state_keys::WATERMARK).unwrap();
    sim.portal()
        .advance_clock(std::time::Duration::from_secs(7_200));
    let after = (chrono::DateTime::parse_from_rfc3339(&w1).unwrap()
        + chrono::Duration::minutes(60))
    .format("%Y-%m-%dT%H:%M:%S%:z")
    .to_string();
    sync_into(&sim, &db.path, &since(&after)).await.unwrap();
    assert_eq!(
        state(&db.path, run::state_keys::WATERMARK),
        Some(w1.clone())
    );
    assert_eq!(state(&db.path, run::state_keys::FULL_RUN_LEADS), full_count);
    sync_into(&sim, &db.path, &since("2020-01-01"))
        .await
        .unwrap();
    let w2 = state(&db.path, run::state_keys::WATERMARK).unwrap();
    assert!(w2 > w1, "{w1} / {w2}");
    assert_eq!(state(&db.path, run::state_keys::FULL_RUN_LEADS), full_count);
}

// 11.6: the error row keeps the whole lead, read again with crm.lead.get (one request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rows_keep_the_whole_lead_as_bitrix24_has_it() {
    let sim = simulator(300).await;
    let clean = test_db();
    let s1 = sync_into(&sim, &clean.path, &options()).await.unwrap();
    assert_eq!(s1.outcome.error_rows, 0, "the setup starts clean");

    let portal = sim.portal();
    assert!(portal.set_field_raw(7, "UTM_SOURCE", json!("yandex")));
    assert!(portal.set_field_raw(7, "UF_CRM_OTHER_NOTE", json!("в selected нет")));
    assert!(portal.set_field_raw(7, "BIRTHDATE", json!("31.02.1990")));
    let db = test_db();
    let s2 = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(s2.requests, s1.requests + 1, "one crm.lead.get batch");
    let rows = query_strings(
        &db.path,
        "SELECT sql_ID, sql_full_lead_info FROM bitrix_import_lead_error",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0].as_deref(), Some("7"));
    let stored: Value = serde_json::from_str(rows[0][1].as_deref().unwrap()).unwrap();
    let on_portal = portal.lead(7).unwrap();
    assert_eq!(
        stored, on_portal,
        "the whole lead, as crm.lead.get returns it"
    );
    for field in [
        "HAS_PHONE",
        "UTM_SOURCE",
        "UF_CRM_OTHER_NOTE",
        "PHONE",
        "BIRTHDATE",
    ] {
        assert!(stored.get(field).is_some(), "{field}: {stored}");
    }
}

// 16.14: rows whose lead ID is not a number are marked in `errors list`, and the next full
// sync that no longer reads such a lead clears them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_leads_without_a_numeric_id_are_marked_and_cleared_by_a_full_sync() {
    let sim = simulator(200).await;
    let portal = sim.portal();
    assert!(portal.set_field_raw(15, "ID", json!("15x")));
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let rows = query_strings(&db.path, "SELECT sql_ID FROM bitrix_import_lead_error");
    assert!(
        rows.iter().any(|r| r[0].as_deref() == Some("15x")),
        "{rows:?}"
    );

    let out = run_cmd(b24sync().args(["errors", "list", "--db"]).arg(&db.path)).await;
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    let line = listed
        .lines()
        .find(|l| l.starts_with("15x\t"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        line.contains("not retryable") && line.contains("full sync"),
        "{line}"
    );
    let out = run_cmd(
        b24sync()
            .args(["errors", "list", "--json", "--db"])
            .arg(&db.path),
    )
    .await;
    let json_line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("\"15x\""))
        .map(str::to_string)
        .unwrap();
    let v: Value = serde_json::from_str(&json_line).unwrap();
    assert_eq!(v["retryable"], json!(false));

    // Fixed in Bitrix24: an incremental run proves nothing about "15x", a full one does.
    assert!(portal.set_field_raw(15, "ID", json!("15")));
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let stuck = "SELECT COUNT(*) FROM bitrix_import_lead_error WHERE sql_ID = '15x'";
    assert_eq!(count(&db.path, stuck), 1);
    let full = run::SyncOptions {
        mode: run::SyncMode::Full,
        ..options()
    };
    let s = sync_into(&sim, &db.path, &full).await.unwrap();
    assert_eq!(s.stale_errors_cleared, 1);
    assert_eq!(count(&db.path, stuck), 0);
    // A lead still returned without a numeric ID keeps its row.
    assert!(portal.set_field_raw(16, "ID", json!("16y")));
    sync_into(&sim, &db.path, &full).await.unwrap();
    sync_into(&sim, &db.path, &full).await.unwrap();
    assert_eq!(
        count(
            &db.path,
            "SELECT COUNT(*) FROM bitrix_import_lead_error WHERE sql_ID = '16y'"
        ),
        1
    );
}
