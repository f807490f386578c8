//! Caller lookup: from an incoming number, in any format, to the lead and its operator.
//!
//! At load time every PHONE value is normalised (`transform::phones`) into
//! `b24sync_lead_phones` beside the contract tables; the leads' operators are read with
//! `user.get` into `b24sync_operators` ([`refresh_operators`], after each sync's load).
//! A lookup normalises the caller's number the same way ([`CallerQuery::new`]) and runs one
//! indexed query (each sink's `lookup_caller`; see `docs/caller-lookup.md`):
//! - the caller's number normalises to E.164 → the phones with that E.164 (index seek);
//! - it does not ("3456789", an odd prefix) → the phones whose digits end with the caller's
//!   last N digits, an index prefix seek on the reversed digits.

use crate::extract::client::{Bitrix24Client, ExtractError};
use crate::extract::users::{fetch_users, UsersAnswer};
use crate::model::caller::CallerQuery;
use crate::model::{Operator, PHONE_TAIL_DIGITS};
use crate::store::{OperatorStore, StoreError};
use crate::transform::phone::{lookup_key, DefaultRegion};
use crate::transform::phones::reversed;
use std::collections::BTreeSet;

/// Digits compared by the fallback match unless `--tail-digits` says otherwise: a
/// national number in RU/KZ (without the trunk prefix or country code).
pub const DEFAULT_TAIL_DIGITS: usize = 10;
/// Fewer trailing digits identify nobody (a 7-digit city number without its area code is
/// the least that can); a shorter caller number does not fall back to a tail match.
pub const MIN_TAIL_DIGITS: usize = 7;
/// At most this many leads are returned, most recently modified first: a number shared by a
/// whole office should not flood the operator's screen.
pub const MAX_MATCHES: u32 = 20;

impl CallerQuery {
    /// Normalise the caller's number like the stored ones (`region` for numbers without a
    /// country code); `tail_digits` (clamped to 1..=15) for the fallback.
    pub fn new(number: &str, region: &DefaultRegion, tail_digits: usize) -> CallerQuery {
        let n = tail_digits.clamp(1, PHONE_TAIL_DIGITS);
        let key = lookup_key(number, region, n);
        let tail = match &key.e164 {
            Some(_) => None,
            None => key.tail.filter(|t| t.len() >= MIN_TAIL_DIGITS.min(n)),
        };
        CallerQuery {
            e164: key.e164,
            tail,
            limit: MAX_MATCHES,
        }
    }

    /// The parameters of the lookup query, the same for both databases: the E.164 form
    /// (`""` for none: no NULL parameter is ever sent) and the reversed tail (`""` for none).
    pub fn params(&self) -> (String, String) {
        (
            self.e164.clone().unwrap_or_default(),
            self.tail.as_deref().map(reversed).unwrap_or_default(),
        )
    }
}

/// What [`refresh_operators`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorsOutcome {
    /// Users asked for.
    pub asked: u64,
    /// Users `user.get` returned (0 without the `user` scope).
    pub found: u64,
    /// Set when the details could not be read: the warning given.
    pub warning: Option<String>,
}

/// A usable Bitrix24 user ID: a positive whole number, as `ASSIGNED_BY_ID` holds it.
pub fn is_user_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()) && s != "0"
}

/// Read the users that leads are assigned to and store them in `b24sync_operators`:
/// `referenced` (the `ASSIGNED_BY_ID`s of the leads this run loaded) and every operator
/// already stored, so a renamed user or a changed extension is picked up too. Nothing is
/// asked when `referenced` is empty; `run::sync` calls this only after a full run or one
/// that changed a lead, so an idle incremental run stays one request. Without the `user`
/// scope only the IDs are stored, with a warning; the sync goes on.
pub async fn refresh_operators(
    client: &Bitrix24Client,
    sink: &dyn OperatorStore,
    referenced: &BTreeSet<String>,
) -> Result<OperatorsOutcome, OperatorsError> {
    if referenced.is_empty() {
        return Ok(OperatorsOutcome::default());
    }
    let mut ids: BTreeSet<String> = referenced
        .iter()
        .filter(|id| is_user_id(id))
        .cloned()
        .collect();
    ids.extend(sink.operator_ids().await?);
    let ids: Vec<String> = ids.into_iter().collect();
    let mut outcome = OperatorsOutcome {
        asked: ids.len() as u64,
        ..OperatorsOutcome::default()
    };
    if ids.is_empty() {
        return Ok(outcome);
    }
    let id_only = |id: &String| Operator {
        user_id: id.clone(),
        ..Operator::default()
    };
    let operators: Vec<Operator> = match fetch_users(client, &ids).await? {
        UsersAnswer::Users(mut found) => {
            outcome.found = found.len() as u64;
            ids.iter()
                .map(|id| found.remove(id).unwrap_or_else(|| id_only(id)))
                .collect()
        }
        UsersAnswer::NoScope(why) => {
            let warning = format!(
                "the webhook has no `user` scope ({why}): operators are stored by ID only, without \
                 names or extensions. Edit the webhook in Bitrix24 and tick Users (user, or user_basic) \
                 to have the caller lookup name the operator"
            );
            tracing::warn!("{warning}");
            outcome.warning = Some(warning);
            ids.iter().map(id_only).collect()
        }
    };
    sink.store_operators(operators).await?;
    Ok(outcome)
}

/// Why the operators could not be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorsError {
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Load(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_that_normalise_are_looked_up_by_e164_only() {
        let ru = DefaultRegion::default();
        let q = CallerQuery::new("8 (912) 345-67-89", &ru, 10);
        assert_eq!(q.e164.as_deref(), Some("+79123456789"));
        assert_eq!(q.tail, None);
        assert_eq!(q.params(), ("+79123456789".to_string(), String::new()));
    }

    #[test]
    fn other_callers_fall_back_to_their_last_digits() {
        let ru = DefaultRegion::default();
        let q = CallerQuery::new("+7 (000) 345-67-89", &ru, 10);
        assert_eq!(q.e164, None);
        assert_eq!(q.tail.as_deref(), Some("0003456789"));
        assert_eq!(q.params(), (String::new(), "9876543000".to_string()));
        let q = CallerQuery::new("345-67-89", &ru, 10);
        assert_eq!(q.tail.as_deref(), Some("3456789"));
        // Too few digits to identify anyone; no digits at all.
        assert!(CallerQuery::new("12-34", &ru, 10).is_empty());
        assert!(CallerQuery::new("anonymous", &ru, 10).is_empty());
        // The tail length is configurable, and capped at what is stored.
        assert_eq!(
            CallerQuery::new("+7 (000) 345-67-89", &ru, 7)
                .tail
                .as_deref(),
            Some("3456789")
        );
        assert_eq!(
            CallerQuery::new("+7 (000) 345-67-89", &ru, 99)
                .tail
                .as_deref(),
            Some("70003456789")
        );
    }

    #[test]
    fn user_ids_are_digits() {
        assert!(is_user_id("17"));
        for bad in ["", "0", "abc", "1 2", "-3", "12345678901234567890"] {
            assert!(!is_user_id(bad), "{bad:?}");
        }
    }
}
