//! The ways of reading the leads that `benches/methods.rs` compares, apart from (d),
//! which is `run::sync` itself. Each sends its pages to the loader's channel.

use std::collections::HashMap;

use b24sync::extract::client::{Bitrix24Client, SubResult};
use b24sync::extract::paging::{self, BATCH_SIZE, PAGE_SIZE};
use b24sync::extract::query;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{ChildReport, SOLUTION, WIDE_SELECT};

pub(super) fn wide_select() -> Vec<Value> {
    WIDE_SELECT.iter().map(|s| json!(s)).collect()
}

pub(super) fn rows(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

/// (a) As the old Oktell import did: page through `crm.lead.list` by `next` with `select *`
/// (counted, offset `start`), then fetch each lead with `crm.lead.get` for its phones.
pub(super) async fn oktell(
    client: &Bitrix24Client,
    limit: usize,
    tx: &mpsc::Sender<Vec<Value>>,
    report: &mut ChildReport,
) {
    let mut start = 0u64;
    let mut read = 0usize;
    loop {
        let resp = client
            .call("crm.lead.list", &json!({"select": ["*"], "start": start}))
            .await
            .expect("crm.lead.list");
        report.list_pages += 1;
        report.list_secs += resp.time.server_secs();
        let mut full = Vec::new();
        for lead in rows(resp.result) {
            let id = lead.get("ID").cloned().unwrap_or(Value::Null);
            let got = client
                .call("crm.lead.get", &json!({ "id": id }))
                .await
                .expect("crm.lead.get");
            report.get_calls += 1;
            report.get_secs += got.time.server_secs();
            full.push(got.result);
        }
        read += full.len();
        tx.send(full).await.expect("loader alive");
        match resp.next {
            Some(next) if read < limit => start = next,
            _ => return,
        }
    }
}

/// (b) Page by `next` with everything selected: counted, offset `start`.
pub(super) async fn by_next_wide(
    client: &Bitrix24Client,
    limit: usize,
    tx: &mpsc::Sender<Vec<Value>>,
    report: &mut ChildReport,
) {
    let mut start = 0u64;
    let mut read = 0usize;
    loop {
        let resp = client
            .call(
                "crm.lead.list",
                &json!({"order": {"ID": "ASC"}, "select": wide_select(), "start": start}),
            )
            .await
            .expect("crm.lead.list");
        report.list_pages += 1;
        report.list_secs += resp.time.server_secs();
        let page = rows(resp.result);
        read += page.len();
        tx.send(page).await.expect("loader alive");
        match resp.next {
            Some(next) if read < limit => start = next,
            _ => return,
        }
    }
}

pub(super) fn id_of(lead: &Value) -> Option<i64> {
    match lead.get("ID")? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// (c) Mirrors `bitrix24/b24phpsdk` `src/Core/Batch.php` `getTraversableList`: a counted
/// first page (`start=0`) for `total` and its last ID; when `total > 50` a counted page in
/// reverse order for the highest ID; then one `>=ID`/`<ID` range of 50 *IDs* per sub-call
/// (`<=ID` on the last), `start=-1`, 50 sub-calls per `batch`. (The SDK itself halts on
/// errors; nothing fails here, so `halt` makes no difference.)
pub(super) async fn sdk_traversable_list(
    client: &Bitrix24Client,
    tx: &mpsc::Sender<Vec<Value>>,
    report: &mut ChildReport,
) {
    let order = json!({"ID": "ASC"});
    let first = client
        .call(
            "crm.lead.list",
            &json!({"order": order, "filter": {}, "select": wide_select(), "start": 0}),
        )
        .await
        .expect("first page");
    report.list_pages += 1;
    report.list_secs += first.time.server_secs();
    let total = first.total.unwrap_or(0);
    let page = rows(first.result);
    let last_in_first = page.iter().filter_map(id_of).max();
    tx.send(page).await.expect("loader alive");
    let Some(last_in_first) = last_in_first.filter(|_| total > PAGE_SIZE as u64) else {
        return;
    };
    let last = client
        .call(
            "crm.lead.list",
            &json!({"order": {"ID": "DESC"}, "filter": {}, "select": wide_select(), "start": 0}),
        )
        .await
        .expect("last page");
    report.list_pages += 1;
    report.list_secs += last.time.server_secs();
    let last_id = rows(last.result)
        .first()
        .and_then(id_of)
        .expect("a last ID");

    let mut commands = Vec::new();
    let mut start_id = last_in_first + 1;
    while start_id <= last_id {
        let filter = if last_id - start_id > PAGE_SIZE as i64 {
            json!({">=ID": start_id, "<ID": start_id + PAGE_SIZE as i64})
        } else {
            json!({">=ID": start_id, "<=ID": last_id})
        };
        let params =
            json!({"order": order, "filter": filter, "select": wide_select(), "start": -1});
        commands.push((
            format!("c{}", commands.len()),
            format!("crm.lead.list?{}", query::build(&params)),
        ));
        start_id += PAGE_SIZE as i64;
    }
    for chunk in commands.chunks(BATCH_SIZE) {
        let mut results: HashMap<String, SubResult> = client
            .batch(chunk)
            .await
            .expect("batch")
            .into_iter()
            .collect();
        for (name, _) in chunk {
            report.list_pages += 1;
            match results.remove(name) {
                Some(SubResult::Ok { result, .. }) => {
                    tx.send(rows(result)).await.expect("loader alive");
                }
                other => panic!("sub-call {name} failed: {other:?}"),
            }
        }
    }
    // Sub-call server time: the simulator's total is the authority; see the parent.
    report.list_secs = client.stats().server_secs - report.other_secs;
}

/// (p) Ours with parallel chains: the highest-ID probe (one `batch`, as the run asks it),
/// then `paging::export` with the default options (up to 4 chains at once).
pub(super) async fn parallel_chains(client: &Bitrix24Client, tx: &mpsc::Sender<Vec<Value>>) {
    let filter = paging::ExportFilter {
        entity: b24sync::schema::LEAD,
        modified_since: None,
        select: paging::select_fields(b24sync::schema::LEAD, &[SOLUTION.to_string()]),
    };
    let probe = client
        .batch(&[("probe".into(), paging::probe_command(&filter))])
        .await
        .expect("probe");
    let extent = paging::extent_of(probe.get("probe")).expect("extent");
    let options = paging::PagingOptions::default();
    eprintln!(
        "    (p) {} chains planned",
        paging::planned_chains(client, "crm.lead.list", options.max_chains, &extent)
    );
    paging::export(client, options, &filter, Some(extent), tx.clone())
        .await
        .expect("export");
}

/// Batches of (f) in flight at once: fast_bitrix24's `request_pool_size`; the client's
/// leaky bucket paces them as fast_bitrix24's own does (2/s after a burst).
pub(super) const F_POOL: usize = 50;

/// (f) Mirrors fast_bitrix24's `get_all` (`fast_bitrix24/bitrix.py`, `srh.py`): one counted
/// first page for `total`, then a sub-call per remaining page by offset (`start` = 50,
/// 100, …; every one counted), 50 sub-calls per `batch`, every batch sent at once and
/// paced only by the leaky bucket. Sub-calls the operating limit refuses are sent again
/// after the window moves, as the library retries them. Our exact `select` and
/// `order[ID]=ASC`, so that only the paging strategy differs from ours.
pub(super) async fn fast_bitrix24_get_all(
    client: &Bitrix24Client,
    tx: &mpsc::Sender<Vec<Value>>,
    report: &mut ChildReport,
) {
    use futures::StreamExt;
    let select = paging::select_fields(b24sync::schema::LEAD, &[SOLUTION.to_string()]);
    let order = json!({"ID": "ASC"});
    let first = client
        .call(
            "crm.lead.list",
            &json!({"order": order, "select": select, "start": 0}),
        )
        .await
        .expect("first page");
    let total = first.total.unwrap_or(0);
    tx.send(rows(first.result)).await.expect("loader alive");
    let commands: Vec<(String, String)> = (PAGE_SIZE as u64..total)
        .step_by(PAGE_SIZE)
        .map(|start| {
            let params = json!({"order": order, "select": select, "start": start});
            (
                format!("s{start}"),
                format!("crm.lead.list?{}", query::build(&params)),
            )
        })
        .collect();
    let batches: Vec<Vec<(String, String)>> =
        commands.chunks(BATCH_SIZE).map(<[_]>::to_vec).collect();
    futures::stream::iter(batches)
        .map(|mut chunk| async move {
            while !chunk.is_empty() {
                let mut results = client.batch(&chunk).await.expect("batch");
                let mut failed = Vec::new();
                for (name, command) in chunk {
                    match results.remove(&name) {
                        Some(SubResult::Ok { result, .. }) => {
                            tx.send(rows(result)).await.expect("loader alive");
                        }
                        Some(SubResult::Err { code, .. }) => {
                            if let Some(wait) = client.sub_error_wait("crm.lead.list", &code) {
                                client.pause(wait).await.expect("pause");
                            }
                            failed.push((name, command));
                        }
                        _ => failed.push((name, command)),
                    }
                }
                chunk = failed;
            }
        })
        .buffer_unordered(F_POOL)
        .collect::<Vec<()>>()
        .await;
    report.list_secs = client.stats().server_secs - report.other_secs;
}
