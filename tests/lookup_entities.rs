//! The caller lookup across leads, contacts and companies (issue 13): records of the three
//! entities loaded into a real SQLite file through the store (`Batch::of(CONTACT)` etc.,
//! phones normalised by `transform::phones::phone_rows` as a sync does), then looked up with
//! the `b24sync lookup` binary: a number only on a contact (shown with its company), only on
//! a company, on both a lead and a contact (the contact first), each number stored in every
//! RU spelling the lead tests use (tests/lookup.rs) and asked for as a switch reports it.

mod common;

use std::path::Path;

use b24sync::load::sqlite::{SqliteSink, LOOKUP_CALLER_SQL};
use b24sync::model::caller::{CallerQuery, EntityFilter};
use b24sync::model::{
    Batch, Cell, ContactRow, Entity, LeadRecord, LeadRow, Operator, COMPANY, CONTACT, LEAD,
};
use b24sync::prepare::prepare;
use b24sync::store::{BatchWriter, CallerLookup, OperatorStore};
use b24sync::transform::phone::DefaultRegion;
use b24sync::transform::phones::phone_rows;
use chrono::{NaiveDate, NaiveDateTime};
use common::*;
use serde_json::{json, Value};

fn at(day: u32, hour: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 5, day)
        .unwrap()
        .and_hms_opt(hour, 0, 0)
        .unwrap()
}

/// The RU spellings of tests/lookup.rs (`spellings()`), for any 10-digit national number
/// `AAA BBB CC DD`: as managers type them, with extensions, prefixes and odd separators.
fn ru_spellings(national: &str) -> Vec<String> {
    let (a, b, c, d) = (
        &national[..3],
        &national[3..6],
        &national[6..8],
        &national[8..],
    );
    vec![
        format!("+7 ({a}) {b}-{c}-{d}"),
        format!("8-{a}-{b}-{c}-{d}"),
        format!("8{national}"),
        format!("8 ({a}) {b} {c} {d}"),
        national.to_string(),
        format!("7 {a} {b} {c} {d}"),
        format!("tel:+7-{a}-{b}-{c}-{d};ext=12"),
        format!("+7({a}){b}-{c}-{d}, доб. 123"),
        format!("8 10 7 {a} {b} {c} {d}"),
        format!("00 7 {a} {b} {c} {d}"),
        format!("8.{a}.{b}.{c}.{d}"),
        format!(" +7\u{a0}{a}\u{a0}{b}\u{a0}{c}\u{a0}{d} "),
        format!("+7 ({a}) {b}-{c}-{d} (доб. 12)"),
    ]
}

/// The forms a switch reports the caller in (tests/lookup.rs asks with these three), and
/// the bare national number.
fn caller_forms(national: &str) -> Vec<String> {
    vec![
        format!("+7{national}"),
        format!("7{national}"),
        format!("8{national}"),
        national.to_string(),
    ]
}

