//! A lead's content fingerprint, and the rule that uses it: **an unchanged lead is skipped**.
//!
//! The fingerprint is a 64-bit hash of exactly what the backends write for a prepared lead:
//! its `bitrix_leads` cells, its `bitrix_lead_contacts` rows, its `b24sync_lead_phones` rows
//! and its `bitrix_lead_solution` text, with [`FINGERPRINT_VERSION`] in front. Each backend
//! stores it in `b24sync_lead_fingerprints` in the same transaction as the lead's rows, so a
//! stored fingerprint always describes rows that were committed. A later run that prepares
//! the same lead with the same fingerprint has nothing to write for it, and
//! [`skip_unchanged`] takes it out of the batch before anything is staged.
//!
//! A lead with problems (it has an error row) gets no fingerprint, so it is never skipped and
//! its error row is always kept current; writing it deletes any fingerprint stored for it.
//! Rows edited by hand in the Oktell tables, or restored from a backup without
//! `b24sync_lead_fingerprints`, are not seen by the fingerprint: `sync --full --verify`
//! ignores the stored fingerprints, compares every lead with the table and rewrites them.
//!
//! The hash is SipHash-1-3 with fixed keys over an unambiguous encoding (every string
//! length-prefixed, every optional value and cell tagged, every list counted, integers
//! little-endian), so the value is the same in every build and on every machine.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;

use chrono::NaiveDateTime;
use siphasher::sip::SipHasher13;

use super::PreparedBatch;
use crate::model::{parse_lead_id, Batch, Cell, LeadId, LeadRecord};

/// The version of what a fingerprint covers. Raise it whenever what the backends write for a
/// lead can change for the same prepared record (a column added to a table, a mapping or an
/// encoding below changed): every stored fingerprint then differs, and the next full sync
/// compares and rewrites every lead once.
pub const FINGERPRINT_VERSION: u32 = 1;

/// The hash's keys: fixed, so fingerprints stored by one run are comparable with the next
/// run's ("b24sync-" and "leadfp01" as bytes).
const KEYS: (u64, u64) = (0x6232_3473_796e_632d, 0x6c65_6164_6670_3031);

/// A lead's fingerprint as `b24sync_lead_fingerprints.fingerprint` (`bigint`) holds it: the
/// 64 bits of the hash, read as a signed number.
pub type Fingerprint = i64;

/// What one batch leaves in `b24sync_lead_fingerprints` for one lead: its fingerprint, or
/// `None`: delete any stored one (a lead with problems, or not loaded at all).
pub type FingerprintRow = (LeadId, Option<Fingerprint>);

/// The fingerprints of a prepared batch's leads without problems, by lead ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprints(HashMap<LeadId, Fingerprint>);

impl Fingerprints {
    /// The fingerprint of one lead, when it has one.
    pub fn get(&self, id: LeadId) -> Option<Fingerprint> {
        self.0.get(&id).copied()
    }

