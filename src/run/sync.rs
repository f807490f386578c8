//! One sync, step by step, holding the run lock: schema → plan → prelude → read and load →
//! operators → clean-ups and the deletion check → state → `bitrix_lead_runtime`.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::extract::client::{Bitrix24Client, ExtractError};
use crate::extract::paging::{self, ExportFilter};
use crate::extract::portal::{self, Prelude, PreludeAsk};
use crate::store::StoreError;
use crate::transform::{self, TransformContext};

use super::deletions::{clear_unkeyed_errors, delete_missing};
use super::history::{finish_history, start_history};
use super::operators::{refresh_operators, OperatorsError};
use super::pipeline::{read_and_load, Read};
use super::plan::{deletion_check_due, plan, read_u64, unix_now_secs, Plan};
use super::{
    local_now, release_lock, state_keys, RunError, RunStores, RunSummary, SyncOptions,
    NEW_ERROR_ROWS_SHOWN, NO_SOLUTION_FIELD,
};

/// Run one sync into `stores`. The run lock is held from the start to the end (released
/// explicitly; an early return or a panic drops the guard, which releases it too).
pub async fn sync(
    client: &Bitrix24Client,
    stores: &RunStores,
    opts: &SyncOptions,
    cancel: CancellationToken,
) -> Result<RunSummary, RunError> {
    let guard = stores.lock.lock_run(opts.lock_wait).await?;
    let mut history = None;
    let mut refused = None;
    let result = sync_locked(client, stores, opts, cancel, &mut history, &mut refused).await;
    if let Some(p) = &opts.progress {
        p.0.finished();
    }
    if let Some(record) = history {
        finish_history(stores.history.as_ref(), record, &result, refused.as_ref()).await;
    }
    release_lock(guard).await;
    result
}

