//! Fitting one lead's rows to their tables: sizes and ranges from [`crate::schema`], each
//! adjustment a [`Problem`] of the lead (and so part of its error row).

use std::sync::LazyLock;

use crate::model::{
    clip_reason, Cell, ContactRow, LeadRecord, PhoneRow, Problem, ProblemKind, RejectedLead,
};
use crate::schema::{self, limits, ColumnKind, Entity, LEAD};

/// The sizes of the columns a lead's rows go to, read once from the description. A column
/// the description does not size is not cut (a test checks that every one of these is).
/// Every entity's multi-field and phone tables have the lead's sizes (`schema`'s tests
/// check it), so these hold for contacts and companies too.
pub(super) struct Sizes {
    pub contact_id: Option<usize>,
    pub value_type: Option<usize>,
    pub value: Option<usize>,
    pub type_id: Option<usize>,
    pub solution: Option<usize>,
    pub phone_contact_id: Option<usize>,
    pub phone_value: Option<usize>,
    pub e164: Option<usize>,
    pub extension: Option<usize>,
    pub digits_rev: Option<usize>,
    pub phone_reason: Option<usize>,
}

pub(super) static SIZES: LazyLock<Sizes> = LazyLock::new(|| {
    let size = |table: &str, column: &str| schema::table(table).and_then(|t| t.max_chars(column));
    let contacts = |c: &str| size(LEAD.multi_table, c);
    let phones = |c: &str| size(LEAD.phones_table, c);
    Sizes {
        contact_id: contacts("sql_CONTACT_ID"),
        value_type: contacts("sql_VALUE_TYPE"),
        value: contacts("sql_VALUE"),
        type_id: contacts("sql_TYPE_ID"),
        solution: size("bitrix_lead_solution", "sql_solution"),
        phone_contact_id: phones("contact_id"),
        phone_value: phones("value"),
        e164: phones("e164"),
        extension: phones("extension"),
        digits_rev: phones("digits_rev"),
        phone_reason: phones("reason"),
    }
});

/// The record fitted to its tables, or (a transform bug) the lead as an error row only.
pub(super) fn record(entity: &Entity, mut r: LeadRecord) -> Result<LeadRecord, RejectedLead> {
    if r.lead.cells.len() != entity.fields.len() {
        return Err(RejectedLead {
            lead_id: Some(r.lead.id.to_string()),
            reason: clip_reason(&format!(
                "not loaded: the {} row has {} values, {} has {} data columns besides sql_ID \
                 (a bug in b24sync's transform)",
                entity.name,
                r.lead.cells.len(),
                entity.table,
                entity.fields.len()
            )),
            raw_json: r.raw_json,
        });
    }
    let mut problems = Vec::new();
    cells(entity, &mut r, &mut problems);
    contacts(&mut r, &mut problems);
    if let (Some(s), Some(max)) = (r.solution.as_mut(), SIZES.solution) {
        fit(s, max, "solution", String::new, &mut problems);
    }
    phones(&mut r, &mut problems);
    r.problems.extend(problems);
    Ok(r)
}

fn problem(problems: &mut Vec<Problem>, field: &str, kind: ProblemKind, detail: String) {
    problems.push(Problem {
        field: field.to_string(),
        kind,
        detail,
    });
}

/// Cut `s` to `max` units, saying so (`what` says which value of the field was cut; it is
/// only written when something is cut: most values fit, and a full re-sync prepares every
/// lead, so the common case allocates nothing).
fn fit(
    s: &mut String,
    max: usize,
    field: &str,
    what: impl FnOnce() -> String,
    problems: &mut Vec<Problem>,
) {
    if let Some(cut) = limits::cut(s, max) {
        problem(
            problems,
            field,
            ProblemKind::Truncated,
            format!("{}{}", what(), cut.describe()),
        );
        *s = cut.kept;
    }
}

fn fit_opt(
    s: &mut Option<String>,
    max: Option<usize>,
    field: &str,
    what: impl FnOnce() -> String,
    p: &mut Vec<Problem>,
) {
    if let (Some(s), Some(max)) = (s.as_mut(), max) {
        fit(s, max, field, what, p);
    }
}

fn cells(entity: &Entity, r: &mut LeadRecord, problems: &mut Vec<Problem>) {
    for (col, cell) in entity.fields.iter().zip(r.lead.cells.iter_mut()) {
        match (col.kind, &mut *cell) {
            (_, Cell::Null) | (ColumnKind::LongText, Cell::Text(_)) => {}
            (ColumnKind::Text { max_chars }, Cell::Text(s)) => {
                fit(s, max_chars, col.field, String::new, problems)
            }
            (ColumnKind::DateTime | ColumnKind::Date, Cell::DateTime(d)) => {
                if let Err(why) = limits::datetime_range(Some(*d)) {
                    let detail = format!("{}: stored NULL", why.describe(&d.to_string()));
                    problem(problems, col.field, ProblemKind::Unparseable, detail);
                    *cell = Cell::Null;
                }
            }
            (kind, other) => {
                let got = if other.as_text().is_some() {
                    "text"
                } else {
                    "a date"
                };
                let detail = format!(
                    "{got} in a column of type {} (a bug in b24sync's transform): stored NULL",
                    schema::Kind::from(kind).mssql_type()
                );
                problem(problems, col.field, ProblemKind::WrongType, detail);
                *cell = Cell::Null;
            }
        }
    }
}

