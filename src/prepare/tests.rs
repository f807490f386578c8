//! Table-driven tests over awkward batches: what `prepare` keeps, cuts and reports.

use chrono::{NaiveDate, NaiveDateTime};

use super::*;
use crate::model::{
    lead_column_index, Cell, ContactRow, LeadRecord, PhoneRow, Problem, ProblemKind,
};

use super::fixtures::lead as record;

fn idx(field: &str) -> usize {
    lead_column_index(field).unwrap()
}

fn contact(id: Option<&str>, ty: &str, value: &str, vt: Option<&str>) -> ContactRow {
    ContactRow {
        lead_id: 0,
        contact_id: id.map(str::to_string),
        value_type: vt.map(str::to_string),
        value: Some(value.to_string()),
        type_id: ty.to_string(),
    }
}

fn phone(id: Option<&str>, value: &str) -> PhoneRow {
    PhoneRow {
        lead_id: 0,
        contact_id: id.map(str::to_string),
        value: value.to_string(),
        e164: None,
        extension: None,
        digits_rev: None,
        reason: Some("not a number".into()),
    }
}

fn rejected(id: Option<&str>, reason: &str, json: &str) -> RejectedLead {
    RejectedLead {
        lead_id: id.map(str::to_string),
        reason: reason.to_string(),
        raw_json: json.to_string(),
    }
}

fn at(y: i32, m: u32, d: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
}

fn title(r: &LeadRecord) -> &str {
    r.lead.cells[idx("TITLE")].as_text().unwrap_or_default()
}

fn details(r: &LeadRecord) -> Vec<(&str, ProblemKind, &str)> {
    r.problems
        .iter()
        .map(|p| (p.field.as_str(), p.kind, p.detail.as_str()))
        .collect()
}

