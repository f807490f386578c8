//! Deletions: leads deleted in Bitrix24 leave the database only through
//! [`delete_behind_guard`], which refuses to remove more than `--max-delete-share` of the
//! table; and the error rows of leads without a numeric ID, which a full read clears.

use crate::schema::Entity;
use std::collections::HashSet;

use crate::extract::client::Bitrix24Client;
use crate::extract::idset::IdSet;
use crate::extract::paging::{self, Extent};
use crate::model::{parse_lead_id, LeadId};
use crate::store::{DeletionStore, ErrorReview};

use super::{id_list, RunError, RunStores, SyncOptions, DELETED_SHOWN};

/// Compare the portal's IDs of `entity`'s records with its table's and delete what
/// Bitrix24 no longer has.
pub(super) async fn delete_missing(
    client: &Bitrix24Client,
    stores: &RunStores,
    opts: &SyncOptions,
    (entity, extent): (Entity, Extent),
    read_ids: Option<IdSet>,
) -> Result<(u64, Vec<i64>), RunError> {
    // A full run has just read every lead that existed when it started: those IDs are the
    // listing. (A lead deleted after it was read stays until the next check.)
    let listed = match read_ids {
        Some(ids) => ids,
        None => paging::list_ids(client, entity, opts.paging_options(), Some(extent)).await?,
    };
    let on_portal = listed;
    let in_table = stores.deletions.record_ids(entity).await?;
    let table_size = in_table.len() as u64;
    let missing: Vec<LeadId> = in_table
        .into_iter()
        .filter(|id| !on_portal.contains(i64::from(*id)))
        .collect();
    delete_behind_guard(stores.deletions.as_ref(), opts, entity, missing, table_size).await
}

/// The one way leads are deleted (the deletion check of `sync`, and `errors retry` for
/// leads Bitrix24 no longer lists): refuse when `missing` is more than
/// `--max-delete-share` of the `table_size` leads in `bitrix_leads`, before anything is
/// deleted; a webhook that lost its CRM permission sees an empty portal, and that must
/// never empty the table.
pub(super) async fn delete_behind_guard(
    deletions: &dyn DeletionStore,
    opts: &SyncOptions,
    entity: Entity,
    mut missing: Vec<LeadId>,
    table_size: u64,
) -> Result<(u64, Vec<i64>), RunError> {
    if missing.is_empty() {
        return Ok((0, Vec::new()));
    }
    missing.sort_unstable();
    let sample: Vec<i64> = missing
        .iter()
        .take(DELETED_SHOWN)
        .map(|id| i64::from(*id))
        .collect();
    let share = missing.len() as f64 / table_size.max(1) as f64;
    if share > opts.deletion.max_share {
        return Err(RunError::DeletionGuard {
            plural: entity.plural,
            would_delete: missing.len() as u64,
            in_table: table_size,
            max_share: opts.deletion.max_share,
        });
    }
    if opts.dry_run {
        tracing::info!(
            records = missing.len(),
            "dry run: these {} were deleted in Bitrix24 and would be deleted here: {}",
            entity.plural,
            id_list(&sample, missing.len())
        );
        return Ok((missing.len() as u64, sample));
    }
    tracing::info!(
        records = missing.len(),
        "deleting {} that were deleted in Bitrix24: {}",
        entity.plural,
        id_list(&sample, missing.len())
    );
    Ok((deletions.delete_records(entity, missing).await?, sample))
}

pub(super) fn has_numeric_id(r: &crate::model::RejectedLead) -> bool {
    r.lead_id.as_deref().and_then(parse_lead_id).is_some()
}

/// Error rows whose lead ID is not a number can never be read again (`errors retry` skips
/// them), so they would stay forever. A complete full read is the proof: a row whose lead
/// it did not return again goes. Rows without a lead ID are matched by their reason.
pub(super) async fn clear_unkeyed_errors(
    errors: &dyn ErrorReview,
    seen: &HashSet<(Option<String>, String)>,
) -> Result<u64, RunError> {
    let seen_reasons_without_id: HashSet<&str> = seen
        .iter()
        .filter(|(id, _)| id.is_none())
        .map(|(_, reason)| reason.as_str())
        .collect();
    let stale: Vec<i64> = errors
        .error_rows()
        .await?
        .into_iter()
        .filter(|r| r.numeric_lead_id().is_none())
        .filter(|r| {
            let reason = r.reason.clone().unwrap_or_default();
            match &r.lead_id {
                None => !seen_reasons_without_id.contains(reason.as_str()),
                Some(_) => !seen.contains(&(r.lead_id.clone(), reason)),
            }
        })
        .map(|r| r.row_id)
        .collect();
    if stale.is_empty() {
        return Ok(0);
    }
    let cleared = errors.delete_error_rows(stale).await?;
    tracing::info!(
        rows = cleared,
        "cleared error rows of leads without a numeric ID that the full read no longer returned"
    );
    Ok(cleared)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::schema::Entity;
    use crate::store::StoreError;

    /// A deletion store that only records what it was asked to delete.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<LeadId>>);

    #[async_trait]
    impl DeletionStore for Recorded {
        async fn record_ids(&self, _: Entity) -> Result<Vec<LeadId>, StoreError> {
            Ok(Vec::new())
        }
        async fn delete_records(&self, _: Entity, ids: Vec<LeadId>) -> Result<u64, StoreError> {
            let n = ids.len() as u64;
            self.0.lock().unwrap().extend(ids);
            Ok(n)
        }
    }

    fn opts(max_share: f64, dry_run: bool) -> SyncOptions {
        let mut o = SyncOptions {
            dry_run,
            ..SyncOptions::default()
        };
        o.deletion.max_share = max_share;
        o
    }

    #[tokio::test]
    async fn the_guard_refuses_before_anything_is_deleted() {
        let store = Recorded::default();
        let err = delete_behind_guard(
            &store,
            &opts(0.2, false),
            crate::schema::LEAD,
            vec![5, 1, 3],
            10,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                RunError::DeletionGuard {
                    would_delete: 3,
                    in_table: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(store.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_dry_run_counts_and_a_run_deletes_lowest_ids_first() {
        let store = Recorded::default();
        let (n, sample) = delete_behind_guard(
            &store,
            &opts(0.5, true),
            crate::schema::LEAD,
            vec![5, 1, 3],
            10,
        )
        .await
        .unwrap();
        assert_eq!((n, sample), (3, vec![1, 3, 5]));
        assert!(
            store.0.lock().unwrap().is_empty(),
            "a dry run deletes nothing"
        );
        let (n, _) = delete_behind_guard(
            &store,
            &opts(0.5, false),
            crate::schema::LEAD,
            vec![5, 1, 3],
            10,
        )
        .await
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(*store.0.lock().unwrap(), vec![1, 3, 5]);
        let (n, sample) =
            delete_behind_guard(&store, &opts(0.5, false), crate::schema::LEAD, vec![], 10)
                .await
                .unwrap();
        assert_eq!((n, sample.len()), (0, 0));
    }
}
