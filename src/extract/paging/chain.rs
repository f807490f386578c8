//! One keyset chain of `batch` requests over one ID range: the whole extent when the
//! export runs one chain, or one range of several ([`super::parallel`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::super::client::{Bitrix24Client, ExtractError, SubResult};
use super::super::query;
use super::extent::Reach;
use super::wire::{
    after_cursor, highest_ids_params, highest_of, lead_id, list_params, protocol, reread_wait,
    rows_of,
};
use super::{
    ExportFilter, ExportStats, Extent, BATCH_SIZE, MAX_REREADS, MAX_SUB_FAILURES, PAGE_SIZE,
};

/// Name of the check sub-command in a re-reading batch.
const CHECK: &str = "check";

/// What every chain of one export shares.
pub(super) struct Reader<'a> {
    pub client: &'a Bitrix24Client,
    pub filter: &'a ExportFilter,
    pub out: &'a mpsc::Sender<Vec<Value>>,
    pub stats: &'a Mutex<ExportStats>,
}

/// The leads one chain reads: those after `after`, up to `upper`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Range {
    pub after: i64,
    /// The highest ID the chain must reach (`None`: no extent; the first short page ends
    /// the listing).
    pub upper: Option<i64>,
    /// Whether its pages and checks carry `<=ID upper`. Every range but the top one does;
    /// the top one reads on past its upper bound as the one chain always did (leads
    /// created after the probe may come with its last page).
    pub bounded: bool,
    /// How many leads it holds, when the probe saw them all.
    pub count: Option<usize>,
    /// The expected distance between its IDs, to size its chains.
    pub gap: f64,
}

impl Range {
    /// The whole extent, for one chain.
    pub fn whole(extent: Option<Extent>) -> Range {
        Range {
            after: 0,
            upper: extent.map(|e| e.max_id),
            bounded: false,
            count: extent.and_then(|e| e.count),
            gap: extent.map_or(1.0, |e| e.gap),
        }
    }

    fn upto(&self) -> Option<i64> {
        self.upper.filter(|_| self.bounded)
    }
}

/// How a chain ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// It reached its upper bound (or proved that nothing is left below it).
    Done,
    /// The receiver of the pages is gone.
    Closed,
    /// Another chain failed; this one stopped at a batch boundary.
    Stopped,
}

/// What a chain asks of the other chains of its export.
pub(super) trait Coordinator: Sync {
    /// Whether the export is over for another reason (a chain failed, the receiver left).
    fn stopped(&self) -> bool;
    /// After a full chain that moved the cursor to `cursor` (the range not done, its end
    /// `limit`, its IDs about `gap` apart): hand the part above the returned ID to idle
    /// chains, or keep it all (`None`).
    fn split(&self, range: &Range, cursor: i64, limit: i64, gap: f64) -> Option<i64>;
}

/// One chain alone: nothing stops it, nobody takes part of its range.
pub(super) struct Solo;

impl Coordinator for Solo {
    fn stopped(&self) -> bool {
        false
    }
    fn split(&self, _: &Range, _: i64, _: i64, _: f64) -> Option<i64> {
        None
    }
}

/// Where a listing that ended short of the extent stands (the rule: module docs).
#[derive(Debug, Default)]
pub(super) struct ShortEnd {
    /// Re-reads from the cursor, in a row, that brought nothing while the check said
    /// leads lie beyond it.
    empty_rereads: u32,
}

