//! `run::sync` as shipped over leads, contacts and companies against the simulator with
//! both limits on and a real portal's server time: a full export, a quiet incremental run
//! right after it, and the same full export of the leads alone (see BENCHMARKS.md).
//!
//! ```text
//! cargo bench --bench entities -- [--leads 30000] [--contacts 20000] [--companies 5000]
//!     [--scale 1] [--latency-ms 150]
//! ```
//!
//! One simulator per full export (no case inherits another's operating budget), in this
//! process; the quiet run reuses the first export's simulator and database. Requests and
//! server time come from the simulator's counters; the floor is the least a run can cost:
//! one shared prelude `batch`, ⌈N / 2,500⌉ chained `batch` requests per entity, one
//! `user.get`, and ⌈error rows / 50⌉ re-reads per entity.

// The allocator the binary ships with (src/main.rs), so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use b24sync::extract::client::{Bitrix24Client, ClientConfig};
use b24sync::extract::Webhook;
use b24sync::load::sqlite::SqliteSink;
use b24sync::run::{self, RunSummary, SyncOptions};
use b24sync::schema::{Entity, COMPANY, CONTACT, LEAD};
use b24sync_simulator::{
    CostModel, OperatingLimit, RateLimit, RequestStats, Simulator, SimulatorConfig,
};
use tokio_util::sync::CancellationToken;

const SOLUTION: &str = "UF_CRM_SOLUTION";
/// Records per chained `batch` at the floor: 50 sub-calls of 50.
const PER_BATCH: u64 = 2500;
/// Records re-read per `crm.*.get` request of the error rows.
const PER_REREAD: u64 = 50;

#[derive(Debug, Clone)]
struct Options {
    leads: usize,
    contacts: usize,
    companies: usize,
    scale: f64,
    latency_ms: u64,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let mut o = Options {
            leads: 30_000,
            contacts: 20_000,
            companies: 5_000,
            scale: 1.0,
            latency_ms: 150,
        };
        let number = |v: String| -> usize { v.replace('_', "").parse().expect("a number") };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().expect("a value after the flag").clone();
            match a.as_str() {
                "--leads" => o.leads = number(value()),
                "--contacts" => o.contacts = number(value()),
                "--companies" => o.companies = number(value()),
                "--scale" => o.scale = value().parse().expect("--scale"),
                "--latency-ms" => o.latency_ms = value().parse().expect("--latency-ms"),
                // `cargo bench` passes `--bench`; anything else is a filter we do not use.
                _ => {}
            }
        }
        o
    }

    fn config(&self) -> SimulatorConfig {
        SimulatorConfig {
            leads: self.leads,
            contacts: self.contacts,
            companies: self.companies,
            latency: Duration::from_millis(self.latency_ms),
            rate_limit: Some(RateLimit::STANDARD),
            operating_limit: Some(OperatingLimit::default()),
            cost: CostModel {
                sleep_scale: self.scale,
                ..CostModel::default()
            },
            ..SimulatorConfig::default()
        }
    }

    fn size(&self, e: Entity) -> u64 {
        let n = match e.name {
            "contact" => self.contacts,
            "company" => self.companies,
            _ => self.leads,
        };
        n as u64
    }
}

/// One measured run.
struct Case {
    name: &'static str,
    entities: Vec<Entity>,
    /// The simulator's counters for this run alone.
    stats: RequestStats,
    wall: Duration,
    summary: RunSummary,
    /// Per entity: records read, rows in its table, records with error rows.
    per_entity: Vec<(Entity, u64, u64, u64)>,
    /// `None` for the quiet run (its floor is one request).
    floor: Option<(u64, String)>,
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = Options::parse(&args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench(opts));
}

async fn bench(o: Options) {
    eprintln!("b24sync entities benchmark: {o:?}");
    let dir = tempfile::tempdir().expect("temp dir");
    let all = vec![LEAD, CONTACT, COMPANY];
    let mut cases = Vec::new();

    // (a) and (b): one portal, one database.
    let sim = Simulator::start(o.config()).await.expect("simulator");
    let db = dir.path().join("all.db");
    eprintln!("  (a) full export of {:?}", names(&all));
    let full = measure("(a) full export", &sim, &db, &all, &o, true).await;
    cases.push(full);
    eprintln!("  (b) quiet incremental run");
    let quiet = measure("(b) quiet incremental run", &sim, &db, &all, &o, false).await;
    cases.push(quiet);
    sim.shutdown().await;

    // (c): a fresh portal (its own operating budget), the leads alone.
    let sim = Simulator::start(o.config()).await.expect("simulator");
    let db = dir.path().join("leads.db");
    eprintln!("  (c) full export of the leads alone");
    let leads = measure("(c) full export, leads only", &sim, &db, &[LEAD], &o, true).await;
    cases.push(leads);
    sim.shutdown().await;

    print_report(&o, &cases);
}

fn names(entities: &[Entity]) -> Vec<&'static str> {
    entities.iter().map(|e| e.plural).collect()
}

