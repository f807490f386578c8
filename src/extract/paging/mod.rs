//! Export strategies: turn "all leads" (or "leads changed since W") into a stream of pages.
//!
//! Both strategies walk the leads in ascending ID order with a keyset cursor
//! (`filter[>ID] = last ID seen`), never with growing offsets: an offset shifts when a
//! lead is deleted during the export and a lead would be skipped; a keyset cannot skip
//! a lead that existed throughout, and leads created meanwhile get higher IDs and are
//! read at the end.
//!
//! - [`Paging::Batch`] (default, fastest): 50 chained `crm.lead.list` pages inside one
//!   `batch` request, each page's filter referring to the previous page's 50th ID
//!   (`$result[p0][49][ID]`), without counting (`start=-1`): up to 2,500 leads per HTTP
//!   request. Pages after a short or failed page are ignored (their reference could not
//!   resolve) and re-read from the cursor (`chain.rs`). With [`PagingOptions::max_chains`]
//!   above 1, several such chains run at the same time over disjoint ID ranges
//!   (`parallel.rs`).
//! - [`Paging::Next`] (one page per request, the documented shape): `crm.lead.list`
//!   with counting, continuing while Bitrix24 returns `next`. The cursor still moves by ID
//!   (`next.rs`).
//!
//! Before reading, a run asks (in one small `batch`, with its other one-off questions) for
//! the highest IDs of the leads to read: an uncounted `order[ID]=DESC`, `select[]=ID`
//! page, the [`Extent`] (`extent.rs`). It sizes every chain so that no page is chained past
//! the end: a page after the last one would refer to an element that does not exist, and
//! how the portal answers that is not documented (the simulator re-reads from the start,
//! which costs server time for nothing). It also lets an incremental run on an unchanged
//! portal stop after that single request, and spares the empty batch that otherwise
//! proves the end. Leads created after the probe are left to the next run, which reads
//! them as changed since this run's start.
//!
//! # The request floor
//!
//! A chain of 50 pages reads 2,500 leads, so a full export of N leads needs at least
//! ⌈N/2,500⌉ batches (the run adds its question batch and `user.get`: ⌈N/2,500⌉ + 2).
//! It gets that floor when every chain but the last is 50 pages long, i.e. when the
//! estimate of the leads left below the extent — the ID span left over the typical gap,
//! plus a fifth — is not lower than the truth. The gap is the smaller of the median gap
//! among the probe's 50 highest IDs (a lone far-off ID does not move a median, as it moved
//! the mean: one lead with ID 99999 above 1,500 dense ones once cost 17 requests) and the
//! average gap of the IDs read so far. So the floor holds unless the IDs below the top 50
//! are denser than among them; then the first chain is too short, and the density read
//! after it sizes the rest (50 leads 1,000 IDs apart above 1,500 dense ones: one request
//! over the floor). A re-read after a short page (below) costs one request each.
//! Parallel chains keep the floor where the estimate is right (their ranges hold whole
//! chains, see `parallel.rs`) and cost at most about one request more per range where it
//! is not.
//!
//! # When the listing has ended
//!
//! A short page is not proof of the end: a portal can return an empty or cut-off page in
//! the middle of an export, and stopping there would report a partial read as complete.
//! So a listing has ended only when its cursor reached the extent (the probe's highest
//! ID; for one of several parallel chains, its range's upper bound). When it stops short
//! of it at cursor C, the export asks again, in one request (batch paging; two with
//! `next` paging): the highest ID above C (an `order[ID]=DESC` page, a different query
//! from the one that came back short; bounded by the range's upper bound) and the page
//! after C.
//! - The check finds nothing above C: the leads up to the extent were deleted during
//!   the export. Done — that is a complete read.
//! - The check finds leads above C and the page brings some: the portal had dropped
//!   rows; keep going (to the highest ID the check saw, where that is below the
//!   extent: the leads above it were deleted).
//! - The check finds leads above C but the page from C stays empty, [`MAX_REREADS`]
//!   times in a row: fail with [`ExtractError::Incomplete`], naming C and the extent.
//!   The run then fails and keeps its watermark.
//!
//! The same holds for [`list_ids`] (the deletion check's listing), so a short listing
//! can never make leads look deleted. Without an extent (none of the crate's callers)
//! the documented rule applies: the first short page ends the listing.

