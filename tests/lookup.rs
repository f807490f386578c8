//! The caller lookup end to end: the simulator's leads synced into a real SQLite file with
//! their phones normalised, then looked up from the caller's number as a switch reports it.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use b24sync::load::sqlite::{SqliteSink, LOOKUP_CALLER_SQL};
use b24sync::model::caller::{CallerMatch, CallerQuery};
use b24sync::prepare::prepare;
use b24sync::run::{RunSummary, SyncOptions};
use b24sync::store::{BatchWriter, CallerLookup, StateStore};
use b24sync::transform::phone::DefaultRegion;
use b24sync_simulator::{Simulator, SimulatorConfig};
use common::*;
use serde_json::{json, Map, Value};

fn region(code: &str) -> DefaultRegion {
    code.parse().unwrap()
}

fn opts(code: &str) -> SyncOptions {
    SyncOptions {
        phone_region: region(code),
        ..options()
    }
}

/// A lead with these phone values (IDs are given by the simulator) and this operator.
fn lead_with(title: &str, phones: &[&str], assigned: u32) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("TITLE".into(), json!(title));
    m.insert("NAME".into(), json!("Иван"));
    m.insert("LAST_NAME".into(), json!("Петров"));
    m.insert("COMPANY_TITLE".into(), json!("ООО Ромашка"));
    m.insert("STATUS_ID".into(), json!("NEW"));
    m.insert("ASSIGNED_BY_ID".into(), json!(assigned.to_string()));
    let values: Vec<Value> = phones
        .iter()
        .map(|p| json!({"VALUE_TYPE": "WORK", "VALUE": p, "TYPE_ID": "PHONE"}))
        .collect();
    m.insert("PHONE".into(), Value::Array(values));
    m
}

async fn small_simulator(config: SimulatorConfig) -> Simulator {
    Simulator::start(SimulatorConfig {
        leads: 20,
        ..config
    })
    .await
    .expect("simulator starts")
}

async fn lookup(db: &Path, number: &str, code: &str) -> Vec<CallerMatch> {
    let sink = SqliteSink::open(db).unwrap();
    let q = CallerQuery::new(number, &region(code), 10);
    assert!(!q.is_empty(), "{number}");
    sink.lookup_caller(&q).await.unwrap()
}

fn ids(matches: &[CallerMatch]) -> BTreeSet<i64> {
    matches.iter().map(|m| m.entity_id).collect()
}

async fn sync_ok(sim: &Simulator, db: &Path, opts: &SyncOptions) -> RunSummary {
    sync_into(sim, db, opts).await.expect("sync succeeds")
}

