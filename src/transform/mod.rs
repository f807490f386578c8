//! The transform stage: pure functions from one raw Bitrix24 record (JSON: a lead, a
//! contact, a company) to rows; the entity's description says which fields are columns.
//!
//! No I/O here. Column sizes and the `datetime` range come from [`crate::schema`]; the
//! batch's duplicates are resolved after this, by [`crate::prepare`]. Each kind of value has its own file:
//! `text` (nvarchar/ntext cells and problem wording), `dates` (datetime/date cells and the
//! [`TimePolicy`]), `contacts` (PHONE/EMAIL/WEB/IM rows), `solution` (the list field and its
//! labels). Nothing here rejects a lead except a missing or unusable ID.

pub mod caller;
mod contacts;
mod dates;
pub mod phone;
pub mod phones;
mod solution;
mod text;

use std::collections::HashMap;

use serde_json::Value;

use crate::model::{
    truncate_utf16, Batch, Cell, ColumnKind, Entity, LeadId, LeadRecord, LeadRow, Problem,
    RejectedLead, LEAD, SMALL_TEXT_CHARS,
};

pub use dates::{apply_policy, parse_datetime, ParsedDateTime};
pub use solution::{is_list_field, solution_labels_from_fields, solution_labels_from_userfield};

/// Which wall clock the `datetime` columns hold. Bitrix24 sends `2024-05-01T12:34:56+03:00`;
/// the Oktell columns have no offset, so one must be chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum TimePolicy {
    /// The portal's own wall-clock time, the offset dropped (what Oktell reports expect).
    Portal,
    /// Converted to UTC.
    Utc,
    /// Converted to a named zone (`Europe/Moscow`).
    Zone(chrono_tz::Tz),
}

impl std::str::FromStr for TimePolicy {
    type Err = String;
    /// `portal`, `utc`, or an IANA zone name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portal" => Ok(TimePolicy::Portal),
            "utc" | "z" => Ok(TimePolicy::Utc),
            _ => s.trim().parse::<chrono_tz::Tz>().map(TimePolicy::Zone).map_err(|_| {
                format!("unknown time zone {s:?}: use \"portal\", \"utc\" or an IANA name such as \"Europe/Moscow\"")
            }),
        }
    }
}

/// What the transform needs besides the lead itself.
#[derive(Debug, Clone)]
pub struct TransformContext {
    pub time_policy: TimePolicy,
    /// The list-type user field read into `bitrix_lead_solution` (`UF_CRM_...`), if any.
    pub solution_field: Option<String>,
    /// The solution field's list: item ID (as text) → display name.
    pub solution_labels: HashMap<String, String>,
    /// How PHONE values written without a country code are read (`--phone-region`).
    pub phone_region: phone::DefaultRegion,
}

/// The result of transforming one lead.
#[derive(Debug, Clone, PartialEq)]
pub enum Transformed {
    Record(LeadRecord),
    Rejected(RejectedLead),
}

/// Turn one lead, as received from `crm.lead.list`, into rows.
pub fn transform_lead(raw: &Value, ctx: &TransformContext) -> Transformed {
    transform_record(LEAD, raw, ctx)
}

/// Turn one record of `entity`, as received from its list method (`crm.contact.list`),
/// into rows: its cells follow `entity.fields`.
///
/// Only a record without a usable ID is rejected; any other field that cannot be stored as
/// received is stored as NULL or cut, and named in the record's `problems`. The solution
/// field is read for the lead only.
pub fn transform_record(entity: Entity, raw: &Value, ctx: &TransformContext) -> Transformed {
    let raw_json = raw.to_string();
    let Value::Object(lead) = raw else {
        return Transformed::Rejected(RejectedLead {
            lead_id: None,
            reason: format!(
                "the {} is {}, not a JSON object; it cannot be keyed in {}.sql_ID",
                entity.name,
                text::describe(raw),
                entity.table
            ),
            raw_json,
        });
    };
    let id = match lead_id(entity, lead.get(entity.id_field)) {
        Ok(id) => id,
        Err((lead_id, reason)) => {
            return Transformed::Rejected(RejectedLead {
                lead_id,
                reason,
                raw_json,
            });
        }
    };

    let mut problems: Vec<Problem> = Vec::new();
    let cells = entity
        .fields
        .iter()
        .map(|col| {
            let v = lead.get(col.field);
            let cell = match col.kind {
                ColumnKind::Text { max_chars } => {
                    text::text_cell(v, Some(max_chars), col.field, &mut problems).map(Cell::Text)
                }
                ColumnKind::LongText => {
                    text::text_cell(v, None, col.field, &mut problems).map(Cell::Text)
                }
                ColumnKind::DateTime => {
                    dates::datetime_cell(v, &ctx.time_policy, col.field, &mut problems)
                        .map(Cell::DateTime)
                }
                ColumnKind::Date => {
                    dates::date_cell(v, col.field, &mut problems).map(Cell::DateTime)
                }
            };
            cell.unwrap_or(Cell::Null)
        })
        .collect();
    let contacts = contacts::contacts(lead, id, &mut problems);
    let phones = phones::phone_rows(&contacts, &ctx.phone_region);
    let solution = ctx
        .solution_field
        .as_deref()
        .filter(|_| entity.solution_table.is_some())
        .and_then(|field| solution::solution(lead, field, &ctx.solution_labels, &mut problems));

    Transformed::Record(LeadRecord {
        lead: LeadRow { id, cells },
        contacts,
        phones,
        solution,
        problems,
        raw_json,
    })
}

