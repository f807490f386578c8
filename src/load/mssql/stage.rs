//! Turning a [`Batch`] into staging rows: pure, so it is tested without a server.
//!
//! Also decides, before anything is sent, which leads cannot be stored as they are (a value
//! longer than its Oktell column, a date outside `datetime`'s range): those go to the error
//! table with a clear reason instead of costing a failed transaction and a bisection.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};
use tiberius::{ColumnData, IntoSql, TokenRow};

use crate::model::{
    clip_reason, truncate_utf16, utf16_len, Batch, Cell, ColumnKind, ErrorRow, LeadRecord,
    RejectedLead, LEAD_COLUMNS, SMALL_TEXT_CHARS,
};

/// The longest string tiberius 0.12's bulk path can carry, even into `nvarchar(max)`: its
/// client-side check caps a value at 65,535 bytes (see docs/sql-server.md, "How a batch is written").
/// Longer values are staged as NULL and set by a parameterised UPDATE.
pub const BULK_MAX_UTF16: usize = 32_767;

/// The most of a lead ID b24sync writes into `bitrix_import_lead_error.sql_ID`: 800 UTF-16
/// units (1,600 bytes), under the 1,700-byte key limit of the index on it (migration 0007).
/// A real ID is a short number; only a malformed answer gives longer text, and its full
/// text stays in the row's lead JSON.
pub const ERROR_ID_CHARS: usize = 800;
// Two bytes per unit, plus the 4-byte clustered key a non-unique index row carries.
const _: () = assert!(ERROR_ID_CHARS * 2 + 4 <= 1700);

/// Dedupe and check a batch before staging it.
///
/// - The same lead twice in one batch: the later copy wins (it was read later), since the
///   staging table is keyed by `sql_ID`.
/// - A lead with a value its Oktell column cannot hold becomes a [`RejectedLead`] saying why.
pub fn prepare(batch: Batch) -> Batch {
    let Batch {
        records,
        mut rejected,
    } = batch;
    let mut last: HashMap<i32, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        last.insert(r.lead.id, i);
    }
    let mut kept = Vec::with_capacity(last.len());
    for (i, r) in records.into_iter().enumerate() {
        if last.get(&r.lead.id) != Some(&i) {
            continue;
        }
        match check_record(&r) {
            Ok(()) => kept.push(r),
            Err(why) => rejected.push(RejectedLead {
                lead_id: Some(r.lead.id.to_string()),
                reason: clip_reason(&format!("not loaded: {why}")),
                raw_json: r.raw_json,
            }),
        }
    }
    Batch {
        records: kept,
        rejected,
    }
}

/// Why a record cannot be stored as it is, if it cannot.
pub fn check_record(r: &LeadRecord) -> Result<(), String> {
    if r.lead.cells.len() != LEAD_COLUMNS.len() {
        return Err(format!(
            "the lead row has {} values, the table {} columns (a bug in b24sync's transform)",
            r.lead.cells.len(),
            LEAD_COLUMNS.len()
        ));
    }
    for (col, cell) in LEAD_COLUMNS.iter().zip(&r.lead.cells) {
        match (col.kind, cell) {
            (_, Cell::Null) => {}
            (ColumnKind::Text { max_chars }, Cell::Text(s)) => fits(col.field, s, max_chars)?,
            (ColumnKind::LongText, Cell::Text(_)) => {}
            (ColumnKind::DateTime | ColumnKind::Date, Cell::DateTime(d)) => {
                in_datetime_range(col.field, *d)?
            }
            _ => {
                return Err(format!(
                    "{}: a {} value for a {:?} column (a bug in b24sync's transform)",
                    col.field,
                    if cell.as_text().is_some() {
                        "text"
                    } else {
                        "date"
                    },
                    col.kind
                ))
            }
        }
    }
    for c in &r.contacts {
        for (what, v) in [
            ("ID", &c.contact_id),
            ("VALUE_TYPE", &c.value_type),
            ("VALUE", &c.value),
        ] {
            if let Some(v) = v {
                fits(&format!("{} {what}", c.type_id), v, SMALL_TEXT_CHARS)?;
            }
        }
        fits("contact TYPE_ID", &c.type_id, SMALL_TEXT_CHARS)?;
    }
    if let Some(s) = &r.solution {
        fits("solution", s, SMALL_TEXT_CHARS)?;
    }
    Ok(())
}

fn fits(field: &str, s: &str, max: usize) -> Result<(), String> {
    let n = utf16_len(s);
    if n > max {
        return Err(format!("{field}: {n} characters; the column holds {max}"));
    }
    Ok(())
}

