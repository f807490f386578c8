//! Turning a prepared [`Batch`] into staging rows: pure, so it is tested without a server.
//! Duplicates, sizes and ranges were settled by `prepare`; this only lays the rows out in the
//! staging tables' column order.

use std::borrow::Cow;

use chrono::NaiveDateTime;
use tiberius::{ColumnData, IntoSql, TokenRow};

use crate::model::{utf16_len, Batch, Cell, ColumnKind, ErrorRow};
use crate::prepare::FingerprintRow;

/// The longest string tiberius 0.12's bulk path can carry, even into `nvarchar(max)`: its
/// client-side check caps a value at 65,535 bytes (see docs/sql-server.md, "How a batch is written").
/// Longer values are staged as NULL and set by a parameterised UPDATE.
pub const BULK_MAX_UTF16: usize = 32_767;

/// Split a batch in two halves (records first, then rejected leads, as one list), for
/// isolating the lead the server rejects.
pub fn split(batch: Batch) -> (Batch, Batch) {
    let units = batch.records.len() + batch.rejected.len();
    let half = units / 2;
    let Batch {
        entity,
        mut records,
        mut rejected,
    } = batch;
    if half <= records.len() {
        let right_records = records.split_off(half);
        (
            Batch {
                entity,
                records,
                rejected: Vec::new(),
            },
            Batch {
                entity,
                records: right_records,
                rejected,
            },
        )
    } else {
        let right_rejected = rejected.split_off(half - records.len());
        (
            Batch {
                entity,
                records,
                rejected,
            },
            Batch {
                entity,
                records: Vec::new(),
                rejected: right_rejected,
            },
        )
    }
}

/// Number of leads (loaded or rejected) in a batch: what bisection splits.
pub fn units(batch: &Batch) -> usize {
    batch.records.len() + batch.rejected.len()
}

/// One batch's rows for the staging tables of its entity (`sql/mssql/stage_create.sql`),
/// borrowing the batch's strings.
pub struct Staged<'a> {
    /// The records' table (`#stage_leads`): sql_ID, the entity's fields, the solution (the
    /// lead only).
    pub records: Vec<TokenRow<'a>>,
    /// The multi-field values' table (`#stage_contacts` for the lead).
    pub multi: Vec<TokenRow<'a>>,
    pub errors: Vec<TokenRow<'a>>,
    /// Long-text values (`sql_COMMENTS`) staged as NULL for being too long for the bulk
    /// path: (the field's index in `Entity::fields`, sql_ID, text).
    pub long_text: Vec<(usize, i32, &'a str)>,
    /// The error table's JSON values (`sql_full_lead_info`) staged as NULL: (seq, text).
    pub long_error_json: Vec<(i32, &'a str)>,
}

pub fn build<'a>(batch: &'a Batch, errors: &'a [ErrorRow], now: NaiveDateTime) -> Staged<'a> {
    let mut staged = Staged {
        records: Vec::with_capacity(batch.records.len()),
        multi: Vec::new(),
        errors: Vec::with_capacity(errors.len()),
        long_text: Vec::new(),
        long_error_json: Vec::new(),
    };
    let fields = batch.entity.fields;
    let solution = batch.entity.solution_table.is_some();
    let mut seq: i32 = 0;
    for r in &batch.records {
        let mut row = TokenRow::with_capacity(fields.len() + 2);
        row.push(ColumnData::I32(Some(r.lead.id)));
        // One value per field, whatever the row holds: a missing cell is staged as NULL, so
        // the row always has the staging table's columns.
        for (i, col) in fields.iter().enumerate() {
            let cell = r.lead.cells.get(i).unwrap_or(&Cell::Null);
            let value = match (col.kind, cell) {
                (ColumnKind::DateTime | ColumnKind::Date, Cell::DateTime(d)) => d.into_sql(),
                (ColumnKind::DateTime | ColumnKind::Date, _) => ColumnData::DateTime2(None),
                (ColumnKind::LongText, Cell::Text(s)) if utf16_len(s) > BULK_MAX_UTF16 => {
                    staged.long_text.push((i, r.lead.id, s.as_str()));
                    ColumnData::String(None)
                }
                (_, Cell::Text(s)) => ColumnData::String(Some(Cow::Borrowed(s.as_str()))),
                (_, _) => ColumnData::String(None),
            };
            row.push(value);
        }
        if solution {
            row.push(text(r.solution.as_deref()));
        }
        staged.records.push(row);

        for c in &r.contacts {
            seq += 1;
            let mut row = TokenRow::with_capacity(6);
            row.push(ColumnData::I32(Some(seq)));
            // The record's own ID, whatever the contact row says: they must agree.
            row.push(ColumnData::I32(Some(r.lead.id)));
            row.push(text(c.contact_id.as_deref()));
            row.push(text(c.value_type.as_deref()));
            row.push(text(c.value.as_deref()));
            row.push(text(Some(c.type_id.as_str())));
            staged.multi.push(row);
        }
    }
    for (i, e) in errors.iter().enumerate() {
        let seq = i32::try_from(i + 1).unwrap_or(i32::MAX);
        let mut row = TokenRow::with_capacity(5);
        row.push(ColumnData::I32(Some(seq)));
        row.push(text(e.lead_id.as_deref()));
        row.push(text(Some(e.reason.as_str())));
        if utf16_len(&e.lead_json) > BULK_MAX_UTF16 {
            staged.long_error_json.push((seq, e.lead_json.as_str()));
            row.push(ColumnData::String(None));
        } else {
            row.push(text(Some(e.lead_json.as_str())));
        }
        row.push(now.into_sql());
        staged.errors.push(row);
    }
    staged
}

/// The rows of `#stage_fingerprints` (`sql/mssql/stage_create.sql`): lead ID, fingerprint
/// or NULL (see `fingerprints_sync.sql`), each lead once as `rows_for` gives them.
pub fn fingerprint_rows(rows: &[FingerprintRow]) -> Vec<TokenRow<'static>> {
    rows.iter()
        .map(|(id, fingerprint)| {
            let mut row = TokenRow::with_capacity(2);
            row.push(ColumnData::I32(Some(*id)));
            row.push(ColumnData::I64(*fingerprint));
            row
        })
        .collect()
}

