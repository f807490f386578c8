//! `b24sync errors retry`: the leads of `bitrix_import_lead_error` read again and loaded;
//! rows of leads that now load cleanly go, those still failing stay (once).

use crate::schema::LEAD;
use std::collections::HashSet;

use serde_json::Value;

use crate::extract::client::Bitrix24Client;
use crate::extract::portal::{self, PreludeAsk};
use crate::model::LeadId;
use crate::prepare;
use crate::transform::{self, TransformContext};

use super::binding::check_portal;
use super::deletions::delete_behind_guard;
use super::pipeline::attach_full_leads;
use super::{local_now, release_lock, RunError, RunStores, SyncOptions};

/// What `b24sync errors retry` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetrySummary {
    /// Leads with error rows that were read again from Bitrix24.
    pub retried: u64,
    /// Of those, leads that now load cleanly (their error rows are gone).
    pub now_clean: u64,
    /// Leads that still have a problem (their rows are kept, not duplicated).
    pub still_failing: u64,
    /// Leads no longer in Bitrix24 (removed, with their error rows).
    pub gone: u64,
    /// Error rows whose lead ID is not a number, so they cannot be read again.
    pub not_retryable: u64,
}

/// Read the leads of `bitrix_import_lead_error` again and load them, holding the run lock.
pub async fn retry_errors(
    client: &Bitrix24Client,
    stores: &RunStores,
    opts: &SyncOptions,
) -> Result<RetrySummary, RunError> {
    let guard = stores.lock.lock_run(opts.lock_wait).await?;
    let result = retry_errors_locked(client, stores, opts).await;
    release_lock(guard).await;
    result
}

async fn retry_errors_locked(
    client: &Bitrix24Client,
    stores: &RunStores,
    opts: &SyncOptions,
) -> Result<RetrySummary, RunError> {
    stores.schema.init_schema().await?;
    check_portal(client, stores, opts, false).await?;
    let mut summary = RetrySummary::default();
    let mut ids: Vec<LeadId> = Vec::new();
    let mut seen: HashSet<LeadId> = HashSet::new();
    for row in &stores.errors.error_rows().await? {
        match row.numeric_lead_id() {
            Some(id) if seen.insert(id) => ids.push(id),
            Some(_) => {}
            None => summary.not_retryable += 1,
        }
    }
    if ids.is_empty() {
        return Ok(summary);
    }
    let select = opts.select_fields(LEAD);
    let ask = PreludeAsk {
        solution_field: opts.solution_field.as_deref(),
        ..PreludeAsk::default()
    };
    let prelude = portal::prelude(client, ask).await?;
    let ctx = TransformContext {
        time_policy: opts.time_policy.clone(),
        solution_field: opts.solution_field.clone(),
        solution_labels: prelude
            .solution_field
            .as_ref()
            .map(transform::solution_labels_from_userfield)
            .unwrap_or_default(),
        phone_region: opts.phone_region,
    };
    let found = portal::leads_by_id(client, &ids, &select).await?;
    // A lead the `@ID` listing did not return is gone from Bitrix24 — or the webhook no
    // longer sees it: judged by the same guard as the deletion check, against the whole
    // table, before anything is loaded or deleted.
    let gone: Vec<LeadId> = ids
        .iter()
        .copied()
        .filter(|id| !found.contains_key(id))
        .collect();
    summary.gone = gone.len() as u64;
    let table_size = stores.deletions.record_ids(LEAD).await?.len() as u64;
    delete_behind_guard(stores.deletions.as_ref(), opts, LEAD, gone, table_size).await?;
    summary.retried = found.len() as u64;
    let leads: Vec<Value> = found.into_values().collect();
    let mut batch = transform::transform_page(LEAD, &leads, &ctx);
    attach_full_leads(client, &mut batch).await;
    let prepared = prepare::prepare(batch);
    let failing: HashSet<String> = prepared
        .batch()
        .error_rows()
        .into_iter()
        .filter_map(|r| r.lead_id)
        .collect();
    summary.still_failing = failing.len() as u64;
    summary.now_clean = summary.retried.saturating_sub(summary.still_failing);
    stores.batches.load_batch(prepared, local_now()).await?;
    Ok(summary)
}
