//! `BatchWriter`: loading (upserts, replaced contact values and solutions, error rows) and
//! previewing.

use b24sync::model::{Batch, Cell, LeadRecord, Problem, ProblemKind, RejectedLead};
use b24sync::store::BatchOutcome;

use crate::backend::{Backend, Kind};
use crate::build::*;

pub async fn full_load_reads_back_exactly_and_reruns_change_nothing(kind: Kind) {
    let b = Backend::ready(kind).await;
    let w = &b.stores.batches;

    let mut records: Vec<LeadRecord> = (1..=300).map(|id| lead(id, 0)).collect();
    let huge = "Письмо 📧 !".repeat(10_000); // 100,000 chars, 110,000 UTF-16 units
    assert_eq!(huge.chars().count(), 100_000);
    for r in records.iter_mut().filter(|r| r.lead.id % 97 == 0) {
        r.lead.cells[idx("COMMENTS")] = Cell::Text(huge.clone());
    }
    records[10].lead.cells[idx("TITLE")] = Cell::Text("😀".repeat(2000)); // 4,000 units: the column's size
    records[11].lead.cells[idx("COMMENTS")] = Cell::Text("x".repeat(32_767)); // SQL Server's bulk path limit
    records[12].lead.cells[idx("COMMENTS")] = Cell::Text("y".repeat(32_768)); // just over it

    let mut total = BatchOutcome::default();
    for chunk in records.chunks(100) {
        total.add(
            &w.load_batch(batch(chunk.to_vec()), now())
                .await
                .expect("load"),
        );
    }
    let expected_contacts: u64 = records.iter().map(|r| r.contacts.len() as u64).sum();
    assert_eq!(
        total,
        BatchOutcome {
            leads_inserted: 300,
            contacts_written: expected_contacts,
            ..BatchOutcome::default()
        }
    );

    let stored = b.leads().await;
    assert_eq!(stored.len(), 300);
    for r in &records {
        let (_, row) = &stored[&r.lead.id];
        assert_eq!(row, &r.lead, "lead {} reads back exactly", r.lead.id);
    }
    let mut want: Vec<_> = records
        .iter()
        .flat_map(|r| {
            r.contacts
                .iter()
                .map(|k| (i64::from(k.lead_id), k.contact_id.clone(), k.value.clone()))
        })
        .collect();
    want.sort();
    let mut got: Vec<_> = b
        .contacts()
        .await
        .into_iter()
        .map(|k| (k.1, k.2, k.4))
        .collect();
    got.sort();
    assert_eq!(got, want);
    let solutions: Vec<(i64, String)> = b
        .solutions()
        .await
        .into_iter()
        .map(|s| (s.1, s.2))
        .collect();
    let want: Vec<(i64, String)> = records
        .iter()
        .filter_map(|r| r.solution.clone().map(|s| (i64::from(r.lead.id), s)))
        .collect();
    assert_eq!(solutions, want);

    // Re-run: nothing changes, Ids stay.
    let ids_before: Vec<(i32, i64)> = stored.iter().map(|(k, (id, _))| (*k, *id)).collect();
    let contacts_before = b.contacts().await;
    let mut again = BatchOutcome::default();
    for chunk in records.chunks(100) {
        again.add(
            &w.load_batch(batch(chunk.to_vec()), now())
                .await
                .expect("reload"),
        );
    }
    assert_eq!(
        again,
        BatchOutcome {
            leads_unchanged: 300,
            ..BatchOutcome::default()
        }
    );
    let ids_after: Vec<(i32, i64)> = b
        .leads()
        .await
        .iter()
        .map(|(k, (id, _))| (*k, *id))
        .collect();
    assert_eq!(ids_after, ids_before);
    assert_eq!(b.contacts().await, contacts_before);

    // Changes that a case-insensitive, trailing-space-blind comparison would miss count too.
    let mut changed = vec![
        records[0].clone(),
        records[1].clone(),
        records[2].clone(),
        records[95].clone(),
    ];
    changed[0].lead.cells[idx("NAME")] = Cell::Text("IVAN".into());
    changed[1].lead.cells[idx("NAME")] = Cell::Text("ivan".into());
    let out = w
        .load_batch(batch(changed[..2].to_vec()), now())
        .await
        .expect("load");
    assert_eq!(out.leads_updated, 2);
    let out = w
        .load_batch(batch(changed[..2].to_vec()), now())
        .await
        .expect("load");
    assert_eq!(out.leads_updated, 0, "same values again");
    changed[0].lead.cells[idx("NAME")] = Cell::Text("ivan".into());
    changed[1].lead.cells[idx("NAME")] = Cell::Text("ivan ".into());
    changed[2].lead.cells[idx("DATE_MODIFY")] = Cell::DateTime(dt(2030, 1, 1, 0, 0, 1));
    changed[3].lead.cells[idx("COMMENTS")] = Cell::Text(format!("{huge}!"));
    changed[3].solution = None;
    let out = w
        .load_batch(batch(changed.clone()), now())
        .await
        .expect("load");
    assert_eq!((out.leads_updated, out.leads_unchanged), (4, 0));
    let stored = b.leads().await;
    for r in &changed {
        assert_eq!(stored[&r.lead.id].1, r.lead);
    }
    assert_eq!(
        b.count("SELECT COUNT(*) FROM bitrix_lead_solution WHERE sql_LEAD_ID = 96")
            .await,
        0
    );
}

