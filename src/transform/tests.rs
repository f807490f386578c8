//! Whole-lead tests: the rules of each kind of field live next to their code.

use chrono::NaiveDateTime;
use serde_json::{json, Value};

use super::*;
use crate::model::{ContactRow, ProblemKind};
use crate::schema::{LEAD, LEAD_COLUMNS};

fn ctx() -> TransformContext {
    TransformContext {
        time_policy: TimePolicy::Portal,
        solution_field: Some("UF_CRM_SOLUTION".to_string()),
        solution_labels: [("55", "Ремонт"), ("57", "Консультация")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        phone_region: Default::default(),
    }
}

fn record(raw: &Value, ctx: &TransformContext) -> LeadRecord {
    match transform_lead(raw, ctx) {
        Transformed::Record(r) => r,
        Transformed::Rejected(r) => panic!("rejected: {}", r.reason),
    }
}

fn rejected(raw: &Value) -> RejectedLead {
    match transform_lead(raw, &ctx()) {
        Transformed::Rejected(r) => r,
        Transformed::Record(r) => panic!("accepted as {}", r.lead.id),
    }
}

fn text<'a>(r: &'a LeadRecord, field: &str) -> Option<&'a str> {
    r.lead.get(field).and_then(Cell::as_text)
}

fn when(r: &LeadRecord, field: &str) -> Option<String> {
    r.lead
        .get(field)
        .and_then(Cell::as_datetime)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn a_lead() -> Value {
    json!({
        "ID": "4217",
        "TITLE": "Заявка с сайта 🚀",
        "NAME": "Иван",
        "SECOND_NAME": "",
        "LAST_NAME": null,
        "COMPANY_TITLE": "ООО \"Ромашка\"",
        "ADDRESS": "C:\\путь\\",
        "COMMENTS": "  строка 1\nстрока 2  ",
        "OPPORTUNITY": "15000.00",
        "CURRENCY_ID": "RUB",
        "OPENED": "Y",
        "STATUS_ID": "NEW",
        "ASSIGNED_BY_ID": "1",
        "COMPANY_ID": "0",
        "BIRTHDATE": "1990-03-15T03:00:00+03:00",
        "DATE_CREATE": "2024-05-01T12:34:56+03:00",
        "DATE_MODIFY": "2024-05-02T09:00:00+03:00",
        "DATE_CLOSED": "",
        "UTM_SOURCE": "ignored: not a contract column",
        "PHONE": [{"ID": "11", "VALUE_TYPE": "WORK", "VALUE": "+7 900 000-00-00", "TYPE_ID": "PHONE"}],
        "EMAIL": [{"ID": "12", "VALUE_TYPE": "HOME", "VALUE": "ivan@пример.рф", "TYPE_ID": "EMAIL"}],
        "UF_CRM_SOLUTION": ["57", "55"],
    })
}

#[test]
fn a_typical_lead_becomes_rows() {
    let raw = a_lead();
    let r = record(&raw, &ctx());
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.lead.id, 4217);
    assert_eq!(r.lead.cells.len(), LEAD_COLUMNS.len());
    assert_eq!(text(&r, "TITLE"), Some("Заявка с сайта 🚀"));
    assert_eq!(text(&r, "NAME"), Some("Иван"));
    assert_eq!(r.lead.get("SECOND_NAME"), Some(&Cell::Null), "\"\" is NULL");
    assert_eq!(r.lead.get("LAST_NAME"), Some(&Cell::Null));
    assert_eq!(r.lead.get("POST"), Some(&Cell::Null), "absent is NULL");
    assert_eq!(text(&r, "COMPANY_TITLE"), Some("ООО \"Ромашка\""));
    assert_eq!(text(&r, "ADDRESS"), Some("C:\\путь\\"));
    assert_eq!(text(&r, "COMMENTS"), Some("  строка 1\nстрока 2  "));
    assert_eq!(text(&r, "OPPORTUNITY"), Some("15000.00"));
    assert_eq!(text(&r, "COMPANY_ID"), Some("0"));
    assert_eq!(
        when(&r, "BIRTHDATE").as_deref(),
        Some("1990-03-15 00:00:00")
    );
    assert_eq!(
        when(&r, "DATE_CREATE").as_deref(),
        Some("2024-05-01 12:34:56")
    );
    assert_eq!(
        when(&r, "DATE_MODIFY").as_deref(),
        Some("2024-05-02 09:00:00")
    );
    assert_eq!(r.lead.get("DATE_CLOSED"), Some(&Cell::Null));
    assert_eq!(
        r.contacts,
        vec![
            ContactRow {
                lead_id: 4217,
                contact_id: Some("11".into()),
                value_type: Some("WORK".into()),
                value: Some("+7 900 000-00-00".into()),
                type_id: "PHONE".into(),
            },
            ContactRow {
                lead_id: 4217,
                contact_id: Some("12".into()),
                value_type: Some("HOME".into()),
                value: Some("ivan@пример.рф".into()),
                type_id: "EMAIL".into(),
            },
        ]
    );
    assert_eq!(r.solution.as_deref(), Some("Консультация, Ремонт"));
    // The lead as received, key order kept.
    assert_eq!(r.raw_json, serde_json::to_string(&raw).unwrap());
    assert!(r.raw_json.starts_with("{\"ID\":\"4217\",\"TITLE\":"));
}