/// Why an ID cannot key `sql_ID` (`int`), with the ID as received (as text).
type IdError = (Option<String>, String);

/// The record's key: a positive whole number that fits SQL Server's `int`, sent as a string
/// of digits (legacy API) or a JSON number (`crm.item.*`).
fn lead_id(entity: Entity, v: Option<&Value>) -> Result<LeadId, IdError> {
    let keyed = format!(
        "the {} cannot be keyed in {}.sql_ID",
        entity.name, entity.table
    );
    let keyed = keyed.as_str();
    let v = match v {
        None => return Err((None, format!("the {} has no ID; {keyed}", entity.name))),
        Some(Value::Null) => return Err((None, format!("ID is null; {keyed}"))),
        Some(v) => v,
    };
    let as_text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let shown = text::quote(&as_text);
    let received = Some(truncate_utf16(&as_text, SMALL_TEXT_CHARS).to_string());
    let fail = |why: String| Err((received.clone(), format!("ID {shown} {why}; {keyed}")));
    let too_large = || {
        fail(format!(
            "is too large for an int (at most {})",
            text::thousands(LeadId::MAX as usize)
        ))
    };
    let not_positive = || fail("is not a positive number".to_string());

    match v {
        Value::String(s) => {
            let t = s.trim();
            let (negative, digits) = match t.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, t.strip_prefix('+').unwrap_or(t)),
            };
            if t.is_empty() {
                return Err((received.clone(), format!("ID is empty; {keyed}")));
            }
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return fail("is not a whole number".to_string());
            }
            let significant = digits.trim_start_matches('0');
            if significant.is_empty() || negative {
                return not_positive();
            }
            // More than 10 digits cannot fit; fewer parse into u64 without overflow.
            match significant.parse::<u64>() {
                Ok(n) if significant.len() <= 10 => match LeadId::try_from(n) {
                    Ok(id) => Ok(id),
                    Err(_) => too_large(),
                },
                _ => too_large(),
            }
        }
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if i <= 0 {
                    return not_positive();
                }
                return LeadId::try_from(i).or_else(|_| too_large());
            }
            if n.as_u64().is_some() {
                return too_large();
            }
            // A float: accepted only when whole (`5.0`), which some JSON writers produce.
            match n.as_f64() {
                Some(f) if f.is_finite() && f.fract() == 0.0 => {
                    if f <= 0.0 {
                        not_positive()
                    } else if f > f64::from(LeadId::MAX) {
                        too_large()
                    } else {
                        Ok(f as LeadId)
                    }
                }
                _ => fail("is not a whole number".to_string()),
            }
        }
        other => Err((
            received.clone(),
            format!("ID is {}, not a number; {keyed}", text::describe(other)),
        )),
    }
}

/// Transform one page of `entity`'s records, in their order. Pages can overlap when rows
/// shift during paging, so a record may come twice: `prepare::prepare` keeps its later copy.
pub fn transform_page(entity: Entity, records: &[Value], ctx: &TransformContext) -> Batch {
    let mut batch = Batch::of(entity);
    for lead in records {
        match transform_record(entity, lead, ctx) {
            Transformed::Record(rec) => batch.records.push(rec),
            Transformed::Rejected(rej) => batch.rejected.push(rej),
        }
    }
    batch
}

#[cfg(test)]
mod tests;
