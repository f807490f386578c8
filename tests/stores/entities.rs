//! Contacts and companies through the same roles as the lead (`BatchWriter`, `DeletionStore`,
//! `FingerprintStore`): each entity's records, multi-field values, normalised phones, error
//! rows and fingerprints in its own tables, loaded, reloaded unchanged, edited and deleted.

use b24sync::model::{Batch, Cell, ColumnKind, LeadId, LeadRecord, LeadRow, Problem, ProblemKind};
use b24sync::prepare::{prepare, Fingerprint, PreparedBatch};
use b24sync::schema::{Entity, COMPANY, CONTACT, LEAD};
use b24sync::store::BatchOutcome;
use b24sync::transform::phone::DefaultRegion;
use b24sync::transform::phones::phone_rows;

use crate::backend::{int, Backend, Col, Kind, Val};
use crate::build::*;
use crate::mssql_support::record_of;

/// The field that names a record of `e` (what a person reads first).
fn name_field(e: Entity) -> &'static str {
    if e == COMPANY {
        "TITLE"
    } else {
        "NAME"
    }
}

fn at(e: Entity, field: &str) -> usize {
    e.field_index(field)
        .unwrap_or_else(|| panic!("{} has no field {field}", e.name))
}

/// A record of `e`: its name, a modification date, a comment, these PHONE values (value ID,
/// number) normalised as the transform does.
pub fn record(e: Entity, id: i32, name: &str, phones: &[(&str, &str)]) -> LeadRecord {
    let mut cells = vec![Cell::Null; e.fields.len()];
    cells[at(e, name_field(e))] = Cell::Text(name.to_string());
    cells[at(e, "DATE_MODIFY")] = Cell::DateTime(dt(2024, 3, 1, 10, 4, 5));
    cells[at(e, "COMMENTS")] = Cell::Text(format!("Комментарий {id}"));
    let contacts = phone_contacts(id, phones);
    let phones = phone_rows(&contacts, &DefaultRegion::default());
    LeadRecord {
        lead: LeadRow { id, cells },
        contacts,
        phones,
        solution: None,
        problems: vec![],
        raw_json: format!(r#"{{"ID":"{id}","{}":"{name}"}}"#, name_field(e)),
    }
}

fn batch_of(e: Entity, records: Vec<LeadRecord>) -> PreparedBatch {
    let mut b = Batch::of(e);
    b.records = records;
    prepare(b)
}

/// (owner, value ID, value) of every multi-field row of `e`, sorted.
async fn multi(b: &Backend, e: Entity) -> Vec<(i64, Option<String>, Option<String>)> {
    let mut rows: Vec<_> = b
        .table(
            e.multi_table,
            &[
                (e.multi_owner, Col::Int),
                (e.multi_value_id, Col::Text),
                ("sql_VALUE", Col::Text),
            ],
            "Id",
        )
        .await
        .into_iter()
        .map(|r| (int(&r[0]), text(&r[1]), text(&r[2])))
        .collect();
    rows.sort();
    rows
}

/// (owner, value ID, value, E.164) of every normalised phone of `e`, sorted.
async fn phones(b: &Backend, e: Entity) -> Vec<(i64, Option<String>, String, Option<String>)> {
    let mut rows: Vec<_> = b
        .table(
            e.phones_table,
            &[
                (e.phones_owner, Col::Int),
                (e.phones_value_id, Col::Text),
                ("value", Col::Text),
                ("e164", Col::Text),
            ],
            "Id",
        )
        .await
        .into_iter()
        .map(|r| {
            (
                int(&r[0]),
                text(&r[1]),
                text(&r[2]).unwrap_or_default(),
                text(&r[3]),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// sql_ID → (the name column, COMMENTS, DATE_MODIFY) of every record of `e`.
async fn records(b: &Backend, e: Entity) -> Vec<(i64, Option<String>, Option<String>, Val)> {
    let name = format!("sql_{}", name_field(e));
    b.table(
        e.table,
        &[
            ("sql_ID", Col::Int),
            (name.as_str(), Col::Text),
            ("sql_COMMENTS", Col::LongText),
            ("sql_DATE_MODIFY", Col::Time),
        ],
        "sql_ID",
    )
    .await
    .into_iter()
    .map(|r| (int(&r[0]), text(&r[1]), text(&r[2]), r[3].clone()))
    .collect()
}

async fn fingerprints(b: &Backend, e: Entity) -> Vec<(LeadId, Fingerprint)> {
    let mut all = b
        .stores
        .fingerprints
        .fingerprints(e)
        .await
        .expect("fingerprints");
    all.sort();
    all
}

fn text(v: &Val) -> Option<String> {
    match v {
        Val::Null => None,
        Val::Text(s) => Some(s.clone()),
        other => panic!("not text: {other:?}"),
    }
}

pub async fn contacts_and_companies_load_reload_edit_and_delete(kind: Kind) {
    let b = Backend::ready(kind).await;
    let w = &b.stores.batches;
    for e in [CONTACT, COMPANY] {
        let mut all: Vec<LeadRecord> = (1..=30)
            .map(|id| {
                let n1 = format!("+7 912 000 {id:02} 01");
                let n2 = format!("8 (495) 000-{id:02}-02");
                record(
                    e,
                    id,
                    &format!("{} {id}", e.name),
                    &[("1", &n1), ("2", &n2)],
                )
            })
            .collect();
        // A comment too long for SQL Server's bulk path, and a name that needs N'...'.
        all[4].lead.cells[at(e, "COMMENTS")] = Cell::Text("Письмо 📧 ".repeat(5_000));
        all[5].lead.cells[at(e, name_field(e))] = Cell::Text("Ёжик в тумане 😀".into());

        let first = batch_of(e, all.clone());
        let out = w.load_batch(first.clone(), now()).await.expect("load");
        assert_eq!(
            out,
            BatchOutcome {
                leads_inserted: 30,
                contacts_written: 60,
                ..BatchOutcome::default()
            },
            "{}",
            e.name
        );
        let stored = records(&b, e).await;
        assert_eq!(stored.len(), 30);
        for (r, s) in all.iter().zip(&stored) {
            assert_eq!(s.0, i64::from(r.lead.id));
            assert_eq!(s.1.as_deref(), r.lead.cells[at(e, name_field(e))].as_text());
            assert_eq!(s.2.as_deref(), r.lead.cells[at(e, "COMMENTS")].as_text());
            assert_eq!(s.3, Val::Time(dt(2024, 3, 1, 10, 4, 5)));
        }
        assert_eq!(multi(&b, e).await.len(), 60);
        let numbers = phones(&b, e).await;
        assert_eq!(numbers.len(), 60);
        assert!(numbers.contains(&(
            1,
            Some("1".into()),
            "+7 912 000 01 01".into(),
            Some("+79120000101".into())
        )));
        assert!(numbers.contains(&(
            1,
            Some("2".into()),
            "8 (495) 000-01-02".into(),
            Some("+74950000102".into())
        )));
        let want: Vec<(LeadId, Fingerprint)> = (1..=30)
            .map(|id| (id, first.fingerprints().get(id).expect("a fingerprint")))
            .collect();
        assert_eq!(fingerprints(&b, e).await, want);
        // Nothing of the lead's was written.
        assert!(b.leads().await.is_empty());
        assert!(b.contacts().await.is_empty());

        // The same batch again: nothing changes.
        let snapshot = b.snapshot().await;
        let out = w.load_batch(first, now()).await.expect("reload");
        assert_eq!(
            out,
            BatchOutcome {
                leads_unchanged: 30,
                ..BatchOutcome::default()
            },
            "{}",
            e.name
        );
        assert_eq!(
            b.snapshot().await,
            snapshot,
            "{}: a reload changes nothing",
            e.name
        );

        // Edits: a name changed only in case, a number removed, a number edited.
        let mut edited = vec![all[0].clone(), all[1].clone(), all[2].clone()];
        let name = format!("{} 1", e.name).to_uppercase();
        edited[0].lead.cells[at(e, name_field(e))] = Cell::Text(name.clone());
        edited[1].contacts.truncate(1);
        edited[2].contacts[1].value = Some("+7 999 111-22-33".into());
        for r in edited.iter_mut() {
            r.phones = phone_rows(&r.contacts, &DefaultRegion::default());
        }
        let out = w
            .load_batch(batch_of(e, edited.clone()), now())
            .await
            .expect("edit");
        assert_eq!(
            (
                out.leads_updated,
                out.leads_unchanged,
                out.contacts_deleted,
                out.contacts_written
            ),
            (1, 2, 1, 1),
            "{}: {out:?}",
            e.name
        );
        assert_eq!(records(&b, e).await[0].1.as_deref(), Some(name.as_str()));
        let values = multi(&b, e).await;
        assert_eq!(values.len(), 59);
        assert!(!values
            .iter()
            .any(|v| v.0 == 2 && v.1.as_deref() == Some("2")));
        assert!(values.contains(&(3, Some("2".into()), Some("+7 999 111-22-33".into()))));
        let numbers = phones(&b, e).await;
        assert_eq!(numbers.len(), 59);
        assert!(numbers
            .iter()
            .any(|p| p.0 == 3 && p.3.as_deref() == Some("+79991112233")));

        // IDs and deletion: the records, their values, phones and fingerprints go.
        let mut ids = b.stores.deletions.record_ids(e).await.expect("ids");
        ids.sort();
        assert_eq!(ids, (1..=30).collect::<Vec<_>>());
        let deleted = b
            .stores
            .deletions
            .delete_records(e, vec![2, 3, 99])
            .await
            .expect("delete");
        assert_eq!(deleted, 2, "{}", e.name);
        let ids = b.stores.deletions.record_ids(e).await.expect("ids");
        assert_eq!(ids.len(), 28);
        assert!(!ids.contains(&2) && !ids.contains(&3));
        assert!(multi(&b, e).await.iter().all(|v| v.0 != 2 && v.0 != 3));
        assert!(phones(&b, e).await.iter().all(|p| p.0 != 2 && p.0 != 3));
        let left: Vec<LeadId> = fingerprints(&b, e).await.iter().map(|f| f.0).collect();
        assert!(!left.contains(&2) && !left.contains(&3) && left.contains(&1));
    }
}

pub async fn an_entitys_error_rows_go_to_its_own_error_table(kind: Kind) {
    let b = Backend::ready(kind).await;
    let w = &b.stores.batches;
    for e in [CONTACT, COMPANY] {
        let count = |table: &str| format!("SELECT COUNT(*) FROM {table}");
        let mut troubled = record(e, 7, "with a problem", &[("1", "+7 912 345 67 89")]);
        troubled.problems.push(Problem {
            field: name_field(e).into(),
            kind: ProblemKind::Truncated,
            detail: "cut to 3,000 characters".into(),
        });
        let mut with_rejected = Batch::of(e);
        with_rejected.records = vec![troubled, record(e, 8, "fine", &[])];
        with_rejected.rejected = vec![rejected(Some("9"), "not a JSON object")];
        let out = w
            .load_batch(prepare(with_rejected), now())
            .await
            .expect("load");
        assert_eq!(
            (out.leads_inserted, out.error_rows, out.error_rows_new),
            (2, 2, 2)
        );
        assert_eq!(b.count(&count(e.error_table)).await, 2, "{}", e.name);
        assert_eq!(
            b.count("SELECT COUNT(*) FROM bitrix_import_lead_error")
                .await,
            0
        );
        let rows = b
            .table(
                e.error_table,
                &[("sql_ID", Col::Text), (e.error_json, Col::LongText)],
                "Id",
            )
            .await;
        let seven = rows
            .iter()
            .find(|r| r[0] == Val::Text("7".into()))
            .expect("record 7's error row");
        assert!(matches!(&seven[1], Val::Text(j) if j.contains("with a problem")));
        assert!(rows.iter().any(|r| r[0] == Val::Text("9".into())));
        // A record with problems keeps no fingerprint; the clean one has its own.
        let kept: Vec<LeadId> = fingerprints(&b, e).await.iter().map(|f| f.0).collect();
        assert_eq!(kept, vec![8]);

        // Loaded cleanly now: its error row goes; the deletion takes the refused one's.
        w.load_batch(batch_of(e, vec![record(e, 7, "fixed", &[])]), now())
            .await
            .expect("load");
        assert_eq!(b.count(&count(e.error_table)).await, 1);
        b.stores
            .deletions
            .delete_records(e, vec![9])
            .await
            .expect("delete");
        assert_eq!(b.count(&count(e.error_table)).await, 0);
    }
}

pub async fn entities_with_the_same_ids_do_not_touch_each_other(kind: Kind) {
    let b = Backend::ready(kind).await;
    let w = &b.stores.batches;
    let phone = [("1", "+7 912 345 67 89")];
    w.load_batch(batch(vec![lead_with_phones(1, "5", &phone)]), now())
        .await
        .expect("lead");
    for e in [CONTACT, COMPANY] {
        w.load_batch(batch_of(e, vec![record(e, 1, "one", &phone)]), now())
            .await
            .expect("load");
    }
    for e in [LEAD, CONTACT, COMPANY] {
        assert_eq!(
            b.stores.deletions.record_ids(e).await.expect("ids"),
            vec![1]
        );
        assert_eq!(fingerprints(&b, e).await.len(), 1, "{}", e.name);
    }
    // Deleting contact 1 leaves lead 1 and company 1 as they were.
    let before_lead = b.leads().await;
    assert_eq!(
        b.stores
            .deletions
            .delete_records(CONTACT, vec![1])
            .await
            .expect("delete"),
        1
    );
    assert!(b
        .stores
        .deletions
        .record_ids(CONTACT)
        .await
        .expect("ids")
        .is_empty());
    assert!(phones(&b, CONTACT).await.is_empty());
    assert_eq!(b.leads().await, before_lead);
    assert_eq!(b.contacts().await.len(), 1);
    assert_eq!(phones(&b, COMPANY).await.len(), 1);
    assert_eq!(multi(&b, COMPANY).await.len(), 1);
    assert_eq!(fingerprints(&b, LEAD).await.len(), 1);
    assert_eq!(fingerprints(&b, COMPANY).await.len(), 1);
    // The lead's phones are its own too.
    assert_eq!(b.count("SELECT COUNT(*) FROM b24sync_lead_phones").await, 1);
}

/// sql_ID → the row as stored, every field of `e` read back.
async fn stored_rows(b: &Backend, e: Entity) -> Vec<LeadRow> {
    let mut columns = vec![("sql_ID".to_string(), Col::Int)];
    columns.extend(e.fields.iter().map(|c| {
        let col = match c.kind {
            ColumnKind::Text { .. } => Col::Text,
            ColumnKind::LongText => Col::LongText,
            ColumnKind::DateTime | ColumnKind::Date => Col::Time,
        };
        (c.sql_name(), col)
    }));
    let named: Vec<(&str, Col)> = columns.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    b.table(e.table, &named, "sql_ID")
        .await
        .into_iter()
        .map(|r| LeadRow {
            id: int(&r[0]) as i32,
            cells: r[1..]
                .iter()
                .map(|v| match v {
                    Val::Null => Cell::Null,
                    Val::Text(s) => Cell::Text(s.clone()),
                    Val::Time(t) => Cell::DateTime(*t),
                    Val::Int(n) => Cell::Text(n.to_string()),
                })
                .collect(),
        })
        .collect()
}

pub async fn every_field_of_contacts_and_companies_reads_back_exactly(kind: Kind) {
    let b = Backend::ready(kind).await;
    for e in [CONTACT, COMPANY] {
        // Every field filled with something awkward (emoji, quotes, spaces, empty text,
        // dates), so a column staged out of order cannot go unnoticed.
        let all: Vec<LeadRecord> = (1..=40).map(|id| record_of(e, id, 0)).collect();
        let out = b
            .stores
            .batches
            .load_batch(batch_of(e, all.clone()), now())
            .await
            .expect("load");
        assert_eq!(out.leads_inserted, 40, "{}", e.name);
        let stored = stored_rows(&b, e).await;
        assert_eq!(stored.len(), 40);
        for (r, s) in all.iter().zip(&stored) {
            assert_eq!(s, &r.lead, "{} {} reads back exactly", e.name, r.lead.id);
        }
        let values: usize = all.iter().map(|r| r.contacts.len()).sum();
        assert_eq!(multi(&b, e).await.len(), values);
        // A second variant changes every record; a third load of it changes nothing.
        let changed: Vec<LeadRecord> = (1..=40).map(|id| record_of(e, id, 1)).collect();
        let out = b
            .stores
            .batches
            .load_batch(batch_of(e, changed.clone()), now())
            .await
            .expect("load");
        assert_eq!(
            (out.leads_updated, out.leads_inserted),
            (40, 0),
            "{}",
            e.name
        );
        let out = b
            .stores
            .batches
            .load_batch(batch_of(e, changed.clone()), now())
            .await
            .expect("load");
        assert_eq!(out.leads_unchanged, 40, "{}", e.name);
        for (r, s) in changed.iter().zip(&stored_rows(&b, e).await) {
            assert_eq!(s, &r.lead, "{} {} reads back exactly", e.name, r.lead.id);
        }
    }
}