pub async fn removed_and_changed_contact_values_are_replaced(kind: Kind) {
    let b = Backend::ready(kind).await;
    let w = &b.stores.batches;
    let mut r = lead(7, 0); // 3 values: 70, 71, 72
    assert_eq!(r.contacts.len(), 3);
    w.load_batch(batch(vec![r.clone()]), now())
        .await
        .expect("load");
    let before = b.contacts().await;
    // An extra copy of value 70, as the original scripts could leave.
    b.exec(
        "INSERT INTO bitrix_lead_contacts (sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID) \
         VALUES (7, '70', 'WORK', '+7 (900) 000-07-00', 'PHONE');",
    )
    .await;

    r.contacts.remove(2); // 72 removed in Bitrix24
    r.contacts[1].value = Some("+7 (900) 999-99-99".into()); // 71 changed
    let out = w
        .load_batch(batch(vec![r.clone()]), now())
        .await
        .expect("load");
    assert_eq!(
        (out.contacts_deleted, out.contacts_written),
        (2, 1),
        "72 and the extra copy; 71"
    );
    let after = b.contacts().await;
    assert_eq!(after.len(), 2);
    assert_eq!(after[0], before[0], "70 untouched, same Id");
    assert_eq!(after[1].0, before[1].0, "71 updated in place");
    assert_eq!(after[1].4.as_deref(), Some("+7 (900) 999-99-99"));

    // All values removed: none left. Other leads' values are not touched.
    w.load_batch(batch(vec![lead(5, 0)]), now())
        .await
        .expect("load");
    r.contacts.clear();
    let out = w.load_batch(batch(vec![r]), now()).await.expect("load");
    assert_eq!(out.contacts_deleted, 2);
    let left = b.contacts().await;
    assert!(left.iter().all(|k| k.1 == 5) && left.len() == 1, "{left:?}");
}

pub async fn error_rows_follow_the_contract(kind: Kind) {
    let b = Backend::ready(kind).await;
    let w = &b.stores.batches;

    let mut problem = lead(3, 0);
    problem.problems.push(Problem {
        field: "TITLE".into(),
        kind: ProblemKind::Truncated,
        detail: "5,120 characters; the column holds 4,000: stored the first 4,000".into(),
    });
    problem.raw_json = format!("{{\"ID\":\"3\",\"COMMENTS\":\"{}\"}}", "ж".repeat(60_000)); // long JSON
    let no_id = RejectedLead {
        lead_id: None,
        reason: "no ID".into(),
        raw_json: "{\"TITLE\":\"x\"}".into(),
    };
    let both = || Batch {
        entity: b24sync::schema::LEAD,
        records: vec![problem.clone(), lead(4, 0)],
        rejected: vec![no_id.clone()],
    };
    let out = w.load_batch(prepared(both()), now()).await.expect("load");
    assert_eq!((out.leads_inserted, out.error_rows), (2, 2));
    let first = b.errors().await;
    assert_eq!(first.len(), 2);
    // Rejected leads come first, and new rows get Ids in that order.
    assert_eq!(first[0].1, None);
    assert_eq!(first[0].3, no_id.raw_json);
    assert_eq!(first[1].1.as_deref(), Some("3"));
    assert!(
        first[1].2.starts_with("loaded with changes: TITLE: "),
        "{}",
        first[1].2
    );
    assert_eq!(first[1].3, problem.raw_json, "long JSON stored whole");
    assert_eq!(first[1].4, Some(now()));

    // Same batch later: rows kept as they were (Id and first-seen date).
    let later = dt(2024, 6, 2, 10, 0, 0);
    let out = w.load_batch(prepared(both()), later).await.expect("reload");
    assert_eq!(out.error_rows, 2);
    assert_eq!(b.errors().await, first);

    // A new problem adds a row, the old one goes; then the lead loads cleanly: no rows left.
    let mut other = problem.clone();
    other.problems[0] = Problem {
        field: "BIRTHDATE".into(),
        kind: ProblemKind::Unparseable,
        detail: "'31.02' is not a date".into(),
    };
    w.load_batch(batch(vec![other]), later).await.expect("load");
    let rows: Vec<_> = b
        .errors()
        .await
        .into_iter()
        .filter(|e| e.1.as_deref() == Some("3"))
        .collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].2.contains("BIRTHDATE") && rows[0].4 == Some(later));
    let out = w
        .load_batch(batch(vec![lead(3, 0)]), later)
        .await
        .expect("clean");
    assert_eq!(out.error_rows, 0);
    assert!(b.errors().await.iter().all(|e| e.1.as_deref() != Some("3")));
    assert_eq!(b.errors().await.len(), 1, "the row without an ID stays");
}

