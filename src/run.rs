//! One sync run — the only place that knows the order of things:
//!
//! lock → schema → solution-field labels → extract ⇢ transform ⇢ load (three tokio tasks
//! joined by bounded channels, so a slow database slows the reader instead of filling
//! memory) → stamp `bitrix_lead_runtime` → unlock.
//!
//! Cancellation (Ctrl-C): the reader stops at once, the transform hands over what it has,
//! the loader commits that last batch, and the run reports itself as interrupted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::extract::client::{Bitrix24Client, ExtractError};
use crate::extract::paging::{self, ExportFilter, ExportStats, Paging};
use crate::load::{BatchOutcome, LoadError, Sink};
use crate::model::Batch;
use crate::transform::{self, TimePolicy, TransformContext};

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub paging: Paging,
    pub time_policy: TimePolicy,
    /// The list-type user field copied into `bitrix_lead_solution`.
    pub solution_field: Option<String>,
    /// Leads per load transaction.
    pub batch_leads: usize,
    /// How long to wait for another run's lock.
    pub lock_wait: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            paging: Paging::Batch,
            time_policy: TimePolicy::Portal,
            solution_field: None,
            batch_leads: 2500,
            lock_wait: Duration::from_secs(60),
        }
    }
}

/// What a run did, for the summary line and the exit code.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Leads Bitrix24 returned.
    pub leads_read: u64,
    pub pages: u64,
    /// Leads written to `bitrix_leads` (inserted, updated or unchanged).
    pub leads_loaded: u64,
    /// Contact values of the loaded leads.
    pub contact_values: u64,
    /// Leads that could not be loaded at all (their whole JSON is in the error table).
    pub leads_rejected: u64,
    pub outcome: BatchOutcome,
    pub requests: u64,
    pub retries: u64,
    pub server_secs: f64,
    pub elapsed: Duration,
    /// Stopped by Ctrl-C after committing the batch in flight.
    pub interrupted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A setting does not fit the portal (e.g. the solution field does not exist).
    #[error("{0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The wall-clock time b24sync stamps its own rows with (like `GETDATE()` did).
pub fn local_now() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}

/// Read the display names of the solution field's list.
pub async fn solution_labels(
    client: &Bitrix24Client,
    field: &str,
) -> Result<HashMap<String, String>, RunError> {
    let resp = client
        .call(
            "crm.lead.userfield.list",
            &json!({ "filter": { "FIELD_NAME": field } }),
        )
        .await?;
    let entries = resp.result.as_array().cloned().unwrap_or_default();
    let entry = entries
        .iter()
        .find(|e| e.get("FIELD_NAME").and_then(Value::as_str) == Some(field))
        .ok_or_else(|| {
            RunError::Config(format!(
                "the solution field {field} does not exist on the portal: set --solution-field (B24SYNC_SOLUTION_FIELD) \
                 to the UF_CRM_... code of the list field, as shown in CRM → Settings → Custom fields → Leads"
            ))
        })?;
    let kind = entry
        .get("USER_TYPE_ID")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != "enumeration" {
        return Err(RunError::Config(format!(
            "the solution field {field} is of type {kind:?}, not a list (enumeration): choose a list field"
        )));
    }
    Ok(transform::solution_labels_from_userfield(entry))
}

/// Run one full sync of every lead into `sink`.
pub async fn sync(
    client: &Bitrix24Client,
    sink: &dyn Sink,
    opts: &SyncOptions,
    cancel: CancellationToken,
) -> Result<RunSummary, RunError> {
    sink.lock_run(opts.lock_wait).await?;
    let result = sync_locked(client, sink, opts, cancel).await;
    if let Err(e) = sink.unlock_run().await {
        tracing::warn!("could not release the run lock: {e}");
    }
    result
}

