//! The pipeline: extract ⇢ transform ⇢ prepare ⇢ load, three tokio tasks joined by
//! bounded channels, so a slow database slows the reader instead of filling memory.
//!
//! Cancellation (Ctrl-C): the reader stops at once, the transform hands over what it has,
//! the loader commits that last batch, and the run reports itself as interrupted.

use crate::schema::Entity;
use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::extract::client::{Bitrix24Client, ExtractError};
use crate::extract::idset::IdSet;
use crate::extract::paging::{self, ExportFilter, ExportStats, Extent};
use crate::extract::portal;
use crate::model::{parse_lead_id, Batch, Cell, LeadId};
use crate::prepare::{self, Fingerprint};
use crate::store::BatchOutcome;
use crate::transform::{self, TransformContext};

use super::deletions::has_numeric_id;
use super::{local_now, RunError, RunStores, RunSummary, SyncOptions};

/// What the read left for the steps after it.
#[derive(Debug, Default)]
pub(super) struct Read {
    /// The operators (`ASSIGNED_BY_ID`) of the leads read.
    pub assigned: BTreeSet<String>,
    /// The error rows of leads without a numeric ID that this run saw again (lead ID as
    /// received, reason as stored): a complete full read clears the others.
    pub unkeyed_seen: HashSet<(Option<String>, String)>,
    /// A complete full read's IDs: the deletion check's listing.
    pub read_ids: Option<IdSet>,
}