#[test]
fn cells_follow_the_contract_order() {
    let mut raw = json!({"ID": 1});
    for (i, col) in LEAD_COLUMNS.iter().enumerate() {
        if matches!(col.kind, ColumnKind::Text { .. } | ColumnKind::LongText) {
            raw[col.field] = json!(format!("v{i}"));
        }
    }
    let r = record(&raw, &ctx());
    for (i, (col, cell)) in LEAD_COLUMNS.iter().zip(&r.lead.cells).enumerate() {
        match col.kind {
            ColumnKind::Text { .. } | ColumnKind::LongText => {
                assert_eq!(cell, &Cell::Text(format!("v{i}")), "{}", col.field)
            }
            _ => assert_eq!(cell, &Cell::Null, "{}", col.field),
        }
    }
}

#[test]
fn text_length_limits() {
    struct Case {
        name: &'static str,
        field: &'static str,
        value: String,
        stored_len: usize,
        detail: Option<&'static str>,
    }
    let cases = vec![
        Case {
            name: "TITLE of 4,000 fits",
            field: "TITLE",
            value: "я".repeat(4000),
            stored_len: 4000,
            detail: None,
        },
        Case {
            name: "TITLE of 4,001 is cut to 4,000",
            field: "TITLE",
            value: "я".repeat(4001),
            stored_len: 4000,
            detail: Some("4,001 characters; the column holds 4,000: stored the first 4,000"),
        },
        Case {
            name: "an emoji counts 2: 3,999 + 😀 is cut to 3,999",
            field: "TITLE",
            value: format!("{}😀", "a".repeat(3999)),
            stored_len: 3999,
            detail: Some("4,001 characters; the column holds 4,000: stored the first 3,999"),
        },
        Case {
            name: "NAME is nvarchar(3000)",
            field: "NAME",
            value: "x".repeat(5123),
            stored_len: 3000,
            detail: Some("5,123 characters; the column holds 3,000: stored the first 3,000"),
        },
        Case {
            name: "COMMENTS (ntext) is never cut",
            field: "COMMENTS",
            value: "ю".repeat(100_000),
            stored_len: 100_000,
            detail: None,
        },
    ];
    for c in cases {
        let raw = json!({"ID": "1", c.field: c.value});
        let r = record(&raw, &ctx());
        let stored = text(&r, c.field).unwrap();
        assert_eq!(crate::model::utf16_len(stored), c.stored_len, "{}", c.name);
        assert!(c.value.starts_with(stored), "{}", c.name);
        let got: Vec<_> = r
            .problems
            .iter()
            .map(|p| (p.field.as_str(), p.kind, p.detail.as_str()))
            .collect();
        let want: Vec<_> = c
            .detail
            .into_iter()
            .map(|d| (c.field, ProblemKind::Truncated, d))
            .collect();
        assert_eq!(got, want, "{}", c.name);
    }
}