mod chain;
mod extent;
mod next;
mod parallel;
mod wire;

use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::mpsc;

use super::client::{Bitrix24Client, ExtractError};
use super::idset::IdSet;
use crate::schema::{Entity, LEAD};

pub use extent::{extent_of, probe_command, Extent};
pub use parallel::planned_chains;
pub(crate) use wire::json_kind;

/// Bitrix24's fixed page size for list methods.
pub const PAGE_SIZE: usize = 50;
/// Bitrix24's maximum number of sub-commands in one `batch`.
pub const BATCH_SIZE: usize = 50;
/// The default of [`PagingOptions::max_chains`].
pub const DEFAULT_MAX_CHAINS: usize = 4;
/// Sub-command failures tolerated in a row at the same cursor before giving up.
const MAX_SUB_FAILURES: u32 = 6;
/// Re-reads from one cursor that may come back empty, while Bitrix24 still lists leads
/// beyond it, before the export fails (see [`export`]).
const MAX_REREADS: u32 = 3;

/// How to page through the leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Paging {
    #[default]
    Batch,
    Next,
}

impl std::str::FromStr for Paging {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "batch" => Ok(Paging::Batch),
            "next" => Ok(Paging::Next),
            _ => Err(format!(
                "unknown paging {s:?}: use \"batch\" (fastest) or \"next\""
            )),
        }
    }
}

/// How an export pages: the strategy and how many keyset chains may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagingOptions {
    pub paging: Paging,
    /// The most `batch` chains an export runs at the same time, each over its own ID
    /// range (default [`DEFAULT_MAX_CHAINS`]; 0 and 1 both mean one chain). The export
    /// runs fewer when the extent holds fewer chains of 2,500 leads, and one when the
    /// method's operating budget left is too small for the whole export (see
    /// [`planned_chains`]). Ignored by [`Paging::Next`].
    pub max_chains: usize,
}

impl Default for PagingOptions {
    fn default() -> Self {
        PagingOptions {
            paging: Paging::Batch,
            max_chains: DEFAULT_MAX_CHAINS,
        }
    }
}

impl From<Paging> for PagingOptions {
    /// A bare strategy keeps the one-chain export: callers opt into parallel chains by
    /// passing [`PagingOptions`] (the CLI's flag for it is wired where the run's options
    /// are built).
    fn from(paging: Paging) -> Self {
        PagingOptions {
            paging,
            max_chains: 1,
        }
    }
}

/// Which records to read: of which entity, changed since when, which fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportFilter {
    /// Whose records: the lead's (the default), a contact's, a company's. Its list method
    /// (`crm.lead.list`) is the one every request of the export calls.
    pub entity: Entity,
    /// Only records with `DATE_MODIFY >=` this Bitrix24 timestamp (`2024-05-01T12:00:00+03:00`).
    pub modified_since: Option<String>,
    /// Which fields to ask for.
    pub select: Vec<String>,
}

impl Default for ExportFilter {
    fn default() -> Self {
        ExportFilter::of(LEAD)
    }
}

impl ExportFilter {
    /// All of `entity`'s records, their ID only.
    pub fn of(entity: Entity) -> Self {
        ExportFilter {
            entity,
            modified_since: None,
            select: vec![entity.id_field.to_string()],
        }
    }

    /// The method every request of the export calls: `crm.lead.list`.
    pub fn list_method(&self) -> String {
        self.entity.method_name("list")
    }
}

/// What an export read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub pages: u64,
    pub leads: u64,
    /// The numeric IDs read: a full export is also an ID listing, so a full run finds
    /// deleted leads without listing the IDs a second time.
    pub ids: IdSet,
}

impl ExportStats {
    fn note(&mut self, rows: &[Value]) {
        self.leads += rows.len() as u64;
        for id in rows.iter().filter_map(wire::lead_id) {
            self.ids.insert(id);
        }
    }
}

