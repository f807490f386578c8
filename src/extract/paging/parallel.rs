//! Several keyset chains at once, each over its own ID range.
//!
//! One chain waits for each `batch` before it sends the next, so its wall time is the
//! server time of every batch added up. Chains over disjoint ranges can run at the same
//! time: the same requests and the same server time, spread over fewer seconds.
//!
//! - **How many** ([`planned_chains`]): at most [`PagingOptions::max_chains`](super::PagingOptions::max_chains); one when
//!   the probe saw every lead, when the IDs are dense and one chain holds them all, or
//!   when the operating budget left for `crm.lead.list` is smaller than what the whole
//!   export is expected to cost (the chains would only run into the budget sooner: a
//!   budget-bound export is as fast with one). The leaky bucket needs no share of its
//!   own: every request of every chain passes the client's bucket, which paces them all.
//! - **The ranges** ([`plan`]): the probe's density estimate (the ID span over the
//!   median gap) tells how many chains of 2,500 leads the extent holds; the ranges get
//!   whole chains each (boundaries at multiples of 2,500 × gap IDs), so where the
//!   estimate is right every chain but the last is full and the request floor holds.
//!   Every range but the top one carries `<=ID` on its upper bound; the top one ends at
//!   the probe's highest ID like the one chain.
//! - **Work stealing**: the probe sees only the 50 highest IDs, so the first plan is as
//!   good as the portal is even. A chain that has nothing left waits; a chain that
//!   finished a full batch and still has two or more chains' worth of leads ahead (by
//!   the density it has read, not by ID width) keeps one chain's worth, hands one each
//!   to all but one of the waiting chains and the rest of its range to the last. It does so between its own batches, so no lead
//!   is ever in flight for two chains. A cluster of 100,000 IDs in a row under a sparse
//!   tail starts as one range (the tail sets the estimate) and is split as soon as its
//!   first batch shows how dense it is.
//! - **The end** is proven per range, by the rule in the module docs: a chain that stops
//!   short of its upper bound re-reads with a check bounded by `<=ID`, and fails with
//!   [`ExtractError::Incomplete`] after [`super::MAX_REREADS`] empty re-reads. The other
//!   chains finish their ranges; the export then reports the failure with the lowest
//!   cursor. Any other error stops every chain at its next batch.
//!
//! # What a wrong estimate costs
//!
//! Where the IDs are even (dense, or evenly spaced) the ranges' bounds are lead IDs and
//! every chain is full: the floor holds (the tests and BENCHMARKS.md). Where they are not,
//! each range pays for it at most about two requests: a bounded range whose upper bound
//! is not a lead ends with a short page, so its last batch is followed by a re-read with
//! the check (+1); a range with no leads at all costs its batch and that re-read (+2; a
//! lone lead far above dense ones makes the probe plan ranges up to it); a piece handed
//! over by the density read at a range's start, where the rest is sparser, costs the
//! same. One chain pays none of this, which is why a bare [`super::Paging`] stays one
//! chain and parallel chains are asked for with [`PagingOptions::max_chains`](super::PagingOptions::max_chains).
//!
//! # Order of the pages
//!
//! Each chain sends its pages in ascending ID order, interleaved with the other chains'
//! pages. That is enough for the loader, whose rule is "the later copy of a lead wins":
//! - The ranges are disjoint (a split hands over only IDs above the giving chain's
//!   cursor and its own bound moves down to the split, both under the scheduler's lock,
//!   between two of its batches), and a chain drops rows above its bound, so the copies
//!   of one lead can only come from one chain.
//! - Within a chain, the cursor only moves up and rows at or below it are dropped, so a
//!   chain sends a lead at most once; if it ever sent one again (a re-read), that copy
//!   would come later in the same chain's sequence, i.e. later in the channel.
//! - So a lead edited during the export is read either before or after the edit, once,
//!   or — if its chain re-reads it — last with its later copy; which chain's pages come
//!   first in the channel does not matter. An edit after the read is the next
//!   incremental run's (its `DATE_MODIFY` is after this run's start).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use super::super::client::{Bitrix24Client, ExtractError};
use super::chain::{read_range, Coordinator, End, Range, Reader};
use super::{lock, ExportFilter, ExportStats, Extent, BATCH_SIZE, PAGE_SIZE};