/// SQL Server's `datetime` holds 1753-01-01 to 9999-12-31.
fn in_datetime_range(field: &str, d: NaiveDateTime) -> Result<(), String> {
    let min = NaiveDate::from_ymd_opt(1753, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    match min {
        Some(min) if d < min => Err(format!(
            "{field}: {d} is before 1753-01-01, the first date a datetime column holds"
        )),
        _ => Ok(()),
    }
}

/// Split a batch in two halves (records first, then rejected leads, as one list), for
/// isolating the lead the server rejects.
pub fn split(batch: Batch) -> (Batch, Batch) {
    let units = batch.records.len() + batch.rejected.len();
    let half = units / 2;
    let Batch {
        mut records,
        mut rejected,
    } = batch;
    if half <= records.len() {
        let right_records = records.split_off(half);
        (
            Batch {
                records,
                rejected: Vec::new(),
            },
            Batch {
                records: right_records,
                rejected,
            },
        )
    } else {
        let right_rejected = rejected.split_off(half - records.len());
        (
            Batch { records, rejected },
            Batch {
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

/// One batch's rows for the three staging tables, borrowing the batch's strings.
pub struct Staged<'a> {
    pub leads: Vec<TokenRow<'a>>,
    pub contacts: Vec<TokenRow<'a>>,
    pub errors: Vec<TokenRow<'a>>,
    /// `sql_COMMENTS` values staged as NULL for being too long for the bulk path: (sql_ID, text).
    pub long_comments: Vec<(i32, &'a str)>,
    /// `sql_full_lead_info` values staged as NULL: (seq, text).
    pub long_error_json: Vec<(i32, &'a str)>,
}

/// The error rows a batch leaves (see [`Batch::error_rows`]), each once, fitted to the table.
pub fn error_rows(batch: &Batch) -> Vec<ErrorRow> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for mut e in batch.error_rows() {
        e.lead_id = e
            .lead_id
            .map(|id| truncate_utf16(&id, ERROR_ID_CHARS).to_string());
        e.reason = clip_reason(&e.reason);
        // Rows without an ID are told apart by their JSON too, as upsert_batch.sql does.
        let key = (
            e.lead_id.clone(),
            e.reason.clone(),
            if e.lead_id.is_none() {
                Some(e.lead_json.clone())
            } else {
                None
            },
        );
        if seen.insert(key) {
            out.push(e);
        }
    }
    out
}

pub fn build<'a>(batch: &'a Batch, errors: &'a [ErrorRow], now: NaiveDateTime) -> Staged<'a> {
    let mut staged = Staged {
        leads: Vec::with_capacity(batch.records.len()),
        contacts: Vec::new(),
        errors: Vec::with_capacity(errors.len()),
        long_comments: Vec::new(),
        long_error_json: Vec::new(),
    };
    let mut seq: i32 = 0;
    for r in &batch.records {
        let mut row = TokenRow::with_capacity(LEAD_COLUMNS.len() + 2);
        row.push(ColumnData::I32(Some(r.lead.id)));
        for (col, cell) in LEAD_COLUMNS.iter().zip(&r.lead.cells) {
            let value = match (col.kind, cell) {
                (ColumnKind::DateTime | ColumnKind::Date, Cell::DateTime(d)) => d.into_sql(),
                (ColumnKind::DateTime | ColumnKind::Date, _) => ColumnData::DateTime2(None),
                (ColumnKind::LongText, Cell::Text(s)) if utf16_len(s) > BULK_MAX_UTF16 => {
                    staged.long_comments.push((r.lead.id, s.as_str()));
                    ColumnData::String(None)
                }
                (_, Cell::Text(s)) => ColumnData::String(Some(Cow::Borrowed(s.as_str()))),
                (_, _) => ColumnData::String(None),
            };
            row.push(value);
        }
        row.push(text(r.solution.as_deref()));
        staged.leads.push(row);

        let mut seen = HashSet::new();
        for c in &r.contacts {
            // A value listed twice would be inserted twice and then deduplicated by the next
            // run: stage each once, so a re-run changes nothing.
            let key = match &c.contact_id {
                Some(id) => (Some(id.as_str()), None),
                None => (
                    None,
                    Some((
                        c.type_id.as_str(),
                        c.value_type.as_deref(),
                        c.value.as_deref(),
                    )),
                ),
            };
            if !seen.insert(key) {
                continue;
            }
            seq += 1;
            let mut row = TokenRow::with_capacity(6);
            row.push(ColumnData::I32(Some(seq)));
            // The record's own ID, whatever the contact row says: they must agree.
            row.push(ColumnData::I32(Some(r.lead.id)));
            row.push(text(c.contact_id.as_deref()));
            row.push(text(c.value_type.as_deref()));
            row.push(text(c.value.as_deref()));
            row.push(text(Some(c.type_id.as_str())));
            staged.contacts.push(row);
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

fn text(s: Option<&str>) -> ColumnData<'_> {
    ColumnData::String(s.map(Cow::Borrowed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{lead_column_index, ContactRow, LeadRow, Problem, ProblemKind};

    fn record(id: i32) -> LeadRecord {
        let mut cells = vec![Cell::Null; LEAD_COLUMNS.len()];
        cells[lead_column_index("TITLE").unwrap()] = Cell::Text(format!("Lead {id}"));
        LeadRecord {
            lead: LeadRow { id, cells },
            contacts: vec![],
            phones: vec![],
            solution: None,
            problems: vec![],
            raw_json: format!("{{\"ID\":\"{id}\"}}"),
        }
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
    fn the_later_copy_of_a_lead_wins() {
        let mut second = record(7);
        second.solution = Some("later".into());
        let b = prepare(Batch {
            records: vec![record(7), record(8), second],
            rejected: vec![],
        });
        let ids: Vec<_> = b.records.iter().map(|r| r.lead.id).collect();
        assert_eq!(ids, vec![8, 7]);
        assert_eq!(b.records[1].solution.as_deref(), Some("later"));
    }

    #[test]
    fn oversized_values_and_old_dates_become_error_rows() {
        let mut long_title = record(1);
        long_title.lead.cells[lead_column_index("TITLE").unwrap()] = Cell::Text("я".repeat(4001));
        let mut old = record(2);
        old.lead.cells[lead_column_index("BIRTHDATE").unwrap()] = Cell::DateTime(
            NaiveDate::from_ymd_opt(1700, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        );
        let mut long_phone = record(3);
        long_phone.contacts.push(contact(3, "1", &"9".repeat(2001)));
        let mut fine = record(4);
        fine.lead.cells[lead_column_index("TITLE").unwrap()] = Cell::Text("😀".repeat(2000)); // 4,000 units
        let b = prepare(Batch {
            records: vec![long_title, old, long_phone, fine],
            rejected: vec![],
        });
        assert_eq!(b.records.len(), 1);
        assert_eq!(b.rejected.len(), 3);
        assert!(
            b.rejected[0]
                .reason
                .contains("TITLE: 4001 characters; the column holds 4000"),
            "{}",
            b.rejected[0].reason
        );
        assert!(b.rejected[1].reason.contains("BIRTHDATE"));
        assert!(b.rejected[2].reason.contains("PHONE VALUE"));
        assert_eq!(b.rejected[0].lead_id.as_deref(), Some("1"));
    }

    #[test]
    fn split_halves_records_then_rejected() {
        let rej = |n: &str| RejectedLead {
            lead_id: Some(n.into()),
            reason: "x".into(),
            raw_json: "{}".into(),
        };
        let b = Batch {
            records: vec![record(1), record(2), record(3)],
            rejected: vec![rej("a"), rej("b")],
        };
        let (l, r) = split(b);
        assert_eq!((l.records.len(), l.rejected.len()), (2, 0));
        assert_eq!((r.records.len(), r.rejected.len()), (1, 2));
        let b = Batch {
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
            records: vec![r, short],
            rejected: vec![],
        };
        let errors = error_rows(&b);
        let staged = build(&b, &errors, NaiveDateTime::default());
        assert_eq!(staged.long_comments, vec![(5, comments.as_str())]);
        assert_eq!(staged.long_error_json.len(), 1);
        assert_eq!(staged.long_error_json[0].0, 1);
        let comments_col = 1 + lead_column_index("COMMENTS").unwrap();
        assert_eq!(
            staged.leads[0].get(comments_col),
            Some(&ColumnData::String(None))
        );
        assert!(matches!(
            staged.leads[1].get(comments_col),
            Some(ColumnData::String(Some(_)))
        ));
        assert_eq!(staged.leads[0].len(), 1 + LEAD_COLUMNS.len() + 1);
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
        let b = Batch {
            records: vec![r],
            rejected: vec![],
        };
        let staged = build(&b, &[], NaiveDateTime::default());
        assert_eq!(staged.contacts.len(), 3);
        let seqs: Vec<_> = staged
            .contacts
            .iter()
            .map(|row| row.get(0).cloned())
            .collect();
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
    fn error_rows_are_unique_and_fit_the_table() {
        let rej = |id: Option<&str>, json: &str| RejectedLead {
            lead_id: id.map(str::to_string),
            reason: "no ID".into(),
            raw_json: json.into(),
        };
        let long_id = "1".repeat(3000);
        let b = Batch {
            records: vec![],
            rejected: vec![
                rej(Some("5"), "{}"),
                rej(Some("5"), "{\"a\":1}"),
                rej(None, "{}"),
                rej(None, "{\"b\":2}"),
                rej(Some(&long_id), "{}"),
            ],
        };
        let rows = error_rows(&b);
        assert_eq!(rows.len(), 4);
        // Cut to what the index on sql_ID can hold (migration 0007), not the column's 2,000.
        assert_eq!(
            rows[3].lead_id.as_ref().map(|s| s.len()),
            Some(ERROR_ID_CHARS)
        );
    }
}