impl ShortEnd {
    /// The check found leads above `cursor` although the listing from it brought none:
    /// fail once that has happened [`MAX_REREADS`] times in a row.
    pub fn still_missing(
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

/// The average ID distance among the `read` leads of a range, `span` IDs after its start.
fn observed_gap(read: u64, span: i64) -> Option<f64> {
    (read >= PAGE_SIZE as u64).then(|| span as f64 / read as f64)
}

/// Read `range`, sending each page (in ID order) to the reader's channel.
pub(super) async fn read_range(
    r: &Reader<'_>,
    mut range: Range,
    co: &dyn Coordinator,
) -> Result<End, ExtractError> {
    let client = r.client;
    let method = r.filter.list_method();
    let mut cursor = range.after;
    // Leads this chain sent, for the density it observed.
    let mut read = 0u64;
    let mut failures_here = 0u32;
    // How far the chain must get: its upper bound, lowered when a check finds the leads
    // at the top deleted.
    let mut limit = range.upper;
    let mut short = ShortEnd::default();
    // The previous chain stopped short of the limit: this batch re-reads from the cursor
    // and checks, in the same request, what lies beyond it.
    let mut verify = false;
    loop {
        if limit.is_some_and(|m| cursor >= m) {
            return Ok(End::Done);
        }
        if co.stopped() {
            return Ok(End::Stopped);
        }
        let upto = range.upto();
        let available = if verify { BATCH_SIZE - 1 } else { BATCH_SIZE };
        let observed = observed_gap(read, cursor - range.after);
        let page_count = range.upper.map_or(available, |upper| {
            Reach {
                upper,
                count: range.count,
                gap: range.gap,
            }
            .pages_after(cursor, available, observed)
        });
        let mut commands: Vec<(String, String)> = Vec::with_capacity(page_count + 1);
        if verify {
            let check = query::build(&highest_ids_params(r.filter, Some(cursor), upto));
            commands.push((CHECK.to_string(), format!("{method}?{check}")));
        }
        commands.extend((0..page_count).map(|i| {
            let from = if i == 0 {
                json!(cursor)
            } else {
                json!(format!("$result[p{}][{}][ID]", i - 1, PAGE_SIZE - 1))
            };
            let params = query::build(&list_params(r.filter, from, -1, upto));
            (format!("p{i}"), format!("{method}?{params}"))
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
                    client.sub_error(&method, &code, &description)?;
                    sub_failed = true;
                }
                SubResult::Missing => sub_failed = true,
            }
        }
        let mut stopped_short = false;
        // A batch of every page a request holds: only after one does the chain know its
        // range's density well enough to hand part of it over (see `split`).
        let whole_batch = page_count == available;
        for i in 0..page_count {
            match results
                .remove(&format!("p{i}"))
                .unwrap_or(SubResult::Missing)
            {
                SubResult::Ok { result, .. } => {
                    let rows = rows_of(result).map_err(|detail| protocol(client, detail))?;
                    let full = rows.len() >= PAGE_SIZE;
                    let (mut rows, mut max) = after_cursor(rows, cursor);
                    // A portal that ignored `<=ID` would hand this range the next one's
                    // leads too: they are the next chain's to read, and a lead past the
                    // bound proves that every lead up to it was on this page.
                    let past_upper = upto.filter(|u| max.is_some_and(|m| m > *u));
                    if let Some(u) = past_upper {
                        rows.retain(|lead| lead_id(lead).is_none_or(|id| id <= u));
                        max = rows.iter().filter_map(lead_id).max();
                    }
                    {
                        let mut stats = super::lock(r.stats);
                        stats.pages += 1;
                        stats.note(&rows);
                    }
                    read += rows.len() as u64;
                    if !rows.is_empty() && r.out.send(rows).await.is_err() {
                        return Ok(End::Closed);
                    }
                    if let Some(max) = max {
                        cursor = cursor.max(max);
                    }
                    if let Some(u) = past_upper {
                        cursor = cursor.max(u);
                        break;
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
                    let retry = client.sub_error(&method, &code, &description)?;
                    tracing::warn!(
                        page = i,
                        after_id = cursor,
                        "{retry}; re-reading from lead {cursor}"
                    );
                    sub_failed = true;
                    if let Some(wait) = client.sub_error_wait(&method, &code) {
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
            return Ok(End::Done);
        }
        if stopped_short && limit.is_none() {
            // No extent to compare with: the documented rule, the first short page ends it.
            return Ok(End::Done);
        }
        if progressed {
            verify = stopped_short;
            if let (false, true, Some(end)) = (verify, whole_batch, limit) {
                // A chain that ran its full course (a whole batch of full pages): idle
                // chains may take over the part of the range this one would have reached
                // last. A shorter batch, sized from an estimate, says too little of the
                // density: a split on it would hand out ranges that hold nothing, each
                // costing a batch and a check (a lone far-off ID over a few dense leads).
                let gap = observed_gap(read, cursor - range.after).unwrap_or(range.gap);
                if let Some(split) = co.split(&range, cursor, end, gap) {
                    range.upper = Some(split);
                    range.bounded = true;
                    range.count = None;
                    limit = Some(split);
                }
            }
            continue;
        }
        if sub_failed {
            if failures_here >= MAX_SUB_FAILURES {
                return Err(ExtractError::Unreachable {
                    portal: client.portal(),
                    method: format!("{method} (in batch)"),
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
