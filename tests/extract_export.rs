//! The fast export (`extract::paging`) against the simulator: how many requests a full
//! export costs, that it loses and duplicates nothing while leads change under it, and
//! how it lives with the portal's operating-time limit. Every count is read from the
//! simulator's own counters, every outcome from the SQLite file; nothing here measures time.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use b24sync::extract::client::{Bitrix24Client, ExtractError, SubResult};
use b24sync::extract::paging::{self, Paging, BATCH_SIZE, PAGE_SIZE};
use b24sync::extract::query;
use b24sync::load::sqlite::SqliteSink;
use b24sync::run::{self, RunError, RunSummary, SyncOptions};
use b24sync_simulator::{OperatingLimit, PageFault, PageFaultKind, Simulator, SimulatorConfig};
use common::*;
use serde_json::{json, Map};
use tokio_util::sync::CancellationToken;

/// Leads per batch request: 50 pages of 50.
const PER_BATCH: usize = BATCH_SIZE * PAGE_SIZE;

/// One keyset chain at a time: the tests of its exact request counts, and of what it has
/// read when a change lands, pin it (the default runs up to
/// `paging::DEFAULT_MAX_CHAINS` chains over ID ranges, each of which may cost a request or
/// two over the floor where the IDs are uneven: tests/extract_parallel.rs).
fn one_chain() -> SyncOptions {
    SyncOptions {
        max_chains: 1,
        ..options()
    }
}

/// What the default's ranges may cost over the floor where IDs are uneven: at most two
/// requests per range (src/extract/paging/parallel.rs, "What a wrong estimate costs").
fn ranges_allowance() -> u64 {
    2 * b24sync::extract::paging::DEFAULT_MAX_CHAINS as u64
}

async fn start(config: SimulatorConfig) -> Simulator {
    Simulator::start(config).await.expect("simulator starts")
}

