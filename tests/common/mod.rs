//! Shared helpers of the end-to-end tests: a simulator, a client, a real SQLite file,
//! and readers that dump tables for exact comparisons.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use b24sync::extract::client::{Bitrix24Client, ClientConfig};
use b24sync::extract::limits::{OperatingConfig, RateConfig};
use b24sync::extract::Webhook;
use b24sync::load::sqlite::SqliteSink;
use b24sync::run::{self, RunError, RunSummary, SyncOptions};
use b24sync_simulator::{Simulator, SimulatorConfig};
use rusqlite::types::Value as SqlValue;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const SOLUTION: &str = "UF_CRM_SOLUTION";

/// (TYPE_ID, contact ID, VALUE_TYPE, VALUE) of one contact value.
pub type ContactTuple = (String, Option<String>, Option<String>, Option<String>);

pub async fn simulator(leads: usize) -> Simulator {
    Simulator::start(SimulatorConfig {
        leads,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// A client that paces itself like a standard portal, but with quick retries for tests.
pub fn client_for(sim: &Simulator, cancel: CancellationToken) -> Bitrix24Client {
    let config = ClientConfig {
        rate: RateConfig {
            per_second: 2.0,
            burst: 50,
        },
        backoff_base: std::time::Duration::from_millis(50),
        backoff_max: std::time::Duration::from_millis(500),
        ..ClientConfig::default()
    };
    Bitrix24Client::new(Webhook::parse(&sim.webhook_url()).unwrap(), config, cancel).unwrap()
}

/// A client without pacing worth mentioning and with short backoffs, for simulators whose
/// rate limit is off or whose tests make only a few requests.
pub fn fast_client(sim: &Simulator) -> Bitrix24Client {
    fast_client_with(sim, OperatingConfig::default())
}

/// [`fast_client`] with its own operating budget (how many server seconds per method the
/// client lets itself spend per window).
pub fn fast_client_with(sim: &Simulator, operating: OperatingConfig) -> Bitrix24Client {
    let config = ClientConfig {
        rate: RateConfig {
            per_second: 10_000.0,
            burst: 10_000,
        },
        operating,
        backoff_base: std::time::Duration::from_millis(20),
        backoff_max: std::time::Duration::from_millis(200),
        ..ClientConfig::default()
    };
    Bitrix24Client::new(
        Webhook::parse(&sim.webhook_url()).unwrap(),
        config,
        CancellationToken::new(),
    )
    .unwrap()
}

pub fn options() -> SyncOptions {
    SyncOptions {
        solution_field: Some(SOLUTION.into()),
        ..SyncOptions::default()
    }
}

pub struct TestDb {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn test_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b24sync.db");
    TestDb { _dir: dir, path }
}

pub async fn sync_into(
    sim: &Simulator,
    db: &Path,
    opts: &SyncOptions,
) -> Result<RunSummary, RunError> {
    let client = client_for(sim, CancellationToken::new());
    let stores = run::RunStores::from(&SqliteSink::open(db).unwrap().into_stores());
    run::sync(&client, &stores, opts, CancellationToken::new()).await
}

/// Every row of a table, ordered by `Id`, as SQLite values.
pub fn dump(db: &Path, table: &str) -> Vec<Vec<SqlValue>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {table} ORDER BY 1"))
        .unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, SqlValue>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

pub fn query_strings(db: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get::<_, SqlValue>(i)? {
                        SqlValue::Null => None,
                        SqlValue::Integer(v) => Some(v.to_string()),
                        SqlValue::Real(v) => Some(v.to_string()),
                        SqlValue::Text(s) => Some(s),
                        SqlValue::Blob(_) => Some("<blob>".into()),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

pub fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The contact values a lead has in the simulator: (TYPE_ID, ID, VALUE_TYPE, VALUE), sorted.
pub fn expected_contacts(lead: &Value) -> Vec<ContactTuple> {
    let mut out = Vec::new();
    for ty in ["PHONE", "EMAIL", "WEB", "IM"] {
        if let Some(Value::Array(items)) = lead.get(ty) {
            for item in items {
                let text = |k: &str| match item.get(k) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                if text("VALUE").map(|v| v.is_empty()).unwrap_or(true) {
                    continue;
                }
                out.push((
                    ty.to_string(),
                    text("ID"),
                    text("VALUE_TYPE"),
                    text("VALUE"),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The contact rows of a lead in the database, in the same shape as [`expected_contacts`].
pub fn stored_contacts(db: &Path, lead_id: i64) -> Vec<ContactTuple> {
    let mut rows: Vec<_> = query_strings(
        db,
        &format!(
            "SELECT sql_TYPE_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE FROM bitrix_lead_contacts WHERE sql_LEAD_ID = {lead_id}"
        ),
    )
    .into_iter()
    .map(|r| (r[0].clone().unwrap_or_default(), r[1].clone(), r[2].clone(), r[3].clone()))
    .collect();
    rows.sort();
    rows
}

pub fn text_field(lead: &Value, field: &str) -> Option<String> {
    match lead.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The `b24sync` binary with no `B24SYNC_*` variables inherited from the test's environment.
pub fn b24sync() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_b24sync"));
    for (k, _) in std::env::vars() {
        if k.starts_with("B24SYNC_") {
            cmd.env_remove(k);
        }
    }
    cmd.kill_on_drop(true);
    cmd
}

/// Run it to the end (two minutes at most) and keep its output.
pub async fn run_cmd(cmd: &mut tokio::process::Command) -> std::process::Output {
    tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("b24sync finishes")
        .unwrap()
}

/// A count that may not be readable yet (the file or table is still being created): 0 then.
pub fn count_or_zero(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
        .unwrap_or(0)
}

/// Wait (a minute at most) until `sql` counts more than zero: a running b24sync has
/// committed something.
pub async fn wait_until_positive(db: &Path, sql: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count_or_zero(db, sql) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
