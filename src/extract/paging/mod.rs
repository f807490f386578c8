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
//!   resolve) and re-read from the cursor.
//! - [`Paging::Next`] (one page per request, the documented shape): `crm.lead.list`
//!   with counting, continuing while Bitrix24 returns `next`. The cursor still moves by ID.
//!
//! Before reading, a run asks (in one small `batch`, with its other one-off questions) for
//! the highest IDs of the leads to read: an uncounted `order[ID]=DESC`, `select[]=ID`
//! page, the [`Extent`]. It sizes every chain so that no page is chained past the end: a
//! page after the last one would refer to an element that does not exist, and how the
//! portal answers that is not documented (the simulator re-reads from the start, which
//! costs server time for nothing). It also lets an incremental run on an unchanged
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
//!
//! # When the listing has ended
//!
//! A short page is not proof of the end: a portal can return an empty or cut-off page in
//! the middle of an export, and stopping there would report a partial read as complete.
//! So a listing has ended only when its cursor reached the extent (the probe's highest
//! ID). When it stops short of it at cursor C, the export asks again, in one request
//! (batch paging; two with `next` paging): the highest ID above C (an `order[ID]=DESC`
//! page, a different query from the one that came back short) and the page after C.
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

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::client::{Bitrix24Client, ExtractError, SubResult};
use super::idset::IdSet;
use super::query;
use crate::model::{CONTACT_TYPES, LEAD_COLUMNS, LEAD_ID_FIELD};

/// Bitrix24's fixed page size for list methods.
pub const PAGE_SIZE: usize = 50;
/// Bitrix24's maximum number of sub-commands in one `batch`.
pub const BATCH_SIZE: usize = 50;
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

/// Which leads to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportFilter {
    /// Only leads with `DATE_MODIFY >=` this Bitrix24 timestamp (`2024-05-01T12:00:00+03:00`).
    pub modified_since: Option<String>,
    /// Which fields to ask for.
    pub select: Vec<String>,
}

/// How far the leads to read go, from the probe (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    /// The highest ID among them (0: there are none).
    pub max_id: i64,
    /// How many there are, when the probe saw them all (fewer than a page).
    pub count: Option<usize>,
    /// The typical (median) distance between neighbouring IDs among the highest ones (IDs
    /// have gaps where leads were deleted), to estimate how many leads are left below
    /// `max_id`.
    pub gap: f64,
}

impl Extent {
    /// Pages to chain after `cursor`: never more than the leads left can fill.
    ///
    /// `observed_gap` is the average distance between the IDs this export has read so
    /// far (`cursor / leads read`); where it is smaller than the probe's, the IDs below
    /// the highest 50 are denser than those, and it is the better guess.
    fn pages_after(&self, cursor: i64, available: usize, observed_gap: Option<f64>) -> usize {
        let id_span = self.max_id.saturating_sub(cursor).max(0) as f64;
        let pages = match self.count {
            Some(n) => n.div_ceil(PAGE_SIZE),
            None => {
                // IDs are unique, so at most id_span leads are left; where IDs have gaps,
                // about id_span / gap. A low estimate costs one more request at the end,
                // a high one costs pages read past the end, so lean high by a fifth
                // where there are gaps (dense IDs need no guess).
                let gap = observed_gap.map_or(self.gap, |g| g.min(self.gap)).max(1.0);
                let lean = if gap > 1.0 { 1.2 } else { 1.0 };
                let estimate = id_span / gap * lean;
                (estimate.min(id_span) / PAGE_SIZE as f64).ceil() as usize
            }
        };
        pages.clamp(1, available.max(1))
    }
}

/// The probe's sub-command: the highest IDs of the leads `filter` selects, uncounted.
pub fn probe_command(filter: &ExportFilter) -> String {
    format!(
        "crm.lead.list?{}",
        query::build(&highest_ids_params(filter, None))
    )
}