async fn sync_locked(
    client: &Bitrix24Client,
    sink: &dyn Sink,
    opts: &SyncOptions,
    cancel: CancellationToken,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let report = sink.init_schema().await?;
    for created in &report.created {
        tracing::info!("created {created}");
    }
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }

    let solution_labels = match &opts.solution_field {
        Some(field) => solution_labels(client, field).await?,
        None => HashMap::new(),
    };
    let ctx = TransformContext {
        time_policy: opts.time_policy.clone(),
        solution_field: opts.solution_field.clone(),
        solution_labels,
    };
    let user_fields: Vec<String> = opts.solution_field.iter().cloned().collect();
    let filter = ExportFilter {
        modified_since: None,
        select: paging::select_fields(&user_fields),
    };

    // Small channels: a few pages and one batch in flight keep memory flat whatever N is.
    let (page_tx, page_rx) = mpsc::channel::<Vec<Value>>(8);
    let (batch_tx, mut batch_rx) = mpsc::channel::<Batch>(1);

    let extractor = {
        let (client, paging) = (client.clone(), opts.paging);
        tokio::spawn(async move { paging::export(&client, paging, &filter, page_tx).await })
    };
    let transformer = tokio::spawn(transform_stage(
        page_rx,
        batch_tx,
        ctx,
        opts.batch_leads.max(1),
    ));

    let mut summary = RunSummary::default();
    let mut load_error = None;
    while let Some(batch) = batch_rx.recv().await {
        summary.leads_loaded += batch.records.len() as u64;
        summary.leads_rejected += batch.rejected.len() as u64;
        summary.contact_values += batch
            .records
            .iter()
            .map(|r| r.contacts.len() as u64)
            .sum::<u64>();
        match sink.load_batch(batch, local_now()).await {
            Ok(outcome) => {
                summary.outcome.add(&outcome);
                tracing::info!(
                    leads = summary.leads_loaded + summary.leads_rejected,
                    inserted = summary.outcome.leads_inserted,
                    updated = summary.outcome.leads_updated,
                    "batch committed"
                );
            }
            Err(e) => {
                // Stop the other stages: dropping the receiver makes their sends fail.
                load_error = Some(e);
                break;
            }
        }
    }
    drop(batch_rx);
    let transformed = transformer
        .await
        .map_err(|e| RunError::Internal(format!("transform task: {e}")))?;
    let exported = extractor
        .await
        .map_err(|e| RunError::Internal(format!("extract task: {e}")))?;
    if let Some(e) = load_error {
        return Err(e.into());
    }
    if transformed != summary.leads_loaded + summary.leads_rejected {
        return Err(RunError::Internal(format!(
            "{transformed} leads were transformed but {} reached the database",
            summary.leads_loaded + summary.leads_rejected
        )));
    }

    let stats = client.stats();
    summary.requests = stats.requests;
    summary.retries = stats.retries;
    summary.server_secs = stats.server_secs;
    match exported {
        Ok(ExportStats { pages, leads }) => {
            summary.pages = pages;
            summary.leads_read = leads;
        }
        Err(ExtractError::Cancelled) => {
            summary.leads_read = transformed;
            summary.interrupted = true;
        }
        Err(e) => return Err(e.into()),
    }
    if cancel.is_cancelled() {
        summary.interrupted = true;
    }
    if !summary.interrupted {
        sink.stamp_runtime(local_now()).await?;
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Pages in, batches of about `batch_leads` leads out. Returns how many leads it handled.
async fn transform_stage(
    mut pages: mpsc::Receiver<Vec<Value>>,
    batches: mpsc::Sender<Batch>,
    ctx: TransformContext,
    batch_leads: usize,
) -> u64 {
    let mut pending = Pending::default();
    let mut handled = 0u64;
    while let Some(page) = pages.recv().await {
        let batch = transform::transform_page(&page, &ctx);
        handled += (batch.records.len() + batch.rejected.len()) as u64;
        pending.merge(batch);
        if pending.len() >= batch_leads && batches.send(pending.take()).await.is_err() {
            return handled;
        }
    }
    if pending.len() > 0 {
        let _ = batches.send(pending.take()).await;
    }
    handled
}

/// The batch being filled. A lead already pending is replaced rather than added, so a
/// batch never holds one `sql_ID` twice (the sinks' set-based upserts rely on it).
#[derive(Default)]
struct Pending {
    batch: Batch,
    index: HashMap<crate::model::LeadId, usize>,
}

impl Pending {
    fn len(&self) -> usize {
        self.batch.records.len() + self.batch.rejected.len()
    }

    fn merge(&mut self, page: Batch) {
        for record in page.records {
            match self.index.get(&record.lead.id) {
                Some(&i) => self.batch.records[i] = record,
                None => {
                    self.index.insert(record.lead.id, self.batch.records.len());
                    self.batch.records.push(record);
                }
            }
        }
        self.batch.rejected.extend(page.rejected);
    }

    fn take(&mut self) -> Batch {
        self.index.clear();
        std::mem::take(&mut self.batch)
    }
}
