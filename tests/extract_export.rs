//! The fast export (`extract::paging`) against the simulator: how many requests a full
//! export costs, that it loses and duplicates nothing while leads change under it, and
//! how it lives with the portal's operating-time limit. Every count is read from the
//! simulator's own counters, every outcome from the SQLite file; nothing here measures time.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use b24sync::extract::client::{Bitrix24Client, ClientConfig, SubResult};
use b24sync::extract::limits::RateConfig;
use b24sync::extract::paging::{self, Paging, BATCH_SIZE, PAGE_SIZE};
use b24sync::extract::{query, Webhook};
use b24sync::load::sqlite::SqliteSink;
use b24sync::run::{self, RunSummary, SyncOptions};
use b24sync::simulator::{OperatingLimit, Simulator, SimulatorConfig};
use common::*;
use serde_json::{json, Map};
use tokio_util::sync::CancellationToken;

/// Leads per batch request: 50 pages of 50.
const PER_BATCH: usize = BATCH_SIZE * PAGE_SIZE;

async fn start(config: SimulatorConfig) -> Simulator {
    Simulator::start(config).await.expect("simulator starts")
}

/// A client without pacing worth mentioning, for simulators whose rate limit is off
/// (the `Paging::Next` exports make hundreds of requests).
fn fast_client(sim: &Simulator) -> Bitrix24Client {
    let config = ClientConfig {
        rate: RateConfig {
            per_second: 10_000.0,
            burst: 10_000,
        },
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..ClientConfig::default()
    };
    Bitrix24Client::new(
        Webhook::parse(&sim.webhook_url()).unwrap(),
        config,
        CancellationToken::new(),
    )
    .unwrap()
}

async fn sync_with(client: &Bitrix24Client, db: &Path, opts: &SyncOptions) -> RunSummary {
    let sink = SqliteSink::open(db).unwrap();
    run::sync(client, &sink, opts, CancellationToken::new())
        .await
        .expect("the sync finishes")
}

fn stored_ids(db: &Path) -> Vec<i64> {
    query_strings(db, "SELECT sql_ID FROM bitrix_leads ORDER BY sql_ID")
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect()
}

/// The batches a full sync needs for `n` leads when nothing changes: one for the run's
/// questions (the portal's clock, the solution field's labels, the highest IDs), then
/// ⌈n / 2500⌉ whose chains are sized by the highest IDs, so that no page is chained past
/// the end and no empty batch is needed to prove it, then one `user.get` batch for the
/// leads' operators (the simulator has 20 users). A full read is also the deletion
/// check's ID listing. That is the floor: ⌈n / 2500⌉ + 2.
fn expected_batches(n: usize) -> u64 {
    n.div_ceil(PER_BATCH) as u64 + 2
}

/// The run helper's follow-up read (issue 11.6): the leads that got an error row (the
/// simulator seeds a few) are read again whole with crm.lead.get, 50 per batch request.
fn full_lead_rereads(stats: &b24sync::simulator::RequestStats) -> u64 {
    stats
        .by_method
        .get("crm.lead.get")
        .copied()
        .unwrap_or(0)
        .div_ceil(50)
}

/// `Paging::Next` stops on the first answer without `next`, i.e. the page that holds the
/// last ≤ 50 leads: ⌈n / 50⌉ pages.
fn expected_next_pages(n: usize) -> u64 {
    n.div_ceil(PAGE_SIZE) as u64
}