/// `order[ID]=DESC`, `select[]=ID`, uncounted: the highest IDs (above `after`, if given).
fn highest_ids_params(filter: &ExportFilter, after: Option<i64>) -> Value {
    let mut f = serde_json::Map::new();
    if let Some(after) = after {
        f.insert(">ID".into(), json!(after));
    }
    if let Some(since) = &filter.modified_since {
        f.insert(">=DATE_MODIFY".into(), Value::String(since.clone()));
    }
    json!({ "order": {"ID": "DESC"}, "filter": f, "select": [LEAD_ID_FIELD], "start": -1 })
}

/// The highest ID in an answer to [`highest_ids_params`] (`None`: no lead).
fn highest_of(result: Value) -> Result<Option<i64>, String> {
    Ok(rows_of(result)?.iter().filter_map(lead_id).max())
}

/// Read the probe's answer.
pub fn extent_of(answer: Option<&SubResult>) -> Result<Extent, String> {
    match answer {
        Some(SubResult::Ok { result, .. }) => {
            let rows = rows_of(result.clone())?;
            let mut ids: Vec<i64> = rows.iter().filter_map(lead_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let max_id = ids.last().copied().unwrap_or(0);
            let count = (rows.len() < PAGE_SIZE).then_some(rows.len());
            Ok(Extent {
                max_id,
                count,
                gap: median_gap(&ids),
            })
        }
        Some(SubResult::Err { code, description }) => Err(format!("{code}: {description}")),
        None | Some(SubResult::Missing) => Err("the highest-ID probe got no answer".into()),
    }
}

/// The median distance between neighbouring IDs (sorted, distinct): the typical gap,
/// which one far-off ID (a lone lead with ID 99999 above 1,500 dense ones) does not
/// move the way it moves the mean. 1 when there are fewer than two IDs.
fn median_gap(ids: &[i64]) -> f64 {
    let mut gaps: Vec<i64> = ids.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.is_empty() {
        return 1.0;
    }
    gaps.sort_unstable();
    let mid = gaps.len() / 2;
    if gaps.len() % 2 == 1 {
        gaps[mid] as f64
    } else {
        (gaps[mid - 1] + gaps[mid]) as f64 / 2.0
    }
}

/// What an export read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub pages: u64,
    pub leads: u64,
    /// The numeric IDs read, in order: a full export is also an ID listing, so a full run
    /// finds deleted leads without listing the IDs a second time.
    pub ids: IdSet,
}

impl ExportStats {
    fn note(&mut self, rows: &[Value]) {
        self.leads += rows.len() as u64;
        for id in rows.iter().filter_map(lead_id) {
            self.ids.insert(id);
        }
    }
}

/// The fields the tables need: `ID`, the contract columns, the multi-fields, and the
/// configured user fields. Naming them (instead of `*` + `UF_*`) keeps each page cheap
/// for the server and makes sure a multiple list field is not left out by `UF_*`.
pub fn select_fields(user_fields: &[String]) -> Vec<String> {
    let mut fields = vec![LEAD_ID_FIELD.to_string()];
    fields.extend(LEAD_COLUMNS.iter().map(|c| c.field.to_string()));
    fields.extend(CONTACT_TYPES.iter().map(|t| t.to_string()));
    for uf in user_fields {
        if !fields.contains(uf) {
            fields.push(uf.clone());
        }
    }
    fields
}

/// Read the leads selected by `filter`, sending each page (in ID order) to `out`.
/// `extent` (from [`probe_command`]) sizes the chains and is what the export must reach
/// (see "When the listing has ended" in the module docs); without it the export chains
/// full batches and stops at the first short page. Returns when every lead was read, the
/// receiver was dropped, or a request failed for good ([`ExtractError::Incomplete`] when
/// the listing cannot get past a point short of the extent).
pub async fn export(
    client: &Bitrix24Client,
    paging: Paging,
    filter: &ExportFilter,
    extent: Option<Extent>,
    out: mpsc::Sender<Vec<Value>>,
) -> Result<ExportStats, ExtractError> {
    if extent.is_some_and(|e| e.max_id == 0) {
        return Ok(ExportStats::default());
    }
    match paging {
        Paging::Batch => export_batched(client, filter, extent, out).await,
        Paging::Next => export_next(client, filter, extent, out).await,
    }
}