fn text(s: Option<&str>) -> ColumnData<'_> {
    ColumnData::String(s.map(Cow::Borrowed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        lead_column_index, ContactRow, LeadRecord, LeadRow, Problem, ProblemKind, RejectedLead,
        LEAD_COLUMNS,
    };
    use crate::prepare::prepare;
    use crate::schema::{COMPANY, CONTACT};

    fn record(id: i32) -> LeadRecord {
        crate::prepare::fixtures::lead(id, &format!("Lead {id}"))
    }

    fn contact(lead: i32, id: &str, value: &str) -> ContactRow {
        ContactRow {
            lead_id: lead,
            contact_id: Some(id.to_string()),
            value_type: Some("WORK".into()),
            value: Some(value.into()),
            type_id: "PHONE".into(),
        }
    }

    #[test]
    fn split_halves_records_then_rejected() {
        let rej = |n: &str| RejectedLead {
            lead_id: Some(n.into()),
            reason: "x".into(),
            raw_json: "{}".into(),
        };
        let b = Batch {
            entity: crate::schema::LEAD,
            records: vec![record(1), record(2), record(3)],
            rejected: vec![rej("a"), rej("b")],
        };
        let (l, r) = split(b);
        assert_eq!((l.records.len(), l.rejected.len()), (2, 0));
        assert_eq!((r.records.len(), r.rejected.len()), (1, 2));
        let b = Batch {
            entity: crate::schema::LEAD,
            records: vec![record(1)],
            rejected: vec![rej("a"), rej("b"), rej("c")],
        };
        let (l, r) = split(b);
        assert_eq!((l.records.len(), l.rejected.len()), (1, 1));
        assert_eq!((r.records.len(), r.rejected.len()), (0, 2));
        assert_eq!(units(&l) + units(&r), 4);
    }

    #[test]
    fn long_values_are_left_for_the_update_path() {
        let mut r = record(5);
        let comments = "é".repeat(BULK_MAX_UTF16 + 1);
        r.lead.cells[lead_column_index("COMMENTS").unwrap()] = Cell::Text(comments.clone());
        r.raw_json = "x".repeat(100_000);
        r.problems.push(Problem {
            field: "TITLE".into(),
            kind: ProblemKind::Truncated,
            detail: "cut".into(),
        });
        let mut short = record(6);
        short.lead.cells[lead_column_index("COMMENTS").unwrap()] =
            Cell::Text("é".repeat(BULK_MAX_UTF16));
        let b = Batch {
            entity: crate::schema::LEAD,
            records: vec![r, short],
            rejected: vec![],
        };
        let b = prepare(b);
        let errors = b.error_rows();
        let b = b.into_batch();
        let staged = build(&b, &errors, NaiveDateTime::default());
        let comments_at = lead_column_index("COMMENTS").unwrap();
        assert_eq!(staged.long_text, vec![(comments_at, 5, comments.as_str())]);
        assert_eq!(staged.long_error_json.len(), 1);
        assert_eq!(staged.long_error_json[0].0, 1);
        let comments_col = 1 + lead_column_index("COMMENTS").unwrap();
        assert_eq!(
            staged.records[0].get(comments_col),
            Some(&ColumnData::String(None))
        );
        assert!(matches!(
            staged.records[1].get(comments_col),
            Some(ColumnData::String(Some(_)))
        ));
        assert_eq!(staged.records[0].len(), 1 + LEAD_COLUMNS.len() + 1);
    }

    #[test]
    fn contacts_are_staged_once_each_under_their_record() {
        let mut r = record(9);
        r.contacts = vec![
            contact(9, "1", "+7 900"),
            contact(9, "1", "+7 900"),
            contact(9, "2", "+7 901"),
        ];
        let mut no_id = contact(9, "x", "a@b.c");
        no_id.contact_id = None;
        r.contacts.push(no_id.clone());
        r.contacts.push(no_id);
        // The duplicates are dropped by `prepare`; what it keeps is staged once each.
        let b = prepare(Batch {
            entity: crate::schema::LEAD,
            records: vec![r],
            rejected: vec![],
        })
        .into_batch();
        let staged = build(&b, &[], NaiveDateTime::default());
        assert_eq!(staged.multi.len(), 3);
        let seqs: Vec<_> = staged.multi.iter().map(|row| row.get(0).cloned()).collect();
        assert_eq!(
            seqs,
            vec![
                Some(ColumnData::I32(Some(1))),
                Some(ColumnData::I32(Some(2))),
                Some(ColumnData::I32(Some(3)))
            ]
        );
    }

    #[test]
    fn the_awkward_batch_is_staged_as_exactly_the_prepared_rows() {
        // The same batch and the same expectation as the embedded database's load test
        // (load/sqlite/batch.rs), so both backends get the same rows.
        let prepared = prepare(crate::prepare::fixtures::awkward_batch());
        let expected = crate::prepare::fixtures::expected_rows(&prepared);
        let errors = prepared.error_rows();
        let b = prepared.into_batch();
        let staged = build(&b, &errors, NaiveDateTime::default());
        let text = |row: &TokenRow<'_>, i: usize| match row.get(i) {
            Some(ColumnData::String(Some(s))) => Some(s.to_string()),
            _ => None,
        };
        let int = |row: &TokenRow<'_>, i: usize| match row.get(i) {
            Some(ColumnData::I32(Some(n))) => *n,
            other => panic!("{other:?}"),
        };
        let when = |row: &TokenRow<'_>, i: usize| match row.get(i) {
            // The batch holds no date that survives; a staged one would not match.
            Some(ColumnData::DateTime2(Some(_))) => Some("a date".to_string()),
            _ => None,
        };
        let (title, birthdate) = (
            1 + lead_column_index("TITLE").unwrap(),
            1 + lead_column_index("BIRTHDATE").unwrap(),
        );
        let mut leads: Vec<_> = staged
            .records
            .iter()
            .map(|r| (int(r, 0), text(r, title), when(r, birthdate)))
            .collect();
        let mut contacts: Vec<_> = staged
            .multi
            .iter()
            .map(|r| (int(r, 1), text(r, 2), text(r, 4)))
            .collect();
        let mut errors: Vec<_> = staged
            .errors
            .iter()
            .map(|r| (text(r, 1), text(r, 2).unwrap(), text(r, 3).unwrap()))
            .collect();
        leads.sort();
        contacts.sort();
        errors.sort();
        assert_eq!((leads, contacts, errors), expected);
    }

    #[test]
    fn a_contact_is_staged_with_its_own_fields_and_no_solution() {
        let name = CONTACT.field_index("NAME").unwrap();
        let comments = CONTACT.field_index("COMMENTS").unwrap();
        let mut cells = vec![Cell::Null; CONTACT.fields.len()];
        cells[name] = Cell::Text("Anna".into());
        cells[comments] = Cell::Text("x".repeat(BULK_MAX_UTF16 + 1));
        let contact_record = LeadRecord {
            lead: LeadRow { id: 31, cells },
            contacts: vec![contact(31, "7", "+7 900")],
            phones: vec![],
            solution: Some("ignored: a contact has no solution".into()),
            problems: vec![],
            raw_json: "{}".into(),
        };
        let b = prepare(Batch {
            entity: CONTACT,
            records: vec![contact_record],
            rejected: vec![],
        })
        .into_batch();
        let staged = build(&b, &[], NaiveDateTime::default());
        // sql_ID and one value per field: no solution column.
        assert_eq!(staged.records[0].len(), 1 + CONTACT.fields.len());
        assert_eq!(
            staged.records[0].get(1 + name),
            Some(&ColumnData::String(Some("Anna".into())))
        );
        assert_eq!(staged.long_text.len(), 1);
        assert_eq!(staged.long_text[0].0, comments);
        assert_eq!(staged.multi.len(), 1);
        assert_eq!(staged.multi[0].get(1), Some(&ColumnData::I32(Some(31))));
        // A company row too short for its fields (never made so by transform) is padded.
        let short = Batch {
            entity: COMPANY,
            records: vec![LeadRecord {
                lead: LeadRow {
                    id: 4,
                    cells: vec![],
                },
                ..record(4)
            }],
            rejected: vec![],
        };
        let staged = build(&short, &[], NaiveDateTime::default());
        assert_eq!(staged.records[0].len(), 1 + COMPANY.fields.len());
    }
}