#[test]
fn numbers_are_kept_as_their_text() {
    let raw = json!({"ID": 5, "OPPORTUNITY": 15000, "ASSIGNED_BY_ID": 1, "CONTACT_ID": 15000.5});
    let r = record(&raw, &ctx());
    assert_eq!(text(&r, "OPPORTUNITY"), Some("15000"));
    assert_eq!(text(&r, "ASSIGNED_BY_ID"), Some("1"));
    assert_eq!(text(&r, "CONTACT_ID"), Some("15000.5"));
    assert!(r.problems.is_empty());
}

#[test]
fn a_bad_field_leaves_the_rest_of_the_lead_intact() {
    let mut raw = a_lead();
    raw["TITLE"] = json!({"ru": "Заявка"});
    raw["OPENED"] = json!(true);
    raw["DATE_MODIFY"] = json!("31.02.2020");
    let r = record(&raw, &ctx());
    assert_eq!(r.lead.get("TITLE"), Some(&Cell::Null));
    assert_eq!(r.lead.get("OPENED"), Some(&Cell::Null));
    assert_eq!(r.lead.get("DATE_MODIFY"), Some(&Cell::Null));
    let got: Vec<_> = r
        .problems
        .iter()
        .map(|p| (p.field.as_str(), p.kind, p.detail.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "DATE_MODIFY",
                ProblemKind::Unparseable,
                "\"31.02.2020\" is not a date-time (expected YYYY-MM-DDThh:mm:ss+hh:mm)"
            ),
            (
                "OPENED",
                ProblemKind::WrongType,
                "expected text, got a boolean (true)"
            ),
            (
                "TITLE",
                ProblemKind::WrongType,
                "expected text, got an object"
            ),
        ]
    );
    // Everything else is as in the clean lead.
    let clean = record(&a_lead(), &ctx());
    for (i, col) in LEAD_COLUMNS.iter().enumerate() {
        if !["TITLE", "OPENED", "DATE_MODIFY"].contains(&col.field) {
            assert_eq!(r.lead.cells[i], clean.lead.cells[i], "{}", col.field);
        }
    }
    assert_eq!(r.contacts, clean.contacts);
    assert_eq!(r.solution, clean.solution);
    assert_eq!(
        crate::model::problems_reason(&r.problems),
        "loaded with changes: DATE_MODIFY: \"31.02.2020\" is not a date-time (expected \
         YYYY-MM-DDThh:mm:ss+hh:mm); OPENED: expected text, got a boolean (true); TITLE: expected \
         text, got an object"
    );
}

#[test]
fn date_columns_follow_the_time_policy_but_birthdate_does_not() {
    let raw = json!({
        "ID": "1",
        "DATE_CREATE": "2024-05-01T23:30:00+03:00",
        "DATE_MODIFY": "2024-05-01T12:00:00Z",
        "DATE_CLOSED": "2020-02-30T10:00:00+03:00",
        "BIRTHDATE": "2001-11-11T00:00:00+03:00",
    });
    let cases = [
        ("portal", "2024-05-01 23:30:00", "2024-05-01 12:00:00"),
        ("utc", "2024-05-01 20:30:00", "2024-05-01 12:00:00"),
        (
            "Asia/Yekaterinburg",
            "2024-05-02 01:30:00",
            "2024-05-01 17:00:00",
        ),
    ];
    for (policy, create, modify) in cases {
        let ctx = TransformContext {
            time_policy: policy.parse().unwrap(),
            ..ctx()
        };
        let r = record(&raw, &ctx);
        assert_eq!(when(&r, "DATE_CREATE").as_deref(), Some(create), "{policy}");
        assert_eq!(when(&r, "DATE_MODIFY").as_deref(), Some(modify), "{policy}");
        assert_eq!(
            when(&r, "BIRTHDATE").as_deref(),
            Some("2001-11-11 00:00:00"),
            "{policy}"
        );
        assert_eq!(r.lead.get("DATE_CLOSED"), Some(&Cell::Null));
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].field, "DATE_CLOSED");
    }
}

