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
//!   request. The first page shorter than 50 proves the end; pages after a short or failed
//!   page are ignored (their reference could not resolve) and re-read from the cursor.
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
    /// The average distance between neighbouring IDs among the highest ones (IDs have gaps
    /// where leads were deleted), to estimate how many leads are left below `max_id`.
    pub gap: f64,
}

impl Extent {
    /// Pages to chain after `cursor`: never more than the leads left can fill.
    fn pages_after(&self, cursor: i64, available: usize) -> usize {
        let id_span = self.max_id.saturating_sub(cursor).max(0) as f64;
        let pages = match self.count {
            Some(n) => n.div_ceil(PAGE_SIZE),
            None => {
                // IDs are unique, so at most id_span leads are left; where IDs have gaps,
                // about id_span / gap. A low estimate costs one more request at the end,
                // a high one costs pages read past the end, so lean high by a fifth
                // where there are gaps (dense IDs need no guess).
                let lean = if self.gap > 1.0 { 1.2 } else { 1.0 };
                let estimate = id_span / self.gap.max(1.0) * lean;
                (estimate.min(id_span) / PAGE_SIZE as f64).ceil() as usize
            }
        };
        pages.clamp(1, available.max(1))
    }

    fn done(&self, cursor: i64) -> bool {
        cursor >= self.max_id
    }
}

/// The probe's sub-command: the highest IDs of the leads `filter` selects, uncounted.
pub fn probe_command(filter: &ExportFilter) -> String {
    let mut f = serde_json::Map::new();
    if let Some(since) = &filter.modified_since {
        f.insert(">=DATE_MODIFY".into(), Value::String(since.clone()));
    }
    let params =
        json!({ "order": {"ID": "DESC"}, "filter": f, "select": [LEAD_ID_FIELD], "start": -1 });
    format!("crm.lead.list?{}", query::build(&params))
}

/// Read the probe's answer.
pub fn extent_of(answer: Option<&SubResult>) -> Result<Extent, String> {
    match answer {
        Some(SubResult::Ok { result, .. }) => {
            let rows = rows_of(result.clone())?;
            let ids: Vec<i64> = rows.iter().filter_map(lead_id).collect();
            let max_id = ids.iter().copied().max().unwrap_or(0);
            let min_id = ids.iter().copied().min().unwrap_or(0);
            let count = (rows.len() < PAGE_SIZE).then_some(rows.len());
            let gap = if ids.len() > 1 {
                (max_id - min_id) as f64 / (ids.len() - 1) as f64
            } else {
                1.0
            };
            Ok(Extent { max_id, count, gap })
        }
        Some(SubResult::Err { code, description }) => Err(format!("{code}: {description}")),
        None | Some(SubResult::Missing) => Err("the highest-ID probe got no answer".into()),
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
/// `extent` (from [`probe_command`]) sizes the chains; without it the export chains full
/// batches and stops at the first short page. Returns when every lead was read, the
/// receiver was dropped, or a request failed for good.
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
        Paging::Next => export_next(client, filter, out).await,
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

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

async fn export_next(
    client: &Bitrix24Client,
    filter: &ExportFilter,
    pages: mpsc::Sender<Vec<Value>>,
) -> Result<ExportStats, ExtractError> {
    let mut stats = ExportStats::default();
    let mut cursor = 0i64;
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
            (Some(_), Some(max)) => cursor = max,
            // `next` without progress would loop forever: a full page we could not move past.
            (Some(_), None) if full => {
                return Err(protocol(
                    client,
                    format!("a full page after lead {cursor} held no lead with a higher ID"),
                ))
            }
            _ => return Ok(stats),
        }
    }
}

async fn export_batched(
    client: &Bitrix24Client,
    filter: &ExportFilter,
    extent: Option<Extent>,
    pages: mpsc::Sender<Vec<Value>>,
) -> Result<ExportStats, ExtractError> {
    let mut stats = ExportStats::default();
    let mut cursor = 0i64;
    let mut failures_here = 0u32;
    loop {
        if extent.is_some_and(|e| e.done(cursor)) {
            return Ok(stats);
        }
        let page_count = extent.map_or(BATCH_SIZE, |e| e.pages_after(cursor, BATCH_SIZE));
        let commands: Vec<(String, String)> = (0..page_count)
            .map(|i| {
                let from = if i == 0 {
                    json!(cursor)
                } else {
                    json!(format!("$result[p{}][{}][ID]", i - 1, PAGE_SIZE - 1))
                };
                let params = query::build(&list_params(filter, from, -1));
                (format!("p{i}"), format!("crm.lead.list?{params}"))
            })
            .collect();
        let mut results: BTreeMap<String, SubResult> = client.batch(&commands).await?;
        let before = cursor;
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
                    match max {
                        Some(max) if full => cursor = max,
                        // A short page whose filter was a known ID: nothing is left after it.
                        _ if !full => return Ok(stats),
                        // A full page without progress: its reference did not resolve; restart from the cursor.
                        _ => break,
                    }
                }
                SubResult::Err { code, description } => {
                    let retry = client.sub_error("crm.lead.list", &code, &description)?;
                    tracing::warn!(
                        page = i,
                        after_id = cursor,
                        "{retry}; re-reading from lead {cursor}"
                    );
                    failures_here += 1;
                    if let Some(wait) = client.sub_error_wait("crm.lead.list", &code) {
                        client.pause(wait).await?;
                    }
                    break;
                }
                SubResult::Missing => break,
            }
        }
        if cursor > before {
            failures_here = 0;
        } else if failures_here >= MAX_SUB_FAILURES {
            return Err(ExtractError::Unreachable {
                portal: client.portal(),
                method: "crm.lead.list (in batch)".into(),
                attempts: failures_here,
                secs: 0,
                last: format!("the page after lead {cursor} kept failing"),
            });
        } else if failures_here == 0 {
            // No progress and no error: the first page itself was full of leads we had.
            return Err(protocol(
                client,
                format!("a full page after lead {cursor} held no lead with a higher ID"),
            ));
        }
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
        assert_eq!(dense.pages_after(0, 50), 50);
        assert_eq!(dense.pages_after(2500, 50), 10);
        assert_eq!(dense.pages_after(2999, 50), 1);
        assert!(dense.done(3000));
        let few = Extent {
            max_id: 90_000,
            count: Some(7),
            gap: 3.0,
        };
        assert_eq!(few.pages_after(0, 50), 1, "the probe saw them all");
        let sparse = Extent {
            max_id: 35_000,
            count: None,
            gap: 7.0,
        };
        // 2,500 IDs left at a gap of 7 ≈ 357 leads, leaned up a fifth: 9 pages, not 50.
        assert_eq!(sparse.pages_after(32_500, 50), 9);
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
