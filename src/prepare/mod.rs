//! The preparation step between transform and load: pure, the same for every backend.
//!
//! After [`prepare`], a batch holds each lead once (the later copy wins), each contact value
//! once, each error row once, every value within its column's size and range (from
//! [`crate::schema`]), and every adjustment made on the way as an error row. The backends only
//! stage these rows and run their dialect's statements, so both give the same tables for the
//! same input.
//!
//! The rules, each written only here:
//! - **Leads:** a lead ID seen twice keeps its later copy, at the later copy's place (pages
//!   overlap when rows shift during paging; the later copy was read later, so it is the
//!   fresher one).
//! - **Contact values** (one lead's PHONE/EMAIL/WEB/IM rows): one row per value ID (the
//!   first, as Bitrix24 lists them); a value without an ID is one row per (type, value,
//!   value type) exactly as typed (values differing in case or format are different values).
//!   The normalised phones follow the contact values kept.
//! - **Error rows:** one per (lead ID, reason), and for a lead without an ID per (reason,
//!   lead JSON); of two copies the later wins, so the row holds the JSON read last. (SQL Server
//!   used to keep the first JSON and SQLite the last; the later copy is the rule for leads,
//!   so it is the rule for their error rows too.) A lead ID is cut to
//!   [`schema::ERROR_ID_CHARS`], a reason to `sql_error`'s size.
//! - **Sizes and ranges:** text longer than its column is cut, a date outside `datetime`'s
//!   range is stored NULL, and either becomes a problem of the lead, so its error row names
//!   the field, the size or range, and (in `sql_ID`) the lead. A row that cannot be fitted
//!   (a transform bug: the wrong number of cells) is not loaded; its error row says why.
//! - **An unchanged lead is skipped** ([`fingerprint`]): each lead without problems gets a
//!   fingerprint of what the backends write for it, stored with its rows; before a batch is
//!   loaded, [`skip_unchanged`] takes out the leads whose fingerprint the database already
//!   holds, so a full sync of a portal where nothing changed writes nothing.

mod fingerprint;
mod fit;

use std::collections::HashMap;
use std::hash::Hash;

use crate::model::{clip_reason, Batch, ErrorRow, RejectedLead};
use crate::schema::{self, truncate_utf16};

pub use fingerprint::{
    fingerprint, skip_unchanged, Fingerprint, FingerprintRow, Fingerprints, FINGERPRINT_VERSION,
};

/// A batch that went through [`prepare`]: the only kind a `store::BatchWriter` accepts. It
/// carries the fingerprint of each of its leads without problems.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreparedBatch {
    batch: Batch,
    fingerprints: Fingerprints,
}

impl PreparedBatch {
    /// The prepared rows.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// The prepared rows, by value, for a backend to stage.
    pub fn into_batch(self) -> Batch {
        self.batch
    }

    /// The prepared rows and their leads' fingerprints, by value (for a backend that splits
    /// the batch: see [`Fingerprints::rows_for`]).
    pub fn into_parts(self) -> (Batch, Fingerprints) {
        (self.batch, self.fingerprints)
    }

    /// The leads' fingerprints.
    pub fn fingerprints(&self) -> &Fingerprints {
        &self.fingerprints
    }

    /// What the batch leaves in `b24sync_lead_fingerprints`, one row per lead (see
    /// [`Fingerprints::rows_for`]).
    pub fn fingerprint_rows(&self) -> Vec<FingerprintRow> {
        self.fingerprints.rows_for(&self.batch)
    }

    /// The error rows the batch leaves in `bitrix_import_lead_error`, each once.
    pub fn error_rows(&self) -> Vec<ErrorRow> {
        self.batch.error_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

/// Prepare one batch for loading (see the module docs for the rules).
pub fn prepare(batch: Batch) -> PreparedBatch {
    let Batch {
        entity,
        records,
        rejected,
    } = batch;
    let mut rejected = rejected;
    let mut kept = Vec::with_capacity(records.len());
    let mut fingerprints = Fingerprints::default();
    for record in later_copy_wins(records, |r| r.lead.id) {
        match fit::record(&entity, record) {
            Ok(r) => {
                // After fitting: the fingerprint covers the rows as they are written.
                if let Some(f) = fingerprint(&r) {
                    fingerprints.insert(r.lead.id, f);
                }
                kept.push(r)
            }
            Err(r) => rejected.push(r),
        }
    }
    let rejected = rejected.into_iter().map(fit_rejected).collect();
    PreparedBatch {
        batch: Batch {
            entity,
            records: kept,
            rejected: later_copy_wins(rejected, rejected_key),
        },
        fingerprints,
    }
}

/// Keep the last item of each key, each at its own position.
fn later_copy_wins<T, K: Hash + Eq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let last: HashMap<K, usize> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (key(item), i))
        .collect();
    items
        .into_iter()
        .enumerate()
        .filter(|(i, item)| last.get(&key(item)) == Some(i))
        .map(|(_, item)| item)
        .collect()
}

/// A rejected lead's error row, fitted: the ID to what the index on `sql_ID` holds, the
/// reason to `sql_error`.
fn fit_rejected(mut r: RejectedLead) -> RejectedLead {
    if let Some(id) = &r.lead_id {
        r.lead_id = Some(truncate_utf16(id, schema::ERROR_ID_CHARS).to_string());
    }
    r.reason = clip_reason(&r.reason);
    r
}

/// What makes two error rows of rejected leads the same row (as both backends' error
/// statements match them).
fn rejected_key(r: &RejectedLead) -> (Option<String>, String, Option<String>) {
    let json = r.lead_id.is_none().then(|| r.raw_json.clone());
    (r.lead_id.clone(), r.reason.clone(), json)
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