/// A value quoted for a message, shortened.
fn quote(s: &str) -> String {
    const SHOWN: usize = 60;
    let shown = limits::truncate_utf16(s, SHOWN);
    if shown.len() < s.len() {
        format!("{shown:?}…")
    } else {
        format!("{s:?}")
    }
}

/// Each contact value once (the module docs' rule), fitted, under the record's own lead ID.
///
/// A lead has a handful of values, so "seen before" is a scan of those kept, without
/// copying a value: a full re-sync prepares every lead, and this is most of its work.
fn contacts(r: &mut LeadRecord, problems: &mut Vec<Problem>) {
    let sizes = &*SIZES;
    let mut kept: Vec<ContactRow> = Vec::with_capacity(r.contacts.len());
    for mut c in std::mem::take(&mut r.contacts) {
        // The record owns its contact set, so the record's lead ID is the one that counts.
        c.lead_id = r.lead.id;
        let field = c.type_id.as_str();
        fit_opt(
            &mut c.contact_id,
            sizes.contact_id,
            field,
            || "value ID: ".to_string(),
            problems,
        );
        let id = &c.contact_id;
        let label = |column: &str| match id {
            Some(id) => format!("value (ID {id}) {column}: "),
            None => format!("value {column}: "),
        };
        fit_opt(
            &mut c.value,
            sizes.value,
            field,
            || label("VALUE"),
            problems,
        );
        fit_opt(
            &mut c.value_type,
            sizes.value_type,
            field,
            || label("VALUE_TYPE"),
            problems,
        );
        if let Some(max) = sizes.type_id.filter(|max| c.type_id.len() > *max) {
            let field = c.type_id.clone();
            fit(&mut c.type_id, max, &field, || label("TYPE_ID"), problems);
        }
        let seen = kept.iter().any(|k| match &c.contact_id {
            Some(id) => k.contact_id.as_ref() == Some(id),
            None => {
                k.contact_id.is_none()
                    && k.type_id == c.type_id
                    && k.value == c.value
                    && k.value_type == c.value_type
            }
        });
        if !seen {
            kept.push(c);
        } else {
            let shown = quote(c.value.as_deref().unwrap_or_default());
            let detail = match &c.contact_id {
                Some(id) => format!(
                    "value (ID {id}) is listed again in this lead: kept the first, skipped {shown}"
                ),
                None => format!("value {shown} is listed twice in this lead: stored once"),
            };
            problem(problems, &c.type_id, ProblemKind::WrongType, detail);
        }
    }
    r.contacts = kept;
}

/// The normalised phones of the contact values kept, each (value ID, value) once, fitted.
fn phones(r: &mut LeadRecord, problems: &mut Vec<Problem>) {
    let sizes = &*SIZES;
    let contacts = &r.contacts;
    let kept_value = |p: &PhoneRow| {
        contacts.iter().any(|c| {
            c.type_id == "PHONE"
                && c.value.as_deref() == Some(p.value.as_str())
                && c.contact_id == p.contact_id
        })
    };
    let mut out: Vec<PhoneRow> = Vec::with_capacity(r.phones.len());
    for mut p in std::mem::take(&mut r.phones) {
        p.lead_id = r.lead.id;
        // The value and its ID were cut with the contact value (and reported there).
        cut_quietly(&mut p.value, sizes.phone_value);
        if let (Some(id), Some(max)) = (p.contact_id.as_mut(), sizes.phone_contact_id) {
            cut_quietly(id, Some(max));
        }
        if !kept_value(&p) {
            continue;
        }
        if out
            .iter()
            .any(|o| o.contact_id == p.contact_id && o.value == p.value)
        {
            continue;
        }
        let value = &p.value;
        let what =
            |column: &'static str| move || format!("normalised phone {} {column}: ", quote(value));
        fit_opt(&mut p.e164, sizes.e164, "PHONE", what("e164"), problems);
        fit_opt(
            &mut p.extension,
            sizes.extension,
            "PHONE",
            what("extension"),
            problems,
        );
        fit_opt(
            &mut p.digits_rev,
            sizes.digits_rev,
            "PHONE",
            what("digits_rev"),
            problems,
        );
        fit_opt(
            &mut p.reason,
            sizes.phone_reason,
            "PHONE",
            what("reason"),
            problems,
        );
        out.push(p);
    }
    r.phones = out;
}

fn cut_quietly(s: &mut String, max: Option<usize>) {
    if let Some(cut) = max.and_then(|max| limits::cut(s, max)) {
        *s = cut.kept;
    }
}
