//! CRM contacts and companies end to end: the simulator over real HTTP → the pipeline → a
//! real SQLite file. Every expected value comes from the simulator's own data.

mod common;

use b24sync::model::ColumnKind;
use b24sync::run::{DeletionPolicy, SyncMode, SyncOptions};
use b24sync::schema::{Entity, COMPANY, CONTACT, LEAD};
use b24sync_simulator::{Simulator, SimulatorConfig};
use common::*;
use serde_json::{json, Map, Value};

async fn crm(leads: usize, contacts: usize, companies: usize) -> Simulator {
    Simulator::start(SimulatorConfig {
        leads,
        contacts,
        companies,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// The value a column must hold, from the raw JSON, by the tables' rules (text cut to the
/// column, the portal's wall clock, a date at midnight).
fn expected_cell(record: &Value, field: &str, kind: ColumnKind) -> Option<String> {
    let raw = text_field(record, field)?;
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
        ColumnKind::DateTime => raw[..19].replace('T', " "),
        ColumnKind::Date => format!("{} 00:00:00", &raw[..10]),
    })
}

/// The multi-field values of one record in the database, shaped as `expected_contacts`.
fn stored_values(db: &std::path::Path, e: Entity, id: i64) -> Vec<ContactTuple> {
    let mut rows: Vec<_> = query_strings(
        db,
        &format!(
            "SELECT sql_TYPE_ID, {}, sql_VALUE_TYPE, sql_VALUE FROM {} WHERE {} = {id}",
            e.multi_value_id, e.multi_table, e.multi_owner
        ),
    )
    .into_iter()
    .map(|r| {
        (
            r[0].clone().unwrap_or_default(),
            r[1].clone(),
            r[2].clone(),
            r[3].clone(),
        )
    })
    .collect();
    rows.sort();
    rows
}

/// Every record of `e` on the portal is one row of its table, column by column, with its
/// multi-field values; nothing else is there.
fn assert_entity_matches(sim: &Simulator, db: &std::path::Path, e: Entity) {
    let records = match e.name {
        "contact" => sim.portal().contacts(),
        "company" => sim.portal().companies(),
        _ => sim.portal().leads(),
    };
    let columns: Vec<String> = e.fields.iter().map(|c| c.sql_name()).collect();
    let rows = query_strings(
        db,
        &format!(
            "SELECT sql_ID, {} FROM {} ORDER BY sql_ID",
            columns.join(", "),
            e.table
        ),
    );
    assert_eq!(
        rows.len(),
        records.len(),
        "one {} row per {}",
        e.table,
        e.name
    );
    let mut values = 0;
    for (record, row) in records.iter().zip(&rows) {
        let id = text_field(record, "ID").unwrap();
        assert_eq!(row[0].as_deref(), Some(id.as_str()));
        for (i, col) in e.fields.iter().enumerate() {
            assert_eq!(
                row[i + 1],
                expected_cell(record, col.field, col.kind),
                "{} {id} column {}",
                e.name,
                col.field
            );
        }
        let expected = expected_contacts(record);
        values += expected.len();
        assert_eq!(
            stored_values(db, e, id.parse().unwrap()),
            expected,
            "multi-field values of {} {id}",
            e.name
        );
    }
    assert_eq!(
        count(db, &format!("SELECT COUNT(*) FROM {}", e.multi_table)) as usize,
        values
    );
    // Every PHONE value has its normalised row for the caller lookup.
    let phones: usize = records
        .iter()
        .map(|r| {
            expected_contacts(r)
                .iter()
                .filter(|c| c.0 == "PHONE")
                .count()
        })
        .sum();
    assert_eq!(
        count(db, &format!("SELECT COUNT(*) FROM {}", e.phones_table)) as usize,
        phones,
        "{}",
        e.phones_table
    );
}

/// The error rows of an entity's table: one per record with a problem.
fn error_records(db: &std::path::Path, e: Entity) -> u64 {
    count(
        db,
        &format!("SELECT COUNT(DISTINCT sql_ID) FROM {}", e.error_table),
    ) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_loads_every_contact_and_company_exactly_with_one_shared_question() {
    let sim = crm(3000, 2000, 500).await;
    let db = test_db();
    let summary = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(summary.leads_read, 3000);
    let by = |plural: &str| {
        summary
            .entities
            .iter()
            .find(|e| e.plural == plural)
            .cloned()
            .unwrap_or_else(|| panic!("{plural} in {:?}", summary.entities))
    };
    assert_eq!(
        (by("contacts").read, by("contacts").outcome.leads_inserted),
        (2000, 2000)
    );
    assert_eq!(
        (by("companies").read, by("companies").outcome.leads_inserted),
        (500, 500)
    );
    for e in [LEAD, CONTACT, COMPANY] {
        assert_entity_matches(&sim, &db.path, e);
    }
    // One request for every entity's one-off questions, ⌈N/2,500⌉ batches per entity
    // (2 + 1 + 1), one user.get for the operators of all three, and the re-reads of the
    // records with error rows (50 per request, per entity).
    let rereads: u64 = [LEAD, CONTACT, COMPANY]
        .iter()
        .map(|e| error_records(&db.path, *e).div_ceil(50))
        .sum();
    let stats = sim.stats();
    assert_eq!(
        stats.http_requests,
        1 + 4 + 1 + rereads,
        "{:?}",
        stats.by_method
    );
    assert_eq!(stats.by_method.get("server.time"), Some(&1));
    assert_eq!(stats.by_method.get("user.get"), Some(&1));
    // Pages: 60 + 40 + 10 and each entity's probe; nothing chained past an end.
    assert_eq!(stats.by_method.get("crm.contact.list"), Some(&41));
    assert_eq!(stats.by_method.get("crm.company.list"), Some(&11));
    let line = b24sync::run::summary_line(&summary);
    assert!(line.contains("contacts (full): 2000 read"), "{line}");
    assert!(line.contains("companies (full): 500 read"), "{line}");

    // A second full run changes nothing in any table of the three.
    let tables: Vec<&str> = [CONTACT, COMPANY]
        .iter()
        .flat_map(|e| [e.table, e.multi_table, e.phones_table, e.error_table])
        .collect();
    let before: Vec<_> = tables.iter().map(|t| dump(&db.path, t)).collect();
    let full = SyncOptions {
        mode: SyncMode::Full,
        ..options()
    };
    let again = sync_into(&sim, &db.path, &full).await.unwrap();
    for e in &again.entities {
        let o = &e.outcome;
        assert_eq!(
            (
                o.leads_inserted,
                o.leads_updated,
                o.contacts_written,
                o.contacts_deleted
            ),
            (0, 0, 0, 0),
            "{e:?}"
        );
    }
    let after: Vec<_> = tables.iter().map(|t| dump(&db.path, t)).collect();
    assert_eq!(before, after, "a re-run must not touch a row");
}

fn phone(id: &str, value: &str) -> Value {
    json!([{"ID": id, "VALUE_TYPE": "WORK", "VALUE": value, "TYPE_ID": "PHONE"}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_additions_and_deletions_of_contacts_and_companies_come_through() {
    let sim = crm(200, 300, 100).await;
    let db = test_db();
    let opts = SyncOptions {
        deletion: DeletionPolicy {
            every_runs: 1,
            ..DeletionPolicy::default()
        },
        ..options()
    };
    sync_into(&sim, &db.path, &opts).await.unwrap();
    let portal = sim.portal();
    let contacts = portal.contact_ids();
    let companies = portal.company_ids();
    assert!(portal.update_contact(contacts[3], |c| {
        c.insert("NAME".into(), json!("Изменено"));
        c.insert("PHONE".into(), phone("990001", "+7 (912) 555-01-02"));
    }));
    assert!(portal.update_company(companies[5], |c| {
        c.insert("TITLE".into(), json!("ООО \"Новое имя\""));
        c.remove("PHONE");
    }));
    let mut fields = Map::new();
    fields.insert("NAME".into(), json!("Новый"));
    fields.insert("LAST_NAME".into(), json!("Контакт"));
    fields.insert("PHONE".into(), phone("990002", "8 912 555 01 03"));
    let added = portal.add_contact(fields);
    let mut fields = Map::new();
    fields.insert("TITLE".into(), json!("Новая компания"));
    let added_company = portal.add_company(fields);
    assert!(portal.delete_contact(contacts[10]));
    assert!(portal.delete_company(companies[0]));

    let second = sync_into(&sim, &db.path, &opts).await.unwrap();
    assert_eq!(second.mode, "incremental");
    for e in [LEAD, CONTACT, COMPANY] {
        assert_entity_matches(&sim, &db.path, e);
    }
    let by = |plural: &str| second.entities.iter().find(|e| e.plural == plural).unwrap();
    assert_eq!(by("contacts").mode, "incremental");
    assert_eq!(by("contacts").deleted, 1);
    assert_eq!(by("companies").deleted, 1);
    assert!(by("contacts").outcome.leads_inserted >= 1);
    let stored = |e: Entity, id: i64| {
        count(
            &db.path,
            &format!("SELECT COUNT(*) FROM {} WHERE sql_ID = {id}", e.table),
        )
    };
    assert_eq!(
        (stored(CONTACT, added), stored(COMPANY, added_company)),
        (1, 1)
    );
    // The deleted contact's phones went with it: it no longer identifies a caller.
    assert_eq!(
        count(
            &db.path,
            &format!(
                "SELECT COUNT(*) FROM b24sync_contact_phones WHERE contact_id = {}",
                contacts[10]
            )
        ),
        0
    );
    assert_eq!(
        count(
            &db.path,
            &format!(
                "SELECT COUNT(*) FROM b24sync_contact_phones WHERE contact_id = {} AND e164 = '+79125550102'",
                contacts[3]
            )
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_incremental_run_of_three_entities_costs_one_request() {
    let sim = crm(300, 300, 300).await;
    let db = test_db();
    sync_into(&sim, &db.path, &options()).await.unwrap();
    let before = sim.stats().http_requests;
    let quiet = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(quiet.mode, "incremental");
    assert!(quiet.entities.iter().all(|e| e.mode == "incremental"));
    assert_eq!(
        sim.stats().http_requests - before,
        1,
        "{:?}",
        sim.stats().by_method
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_the_webhook_may_not_read_is_a_warning_not_a_failed_run() {
    let sim = Simulator::start(SimulatorConfig {
        leads: 100,
        contacts: 100,
        companies: 50,
        denied: vec!["crm.company".into()],
        ..SimulatorConfig::default()
    })
    .await
    .unwrap();
    let db = test_db();
    let summary = sync_into(&sim, &db.path, &options()).await.unwrap();
    assert_eq!(summary.leads_read, 100);
    assert_entity_matches(&sim, &db.path, CONTACT);
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_companies"), 0);
    let warning = summary
        .warnings
        .iter()
        .find(|w| w.contains("companies were not synced"))
        .unwrap_or_else(|| panic!("{:?}", summary.warnings));
    assert!(
        warning.contains("crm.company.list") && warning.contains("ACCESS_DENIED"),
        "{warning}"
    );
    let companies = summary
        .entities
        .iter()
        .find(|e| e.plural == "companies")
        .unwrap();
    assert!(companies.skipped.is_some());
    // The companies keep no watermark: once readable they are read in full.
    let state = count(
        &db.path,
        "SELECT COUNT(*) FROM b24sync_state WHERE name = 'watermark.company.date_modify'",
    );
    assert_eq!(state, 0);
    let contacts = count(
        &db.path,
        "SELECT COUNT(*) FROM b24sync_state WHERE name = 'watermark.contact.date_modify'",
    );
    assert_eq!(contacts, 1);

    // `doctor` checks each configured entity: the refused one is a warning naming the fix.
    let out = run_cmd(b24sync().args(["doctor", "--db"]).arg(&db.path).args([
        "--webhook",
        &sim.webhook_url(),
        "--solution-field",
        SOLUTION,
    ]))
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("warn")
            && l.contains("companies")
            && l.contains("crm.company.list refused: ACCESS_DENIED")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("ok")
            && l.contains("contacts")
            && l.contains("bitrix_contacts")),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_is_a_setting_that_names_a_bad_value() {
    let sim = crm(50, 40, 0).await;
    let db = test_db();
    // Leads only: the contacts' tables stay empty, and no contact is asked for.
    let leads_only = SyncOptions {
        entities: vec![LEAD],
        ..options()
    };
    sync_into(&sim, &db.path, &leads_only).await.unwrap();
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_contacts"), 0);
    assert_eq!(sim.stats().by_method.get("crm.contact.list"), None);

    let out = run_cmd(b24sync().args(["sync", "--db"]).arg(&db.path).args([
        "--webhook",
        &sim.webhook_url(),
        "--entities",
        "lead,deals",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown entity \"deals\"") && err.contains("lead, contact, company"),
        "{err}"
    );

    // From the environment, a list; the contacts are then read in full (their first time).
    let out = run_cmd(
        b24sync()
            .args(["sync", "--db"])
            .arg(&db.path)
            .args(["--webhook", &sim.webhook_url()])
            .env("B24SYNC_ENTITIES", "contact"),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_entity_matches(&sim, &db.path, CONTACT);
}