fn first_batch() -> Batch {
    let mut problem = small_lead(3, "three", &[]);
    problem.problems.push(Problem {
        field: "TITLE".into(),
        kind: ProblemKind::Truncated,
        detail: "cut".into(),
    });
    Batch {
        entity: b24sync::schema::LEAD,
        records: vec![
            small_lead(1, "one", &[("11", "+7 900 000-00-01")]),
            small_lead(
                2,
                "two",
                &[("21", "+7 900 000-00-02"), ("22", "+7 900 000-00-03")],
            ),
            problem,
        ],
        rejected: vec![RejectedLead {
            lead_id: Some("4".into()),
            reason: "no TITLE".into(),
            raw_json: r#"{"ID":"4"}"#.into(),
        }],
    }
}

pub async fn preview_reports_what_the_load_then_does_and_changes_nothing(kind: Kind) {
    let b = Backend::ready(kind).await;
    let w = &b.stores.batches;
    b.stores
        .state
        .write_state("watermark", "w1")
        .await
        .expect("state");

    let before = b.snapshot().await;
    let preview = w
        .preview_batch(prepared(first_batch()), dt(2024, 3, 2, 9, 4, 5))
        .await
        .expect("preview");
    assert_eq!(
        b.snapshot().await,
        before,
        "the preview changed the database"
    );
    let loaded = w
        .load_batch(prepared(first_batch()), dt(2024, 3, 2, 9, 4, 5))
        .await
        .expect("load");
    assert_eq!(preview, loaded);
    assert_eq!(
        (
            loaded.leads_inserted,
            loaded.contacts_written,
            loaded.error_rows
        ),
        (3, 3, 2)
    );
    assert_ne!(b.snapshot().await, before, "the load itself did write");

    // A second batch over existing rows: a changed lead, a removed and a changed contact
    // value, an unchanged lead, a lead whose problem is gone, a new lead.
    let second = || {
        batch(vec![
            small_lead(1, "one", &[("11", "+7 900 000-00-01")]),
            small_lead(2, "two, renamed", &[("22", "+7 900 000-00-99")]),
            small_lead(3, "three", &[]),
            small_lead(5, "five", &[("51", "+7 900 000-00-05")]),
        ])
    };
    let at = dt(2024, 3, 3, 9, 4, 5);
    let before = b.snapshot().await;
    let preview = w.preview_batch(second(), at).await.expect("preview");
    assert_eq!(
        b.snapshot().await,
        before,
        "the preview changed the database"
    );
    // Previewing twice gives the same answer: nothing of the first preview stayed behind.
    assert_eq!(w.preview_batch(second(), at).await.expect("again"), preview);
    let loaded = w.load_batch(second(), at).await.expect("load");
    assert_eq!(preview, loaded);
    assert_eq!(
        (
            loaded.leads_inserted,
            loaded.leads_updated,
            loaded.leads_unchanged,
            loaded.contacts_written,
            loaded.contacts_deleted
        ),
        (1, 1, 2, 2, 1)
    );
}
