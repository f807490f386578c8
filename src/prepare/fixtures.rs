//! Rows for tests of `prepare` and of the backends' staging.

use crate::model::{Cell, LeadRecord, LeadRow, LEAD_COLUMNS};
use crate::schema::lead_column_index;

/// A lead with only its TITLE set, no contact values, no problems.
pub(crate) fn lead(id: i32, title: &str) -> LeadRecord {
    let mut cells = vec![Cell::Null; LEAD_COLUMNS.len()];
    if let Some(i) = lead_column_index("TITLE") {
        cells[i] = Cell::Text(title.to_string());
    }
    LeadRecord {
        lead: LeadRow { id, cells },
        contacts: vec![],
        phones: vec![],
        solution: None,
        problems: vec![],
        raw_json: format!("{{\"ID\":\"{id}\"}}"),
    }
}

/// An awkward batch: the same lead three times with different data, an over-long TITLE, a
/// date before `datetime`'s range, contact values listed twice, a rejected lead twice.
pub(crate) fn awkward_batch() -> crate::model::Batch {
    use crate::model::{ContactRow, RejectedLead};
    use chrono::NaiveDate;
    let phone = |id: &str, value: &str| ContactRow {
        lead_id: 7,
        contact_id: Some(id.to_string()),
        value_type: Some("WORK".into()),
        value: Some(value.to_string()),
        type_id: "PHONE".into(),
    };
    let mut third = lead(7, &"я".repeat(4001));
    if let Some(i) = lead_column_index("BIRTHDATE") {
        third.lead.cells[i] = NaiveDate::from_ymd_opt(1700, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(Cell::Null, Cell::DateTime);
    }
    third.contacts = vec![
        phone("1", "+7 900 000-00-01"),
        phone("1", "+7 900 000-00-02"),
        phone("2", "+7 900 000-00-03"),
    ];
    let rejected = |json: &str| RejectedLead {
        lead_id: Some("abc".into()),
        reason: "ID \"abc\" is not a whole number; the lead cannot be keyed in bitrix_leads.sql_ID"
            .into(),
        raw_json: json.to_string(),
    };
    crate::model::Batch {
        entity: crate::schema::LEAD,
        records: vec![lead(7, "first"), lead(8, "eight"), lead(7, "second"), third],
        rejected: vec![
            rejected("{\"ID\":\"abc\"}"),
            rejected("{\"ID\":\"abc\",\"later\":1}"),
        ],
    }
}

/// What a backend's tables should hold after loading `b`: (sql_ID, sql_TITLE, sql_BIRTHDATE)
/// per lead, (sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE) per contact value, (sql_ID, sql_error,
/// sql_full_lead_info) per error row; each sorted.
pub(crate) type ExpectedRows = (
    Vec<(i32, Option<String>, Option<String>)>,
    Vec<(i32, Option<String>, Option<String>)>,
    Vec<(Option<String>, String, String)>,
);

pub(crate) fn expected_rows(b: &super::PreparedBatch) -> ExpectedRows {
    let cell = |r: &LeadRecord, f: &str| -> Option<String> {
        match lead_column_index(f).and_then(|i| r.lead.cells.get(i)) {
            Some(Cell::Text(s)) => Some(s.clone()),
            Some(Cell::DateTime(d)) => Some(d.format("%Y-%m-%d %H:%M:%S").to_string()),
            _ => None,
        }
    };
    let mut leads: Vec<_> = b
        .batch()
        .records
        .iter()
        .map(|r| (r.lead.id, cell(r, "TITLE"), cell(r, "BIRTHDATE")))
        .collect();
    let mut contacts: Vec<_> = b
        .batch()
        .records
        .iter()
        .flat_map(|r| {
            r.contacts
                .iter()
                .map(|c| (r.lead.id, c.contact_id.clone(), c.value.clone()))
        })
        .collect();
    let mut errors: Vec<_> = b
        .error_rows()
        .into_iter()
        .map(|e| (e.lead_id, e.reason, e.lead_json))
        .collect();
    leads.sort();
    contacts.sort();
    errors.sort();
    (leads, contacts, errors)
}
