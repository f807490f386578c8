//! Parallel keyset chains (`extract::paging`, `PagingOptions::max_chains`) against the
//! simulator over real HTTP: every lead read exactly once, the extent reached by every
//! range, the requests at the floor (⌈N/2,500⌉ lead batches, at most two more per range
//! where the IDs are uneven), chains that really overlap, and one chain when the
//! operating budget is tight. Counts come from the simulator's own counters.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use b24sync::extract::client::{Bitrix24Client, ExtractError, SubResult};
use b24sync::extract::limits::OperatingConfig;
use b24sync::extract::paging::{
    self, ExportFilter, ExportStats, Extent, Paging, PagingOptions, BATCH_SIZE, PAGE_SIZE,
};
use b24sync_simulator::{
    Fault, FaultKind, PageFault, PageFaultKind, RequestStats, Simulator, SimulatorConfig,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Leads per batch request: 50 pages of 50.
const PER_BATCH: usize = BATCH_SIZE * PAGE_SIZE;
/// Added to every answer, so that requests in flight at the same time are visible in the
/// simulator's arrival times.
const LATENCY: Duration = Duration::from_millis(300);
const CHAINS: usize = 4;

async fn start(leads: usize, id_step: u32) -> Simulator {
    Simulator::start(SimulatorConfig {
        leads,
        id_step,
        rate_limit: None,
        latency: LATENCY,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn client(sim: &Simulator, budget_secs: f64) -> Bitrix24Client {
    common::fast_client_with(
        sim,
        OperatingConfig {
            budget_secs,
            ..OperatingConfig::default()
        },
    )
}

/// What one export did.
struct Outcome {
    /// Every lead received, in the order the pages came, as the loader sees them.
    leads: Vec<Value>,
    /// The chains the export planned to run at once.
    chains: usize,
    /// The simulator's counters for the export alone (the probe excluded).
    stats: RequestStats,
    result: Result<ExportStats, ExtractError>,
}

impl Outcome {
    fn ids(&self) -> Vec<i64> {
        self.leads.iter().map(id_of).collect()
    }

    /// Every lead on the portal once, nothing else: the extent was reached in every range.
    fn assert_read_once(&self, sim: &Simulator) {
        let ids = self.ids();
        let distinct: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len(), "a lead was read twice");
        let portal: Vec<i64> = sim.portal().lead_ids();
        assert_eq!(distinct.into_iter().collect::<Vec<_>>(), portal);
        let stats = self.result.as_ref().expect("the export completes");
        assert_eq!(stats.leads, portal.len() as u64);
        assert!(portal.iter().all(|id| stats.ids.contains(*id)));
    }

    /// Requests of the export (a retried request counts each time it reached the server).
    fn requests(&self) -> u64 {
        self.stats.http_requests
    }

    /// The most requests in flight at once: arrivals closer together than the latency
    /// every answer waits.
    fn overlap(&self) -> usize {
        let at = &self.stats.arrivals_ms;
        let window = LATENCY.as_millis() as u64 * 3 / 4;
        (0..at.len())
            .map(|i| at[i..].iter().take_while(|t| **t < at[i] + window).count())
            .max()
            .unwrap_or(0)
    }
}

fn id_of(lead: &Value) -> i64 {
    match &lead["ID"] {
        Value::String(s) => s.parse().unwrap(),
        v => v.as_i64().unwrap(),
    }
}

/// The floor of lead batches for `n` leads.
fn floor(n: usize) -> u64 {
    n.div_ceil(PER_BATCH) as u64
}

fn filter() -> ExportFilter {
    ExportFilter {
        entity: b24sync::schema::LEAD,
        modified_since: None,
        select: paging::select_fields(b24sync::schema::LEAD, &[]),
    }
}

/// Probe the extent like a run does (one batch request), then export with up to
/// `max_chains`.
async fn export(sim: &Simulator, client: &Bitrix24Client, max_chains: usize) -> Outcome {
    let probe = client
        .batch(&[("probe".into(), paging::probe_command(&filter()))])
        .await
        .unwrap();
    let extent = paging::extent_of(probe.get("probe")).unwrap();
    export_from(sim, client, extent, max_chains).await
}

/// Export `extent` with up to `max_chains`, counting from here.
async fn export_from(
    sim: &Simulator,
    client: &Bitrix24Client,
    extent: Extent,
    max_chains: usize,
) -> Outcome {
    let chains = paging::planned_chains(client, "crm.lead.list", max_chains, &extent);
    sim.reset_stats();
    let (tx, mut rx) = mpsc::channel::<Vec<Value>>(8);
    let collect = tokio::spawn(async move {
        let mut leads = Vec::new();
        while let Some(page) = rx.recv().await {
            leads.extend(page);
        }
        leads
    });
    let options = PagingOptions {
        paging: Paging::Batch,
        max_chains,
    };
    let result = paging::export(client, options, &filter(), Some(extent), tx).await;
    Outcome {
        leads: collect.await.unwrap(),
        chains,
        stats: sim.stats(),
        result,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dense_ids_are_read_by_four_chains_at_the_floor() {
    let sim = start(12_500, 1).await;
    let out = export(&sim, &client(&sim, 480.0), CHAINS).await;
    out.assert_read_once(&sim);
    assert_eq!(out.chains, CHAINS);
    // Five chains of 2,500 over four ranges (2 + 1 + 1 + 1): no request more than one chain.
    assert_eq!(out.requests(), floor(12_500), "{:?}", out.stats.by_method);
    assert_eq!(out.overlap(), CHAINS, "{:?}", out.stats.arrivals_ms);
    assert_eq!(out.stats.faults_served, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_ids_are_read_at_the_floor() {
    // IDs 7, 14, …, 70,000: the ranges' bounds are multiples of 2,500 × 7, i.e. lead IDs.
    let sim = start(10_000, 7).await;
    let out = export(&sim, &client(&sim, 480.0), CHAINS).await;
    out.assert_read_once(&sim);
    assert_eq!(out.requests(), floor(10_000), "{:?}", out.stats.by_method);
    assert!(out.overlap() >= 3, "{:?}", out.stats.arrivals_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dense_cluster_under_a_sparse_tail_is_shared_out() {
    // 10,000 IDs in a row, then 100 leads 3,000 IDs apart up to 317,000: the probe sees
    // only the tail, so the first plan is one range; its first batch shows the density
    // and the cluster is handed out chain by chain.
    let sim = start(10_000, 1).await;
    for i in 0..100 {
        assert!(sim
            .portal()
            .add_lead_with_id(20_000 + 3_000 * i, Default::default()));
    }
    let out = export(&sim, &client(&sim, 480.0), CHAINS).await;
    out.assert_read_once(&sim);
    assert_eq!(out.chains, CHAINS);
    assert!(
        out.overlap() >= 3,
        "the cluster was read by several chains at once: {:?}",
        out.stats.arrivals_ms
    );
    // At most two more than the floor per range the four chains took at a time.
    let n = 10_100;
    assert!(
        out.requests() <= floor(n) + 2 * CHAINS as u64,
        "{} requests, floor {}: {:?}",
        out.requests(),
        floor(n),
        out.stats.by_method
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_range_in_the_middle_is_proven_empty() {
    // IDs 1..=5,000 and 15,001..=20,000: the plan's second and third ranges hold nothing.
    let sim = start(20_000, 1).await;
    for id in 5_001..=15_000 {
        assert!(sim.portal().delete_lead(id));
    }
    let out = export(&sim, &client(&sim, 480.0), CHAINS).await;
    out.assert_read_once(&sim);
    // Each empty range: its batch, and the re-read with the check that finds nothing.
    assert!(
        out.requests() <= floor(10_000) + 2 * 2,
        "{} requests: {:?}",
        out.requests(),
        out.stats.by_method
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_page_in_one_range_is_re_read() {
    let sim = start(12_500, 1).await;
    sim.inject_page_fault(PageFault {
        from_id: 8_000,
        chained_only: true,
        kind: PageFaultKind::Truncated { keep: 12 },
        times: 1,
    });
    let out = export(&sim, &client(&sim, 480.0), CHAINS).await;
    assert_eq!(out.stats.faults_served, 1, "the short page was served");
    out.assert_read_once(&sim);
    // The range that met it re-reads once, with the check: at most two more.
    assert!(
        out.requests() <= floor(12_500) + 2,
        "{:?}",
        out.stats.by_method
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_that_stays_empty_fails_the_export_with_the_lowest_cursor() {
    // Every page after lead 8,000 comes back empty: the third range (7,500..10,000] and
    // the fourth cannot get past their first leads. No range ends short silently; the
    // others finish, and the error names the lowest point the export could not pass.
    let sim = start(12_500, 1).await;
    sim.inject_page_fault(PageFault {
        from_id: 8_000,
        chained_only: false,
        kind: PageFaultKind::Empty,
        times: 10_000,
    });
    let out = export(&sim, &client(&sim, 480.0), CHAINS).await;
    match &out.result {
        Err(ExtractError::Incomplete {
            cursor, rereads, ..
        }) => {
            assert!((8_000..8_100).contains(cursor), "cursor {cursor}");
            assert!(*rereads >= 2);
        }
        other => panic!("not the incomplete-export error: {other:?}"),
    }
    let ids: BTreeSet<i64> = out.ids().into_iter().collect();
    assert!(
        (1..=7_500).all(|id| ids.contains(&id)),
        "the lower ranges finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_and_a_429_in_one_range_are_retried_and_nothing_is_lost() {
    let sim = start(12_500, 1).await;
    let client = client(&sim, 480.0);
    // For the next two `batch` requests: two of the chains' first batches.
    for kind in [
        FaultKind::QueryLimit,
        FaultKind::OperationTimeLimit {
            reset_in: Duration::from_secs(1),
        },
    ] {
        sim.inject(Fault {
            method: Some("batch".into()),
            kind,
            times: 1,
        });
    }
    let out = export_after_probe(&sim, &client).await;
    assert_eq!(out.stats.faults_served, 2, "{:?}", out.stats);
    out.assert_read_once(&sim);
    // Each fault costs its request once more.
    assert!(
        out.requests() <= floor(12_500) + 2,
        "{} requests: {:?}",
        out.requests(),
        out.stats.by_method
    );
}

/// [`export`], but the probe is a `crm.lead.list` call of its own, so that the `batch`
/// faults queued before wait for the chains.
async fn export_after_probe(sim: &Simulator, client: &Bitrix24Client) -> Outcome {
    let resp = client
        .call(
            "crm.lead.list",
            &json!({"order": {"ID": "DESC"}, "filter": {}, "select": ["ID"], "start": -1}),
        )
        .await
        .unwrap();
    let extent = paging::extent_of(Some(&SubResult::Ok {
        result: resp.result,
        total: None,
        next: None,
    }))
    .unwrap();
    export_from(sim, client, extent, CHAINS).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_budget_falls_back_to_one_chain() {
    let sim = start(12_500, 1).await;
    // 480 s is room for the expected ≈ 25 s; 20 s (80 %: 16 s) is not.
    let roomy = export(&sim, &client(&sim, 480.0), CHAINS).await;
    assert_eq!(roomy.chains, CHAINS);
    let out = export(&sim, &client(&sim, 20.0), CHAINS).await;
    assert_eq!(out.chains, 1);
    out.assert_read_once(&sim);
    assert_eq!(out.requests(), floor(12_500));
    assert_eq!(out.overlap(), 1, "one request at a time");
    // A cap of one is one chain whatever the budget.
    let one = export(&sim, &client(&sim, 480.0), 1).await;
    assert_eq!((one.chains, one.overlap()), (1, 1));
    one.assert_read_once(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_edited_during_the_export_ends_with_its_later_copy() {
    // Lead 4,000 sits in the first range's second chain: the edit lands while the first
    // wave (one batch per range) is being served, before that chain reads it.
    let sim = Arc::new(start(12_500, 1).await);
    let client = client(&sim, 480.0);
    let edit = tokio::spawn({
        let sim = sim.clone();
        async move {
            while sim.stats().http_requests < 2 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            assert!(sim.portal().update_lead(4_000, |lead| {
                lead.insert("TITLE".into(), json!("edited during the export"));
            }));
        }
    });
    let out = export(&sim, &client, CHAINS).await;
    edit.await.unwrap();
    out.assert_read_once(&sim);
    // What the loader keeps: the later copy of each lead, in the order the pages came.
    let mut kept: BTreeMap<i64, Value> = BTreeMap::new();
    for lead in &out.leads {
        kept.insert(id_of(lead), lead.clone());
    }
    assert_eq!(kept[&4_000]["TITLE"], json!("edited during the export"));
    assert_eq!(kept.len(), 12_500);
}