/// Every lead ID on the portal (an ID-only listing: cheap for the server, 2,500 IDs per
/// request with batch paging). Leads without a numeric ID are left out.
pub async fn list_ids(
    client: &Bitrix24Client,
    paging: Paging,
    extent: Option<Extent>,
) -> Result<IdSet, ExtractError> {
    let filter = ExportFilter {
        modified_since: None,
        select: vec![LEAD_ID_FIELD.to_string()],
    };
    let (tx, mut rx) = mpsc::channel::<Vec<Value>>(8);
    // Nothing needs the rows themselves: drain them as they come.
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let stats = export(client, paging, &filter, extent, tx).await?;
    let _ = drain.await;
    Ok(stats.ids)
}

/// The `crm.lead.list` parameters for the page after `cursor`.
fn list_params(filter: &ExportFilter, cursor: Value, start: i64) -> Value {
    let mut f = serde_json::Map::new();
    f.insert(">ID".into(), cursor);
    if let Some(since) = &filter.modified_since {
        f.insert(">=DATE_MODIFY".into(), Value::String(since.clone()));
    }
    json!({ "order": {"ID": "ASC"}, "filter": f, "select": filter.select, "start": start })
}

/// The numeric ID of a lead, if it has one.
fn lead_id(lead: &Value) -> Option<i64> {
    match lead.get(LEAD_ID_FIELD)? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Keep the leads after the cursor (and those without a numeric ID, which the transform
/// will report); return them with the highest ID among them.
fn after_cursor(rows: Vec<Value>, cursor: i64) -> (Vec<Value>, Option<i64>) {
    let mut max = None;
    let kept = rows
        .into_iter()
        .filter(|lead| match lead_id(lead) {
            Some(id) if id <= cursor => false,
            Some(id) => {
                max = Some(max.map_or(id, |m: i64| m.max(id)));
                true
            }
            None => true,
        })
        .collect();
    (kept, max)
}

fn rows_of(result: Value) -> Result<Vec<Value>, String> {
    match result {
        Value::Array(rows) => Ok(rows),
        // An empty page may arrive as `{}` from some PHP versions.
        Value::Object(m) if m.is_empty() => Ok(Vec::new()),
        other => Err(format!(
            "crm.lead.list returned {} instead of a list of leads",
            json_kind(&other)
        )),
    }
}

/// What kind of JSON value Bitrix24 sent where it should have sent something else, for
/// protocol messages ("an object", "a string").
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Where a listing that ended short of the extent stands (the rule: module docs).
#[derive(Debug, Default)]
struct ShortEnd {
    /// Re-reads from the cursor, in a row, that brought nothing while the check said
    /// leads lie beyond it.
    empty_rereads: u32,
}

impl ShortEnd {
    /// The check found leads above `cursor` although the listing from it brought none:
    /// fail once that has happened [`MAX_REREADS`] times in a row.
    fn still_missing(
        &mut self,
        client: &Bitrix24Client,
        cursor: i64,
        extent: i64,
    ) -> Result<(), ExtractError> {
        self.empty_rereads += 1;
        if self.empty_rereads >= MAX_REREADS {
            return Err(ExtractError::Incomplete {
                portal: client.portal(),
                cursor,
                extent,
                rereads: self.empty_rereads,
            });
        }
        tracing::warn!(
            after_id = cursor,
            extent,
            "the lead listing stopped after lead {cursor}, but Bitrix24 still lists leads up to {extent}; re-reading from lead {cursor}"
        );
        Ok(())
    }
}

/// The average ID distance among the leads read so far (IDs start at 1).
fn observed_gap(stats: &ExportStats, cursor: i64) -> Option<f64> {
    (stats.leads >= PAGE_SIZE as u64).then(|| cursor as f64 / stats.leads as f64)
}

async fn export_next(
    client: &Bitrix24Client,
    filter: &ExportFilter,
    extent: Option<Extent>,
    pages: mpsc::Sender<Vec<Value>>,
) -> Result<ExportStats, ExtractError> {
    let mut stats = ExportStats::default();
    let mut cursor = 0i64;
    // How far the listing must get: the probe's highest ID, lowered when a check finds
    // the leads at the top deleted.
    let mut limit = extent.map(|e| e.max_id);
    let mut short = ShortEnd::default();
    // The page about to be read is a re-read after a check found leads beyond the cursor.
    let mut rereading = false;
    loop {
        let resp = client
            .call("crm.lead.list", &list_params(filter, json!(cursor), 0))
            .await?;
        let rows = rows_of(resp.result).map_err(|detail| protocol(client, detail))?;
        let full = rows.len() >= PAGE_SIZE;
        let (rows, max) = after_cursor(rows, cursor);
        stats.pages += 1;
        stats.note(&rows);
        if !rows.is_empty() && pages.send(rows).await.is_err() {
            return Ok(stats);
        }
        match (resp.next, max) {
            (Some(_), Some(max)) => {
                cursor = max;
                short = ShortEnd::default();
                rereading = false;
                continue;
            }
            // `next` without progress would loop forever: a full page we could not move past.
            (Some(_), None) if full => {
                return Err(protocol(
                    client,
                    format!("a full page after lead {cursor} held no lead with a higher ID"),
                ))
            }
            _ => {}
        }
        // The listing ended here (no `next`, or an empty page).
        if let Some(max) = max {
            cursor = max;
            short = ShortEnd::default();
        } else if rereading {
            // Checked before this page, so the limit is current.
            short.still_missing(client, cursor, limit.unwrap_or(cursor))?;
            client.pause(reread_wait(client)).await?;
        }
        let Some(want) = limit else {
            return Ok(stats);
        };
        if cursor >= want {
            return Ok(stats);
        }
        // Short of the extent: ask, independently of the page, what lies beyond the cursor.
        let resp = client
            .call("crm.lead.list", &highest_ids_params(filter, Some(cursor)))
            .await?;
        let top = highest_of(resp.result).map_err(|detail| protocol(client, detail))?;
        limit = Some(want.min(top.unwrap_or(cursor)));
        if limit.is_some_and(|m| cursor >= m) {
            return Ok(stats);
        }
        rereading = true;
    }
}

/// The pause before re-reading a page that came back short.
fn reread_wait(client: &Bitrix24Client) -> std::time::Duration {
    client
        .sub_error_wait("crm.lead.list", "")
        .unwrap_or_default()
}

/// Name of the check sub-command in a re-reading batch.
const CHECK: &str = "check";

async fn export_batched(
    client: &Bitrix24Client,
    filter: &ExportFilter,
    extent: Option<Extent>,
    pages: mpsc::Sender<Vec<Value>>,
) -> Result<ExportStats, ExtractError> {
    let mut stats = ExportStats::default();
    let mut cursor = 0i64;
    let mut failures_here = 0u32;
    // How far the export must get (see `export_next`).
    let mut limit = extent.map(|e| e.max_id);
    let mut short = ShortEnd::default();
    // The previous chain stopped short of the limit: this batch re-reads from the cursor
    // and checks, in the same request, what lies beyond it.
    let mut verify = false;
    loop {
        if limit.is_some_and(|m| cursor >= m) {
            return Ok(stats);
        }
        let available = if verify { BATCH_SIZE - 1 } else { BATCH_SIZE };
        let page_count = extent.map_or(available, |e| {
            e.pages_after(cursor, available, observed_gap(&stats, cursor))
        });
        let mut commands: Vec<(String, String)> = Vec::with_capacity(page_count + 1);
        if verify {
            let check = query::build(&highest_ids_params(filter, Some(cursor)));
            commands.push((CHECK.to_string(), format!("crm.lead.list?{check}")));
        }
        commands.extend((0..page_count).map(|i| {
            let from = if i == 0 {
                json!(cursor)
            } else {
                json!(format!("$result[p{}][{}][ID]", i - 1, PAGE_SIZE - 1))
            };
            let params = query::build(&list_params(filter, from, -1));
            (format!("p{i}"), format!("crm.lead.list?{params}"))
        }));
        let mut results: BTreeMap<String, SubResult> = client.batch(&commands).await?;
        let before = cursor;
        let mut sub_failed = false;
        if verify {
            match results.remove(CHECK).unwrap_or(SubResult::Missing) {
                SubResult::Ok { result, .. } => {
                    let top = highest_of(result).map_err(|detail| protocol(client, detail))?;
                    // Nothing above `top` existed at the check: anything read above it
                    // later was created meanwhile, and the next run reads it.
                    let top = top.unwrap_or(before);
                    limit = Some(limit.map_or(top, |m| m.min(top)));
                }
                SubResult::Err { code, description } => {
                    client.sub_error("crm.lead.list", &code, &description)?;
                    sub_failed = true;
                }
                SubResult::Missing => sub_failed = true,
            }
        }
        let mut stopped_short = false;
        for i in 0..page_count {
            match results
                .remove(&format!("p{i}"))
                .unwrap_or(SubResult::Missing)
            {
                SubResult::Ok { result, .. } => {
                    let rows = rows_of(result).map_err(|detail| protocol(client, detail))?;
                    let full = rows.len() >= PAGE_SIZE;
                    let (rows, max) = after_cursor(rows, cursor);
                    stats.pages += 1;
                    stats.note(&rows);
                    if !rows.is_empty() && pages.send(rows).await.is_err() {
                        return Ok(stats);
                    }
                    if let Some(max) = max {
                        cursor = cursor.max(max);
                    }
                    if !full {
                        // The pages after a short one chained on an element that does not
                        // exist: ignore them.
                        stopped_short = true;
                        break;
                    }
                    if max.is_none() {
                        // A full page without progress: its reference did not resolve;
                        // restart from the cursor.
                        break;
                    }
                }
                SubResult::Err { code, description } => {
                    let retry = client.sub_error("crm.lead.list", &code, &description)?;
                    tracing::warn!(
                        page = i,
                        after_id = cursor,
                        "{retry}; re-reading from lead {cursor}"
                    );
                    sub_failed = true;
                    if let Some(wait) = client.sub_error_wait("crm.lead.list", &code) {
                        client.pause(wait).await?;
                    }
                    break;
                }
                SubResult::Missing => break,
            }
        }
        let progressed = cursor > before;
        if progressed {
            failures_here = 0;
            short = ShortEnd::default();
        } else if sub_failed {
            failures_here += 1;
        }
        if limit.is_some_and(|m| cursor >= m) {
            return Ok(stats);
        }
        if stopped_short && limit.is_none() {
            // No extent to compare with: the documented rule, the first short page ends it.
            return Ok(stats);
        }
        if progressed {
            verify = stopped_short;
            continue;
        }
        if sub_failed {
            if failures_here >= MAX_SUB_FAILURES {
                return Err(ExtractError::Unreachable {
                    portal: client.portal(),
                    method: "crm.lead.list (in batch)".into(),
                    attempts: failures_here,
                    secs: 0,
                    last: format!("the page after lead {cursor} kept failing"),
                });
            }
            continue;
        }
        if stopped_short {
            // The first page from the cursor came back empty, short of the limit.
            if verify {
                // ... although the check in the same request found leads beyond it.
                short.still_missing(client, cursor, limit.unwrap_or(cursor))?;
                client.pause(reread_wait(client)).await?;
            }
            verify = true;
            continue;
        }
        // No progress and no error: the first page itself was full of leads we had.
        return Err(protocol(
            client,
            format!("a full page after lead {cursor} held no lead with a higher ID"),
        ));
    }
}

fn protocol(client: &Bitrix24Client, detail: String) -> ExtractError {
    ExtractError::Protocol {
        portal: client.portal(),
        method: "crm.lead.list".into(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_sized_by_the_leads_left() {
        let dense = Extent {
            max_id: 3000,
            count: None,
            gap: 1.0,
        };
        assert_eq!(dense.pages_after(0, 50, None), 50);
        assert_eq!(dense.pages_after(2500, 50, Some(1.0)), 10);
        assert_eq!(dense.pages_after(2999, 50, Some(1.0)), 1);
        let few = Extent {
            max_id: 90_000,
            count: Some(7),
            gap: 3.0,
        };
        assert_eq!(few.pages_after(0, 50, None), 1, "the probe saw them all");
        let sparse = Extent {
            max_id: 35_000,
            count: None,
            gap: 7.0,
        };
        // 2,500 IDs left at a gap of 7 ≈ 357 leads, leaned up a fifth: 9 pages, not 50.
        assert_eq!(sparse.pages_after(32_500, 50, None), 9);
        assert_eq!(sparse.pages_after(32_500, 50, Some(7.5)), 9);
        // Denser below than at the top: what was read is the better guess.
        assert_eq!(sparse.pages_after(32_500, 50, Some(1.0)), 50);
    }

    #[test]
    fn one_far_off_id_does_not_shrink_the_chains() {
        // 1,500 dense leads and one with ID 99999: the probe sees 99999 and 1500..=1452.
        let rows: Vec<Value> = std::iter::once(99_999)
            .chain((1452..=1500).rev())
            .map(|id| json!({"ID": id.to_string()}))
            .collect();
        let extent = extent_of(Some(&SubResult::Ok {
            result: Value::Array(rows),
            total: None,
            next: None,
        }))
        .unwrap();
        assert_eq!(
            (extent.max_id, extent.count, extent.gap),
            (99_999, None, 1.0)
        );
        // The mean gap (about 2,011) sized the first chain at 2 pages: 17 requests in all.
        assert_eq!(extent.pages_after(0, 50, None), 50);
    }

    #[test]
    fn the_median_gap_is_the_typical_one() {
        assert_eq!(median_gap(&[]), 1.0);
        assert_eq!(median_gap(&[5]), 1.0);
        assert_eq!(median_gap(&[1, 3, 5, 7]), 2.0);
        assert_eq!(median_gap(&[1, 2, 4, 1000]), 2.0);
        assert_eq!(median_gap(&[1, 2, 3, 7, 11]), 2.5);
    }

    #[test]
    fn select_names_every_needed_field_once() {
        let s = select_fields(&["UF_CRM_SOLUTION".into(), "PHONE".into()]);
        assert_eq!(s.len(), 1 + 33 + 4 + 1);
        assert_eq!(s[0], "ID");
        assert!(s.contains(&"PHONE".to_string()) && s.contains(&"UF_CRM_SOLUTION".to_string()));
        assert!(!s.iter().any(|f| f == "*" || f == "UF_*"));
    }

    #[test]
    fn rows_at_or_before_the_cursor_are_dropped() {
        let rows = vec![
            json!({"ID": "3"}),
            json!({"ID": "5"}),
            json!({"ID": "abc"}),
            json!({"ID": 7}),
        ];
        let (kept, max) = after_cursor(rows, 4);
        assert_eq!(
            kept,
            vec![json!({"ID": "5"}), json!({"ID": "abc"}), json!({"ID": 7})]
        );
        assert_eq!(max, Some(7));
    }

    #[test]
    fn batch_commands_chain_on_the_previous_page() {
        let f = ExportFilter {
            modified_since: Some("2024-05-01T00:00:00+03:00".into()),
            select: vec!["ID".into()],
        };
        let q = query::build(&list_params(&f, json!("$result[p0][49][ID]"), -1));
        assert!(
            q.contains("filter%5B%3EID%5D=%24result%5Bp0%5D%5B49%5D%5BID%5D"),
            "{q}"
        );
        assert!(
            q.contains("filter%5B%3E%3DDATE_MODIFY%5D=2024-05-01T00%3A00%3A00%2B03%3A00"),
            "{q}"
        );
        assert!(q.ends_with("start=-1"), "{q}");
    }
}
