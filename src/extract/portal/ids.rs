//! Leads by ID: the `@ID` listing `errors retry` reads its leads with, and the access
//! probe of `doctor`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::describe_json;
use crate::extract::client::{Bitrix24Client, ExtractError, SubResult};
use crate::extract::paging::{BATCH_SIZE, PAGE_SIZE};
use crate::extract::query;
use crate::model::LeadId;
use crate::schema::{Entity, LEAD};

const METHOD: &str = "crm.lead.list";

/// The leads with these IDs that the portal lists, keyed by ID, with the fields `select`
/// names: 50 IDs per sub-command (one page), 50 sub-commands per request. A lead not
/// listed is absent; an answer that cannot be read is an error, never "these leads are
/// gone".
pub async fn leads_by_id(
    client: &Bitrix24Client,
    ids: &[LeadId],
    select: &[String],
) -> Result<BTreeMap<LeadId, Value>, ExtractError> {
    records_by_id(client, LEAD, ids, select).await
}

/// [`leads_by_id`] for any entity: its list method (`crm.contact.list`) with `@ID`.
pub async fn records_by_id(
    client: &Bitrix24Client,
    entity: Entity,
    ids: &[LeadId],
    select: &[String],
) -> Result<BTreeMap<LeadId, Value>, ExtractError> {
    let method = entity.method_name("list");
    let mut found = BTreeMap::new();
    for chunk in ids.chunks(PAGE_SIZE * BATCH_SIZE) {
        let commands: Vec<(String, String)> = chunk
            .chunks(PAGE_SIZE)
            .enumerate()
            .map(|(i, part)| {
                let params = json!({ "filter": { "@ID": part }, "select": select, "start": -1 });
                (
                    format!("ids{i}"),
                    format!("{method}?{}", query::build(&params)),
                )
            })
            .collect();
        for (_, answer) in client.batch(&commands).await? {
            for lead in listed_leads(client, &method, answer)? {
                if let Some(id) = lead
                    .get("ID")
                    .and_then(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .or_else(|| v.as_i64().map(|n| n.to_string()))
                    })
                    .and_then(|s| s.trim().parse().ok())
                {
                    found.insert(id, lead);
                }
            }
        }
    }
    Ok(found)
}

/// The leads of one `crm.lead.list` sub-answer. Anything but a list is a protocol error.
fn listed_leads(
    client: &Bitrix24Client,
    method: &str,
    answer: SubResult,
) -> Result<Vec<Value>, ExtractError> {
    match answer {
        SubResult::Ok {
            result: Value::Array(leads),
            ..
        } => Ok(leads),
        SubResult::Ok { result, .. } => Err(ExtractError::Protocol {
            portal: client.portal(),
            method: format!("{method} (in batch)"),
            detail: format!(
                "answered {} instead of a list of records; nothing was changed",
                describe_json(&result)
            ),
        }),
        SubResult::Err { code, description } => {
            let reason = client.sub_error(method, &code, &description)?;
            Err(ExtractError::Unreachable {
                portal: client.portal(),
                method: format!("{method} (in batch)"),
                attempts: 1,
                secs: 0,
                last: reason,
            })
        }
        SubResult::Missing => Err(ExtractError::Protocol {
            portal: client.portal(),
            method: "batch".into(),
            detail: "a sub-command's answer is missing".into(),
        }),
    }
}

/// Whether the credentials may read leads (the `crm` scope): the highest ID, uncounted.
pub async fn probe_leads(client: &Bitrix24Client) -> Result<(), ExtractError> {
    let probe = json!({ "order": {"ID": "DESC"}, "select": ["ID"], "start": -1 });
    client.call(METHOD, &probe).await.map(|_| ())
}