#[test]
fn ids() {
    let ok: Vec<(Value, LeadId)> = vec![
        (json!("4217"), 4217),
        (json!(4217), 4217),
        (json!("007"), 7),
        (json!(" 12 "), 12),
        (json!(12.0), 12),
        (json!("2147483647"), i32::MAX),
        (json!(2147483647), i32::MAX),
    ];
    for (id, want) in ok {
        let r = record(&json!({"ID": id.clone()}), &ctx());
        assert_eq!(r.lead.id, want, "{id}");
        assert!(r.problems.is_empty());
    }

    const K: &str = "the lead cannot be keyed in bitrix_leads.sql_ID";
    let bad: Vec<(Value, Option<&str>, String)> = vec![
        (json!({"TITLE": "x"}), None, format!("the lead has no ID; {K}")),
        (json!({"ID": null}), None, format!("ID is null; {K}")),
        (json!({"ID": ""}), Some(""), format!("ID is empty; {K}")),
        (json!({"ID": "abc"}), Some("abc"), format!("ID \"abc\" is not a whole number; {K}")),
        (json!({"ID": "12a"}), Some("12a"), format!("ID \"12a\" is not a whole number; {K}")),
        (json!({"ID": "1 2"}), Some("1 2"), format!("ID \"1 2\" is not a whole number; {K}")),
        (json!({"ID": "١٢"}), Some("١٢"), format!("ID \"١٢\" is not a whole number; {K}")),
        (json!({"ID": 1.5}), Some("1.5"), format!("ID \"1.5\" is not a whole number; {K}")),
        (json!({"ID": "0"}), Some("0"), format!("ID \"0\" is not a positive number; {K}")),
        (json!({"ID": 0}), Some("0"), format!("ID \"0\" is not a positive number; {K}")),
        (json!({"ID": "-5"}), Some("-5"), format!("ID \"-5\" is not a positive number; {K}")),
        (json!({"ID": -5}), Some("-5"), format!("ID \"-5\" is not a positive number; {K}")),
        (
            json!({"ID": "3000000000"}),
            Some("3000000000"),
            format!("ID \"3000000000\" is too large for an int (at most 2,147,483,647); {K}"),
        ),
        (
            json!({"ID": 3000000000_u64}),
            Some("3000000000"),
            format!("ID \"3000000000\" is too large for an int (at most 2,147,483,647); {K}"),
        ),
        (
            json!({"ID": u64::MAX}),
            Some("18446744073709551615"),
            format!("ID \"18446744073709551615\" is too large for an int (at most 2,147,483,647); {K}"),
        ),
        (
            json!({"ID": "123456789012345678901234567890"}),
            Some("123456789012345678901234567890"),
            format!("ID \"123456789012345678901234567890\" is too large for an int (at most 2,147,483,647); {K}"),
        ),
        (json!({"ID": true}), Some("true"), format!("ID is a boolean (true), not a number; {K}")),
        (json!({"ID": ["5"]}), Some("[\"5\"]"), format!("ID is an array, not a number; {K}")),
    ];
    for (raw, lead_id, reason) in bad {
        let r = rejected(&raw);
        assert_eq!(r.lead_id.as_deref(), lead_id, "{raw}");
        assert_eq!(r.reason, reason, "{raw}");
        assert_eq!(r.raw_json, raw.to_string());
    }
}

