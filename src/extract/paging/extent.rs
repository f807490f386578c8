//! The extent probe (the highest IDs of the leads to read) and chain sizing from it.

use super::super::client::SubResult;
use super::super::query;
use super::wire::{highest_ids_params, lead_id, rows_of};
use super::{ExportFilter, PAGE_SIZE};

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
    #[cfg(test)]
    fn pages_after(&self, cursor: i64, available: usize, observed_gap: Option<f64>) -> usize {
        Reach::from(*self).pages_after(cursor, available, observed_gap)
    }

    /// The leads below `max_id` as the probe's gap estimates them (no lean): what the
    /// parallel export plans its ranges by.
    pub(super) fn estimated_leads(&self) -> f64 {
        match self.count {
            Some(n) => n as f64,
            None => self.max_id.max(0) as f64 / self.gap.max(1.0),
        }
    }
}

/// What one chain knows about the leads left in its range: up to `upper`, `count` of
/// them if known, about `gap` IDs apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Reach {
    pub upper: i64,
    pub count: Option<usize>,
    pub gap: f64,
}

impl From<Extent> for Reach {
    fn from(e: Extent) -> Reach {
        Reach {
            upper: e.max_id,
            count: e.count,
            gap: e.gap,
        }
    }
}

impl Reach {
    /// Pages to chain after `cursor`: never more than the leads left can fill.
    ///
    /// `observed_gap` is the average distance between the IDs this chain has read so
    /// far; where it is smaller than the expected gap, the IDs below are denser than
    /// those the estimate came from, and it is the better guess.
    pub fn pages_after(&self, cursor: i64, available: usize, observed_gap: Option<f64>) -> usize {
        let id_span = self.upper.saturating_sub(cursor).max(0) as f64;
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
        "{}?{}",
        filter.list_method(),
        query::build(&highest_ids_params(filter, None, None))
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
    fn the_plan_estimate_does_not_lean() {
        let sparse = Extent {
            max_id: 35_000,
            count: None,
            gap: 7.0,
        };
        assert_eq!(sparse.estimated_leads(), 5_000.0);
        let few = Extent {
            max_id: 90_000,
            count: Some(7),
            gap: 3.0,
        };
        assert_eq!(few.estimated_leads(), 7.0);
    }
}