/// A record of `entity`: these fields, these PHONE values (value IDs given here), phones
/// normalised with the RU region as a sync normalises them.
fn record(entity: Entity, id: i32, fields: &[(&str, &str)], phones: &[String]) -> LeadRecord {
    let mut cells = vec![Cell::Null; entity.fields.len()];
    for (field, value) in fields {
        let i = entity
            .field_index(field)
            .unwrap_or_else(|| panic!("{} has no field {field}", entity.name));
        cells[i] = Cell::Text(value.to_string());
    }
    let contacts: Vec<ContactRow> = phones
        .iter()
        .enumerate()
        .map(|(k, v)| ContactRow {
            lead_id: id,
            contact_id: Some(format!("{}", id * 10 + k as i32)),
            value_type: Some("WORK".into()),
            value: Some(v.clone()),
            type_id: "PHONE".into(),
        })
        .collect();
    let phones = phone_rows(&contacts, &DefaultRegion::default());
    LeadRecord {
        lead: LeadRow { id, cells },
        contacts,
        phones,
        solution: None,
        problems: vec![],
        raw_json: format!(r#"{{"ID":"{id}"}}"#),
    }
}

fn modified(entity: Entity, mut r: LeadRecord, when: NaiveDateTime) -> LeadRecord {
    let i = entity.field_index("DATE_MODIFY").expect("DATE_MODIFY");
    r.lead.cells[i] = Cell::DateTime(when);
    r
}

async fn load(sink: &SqliteSink, entity: Entity, records: Vec<LeadRecord>) {
    let mut batch = Batch::of(entity);
    batch.records = records;
    let outcome = sink
        .load_batch(prepare(batch), at(20, 0))
        .await
        .expect("load");
    assert_eq!(outcome.error_rows_new, 0, "{}: {outcome:?}", entity.name);
}

/// National numbers of the three arrangements for spelling `k`.
fn only_contact(k: usize) -> String {
    format!("91210000{k:02}")
}
fn only_company(k: usize) -> String {
    format!("91220000{k:02}")
}
fn lead_and_contact(k: usize) -> String {
    format!("91230000{k:02}")
}

const SPELLINGS: usize = 13;

/// For every spelling k: contact 100+k (company 900) with `only_contact(k)`; company 200+k
/// with `only_company(k)`; lead 300+k and contact 300+k with `lead_and_contact(k)`, the lead
/// in spelling k and modified later, the contact in the next spelling. Company 900 «ООО
/// Ромашка» has a number of its own; operator 6 (ext. 106) holds the contacts.
async fn arrange(db: &Path) {
    let sink = SqliteSink::open(db).unwrap();
    let mut companies = vec![modified(
        COMPANY,
        record(
            COMPANY,
            900,
            &[
                ("TITLE", "ООО Ромашка"),
                ("COMPANY_TYPE", "CUSTOMER"),
                ("ASSIGNED_BY_ID", "7"),
            ],
            &["+7 (495) 999-00-00".to_string()],
        ),
        at(1, 9),
    )];
    let mut contacts = Vec::new();
    let mut leads = Vec::new();
    for k in 0..SPELLINGS {
        let k32 = k as i32;
        contacts.push(modified(
            CONTACT,
            record(
                CONTACT,
                100 + k32,
                &[
                    ("NAME", "Иван"),
                    ("SECOND_NAME", "Петрович"),
                    ("LAST_NAME", &format!("Сидоров {k}")),
                    ("COMPANY_ID", "900"),
                    ("TYPE_ID", "CLIENT"),
                    ("ASSIGNED_BY_ID", "6"),
                ],
                &[ru_spellings(&only_contact(k))[k].clone()],
            ),
            at(2, 9),
        ));
        companies.push(modified(
            COMPANY,
            record(
                COMPANY,
                200 + k32,
                &[
                    ("TITLE", &format!("АО Ландыш {k}")),
                    ("COMPANY_TYPE", "PARTNER"),
                    ("ASSIGNED_BY_ID", "6"),
                ],
                &[ru_spellings(&only_company(k))[k].clone()],
            ),
            at(3, 9),
        ));
        contacts.push(modified(
            CONTACT,
            record(
                CONTACT,
                300 + k32,
                &[
                    ("NAME", "Анна"),
                    ("LAST_NAME", "Смирнова"),
                    ("TYPE_ID", "CLIENT"),
                    ("ASSIGNED_BY_ID", "6"),
                ],
                &[ru_spellings(&lead_and_contact(k))[(k + 1) % SPELLINGS].clone()],
            ),
            at(4, 9),
        ));
        leads.push(modified(
            LEAD,
            record(
                LEAD,
                300 + k32,
                &[
                    ("TITLE", "Заявка с сайта"),
                    ("NAME", "Анна"),
                    ("LAST_NAME", "Смирнова"),
                    ("STATUS_ID", "NEW"),
                    ("ASSIGNED_BY_ID", "5"),
                ],
                &[ru_spellings(&lead_and_contact(k))[k].clone()],
            ),
            // Newer than the contact: the contact still comes first.
            at(10, 9),
        ));
    }
    load(&sink, COMPANY, companies).await;
    load(&sink, CONTACT, contacts).await;
    load(&sink, LEAD, leads).await;
    sink.store_operators(vec![Operator {
        user_id: "6".into(),
        name: Some("Ольга".into()),
        last_name: Some("Иванова".into()),
        phone_inner: Some("106".into()),
        active: Some(true),
        details: true,
        ..Default::default()
    }])
    .await
    .expect("operators");
}

/// `b24sync lookup NUMBER --db DB ARGS...`: exit code, stdout, stderr.
async fn lookup_cli(db: &Path, number: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = run_cmd(
        b24sync()
            .arg("lookup")
            .arg(number)
            .args(args)
            .arg("--db")
            .arg(db),
    )
    .await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn lookup_json(db: &Path, number: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out, err) = lookup_cli(db, number, &all).await;
    assert_eq!(code, Some(0), "{number}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// (entity_type, entity_id) of each match, in order.
fn kinds(doc: &Value) -> Vec<(String, i64)> {
    doc["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .map(|m| {
            (
                m["entity_type"].as_str().expect("entity_type").to_string(),
                m["entity_id"].as_i64().expect("entity_id"),
            )
        })
        .collect()
}

fn kind(t: &str, id: i64) -> (String, i64) {
    (t.to_string(), id)
}

/// The matches as `--json` prints them: through the binary for `binary` callers, else
/// through the library's `CallerLookup` (the same store query; a process start costs a few
/// hundred milliseconds in a debug build), serialised the same way.
async fn matches_for(db: &Path, caller: &str, binary: bool) -> Value {
    if binary {
        return lookup_json(db, caller, &[]).await;
    }
    let sink = SqliteSink::open_existing(db).unwrap();
    let q = CallerQuery::new(caller, &DefaultRegion::default(), 10);
    json!({ "matches": sink.lookup_caller(&q).await.unwrap() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_on_a_contact_a_company_or_a_lead_and_a_contact_is_found() {
    let db = test_db();
    arrange(&db.path).await;
    let (mut asked, mut by_binary) = (0, 0);
    for k in 0..SPELLINGS {
        let id = k as i64;
        // Every form a switch reports, and the spelling as stored itself; the binary asks
        // with the national 8… form (every stored spelling is so found by the binary).
        let mut contact_callers = caller_forms(&only_contact(k));
        contact_callers.push(ru_spellings(&only_contact(k))[k].clone());
        for caller in &contact_callers {
            let binary = caller.starts_with('8');
            let doc = matches_for(&db.path, caller, binary).await;
            assert_eq!(
                kinds(&doc),
                [kind("contact", 100 + id)],
                "spelling {k}, caller {caller}"
            );
            let m = &doc["matches"][0];
            assert_eq!(m["title"], json!(format!("Иван Петрович Сидоров {k}")));
            assert_eq!(m["company_id"], json!(900));
            assert_eq!(
                m["company_title"],
                json!("ООО Ромашка"),
                "the contact's company"
            );
            assert_eq!(m["status_or_type"], json!("CLIENT"));
            assert_eq!(m["operator_id"], json!("6"));
            assert_eq!(m["operator_extension"], json!("106"));
            assert_eq!(m["date_modify"], json!("2024-05-02T09:00:00"));
            assert_eq!(
                m["phone_value"],
                json!(ru_spellings(&only_contact(k))[k]),
                "the value as typed"
            );
            asked += 1;
            by_binary += usize::from(binary);
        }
        for caller in caller_forms(&only_company(k)) {
            let binary = caller.starts_with('8');
            let doc = matches_for(&db.path, &caller, binary).await;
            assert_eq!(
                kinds(&doc),
                [kind("company", 200 + id)],
                "spelling {k}, caller {caller}"
            );
            let m = &doc["matches"][0];
            assert_eq!(m["title"], json!(format!("АО Ландыш {k}")));
            assert_eq!(m["company_title"], json!(format!("АО Ландыш {k}")));
            assert_eq!(m["company_id"], json!(200 + id));
            assert_eq!(m["status_or_type"], json!("PARTNER"));
            assert_eq!(m["name"], Value::Null);
            asked += 1;
            by_binary += usize::from(binary);
        }
        for caller in caller_forms(&lead_and_contact(k)) {
            let binary = caller.starts_with('8');
            let doc = matches_for(&db.path, &caller, binary).await;
            assert_eq!(
                kinds(&doc),
                [kind("contact", 300 + id), kind("lead", 300 + id)],
                "spelling {k} (contact in spelling {}), caller {caller}: the known customer first",
                (k + 1) % SPELLINGS
            );
            let (contact, lead) = (&doc["matches"][0], &doc["matches"][1]);
            assert_eq!(contact["title"], json!("Анна Смирнова"), "no second name");
            assert_eq!(contact["company_title"], Value::Null);
            assert_eq!(lead["title"], json!("Заявка с сайта"));
            assert_eq!(lead["status_or_type"], json!("NEW"));
            assert_eq!(lead["operator_id"], json!("5"));
            assert_eq!(
                lead["operator_extension"],
                Value::Null,
                "only the ID is known"
            );
            asked += 1;
            by_binary += usize::from(binary);
        }
    }
    assert_eq!(asked, SPELLINGS * (5 + 4 + 4));
    assert!(by_binary >= SPELLINGS * 3, "{by_binary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_output_names_the_type_first_and_the_contact_with_its_company() {
    let db = test_db();
    arrange(&db.path).await;
    let (code, out, err) = lookup_cli(&db.path, "89123000001", &[]).await;
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("+79123000001: 2 match(es)"), "{out}");
    assert!(
        lines[1].starts_with("contact 301 «Анна Смирнова», type CLIENT, modified 2024-05-04 09:00:00; operator 6 Ольга Иванова, ext. 106; phone "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("lead 301 «Заявка с сайта» Анна Смирнова, status NEW"),
        "{out}"
    );
    let (_, out, _) = lookup_cli(&db.path, "+7 912 100-00-02", &[]).await;
    assert!(
        out.contains("contact 102 «Иван Петрович Сидоров 2» (ООО Ромашка), type CLIENT"),
        "{out}"
    );
    let (_, out, _) = lookup_cli(&db.path, "+7 912 200-00-02", &[]).await;
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("company 202 «АО Ландыш 2», type PARTNER, modified")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_type_filter_keeps_only_the_entities_asked_for() {
    let db = test_db();
    arrange(&db.path).await;
    let both = "89123000004";
    let doc = lookup_json(&db.path, both, &["--entity", "lead"]).await;
    assert_eq!(kinds(&doc), [kind("lead", 304)]);
    assert_eq!(doc["entities"], json!(["lead"]));
    let doc = lookup_json(&db.path, both, &["--entity", "contact,company"]).await;
    assert_eq!(kinds(&doc), [kind("contact", 304)]);
    let doc = lookup_json(&db.path, both, &["--entity", "Contacts, leads"]).await;
    assert_eq!(kinds(&doc), [kind("contact", 304), kind("lead", 304)]);
    let doc = lookup_json(&db.path, both, &[]).await;
    assert_eq!(doc["entities"], json!(["lead", "contact", "company"]));
    // Filtered out: no match, said as such.
    let (code, out, _) = lookup_cli(&db.path, "89122000004", &["--entity", "contact,lead"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), "+79122000004: no contact or lead", "{out}");
    // A type the lookup does not know: a bad setting (exit 2), naming it and the choices.
    let (code, _, err) = lookup_cli(&db.path, both, &["--entity", "contact,deal"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("\"deal\"") && err.contains("lead, contact, company"),
        "{err}"
    );
    // The library's filter is the same.
    let sink = SqliteSink::open(&db.path).unwrap();
    let q = CallerQuery::new(both, &DefaultRegion::default(), 10);
    let only_companies = sink
        .lookup_caller_in(&q, &EntityFilter::only(&[COMPANY]))
        .await
        .unwrap();
    assert!(only_companies.is_empty(), "{only_companies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_found_is_exit_0_with_the_documented_line_and_an_empty_list() {
    let db = test_db();
    arrange(&db.path).await;
    let (code, out, err) = lookup_cli(&db.path, "+7 912 999-99-99", &[]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "+79129999999: no lead, contact or company");
    let doc = lookup_json(&db.path, "+7 912 999-99-99", &[]).await;
    assert_eq!(doc["matches"], json!([]));
    // The help explains the order.
    let out = run_cmd(b24sync().args(["lookup", "--help"])).await;
    let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for promise in [
        "contacts and companies (known customers) before leads (prospects), then the most recently modified, then the higher ID",
        "--entity",
        "no lead, contact or company",
    ] {
        assert!(help.contains(promise), "{promise:?}: {help}");
    }
}

/// Within the known customers, the most recently modified first; the order holds in the
/// library, in SQL (the query the telephony documentation shows) and in the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_come_newest_first_then_leads() {
    let db = test_db();
    let sink = SqliteSink::open(&db.path).unwrap();
    let number = || vec!["8 (913) 555-44-33".to_string()];
    load(
        &sink,
        COMPANY,
        vec![modified(
            COMPANY,
            record(COMPANY, 7, &[("TITLE", "ИП Кузнецов")], &number()),
            at(5, 9),
        )],
    )
    .await;
    load(
        &sink,
        CONTACT,
        vec![
            modified(
                CONTACT,
                record(CONTACT, 8, &[("NAME", "Пётр")], &number()),
                at(3, 9),
            ),
            modified(
                CONTACT,
                record(CONTACT, 9, &[("NAME", "Павел")], &number()),
                at(6, 9),
            ),
        ],
    )
    .await;
    load(
        &sink,
        LEAD,
        vec![
            modified(
                LEAD,
                record(LEAD, 10, &[("TITLE", "старый")], &number()),
                at(1, 9),
            ),
            modified(
                LEAD,
                record(LEAD, 11, &[("TITLE", "новый")], &number()),
                at(9, 9),
            ),
        ],
    )
    .await;
    let expected = [
        kind("contact", 9),
        kind("company", 7),
        kind("contact", 8),
        kind("lead", 11),
        kind("lead", 10),
    ];
    let doc = lookup_json(&db.path, "79135554433", &[]).await;
    assert_eq!(kinds(&doc), expected);
    let q = CallerQuery::new("79135554433", &DefaultRegion::default(), 10);
    let found: Vec<(String, i64)> = sink
        .lookup_caller(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.entity_type, m.entity_id))
        .collect();
    assert_eq!(found, expected);
    // The view, ordered as documented (docs/caller-lookup.md).
    let rows = query_strings(
        &db.path,
        "SELECT entity_type, entity_id FROM b24sync_caller_phones WHERE e164 = '+79135554433' \
         ORDER BY priority, date_modify DESC, entity_id DESC, entity_type",
    );
    let via_view: Vec<(String, i64)> = rows
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                r[1].as_deref().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(via_view, expected);
    let typed = query_strings(
        &db.path,
        "SELECT entity_type FROM b24sync_caller_phones WHERE e164 = '+79135554433' \
         AND entity_type IN ('contact', 'company')",
    );
    assert_eq!(typed.len(), 3);
    // The lookup's own statement from the command line, as docs/caller-lookup.md shows it.
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let mut stmt = conn.prepare(LOOKUP_CALLER_SQL).unwrap();
    let first: (String, i64) = stmt
        .query_row(
            rusqlite::params!["+79135554433", "", "", 1, "lead", "contact", "company"],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(first, kind("contact", 9));
}
