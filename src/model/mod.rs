//! The typed rows that flow between the pipeline's stages.
//!
//! `extract` yields raw lead JSON; `transform` turns each lead into a [`LeadRecord`]
//! (or a [`RejectedLead`] when it cannot be keyed at all); `load` writes [`Batch`]es of
//! them. Column names, kinds and sizes live in [`crate::schema`] (re-exported here).

pub mod caller;
pub mod oauth;

use chrono::NaiveDateTime;

// The table descriptions live in `schema`; the names the rest of the crate imports from
// here stay valid.
pub use crate::schema::{
    lead_column_index, truncate_utf16, utf16_len, ColumnKind, LeadColumn, CONTACT_TYPES,
    LEAD_COLUMNS, LEAD_ID_FIELD, LEAD_TEXT_CHARS, LEAD_TITLE_CHARS, SMALL_TEXT_CHARS,
};
pub use crate::schema::{Entity, COMPANY, CONTACT, LEAD};

/// A Bitrix24 lead ID as stored in `bitrix_leads.sql_ID` (`int NOT NULL`).
pub type LeadId = i32;

/// A lead ID received as text (`sql_ID` of an error row, a rejected lead's ID) read as a
/// Bitrix24 lead ID: a positive number, else `None` (such a lead cannot be asked for again).
pub fn parse_lead_id(text: &str) -> Option<LeadId> {
    text.trim().parse::<LeadId>().ok().filter(|id| *id > 0)
}

/// One value of a `bitrix_leads` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Text(String),
    /// A `datetime` value (for [`ColumnKind::Date`], midnight of that date).
    DateTime(NaiveDateTime),
}

impl Cell {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_datetime(&self) -> Option<NaiveDateTime> {
        match self {
            Cell::DateTime(d) => Some(*d),
            _ => None,
        }
    }
}

/// One `bitrix_leads` row: `sql_ID` plus the cells of [`LEAD_COLUMNS`], in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadRow {
    pub id: LeadId,
    pub cells: Vec<Cell>,
}

impl LeadRow {
    /// The cell of a Bitrix24 field (`"TITLE"`), if the field is a contract column.
    pub fn get(&self, field: &str) -> Option<&Cell> {
        lead_column_index(field).and_then(|i| self.cells.get(i))
    }
}

/// One `bitrix_lead_contacts` row: a single PHONE/EMAIL/WEB/IM value of a lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRow {
    pub lead_id: LeadId,
    /// The multi-field value's own Bitrix24 ID (`sql_CONTACT_ID`).
    pub contact_id: Option<String>,
    /// WORK, MOBILE, HOME, ... (`sql_VALUE_TYPE`).
    pub value_type: Option<String>,
    /// The value exactly as typed in Bitrix24 (`sql_VALUE`).
    pub value: Option<String>,
    /// PHONE, EMAIL, WEB or IM (`sql_TYPE_ID`).
    pub type_id: String,
}

/// One `b24sync_lead_phones` row: a PHONE value of a lead with its normalised form, kept
/// next to (never instead of) the `bitrix_lead_contacts` row holding the value as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneRow {
    pub lead_id: LeadId,
    /// The multi-field value's Bitrix24 ID, as in `bitrix_lead_contacts.sql_CONTACT_ID`.
    pub contact_id: Option<String>,
    /// The value exactly as typed.
    pub value: String,
    /// E.164 (`+79123456789`) when the value is a phone number; `None` when it is not.
    pub e164: Option<String>,
    /// The extension written after the number ("доб. 12" → "12").
    pub extension: Option<String>,
    /// The number's last [`PHONE_TAIL_DIGITS`] digits, last digit first, for the "last N
    /// digits" fallback match as an index prefix search (any N up to that many). From the
    /// E.164 form when there is one, else from the digits as written; `None` without digits.
    pub digits_rev: Option<String>,
    /// Why the value is not a phone number (`None` when it is).
    pub reason: Option<String>,
}

/// How many trailing digits `b24sync_lead_phones.digits_rev` keeps: E.164's 15, so the
/// fallback can match on any tail length a telephony system uses.
pub const PHONE_TAIL_DIGITS: usize = 15;

/// A Bitrix24 user that leads are assigned to (`ASSIGNED_BY_ID`): a `b24sync_operators` row.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Operator {
    /// The Bitrix24 user ID, as in `bitrix_leads.sql_ASSIGNED_BY_ID`.
    pub user_id: String,
    pub name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// The internal phone extension (`UF_PHONE_INNER`).
    pub phone_inner: Option<String>,
    pub active: Option<bool>,
    /// Whether the details above come from `user.get`. `false`: only the ID is known (no
    /// `user` scope, or the user was not returned), and stored details are left as they are.
    pub details: bool,
}

