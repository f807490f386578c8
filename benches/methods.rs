//! Seven ways to copy every Bitrix24 lead into the embedded database, side by side,
//! against the simulator with the portal's limits on (see BENCHMARKS.md).
//!
//! ```text
//! cargo bench --bench methods -- [--leads 10000,100000] [--memory 100000,1000000]
//!     [--scale 0.1] [--latency-ms 150] [--sample-a 250] [--sample-b 7500]
//!     [--full-b-max 10000] [--full-f-max 25000] [--sparse-step 7] [--methods a,b,c,d,s,p,f]
//! ```
//!
//! - (a) Oktell: `crm.lead.list` by `next` (counted, `select *`), then `crm.lead.get` per lead.
//! - (b) `crm.lead.list` by `next` (counted) with `*`, `UF_*` and the multi-fields.
//! - (c) the PHP SDK's `Batch::getTraversableList`: one counted first page, one counted
//!   last page (reverse order) for the highest ID, then ID-range pages (`>=ID`, `<ID`,
//!   `start=-1`) 50 to a `batch`, wide `select`.
//! - (d) ours: `run::sync` with `Paging::Batch`: one keyset chain at a time.
//! - (s) ours as shipped: `run::sync` with the default options: up to
//!   `paging::DEFAULT_MAX_CHAINS` keyset chains at once.
//! - (p) ours: `paging::export` with `PagingOptions::default()`: up to 4 keyset chains at
//!   once over disjoint ID ranges, after the run's labels call and highest-ID probe.
//! - (f) fast_bitrix24's `get_all`: one counted page for `total`, then every other page by
//!   offset (`start` = 50, 100, …, counted), 50 to a `batch`, all batches in flight at once
//!   as far as the leaky bucket lets them.
//!
//! The simulator runs in this (parent) process; every method runs in a child process (this
//! binary again, with a hidden `--child SPEC`) so that the child's peak RSS (`VmHWM`) is the
//! client's alone. (a)–(c) load through the same transform and SQLite sink as (d), with the
//! same pipelining (a bounded channel into a loader task), so "leads/s" compares the extract.
//! (a) and, above `--full-b-max` leads, (b) cannot finish in minutes (14 h and 1.5 h of real
//! portal time at 100,000 leads): they run on a sample of the first leads and are
//! extrapolated with the formulas printed under the table.

use std::time::Instant;