/// Read the records `filter` selects (of its entity; `extent`: their highest IDs) and load
/// them, adding the counts to `summary`.
pub(super) async fn read_and_load(
    client: &Bitrix24Client,
    stores: &RunStores,
    opts: &SyncOptions,
    (filter, extent): (ExportFilter, Extent),
    ctx: TransformContext,
    summary: &mut RunSummary,
) -> Result<Read, RunError> {
    let full = filter.modified_since.is_none();
    let entity = filter.entity;
    let stored = stored_fingerprints(stores, opts, entity, full).await?;
    // Small channels: a few pages and one batch in flight keep memory flat whatever N is.
    let (page_tx, page_rx) = mpsc::channel::<Vec<Value>>(8);
    let (batch_tx, batch_rx) = mpsc::channel::<Batch>(1);
    let extractor = {
        let (client, paging) = (client.clone(), opts.paging_options());
        tokio::spawn(async move {
            paging::export(&client, paging, &filter, Some(extent), page_tx).await
        })
    };
    let transformer = tokio::spawn(transform_stage(
        entity,
        page_rx,
        batch_tx,
        ctx,
        opts.batch_leads.max(1),
    ));
    let mut read = Read::default();
    let loader = Loader {
        client,
        stores,
        opts,
        entity,
        stored: &stored,
    };
    let (received, load_error) = load_stage(&loader, batch_rx, &mut read, summary).await;
    let transformed = transformer
        .await
        .map_err(|e| RunError::Internal(format!("transform task: {e}")))?;
    let exported = extractor
        .await
        .map_err(|e| RunError::Internal(format!("extract task: {e}")))?;
    if let Some(e) = load_error {
        return Err(e);
    }
    if transformed != received {
        return Err(RunError::Internal(format!(
            "{transformed} {} were transformed but {received} reached the database",
            entity.plural
        )));
    }
    match exported {
        Ok(ExportStats { pages, leads, ids }) => {
            summary.pages = pages;
            summary.leads_read = leads;
            // A full read is an ID listing too (see `deletions::delete_missing`).
            read.read_ids = full.then_some(ids);
        }
        Err(ExtractError::Cancelled) => {
            summary.leads_read = transformed;
            summary.interrupted = true;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(read)
}

/// The fingerprints a read compares its leads with (see `prepare::skip_unchanged`), read
/// once. None with `--verify` (every lead is compared with the tables and its fingerprint
/// rewritten), and none for an incremental or `--since` read: its leads were modified in
/// Bitrix24 since the last run, so reading every stored fingerprint would cost more than
/// the few unchanged leads it could skip.
async fn stored_fingerprints(
    stores: &RunStores,
    opts: &SyncOptions,
    entity: Entity,
    full: bool,
) -> Result<HashMap<LeadId, Fingerprint>, RunError> {
    if opts.verify || !full {
        return Ok(HashMap::new());
    }
    let stored: HashMap<LeadId, Fingerprint> = stores
        .fingerprints
        .fingerprints(entity)
        .await?
        .into_iter()
        .collect();
    tracing::debug!(
        records = stored.len(),
        entity = entity.name,
        "read the stored fingerprints: records whose content did not change are skipped"
    );
    Ok(stored)
}

/// What the loader works with.
struct Loader<'a> {
    client: &'a Bitrix24Client,
    stores: &'a RunStores,
    opts: &'a SyncOptions,
    entity: Entity,
    /// The fingerprints stored before the run (see [`stored_fingerprints`]).
    stored: &'a HashMap<LeadId, Fingerprint>,
}

/// The loader: batches in, each prepared and loaded (or previewed) in one transaction.
/// Returns how many leads it received, and the error that stopped it (dropping the
/// receiver then stops the other stages: their sends fail).
async fn load_stage(
    loader: &Loader<'_>,
    mut batch_rx: mpsc::Receiver<Batch>,
    read: &mut Read,
    summary: &mut RunSummary,
) -> (u64, Option<RunError>) {
    let mut received = 0u64;
    // The leads that get an error row wait here until 50 of them (one crm.lead.get
    // request) or the end of the read, so their rows keep the whole lead at the cost of
    // about one request per run rather than one per batch (see `attach_full_leads`).
    let mut held = Batch::of(loader.entity);
    loop {
        let (mut batch, last) = match batch_rx.recv().await {
            Some(batch) => (batch, false),
            None if held.is_empty() => break,
            None => (Batch::of(loader.entity), true),
        };
        received += batch.len() as u64;
        note_batch(read, &batch);
        if !loader.opts.dry_run {
            hold_error_leads(loader.client, &mut held, &mut batch, last).await;
        }
        if !batch.is_empty() {
            if let Err(e) = load_one(loader, batch, summary).await {
                return (received, Some(e));
            }
        }
        if last {
            break;
        }
    }
    (received, None)
}

/// What the steps after the read need to know of a batch.
fn note_batch(read: &mut Read, batch: &Batch) {
    read.assigned.extend(batch.records.iter().filter_map(|r| {
        batch
            .cell(r, "ASSIGNED_BY_ID")
            .and_then(Cell::as_text)
            .map(|id| id.trim().to_string())
    }));
    read.unkeyed_seen.extend(
        batch
            .rejected
            .iter()
            .filter(|r| !has_numeric_id(r))
            .map(|r| (r.lead_id.clone(), crate::model::clip_reason(&r.reason))),
    );
}

/// Move the leads of `batch` that get an error row into `held`; at the last batch, or once
/// `held` fills one `crm.lead.get` request, read them whole and put them back in `batch`.
async fn hold_error_leads(
    client: &Bitrix24Client,
    held: &mut Batch,
    batch: &mut Batch,
    last: bool,
) {
    // A lead read again supersedes the version waiting here.
    let fresh: HashSet<LeadId> = batch.records.iter().map(|r| r.lead.id).collect();
    held.records.retain(|r| !fresh.contains(&r.lead.id));
    let (with_errors, clean): (Vec<_>, Vec<_>) = std::mem::take(&mut batch.records)
        .into_iter()
        .partition(|r| !r.problems.is_empty());
    batch.records = clean;
    held.records.extend(with_errors);
    held.rejected.append(&mut batch.rejected);
    if last || held.len() >= paging::BATCH_SIZE {
        let mut ready = std::mem::replace(held, Batch::of(held.entity));
        if !last {
            // Only whole requests now (50 each); the rest waits for the next or the end,
            // so a run spends ⌈records with error rows / 50⌉ requests on them.
            let whole = ready.len() / paging::BATCH_SIZE * paging::BATCH_SIZE;
            if whole < ready.records.len() {
                held.records = ready.records.split_off(whole);
                held.rejected = std::mem::take(&mut ready.rejected);
            } else {
                held.rejected = ready.rejected.split_off(whole - ready.records.len());
            }
        }
        attach_full_leads(client, &mut ready).await;
        batch.records.append(&mut ready.records);
        batch.rejected.append(&mut ready.rejected);
    }
}

/// Prepare one batch, skip its unchanged leads and load the rest (preview it in a dry run),
/// counting what it holds. A skipped lead counts as loaded and unchanged, as the backend
/// would have found it; a batch left empty costs the database nothing.
async fn load_one(
    loader: &Loader<'_>,
    batch: Batch,
    summary: &mut RunSummary,
) -> Result<(), RunError> {
    let (stores, opts) = (loader.stores, loader.opts);
    let prepared = prepare::prepare(batch);
    let rows = prepared.batch();
    summary.leads_loaded += rows.records.len() as u64;
    summary.leads_rejected += rows.rejected.len() as u64;
    summary.contact_values += rows
        .records
        .iter()
        .map(|r| r.contacts.len() as u64)
        .sum::<u64>();
    let (prepared, skipped) = prepare::skip_unchanged(prepared, loader.stored);
    summary.outcome.leads_unchanged += skipped;
    let outcome = if prepared.is_empty() {
        BatchOutcome::default()
    } else if opts.dry_run {
        stores.batches.preview_batch(prepared, local_now()).await?
    } else {
        stores.batches.load_batch(prepared, local_now()).await?
    };
    summary.outcome.add(&outcome);
    if let Some(p) = &opts.progress {
        p.0.advanced(summary.leads_loaded + summary.leads_rejected);
    }
    tracing::debug!(
        leads = summary.leads_loaded + summary.leads_rejected,
        inserted = summary.outcome.leads_inserted,
        updated = summary.outcome.leads_updated,
        skipped,
        "batch committed"
    );
    Ok(())
}

/// `bitrix_import_lead_error.sql_full_lead_info` keeps the whole lead as Bitrix24 has it
/// (every field, UF fields, multi-fields), as the Oktell scripts' `crm.lead.get` did; the
/// export selects only the columns it stores. So the few leads of a batch that get an
/// error row are read again whole, 50 per request. If that read fails, the row keeps the
/// exported fields and its reason says so: the run never fails for it.
pub(super) async fn attach_full_leads(client: &Bitrix24Client, batch: &mut Batch) {
    let mut ids: Vec<i64> = batch
        .records
        .iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| i64::from(r.lead.id))
        .collect();
    ids.extend(
        batch
            .rejected
            .iter()
            .filter_map(|r| r.lead_id.as_deref().and_then(parse_lead_id))
            .map(i64::from),
    );
    if ids.is_empty() {
        return;
    }
    ids.sort_unstable();
    ids.dedup();
    let entity = batch.entity;
    let (full, failure) = match portal::fetch_full_records(client, entity, &ids).await {
        Ok(full) => (full, None),
        Err(e) => {
            tracing::warn!(
                records = ids.len(),
                entity = entity.name,
                "could not read the records with error rows whole ({e}): their rows keep the exported fields"
            );
            (HashMap::new(), Some(e.to_string()))
        }
    };
    let missing_note = |id: i64| match &failure {
        Some(e) => format!("reading the whole {} failed ({e})", entity.name),
        None => format!(
            "{} no longer returns {} {id}",
            entity.method_name("get"),
            entity.name
        ),
    };
    for record in batch.records.iter_mut().filter(|r| !r.problems.is_empty()) {
        let id = i64::from(record.lead.id);
        match full.get(&id) {
            Some(lead) => record.raw_json = lead.to_string(),
            None => record.problems.push(crate::model::Problem {
                field: entity.error_json.into(),
                kind: crate::model::ProblemKind::Incomplete,
                detail: format!("holds the exported fields only: {}", missing_note(id)),
            }),
        }
    }
    for rejected in &mut batch.rejected {
        let Some(id) = rejected.lead_id.as_deref().and_then(parse_lead_id) else {
            continue;
        };
        let id = i64::from(id);
        match full.get(&id) {
            Some(lead) => rejected.raw_json = lead.to_string(),
            None => {
                rejected.reason = format!(
                    "{}; {} holds the {} as exported: {}",
                    rejected.reason,
                    entity.error_json,
                    entity.name,
                    missing_note(id)
                )
            }
        }
    }
}

/// Pages in; batches of about `batch_leads` leads out (the duplicates a batch may hold
/// are resolved by `prepare`). Returns how many leads it handled.
async fn transform_stage(
    entity: Entity,
    mut input: mpsc::Receiver<Vec<Value>>,
    batches: mpsc::Sender<Batch>,
    ctx: TransformContext,
    batch_leads: usize,
) -> u64 {
    let mut handled = 0u64;
    let mut pending = Batch::of(entity);
    while let Some(page) = input.recv().await {
        let mut batch = transform::transform_page(entity, &page, &ctx);
        handled += batch.len() as u64;
        pending.records.append(&mut batch.records);
        pending.rejected.append(&mut batch.rejected);
        if pending.len() >= batch_leads
            && batches
                .send(std::mem::replace(&mut pending, Batch::of(entity)))
                .await
                .is_err()
        {
            return handled;
        }
    }
    if !pending.is_empty() {
        let _ = batches.send(pending).await;
    }
    handled
}