async fn measure(
    name: &'static str,
    sim: &Simulator,
    db: &Path,
    entities: &[Entity],
    o: &Options,
    full: bool,
) -> Case {
    let before = sim.stats();
    let cancel = CancellationToken::new();
    let client = Bitrix24Client::new(
        Webhook::parse(&sim.webhook_url()).expect("webhook"),
        ClientConfig::default(),
        cancel.clone(),
    )
    .expect("client");
    // A fresh connection per run, as a scheduled `b24sync sync` opens one.
    let sink = SqliteSink::open(db).expect("sqlite").into_stores();
    let opts = SyncOptions {
        solution_field: Some(SOLUTION.into()),
        entities: entities.to_vec(),
        ..SyncOptions::default()
    };
    let started = Instant::now();
    let summary = run::sync(&client, &(&sink).into(), &opts, cancel)
        .await
        .expect("sync");
    let wall = started.elapsed();
    drop(sink);
    let stats = delta(&before, &sim.stats());
    let per_entity: Vec<_> = entities
        .iter()
        .map(|e| {
            let read = if e.name == LEAD.name {
                summary.leads_read
            } else {
                summary
                    .entities
                    .iter()
                    .find(|r| r.plural == e.plural)
                    .map(|r| r.read)
                    .unwrap_or(0)
            };
            let rows = count(db, &format!("SELECT COUNT(*) FROM {}", e.table));
            let errors = count(
                db,
                &format!("SELECT COUNT(DISTINCT sql_ID) FROM {}", e.error_table),
            );
            (*e, read, rows, errors)
        })
        .collect();
    let floor = full.then(|| {
        let pages: Vec<u64> = entities
            .iter()
            .map(|e| o.size(*e).div_ceil(PER_BATCH))
            .collect();
        let rereads: u64 = per_entity
            .iter()
            .map(|(_, _, _, errors)| errors.div_ceil(PER_REREAD))
            .sum();
        let total = 1 + pages.iter().sum::<u64>() + 1 + rereads;
        let pages_text: Vec<String> = pages.iter().map(|p| p.to_string()).collect();
        (
            total,
            format!("1 + ({}) + 1 + {rereads}", pages_text.join(" + ")),
        )
    });
    eprintln!(
        "    -> {} requests, {:.1} s wall",
        stats.http_requests,
        wall.as_secs_f64()
    );
    Case {
        name,
        entities: entities.to_vec(),
        stats,
        wall,
        summary,
        per_entity,
        floor,
    }
}

/// The counters between two snapshots of one simulator.
fn delta(before: &RequestStats, after: &RequestStats) -> RequestStats {
    let mut by_method = BTreeMap::new();
    for (m, n) in &after.by_method {
        let d = n - before.by_method.get(m).copied().unwrap_or(0);
        if d > 0 {
            by_method.insert(m.clone(), d);
        }
    }
    RequestStats {
        http_requests: after.http_requests - before.http_requests,
        by_method,
        rate_limited: after.rate_limited - before.rate_limited,
        operating_limited: after.operating_limited - before.operating_limited,
        faults_served: after.faults_served - before.faults_served,
        arrivals_ms: Vec::new(),
        server_time_secs: after.server_time_secs - before.server_time_secs,
    }
}

fn count(db: &Path, sql: &str) -> u64 {
    let conn = rusqlite::Connection::open(db).expect("db");
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .expect("count") as u64
}

fn print_report(o: &Options, cases: &[Case]) {
    println!();
    println!(
        "{} leads, {} contacts, {} companies; rate 2/s burst 50, operating budget 480 s per \
         600 s, sleep_scale {}, latency {} ms",
        o.leads, o.contacts, o.companies, o.scale, o.latency_ms
    );
    println!();
    println!("| case | entities | requests | floor | server time | wall | 503 / 429 |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for c in cases {
        let floor = match &c.floor {
            Some((total, formula)) => format!("{total} = {formula}"),
            None => "1".into(),
        };
        println!(
            "| {} | {} | {} | {} | {:.1} s | {:.1} s | {} / {} |",
            c.name,
            names(&c.entities).join(", "),
            c.stats.http_requests,
            floor,
            c.stats.server_time_secs,
            c.wall.as_secs_f64(),
            c.stats.rate_limited,
            c.stats.operating_limited,
        );
    }
    println!();
    println!("| case | entity | read | rows in its table | records with error rows |");
    println!("|---|---|---:|---:|---:|");
    for c in cases {
        for (e, read, rows, errors) in &c.per_entity {
            println!("| {} | {} | {read} | {rows} | {errors} |", c.name, e.plural);
        }
    }
    println!();
    println!("Calls by method (a `batch` counts once, each sub-call under its own method):");
    for c in cases {
        let by: Vec<String> = c
            .stats
            .by_method
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect();
        println!("- {}: {}", c.name, by.join(", "));
        println!(
            "  client: {} requests, {} retries, {:.1} s server time; mode {}{}",
            c.summary.requests,
            c.summary.retries,
            c.summary.server_secs,
            c.summary.mode,
            if c.summary.warnings.is_empty() {
                String::new()
            } else {
                format!("; warnings: {:?}", c.summary.warnings)
            }
        );
    }
}