use b24sync::extract::client::{Bitrix24Client, ClientConfig};
use b24sync::extract::paging::PAGE_SIZE;
use b24sync::extract::Webhook;
use b24sync::load::sqlite::SqliteSink;
use b24sync::prepare::prepare;
use b24sync::run::{self, SyncOptions};
use b24sync::transform::{self, TimePolicy, TransformContext};
use b24sync_simulator::{CostModel, OperatingLimit, RateLimit, Simulator, SimulatorConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[path = "methods/report.rs"]
mod report;
#[path = "methods/strategies.rs"]
mod strategies;
use report::print_report;
use strategies::{
    by_next_wide, fast_bitrix24_get_all, oktell, parallel_chains, sdk_traversable_list,
};

const SOLUTION: &str = "UF_CRM_SOLUTION";
/// What "most integrations" and the SDK ask for: everything, by masks and names.
const WIDE_SELECT: &[&str] = &["*", "UF_*", "PHONE", "EMAIL", "WEB", "IM"];
/// Leads per load transaction, as `run::sync` uses.
const LOAD_BATCH: usize = 2500;
/// The portal's operating-time budget and window (docs/bitrix24-api.md §4).
const OPERATING_BUDGET: f64 = 480.0;
const OPERATING_WINDOW: f64 = 600.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Method {
    A,
    B,
    C,
    D,
    S,
    P,
    F,
}

impl Method {
    fn parse(s: &str) -> Option<Method> {
        match s.trim().to_ascii_lowercase().as_str() {
            "a" => Some(Method::A),
            "b" => Some(Method::B),
            "c" => Some(Method::C),
            "d" => Some(Method::D),
            "s" => Some(Method::S),
            "p" => Some(Method::P),
            "f" => Some(Method::F),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Method::A => "(a) Oktell: list by `next` + `crm.lead.get` per lead",
            Method::B => "(b) list by `next`, counted, `*`+`UF_*`+multi",
            Method::C => {
                "(c) PHP SDK `getTraversableList` (2 counted calls + ID ranges in `batch`)"
            }
            Method::D => "(d) b24sync: 50 chained `>ID` pages per `batch`, `start=-1`",
            Method::S => "(s) b24sync `sync` as shipped: (d)'s run, up to 4 chains at once (the default)",
            Method::P => "(p) b24sync: up to 4 such chains at once over disjoint ID ranges",
            Method::F => {
                "(f) fast_bitrix24 `get_all`: counted offset pages, 50 per `batch`, batches in parallel"
            }
        }
    }
}

/// What the parent asks a child to do.
#[derive(Debug, Serialize, Deserialize)]
struct ChildSpec {
    method: Method,
    webhook: String,
    db: String,
    /// Stop after this many leads (a sample); `None` = all.
    limit: Option<usize>,
}

/// What a child reports (one JSON line on stdout, prefixed `RESULT `).
#[derive(Debug, Default, Serialize, Deserialize)]
struct ChildReport {
    leads_in_db: u64,
    requests: u64,
    retries: u64,
    wall_secs: f64,
    vm_hwm_kib: u64,
    /// Per-method server time the answers reported (`time.processing`), for extrapolation.
    list_pages: u64,
    list_secs: f64,
    get_calls: u64,
    get_secs: f64,
    other_secs: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let spec: ChildSpec = serde_json::from_str(&args[i + 1]).expect("child spec");
        child(spec);
        return;
    }
    let opts = Options::parse(&args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(parent(opts));
}

// ---------------------------------------------------------------------------------------
// Parent: simulators, children, the table.

#[derive(Debug, Clone)]
struct Options {
    leads: Vec<usize>,
    memory: Vec<usize>,
    scale: f64,
    sample_a: usize,
    sample_b: usize,
    full_b_max: usize,
    /// (f) runs up to this many leads: above ≈ 33,000 its counted pages need more than one
    /// operating window (480 s of server time per 600 s), i.e. tens of minutes.
    full_f_max: usize,
    /// Added by the simulator to every answer (a realistic round trip to the portal).
    latency_ms: u64,
    sparse_step: u32,
    methods: Vec<Method>,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let mut o = Options {
            leads: vec![10_000, 100_000],
            memory: vec![100_000, 1_000_000],
            scale: 0.1,
            sample_a: 250,
            sample_b: 7_500,
            full_b_max: 10_000,
            full_f_max: 25_000,
            latency_ms: 150,
            sparse_step: 7,
            methods: vec![
                Method::A,
                Method::B,
                Method::C,
                Method::D,
                Method::S,
                Method::P,
                Method::F,
            ],
        };
        let list = |v: &str| -> Vec<usize> {
            v.split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().replace('_', "").parse().expect("a number"))
                .collect()
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().expect("a value after the flag").clone();
            match a.as_str() {
                "--leads" => o.leads = list(&value()),
                "--memory" => o.memory = list(&value()),
                "--scale" => o.scale = value().parse().expect("--scale"),
                "--sample-a" => o.sample_a = value().parse().expect("--sample-a"),
                "--sample-b" => o.sample_b = value().parse().expect("--sample-b"),
                "--full-b-max" => o.full_b_max = value().parse().expect("--full-b-max"),
                "--full-f-max" => o.full_f_max = value().parse().expect("--full-f-max"),
                "--latency-ms" => o.latency_ms = value().parse().expect("--latency-ms"),
                "--sparse-step" => o.sparse_step = value().parse().expect("--sparse-step"),
                "--methods" => {
                    o.methods = value()
                        .split(',')
                        .map(|m| Method::parse(m).expect("methods are a, b, c, d, p, f"))
                        .collect()
                }
                // `cargo bench` passes `--bench`; anything else is a filter we do not use.
                _ => {}
            }
        }
        o
    }
}