    /// What writing `batch` (this batch or a part of it) leaves in
    /// `b24sync_lead_fingerprints`: one row per lead, lowest ID first. A loaded lead gets its
    /// fingerprint, or `None` when it has none; a rejected lead with a numeric ID gets `None`
    /// (its error row must be kept current: it may not be skipped later).
    pub fn rows_for(&self, batch: &Batch) -> Vec<FingerprintRow> {
        let mut rows: BTreeMap<LeadId, Option<Fingerprint>> = batch
            .records
            .iter()
            .map(|r| (r.lead.id, self.get(r.lead.id)))
            .collect();
        for id in batch
            .rejected
            .iter()
            .filter_map(|r| r.lead_id.as_deref().and_then(parse_lead_id))
        {
            rows.insert(id, None);
        }
        rows.into_iter().collect()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn insert(&mut self, id: LeadId, fingerprint: Fingerprint) {
        self.0.insert(id, fingerprint);
    }
}

/// The fingerprint of a prepared record without problems; `None` for a record with problems
/// (see the module docs).
pub fn fingerprint(r: &LeadRecord) -> Option<Fingerprint> {
    if !r.problems.is_empty() {
        return None;
    }
    let mut h = Encoder(SipHasher13::new_with_keys(KEYS.0, KEYS.1));
    h.u64(u64::from(FINGERPRINT_VERSION));
    h.u64(u64::from(r.lead.id as u32));
    h.u64(r.lead.cells.len() as u64);
    for cell in &r.lead.cells {
        match cell {
            Cell::Null => h.tag(0),
            Cell::Text(s) => {
                h.tag(1);
                h.str(s);
            }
            Cell::DateTime(d) => {
                h.tag(2);
                h.datetime(d);
            }
        }
    }
    h.u64(r.contacts.len() as u64);
    for c in &r.contacts {
        h.opt(c.contact_id.as_deref());
        h.opt(c.value_type.as_deref());
        h.opt(c.value.as_deref());
        h.str(&c.type_id);
    }
    h.u64(r.phones.len() as u64);
    for p in &r.phones {
        h.opt(p.contact_id.as_deref());
        h.str(&p.value);
        h.opt(p.e164.as_deref());
        h.opt(p.extension.as_deref());
        h.opt(p.digits_rev.as_deref());
        h.opt(p.reason.as_deref());
    }
    h.opt(r.solution.as_deref());
    Some(h.0.finish() as Fingerprint)
}

/// Take out of `batch` the leads whose fingerprint equals the one `stored` for them (written
/// by an earlier run, in the transaction that wrote their rows): writing them again would
/// change nothing. Returns the batch left and how many leads were taken out. Leads without a
/// fingerprint, rejected leads and leads not in `stored` stay.
pub fn skip_unchanged(
    batch: PreparedBatch,
    stored: &HashMap<LeadId, Fingerprint>,
) -> (PreparedBatch, u64) {
    let PreparedBatch {
        batch: Batch {
            entity,
            records,
            rejected,
        },
        fingerprints,
    } = batch;
    let before = records.len();
    let mut kept = Fingerprints::default();
    let records: Vec<LeadRecord> = records
        .into_iter()
        .filter(|r| {
            let id = r.lead.id;
            match fingerprints.get(id) {
                None => true,
                Some(f) if stored.get(&id) == Some(&f) => false,
                Some(f) => {
                    kept.insert(id, f);
                    true
                }
            }
        })
        .collect();
    let skipped = (before - records.len()) as u64;
    let batch = PreparedBatch {
        batch: Batch {
            entity,
            records,
            rejected,
        },
        fingerprints: kept,
    };
    (batch, skipped)
}

/// Feeds the hash an unambiguous encoding (see the module docs), independent of the
/// platform's byte order.
struct Encoder(SipHasher13);

impl Encoder {
    fn tag(&mut self, t: u8) {
        self.0.write(&[t]);
    }

    fn u64(&mut self, n: u64) {
        self.0.write(&n.to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.write(s.as_bytes());
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.tag(0),
            Some(s) => {
                self.tag(1);
                self.str(s);
            }
        }
    }

