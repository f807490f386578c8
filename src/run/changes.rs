//! Records (leads, contacts, companies) reported changed or deleted by `b24sync serve`'s
//! events read again and loaded, through the same transform → prepare → load as `sync`, with
//! deletions behind the same guard. One `batch` request reads up to 2,500 of them
//! (`portal::records_by_id`: 50 `crm.*.list` sub-commands of 50 IDs each, the export's
//! `select`).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::extract::client::Bitrix24Client;
use crate::extract::portal::{self, PreludeAsk};
use crate::model::{Batch, LeadId, RejectedLead};
use crate::prepare;
use crate::schema::Entity;
use crate::transform::{self, TransformContext};

use super::deletions::delete_behind_guard;
use super::pipeline::attach_full_leads;
use super::{local_now, RunError, RunStores, SyncOptions};

/// What one call of [`apply_lead_changes`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangesOutcome {
    /// Leads the portal returned and that were loaded.
    pub loaded: u64,
    /// Of those, rows inserted or updated (the others were unchanged).
    pub changed: u64,
    /// Leads the portal no longer has, deleted here.
    pub deleted: u64,
    /// New rows in `bitrix_import_lead_error`.
    pub error_rows_new: u64,
}

/// How leads read for events are transformed: the solution field's labels, asked once (one
/// request); the caller keeps it and asks again now and then (labels may change).
pub async fn change_context(
    client: &Bitrix24Client,
    opts: &SyncOptions,
) -> Result<TransformContext, RunError> {
    let ask = PreludeAsk {
        solution_field: opts.solution_field.as_deref(),
        ..PreludeAsk::default()
    };
    let prelude = portal::prelude(client, ask).await?;
    Ok(TransformContext {
        time_policy: opts.time_policy.clone(),
        solution_field: opts.solution_field.clone(),
        solution_labels: prelude
            .solution_field
            .as_ref()
            .map(transform::solution_labels_from_userfield)
            .unwrap_or_default(),
        phone_region: opts.phone_region,
    })
}

/// Read these records of `entity` again and load what the portal returns; a record it does
/// not return was deleted (whether the event said "delete" or "change": a record changed
/// and then deleted is gone) and is deleted here behind the deletion guard. The caller
/// holds the run lock.
pub async fn apply_changes(
    client: &Bitrix24Client,
    stores: &RunStores,
    opts: &SyncOptions,
    ctx: &TransformContext,
    (entity, ids): (Entity, &[LeadId]),
) -> Result<ChangesOutcome, RunError> {
    let ids: Vec<LeadId> = ids
        .iter()
        .copied()
        .filter(|id| *id > 0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut outcome = ChangesOutcome::default();
    if ids.is_empty() {
        return Ok(outcome);
    }
    let select = opts.select_fields(entity);
    let found = portal::records_by_id(client, entity, &ids, &select).await?;
    let gone: Vec<LeadId> = ids
        .iter()
        .copied()
        .filter(|id| !found.contains_key(id))
        .collect();
    if !found.is_empty() {
        let leads: Vec<Value> = found.into_values().collect();
        let mut batch = transform::transform_page(entity, &leads, ctx);
        attach_full_leads(client, &mut batch).await;
        let prepared = prepare::prepare(batch);
        outcome.loaded = prepared.batch().records.len() as u64;
        let done = stores.batches.load_batch(prepared, local_now()).await?;
        outcome.changed = done.leads_inserted + done.leads_updated;
        outcome.error_rows_new = done.error_rows_new;
    }
    if !gone.is_empty() {
        let table_size = stores.deletions.record_ids(entity).await?.len() as u64;
        let (deleted, _) =
            delete_behind_guard(stores.deletions.as_ref(), opts, entity, gone, table_size).await?;
        outcome.deleted = deleted;
    }
    Ok(outcome)
}

/// Records whose events kept failing: a row each in the entity's error table
/// (`bitrix_import_lead_error` for leads) saying so, so they are never silently dropped
/// (`b24sync errors retry` reads leads again; the next full sync reads every record). Their
/// loaded rows, if any, stay as they are.
pub async fn park_failed(
    stores: &RunStores,
    entity: Entity,
    ids: &[i64],
    reason: &str,
) -> Result<(), RunError> {
    if ids.is_empty() {
        return Ok(());
    }
    let batch = Batch {
        entity,
        records: Vec::new(),
        rejected: ids
            .iter()
            .map(|id| RejectedLead {
                lead_id: Some(id.to_string()),
                reason: format!("not loaded: its change events kept failing ({reason})"),
                raw_json: format!("{{\"ID\":\"{id}\"}}"),
            })
            .collect(),
    };
    stores
        .batches
        .load_batch(prepare::prepare(batch), local_now())
        .await?;
    Ok(())
}