/// One measured (or extrapolated) row.
#[derive(Debug)]
struct Row {
    n: usize,
    id_step: u32,
    method: Method,
    requests: u64,
    server_secs: f64,
    wall_secs: f64,
    leads: u64,
    rate_limited: u64,
    operating_limited: u64,
    rss_kib: u64,
    /// Lower bound on a real portal (scale 1) for a sequential client.
    real_floor_secs: f64,
    /// `Some(sample leads)` when the numbers are extrapolated from a sample.
    sampled: Option<usize>,
}

fn cost_model(scale: f64) -> CostModel {
    CostModel {
        sleep_scale: scale,
        ..CostModel::default()
    }
}

fn limited_config(n: usize, id_step: u32, scale: f64, latency_ms: u64) -> SimulatorConfig {
    SimulatorConfig {
        leads: n,
        id_step,
        latency: std::time::Duration::from_millis(latency_ms),
        rate_limit: Some(RateLimit::STANDARD),
        operating_limit: Some(OperatingLimit::default()),
        cost: cost_model(scale),
        ..SimulatorConfig::default()
    }
}

async fn run_child(spec: &ChildSpec) -> ChildReport {
    let exe = std::env::current_exe().expect("own path");
    let out = tokio::process::Command::new(exe)
        .arg("--child")
        .arg(serde_json::to_string(spec).unwrap())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("child {:?} failed: {}\n{stdout}", spec.method, out.status));
    serde_json::from_str(line).expect("child report")
}

