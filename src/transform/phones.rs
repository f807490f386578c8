//! PHONE contact values → `b24sync_lead_phones` rows: each value normalised with
//! [`super::phone::normalize`], kept as typed beside its E.164 form.
//!
//! A value that is not a phone number ("не звонить", an e-mail in the phone field) is kept,
//! marked not normalisable with the reason; it is never a problem of the lead (no error
//! row): the contract table keeps it as typed either way, and nothing is lost.

use std::collections::HashSet;

use super::phone::{self, DefaultRegion, PhoneError};
use crate::model::{truncate_utf16, ContactRow, PhoneRow, PHONE_TAIL_DIGITS};

/// Longest reason stored (`b24sync_lead_phones.reason`, sized in the schema description); the
/// normaliser's reasons quote at most 40 characters of the value, so this only guards against
/// a future wordier one.
pub const REASON_CHARS: usize = crate::schema::PHONE_REASON_CHARS;

/// The phone rows of one lead's contact rows, in their order, each (contact ID, value) once.
pub fn phone_rows(contacts: &[ContactRow], region: &DefaultRegion) -> Vec<PhoneRow> {
    let mut seen: HashSet<(Option<&str>, &str)> = HashSet::new();
    let mut rows = Vec::new();
    for c in contacts.iter().filter(|c| c.type_id == "PHONE") {
        let Some(value) = c.value.as_deref() else {
            continue;
        };
        // The sinks key rows by (lead, contact ID, value); a repeat would only be dropped there.
        if !seen.insert((c.contact_id.as_deref(), value)) {
            continue;
        }
        rows.push(phone_row(c, value, region));
    }
    rows
}

fn phone_row(c: &ContactRow, value: &str, region: &DefaultRegion) -> PhoneRow {
    let (e164, extension, reason) = match phone::normalize(value, region) {
        Ok(n) => (Some(n.e164), n.extension, None),
        Err(e) => (None, None, Some(reason_text(&e))),
    };
    // The stored side of the tail match: the E.164 digits when there are some (so "8 912…"
    // and "+7 912…" agree), else whatever digits were written, read the way the caller's
    // number is read (`lookup_key`), so both sides of a fallback match are alike.
    let tail = match &e164 {
        Some(e) => Some(phone::tail(e, PHONE_TAIL_DIGITS)),
        None => phone::lookup_key(value, region, PHONE_TAIL_DIGITS).tail,
    };
    PhoneRow {
        lead_id: c.lead_id,
        contact_id: c.contact_id.clone(),
        value: value.to_string(),
        e164,
        extension,
        digits_rev: tail.filter(|t| !t.is_empty()).map(|t| reversed(&t)),
        reason,
    }
}

fn reason_text(e: &PhoneError) -> String {
    truncate_utf16(&e.to_string(), REASON_CHARS).to_string()
}

/// `"9123456789"` → `"9876543219"`: a tail match becomes a prefix match, which one index
/// answers for any tail length.
pub fn reversed(digits: &str) -> String {
    digits.chars().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: Option<&str>, value: &str, ty: &str) -> ContactRow {
        ContactRow {
            lead_id: 7,
            contact_id: id.map(str::to_string),
            value_type: Some("WORK".into()),
            value: Some(value.into()),
            type_id: ty.into(),
        }
    }

    #[test]
    fn phones_are_normalised_and_other_types_ignored() {
        let rows = phone_rows(
            &[
                contact(Some("1"), "8 (912) 345-67-89 доб. 12", "PHONE"),
                contact(Some("2"), "ivan@example.com", "EMAIL"),
                contact(Some("3"), "не звонить", "PHONE"),
                contact(Some("4"), "345-67-89", "PHONE"),
                contact(Some("1"), "8 (912) 345-67-89 доб. 12", "PHONE"),
            ],
            &DefaultRegion::default(),
        );
        assert_eq!(rows.len(), 3, "{rows:?}");
        let r = &rows[0];
        assert_eq!(r.e164.as_deref(), Some("+79123456789"));
        assert_eq!(r.extension.as_deref(), Some("12"));
        assert_eq!(r.digits_rev.as_deref(), Some("98765432197"));
        assert_eq!(r.value, "8 (912) 345-67-89 доб. 12");
        assert_eq!(r.reason, None);
        let r = &rows[1];
        assert_eq!((r.e164.as_deref(), r.digits_rev.as_deref()), (None, None));
        assert!(r
            .reason
            .as_deref()
            .unwrap()
            .starts_with("not a phone number"));
        // Not a full number, but its digits still serve the tail fallback.
        let r = &rows[2];
        assert_eq!(r.e164, None);
        assert_eq!(r.digits_rev.as_deref(), Some("9876543"));
    }

    #[test]
    fn the_region_decides_national_numbers() {
        let by: DefaultRegion = "BY".parse().unwrap();
        let rows = phone_rows(&[contact(Some("1"), "8 029 123 45 67", "PHONE")], &by);
        assert_eq!(rows[0].e164.as_deref(), Some("+375291234567"));
        let rows = phone_rows(
            &[contact(Some("1"), "8 029 123 45 67", "PHONE")],
            &DefaultRegion::default(),
        );
        assert_eq!(rows[0].e164, None);
    }
}
