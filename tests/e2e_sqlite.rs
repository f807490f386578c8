//! End to end: the simulator over real HTTP → the pipeline → a real SQLite file.
//! Expected values are computed from the simulator's own data, not from the transform.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use b24sync::extract::paging::Paging;
use b24sync::model::ColumnKind;
use b24sync::model::LEAD_COLUMNS;
use b24sync::run::SyncOptions;
use b24sync_simulator::{Fault, FaultKind};
use common::*;
use serde_json::{json, Value};

/// The value a column must hold for a lead, from the raw JSON, by the contract's rules.
fn expected_cell(lead: &Value, field: &str, kind: ColumnKind) -> Option<String> {
    let raw = text_field(lead, field)?;
    Some(match kind {
        ColumnKind::Text { max_chars } => {
            let mut out = String::new();
            let mut used = 0;
            for c in raw.chars() {
                used += c.len_utf16();
                if used > max_chars {
                    break;
                }
                out.push(c);
            }
            out
        }
        ColumnKind::LongText => raw,
        // Portal wall clock: the date and time as written, offset dropped.
        ColumnKind::DateTime => raw[..19].replace('T', " "),
        ColumnKind::Date => format!("{} 00:00:00", &raw[..10]),
    })
}

fn assert_matches_simulator(sim: &b24sync_simulator::Simulator, db: &std::path::Path) {
    let leads = sim.portal().leads();
    let labels: HashMap<String, String> = sim.portal().solution_items().into_iter().collect();
    let columns: Vec<String> = LEAD_COLUMNS.iter().map(|c| c.sql_name()).collect();
    let rows = query_strings(
        db,
        &format!(
            "SELECT sql_ID, {} FROM bitrix_leads ORDER BY sql_ID",
            columns.join(", ")
        ),
    );
    assert_eq!(rows.len(), leads.len(), "one bitrix_leads row per lead");
    let mut contact_total = 0;
    for (lead, row) in leads.iter().zip(&rows) {
        let id = text_field(lead, "ID").unwrap();
        assert_eq!(row[0].as_deref(), Some(id.as_str()));
        for (i, col) in LEAD_COLUMNS.iter().enumerate() {
            assert_eq!(
                row[i + 1],
                expected_cell(lead, col.field, col.kind),
                "lead {id} column {}",
                col.field
            );
        }
        let expected = expected_contacts(lead);
        contact_total += expected.len();
        assert_eq!(
            stored_contacts(db, id.parse().unwrap()),
            expected,
            "contacts of lead {id}"
        );
        let selected: Vec<String> = match lead.get(SOLUTION) {
            Some(Value::Array(ids)) => ids
                .iter()
                .filter_map(|v| v.as_str().map(|s| labels[s].clone()))
                .collect(),
            _ => vec![],
        };
        let stored = query_strings(
            db,
            &format!("SELECT sql_solution FROM bitrix_lead_solution WHERE sql_LEAD_ID = {id}"),
        );
        if selected.is_empty() {
            assert!(stored.is_empty(), "lead {id} has no solution row");
        } else {
            assert_eq!(
                stored,
                vec![vec![Some(selected.join(", "))]],
                "solution of lead {id}"
            );
        }
    }
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM bitrix_lead_contacts") as usize,
        contact_total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_loads_every_lead_and_contact_value_exactly() {
    let sim = simulator(3000).await;
    let db = test_db();
    let summary = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(summary.leads_read, 3000);
    assert_eq!(summary.leads_loaded, 3000);
    assert_eq!(summary.outcome.leads_inserted, 3000);
    assert!(!summary.interrupted);
    assert_matches_simulator(&sim, &db.path);
    // One request for the run's questions (the portal's clock, the solution field's
    // labels, the highest IDs), then ceil(3000 / 2500) = 2 batches of chained pages sized
    // by those IDs, then one user.get batch for the leads' operators. The full read
    // doubles as the deletion check's ID listing. The leads with error rows are read
    // again whole (crm.lead.get), 50 per request, so that their rows keep the whole lead.
    let stats = sim.stats();
    let error_leads = count(
        &db.path,
        "SELECT COUNT(DISTINCT sql_ID) FROM bitrix_import_lead_error",
    ) as u64;
    assert!(error_leads > 0, "the simulator seeds over-long titles");
    let rereads = error_leads.div_ceil(50);
    assert_eq!(stats.by_method.get("crm.lead.get"), Some(&error_leads));
    assert_eq!(
        stats.by_method.get("batch"),
        Some(&(4 + rereads)),
        "{:?}",
        stats.by_method
    );
    assert_eq!(stats.http_requests, 4 + rereads, "{:?}", stats.by_method);
    assert_eq!(stats.by_method.get("user.get"), Some(&1));
    assert_eq!(stats.by_method.get("server.time"), Some(&1));
    assert_eq!(stats.by_method.get("crm.lead.userfield.list"), Some(&1));
    // 60 pages of leads and the probe: not one page chained past the end.
    assert_eq!(stats.by_method.get("crm.lead.list"), Some(&61));
    // Over-long titles were cut and reported; nothing else was.
    let long_titles: Vec<String> = sim
        .portal()
        .leads()
        .iter()
        .filter(|l| {
            text_field(l, "TITLE")
                .map(|t| utf16_len(&t) > 4000)
                .unwrap_or(false)
        })
        .map(|l| text_field(l, "ID").unwrap())
        .collect();
    let errors = query_strings(
        &db.path,
        "SELECT sql_ID, sql_error FROM bitrix_import_lead_error ORDER BY CAST(sql_ID AS INTEGER)",
    );
    assert_eq!(
        errors
            .iter()
            .map(|r| r[0].clone().unwrap())
            .collect::<Vec<_>>(),
        long_titles
    );
    assert!(
        errors
            .iter()
            .all(|r| r[1].as_deref().unwrap().contains("TITLE")),
        "{errors:?}"
    );
    let stamped = count(
        &db.path,
        "SELECT COUNT(*) FROM bitrix_lead_runtime WHERE Id = 1 AND lead_list_dt IS NOT NULL",
    );
    assert_eq!(stamped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_changes_nothing() {
    let sim = simulator(700).await;
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let tables = [
        "bitrix_leads",
        "bitrix_lead_contacts",
        "bitrix_lead_solution",
        "bitrix_import_lead_error",
    ];
    let before: Vec<_> = tables.iter().map(|t| dump(&db.path, t)).collect();
    // A full re-read of every lead (not just an incremental one).
    let full = SyncOptions {
        mode: b24sync::run::SyncMode::Full,
        ..options()
    };
    let again = sync_into(&sim, &db.path, &full).await.unwrap();
    assert_eq!(
        (again.outcome.leads_inserted, again.outcome.leads_updated),
        (0, 0)
    );
    assert_eq!(again.outcome.leads_unchanged, 700);
    assert_eq!(
        (
            again.outcome.contacts_written,
            again.outcome.contacts_deleted
        ),
        (0, 0)
    );
    let after: Vec<_> = tables.iter().map(|t| dump(&db.path, t)).collect();
    assert_eq!(before, after, "a re-run must not touch a row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_in_bitrix24_are_reflected_exactly() {
    let sim = simulator(300).await;
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let portal = sim.portal();
    let lead = portal
        .leads()
        .into_iter()
        .find(|l| {
            l.get("PHONE")
                .and_then(Value::as_array)
                .map(|p| p.len() >= 2)
                .unwrap_or(false)
        })
        .expect("a lead with two phones");
    let id: i64 = text_field(&lead, "ID").unwrap().parse().unwrap();
    let removed = lead["PHONE"][0]["VALUE"].as_str().unwrap().to_string();
    let kept_id_before =
        query_strings(&db.path, &format!("SELECT Id FROM bitrix_lead_contacts WHERE sql_LEAD_ID = {id} AND sql_CONTACT_ID = '{}'", lead["PHONE"][1]["ID"].as_str().unwrap()));
    assert!(portal.update_lead(id, |l| {
        l.insert("TITLE".into(), json!("Новый заголовок \"после\" правки"));
        let phones = l.get_mut("PHONE").unwrap().as_array_mut().unwrap();
        phones.remove(0);
        phones.push(json!({"ID": "990001", "VALUE_TYPE": "MOBILE", "VALUE": "+7 (999) 000-11-22", "TYPE_ID": "PHONE"}));
    }));
    let summary = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(summary.outcome.leads_updated, 1);
    assert_eq!(summary.outcome.leads_inserted, 0);
    assert_matches_simulator(&sim, &db.path);
    let title = query_strings(
        &db.path,
        &format!("SELECT sql_TITLE FROM bitrix_leads WHERE sql_ID = {id}"),
    );
    assert_eq!(
        title,
        vec![vec![Some("Новый заголовок \"после\" правки".to_string())]]
    );
    let phones = query_strings(&db.path, &format!("SELECT sql_VALUE FROM bitrix_lead_contacts WHERE sql_LEAD_ID = {id} AND sql_TYPE_ID = 'PHONE'"));
    assert!(
        !phones
            .iter()
            .any(|r| r[0].as_deref() == Some(removed.as_str())),
        "the removed phone is gone"
    );
    assert!(
        phones
            .iter()
            .any(|r| r[0].as_deref() == Some("+7 (999) 000-11-22")),
        "the added phone is there"
    );
    let kept_id_after =
        query_strings(&db.path, &format!("SELECT Id FROM bitrix_lead_contacts WHERE sql_LEAD_ID = {id} AND sql_CONTACT_ID = '{}'", lead["PHONE"][1]["ID"].as_str().unwrap()));
    assert_eq!(
        kept_id_before, kept_id_after,
        "an untouched phone keeps its row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_go_to_the_error_table_while_other_leads_load() {
    let sim = simulator(200).await;
    let portal = sim.portal();
    assert!(portal.set_field_raw(10, "ID", json!("abc")));
    assert!(portal.set_field_raw(11, "TITLE", json!({"unexpected": "object"})));
    assert!(portal.set_field_raw(12, "BIRTHDATE", json!("31.02.2020")));
    assert!(portal.set_field_raw(13, "NAME", json!("Я".repeat(3001))));
    assert!(portal.set_field_raw(14, "DATE_CREATE", json!("2020-02-30T10:00:00+03:00")));
    let db = test_db();
    let summary = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(summary.leads_read, 200);
    assert_eq!(summary.leads_loaded, 199);
    assert_eq!(summary.leads_rejected, 1);
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"), 199);
    assert_eq!(
        count(
            &db.path,
            "SELECT COUNT(*) FROM bitrix_leads WHERE sql_ID = 10"
        ),
        0
    );

    let errors = query_strings(&db.path, "SELECT sql_ID, sql_error, sql_full_lead_info, sql_date_error FROM bitrix_import_lead_error");
    let by_id: HashMap<String, Vec<Option<String>>> = errors
        .into_iter()
        .map(|r| (r[0].clone().unwrap_or_default(), r))
        .collect();
    let reason = |id: &str| {
        by_id
            .get(id)
            .and_then(|r| r[1].clone())
            .unwrap_or_else(|| panic!("no error row for {id}"))
    };
    assert!(reason("abc").contains("abc"), "{}", reason("abc"));
    let json: Value = serde_json::from_str(by_id["abc"][2].as_deref().unwrap()).unwrap();
    assert_eq!(json["ID"], json!("abc"), "the whole lead JSON is kept");
    assert!(by_id["abc"][3].is_some(), "dated");
    assert!(reason("11").contains("TITLE"), "{}", reason("11"));
    assert!(
        reason("12").contains("BIRTHDATE") && reason("12").contains("31.02.2020"),
        "{}",
        reason("12")
    );
    assert!(
        reason("13").contains("NAME") && reason("13").contains("3,000"),
        "{}",
        reason("13")
    );
    assert!(reason("14").contains("DATE_CREATE"), "{}", reason("14"));

    let row = query_strings(
        &db.path,
        "SELECT sql_TITLE, sql_NAME FROM bitrix_leads WHERE sql_ID = 11",
    );
    assert_eq!(row[0][0], None, "the bad value is NULL");
    assert!(
        row[0][1].is_some() || text_field(&portal.lead(11).unwrap(), "NAME").is_none(),
        "the rest of the lead is kept"
    );
    let name = query_strings(
        &db.path,
        "SELECT sql_NAME FROM bitrix_leads WHERE sql_ID = 13",
    );
    assert_eq!(
        name[0][0].as_deref().map(|n| n.chars().count()),
        Some(3000),
        "cut to the column size"
    );
    let birth = query_strings(
        &db.path,
        "SELECT sql_BIRTHDATE FROM bitrix_leads WHERE sql_ID = 12",
    );
    assert_eq!(birth[0][0], None);

    // Fixing a lead in Bitrix24 clears its error row on the next run; the others stay, once.
    assert!(portal.update_lead(11, |l| {
        l.insert("TITLE".into(), json!("Исправлено"));
    }));
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let ids: Vec<String> = query_strings(
        &db.path,
        "SELECT sql_ID FROM bitrix_import_lead_error ORDER BY sql_ID",
    )
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect();
    let expected: Vec<String> = {
        let mut v: Vec<String> = by_id
            .keys()
            .filter(|k| k.as_str() != "11")
            .cloned()
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_by_next_loads_the_same_rows() {
    let sim = simulator(260).await;
    let (a, b) = (test_db(), test_db());
    sync_into(&sim, &a.path, &options()).await.unwrap();
    sim.reset_stats();
    let next = SyncOptions {
        paging: Paging::Next,
        ..options()
    };
    let summary = sync_into(&sim, &b.path, &next).await.unwrap();
    assert_eq!(summary.leads_read, 260);
    // The highest-ID probe, then 6 pages of 50 (the last one short).
    assert_eq!(sim.stats().by_method.get("crm.lead.list"), Some(&7));
    for t in [
        "bitrix_leads",
        "bitrix_lead_contacts",
        "bitrix_lead_solution",
    ] {
        assert_eq!(dump(&a.path, t), dump(&b.path, t), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_answers_are_retried_and_never_shorten_the_export() {
    let sim = simulator(400).await;
    for kind in [
        FaultKind::HtmlPage,
        FaultKind::MalformedJson,
        FaultKind::TruncatedBody,
        FaultKind::Internal,
        FaultKind::QueryLimit,
        FaultKind::QueryLimit,
    ] {
        sim.inject(Fault {
            method: Some("batch".into()),
            kind,
            times: 1,
        });
    }
    let db = test_db();
    let summary = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(summary.leads_loaded, 400);
    assert_eq!(summary.retries, 6, "each broken answer retried once");
    assert_eq!(sim.stats().faults_served, 6);
    assert_matches_simulator(&sim, &db.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_commits_the_batch_in_flight_and_stops() {
    let sim = b24sync_simulator::Simulator::start(b24sync_simulator::SimulatorConfig {
        leads: 2000,
        latency: Duration::from_millis(150),
        ..Default::default()
    })
    .await
    .unwrap();
    let db = test_db();
    let cancel = tokio_util::sync::CancellationToken::new();
    let client = client_for(&sim, cancel.clone());
    let sink = b24sync::run::RunStores::from(
        &b24sync::load::sqlite::SqliteSink::open(&db.path)
            .unwrap()
            .into_stores(),
    );
    let opts = SyncOptions {
        paging: Paging::Next,
        batch_leads: 100,
        ..options()
    };
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        trigger.cancel();
    });
    let summary = b24sync::run::sync(&client, &sink, &opts, cancel)
        .await
        .unwrap();
    assert!(summary.interrupted);
    let stored = count(&db.path, "SELECT COUNT(*) FROM bitrix_leads");
    assert!(stored > 0 && stored < 2000, "{stored}");
    assert_eq!(
        stored as u64, summary.leads_loaded,
        "everything read was committed"
    );
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM bitrix_lead_runtime"),
        0,
        "an interrupted run is not stamped"
    );
}
