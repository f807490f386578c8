//! `extract::portal::fetch_full_leads` against the simulator over real HTTP: chosen
//! leads come back exactly as `crm.lead.get` returns them (every standard field, the
//! user fields, the multi-fields), 50 per request; an ID the portal does not have is
//! simply absent.

mod common;

use std::collections::BTreeSet;

use b24sync::extract::client::SubResult;
use b24sync::extract::paging::select_fields;
use b24sync::extract::portal::fetch_full_leads;
use b24sync_simulator::{Fault, FaultKind, Simulator, SimulatorConfig};
use serde_json::Value;

const SOLUTION: &str = "UF_CRM_SOLUTION";

async fn sim(leads: usize) -> Simulator {
    Simulator::start(SimulatorConfig {
        leads,
        rate_limit: None,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_leads_come_back_whole_and_missing_ones_are_absent() {
    let sim = sim(300).await;
    assert!(sim.portal().delete_lead(17));
    let c = common::fast_client(&sim);
    // 1..=120 (17 deleted meanwhile), one that never existed, duplicates, and IDs that
    // cannot exist.
    let mut ids: Vec<i64> = (1..=120).collect();
    ids.extend([99_999, 5, 5, 0, -3]);
    let got = fetch_full_leads(&c, &ids).await.unwrap();

    let expected: BTreeSet<i64> = (1..=120).filter(|id| *id != 17).collect();
    assert_eq!(got.keys().copied().collect::<BTreeSet<i64>>(), expected);
    for id in &expected {
        assert_eq!(
            Some(&got[id]),
            sim.portal().lead(*id).as_ref(),
            "lead {id} as crm.lead.get returns it"
        );
    }
    // 121 distinct IDs worth asking: 3 batches of at most 50 crm.lead.get calls.
    let stats = sim.stats();
    assert_eq!(
        stats.by_method.get("batch"),
        Some(&3),
        "{:?}",
        stats.by_method
    );
    assert_eq!(stats.by_method.get("crm.lead.get"), Some(&121));

    // More than the export's named select: user fields, multi-fields, the read-only flags.
    let select: BTreeSet<String> = select_fields(b24sync::schema::LEAD, &[SOLUTION.to_string()])
        .into_iter()
        .collect();
    let keys: BTreeSet<&String> = got
        .values()
        .flat_map(|l| l.as_object().unwrap().keys())
        .collect();
    for field in [
        "HAS_PHONE",
        "UTM_SOURCE",
        "UF_CRM_1712345678",
        "UF_CRM_BUDGET",
        SOLUTION,
        "PHONE",
        "EMAIL",
    ] {
        assert!(
            keys.iter().any(|k| k.as_str() == field),
            "{field} in no lead"
        );
    }
    assert!(keys.iter().any(|k| !select.contains(k.as_str())));
}

#[tokio::test]
async fn the_portal_says_not_found_with_an_empty_code() {
    // What `fetch_full_leads` relies on to tell "gone" from "failed".
    let sim = sim(10).await;
    let c = common::fast_client(&sim);
    let answers = c
        .batch(&[("x".into(), "crm.lead.get?id=4242".into())])
        .await
        .unwrap();
    assert_eq!(
        answers.get("x"),
        Some(&SubResult::Err {
            code: String::new(),
            description: "Not found".into()
        })
    );
}

#[tokio::test]
async fn a_failed_request_is_retried_and_nothing_is_asked_for_nothing() {
    let sim = sim(10).await;
    let c = common::fast_client(&sim);
    assert!(fetch_full_leads(&c, &[]).await.unwrap().is_empty());
    assert_eq!(sim.stats().http_requests, 0);
    sim.inject(Fault {
        method: Some("batch".into()),
        kind: FaultKind::Internal,
        times: 1,
    });
    let got = fetch_full_leads(&c, &[3, 4]).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(matches!(got.get(&3), Some(Value::Object(_))));
    assert_eq!(sim.stats().http_requests, 2);
}
