//! One sync, step by step, holding the run lock: schema → plan (each entity from its own
//! watermark) → prelude (one request for every entity) → for each entity: read and load,
//! its deletion check when due → operators → clean-ups → state → `bitrix_lead_runtime`.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::extract::client::{Bitrix24Client, ExtractError};
use crate::extract::paging::ExportFilter;
use crate::extract::portal::{self, EntityAsk, EntityExtents, Prelude, PreludeAsk};
use crate::schema::{Entity, LEAD};
use crate::store::StoreError;
use crate::transform::{self, TransformContext};

use super::deletions::{clear_unkeyed_errors, delete_missing};
use super::history::{finish_history, start_history};
use super::operators::{refresh_operators, OperatorsError};
use super::pipeline::{read_and_load, Read};
use super::plan::{deletion_check_due, plan, read_u64, unix_now_secs, Plan};
use super::{
    local_now, release_lock, state_keys, EntityRun, RunError, RunStores, RunSummary, SyncOptions,
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
    let plans = plan(client, stores, opts).await?;
    // The summary's mode and watermark are the lead's (the first entity's without leads).
    let head = plans
        .iter()
        .find(|p| p.entity == LEAD)
        .unwrap_or(&plans[0])
        .clone();
    let mut summary = RunSummary {
        mode: head.mode(opts.dry_run),
        since: head.since.clone(),
        watermark_before: head.watermark.clone(),
        ..RunSummary::default()
    };
    tracing::info!(mode = %summary.mode, since = head.since.as_deref().unwrap_or("-"), "reading");
    if !opts.dry_run {
        *history = start_history(stores.history.as_ref(), &summary.mode).await;
    }
    if let Some(p) = &opts.progress {
        let expected = match head.since {
            None => stores
                .state
                .read_state(state_keys::FULL_RUN_LEADS)
                .await?
                .and_then(|v| v.parse().ok()),
            Some(_) => None,
        };
        p.0.started(&summary.mode, expected);
    }

    let reads_leads = plans.iter().any(|p| p.entity == LEAD);
    let filters: Vec<ExportFilter> = plans.iter().map(|p| filter_for(opts, p)).collect();
    let ask = PreludeAsk {
        solution_field: opts.solution_field.as_deref().filter(|_| reads_leads),
        entities: plans
            .iter()
            .zip(&filters)
            .map(|(p, filter)| EntityAsk {
                filter,
                all_ids: p.since.is_some(),
            })
            .collect(),
    };
    // One request for every entity's one-off questions.
    let prelude = portal::prelude(client, ask).await?;
    let ctx = context(opts, &prelude, reads_leads, &mut summary);
    let portal_time = prelude.portal_time.clone();
    let check_due = deletion_check_due(stores.state.as_ref(), opts, head.since.is_none()).await?;

    let mut done = Done::default();
    let mut guard_error = None;
    for ((plan, filter), extents) in plans.iter().zip(filters).zip(prelude.entities) {
        let (extent, all_ids) = match extents {
            EntityExtents::Readable { extent, all_ids } => (extent, all_ids),
            EntityExtents::NoAccess { refusal } => {
                skipped(plan.entity, &refusal, &mut summary);
                continue;
            }
        };
        let entity = plan.entity;
        let mut part = RunSummary::default();
        // The progress bar follows the leads (their count is what it expects).
        let part_opts;
        let part_opts_ref = if entity == LEAD {
            opts
        } else {
            part_opts = SyncOptions {
                progress: None,
                ..opts.clone()
            };
            &part_opts
        };
        let mut read = read_and_load(
            client,
            stores,
            part_opts_ref,
            (filter, extent),
            ctx.clone(),
            &mut part,
        )
        .await?;
        if cancel.is_cancelled() {
            part.interrupted = true;
        }
        done.assigned.append(&mut read.assigned);
        let full = plan.since.is_none();
        let due = full || check_due;
        if !part.interrupted && due {
            let extent = all_ids.unwrap_or(extent);
            match delete_missing(client, stores, opts, (entity, extent), read.read_ids.take()).await
            {
                Ok((deleted, sample)) => {
                    part.deletion_checked = true;
                    part.leads_deleted = deleted;
                    part.deleted_sample = sample;
                }
                Err(RunError::Extract(ExtractError::Cancelled)) => part.interrupted = true,
                // Refused: keep the data, still move the watermark (the read was complete),
                // and report the refusal; the next run checks again.
                Err(e @ RunError::DeletionGuard { .. }) => {
                    guard_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        let interrupted = part.interrupted;
        if !interrupted {
            done.complete.push(plan.clone());
        }
        if entity == LEAD {
            done.lead_read = Some(read);
            absorb_lead(&mut summary, part);
        } else {
            summary.entities.push(entity_run(entity, plan, &part));
            summary.interrupted |= interrupted;
            summary.deletion_checked |= part.deletion_checked;
        }
        if summary.interrupted {
            break;
        }
    }
    after_load(client, stores, opts, &head, &done, &mut summary).await?;

    if !opts.dry_run {
        new_error_rows(stores, &mut summary).await?;
    }
    if !summary.interrupted && !opts.dry_run {
        write_state(stores, &done.complete, portal_time.as_deref(), &summary).await?;
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

/// What the entities' reads left for the steps after them.
#[derive(Debug, Default)]
struct Done {
    /// The operators (`ASSIGNED_BY_ID`) of every record read.
    assigned: std::collections::BTreeSet<String>,
    /// The lead's read (for the clean-up of unkeyed error rows).
    lead_read: Option<Read>,
    /// The plans of the entities read completely: their watermarks may move.
    complete: Vec<Plan>,
}

/// Which records of `plan.entity` to read, and which fields.
fn filter_for(opts: &SyncOptions, plan: &Plan) -> ExportFilter {
    ExportFilter {
        entity: plan.entity,
        modified_since: plan.since.clone(),
        select: opts.select_fields(plan.entity),
    }
}

/// The portal refused an entity: a warning, the other entities are read.
fn skipped(entity: Entity, refusal: &str, summary: &mut RunSummary) {
    let warning = format!(
        "{} were not synced: the portal refused {} ({refusal}). Give the webhook's user (or the \
         application) the right to read {} in Bitrix24, or leave them out with --entities",
        entity.plural,
        entity.method_name("list"),
        entity.plural
    );
    tracing::warn!("{warning}");
    summary.warnings.push(warning);
    if entity != LEAD {
        summary.entities.push(EntityRun {
            plural: entity.plural,
            skipped: Some(refusal.to_string()),
            ..EntityRun::default()
        });
    }
}

/// The lead's counts are the summary's own fields.
fn absorb_lead(summary: &mut RunSummary, part: RunSummary) {
    summary.pages = part.pages;
    summary.leads_read = part.leads_read;
    summary.leads_loaded = part.leads_loaded;
    summary.contact_values = part.contact_values;
    summary.leads_rejected = part.leads_rejected;
    summary.outcome = part.outcome;
    summary.deletion_checked |= part.deletion_checked;
    summary.leads_deleted = part.leads_deleted;
    summary.deleted_sample = part.deleted_sample;
    summary.interrupted |= part.interrupted;
}

fn entity_run(entity: Entity, plan: &Plan, part: &RunSummary) -> EntityRun {
    EntityRun {
        plural: entity.plural,
        mode: plan.mode(false),
        read: part.leads_read,
        rejected: part.leads_rejected,
        outcome: part.outcome,
        multi_values: part.contact_values,
        deleted: part.leads_deleted,
        skipped: None,
    }
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

/// How the transform reads this run's records.
fn context(
    opts: &SyncOptions,
    prelude: &Prelude,
    reads_leads: bool,
    summary: &mut RunSummary,
) -> TransformContext {
    let labels = match &prelude.solution_field {
        Some(entry) => transform::solution_labels_from_userfield(entry),
        None if !reads_leads => Default::default(),
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

/// Once the records are in: their operators, and a full read's clean-up of unkeyed error rows.
async fn after_load(
    client: &Bitrix24Client,
    stores: &RunStores,
    opts: &SyncOptions,
    plan: &Plan,
    done: &Done,
    summary: &mut RunSummary,
) -> Result<(), RunError> {
    // Operators are refreshed by full runs and by runs that changed a record (a reassigned
    // record is a changed one); an idle incremental run asks Bitrix24 nothing more.
    let full = plan.since.is_none();
    let changed = summary.outcome.leads_inserted
        + summary.outcome.leads_updated
        + summary
            .entities
            .iter()
            .map(|e| e.outcome.leads_inserted + e.outcome.leads_updated)
            .sum::<u64>();
    if !summary.interrupted && !opts.dry_run && (full || changed > 0) {
        match refresh_operators(client, stores.operators.as_ref(), &done.assigned).await {
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
    if let Some(read) = done.lead_read.as_ref().filter(|_| plan.entity == LEAD) {
        if full && !summary.interrupted && !opts.dry_run {
            summary.stale_errors_cleared =
                clear_unkeyed_errors(stores.errors.as_ref(), &read.unkeyed_seen).await?;
        }
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

/// After a complete read: each entity's watermark (moved only then, so nothing is ever
/// skipped; `complete` holds the entities read completely), the deletion check's schedule,
/// and the `bitrix_lead_runtime` stamp.
async fn write_state(
    stores: &RunStores,
    complete: &[Plan],
    portal_time: Option<&str>,
    summary: &RunSummary,
) -> Result<(), RunError> {
    let state = stores.state.as_ref();
    for plan in complete {
        if plan.entity == LEAD && plan.since.is_none() {
            state
                .write_state(state_keys::FULL_RUN_LEADS, &summary.leads_read.to_string())
                .await?;
        }
        match portal_time {
            Some(t) if plan.watermark_may_move => {
                state
                    .write_state(&state_keys::watermark(plan.entity), t)
                    .await?
            }
            Some(_) => tracing::info!(
                entity = plan.entity.name,
                "--since read less than an incremental run would: the watermark stays where it was"
            ),
            None => {}
        }
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