/// Start a fresh portal (so no method inherits another's operating budget), run one child.
async fn measure(
    config: SimulatorConfig,
    method: Method,
    limit: Option<usize>,
    dir: &std::path::Path,
) -> (ChildReport, b24sync_simulator::RequestStats) {
    let n = config.leads;
    let sim = Simulator::start(config).await.expect("simulator");
    let db = dir.join(format!("{method:?}-{n}-{}.db", rand_suffix()));
    let spec = ChildSpec {
        method,
        webhook: sim.webhook_url(),
        db: db.display().to_string(),
        limit,
    };
    let report = run_child(&spec).await;
    let stats = sim.stats();
    sim.shutdown().await;
    let _ = std::fs::remove_file(&db);
    (report, stats)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The operating windows a method must wait out: once it has spent 480 s of server time,
/// each further 480 s needs another 600 s window, whatever the client does.
fn operating_floor(busiest_method_secs: f64) -> f64 {
    ((busiest_method_secs / OPERATING_BUDGET).ceil() - 1.0).max(0.0) * OPERATING_WINDOW
}

/// Seconds a sequential client must spend on a real portal (scale 1) at least: the leaky
/// bucket after its burst, the server time itself, the operating windows.
fn real_floor(requests: u64, server_secs: f64, busiest_method_secs: f64) -> f64 {
    let rate = RateLimit::STANDARD;
    let bucket = (requests.saturating_sub(u64::from(rate.burst))) as f64 / rate.per_second;
    bucket
        .max(server_secs)
        .max(operating_floor(busiest_method_secs))
}

async fn parent(o: Options) {
    let dir = tempfile::tempdir().expect("temp dir");
    eprintln!("b24sync extract benchmark: {o:?}");
    let mut rows = Vec::new();
    for &n in &o.leads {
        for &method in &o.methods {
            if method == Method::F && n > o.full_f_max {
                eprintln!("  {n} leads, F: skipped (above --full-f-max)");
                continue;
            }
            let limit = match method {
                Method::A => Some(o.sample_a.min(n)),
                Method::B if n > o.full_b_max => Some(o.sample_b.min(n)),
                _ => None,
            };
            eprintln!(
                "  {n} leads, {method:?}{}",
                limit
                    .map(|l| format!(" (sample of {l})"))
                    .unwrap_or_default()
            );
            let config = limited_config(n, 1, o.scale, o.latency_ms);
            let (r, st) = measure(config, method, limit, dir.path()).await;
            rows.push(to_row(n, 1, method, limit, &r, &st, o.scale));
            eprintln!("    -> {:?}", rows.last().unwrap());
        }
    }
    let mut sparse = Vec::new();
    if o.sparse_step > 1 {
        for (i, &n) in o.leads.iter().enumerate() {
            // The SDK's ID ranges cost one sub-call per 50 IDs, not per 50 leads: at 100,000
            // sparse leads that is ≈ 14,000 pages and a wait for the operating window, so
            // (c) runs sparse at the smallest size only.
            // (f) pages by offset, blind to ID gaps: its sparse run would repeat the dense one.
            let methods: &[Method] = if i == 0 {
                &[Method::C, Method::D, Method::S, Method::P]
            } else {
                &[Method::D, Method::S, Method::P]
            };
            for &method in methods.iter().filter(|m| o.methods.contains(m)) {
                eprintln!("  {n} sparse leads (ID step {}), {method:?}", o.sparse_step);
                let (r, st) = measure(
                    limited_config(n, o.sparse_step, o.scale, o.latency_ms),
                    method,
                    None,
                    dir.path(),
                )
                .await;
                sparse.push(to_row(n, o.sparse_step, method, None, &r, &st, o.scale));
                eprintln!("    -> {:?}", sparse.last().unwrap());
            }
        }
    }
    let mut memory = Vec::new();
    for &n in &o.memory {
        // RSS only: no limits and no server sleep, so a million leads take minutes, not hours.
        let config = SimulatorConfig {
            leads: n,
            rate_limit: None,
            operating_limit: None,
            cost: cost_model(0.0),
            ..SimulatorConfig::default()
        };
        eprintln!("  memory: {n} leads, D");
        let (r, st) = measure(config, Method::D, None, dir.path()).await;
        memory.push(to_row(n, 1, Method::D, None, &r, &st, 0.0));
        eprintln!("    -> {:?}", memory.last().unwrap());
    }
    print_report(&o, &rows, &sparse, &memory);
}

fn to_row(
    n: usize,
    id_step: u32,
    method: Method,
    limit: Option<usize>,
    r: &ChildReport,
    st: &b24sync_simulator::RequestStats,
    scale: f64,
) -> Row {
    let sampled = limit.filter(|l| *l < n);
    let Some(sample) = sampled else {
        let list_secs = match method {
            Method::A => r.list_secs.max(r.get_secs),
            _ => st.server_time_secs,
        };
        return Row {
            n,
            id_step,
            method,
            requests: st.http_requests,
            server_secs: st.server_time_secs,
            wall_secs: r.wall_secs,
            leads: r.leads_in_db,
            rate_limited: st.rate_limited,
            operating_limited: st.operating_limited,
            rss_kib: r.vm_hwm_kib,
            real_floor_secs: if matches!(method, Method::S | Method::P | Method::F) {
                // Parallel requests overlap their server time: no sequential floor.
                f64::NAN
            } else {
                real_floor(st.http_requests, st.server_time_secs, list_secs)
            },
            sampled: None,
        };
    };
    // Extrapolation from a sample of the first `sample` leads (formulas in BENCHMARKS.md):
    // pages and gets scale with N; each counted page costs what the sample's pages cost
    // (COUNT over the whole portal dominates), plus the OFFSET scan that grows with the page
    // number; requests after the sample are paced by the leaky bucket or by the server.
    let pages = n.div_ceil(PAGE_SIZE) as f64;
    let gets = if method == Method::A { n as f64 } else { 0.0 };
    let lp = r.list_pages.max(1) as f64;
    let offset_row = CostModel::default().per_offset_row * PAGE_SIZE as f64;
    let offset_full = offset_row * pages * (pages - 1.0) / 2.0;
    let offset_sample = offset_row * lp * (lp - 1.0) / 2.0;
    let list_secs = (r.list_secs - offset_sample) / lp * pages + offset_full;
    let get_secs = if r.get_calls > 0 {
        r.get_secs / r.get_calls as f64 * gets
    } else {
        0.0
    };
    let server = r.other_secs + list_secs + get_secs;
    let requests = 1 + pages as u64 + gets as u64;
    let per_request = (1.0 / RateLimit::STANDARD.per_second).max(server / requests as f64 * scale);
    let busiest = list_secs.max(get_secs);
    // The operating window is real time in the simulator too, so it bounds the scaled run.
    let wall = (r.wall_secs + (requests - st.http_requests) as f64 * per_request)
        .max(operating_floor(busiest));
    let floor = real_floor(requests, server, busiest);
    Row {
        n,
        id_step,
        method,
        requests,
        server_secs: server,
        wall_secs: wall,
        leads: n as u64,
        rate_limited: st.rate_limited,
        operating_limited: st.operating_limited,
        rss_kib: r.vm_hwm_kib,
        real_floor_secs: floor,
        sampled: Some(sample),
    }
}

// ---------------------------------------------------------------------------------------
// Child: one method, one client, one SQLite file.

fn child(spec: ChildSpec) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut report = rt.block_on(run_method(&spec));
    drop(rt);
    let conn = rusqlite::Connection::open(&spec.db).expect("db");
    report.leads_in_db = conn
        .query_row("SELECT COUNT(DISTINCT sql_ID) FROM bitrix_leads", [], |r| {
            r.get::<_, i64>(0)
        })
        .expect("count") as u64;
    report.vm_hwm_kib = vm_hwm_kib();
    println!("RESULT {}", serde_json::to_string(&report).unwrap());
}