/// Leads one full chain reads.
const LEADS_PER_CHAIN: f64 = (PAGE_SIZE * BATCH_SIZE) as f64;
/// What one full chain of the exact `select` is expected to cost the server: Bitrix24
/// documents about 0.1 s for an uncounted page, so about 5 s for 50 (the simulator's cost
/// model charges about 3 s). Only compared with the operating budget left.
const CHAIN_SECS: f64 = 5.0;
/// How many chains an export over `extent` runs at once, at most `max_chains` (see the
/// module docs): 1 when the probe saw every lead, when dense IDs fit one chain, or when
/// the client's operating budget left for the list `method` (as the probe's answer
/// reported it) is below the expected server time of the whole export.
pub fn planned_chains(
    client: &Bitrix24Client,
    method: &str,
    max_chains: usize,
    extent: &Extent,
) -> usize {
    let cap = max_chains.max(1);
    let chains = chains_in(extent);
    if cap == 1 || extent.count.is_some() || (extent.gap <= 1.0 && chains <= 1.0) {
        return 1;
    }
    let headroom = client.operating_headroom(method);
    if headroom < chains * CHAIN_SECS {
        tracing::info!(
            headroom_s = headroom,
            chains,
            "the operating budget left is tight for this export: one chain"
        );
        return 1;
    }
    cap
}

/// Full chains the extent holds, by the probe's estimate (at least 1).
fn chains_in(extent: &Extent) -> f64 {
    (extent.estimated_leads() / LEADS_PER_CHAIN).ceil().max(1.0)
}

/// The first ranges: up to `workers`, each holding whole chains of the estimate.
fn plan(extent: &Extent, workers: usize) -> Vec<Range> {
    let chains = chains_in(extent) as usize;
    let top = Range {
        after: 0,
        upper: Some(extent.max_id),
        bounded: false,
        count: None,
        gap: extent.gap.max(1.0),
    };
    split_chains(
        &top,
        0,
        extent.max_id,
        top.gap,
        chains,
        workers.clamp(1, chains),
    )
}

/// Cut (`after`, `end`] of `range` into `parts` ranges of whole chains (`chains` in all,
/// IDs about `gap` apart), the lower ones taking the odd chains.
fn split_chains(
    range: &Range,
    after: i64,
    end: i64,
    gap: f64,
    chains: usize,
    parts: usize,
) -> Vec<Range> {
    let mut taken = 0usize;
    let inner = (0..parts.saturating_sub(1)).map(|i| {
        taken += chains / parts + usize::from(i < chains % parts);
        after + (taken as f64 * LEADS_PER_CHAIN * gap).round() as i64
    });
    cut(range, after, inner, end, gap)
}

/// Cut (`after`, `end`] of `range` into `parts` ranges: one chain each (IDs about `gap`
/// apart) right above `after`, the rest of the range to the last. The density read just
/// below `after` holds best just above it, and a long rest is split again when the chain
/// that takes it has read its first batch: a dense cluster under a sparse tail is shared
/// out chain by chain instead of being left whole to one range sized by a density that
/// holds only for its start.
fn front_chains(range: &Range, after: i64, end: i64, gap: f64, parts: usize) -> Vec<Range> {
    let step = (LEADS_PER_CHAIN * gap).round().max(1.0) as i64;
    let inner = (1..parts as i64).map(|i| after.saturating_add(step.saturating_mul(i)));
    cut(range, after, inner, end, gap)
}