/// Something about one field of a lead that could not be stored as received.
/// The lead is still loaded; each problem becomes part of its `bitrix_import_lead_error` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The Bitrix24 field (`TITLE`, `PHONE`, `UF_CRM_...`).
    pub field: String,
    pub kind: ProblemKind,
    /// What a DBA needs to know, e.g. "5,120 characters; the column holds 4,000: stored the first 4,000".
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Longer than its column: stored cut to the column size.
    Truncated,
    /// Not a valid date/number/...: stored as NULL.
    Unparseable,
    /// A JSON type the field cannot hold (an object where text was expected): stored as NULL.
    WrongType,
    /// A list value whose display name is unknown: stored as its ID.
    UnknownListValue,
    /// The lead could not be read again whole: `sql_full_lead_info` holds the exported
    /// fields only.
    Incomplete,
}

/// A lead turned into rows, ready to load.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRecord {
    pub lead: LeadRow,
    pub contacts: Vec<ContactRow>,
    /// The PHONE values of `contacts`, normalised (`b24sync_lead_phones`).
    pub phones: Vec<PhoneRow>,
    /// `bitrix_lead_solution.sql_solution`: display names of the selected list values,
    /// joined with ", " (None when nothing is selected or no solution field is configured).
    pub solution: Option<String>,
    pub problems: Vec<Problem>,
    /// The lead as received (JSON), for `bitrix_import_lead_error.sql_full_lead_info`.
    pub raw_json: String,
}

/// A lead that cannot be loaded at all (no usable ID): it goes to the error table whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLead {
    /// The ID as received, as text, when there was one.
    pub lead_id: Option<String>,
    pub reason: String,
    pub raw_json: String,
}

/// One `bitrix_import_lead_error` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRow {
    pub lead_id: Option<String>,
    /// `sql_error`: at most [`SMALL_TEXT_CHARS`] characters.
    pub reason: String,
    pub lead_json: String,
}

/// What the load stage writes in one transaction: records of one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Whose records these are: the lead's (the default), a contact's, a company's. A
    /// record's cells follow `entity.fields`; its tables are the entity's.
    pub entity: Entity,
    pub records: Vec<LeadRecord>,
    pub rejected: Vec<RejectedLead>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::of(LEAD)
    }
}

impl Batch {
    /// An empty batch of `entity`'s records.
    pub fn of(entity: Entity) -> Self {
        Batch {
            entity,
            records: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// The cell of a Bitrix24 field (`"ASSIGNED_BY_ID"`) of one of the batch's records.
    pub fn cell<'a>(&self, record: &'a LeadRecord, field: &str) -> Option<&'a Cell> {
        self.entity
            .field_index(field)
            .and_then(|i| record.lead.cells.get(i))
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.rejected.is_empty()
    }

    /// Leads in the batch, loadable or not.
    pub fn len(&self) -> usize {
        self.records.len() + self.rejected.len()
    }

    /// The error rows this batch should leave in `bitrix_import_lead_error`:
    /// one per rejected lead and one per loaded lead that had problems.
    pub fn error_rows(&self) -> Vec<ErrorRow> {
        let rejected = self.rejected.iter().map(|r| ErrorRow {
            lead_id: r.lead_id.clone(),
            reason: clip_reason(&r.reason),
            lead_json: r.raw_json.clone(),
        });
        let partial = self
            .records
            .iter()
            .filter(|r| !r.problems.is_empty())
            .map(|r| ErrorRow {
                lead_id: Some(r.lead.id.to_string()),
                reason: problems_reason(&r.problems),
                lead_json: r.raw_json.clone(),
            });
        rejected.chain(partial).collect()
    }
}

/// One line a DBA can read: "loaded with changes: TITLE: ...; BIRTHDATE: ...".
pub fn problems_reason(problems: &[Problem]) -> String {
    let parts: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.detail))
        .collect();
    clip_reason(&format!("loaded with changes: {}", parts.join("; ")))
}

/// Cut a reason to the size of `sql_error`, saying that it was cut.
pub fn clip_reason(reason: &str) -> String {
    if utf16_len(reason) <= SMALL_TEXT_CHARS {
        return reason.to_string();
    }
    const MORE: &str = " …(cut)";
    let mut out = truncate_utf16(reason, SMALL_TEXT_CHARS - utf16_len(MORE)).to_string();
    out.push_str(MORE);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_cut_to_the_column_and_say_so() {
        let long = "x".repeat(5000);
        let clipped = clip_reason(&long);
        assert_eq!(utf16_len(&clipped), SMALL_TEXT_CHARS);
        assert!(clipped.ends_with("(cut)"));
    }
}