/// The fields the tables need: `ID`, the entity's columns, its multi-fields, and the
/// configured user fields. Naming them (instead of `*` + `UF_*`) keeps each page cheap
/// for the server and makes sure a multiple list field is not left out by `UF_*`.
pub fn select_fields(entity: Entity, user_fields: &[String]) -> Vec<String> {
    let mut fields = vec![entity.id_field.to_string()];
    fields.extend(entity.fields.iter().map(|c| c.field.to_string()));
    fields.extend(entity.multi_fields.iter().map(|t| t.to_string()));
    for uf in user_fields {
        if !fields.contains(uf) {
            fields.push(uf.clone());
        }
    }
    fields
}

/// Read the leads selected by `filter`, sending each page (in ID order within each
/// range) to `out`. `extent` (from [`probe_command`]) sizes the chains and is what the
/// export must reach (see "When the listing has ended" in the module docs); without it
/// the export chains full batches and stops at the first short page. `options` is a
/// [`Paging`] (one chain) or [`PagingOptions`] (up to `max_chains` at once). Returns when
/// every lead was read, the receiver was dropped, or a request failed for good
/// ([`ExtractError::Incomplete`] when the listing cannot get past a point short of the
/// extent).
pub async fn export(
    client: &Bitrix24Client,
    options: impl Into<PagingOptions>,
    filter: &ExportFilter,
    extent: Option<Extent>,
    out: mpsc::Sender<Vec<Value>>,
) -> Result<ExportStats, ExtractError> {
    let options = options.into();
    if extent.is_some_and(|e| e.max_id == 0) {
        return Ok(ExportStats::default());
    }
    match (options.paging, extent) {
        (Paging::Next, _) => next::export_next(client, filter, extent, out).await,
        (Paging::Batch, Some(extent)) => {
            let chains = planned_chains(client, &filter.list_method(), options.max_chains, &extent);
            if chains > 1 {
                return parallel::export_parallel(client, filter, extent, chains, out).await;
            }
            one_chain(client, filter, Some(extent), out).await
        }
        (Paging::Batch, None) => one_chain(client, filter, None, out).await,
    }
}

/// Today's export: one chain over the whole extent.
async fn one_chain(
    client: &Bitrix24Client,
    filter: &ExportFilter,
    extent: Option<Extent>,
    out: mpsc::Sender<Vec<Value>>,
) -> Result<ExportStats, ExtractError> {
    let stats = Mutex::new(ExportStats::default());
    let reader = chain::Reader {
        client,
        filter,
        out: &out,
        stats: &stats,
    };
    chain::read_range(&reader, chain::Range::whole(extent), &chain::Solo).await?;
    Ok(stats.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// A poisoned lock only means another chain panicked mid-update of plain counters: keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every ID of `entity`'s records on the portal (an ID-only listing: cheap for the server,
/// 2,500 IDs per request with batch paging). Records without a numeric ID are left out.
pub async fn list_ids(
    client: &Bitrix24Client,
    entity: Entity,
    options: impl Into<PagingOptions>,
    extent: Option<Extent>,
) -> Result<IdSet, ExtractError> {
    let filter = ExportFilter::of(entity);
    let (tx, mut rx) = mpsc::channel::<Vec<Value>>(8);
    // Nothing needs the rows themselves: drain them as they come.
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let stats = export(client, options, &filter, extent, tx).await?;
    let _ = drain.await;
    Ok(stats.ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_names_every_needed_field_once() {
        let s = select_fields(LEAD, &["UF_CRM_SOLUTION".into(), "PHONE".into()]);
        assert_eq!(s.len(), 1 + 33 + 4 + 1);
        assert_eq!(s[0], "ID");
        assert!(s.contains(&"PHONE".to_string()) && s.contains(&"UF_CRM_SOLUTION".to_string()));
        assert!(!s.iter().any(|f| f == "*" || f == "UF_*"));
    }

    #[test]
    fn a_bare_strategy_is_one_chain() {
        assert_eq!(PagingOptions::from(Paging::Batch).max_chains, 1);
        assert_eq!(PagingOptions::default().max_chains, DEFAULT_MAX_CHAINS);
    }
}