async fn sync_locked(
    client: &Bitrix24Client,
    stores: &RunStores,
    opts: &SyncOptions,
    cancel: CancellationToken,
    history: &mut Option<crate::store::RunRecord>,
    refused: &mut Option<RunSummary>,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    // A dry run changes nothing, not even the schema.
    if !opts.dry_run {
        init_schema(stores).await?;
    }
    let plan = plan(client, stores, opts).await?;
    let mut summary = RunSummary {
        mode: plan.mode(opts.dry_run),
        since: plan.since.clone(),
        watermark_before: plan.watermark.clone(),
        ..RunSummary::default()
    };
    tracing::info!(mode = %summary.mode, since = plan.since.as_deref().unwrap_or("-"), "reading leads");
    if !opts.dry_run {
        *history = start_history(stores.history.as_ref(), &summary.mode).await;
    }
    if let Some(p) = &opts.progress {
        let expected = match plan.since {
            None => stores
                .state
                .read_state(state_keys::FULL_RUN_LEADS)
                .await?
                .and_then(|v| v.parse().ok()),
            Some(_) => None,
        };
        p.0.started(&summary.mode, expected);
    }

    let user_fields: Vec<String> = opts.solution_field.iter().cloned().collect();
    let filter = ExportFilter {
        modified_since: plan.since.clone(),
        select: paging::select_fields(&user_fields),
    };
    let ask = PreludeAsk {
        solution_field: opts.solution_field.as_deref(),
        extent_of: Some(&filter),
        all_ids: plan.since.is_some(),
    };
    let prelude = portal::prelude(client, ask).await?;
    let ctx = context(opts, &prelude, &mut summary);
    let (Some(extent), portal_time) = (prelude.extent, prelude.portal_time) else {
        return Err(RunError::Internal("the prelude probed no extent".into()));
    };
    let all_ids = prelude.all_ids.unwrap_or(extent);
    let read = read_and_load(client, stores, opts, (filter, extent), ctx, &mut summary).await?;
    if cancel.is_cancelled() {
        summary.interrupted = true;
    }
    after_load(client, stores, opts, &plan, &read, &mut summary).await?;

    let mut guard_error = None;
    let full = plan.since.is_none();
    if !summary.interrupted && deletion_check_due(stores.state.as_ref(), opts, full).await? {
        match delete_missing(client, stores, opts, all_ids, read.read_ids).await {
            Ok((deleted, sample)) => {
                summary.deletion_checked = true;
                summary.leads_deleted = deleted;
                summary.deleted_sample = sample;
            }
            Err(RunError::Extract(ExtractError::Cancelled)) => summary.interrupted = true,
            // Refused: keep the data, still move the watermark (the read was complete),
            // and report the refusal; the next run checks again.
            Err(e @ RunError::DeletionGuard { .. }) => guard_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    if !opts.dry_run {
        new_error_rows(stores, &mut summary).await?;
    }
    if !summary.interrupted && !opts.dry_run {
        write_state(stores, &plan, portal_time.as_deref(), &summary).await?;
    }
    let stats = client.stats();
    summary.requests = stats.requests;
    summary.retries = stats.retries;
    summary.server_secs = stats.server_secs;
    summary.elapsed = started.elapsed();
    if let Some(e) = guard_error {
        *refused = Some(summary);
        return Err(e);
    }
    Ok(summary)
}

/// Create what is missing of the schema, logging what was done.
async fn init_schema(stores: &RunStores) -> Result<(), StoreError> {
    let report = stores.schema.init_schema().await?;
    for created in &report.created {
        tracing::info!("applied {created}");
    }
    for object in &report.objects {
        tracing::debug!("created {object}");
    }
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// How the transform reads this run's leads.
fn context(opts: &SyncOptions, prelude: &Prelude, summary: &mut RunSummary) -> TransformContext {
    let labels = match &prelude.solution_field {
        Some(entry) => transform::solution_labels_from_userfield(entry),
        None => {
            tracing::warn!("{NO_SOLUTION_FIELD}");
            summary.warnings.push(NO_SOLUTION_FIELD.to_string());
            Default::default()
        }
    };
    TransformContext {
        time_policy: opts.time_policy.clone(),
        solution_field: opts.solution_field.clone(),
        solution_labels: labels,
        phone_region: opts.phone_region,
    }
}

/// Once the leads are in: their operators, and a full read's clean-up of unkeyed error rows.
async fn after_load(
    client: &Bitrix24Client,
    stores: &RunStores,
    opts: &SyncOptions,
    plan: &Plan,
    read: &Read,
    summary: &mut RunSummary,
) -> Result<(), RunError> {
    // Operators are refreshed by full runs and by runs that changed a lead (a reassigned
    // lead is a changed one); an idle incremental run asks Bitrix24 nothing more.
    let full = plan.since.is_none();
    let changed = summary.outcome.leads_inserted + summary.outcome.leads_updated;
    if !summary.interrupted && !opts.dry_run && (full || changed > 0) {
        match refresh_operators(client, stores.operators.as_ref(), &read.assigned).await {
            Ok(o) => {
                summary.operators = o.found;
                summary.warnings.extend(o.warning);
            }
            Err(OperatorsError::Load(e)) => return Err(e.into()),
            Err(OperatorsError::Extract(ExtractError::Cancelled)) => summary.interrupted = true,
            // The leads are in; the operators' names can wait for the next sync.
            Err(OperatorsError::Extract(e)) => {
                let warning = format!("the operators (user.get) were not refreshed: {e}");
                tracing::warn!("{warning}");
                summary.warnings.push(warning);
            }
        }
    }
    if full && !summary.interrupted && !opts.dry_run {
        summary.stale_errors_cleared =
            clear_unkeyed_errors(stores.errors.as_ref(), &read.unkeyed_seen).await?;
    }
    Ok(())
}

/// The rows this run added to the error table (new rows have the highest Ids: the table's
/// last `error_rows_new` rows), and how many the table holds.
async fn new_error_rows(stores: &RunStores, summary: &mut RunSummary) -> Result<(), RunError> {
    let rows = stores.errors.error_rows().await?;
    summary.error_rows_held = rows.len() as u64;
    let skip = rows
        .len()
        .saturating_sub(summary.outcome.error_rows_new as usize);
    summary.new_error_rows = rows
        .into_iter()
        .skip(skip)
        .take(NEW_ERROR_ROWS_SHOWN)
        .map(|r| {
            (
                r.lead_id.unwrap_or_else(|| "-".into()),
                r.reason.unwrap_or_default(),
            )
        })
        .collect();
    Ok(())
}

/// After a complete read: the watermark (moved only then, so nothing is ever skipped), the
/// deletion check's schedule, and the `bitrix_lead_runtime` stamp.
async fn write_state(
    stores: &RunStores,
    plan: &Plan,
    portal_time: Option<&str>,
    summary: &RunSummary,
) -> Result<(), RunError> {
    let state = stores.state.as_ref();
    if plan.since.is_none() {
        state
            .write_state(state_keys::FULL_RUN_LEADS, &summary.leads_read.to_string())
            .await?;
    }
    match portal_time {
        Some(t) if plan.watermark_may_move => state.write_state(state_keys::WATERMARK, t).await?,
        Some(_) => tracing::info!(
            "--since read less than an incremental run would: the watermark stays where it was"
        ),
        None => {}
    }
    let runs_since = if summary.deletion_checked {
        0
    } else {
        read_u64(state, state_keys::RUNS_SINCE_DELETION_CHECK).await? + 1
    };
    state
        .write_state(
            state_keys::RUNS_SINCE_DELETION_CHECK,
            &runs_since.to_string(),
        )
        .await?;
    if summary.deletion_checked {
        state
            .write_state(state_keys::DELETION_CHECK_AT, &unix_now_secs().to_string())
            .await?;
    }
    stores.history.stamp_runtime(local_now()).await?;
    Ok(())
}