async fn sync_with(client: &Bitrix24Client, db: &Path, opts: &SyncOptions) -> RunSummary {
    let sink = run::RunStores::from(&SqliteSink::open(db).unwrap().into_stores());
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
fn full_lead_rereads(stats: &b24sync_simulator::RequestStats) -> u64 {
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
        let summary = sync_with(&common::fast_client(&sim), &db.path, &opts).await;
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
        ..one_chain()
    };
    let summary = sync_with(&common::fast_client(&sim), &db.path, &opts).await;
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
    let again = sync_with(&common::fast_client(&sim), &db.path, &next).await;
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
    let summary = sync_with(&common::fast_client(&sim), &db.path, &options()).await;
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
    let client = common::fast_client(&sim);
    let filter = paging::ExportFilter {
        entity: b24sync::schema::LEAD,
        modified_since: None,
        select: paging::select_fields(b24sync::schema::LEAD, &[]),
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

// ---- Short pages in the middle of an export (issue 11, item 2) ----

/// 10,000 leads with uneven gaps up to about ID 23,000, like the portal in the report:
/// 11,500 generated with ID step 2, then 3 of every 23 deleted.
async fn sparse_10000() -> Simulator {
    let sim = start(SimulatorConfig {
        leads: 11_500,
        id_step: 2,
        ..SimulatorConfig::default()
    })
    .await;
    let portal = sim.portal();
    for (i, id) in portal.lead_ids().into_iter().enumerate() {
        if i % 23 < 3 {
            assert!(portal.delete_lead(id));
        }
    }
    assert_eq!(portal.lead_ids().len(), 10_000);
    sim.reset_stats();
    sim
}

/// An empty page for the first chained sub-call after lead 8,000: the middle of the
/// second batch.
fn empty_page_after(from_id: i64, times: u32, chained_only: bool) -> PageFault {
    PageFault {
        from_id,
        chained_only,
        kind: PageFaultKind::Empty,
        times,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_page_in_the_middle_of_a_batch_is_re_read_and_nothing_is_lost() {
    // One re-read batch, at most one more for the pages the empty one cut off; the
    // default's ranges may add their own.
    for (opts, over) in [(one_chain(), 2), (options(), 2 + ranges_allowance())] {
        let sim = sparse_10000().await;
        sim.inject_page_fault(empty_page_after(8_000, 1, true));
        let db = test_db();
        let summary = sync_into(&sim, &db.path, &opts).await.unwrap();
        let stats = sim.stats();
        assert_eq!(stats.faults_served, 1, "the empty page was served");
        assert_eq!(summary.leads_read, 10_000);
        assert_eq!(stored_ids(&db.path), sim.portal().lead_ids());
        let floor = expected_batches(10_000);
        assert!(
            stats.http_requests <= floor + over,
            "{} chains: {} requests, floor {floor}: {:?}",
            opts.max_chains,
            stats.http_requests,
            stats.by_method
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_page_in_the_middle_of_a_batch_loses_nothing() {
    for (opts, over) in [(one_chain(), 2), (options(), 2 + ranges_allowance())] {
        let sim = sparse_10000().await;
        sim.inject_page_fault(PageFault {
            kind: PageFaultKind::Truncated { keep: 12 },
            ..empty_page_after(8_000, 1, true)
        });
        let db = test_db();
        let summary = sync_into(&sim, &db.path, &opts).await.unwrap();
        assert_eq!(sim.stats().faults_served, 1);
        assert_eq!(summary.leads_read, 10_000);
        assert_eq!(stored_ids(&db.path), sim.portal().lead_ids());
        assert!(sim.stats().http_requests <= expected_batches(10_000) + over);
    }
}

/// The run fails with the typed error, names where it stopped and how far it had to
/// go, and leaves the watermark and the "full sync completed" state unset.
async fn assert_incomplete_run(sim: &Simulator, opts: &SyncOptions, client: &Bitrix24Client) {
    let db = test_db();
    let sink = SqliteSink::open(&db.path).unwrap().into_stores();
    let stores = run::RunStores::from(&sink);
    let err = run::sync(client, &stores, opts, CancellationToken::new())
        .await
        .expect_err("an export that cannot get past an empty page fails");
    let RunError::Extract(ExtractError::Incomplete {
        cursor,
        extent,
        rereads,
        ..
    }) = &err
    else {
        panic!("not the incomplete-export error: {err}");
    };
    let max = *sim.portal().lead_ids().last().unwrap();
    assert_eq!(*extent, max, "{err}");
    assert!((8_000..8_300).contains(cursor), "{err}");
    assert!(*rereads >= 2, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("after ID {cursor}")) && text.contains(&max.to_string()),
        "{text}"
    );
    assert_eq!(
        b24sync::exit::for_error(&err),
        b24sync::exit::BITRIX_UNREACHABLE
    );
    for key in [run::state_keys::WATERMARK, run::state_keys::FULL_RUN_LEADS] {
        assert_eq!(
            sink.state.read_state(key).await.unwrap(),
            None,
            "{key} was written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_stays_empty_fails_the_export_and_keeps_the_watermark() {
    let sim = sparse_10000().await;
    sim.inject_page_fault(empty_page_after(8_000, 1_000, false));
    let client = common::client_for(&sim, CancellationToken::new());
    assert_incomplete_run(&sim, &options(), &client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_paging_re_reads_an_empty_page_and_fails_on_one_that_stays_empty() {
    let sim = start(SimulatorConfig {
        leads: 11_500,
        id_step: 2,
        rate_limit: None,
        ..SimulatorConfig::default()
    })
    .await;
    let n = sim.portal().lead_ids().len();
    let opts = SyncOptions {
        paging: Paging::Next,
        ..options()
    };
    // Once: re-read, nothing lost.
    sim.inject_page_fault(empty_page_after(8_000, 1, false));
    let db = test_db();
    let summary = sync_with(&common::fast_client(&sim), &db.path, &opts).await;
    assert_eq!(sim.stats().faults_served, 1);
    assert_eq!(summary.leads_read, n as u64);
    assert_eq!(stored_ids(&db.path), sim.portal().lead_ids());
    // The check and the re-read: two requests more than a clean export.
    assert!(
        sim.stats().http_requests
            <= expected_next_pages(n) + 2 + 2 + full_lead_rereads(&sim.stats())
    );
    // For good: the run fails.
    sim.inject_page_fault(empty_page_after(8_000, 1_000, false));
    assert_incomplete_run(&sim, &opts, &common::fast_client(&sim)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_deleted_at_the_top_during_an_export_end_it_after_one_check() {
    // The probe saw the highest IDs; then they were deleted. The chain stops short of
    // the extent, one re-read finds nothing beyond: a complete export, not an error.
    let sim = start(SimulatorConfig {
        leads: 3_000,
        ..SimulatorConfig::default()
    })
    .await;
    let client = common::client_for(&sim, CancellationToken::new());
    let filter = paging::ExportFilter {
        entity: b24sync::schema::LEAD,
        modified_since: None,
        select: vec!["ID".into()],
    };
    let probe = client
        .batch(&[("probe".into(), paging::probe_command(&filter))])
        .await
        .unwrap();
    let extent = paging::extent_of(probe.get("probe")).unwrap();
    assert_eq!(extent.max_id, 3_000);
    for id in 2_990..=3_000 {
        assert!(sim.portal().delete_lead(id));
    }
    sim.reset_stats();
    let ids = paging::list_ids(&client, b24sync::schema::LEAD, Paging::Batch, Some(extent))
        .await
        .unwrap();
    assert_eq!(ids.len(), 2_989);
    // Two chains (2,500 + 489 leads, the second short of 3,000), then the check.
    assert_eq!(sim.stats().http_requests, 3, "{:?}", sim.stats().by_method);
    let ids = paging::list_ids(&client, b24sync::schema::LEAD, Paging::Next, Some(extent))
        .await
        .unwrap();
    assert_eq!(ids.len(), 2_989);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_id_listing_never_makes_leads_look_deleted() {
    let sim = start(SimulatorConfig {
        leads: 6_000,
        ..SimulatorConfig::default()
    })
    .await;
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let every_run = SyncOptions {
        deletion: run::DeletionPolicy {
            every_runs: 1,
            ..Default::default()
        },
        ..options()
    };
    // The ID listing of an incremental run's deletion check meets an empty page after
    // lead 5,500: on the old code 500 leads (8 %, under the guard) looked deleted.
    sim.inject_page_fault(empty_page_after(5_500, 1, true));
    let summary = sync_into(&sim, &db.path, &every_run).await.unwrap();
    assert_eq!(summary.mode, "incremental");
    assert!(summary.deletion_checked);
    assert_eq!(sim.stats().faults_served, 1);
    assert_eq!(summary.leads_deleted, 0);
    assert_eq!(stored_ids(&db.path).len(), 6_000);
    // Empty for good: the run fails, and still nothing is deleted.
    sim.inject_page_fault(empty_page_after(5_500, 1_000, false));
    let err = sync_into(&sim, &db.path, &every_run).await.unwrap_err();
    assert!(
        matches!(err, RunError::Extract(ExtractError::Incomplete { .. })),
        "{err}"
    );
    assert_eq!(stored_ids(&db.path).len(), 6_000);
}

// ---- When the request floor holds (issue 16, item 16) ----

/// 1,500 dense leads and `far` more at the given IDs.
async fn dense_with_far_ids(far: &[i64]) -> Simulator {
    let sim = start(SimulatorConfig {
        leads: 1_500,
        ..SimulatorConfig::default()
    })
    .await;
    for id in far {
        assert!(sim.portal().add_lead_with_id(*id, Map::new()));
    }
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_far_off_id_costs_nothing_over_the_floor() {
    // Sized from the mean ID gap of the 50 highest leads (about 2,011), the chains were 2
    // pages long: 17 requests instead of 3.
    let sim = dense_with_far_ids(&[99_999]).await;
    let db = test_db();
    let summary = sync_into(&sim, &db.path, &one_chain()).await.unwrap();
    assert_eq!(summary.leads_read, 1_501);
    assert_eq!(stored_ids(&db.path), sim.portal().lead_ids());
    assert_eq!(
        sim.stats().http_requests,
        expected_batches(1_501) + full_lead_rereads(&sim.stats()),
        "{:?}",
        sim.stats().by_method
    );
    // The default plans ranges up to the far ID (the probe's median gap says dense): the
    // empty ones cost their batch and a check each, the table is the same.
    let sim = dense_with_far_ids(&[99_999]).await;
    let db = test_db();
    let summary = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(summary.leads_read, 1_501);
    assert_eq!(stored_ids(&db.path), sim.portal().lead_ids());
    let floor = expected_batches(1_501) + full_lead_rereads(&sim.stats());
    let spent = sim.stats().http_requests;
    assert!(
        spent <= floor + ranges_allowance(),
        "{spent} requests, floor {floor}: {:?}",
        sim.stats().by_method
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_sparser_at_the_top_than_below_cost_one_request_over_the_floor() {
    // The 50 highest leads are 1,000 IDs apart, the 1,500 below them dense: the first
    // chain is sized from the sparse top (2 pages), the rest from the density read.
    let far: Vec<i64> = (0..50).map(|i| 2_500 + 1_000 * i).collect();
    let sim = dense_with_far_ids(&far).await;
    let db = test_db();
    let summary = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(summary.leads_read, 1_550);
    assert_eq!(stored_ids(&db.path), sim.portal().lead_ids());
    assert_eq!(
        sim.stats().http_requests,
        expected_batches(1_550) + 1 + full_lead_rereads(&sim.stats()),
        "{:?}",
        sim.stats().by_method
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_with_sparse_time_blocks_is_read_in_full_at_the_floor() {
    // Whole-second `start`/`finish`, no `operating` or `operating_reset_at` anywhere.
    let sim = start(SimulatorConfig {
        leads: 5_000,
        sparse_time: true,
        ..SimulatorConfig::default()
    })
    .await;
    let db = test_db();
    let summary = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(summary.leads_read, 5_000);
    assert_eq!(stored_ids(&db.path), sim.portal().lead_ids());
    assert_eq!(
        sim.stats().http_requests,
        expected_batches(5_000) + full_lead_rereads(&sim.stats())
    );
    assert!(
        summary.server_secs > 0.0,
        "server time still summed from `processing`"
    );
}