/// Peak resident set size of this process so far (`VmHWM` in /proc/self/status), KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

async fn run_method(spec: &ChildSpec) -> ChildReport {
    let cancel = CancellationToken::new();
    let client = Bitrix24Client::new(
        Webhook::parse(&spec.webhook).expect("webhook"),
        ClientConfig::default(),
        cancel.clone(),
    )
    .expect("client");
    let sink = SqliteSink::open(std::path::Path::new(&spec.db))
        .expect("sqlite")
        .into_stores();
    let started = Instant::now();
    let mut report = ChildReport::default();
    if matches!(spec.method, Method::D | Method::S) {
        // (d): one chain at a time, as before parallel chains became the default; (s): the
        // default.
        let defaults = SyncOptions::default();
        let opts = SyncOptions {
            solution_field: Some(SOLUTION.into()),
            max_chains: if spec.method == Method::D {
                1
            } else {
                defaults.max_chains
            },
            ..defaults
        };
        let summary = run::sync(&client, &(&sink).into(), &opts, cancel)
            .await
            .expect("sync");
        report.wall_secs = started.elapsed().as_secs_f64();
        report.requests = summary.requests;
        report.retries = summary.retries;
        report.list_secs = summary.server_secs;
        return report;
    }

    sink.schema.init_schema().await.expect("schema");
    let labels = run::fetch_solution_labels(&client, SOLUTION)
        .await
        .expect("labels");
    report.other_secs = client.stats().server_secs;
    let ctx = TransformContext {
        time_policy: TimePolicy::Portal,
        solution_field: Some(SOLUTION.into()),
        solution_labels: labels,
        phone_region: Default::default(),
    };
    // The same shape as run::sync: pages → transform → batches of 2,500 → one transaction each.
    let (tx, mut rx) = mpsc::channel::<Vec<Value>>(8);
    let loader = tokio::spawn({
        let batches = sink.batches.clone();
        async move {
            let mut pending = b24sync::model::Batch::default();
            while let Some(page) = rx.recv().await {
                let batch = transform::transform_page(b24sync::schema::LEAD, &page, &ctx);
                pending.records.extend(batch.records);
                pending.rejected.extend(batch.rejected);
                if pending.records.len() + pending.rejected.len() >= LOAD_BATCH {
                    let full = std::mem::take(&mut pending);
                    batches
                        .load_batch(prepare(full), run::local_now())
                        .await
                        .expect("load");
                }
            }
            if !pending.is_empty() {
                batches
                    .load_batch(prepare(pending), run::local_now())
                    .await
                    .expect("load");
            }
        }
    });
    let limit = spec.limit.unwrap_or(usize::MAX);
    match spec.method {
        Method::A => oktell(&client, limit, &tx, &mut report).await,
        Method::B => by_next_wide(&client, limit, &tx, &mut report).await,
        Method::C => sdk_traversable_list(&client, &tx, &mut report).await,
        Method::P => parallel_chains(&client, &tx).await,
        Method::F => fast_bitrix24_get_all(&client, &tx, &mut report).await,
        Method::D | Method::S => unreachable!(),
    }
    drop(tx);
    loader.await.expect("loader");
    report.wall_secs = started.elapsed().as_secs_f64();
    let stats = client.stats();
    report.requests = stats.requests;
    report.retries = stats.retries;
    report
}