#[test]
fn the_later_copy_of_a_lead_wins_at_its_place() {
    struct Case {
        name: &'static str,
        records: Vec<LeadRecord>,
        want: Vec<(i32, &'static str)>,
    }
    let mut with_problem = record(7, "third");
    with_problem.problems.push(Problem {
        field: "NAME".into(),
        kind: ProblemKind::Truncated,
        detail: "cut".into(),
    });
    let cases = vec![
        Case {
            name: "three copies with different data",
            records: vec![
                record(7, "first"),
                record(8, "eight"),
                record(7, "second"),
                record(9, "nine"),
                with_problem,
            ],
            want: vec![(8, "eight"), (9, "nine"), (7, "third")],
        },
        Case {
            name: "pages overlapping",
            records: vec![
                record(1, "first copy"),
                record(2, "two"),
                record(1, "second copy"),
                record(3, "three"),
                record(2, "two again"),
            ],
            want: vec![(1, "second copy"), (3, "three"), (2, "two again")],
        },
        Case {
            name: "no duplicates: unchanged order",
            records: vec![record(3, "c"), record(1, "a"), record(2, "b")],
            want: vec![(3, "c"), (1, "a"), (2, "b")],
        },
        Case {
            name: "empty",
            records: vec![],
            want: vec![],
        },
    ];
    for c in cases {
        let b = prepare(Batch {
            entity: crate::schema::LEAD,
            records: c.records,
            rejected: vec![],
        });
        let got: Vec<_> = b
            .batch()
            .records
            .iter()
            .map(|r| (r.lead.id, title(r)))
            .collect();
        assert_eq!(got, c.want, "{}", c.name);
    }
    // The later copy's problems are the ones reported: one error row for lead 7.
    let b = prepare(Batch {
        entity: crate::schema::LEAD,
        records: vec![
            {
                let mut r = record(7, "first");
                r.problems.push(Problem {
                    field: "TITLE".into(),
                    kind: ProblemKind::Truncated,
                    detail: "old".into(),
                });
                r
            },
            record(7, "second"),
        ],
        rejected: vec![],
    });
    assert!(b.error_rows().is_empty(), "the later copy had no problems");
}

#[test]
fn contact_values_once_each_as_today_s_rule_defines() {
    struct Case {
        name: &'static str,
        contacts: Vec<ContactRow>,
        kept: Vec<(Option<&'static str>, &'static str)>,
        problems: Vec<(&'static str, ProblemKind, &'static str)>,
    }
    let cases = vec![
        Case {
            name: "an ID twice: the first is kept",
            contacts: vec![
                contact(Some("5"), "PHONE", "+7 900 000-00-01", None),
                contact(Some("5"), "PHONE", "+7 900 000-00-02", None),
                contact(Some("6"), "PHONE", "+7 900 000-00-03", None),
            ],
            kept: vec![(Some("5"), "+7 900 000-00-01"), (Some("6"), "+7 900 000-00-03")],
            problems: vec![(
                "PHONE",
                ProblemKind::WrongType,
                "value (ID 5) is listed again in this lead: kept the first, skipped \"+7 900 000-00-02\"",
            )],
        },
        Case {
            name: "an ID twice across types",
            contacts: vec![
                contact(Some("5"), "PHONE", "+7", None),
                contact(Some("5"), "EMAIL", "a@b.ru", None),
            ],
            kept: vec![(Some("5"), "+7")],
            problems: vec![(
                "EMAIL",
                ProblemKind::WrongType,
                "value (ID 5) is listed again in this lead: kept the first, skipped \"a@b.ru\"",
            )],
        },
        Case {
            name: "the same value without an ID twice: stored once",
            contacts: vec![
                contact(None, "EMAIL", "a@b.ru", Some("WORK")),
                contact(None, "EMAIL", "a@b.ru", Some("WORK")),
            ],
            kept: vec![(None, "a@b.ru")],
            problems: vec![(
                "EMAIL",
                ProblemKind::WrongType,
                "value \"a@b.ru\" is listed twice in this lead: stored once",
            )],
        },
        Case {
            name: "values differing only in case, format or value type are different values",
            contacts: vec![
                contact(None, "EMAIL", "a@b.ru", Some("WORK")),
                contact(None, "EMAIL", "A@B.RU", Some("WORK")),
                contact(None, "EMAIL", "a@b.ru", Some("HOME")),
                contact(None, "PHONE", "+7 900 000-00-00", None),
                contact(None, "PHONE", "+79000000000", None),
                contact(None, "PHONE", "8 (900) 000-00-00", None),
                contact(None, "WEB", "a@b.ru", Some("WORK")),
            ],
            kept: vec![
                (None, "a@b.ru"),
                (None, "A@B.RU"),
                (None, "a@b.ru"),
                (None, "+7 900 000-00-00"),
                (None, "+79000000000"),
                (None, "8 (900) 000-00-00"),
                (None, "a@b.ru"),
            ],
            problems: vec![],
        },
        Case {
            name: "an over-long value is cut, and the cut values are compared",
            contacts: vec![
                contact(None, "PHONE", &format!("{}1", "9".repeat(2000)), None),
                contact(None, "PHONE", &format!("{}2", "9".repeat(2000)), None),
            ],
            kept: vec![(None, Box::leak("9".repeat(2000).into_boxed_str()))],
            problems: vec![
                ("PHONE", ProblemKind::Truncated, "value VALUE: 2,001 characters; the column holds 2,000: stored the first 2,000"),
                ("PHONE", ProblemKind::Truncated, "value VALUE: 2,001 characters; the column holds 2,000: stored the first 2,000"),
                ("PHONE", ProblemKind::WrongType, "value \"999999999999999999999999999999999999999999999999999999999999\"… is listed twice in this lead: stored once"),
            ],
        },
    ];
    for c in cases {
        let mut r = record(4, "x");
        r.contacts = c.contacts;
        let b = prepare(Batch {
            entity: crate::schema::LEAD,
            records: vec![r],
            rejected: vec![],
        });
        let r = &b.batch().records[0];
        let kept: Vec<_> = r
            .contacts
            .iter()
            .map(|c| {
                (
                    c.contact_id.as_deref(),
                    c.value.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(kept, c.kept, "{}", c.name);
        assert!(
            r.contacts.iter().all(|c| c.lead_id == 4),
            "{}: the record's ID",
            c.name
        );
        assert_eq!(details(r), c.problems, "{}", c.name);
    }
}

#[test]
fn phones_follow_the_contact_values_kept() {
    let mut r = record(4, "x");
    r.contacts = vec![
        contact(Some("5"), "PHONE", "+7 1", None),
        contact(Some("5"), "PHONE", "+7 2", None),
    ];
    r.phones = vec![
        phone(Some("5"), "+7 1"),
        phone(Some("5"), "+7 2"),
        phone(Some("5"), "+7 1"),
    ];
    let b = prepare(Batch {
        entity: crate::schema::LEAD,
        records: vec![r],
        rejected: vec![],
    });
    let r = &b.batch().records[0];
    let phones: Vec<_> = r
        .phones
        .iter()
        .map(|p| (p.lead_id, p.value.as_str()))
        .collect();
    assert_eq!(phones, [(4, "+7 1")]);
}

#[test]
fn values_are_fitted_to_their_columns_and_each_cut_is_reported() {
    struct Case {
        name: &'static str,
        field: &'static str,
        cell: Cell,
        stored: Cell,
        problem: Option<(ProblemKind, &'static str)>,
    }
    let cases = vec![
        Case {
            name: "TITLE one over",
            field: "TITLE",
            cell: Cell::Text("я".repeat(4001)),
            stored: Cell::Text("я".repeat(4000)),
            problem: Some((ProblemKind::Truncated, "4,001 characters; the column holds 4,000: stored the first 4,000")),
        },
        Case {
            name: "TITLE of emoji exactly 4,000 units",
            field: "TITLE",
            cell: Cell::Text("😀".repeat(2000)),
            stored: Cell::Text("😀".repeat(2000)),
            problem: None,
        },
        Case {
            name: "TITLE of emoji one unit over: no half character",
            field: "TITLE",
            cell: Cell::Text(format!("a{}", "😀".repeat(2000))),
            stored: Cell::Text(format!("a{}", "😀".repeat(1999))),
            problem: Some((ProblemKind::Truncated, "4,001 characters; the column holds 4,000: stored the first 3,999")),
        },
        Case {
            name: "NAME over its 3,000",
            field: "NAME",
            cell: Cell::Text("n".repeat(5120)),
            stored: Cell::Text("n".repeat(3000)),
            problem: Some((ProblemKind::Truncated, "5,120 characters; the column holds 3,000: stored the first 3,000")),
        },
        Case {
            name: "COMMENTS (ntext) is never cut",
            field: "COMMENTS",
            cell: Cell::Text("c".repeat(100_000)),
            stored: Cell::Text("c".repeat(100_000)),
            problem: None,
        },
        Case {
            name: "BIRTHDATE before datetime's range",
            field: "BIRTHDATE",
            cell: Cell::DateTime(at(1700, 1, 1)),
            stored: Cell::Null,
            problem: Some((ProblemKind::Unparseable, "1700-01-01 00:00:00 is before 1753-01-01, the earliest date SQL Server's datetime holds: stored NULL")),
        },
        Case {
            name: "DATE_CREATE on the first day datetime holds",
            field: "DATE_CREATE",
            cell: Cell::DateTime(at(1753, 1, 1)),
            stored: Cell::DateTime(at(1753, 1, 1)),
            problem: None,
        },
        Case {
            name: "DATE_MODIFY after datetime's range",
            field: "DATE_MODIFY",
            cell: Cell::DateTime(at(9999, 12, 31) + chrono::Duration::milliseconds(86_399_999)),
            stored: Cell::Null,
            problem: Some((ProblemKind::Unparseable, "9999-12-31 23:59:59.999 is after 9999-12-31, the latest date SQL Server's datetime holds: stored NULL")),
        },
        Case {
            name: "a date in a text column (a transform bug)",
            field: "TITLE",
            cell: Cell::DateTime(at(2020, 1, 1)),
            stored: Cell::Null,
            problem: Some((ProblemKind::WrongType, "a date in a column of type nvarchar(4000) (a bug in b24sync's transform): stored NULL")),
        },
    ];
    for c in cases {
        let mut r = record(11, "t");
        r.lead.cells[idx(c.field)] = c.cell;
        let b = prepare(Batch {
            entity: crate::schema::LEAD,
            records: vec![r],
            rejected: vec![],
        });
        let r = &b.batch().records[0];
        assert_eq!(r.lead.cells[idx(c.field)], c.stored, "{}", c.name);
        let got: Vec<_> = details(r)
            .into_iter()
            .map(|(f, k, d)| (f, k, d.to_string()))
            .collect();
        let want: Vec<_> = c
            .problem
            .iter()
            .map(|(k, d)| (c.field, *k, d.to_string()))
            .collect();
        assert_eq!(got, want, "{}", c.name);
        // Each adjustment is in the lead's error row, under its ID.
        let rows = b.error_rows();
        assert_eq!(rows.len(), want.len(), "{}", c.name);
        if let Some(row) = rows.first() {
            assert_eq!(row.lead_id.as_deref(), Some("11"));
            assert!(row
                .reason
                .starts_with(&format!("loaded with changes: {}: ", c.field)));
        }
    }
}

#[test]
fn over_long_contact_phone_and_solution_values_are_cut() {
    let mut r = record(3, "x");
    let long = "9".repeat(2001);
    r.contacts = vec![contact(Some("1"), "PHONE", &long, Some(&"W".repeat(2001)))];
    r.phones = vec![phone(Some("1"), &long)];
    r.solution = Some("s".repeat(2500));
    let b = prepare(Batch {
        entity: crate::schema::LEAD,
        records: vec![r],
        rejected: vec![],
    });
    let r = &b.batch().records[0];
    assert_eq!(r.contacts[0].value.as_deref(), Some(&long[..2000]));
    assert_eq!(
        r.contacts[0].value_type.as_ref().map(String::len),
        Some(2000)
    );
    assert_eq!(r.phones.len(), 1, "the phone follows its cut value");
    assert_eq!(r.phones[0].value, long[..2000]);
    assert_eq!(r.solution.as_ref().map(String::len), Some(2000));
    assert_eq!(
        details(r),
        [
            ("PHONE", ProblemKind::Truncated, "value (ID 1) VALUE: 2,001 characters; the column holds 2,000: stored the first 2,000"),
            ("PHONE", ProblemKind::Truncated, "value (ID 1) VALUE_TYPE: 2,001 characters; the column holds 2,000: stored the first 2,000"),
            ("solution", ProblemKind::Truncated, "2,500 characters; the column holds 2,000: stored the first 2,000"),
        ]
    );
    let rows = b.error_rows();
    assert_eq!(rows.len(), 1);
    assert!(rows[0]
        .reason
        .contains("PHONE: value (ID 1) VALUE: 2,001 characters"));
}

#[test]
fn error_rows_once_each_the_later_copy_wins() {
    let long_id = "1".repeat(3000);
    struct Case {
        name: &'static str,
        rejected: Vec<RejectedLead>,
        want: Vec<(Option<String>, &'static str)>,
    }
    let cases = vec![
        Case {
            name: "the same lead twice: one row, the later JSON",
            rejected: vec![
                rejected(Some("5"), "no ID", "{}"),
                rejected(Some("5"), "no ID", "{\"a\":1}"),
            ],
            want: vec![(Some("5".into()), "{\"a\":1}")],
        },
        Case {
            name: "without an ID, told apart by the JSON",
            rejected: vec![
                rejected(None, "no ID", "{}"),
                rejected(None, "no ID", "{\"b\":2}"),
                rejected(None, "no ID", "{}"),
            ],
            want: vec![(None, "{\"b\":2}"), (None, "{}")],
        },
        Case {
            name: "different reasons are different rows",
            rejected: vec![
                rejected(Some("abc"), "ID \"abc\" is not a whole number", "{}"),
                rejected(Some("abc"), "ID is empty", "{}"),
            ],
            want: vec![(Some("abc".into()), "{}"), (Some("abc".into()), "{}")],
        },
        Case {
            name: "an ID longer than the index holds is cut, and compared cut",
            rejected: vec![
                rejected(Some(&format!("{long_id}2")), "too large", "{\"x\":1}"),
                rejected(Some(&format!("{long_id}3")), "too large", "{\"x\":2}"),
            ],
            want: vec![(Some("1".repeat(schema::ERROR_ID_CHARS)), "{\"x\":2}")],
        },
    ];
    for c in cases {
        let b = prepare(Batch {
            entity: crate::schema::LEAD,
            records: vec![],
            rejected: c.rejected,
        });
        let got: Vec<_> = b
            .error_rows()
            .into_iter()
            .map(|e| (e.lead_id, e.lead_json))
            .collect();
        let want: Vec<_> = c
            .want
            .into_iter()
            .map(|(i, j)| (i, j.to_string()))
            .collect();
        assert_eq!(got, want, "{}", c.name);
    }
    // A long reason is cut to sql_error, saying so.
    let b = prepare(Batch {
        entity: crate::schema::LEAD,
        records: vec![],
        rejected: vec![rejected(Some("1"), &"r".repeat(5000), "{}")],
    });
    let reason = &b.batch().rejected[0].reason;
    assert_eq!(
        crate::model::utf16_len(reason),
        crate::model::SMALL_TEXT_CHARS
    );
    assert!(reason.ends_with("(cut)"));
}

#[test]
fn a_row_that_cannot_be_fitted_is_not_loaded_and_says_why() {
    let mut r = record(12, "x");
    r.lead.cells.pop();
    let b = prepare(Batch {
        entity: crate::schema::LEAD,
        records: vec![r, record(13, "ok")],
        rejected: vec![],
    });
    let ids: Vec<_> = b.batch().records.iter().map(|r| r.lead.id).collect();
    assert_eq!(ids, [13]);
    let rows = b.error_rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].lead_id.as_deref(), Some("12"));
    assert_eq!(
        rows[0].reason,
        "not loaded: the lead row has 32 values, bitrix_leads has 33 data columns besides \
         sql_ID (a bug in b24sync's transform)"
    );
}

#[test]
fn preparing_twice_changes_nothing() {
    let mut awkward = record(1, &"я".repeat(4001));
    awkward.lead.cells[idx("BIRTHDATE")] = Cell::DateTime(at(1600, 1, 1));
    awkward.contacts = vec![
        contact(Some("1"), "PHONE", "+7 1", None),
        contact(Some("1"), "PHONE", "+7 2", None),
        contact(None, "EMAIL", "a@b.ru", None),
        contact(None, "EMAIL", "a@b.ru", None),
    ];
    let once = prepare(Batch {
        entity: crate::schema::LEAD,
        records: vec![record(1, "old"), awkward, record(2, "two")],
        rejected: vec![
            rejected(Some("x"), "bad", "{}"),
            rejected(Some("x"), "bad", "{\"later\":1}"),
        ],
    });
    let twice = prepare(once.clone().into_batch());
    assert_eq!(once, twice);
}

#[test]
fn every_size_prepare_enforces_comes_from_the_description() {
    let s = &*fit::SIZES;
    for (what, size) in [
        ("contact ID", s.contact_id),
        ("value type", s.value_type),
        ("value", s.value),
        ("type", s.type_id),
        ("solution", s.solution),
        ("phone contact ID", s.phone_contact_id),
        ("phone value", s.phone_value),
        ("e164", s.e164),
        ("extension", s.extension),
        ("digits_rev", s.digits_rev),
        ("phone reason", s.phone_reason),
    ] {
        assert!(size.is_some(), "{what} is sized in the schema description");
    }
    assert_eq!(s.value, Some(crate::model::SMALL_TEXT_CHARS));
    assert_eq!(s.e164, Some(16));
}

#[test]
fn the_awkward_batch_both_backends_load() {
    // The backends' tests load this batch and compare their tables with `expected_rows`;
    // here, what those rows are.
    let b = prepare(fixtures::awkward_batch());
    let (leads, contacts, errors) = fixtures::expected_rows(&b);
    assert_eq!(
        leads,
        [
            (7, Some("я".repeat(4000)), None),
            (8, Some("eight".to_string()), None)
        ]
    );
    assert_eq!(
        contacts,
        [
            (
                7,
                Some("1".to_string()),
                Some("+7 900 000-00-01".to_string())
            ),
            (
                7,
                Some("2".to_string()),
                Some("+7 900 000-00-03".to_string())
            ),
        ]
    );
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].0.as_deref(), Some("7"));
    assert_eq!(
        errors[0].1,
        "loaded with changes: BIRTHDATE: 1700-01-01 00:00:00 is before 1753-01-01, the earliest \
         date SQL Server's datetime holds: stored NULL; TITLE: 4,001 characters; the column \
         holds 4,000: stored the first 4,000; PHONE: value (ID 1) is listed again in this lead: \
         kept the first, skipped \"+7 900 000-00-02\""
    );
    assert_eq!(errors[1].0.as_deref(), Some("abc"));
    assert_eq!(
        errors[1].2, "{\"ID\":\"abc\",\"later\":1}",
        "the later JSON"
    );
}

// The two tests below are the SQL Server staging tests (load/mssql/stage.rs) whose rules
// moved here, with their assertions as they were.

#[test]
fn the_later_copy_of_a_lead_wins() {
    let mut second = record(7, "Lead 7");
    second.solution = Some("later".into());
    let b = prepare(Batch {
        entity: crate::schema::LEAD,
        records: vec![record(7, "Lead 7"), record(8, "Lead 8"), second],
        rejected: vec![],
    })
    .into_batch();
    let ids: Vec<_> = b.records.iter().map(|r| r.lead.id).collect();
    assert_eq!(ids, vec![8, 7]);
    assert_eq!(b.records[1].solution.as_deref(), Some("later"));
}

#[test]
fn error_rows_are_unique_and_fit_the_table() {
    let rej = |id: Option<&str>, json: &str| rejected(id, "no ID", json);
    let long_id = "1".repeat(3000);
    let b = prepare(Batch {
        entity: crate::schema::LEAD,
        records: vec![],
        rejected: vec![
            rej(Some("5"), "{}"),
            rej(Some("5"), "{\"a\":1}"),
            rej(None, "{}"),
            rej(None, "{\"b\":2}"),
            rej(Some(&long_id), "{}"),
        ],
    });
    let rows = b.error_rows();
    assert_eq!(rows.len(), 4);
    // Cut to what the index on sql_ID can hold (migration 0007), not the column's 2,000.
    assert_eq!(
        rows[3].lead_id.as_ref().map(|s| s.len()),
        Some(schema::ERROR_ID_CHARS)
    );
}

/// Was `oversized_values_and_old_dates_become_error_rows` in load/mssql/stage.rs, where SQL
/// Server refused such leads ("not loaded: ...") while SQLite stored them whole. Now both
/// load them cut or NULL, reported, as the transform does with what it reads: the same input,
/// the one rule.
#[test]
fn oversized_values_and_old_dates_become_error_rows() {
    let mut long_title = record(1, "x");
    long_title.lead.cells[idx("TITLE")] = Cell::Text("я".repeat(4001));
    let mut old = record(2, "x");
    old.lead.cells[idx("BIRTHDATE")] = Cell::DateTime(at(1700, 1, 1));
    let mut long_phone = record(3, "x");
    long_phone
        .contacts
        .push(contact(Some("1"), "PHONE", &"9".repeat(2001), Some("WORK")));
    let mut fine = record(4, "x");
    fine.lead.cells[idx("TITLE")] = Cell::Text("😀".repeat(2000)); // 4,000 units
    let b = prepare(Batch {
        entity: crate::schema::LEAD,
        records: vec![long_title, old, long_phone, fine],
        rejected: vec![],
    });
    assert_eq!(b.batch().records.len(), 4, "all loaded");
    assert!(b.batch().rejected.is_empty());
    let rows = b.error_rows();
    assert_eq!(rows.len(), 3);
    assert!(
        rows[0]
            .reason
            .contains("TITLE: 4,001 characters; the column holds 4,000"),
        "{}",
        rows[0].reason
    );
    assert!(rows[1].reason.contains("BIRTHDATE"));
    assert!(rows[2].reason.contains("PHONE: value (ID 1) VALUE"));
    assert_eq!(rows[0].lead_id.as_deref(), Some("1"));
}