#[test]
fn leads_that_are_not_objects_are_rejected() {
    for (raw, what) in [
        (json!("4217"), "a string"),
        (json!([{"ID": "1"}]), "an array"),
        (json!(null), "null"),
        (json!(5), "a number (5)"),
    ] {
        let r = rejected(&raw);
        assert_eq!(r.lead_id, None);
        assert_eq!(
            r.reason,
            format!(
                "the lead is {what}, not a JSON object; it cannot be keyed in bitrix_leads.sql_ID"
            )
        );
        assert_eq!(r.raw_json, raw.to_string());
    }
}

#[test]
fn solution_configuration() {
    let raw = json!({"ID": "1", "UF_CRM_SOLUTION": ["55"], "UF_CRM_OTHER": ["1"]});
    let none = TransformContext {
        solution_field: None,
        ..ctx()
    };
    assert_eq!(record(&raw, &none).solution, None);
    assert_eq!(record(&raw, &ctx()).solution.as_deref(), Some("Ремонт"));
    let other = TransformContext {
        solution_field: Some("UF_CRM_MISSING".into()),
        ..ctx()
    };
    let r = record(&raw, &other);
    assert_eq!(r.solution, None);
    assert!(r.problems.is_empty());
    let unknown = record(
        &json!({"ID": "1", "UF_CRM_SOLUTION": "57"}),
        &TransformContext {
            solution_labels: HashMap::new(),
            ..ctx()
        },
    );
    assert_eq!(unknown.solution.as_deref(), Some("57"));
    assert_eq!(unknown.problems[0].field, "UF_CRM_SOLUTION");
    assert_eq!(unknown.problems[0].kind, ProblemKind::UnknownListValue);
}

#[test]
fn pages_keep_the_last_copy_of_a_lead() {
    let page = vec![
        json!({"ID": "1", "TITLE": "first copy"}),
        json!({"ID": "2", "TITLE": "two"}),
        json!({"ID": "abc"}),
        json!({"ID": 1, "TITLE": "second copy"}),
        json!({"ID": "3", "TITLE": "three"}),
        json!({"ID": "2", "TITLE": "two again"}),
    ];
    // The later copy of a lead wins, in `prepare` (the one place that resolves duplicates).
    let batch = crate::prepare::prepare(transform_page(LEAD, &page, &ctx())).into_batch();
    let got: Vec<_> = batch
        .records
        .iter()
        .map(|r| (r.lead.id, text(r, "TITLE").unwrap_or_default()))
        .collect();
    assert_eq!(
        got,
        vec![(1, "second copy"), (3, "three"), (2, "two again")]
    );
    assert_eq!(batch.rejected.len(), 1);
    assert_eq!(batch.rejected[0].lead_id.as_deref(), Some("abc"));
    assert!(transform_page(LEAD, &[], &ctx()).is_empty());
}

#[test]
fn problems_come_in_a_stable_order() {
    // Columns in contract order, then contacts, then the solution.
    let raw = json!({
        "ID": "1",
        "UF_CRM_SOLUTION": ["99"],
        "PHONE": "not a list",
        "TITLE": [],
        "ADDRESS": {},
    });
    let r = record(&raw, &ctx());
    let fields: Vec<_> = r.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, vec!["ADDRESS", "TITLE", "PHONE", "UF_CRM_SOLUTION"]);
}

#[test]
fn datetimes_are_naive_wall_clocks() {
    // The stored value carries no offset: what the loader writes into `datetime`.
    let r = record(
        &json!({"ID": "1", "DATE_CREATE": "2024-05-01T12:34:56.5+03:00"}),
        &ctx(),
    );
    let want =
        NaiveDateTime::parse_from_str("2024-05-01 12:34:56.5", "%Y-%m-%d %H:%M:%S%.f").unwrap();
    assert_eq!(r.lead.get("DATE_CREATE"), Some(&Cell::DateTime(want)));
}
