//! The same awkward batch gives the same rows and the same error rows on every backend
//! (issue 12, "Done when"): it goes through `prepare::prepare`, as `run` sends every batch,
//! and what each backend stores is read back in a neutral form and compared with one
//! expected set written here from the preparation contract (`src/prepare/mod.rs`): the later
//! copy of a lead wins, each contact value once, each error row once (the later copy's
//! JSON), an over-long value clipped to its column with an error row naming the field, a
//! date out of SQL Server's `datetime` range (1753-01-01 onwards) stored as NULL with an
//! error row naming the field.

use b24sync::model::{Batch, Cell, ContactRow, LeadRecord, LeadRow, RejectedLead};

use crate::backend::{Backend, Kind};
use crate::build::*;

fn contact(lead_id: i32, id: Option<&str>, value: &str) -> ContactRow {
    ContactRow {
        lead_id,
        contact_id: id.map(str::to_string),
        value_type: Some("WORK".into()),
        value: Some(value.to_string()),
        type_id: "PHONE".into(),
    }
}

fn copy_of_one(title: &str, contact_id: &str, value: &str, copy: &str) -> LeadRecord {
    let mut r = small_lead(1, title, &[(contact_id, value)]);
    r.solution = Some(format!("solution of copy {copy}"));
    r.raw_json = format!(r#"{{"ID":"1","copy":"{copy}"}}"#);
    r
}

fn refused_nine(copy: u32) -> RejectedLead {
    RejectedLead {
        lead_id: Some("9".into()),
        reason: "not loaded: no TITLE".into(),
        raw_json: format!(r#"{{"ID":"9","copy":{copy}}}"#),
    }
}

/// Lead 1 three times (the first copy with a problem of its own, the last with a TITLE of
/// 4,100 characters: the column holds 4,000); lead 2 with a value listed twice (with and
/// without a contact ID) and a PHONE value of 2,100 characters (the column holds 2,000);
/// lead 3 born in 1700; lead 4 clean; lead 9 refused twice.
fn awkward() -> Batch {
    let mut first = copy_of_one("first", "11", "+7 900 111-11-11", "A");
    first.problems.push(b24sync::model::Problem {
        field: "NAME".into(),
        kind: b24sync::model::ProblemKind::Truncated,
        detail: "a problem of an older copy".into(),
    });
    let second = copy_of_one("second", "12", "+7 900 222-22-22", "B");
    let third = copy_of_one(&"T".repeat(4100), "13", "+7 900 333-33-33", "C");

    let mut two = small_lead(2, "two", &[]);
    two.contacts = vec![
        contact(2, Some("21"), "+7 900 000-00-21"),
        contact(2, Some("21"), "+7 900 000-00-21"),
        contact(2, Some("22"), &"1".repeat(2100)),
        contact(2, None, "+7 900 000-00-29"),
        contact(2, None, "+7 900 000-00-29"),
    ];
    let mut three = small_lead(3, "three", &[("31", "+7 900 000-00-31")]);
    three.lead.cells[idx("BIRTHDATE")] = Cell::DateTime(dt(1700, 1, 1, 0, 0, 0));
    let four = small_lead(4, "four", &[("41", "+7 900 000-00-41")]);
    Batch {
        entity: b24sync::schema::LEAD,
        records: vec![first, two, second, three, third, four],
        rejected: vec![refused_nine(1), refused_nine(2)],
    }
}

/// (lead, contact ID, value type, value, type) of a contact row.
type ContactKey = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// What every backend must hold afterwards.
struct Expected {
    leads: Vec<LeadRow>,
    /// Sorted.
    contacts: Vec<ContactKey>,
    /// (lead, solution), sorted.
    solutions: Vec<(i64, String)>,
    /// (sql_ID, a word the reason must contain, lead JSON), sorted.
    errors: Vec<(String, &'static str, String)>,
}

fn expected() -> Expected {
    let one = small_lead(1, &"T".repeat(4000), &[]).lead;
    let mut three = small_lead(3, "three", &[]).lead;
    three.cells[idx("BIRTHDATE")] = Cell::Null;
    let leads = vec![
        one,
        small_lead(2, "two", &[]).lead,
        three,
        small_lead(4, "four", &[]).lead,
    ];
    let c = |lead: i64, id: Option<&str>, value: &str| {
        (
            lead,
            id.map(str::to_string),
            Some("WORK".to_string()),
            Some(value.to_string()),
            Some("PHONE".to_string()),
        )
    };
    let mut contacts = vec![
        c(1, Some("13"), "+7 900 333-33-33"),
        c(2, Some("21"), "+7 900 000-00-21"),
        c(2, Some("22"), &"1".repeat(2000)),
        c(2, None, "+7 900 000-00-29"),
        c(3, Some("31"), "+7 900 000-00-31"),
        c(4, Some("41"), "+7 900 000-00-41"),
    ];
    contacts.sort();
    let solutions = vec![
        (1, "solution of copy C".to_string()),
        (2, "solution 2".to_string()),
        (4, "solution 4".to_string()),
    ];
    let errors = vec![
        ("1".into(), "TITLE", r#"{"ID":"1","copy":"C"}"#.into()),
        ("2".into(), "PHONE", r#"{"ID":"2","TITLE":"two"}"#.into()),
        (
            "3".into(),
            "BIRTHDATE",
            r#"{"ID":"3","TITLE":"three"}"#.into(),
        ),
        ("9".into(), "no TITLE", r#"{"ID":"9","copy":2}"#.into()),
    ];
    Expected {
        leads,
        contacts,
        solutions,
        errors,
    }
}

/// Read back every table the batch touches and compare with [`expected`].
async fn holds_the_expected_rows(b: &Backend) {
    let want = expected();
    let leads: Vec<LeadRow> = b.leads().await.into_values().map(|(_, row)| row).collect();
    assert_eq!(leads.len(), want.leads.len(), "one row per lead");
    for (got, want) in leads.iter().zip(&want.leads) {
        assert_eq!(got, want, "bitrix_leads, lead {}", want.id);
    }

    let mut contacts: Vec<_> = b
        .contacts()
        .await
        .into_iter()
        .map(|k| (k.1, k.2, k.3, k.4, k.5))
        .collect();
    contacts.sort();
    assert_eq!(contacts, want.contacts, "bitrix_lead_contacts");

    let mut solutions: Vec<_> = b
        .solutions()
        .await
        .into_iter()
        .map(|s| (s.1, s.2))
        .collect();
    solutions.sort();
    assert_eq!(solutions, want.solutions, "bitrix_lead_solution");

    let mut errors = b.errors().await;
    errors.sort_by(|x, y| x.1.cmp(&y.1));
    let got: Vec<(Option<String>, String, Option<chrono::NaiveDateTime>)> = errors
        .iter()
        .map(|e| (e.1.clone(), e.3.clone(), e.4))
        .collect();
    let expected_rows: Vec<_> = want
        .errors
        .iter()
        .map(|(id, _, json)| (Some(id.clone()), json.clone(), Some(now())))
        .collect();
    assert_eq!(got, expected_rows, "bitrix_import_lead_error: {errors:?}");
    for (row, (id, word, _)) in errors.iter().zip(&want.errors) {
        assert!(row.2.contains(word), "lead {id}: {:?} names {word}", row.2);
    }
}

pub async fn an_awkward_batch_gives_the_same_rows_and_error_rows(kind: Kind) {
    let b = Backend::ready(kind).await;
    let out = b
        .stores
        .batches
        .load_batch(prepared(awkward()), now())
        .await
        .expect("load");
    assert_eq!((out.leads_inserted, out.error_rows), (4, 4), "{out:?}");
    holds_the_expected_rows(&b).await;

    // Again, later: nothing changes (the error rows keep their first-seen date).
    let out = b
        .stores
        .batches
        .load_batch(prepared(awkward()), dt(2024, 6, 2, 10, 0, 0))
        .await
        .expect("reload");
    assert_eq!((out.leads_unchanged, out.error_rows_new), (4, 0), "{out:?}");
    holds_the_expected_rows(&b).await;
}