/// The ranges between `after`, the `inner` bounds (ascending; those at or past `end` are
/// dropped) and `end`. The last keeps `range`'s boundedness; the others are bounded.
fn cut(
    range: &Range,
    after: i64,
    inner: impl Iterator<Item = i64>,
    end: i64,
    gap: f64,
) -> Vec<Range> {
    let mut uppers: Vec<i64> = inner.filter(|u| *u < end).collect();
    uppers.push(end);
    let mut out = Vec::with_capacity(uppers.len());
    let mut from = after;
    let last = uppers.len() - 1;
    for (i, upper) in uppers.into_iter().enumerate() {
        if upper <= from {
            continue;
        }
        out.push(Range {
            after: from,
            upper: Some(upper),
            bounded: if i == last { range.bounded } else { true },
            count: None,
            gap,
        });
        from = upper;
    }
    out
}

/// The chains' shared state.
#[derive(Default)]
struct Sched {
    /// Ranges no chain has taken yet.
    queue: VecDeque<Range>,
    /// Chains reading a range.
    active: usize,
    /// Chains waiting for one.
    idle: usize,
    /// The export is over: a chain failed (other than incomplete) or the receiver left.
    stop: bool,
}

struct Chains<'a> {
    client: &'a Bitrix24Client,
    /// The export's list method, whose operating budget the splits weigh.
    method: String,
    sched: Mutex<Sched>,
    wake: Notify,
}

impl Coordinator for Chains<'_> {
    fn stopped(&self) -> bool {
        lock(&self.sched).stop
    }

    fn split(&self, range: &Range, cursor: i64, limit: i64, gap: f64) -> Option<i64> {
        let pieces = {
            let mut s = lock(&self.sched);
            if s.idle == 0 || !s.queue.is_empty() || s.stop {
                return None;
            }
            let gap = gap.max(1.0);
            let left = (limit - cursor).max(0) as f64 / gap;
            let chains = (left / LEADS_PER_CHAIN).ceil();
            if chains < 2.0 {
                return None;
            }
            let parts = (s.idle + 1).min(chains as usize);
            // The estimate from a range's start can be far off for the rest of it (a
            // cluster under a sparse tail), so only the chains about to run at once are
            // weighed against the budget left, not the whole range.
            if self.client.operating_headroom(&self.method) < parts as f64 * CHAIN_SECS {
                return None;
            }
            let mut pieces = front_chains(range, cursor, limit, gap, parts);
            if pieces.len() < 2 {
                return None;
            }
            let mine = pieces.remove(0);
            tracing::debug!(
                after_id = cursor,
                keep_upto = ?mine.upper,
                handed = pieces.len(),
                "handing part of a range to idle chains"
            );
            s.queue.extend(pieces);
            mine.upper
        };
        self.wake.notify_waiters();
        pieces
    }
}

impl Chains<'_> {
    async fn worker(&self, reader: &Reader<'_>) -> Result<(), ExtractError> {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            // Registered before the state is read, so a wake-up in between is not lost.
            woken.as_mut().enable();
            let next = {
                let mut s = lock(&self.sched);
                if s.stop {
                    return Ok(());
                }
                if let Some(range) = s.queue.pop_front() {
                    s.active += 1;
                    Some(range)
                } else if s.active == 0 {
                    return Ok(());
                } else {
                    s.idle += 1;
                    None
                }
            };
            let Some(range) = next else {
                woken.await;
                lock(&self.sched).idle -= 1;
                continue;
            };
            let res = read_range(reader, range, self).await;
            {
                let mut s = lock(&self.sched);
                s.active -= 1;
                match &res {
                    Ok(End::Closed) => s.stop = true,
                    Err(ExtractError::Incomplete { .. }) | Ok(_) => {}
                    Err(_) => s.stop = true,
                }
            }
            self.wake.notify_waiters();
            res?;
        }
    }
}