/// (region, E.164, the national form a switch reports, spellings as managers type them).
/// Each spelling becomes its own lead; every one must be found from both caller forms.
fn spellings() -> Vec<(&'static str, &'static str, &'static str, Vec<&'static str>)> {
    vec![
        (
            "RU",
            "+79123456789",
            "89123456789",
            vec![
                "+7 (912) 345-67-89",
                "8-912-345-67-89",
                "89123456789",
                "8 (912) 345 67 89",
                "9123456789",
                "7 912 345 67 89",
                "tel:+7-912-345-67-89;ext=12",
                "+7(912)345-67-89, доб. 123",
                "8 10 7 912 345 67 89",
                "00 7 912 345 67 89",
                "8.912.345.67.89",
                " +7\u{a0}912\u{a0}345\u{a0}67\u{a0}89 ",
                "+7 (912) 345-67-89 (доб. 12)",
            ],
        ),
        (
            "BY",
            "+375291234567",
            "80291234567",
            vec![
                "+375 29 123-45-67",
                "+375 (29) 123 45 67",
                "375 29 1234567",
                "00375291234567",
                "8 10 375 29 123 45 67",
                "tel:+375-29-123-45-67",
                "8 029 123 45 67",
                "8 (029) 123-45-67",
                "029 123 45 67",
                "(029) 123-45-67",
                "29 123 45 67",
                "8 029 123 45 67 доб 5",
            ],
        ),
        (
            "UA",
            "+380441234567",
            "0441234567",
            vec![
                "+380 44 123 4567",
                "+38 (044) 123-45-67",
                "380 44 123 45 67",
                "00380441234567",
                "tel:+380-44-123-4567",
                "044 123 4567",
                "(044) 123-45-67",
                "8 044 123 45 67",
                "80441234567",
                "44 123 45 67",
                "044 123 4567 доб. 21",
            ],
        ),
        (
            "KZ",
            "+77011234567",
            "87011234567",
            vec![
                "+7 701 123 45 67",
                "+7 (701) 123-45-67",
                "8 701 123 45 67",
                "8 (701) 123-45-67",
                "7 701 123 45 67",
                "77011234567",
                "7011234567",
                "701 123 45 67",
                "8 10 7 701 123 45 67",
                "tel:+77011234567",
                "+7 701 123 45 67 доб. 4",
            ],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_is_found_from_the_e164_and_the_national_number() {
    for (code, e164, national, values) in spellings() {
        assert!(values.len() >= 10, "{code}: at least 10 spellings");
        let sim = small_simulator(SimulatorConfig::default()).await;
        let portal = sim.portal();
        let added: BTreeSet<i64> = values
            .iter()
            .map(|v| portal.add_lead(lead_with(&format!("{code} {v}"), &[v], 3)))
            .collect();
        let db = test_db();
        let summary = sync_ok(&sim, &db.path, &opts(code)).await;
        assert_eq!(
            summary.outcome.error_rows, 0,
            "{code}: phones never make error rows"
        );

        // Found from E.164 (whatever the region), and from the national form in the region.
        for caller in [e164, &e164[1..], national] {
            let found = lookup(&db.path, caller, code).await;
            assert_eq!(ids(&found), added, "{code}: caller {caller}");
        }
        // The contract table keeps every value exactly as typed; the companion table has
        // its E.164 and extension beside it.
        for (id, v) in added.iter().zip(values.iter()) {
            let stored = query_strings(
                &db.path,
                &format!(
                    "SELECT c.sql_VALUE, p.value, p.e164, p.normalisable FROM bitrix_lead_contacts c \
                     JOIN b24sync_lead_phones p ON p.lead_id = c.sql_LEAD_ID AND p.contact_id = c.sql_CONTACT_ID \
                     WHERE c.sql_LEAD_ID = {id}"
                ),
            );
            assert_eq!(stored.len(), 1, "{code} {v}");
            assert_eq!(stored[0][0].as_deref(), Some(*v));
            assert_eq!(stored[0][1].as_deref(), Some(*v));
            assert_eq!(stored[0][2].as_deref(), Some(e164), "{v}");
            assert_eq!(stored[0][3].as_deref(), Some("1"));
        }
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_is_kept_apart_and_does_not_prevent_the_match() {
    let sim = small_simulator(SimulatorConfig::default()).await;
    let id = sim.portal().add_lead(lead_with(
        "С добавочным",
        &["+7 (495) 123-45-67 доб. 321"],
        5,
    ));
    let db = test_db();
    sync_ok(&sim, &db.path, &opts("RU")).await;
    let row = query_strings(
        &db.path,
        &format!("SELECT e164, extension FROM b24sync_lead_phones WHERE lead_id = {id}"),
    );
    assert_eq!(
        row,
        vec![vec![Some("+74951234567".into()), Some("321".into())]]
    );
    for caller in [
        "+74951234567",
        "84951234567",
        "4951234567",
        "+7 495 123-45-67",
    ] {
        assert_eq!(
            ids(&lookup(&db.path, caller, "RU").await),
            [id].into(),
            "{caller}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lookup_returns_the_lead_and_its_operator_most_recent_first() {
    let sim = small_simulator(SimulatorConfig::default()).await;
    let portal = sim.portal();
    let older = portal.add_lead(lead_with("Старый", &["8 912 000-11-22"], 4));
    portal.advance_clock(Duration::from_secs(3600));
    let newer = portal.add_lead(lead_with("Новый", &["+7 912 000 11 22"], 6));
    let db = test_db();
    let summary = sync_ok(&sim, &db.path, &opts("RU")).await;
    assert!(summary.operators > 0, "{summary:?}");
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);

    let found = lookup(&db.path, "79120001122", "RU").await;
    assert_eq!(
        found.iter().map(|m| m.entity_id).collect::<Vec<_>>(),
        vec![newer, older],
        "most recently modified first"
    );
    let m = &found[0];
    assert_eq!(m.title.as_deref(), Some("Новый"));
    assert_eq!(
        (m.name.as_deref(), m.last_name.as_deref()),
        (Some("Иван"), Some("Петров"))
    );
    assert_eq!(m.company_title.as_deref(), Some("ООО Ромашка"));
    assert_eq!(m.status_or_type.as_deref(), Some("NEW"));
    assert_eq!(m.entity_type, "lead");
    assert!(m.date_modify.is_some());
    // The simulator's user 6 has the internal number 106.
    assert_eq!(m.operator_id.as_deref(), Some("6"));
    assert!(m.operator_name.is_some() && m.operator_last_name.is_some());
    assert_eq!(m.operator_extension.as_deref(), Some("106"));
    assert_eq!(found[1].operator_extension.as_deref(), Some("104"));
    // Only the operators the leads reference were read.
    let stored: BTreeSet<String> = query_strings(&db.path, "SELECT user_id FROM b24sync_operators")
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect();
    let referenced: BTreeSet<String> = portal
        .leads()
        .iter()
        .filter_map(|l| text_field(l, "ASSIGNED_BY_ID"))
        .collect();
    assert_eq!(stored, referenced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_number_and_a_deleted_lead_stop_matching_after_the_next_sync() {
    let sim = small_simulator(SimulatorConfig::default()).await;
    let portal = sim.portal();
    let kept = portal.add_lead(lead_with(
        "Два номера",
        &["+7 912 111-22-33", "8 (912) 444-55-66"],
        2,
    ));
    let gone = portal.add_lead(lead_with("Удалят", &["+7 912 777-88-99"], 2));
    let db = test_db();
    sync_ok(&sim, &db.path, &opts("RU")).await;
    assert_eq!(
        ids(&lookup(&db.path, "89124445566", "RU").await),
        [kept].into()
    );
    assert_eq!(
        ids(&lookup(&db.path, "89127778899", "RU").await),
        [gone].into()
    );

    // The manager deletes the second number and edits the first; another lead is deleted.
    assert!(portal.update_lead(kept, |l| {
        let phones = l.get_mut("PHONE").and_then(Value::as_array_mut).unwrap();
        phones.retain(|p| p["VALUE"] != json!("8 (912) 444-55-66"));
        phones[0]["VALUE"] = json!("+7 912 111-22-34");
    }));
    assert!(portal.delete_lead(gone));
    let every_run_checks = SyncOptions {
        deletion: b24sync::run::DeletionPolicy {
            every_runs: 1,
            ..Default::default()
        },
        ..opts("RU")
    };
    let summary = sync_ok(&sim, &db.path, &every_run_checks).await;
    assert_eq!(summary.mode, "incremental");
    assert_eq!(summary.leads_deleted, 1);
    assert!(lookup(&db.path, "89124445566", "RU").await.is_empty());
    assert!(lookup(&db.path, "89121112233", "RU").await.is_empty());
    assert!(lookup(&db.path, "89127778899", "RU").await.is_empty());
    assert_eq!(
        ids(&lookup(&db.path, "89121112234", "RU").await),
        [kept].into()
    );
    assert_eq!(
        count(
            &db.path,
            &format!("SELECT COUNT(*) FROM b24sync_lead_phones WHERE lead_id IN ({kept}, {gone})")
        ),
        1
    );
    // A re-run changes nothing in the phones table (rows keep their Id).
    let before = dump(&db.path, "b24sync_lead_phones");
    sync_ok(
        &sim,
        &db.path,
        &SyncOptions {
            mode: b24sync::run::SyncMode::Full,
            ..opts("RU")
        },
    )
    .await;
    assert_eq!(dump(&db.path, "b24sync_lead_phones"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassigned_lead_shows_its_new_operator() {
    let sim = small_simulator(SimulatorConfig::default()).await;
    let portal = sim.portal();
    let id = portal.add_lead(lead_with("Переназначат", &["+7 912 222-33-44"], 7));
    let db = test_db();
    sync_ok(&sim, &db.path, &opts("RU")).await;
    let before = lookup(&db.path, "+79122223344", "RU").await;
    assert_eq!(before[0].operator_extension.as_deref(), Some("107"));

    assert!(portal.update_lead(id, |l| {
        l.insert("ASSIGNED_BY_ID".into(), json!("12"));
    }));
    sync_ok(&sim, &db.path, &opts("RU")).await;
    let after = lookup(&db.path, "+79122223344", "RU").await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].operator_id.as_deref(), Some("12"));
    assert_eq!(after[0].operator_extension.as_deref(), Some("112"));
    assert_ne!(after[0].operator_name, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_user_scope_operators_are_ids_only_and_the_sync_succeeds() {
    let sim = small_simulator(SimulatorConfig {
        user_scope: false,
        ..SimulatorConfig::default()
    })
    .await;
    let id = sim
        .portal()
        .add_lead(lead_with("Без скоупа", &["+7 912 333-44-55"], 9));
    let db = test_db();
    let summary = sync_ok(&sim, &db.path, &opts("RU")).await;
    assert_eq!(summary.operators, 0);
    assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
    assert!(
        summary.warnings[0].contains("user` scope"),
        "{}",
        summary.warnings[0]
    );
    // The watermark moved: the run completed.
    let sink = SqliteSink::open(&db.path).unwrap();
    assert!(sink
        .read_state(b24sync::run::state_keys::WATERMARK)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        count(
            &db.path,
            "SELECT COUNT(*) FROM b24sync_operators WHERE name IS NULL AND details_at IS NULL"
        ),
        count(&db.path, "SELECT COUNT(*) FROM b24sync_operators")
    );
    assert!(count(&db.path, "SELECT COUNT(*) FROM b24sync_operators") > 0);
    let found = lookup(&db.path, "89123334455", "RU").await;
    assert_eq!(ids(&found), [id].into());
    assert_eq!(found[0].operator_id.as_deref(), Some("9"));
    assert_eq!(
        (
            found[0].operator_name.as_deref(),
            found[0].operator_extension.as_deref()
        ),
        (None, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_are_not_numbers_are_kept_as_typed_and_fall_back_to_the_tail() {
    let sim = small_simulator(SimulatorConfig::default()).await;
    let odd = ["не звонить", "ivan@mail.ru", "+7 (000) 345-67-89"];
    let id = sim.portal().add_lead(lead_with("Странные номера", &odd, 1));
    let db = test_db();
    let summary = sync_ok(&sim, &db.path, &opts("RU")).await;
    assert_eq!(
        count(
            &db.path,
            &format!("SELECT COUNT(*) FROM bitrix_import_lead_error WHERE sql_ID = '{id}'")
        ),
        0,
        "{summary:?}"
    );
    let rows = query_strings(
        &db.path,
        &format!(
            "SELECT value, e164, normalisable, reason FROM b24sync_lead_phones WHERE lead_id = {id} ORDER BY Id"
        ),
    );
    assert_eq!(rows.len(), 3);
    for (row, v) in rows.iter().zip(odd) {
        assert_eq!(row[0].as_deref(), Some(v));
        assert_eq!((row[1].as_deref(), row[2].as_deref()), (None, Some("0")));
        assert!(
            row[3].as_deref().unwrap().starts_with("not a phone number"),
            "{row:?}"
        );
    }
    assert_eq!(stored_contacts(&db.path, id).len(), 3);
    // The caller's number does not normalise either: matched on its last 10 digits.
    let q = CallerQuery::new("7 000 345 67 89", &region("RU"), 10);
    assert_eq!(
        (q.e164.as_deref(), q.tail.as_deref()),
        (None, Some("0003456789"))
    );
    assert_eq!(
        ids(&lookup(&db.path, "7 000 345 67 89", "RU").await),
        [id].into()
    );
}

/// The plan of the lookup on a database with phones in it: each branch (leads, contacts,
/// companies) seeks both indexes of its phones table, then the record by its unique key;
/// no real table is scanned (only `m`, the branch's grouped phones, is read in full).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lookup_is_one_indexed_query() {
    let sim = small_simulator(SimulatorConfig {
        leads: 500,
        ..SimulatorConfig::default()
    })
    .await;
    let db = test_db();
    sync_ok(&sim, &db.path, &opts("RU")).await;
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    // Statistics as a DBA's `ANALYZE` would leave them, so the plan is the one a real,
    // large database gets.
    conn.execute_batch("ANALYZE;").unwrap();
    let plan_for = |params: [&str; 3]| -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {LOOKUP_CALLER_SQL}"))
            .unwrap();
        stmt.query_map(
            rusqlite::params![params[0], params[1], params[2], 20, "lead", "contact", "company"],
            |r| r.get::<_, String>(3),
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    for params in [["+79123456789", "", ""], ["", "9876543", "9876543:"]] {
        let plan = plan_for(params);
        let text = plan.join("\n");
        for (phones, record, alias) in [
            ("b24sync_lead_phones", "ux_bitrix_leads_sql_ID", "l"),
            ("b24sync_contact_phones", "ux_bitrix_contacts_sql_ID", "c"),
            ("b24sync_company_phones", "ux_bitrix_companies_sql_ID", "co"),
        ] {
            let stem = phones
                .trim_end_matches("_phones")
                .trim_start_matches("b24sync_");
            assert!(
                text.contains(&format!(
                    "SEARCH {phones} USING INDEX ix_b24sync_{stem}_phones_e164 (e164=?)"
                )),
                "{phones}: {text}"
            );
            assert!(
                text.contains(&format!(
                    "SEARCH {phones} USING INDEX ix_b24sync_{stem}_phones_digits_rev (digits_rev>? AND digits_rev<?)"
                )),
                "{phones}: {text}"
            );
            assert!(
                text.contains(&format!("SEARCH {alias} USING INDEX {record} (sql_ID=?)")),
                "{record}: {text}"
            );
        }
        assert_eq!(text.matches("MULTI-INDEX OR").count(), 3, "{text}");
        assert!(
            text.contains("SEARCH co USING INDEX ux_bitrix_companies_sql_ID (sql_ID=?) LEFT-JOIN"),
            "a contact's company: {text}"
        );
        assert!(
            text.contains("SEARCH o USING INDEX sqlite_autoindex_b24sync_operators_1 (user_id=?)"),
            "{text}"
        );
        for line in &plan {
            assert!(
                !line.starts_with("SCAN") || line == "SCAN m",
                "a full scan: {line}\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_lead_and_operator() {
    let sim = small_simulator(SimulatorConfig::default()).await;
    let id = sim
        .portal()
        .add_lead(lead_with("Через CLI", &["8 (029) 765-43-21"], 8));
    let db = test_db();
    sync_ok(&sim, &db.path, &opts("BY")).await;
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_b24sync"));
        for (k, _) in std::env::vars() {
            if k.starts_with("B24SYNC_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("lookup").args(args).arg("--db").arg(&db.path);
        cmd.output().unwrap()
    };
    let out = run(&["+375 29 765-43-21", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["e164"], json!("+375297654321"));
    assert_eq!(v["matches"][0]["entity_type"], json!("lead"));
    assert_eq!(v["matches"][0]["entity_id"], json!(id));
    assert_eq!(v["matches"][0]["operator_extension"], json!("108"));
    let out = run(&["80297654321", "--phone-region", "by"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains(&format!("lead {id} «Через CLI»")), "{text}");
    assert!(text.contains("ext. 108"), "{text}");
    let out = run(&["80297654321"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no lead"));
    let out = run(&["80297654321", "--tail-digits", "3"]);
    assert_eq!(out.status.code(), Some(2));
}

/// BENCHMARK (docs/benchmarks-lookup.md): lookup latency on an embedded database holding
/// 1,000,000 contact values (500,000 leads with two phones each, as a sync leaves them).
/// Run once, in release:
///     cargo test --release --test lookup -- --ignored --nocapture bench_lookup
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: builds a 1,000,000-value database; run explicitly in release"]
async fn bench_lookup_1m_contact_values() {
    use b24sync::model::{
        lead_column_index, Batch, Cell, ContactRow, LeadRecord, LeadRow, LEAD_COLUMNS,
    };
    use b24sync::transform::phones::phone_rows;
    use rand::{Rng, SeedableRng};
    use std::time::Instant;

    const LEADS: i32 = 500_000;
    const LOOKUPS: usize = 10_000;
    let ru = DefaultRegion::default();
    // Lead i's numbers: a mobile written one of several ways, and a Moscow landline with an
    // extension; every 20th lead's second value is not a valid number (tail fallback).
    let mobile = |i: i32| format!("{:07}", i);
    let first = |i: i32| {
        let m = mobile(i);
        match i % 5 {
            0 => format!("+7 (912) {}-{}-{}", &m[..3], &m[3..5], &m[5..]),
            1 => format!("8 912 {} {} {}", &m[..3], &m[3..5], &m[5..]),
            2 => format!("8912{m}"),
            3 => format!("+7912{m}"),
            _ => format!("912-{}-{}-{}", &m[..3], &m[3..5], &m[5..]),
        }
    };
    let second = |i: i32| {
        let m = mobile(i);
        if i % 20 == 0 {
            format!("+7 (000) {}-{}-{}", &m[..3], &m[3..5], &m[5..])
        } else {
            format!(
                "8 (495) {}-{}-{} доб. {}",
                &m[..3],
                &m[3..5],
                &m[5..],
                i % 1000
            )
        }
    };
    let db = test_db();
    let sink = SqliteSink::open(&db.path).unwrap();
    let title = lead_column_index("TITLE").unwrap();
    let modified = lead_column_index("DATE_MODIFY").unwrap();
    let assigned = lead_column_index("ASSIGNED_BY_ID").unwrap();
    let base = chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let build = Instant::now();
    let mut next = 1;
    while next <= LEADS {
        let records: Vec<LeadRecord> = (next..(next + 2500).min(LEADS + 1))
            .map(|id| {
                let mut cells = vec![Cell::Null; LEAD_COLUMNS.len()];
                cells[title] = Cell::Text(format!("Лид {id}"));
                cells[modified] = Cell::DateTime(base + chrono::Duration::seconds(i64::from(id)));
                cells[assigned] = Cell::Text((1 + id % 20).to_string());
                let contacts: Vec<ContactRow> = [first(id), second(id)]
                    .into_iter()
                    .enumerate()
                    .map(|(k, v)| ContactRow {
                        lead_id: id,
                        contact_id: Some((id * 2 + k as i32).to_string()),
                        value_type: Some("WORK".into()),
                        value: Some(v),
                        type_id: "PHONE".into(),
                    })
                    .collect();
                let phones = phone_rows(&contacts, &ru);
                LeadRecord {
                    lead: LeadRow { id, cells },
                    contacts,
                    phones,
                    solution: None,
                    problems: vec![],
                    raw_json: "{}".into(),
                }
            })
            .collect();
        next += 2500;
        sink.load_batch(
            prepare(Batch {
                entity: b24sync::schema::LEAD,
                records,
                rejected: vec![],
            }),
            base,
        )
        .await
        .unwrap();
    }
    let values = count(&db.path, "SELECT COUNT(*) FROM bitrix_lead_contacts");
    let phones = count(&db.path, "SELECT COUNT(*) FROM b24sync_lead_phones");
    assert_eq!((values, phones), (1_000_000, 1_000_000));
    let build_secs = build.elapsed().as_secs_f64();

    // Callers as a switch reports them: E.164, 8…, 7…, 10 digits, and 5% odd numbers that
    // only the last-10-digits fallback finds.
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let callers: Vec<(String, i32)> = (0..LOOKUPS)
        .map(|n| {
            let id = rng.gen_range(1..=LEADS);
            let m = mobile(id);
            let caller = match n % 20 {
                0 => {
                    let id = (id / 20).max(1) * 20;
                    return (format!("7000{}", mobile(id)), id);
                }
                1..=5 => format!("+7912{m}"),
                6..=10 => format!("8912{m}"),
                11..=15 => format!("7912{m}"),
                _ => format!("912{m}"),
            };
            (caller, id)
        })
        .collect();

    fn percentile(sorted: &[f64], p: f64) -> f64 {
        sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
    }
    let report = |name: &str, mut micros: Vec<f64>| {
        micros.sort_by(|a, b| a.total_cmp(b));
        let mean = micros.iter().sum::<f64>() / micros.len() as f64;
        println!(
            "{name}: {} lookups, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs, mean {:.1} µs",
            micros.len(),
            percentile(&micros, 0.50),
            percentile(&micros, 0.99),
            micros[micros.len() - 1],
            mean
        );
    };

    // 1. The query alone, as a telephony system's prepared statement runs it.
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let mut stmt = conn.prepare(LOOKUP_CALLER_SQL).unwrap();
    let mut raw = Vec::with_capacity(LOOKUPS);
    for (caller, id) in &callers {
        let q = CallerQuery::new(caller, &ru, 10);
        let (e164, tail) = q.params();
        let (lo, hi) = if tail.is_empty() {
            (String::new(), String::new())
        } else {
            (tail.clone(), format!("{tail}:"))
        };
        let t = Instant::now();
        let found: Vec<i64> = stmt
            .query_map(
                rusqlite::params![e164, lo, hi, 20, "lead", "contact", "company"],
                |r| r.get(1),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        raw.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(found, vec![i64::from(*id)], "{caller}");
    }
    // 2. End to end through the library: normalise the caller, then CallerLookup::lookup_caller
    //    (the blocking pool hop included), as `b24sync lookup` does minus process start.
    let mut full = Vec::with_capacity(LOOKUPS);
    for (caller, id) in &callers {
        let t = Instant::now();
        let q = CallerQuery::new(caller, &ru, 10);
        let found = sink.lookup_caller(&q).await.unwrap();
        full.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(found.len(), 1, "{caller}");
        assert_eq!(found[0].entity_id, i64::from(*id));
        assert!(found[0].operator_id.is_some());
    }
    let size_mb = std::fs::metadata(&db.path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!(
        "database: {LEADS} leads, {values} contact values, {phones} normalised phones, {size_mb:.0} MB, built in {build_secs:.1} s"
    );
    report("query only (prepared statement)", raw);
    report("normalise + CallerLookup::lookup_caller", full);
}
