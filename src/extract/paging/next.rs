//! [`Paging::Next`](super::Paging::Next): one counted page per request, continuing while
//! Bitrix24 returns `next`; the cursor still moves by ID.

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::super::client::{Bitrix24Client, ExtractError};
use super::chain::ShortEnd;
use super::wire::{
    after_cursor, highest_ids_params, highest_of, list_params, protocol, reread_wait, rows_of,
};
use super::{ExportFilter, ExportStats, Extent, PAGE_SIZE};

pub(super) async fn export_next(
    client: &Bitrix24Client,
    filter: &ExportFilter,
    extent: Option<Extent>,
    pages: mpsc::Sender<Vec<Value>>,
) -> Result<ExportStats, ExtractError> {
    let method = filter.list_method();
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
            .call(&method, &list_params(filter, json!(cursor), 0, None))
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
            .call(&method, &highest_ids_params(filter, Some(cursor), None))
            .await?;
        let top = highest_of(resp.result).map_err(|detail| protocol(client, detail))?;
        limit = Some(want.min(top.unwrap_or(cursor)));
        if limit.is_some_and(|m| cursor >= m) {
            return Ok(stats);
        }
        rereading = true;
    }
}
