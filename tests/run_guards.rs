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
use b24sync::load::Sink;
use b24sync::run::{self, RunError};
use b24sync::transform::{self, TransformContext};
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
    let batch = transform::transform_page(leads, &ctx);
    sink.load_batch(batch, run::local_now()).await.unwrap();
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
    let sink = SqliteSink::open(&db.path).unwrap();
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
        &[
            lead(1, "31.02.1990"),
            lead(2, "1990-01-01T00:00:00+03:00"),
        ],
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
    let sink = SqliteSink::open(&db.path).unwrap();
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