    fn datetime(&mut self, d: &NaiveDateTime) {
        let utc = d.and_utc();
        self.u64(utc.timestamp() as u64);
        self.u64(u64::from(utc.timestamp_subsec_nanos()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContactRow, PhoneRow, Problem, ProblemKind, RejectedLead};
    use crate::prepare::{fixtures, prepare};
    use crate::schema::lead_column_index;
    use chrono::NaiveDate;

    /// A lead with a little of everything: cells of each kind, a phone with its normalised
    /// row, an e-mail, a solution.
    fn full_lead(id: LeadId) -> LeadRecord {
        let mut r = fixtures::lead(id, "Lead");
        let at = |f: &str| lead_column_index(f).unwrap();
        r.lead.cells[at("NAME")] = Cell::Text("Ivan".into());
        r.lead.cells[at("DATE_MODIFY")] = Cell::DateTime(
            NaiveDate::from_ymd_opt(2026, 11, 30)
                .and_then(|d| d.and_hms_opt(12, 30, 0))
                .unwrap(),
        );
        let contact = |cid: &str, value: &str, type_id: &str| ContactRow {
            lead_id: id,
            contact_id: Some(cid.into()),
            value_type: Some("WORK".into()),
            value: Some(value.into()),
            type_id: type_id.into(),
        };
        r.contacts = vec![
            contact("11", "+7 912 345-67-89", "PHONE"),
            contact("12", "ivan@example.com", "EMAIL"),
        ];
        r.phones = vec![PhoneRow {
            lead_id: id,
            contact_id: Some("11".into()),
            value: "+7 912 345-67-89".into(),
            e164: Some("+79123456789".into()),
            extension: None,
            digits_rev: Some("98765432197".into()),
            reason: None,
        }];
        r.solution = Some("Buy, Call back".into());
        r
    }

    fn fp(r: &LeadRecord) -> Fingerprint {
        fingerprint(r).expect("a lead without problems has a fingerprint")
    }

    #[test]
    fn the_same_lead_has_the_same_fingerprint_in_every_build() {
        let r = full_lead(7);
        assert_eq!(fp(&r), fp(&r.clone()));
        assert_eq!(fp(&r), fp(&full_lead(7)));
        // Prepared twice (a later run reading the same lead): the same value.
        let once = prepare(Batch {
            entity: crate::schema::LEAD,
            records: vec![full_lead(7)],
            rejected: vec![],
        });
        let again = prepare(Batch {
            entity: crate::schema::LEAD,
            records: vec![full_lead(7)],
            rejected: vec![],
        });
        assert_eq!(once.fingerprints().get(7), Some(fp(&full_lead(7))));
        assert_eq!(once.fingerprints(), again.fingerprints());
        // Pinned: SipHash-1-3 with fixed keys over a fixed encoding, so the value stored by
        // one build is the value the next computes. If this changes on purpose (the encoding
        // or what it covers), raise FINGERPRINT_VERSION and pin the new value.
        assert_eq!(FINGERPRINT_VERSION, 1);
        assert_eq!(fp(&fixtures::lead(1, "x")), PINNED);
    }

    /// `fp(&fixtures::lead(1, "x"))` with FINGERPRINT_VERSION 1.
    const PINNED: Fingerprint = -7_345_725_140_596_210_674;

    #[test]
    fn any_change_to_what_is_written_changes_the_fingerprint() {
        let base = full_lead(7);
        let before = fp(&base);
        let mut changes: Vec<(String, LeadRecord)> = Vec::new();
        let mut change = |what: &str, f: &dyn Fn(&mut LeadRecord)| {
            let mut r = base.clone();
            f(&mut r);
            changes.push((what.to_string(), r));
        };
        change("the lead ID", &|r| r.lead.id = 8);
        for i in 0..base.lead.cells.len() {
            change(&format!("cell {i} set"), &|r| {
                r.lead.cells[i] = match &r.lead.cells[i] {
                    Cell::Text(s) => Cell::Text(format!("{s}!")),
                    _ => Cell::Text("new".into()),
                }
            });
            change(&format!("cell {i} to NULL or empty"), &|r| {
                r.lead.cells[i] = match &r.lead.cells[i] {
                    Cell::Null => Cell::Text(String::new()),
                    _ => Cell::Null,
                }
            });
        }
        let at = lead_column_index("DATE_MODIFY").unwrap();
        change("a date one second later", &|r| {
            if let Cell::DateTime(d) = r.lead.cells[at] {
                r.lead.cells[at] = Cell::DateTime(d + chrono::Duration::seconds(1));
            }
        });
        change("the text of a cell in another case", &|r| {
            r.lead.cells[lead_column_index("NAME").unwrap()] = Cell::Text("IVAN".into())
        });
        change("a contact value", &|r| {
            r.contacts[0].value = Some("+7 912 345-67-80".into())
        });
        change("a contact value type", &|r| {
            r.contacts[1].value_type = Some("HOME".into())
        });
        change("a contact value ID", &|r| {
            r.contacts[1].contact_id = Some("13".into())
        });
        change("a contact value's type", &|r| {
            r.contacts[1].type_id = "WEB".into()
        });
        change("a contact value removed", &|r| {
            r.contacts.pop();
        });
        change("a contact value with no text", &|r| {
            r.contacts[1].value = None
        });
        change("a phone's E.164 form", &|r| {
            r.phones[0].e164 = Some("+79123456780".into())
        });
        change("a phone's extension", &|r| {
            r.phones[0].extension = Some("12".into())
        });
        change("a phone's digits", &|r| r.phones[0].digits_rev = None);
        change("a phone's reason", &|r| {
            r.phones[0].reason = Some("not a number".into())
        });
        change("a phone removed", &|r| r.phones.clear());
        change("the solution", &|r| r.solution = Some("Buy".into()));
        change("no solution", &|r| r.solution = None);
        change("an empty solution", &|r| r.solution = Some(String::new()));
        let mut seen = std::collections::HashMap::new();
        seen.insert(before, "the original".to_string());
        for (what, r) in &changes {
            let after = fp(r);
            assert_ne!(after, before, "{what} did not change the fingerprint");
            if let Some(other) = seen.insert(after, what.clone()) {
                panic!("{what} and {other} give the same fingerprint");
            }
        }
        // The encoding is unambiguous: text moved between neighbouring values differs.
        let mut a = base.clone();
        let mut b = base.clone();
        let (name, last) = (
            lead_column_index("NAME").unwrap(),
            lead_column_index("LAST_NAME").unwrap(),
        );
        a.lead.cells[last] = Cell::Text("ab".into());
        a.lead.cells[name] = Cell::Text("c".into());
        b.lead.cells[last] = Cell::Text("a".into());
        b.lead.cells[name] = Cell::Text("bc".into());
        assert_ne!(fp(&a), fp(&b));
    }

    #[test]
    fn a_lead_with_problems_has_no_fingerprint() {
        let mut r = full_lead(7);
        r.problems.push(Problem {
            field: "PHONE".into(),
            kind: ProblemKind::WrongType,
            detail: "an object".into(),
        });
        assert_eq!(fingerprint(&r), None);
        // Problems found while fitting count too: a TITLE too long for its column.
        let prepared = prepare(Batch {
            entity: crate::schema::LEAD,
            records: vec![full_lead(1), fixtures::lead(2, &"я".repeat(4001))],
            rejected: vec![RejectedLead {
                lead_id: Some("3".into()),
                reason: "not loaded".into(),
                raw_json: "{}".into(),
            }],
        });
        assert_eq!(prepared.batch().records.len(), 2);
        assert!(prepared.fingerprints().get(1).is_some());
        assert_eq!(prepared.fingerprints().get(2), None);
        assert_eq!(prepared.fingerprints().len(), 1);
        // What the batch leaves in b24sync_lead_fingerprints: lead 1's, and none for the lead
        // with a problem or the rejected one (a stored one is deleted).
        assert_eq!(
            prepared.fingerprint_rows(),
            vec![(1, prepared.fingerprints().get(1)), (2, None), (3, None)]
        );
    }

    #[test]
    fn a_rejected_copy_of_a_lead_leaves_it_without_a_fingerprint() {
        let prepared = prepare(Batch {
            entity: crate::schema::LEAD,
            records: vec![full_lead(5)],
            rejected: vec![
                RejectedLead {
                    lead_id: Some("5".into()),
                    reason: "read again and not loadable".into(),
                    raw_json: "{}".into(),
                },
                RejectedLead {
                    lead_id: Some("abc".into()),
                    reason: "no numeric ID".into(),
                    raw_json: "{}".into(),
                },
            ],
        });
        assert_eq!(prepared.fingerprint_rows(), vec![(5, None)]);
    }

    #[test]
    fn skipping_takes_out_exactly_the_unchanged_leads() {
        let mut changed = full_lead(2);
        changed.solution = None;
        let mut with_problem = full_lead(4);
        with_problem.problems.push(Problem {
            field: "TITLE".into(),
            kind: ProblemKind::Truncated,
            detail: "cut".into(),
        });
        let stored: HashMap<LeadId, Fingerprint> = [
            (1, fp(&full_lead(1))),
            (2, fp(&full_lead(2))),
            // A fingerprint can only be stored for a lead written without problems; if the
            // lead has one now, it is written (and its error row kept current).
            (4, fp(&full_lead(4))),
            (9, 12345),
        ]
        .into_iter()
        .collect();
        let rejected = RejectedLead {
            lead_id: Some("6".into()),
            reason: "not loaded".into(),
            raw_json: "{}".into(),
        };
        let prepared = prepare(Batch {
            entity: crate::schema::LEAD,
            records: vec![full_lead(1), changed, full_lead(3), with_problem],
            rejected: vec![rejected.clone()],
        });
        let (left, skipped) = skip_unchanged(prepared, &stored);
        assert_eq!(skipped, 1);
        let ids: Vec<LeadId> = left.batch().records.iter().map(|r| r.lead.id).collect();
        assert_eq!(
            ids,
            vec![2, 3, 4],
            "lead 1 is unchanged; the others are written"
        );
        assert_eq!(left.batch().rejected, vec![rejected]);
        let rows = left.fingerprint_rows();
        let ids: Vec<LeadId> = rows.iter().map(|r| r.0).collect();
        assert_eq!(
            ids,
            vec![2, 3, 4, 6],
            "a skipped lead writes no fingerprint"
        );
        assert!(rows[0].1.is_some() && rows[1].1.is_some());
        assert_eq!((rows[2].1, rows[3].1), (None, None));
        // Nothing stored (the first sync, or --verify): nothing is skipped.
        let all = prepare(Batch {
            entity: crate::schema::LEAD,
            records: vec![full_lead(1), full_lead(2)],
            rejected: vec![],
        });
        let (left, skipped) = skip_unchanged(all.clone(), &HashMap::new());
        assert_eq!((left, skipped), (all, 0));
    }
}
