//! The load stage alone on the embedded database: preparation plus the backend's batch
//! writes, for a first load (insert), a re-sync of an unchanged portal (unchanged) and one
//! where every lead changed (all changed), with and without the per-lead fingerprints that
//! let an unchanged lead skip the database (see BENCHMARKS.md).
//!
//! ```text
//! cargo bench --bench load -- [--leads 100000,1000000]
//! ```
//!
//! Leads are generated here (every contract column filled, two phones and an e-mail each),
//! transformed outside the clock, then timed through `prepare` and
//! `BatchWriter::load_batch` in transactions of 2,500 leads, as `run::sync` loads them.
//! "today" stages and compares every lead (`sync --verify` does the same); "fingerprints"
//! skips those whose fingerprint equals the stored one before staging.

// `json!` of a whole lead nests deeper than the default limit.
#![recursion_limit = "256"]

// The allocator the binary ships with (src/main.rs), so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::time::Instant;

use b24sync::load::sqlite::SqliteSink;
use b24sync::load::Stores;
use b24sync::model::LeadId;
use b24sync::prepare::{prepare, skip_unchanged, Fingerprint};
use b24sync::run;
use b24sync::schema::LEAD;
use b24sync::store::BatchOutcome;
use b24sync::transform::{self, TimePolicy, TransformContext};
use serde_json::{json, Value};

/// Leads per load transaction, as `run::sync` uses.
const LOAD_BATCH: usize = 2500;

fn lead(id: usize, version: u32) -> Value {
    let phone = |i: usize| {
        format!(
            "+7 (9{:02}) {:03}-{:02}-{:02}",
            id % 100,
            id % 1000,
            i,
            (id / 7) % 100
        )
    };
    json!({
        "ID": id.to_string(),
        "TITLE": format!("Lead {id} from the web form (v{version})"),
        "NAME": "Иван", "SECOND_NAME": "Петрович", "LAST_NAME": format!("Сидоров-{id}"),
        "COMPANY_TITLE": "ООО «Ромашка»", "POST": "менеджер",
        "ADDRESS": "ул. Ленина, 1", "ADDRESS_2": null, "ADDRESS_CITY": "Москва",
        "ADDRESS_COUNTRY": "Россия", "ADDRESS_COUNTRY_CODE": "RU", "ADDRESS_POSTAL_CODE": "101000",
        "ADDRESS_PROVINCE": null, "ADDRESS_REGION": null,
        "ASSIGNED_BY_ID": (id % 40 + 1).to_string(), "CREATED_BY_ID": "1", "MODIFY_BY_ID": "1",
        "COMPANY_ID": "0", "CONTACT_ID": null, "CURRENCY_ID": "RUB", "OPPORTUNITY": "15000.00",
        "OPENED": "Y", "ORIGIN_ID": null, "ORIGINATOR_ID": null,
        "SOURCE_ID": "WEB", "SOURCE_DESCRIPTION": "Форма на сайте",
        "STATUS_ID": "NEW", "STATUS_DESCRIPTION": null,
        "COMMENTS": format!("Перезвонить после обеда. Заявка №{id}."),
        "BIRTHDATE": "1985-03-14T03:00:00+03:00",
        "DATE_CREATE": "2025-02-01T10:00:00+03:00",
        "DATE_MODIFY": format!("2026-0{}-01T10:00:00+03:00", version.min(9)),
        "DATE_CLOSED": "",
        "PHONE": [
            {"ID": (id * 3).to_string(), "VALUE_TYPE": "WORK", "VALUE": phone(1), "TYPE_ID": "PHONE"},
            {"ID": (id * 3 + 1).to_string(), "VALUE_TYPE": "MOBILE", "VALUE": phone(2), "TYPE_ID": "PHONE"},
        ],
        "EMAIL": [
            {"ID": (id * 3 + 2).to_string(), "VALUE_TYPE": "WORK", "VALUE": format!("lead{id}@example.ru"), "TYPE_ID": "EMAIL"},
        ],
    })
}

struct Pass {
    secs: f64,
    outcome: BatchOutcome,
}

/// Load `n` leads of `version` through the load stage; `skip` uses the fingerprints.
async fn pass(stores: &Stores, n: usize, version: u32, skip: bool) -> Pass {
    let ctx = TransformContext {
        time_policy: TimePolicy::Portal,
        solution_field: None,
        solution_labels: HashMap::new(),
        phone_region: Default::default(),
    };
    let stored: HashMap<LeadId, Fingerprint> = if skip {
        stores
            .fingerprints
            .fingerprints(LEAD)
            .await
            .expect("fingerprints")
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    let mut secs = 0.0;
    let mut outcome = BatchOutcome::default();
    for start in (1..=n).step_by(LOAD_BATCH) {
        let page: Vec<Value> = (start..(start + LOAD_BATCH).min(n + 1))
            .map(|id| lead(id, version))
            .collect();
        let batch = transform::transform_page(LEAD, &page, &ctx);
        let clock = Instant::now();
        let mut prepared = prepare(batch);
        if skip {
            let (kept, unchanged) = skip_unchanged(prepared, &stored);
            prepared = kept;
            outcome.leads_unchanged += unchanged;
        }

        if !prepared.is_empty() {
            let done = stores
                .batches
                .load_batch(prepared, run::local_now())
                .await
                .expect("load");
            outcome.add(&done);
        }
        secs += clock.elapsed().as_secs_f64();
    }
    Pass { secs, outcome }
}

fn parse_leads() -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    let mut leads = vec![100_000, 1_000_000];
    if let Some(i) = args.iter().position(|a| a == "--leads") {
        let list = args
            .get(i + 1)
            .expect("--leads takes a list, e.g. 100000,1000000");
        leads = list
            .split(',')
            .map(|n| n.trim().parse().expect("--leads: whole numbers"))
            .collect();
    }
    leads
}

#[tokio::main]
async fn main() {
    let leads = parse_leads();
    println!("| leads | load | scenario | rows written | unchanged | seconds | leads/s |");
    println!("|---:|---|---|---:|---:|---:|---:|");
    for &n in &leads {
        for (label, skip) in [("today (every lead staged)", false), ("fingerprints", true)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = dir.path().join("load.db");
            let stores = SqliteSink::open(&db).expect("sqlite").into_stores();
            stores.schema.init_schema().await.expect("schema");
            for (scenario, version) in [("insert", 1), ("unchanged", 1), ("all changed", 2)] {
                let p = pass(&stores, n, version, skip).await;
                let written = p.outcome.leads_inserted + p.outcome.leads_updated;
                println!(
                    "| {n} | {label} | {scenario} | {written} | {} | {:.1} | {:.0} |",
                    p.outcome.leads_unchanged,
                    p.secs,
                    n as f64 / p.secs.max(1e-9)
                );
            }
        }
    }
}
