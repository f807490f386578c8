//! `b24sync serve` against the simulator over real HTTP: the event-to-row latency (from a
//! lead's edit in the portal to its row committed in the embedded database) at a steady 1,
//! 10 and 100 changes per second, and the requests a quiet service makes per minute (see
//! BENCHMARKS.md).
//!
//! ```text
//! cargo bench --bench serve -- [--rates 1,10,100] [--secs 10] [--quiet-secs 60] [--latency-ms 50]
//! ```
//!
//! The portal has 5,000 leads and the standard limits (2 requests/s, burst 50); every
//! answer takes `--latency-ms` more (a network round trip). The portal posts its events
//! at once (a real one's event queue adds its own delay, not measured here). Each change
//! edits a different lead, so every change has one row to wait for.

// The allocator the binary ships with (src/main.rs), so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use b24sync::extract::client::{Bitrix24Client, ClientConfig};
use b24sync::extract::Webhook;
use b24sync::load::sqlite::SqliteSink;
use b24sync::run::SyncOptions;
use b24sync::serve::{self, ServeOptions};
use b24sync_simulator::{EventsConfig, OutgoingWebhook, Simulator, SimulatorConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench0application0token";
const LEADS: usize = 5_000;

struct Args {
    rates: Vec<u32>,
    secs: u64,
    quiet_secs: u64,
    latency_ms: u64,
}

fn args() -> Args {
    let mut a = Args {
        rates: vec![1, 10, 100],
        secs: 10,
        quiet_secs: 60,
        latency_ms: 50,
    };
    let argv: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        argv.iter()
            .position(|x| x == name)
            .and_then(|i| argv.get(i + 1))
            .cloned()
    };
    if let Some(r) = value("--rates") {
        a.rates = r.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    }
    if let Some(v) = value("--secs").and_then(|v| v.parse().ok()) {
        a.secs = v;
    }
    if let Some(v) = value("--quiet-secs").and_then(|v| v.parse().ok()) {
        a.quiet_secs = v;
    }
    if let Some(v) = value("--latency-ms").and_then(|v| v.parse().ok()) {
        a.latency_ms = v;
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The titles the database holds for these lead IDs.
fn titles(db: &Path, ids: &[i64]) -> HashMap<i64, String> {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return HashMap::new();
    };
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let sql = format!(
        "SELECT sql_ID, sql_TITLE FROM bitrix_leads WHERE sql_ID IN ({})",
        list.join(",")
    );
    let Ok(mut stmt) = conn.prepare(&sql) else {
        return HashMap::new();
    };
    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// `rate` edits per second for `secs`, each of another lead; the latency of each.
async fn steady(sim: &Simulator, db: &Path, rate: u32, secs: u64, first_id: i64) -> Vec<Duration> {
    let n = (u64::from(rate) * secs) as i64;
    let tick = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now();
    let mut pending: HashMap<i64, (String, Instant)> = HashMap::new();
    let mut done = Vec::new();
    let mut next = 0i64;
    let deadline = start + Duration::from_secs(secs + 60);
    while (next < n || !pending.is_empty()) && Instant::now() < deadline {
        while next < n && start + tick * next as u32 <= Instant::now() {
            let id = first_id + next;
            let title = format!("bench {rate}/s change {next}");
            let t = title.clone();
            sim.portal().update_lead(id, move |m| {
                m.insert("TITLE".into(), json!(t));
            });
            pending.insert(id, (title, Instant::now()));
            next += 1;
        }
        let ids: Vec<i64> = pending.keys().copied().collect();
        if !ids.is_empty() {
            let seen = titles(db, &ids);
            let now = Instant::now();
            pending.retain(|id, (title, at)| {
                if seen.get(id) == Some(title) {
                    done.push(now - *at);
                    false
                } else {
                    true
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if !pending.is_empty() {
        eprintln!(
            "{rate}/s: {} changes never reached the table",
            pending.len()
        );
    }
    done.sort();
    done
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let sim = Simulator::start(SimulatorConfig {
            leads: LEADS,
            latency: Duration::from_millis(a.latency_ms),
            events: EventsConfig {
                outgoing: vec![OutgoingWebhook {
                    events: ["ONCRMLEADADD", "ONCRMLEADUPDATE", "ONCRMLEADDELETE"]
                        .map(String::from)
                        .to_vec(),
                    handler: format!("http://127.0.0.1:{port}/"),
                    application_token: TOKEN.into(),
                }],
                ..EventsConfig::default()
            },
            ..SimulatorConfig::default()
        })
        .await
        .expect("simulator");
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("serve-bench.db");
        let stores = SqliteSink::open(&db).expect("database").into_stores();
        let cancel = CancellationToken::new();
        let client = Bitrix24Client::new(
            Webhook::parse(&sim.webhook_url()).expect("webhook"),
            ClientConfig::default(),
            cancel.clone(),
        )
        .expect("client");
        let sync = SyncOptions {
            solution_field: Some("UF_CRM_SOLUTION".into()),
            ..SyncOptions::default()
        };
        let opts = ServeOptions {
            listen: ([127, 0, 0, 1], port).into(),
            application_token: TOKEN.into(),
            ..ServeOptions::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let service = tokio::spawn(serve::serve(client, stores, sync, opts, cancel.clone(), Some(tx)));
        rx.await.expect("serve listens");
        let started = Instant::now();
        let health = format!("http://127.0.0.1:{port}/health");
        while reqwest::get(&health).await.map(|r| r.status() != 200).unwrap_or(true) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "serve: {LEADS} leads, first sync done in {:.1} s; latency {} ms per answer",
            started.elapsed().as_secs_f64(),
            a.latency_ms
        );
        println!("| changes/s | changes | p50 | p95 | p99 | max | requests/min |");
        println!("|---|---|---|---|---|---|---|");
        let mut first_id = 1i64;
        for rate in &a.rates {
            sim.reset_stats();
            let t = Instant::now();
            let lat = steady(&sim, &db, *rate, a.secs, first_id).await;
            let mins = t.elapsed().as_secs_f64() / 60.0;
            first_id += i64::from(*rate) * a.secs as i64;
            let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
            println!(
                "| {rate} | {} | {} | {} | {} | {} | {:.0} |",
                lat.len(),
                ms(percentile(&lat, 0.50)),
                ms(percentile(&lat, 0.95)),
                ms(percentile(&lat, 0.99)),
                ms(lat.last().copied().unwrap_or_default()),
                sim.stats().http_requests as f64 / mins
            );
        }
        sim.reset_stats();
        tokio::time::sleep(Duration::from_secs(a.quiet_secs)).await;
        let s = sim.stats();
        println!(
            "quiet for {} s: {} request(s) ({:.1} per minute; the reconcile every 5 minutes adds one each)",
            a.quiet_secs,
            s.http_requests,
            s.http_requests as f64 * 60.0 / a.quiet_secs as f64
        );
        cancel.cancel();
        let _ = service.await;
    });
}