async fn full_export_costs_the_floor(n: usize, id_step: u32) {
    let sim = start(SimulatorConfig {
        leads: n,
        id_step,
        ..SimulatorConfig::default()
    })
    .await;
    let db = test_db();
    let summary = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(summary.leads_read, n as u64, "n={n} step={id_step}");
    assert_eq!(stored_ids(&db.path), sim.portal().lead_ids());

    let stats = sim.stats();
    let batches = expected_batches(n) + full_lead_rereads(&stats);
    assert_eq!(
        stats.by_method.get("batch"),
        Some(&batches),
        "n={n} step={id_step}: {:?}",
        stats.by_method
    );
    // Nothing else.
    assert_eq!(stats.http_requests, batches, "{:?}", stats.by_method);
    assert!(stats.http_requests <= n.div_ceil(PER_BATCH) as u64 + 2 + full_lead_rereads(&stats));
    assert_eq!((stats.rate_limited, stats.operating_limited), (0, 0));
    assert_eq!(summary.retries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_export_of_an_exact_multiple_needs_no_empty_batch() {
    full_export_costs_the_floor(5_000, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_export_of_one_lead_more_costs_the_same() {
    full_export_costs_the_floor(5_001, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_export_is_blind_to_id_gaps() {
    // IDs 7, 14, 21, …: the keyset cursor does not care how far apart they are.
    full_export_costs_the_floor(5_000, 7).await;
    full_export_costs_the_floor(12_600, 13).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_export_reads_one_page_per_request_whatever_the_ids() {
    for (n, step) in [(5_000, 1), (5_001, 1), (5_001, 7)] {
        let sim = start(SimulatorConfig {
            leads: n,
            id_step: step,
            rate_limit: None,
            ..SimulatorConfig::default()
        })
        .await;
        let db = test_db();
        let opts = SyncOptions {
            paging: Paging::Next,
            ..options()
        };
        let summary = sync_with(&fast_client(&sim), &db.path, &opts).await;
        assert_eq!(summary.leads_read, n as u64);
        assert_eq!(stored_ids(&db.path), sim.portal().lead_ids());
        let stats = sim.stats();
        // The pages, plus the highest-ID probe in the run's first (question) batch; the
        // requests add that batch and the operators' user.get batch.
        assert_eq!(
            stats.by_method.get("crm.lead.list"),
            Some(&(expected_next_pages(n) + 1)),
            "n={n} step={step}"
        );
        assert_eq!(
            stats.http_requests,
            expected_next_pages(n) + 2 + full_lead_rereads(&stats)
        );
    }
}

/// What the portal did while an export ran.
struct Changes {
    deleted_unread: Vec<i64>,
    deleted_read: Vec<i64>,
    added: Vec<i64>,
}

/// Export all leads while, once `after_requests` requests have arrived (the answers to
/// the earlier ones have been read; the simulator still holds the newest one in its
/// `latency`), leads are deleted behind and ahead of the cursor and new ones are added.
/// `read_share` is the part of the IDs surely read by then.
async fn export_while_leads_change(paging: Paging, n: usize, after_requests: u64, read_share: f64) {
    let sim = Arc::new(
        start(SimulatorConfig {
            leads: n,
            id_step: 3,
            rate_limit: None,
            // Long enough that the change lands before the request it follows is served.
            latency: Duration::from_millis(150),
            ..SimulatorConfig::default()
        })
        .await,
    );
    let initial = sim.portal().lead_ids();
    let read_upto = initial[(initial.len() as f64 * read_share) as usize];
    let unread_from = initial[initial.len() * 3 / 4];
    let mutate = tokio::spawn({
        let (sim, initial) = (sim.clone(), initial.clone());
        async move {
            while sim.stats().http_requests < after_requests {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let portal = sim.portal();
            let pick = |keep: &dyn Fn(i64) -> bool, every: usize| -> Vec<i64> {
                initial
                    .iter()
                    .copied()
                    .filter(|id| keep(*id))
                    .step_by(every)
                    .collect()
            };
            let changes = Changes {
                deleted_read: pick(&|id| id < read_upto, 97),
                deleted_unread: pick(&|id| id > unread_from, 89),
                added: Vec::new(),
            };
            for id in changes.deleted_read.iter().chain(&changes.deleted_unread) {
                assert!(portal.delete_lead(*id));
            }
            let added = (0..7)
                .map(|i| {
                    let mut fields = Map::new();
                    fields.insert("TITLE".into(), json!(format!("added during export {i}")));
                    portal.add_lead(fields)
                })
                .collect();
            Changes { added, ..changes }
        }
    });

    let db = test_db();
    let opts = SyncOptions {
        paging,
        ..options()
    };
    let summary = sync_with(&fast_client(&sim), &db.path, &opts).await;
    let changes = mutate.await.unwrap();
    assert!(!changes.deleted_read.is_empty() && !changes.deleted_unread.is_empty());

    let stored = stored_ids(&db.path);
    let distinct: BTreeSet<i64> = stored.iter().copied().collect();
    assert_eq!(distinct.len(), stored.len(), "every lead once");
    // Read before its deletion, so it was loaded; deleted before the cursor got there, so
    // it was never seen; created meanwhile, so its ID is above every old one and read last.
    let mut expected: BTreeSet<i64> = initial.iter().copied().collect();
    for id in &changes.deleted_unread {
        expected.remove(id);
    }
    // Leads created meanwhile may be read (when a chain reaches past the probe's highest
    // ID) or left to the next run; nothing else may appear.
    let missing: Vec<&i64> = expected.difference(&distinct).collect();
    let extra: Vec<&i64> = distinct
        .difference(&expected)
        .filter(|id| !changes.added.contains(id))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{paging:?}: missing {missing:?}, extra {extra:?}; deleted unread {:?}",
        changes.deleted_unread
    );
    for id in &changes.deleted_read {
        assert!(
            distinct.contains(id),
            "lead {id} was read before it was deleted"
        );
    }
    let added_read = changes
        .added
        .iter()
        .filter(|id| distinct.contains(id))
        .count();
    assert_eq!(summary.leads_read, (expected.len() + added_read) as u64);

    // The next (incremental) run reads the leads created meanwhile, and its deletion
    // check removes those deleted after they were read.
    let next = SyncOptions {
        paging,
        deletion: run::DeletionPolicy {
            every_runs: 1,
            ..Default::default()
        },
        ..options()
    };
    let again = sync_with(&fast_client(&sim), &db.path, &next).await;
    assert_eq!(again.mode, "incremental");
    let now: BTreeSet<i64> = stored_ids(&db.path).into_iter().collect();
    let portal: BTreeSet<i64> = sim.portal().lead_ids().into_iter().collect();
    assert_eq!(
        now, portal,
        "{paging:?}: after the next run the table is the portal"
    );
    assert!(changes.added.iter().all(|id| now.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_export_loses_nothing_while_leads_come_and_go() {
    // 12,600 leads. Request 1 asks the run's questions, request 2 (batch 1) reads the
    // first 2,500 leads; the change lands while request 3 (batch 2) waits to be served.
    export_while_leads_change(Paging::Batch, 12_600, 3, 0.19).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_export_loses_nothing_while_leads_come_and_go() {
    // The questions batch, then pages of 50: when request 40 arrives, 38 pages were read.
    export_while_leads_change(Paging::Next, 5_000, 40, 0.37).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_12500_lead_export_stays_inside_the_default_operating_budget() {
    let sim = start(SimulatorConfig {
        leads: 12_500,
        ..SimulatorConfig::default()
    })
    .await;
    let db = test_db();
    let summary = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(summary.leads_loaded, 12_500);
    let stats = sim.stats();
    assert_eq!(stats.operating_limited, 0, "no 429");
    assert_eq!(stats.rate_limited, 0, "no 503");
    assert_eq!(summary.retries, 0);
    assert_eq!(
        stats.http_requests,
        expected_batches(12_500) + full_lead_rereads(&stats)
    );
}

/// A portal whose `crm.lead.list` may spend only 1.5 s of server time per 3 s window:
/// about 30 pages of our `select`, so every batch runs into the block in its middle.
fn tiny_budget(leads: usize) -> SimulatorConfig {
    SimulatorConfig {
        leads,
        rate_limit: None,
        operating_limit: Some(OperatingLimit {
            budget_secs: 1.5,
            window_secs: 3,
        }),
        ..SimulatorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_method_is_waited_out_and_the_export_completes() {
    let sim = start(tiny_budget(3_000)).await;
    let db = test_db();
    let summary = sync_with(&fast_client(&sim), &db.path, &options()).await;
    let stats = sim.stats();
    assert!(stats.operating_limited > 0, "the tiny budget did block");
    assert_eq!(summary.leads_loaded, 3_000);
    assert_eq!(stored_ids(&db.path), sim.portal().lead_ids());
    // Each block costs one re-read of the batch, never a lost page.
    assert!(
        stats.by_method["batch"] > expected_batches(3_000),
        "{:?}",
        stats.by_method
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sub_command_is_re_read_from_the_cursor() {
    // The simulator has no fault for a single sub-command, but a method over its budget
    // inside a batch answers exactly that way: HTTP 200, `result_error` for the blocked
    // pages, results for the pages before them. First show the shape, then that the
    // export survives it.
    let sim = start(tiny_budget(3_000)).await;
    let client = fast_client(&sim);
    let filter = paging::ExportFilter {
        modified_since: None,
        select: paging::select_fields(&[]),
    };
    let commands: Vec<(String, String)> = (0..BATCH_SIZE)
        .map(|i| {
            let params = json!({
                "order": {"ID": "ASC"},
                "filter": {">ID": i * PAGE_SIZE},
                "select": filter.select,
                "start": -1,
            });
            (
                format!("p{i}"),
                format!("crm.lead.list?{}", query::build(&params)),
            )
        })
        .collect();
    let answer = client.batch(&commands).await.unwrap();
    let ok = answer
        .values()
        .filter(|r| matches!(r, SubResult::Ok { .. }))
        .count();
    let blocked: Vec<&String> = answer
        .iter()
        .filter_map(|(name, r)| match r {
            SubResult::Err { code, .. } if code == "OPERATION_TIME_LIMIT" => Some(name),
            _ => None,
        })
        .collect();
    assert!(
        ok > 0 && !blocked.is_empty(),
        "a batch with good and failed pages"
    );
    assert_eq!(client.stats().retries, 0, "the batch itself succeeded");

    // A fresh window, then the real export over the same trap.
    tokio::time::sleep(Duration::from_secs(4)).await;
    sim.reset_stats();
    let db = test_db();
    let summary = sync_with(&client, &db.path, &options()).await;
    assert!(sim.stats().operating_limited > 0);
    assert_eq!(summary.leads_read, 3_000, "no page read twice or lost");
    assert_eq!(stored_ids(&db.path), sim.portal().lead_ids());
}
