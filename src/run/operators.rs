//! The leads' operators: after the leads are in, the users they are assigned to are read
//! with `user.get` into `b24sync_operators`, so the caller lookup can name the operator.

use std::collections::BTreeSet;

use crate::extract::client::{Bitrix24Client, ExtractError};
use crate::extract::portal::users::{fetch_users, UsersAnswer};
use crate::model::Operator;
use crate::store::{OperatorStore, StoreError};

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
/// asked when `referenced` is empty; `sync` calls this only after a full run or one
/// that changed a lead, so an idle incremental run stays one request. Without the `user`
/// scope only the IDs are stored, with a warning; the sync goes on.
pub async fn refresh_operators(
    client: &Bitrix24Client,
    store: &dyn OperatorStore,
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
    ids.extend(store.operator_ids().await?);
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
    store.store_operators(operators).await?;
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
    fn user_ids_are_digits() {
        assert!(is_user_id("17"));
        for bad in ["", "0", "abc", "1 2", "-3", "12345678901234567890"] {
            assert!(!is_user_id(bad), "{bad:?}");
        }
    }
}