/// Read the extent with up to `workers` chains at once (see the module docs).
pub(super) async fn export_parallel(
    client: &Bitrix24Client,
    filter: &ExportFilter,
    extent: Extent,
    workers: usize,
    out: mpsc::Sender<Vec<Value>>,
) -> Result<ExportStats, ExtractError> {
    let stats = Mutex::new(ExportStats::default());
    let reader = Reader {
        client,
        filter,
        out: &out,
        stats: &stats,
    };
    let top = extent.max_id;
    let chains = Chains {
        client,
        method: filter.list_method(),
        sched: Mutex::new(Sched {
            queue: plan(&extent, workers).into(),
            ..Sched::default()
        }),
        wake: Notify::new(),
    };
    tracing::debug!(
        workers,
        ranges = lock(&chains.sched).queue.len(),
        "parallel export"
    );
    let ends = futures::future::join_all((0..workers).map(|_| chains.worker(&reader))).await;
    let mut errors: Vec<ExtractError> = ends.into_iter().filter_map(Result::err).collect();
    if let Some(i) = errors
        .iter()
        .position(|e| !matches!(e, ExtractError::Incomplete { .. }))
    {
        return Err(errors.swap_remove(i));
    }
    // Every range that could be read was: report where the lowest one stopped, against
    // the highest ID of the whole export (the range's own bound means nothing to a DBA).
    if let Some(mut e) = errors.into_iter().min_by_key(|e| match e {
        ExtractError::Incomplete { cursor, .. } => *cursor,
        _ => i64::MAX,
    }) {
        if let ExtractError::Incomplete {
            extent: reported, ..
        } = &mut e
        {
            *reported = (*reported).max(top);
        }
        return Err(e);
    }
    Ok(stats.into_inner().unwrap_or_else(|e| e.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extent(max_id: i64, gap: f64) -> Extent {
        Extent {
            max_id,
            count: None,
            gap,
        }
    }

    fn bounds(ranges: &[Range]) -> Vec<(i64, i64, bool)> {
        ranges
            .iter()
            .map(|r| (r.after, r.upper.unwrap(), r.bounded))
            .collect()
    }

    #[test]
    fn ranges_hold_whole_chains() {
        // 25,000 dense leads: 10 chains over 4 ranges, the lower ones take the odd ones.
        assert_eq!(
            bounds(&plan(&extent(25_000, 1.0), 4)),
            vec![
                (0, 7_500, true),
                (7_500, 15_000, true),
                (15_000, 20_000, true),
                (20_000, 25_000, false)
            ]
        );
        // IDs 7 apart: the boundaries are multiples of 2,500 × 7, i.e. lead IDs.
        assert_eq!(
            bounds(&plan(&extent(35_000, 7.0), 4)),
            vec![(0, 17_500, true), (17_500, 35_000, false)]
        );
        // One lead over a multiple: its own small top range.
        assert_eq!(
            bounds(&plan(&extent(5_001, 1.0), 4)),
            vec![
                (0, 2_500, true),
                (2_500, 5_000, true),
                (5_000, 5_001, false)
            ]
        );
        assert_eq!(bounds(&plan(&extent(800, 9.0), 4)), vec![(0, 800, false)]);
    }

    #[test]
    fn a_split_keeps_the_top_open_and_hands_whole_chains() {
        let top = Range {
            after: 0,
            upper: Some(100_000),
            bounded: false,
            count: None,
            gap: 1.0,
        };
        let pieces = front_chains(&top, 2_500, 100_000, 1.0, 4);
        assert_eq!(
            bounds(&pieces),
            vec![
                (2_500, 5_000, true),
                (5_000, 7_500, true),
                (7_500, 10_000, true),
                (10_000, 100_000, false)
            ]
        );
        // IDs 7 apart: one chain is 17,500 IDs; a bounded range stays bounded.
        let inner = Range {
            bounded: true,
            ..top
        };
        assert_eq!(
            bounds(&front_chains(&inner, 7, 40_000, 7.0, 3)),
            vec![
                (7, 17_507, true),
                (17_507, 35_007, true),
                (35_007, 40_000, true)
            ]
        );
    }
}
