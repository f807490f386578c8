//! Reading chosen leads whole, as Bitrix24 has them: `crm.lead.get` returns every
//! standard field, every user field and the non-empty multi-fields, which the export's
//! named `select` leaves out. Used for the leads that get a row in
//! `bitrix_import_lead_error`, so that row keeps the full lead without every export
//! page asking for every field.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use crate::extract::client::{Bitrix24Client, ExtractError, SubResult};
use crate::extract::paging::BATCH_SIZE;
use crate::extract::query;
use crate::schema::{Entity, LEAD};

/// Failed rounds in a row (sub-calls that erred or went missing) before giving up.
const MAX_ROUNDS: u32 = 6;

/// The leads with these IDs as `crm.lead.get` returns them, keyed by ID: one `batch` of
/// up to 50 `crm.lead.get` sub-calls per request. An ID the portal does not have (never
/// had, or deleted: "Not found") is simply absent, as are IDs that cannot exist (≤ 0).
/// Sub-calls that fail in a way that can heal are asked again; a refusal (credentials,
/// permissions) fails the whole call.
pub async fn fetch_full_leads(
    client: &Bitrix24Client,
    ids: &[i64],
) -> Result<HashMap<i64, Value>, ExtractError> {
    fetch_full_records(client, LEAD, ids).await
}

/// [`fetch_full_leads`] for any entity: its `.get` method (`crm.contact.get`).
pub async fn fetch_full_records(
    client: &Bitrix24Client,
    entity: Entity,
    ids: &[i64],
) -> Result<HashMap<i64, Value>, ExtractError> {
    let get = entity.method_name("get");
    let wanted: BTreeSet<i64> = ids.iter().copied().filter(|id| *id > 0).collect();
    let wanted: Vec<i64> = wanted.into_iter().collect();
    let mut found = HashMap::with_capacity(wanted.len());
    for chunk in wanted.chunks(BATCH_SIZE) {
        let mut pending: Vec<i64> = chunk.to_vec();
        let mut failed_rounds = 0u32;
        while !pending.is_empty() {
            let commands: Vec<(String, String)> = pending
                .iter()
                .map(|id| {
                    let params = query::build(&json!({ "id": id }));
                    (format!("{}{id}", entity.name), format!("{get}?{params}"))
                })
                .collect();
            let mut answers = client.batch(&commands).await?;
            let mut again = Vec::new();
            let mut wait_code = String::new();
            for id in pending {
                match answers
                    .remove(&format!("{}{id}", entity.name))
                    .unwrap_or(SubResult::Missing)
                {
                    SubResult::Ok {
                        result: lead @ Value::Object(_),
                        ..
                    } => {
                        found.insert(id, lead);
                    }
                    SubResult::Ok { result, .. } => {
                        return Err(ExtractError::Protocol {
                            portal: client.portal(),
                            method: get.clone(),
                            detail: format!(
                                "lead {id} came back as {} instead of an object",
                                crate::extract::paging::json_kind(&result)
                            ),
                        })
                    }
                    SubResult::Err { code, description } if not_found(&code, &description) => {}
                    SubResult::Err { code, description } => {
                        // Fatal (a refusal) ends the call; anything else is asked again.
                        let reason = client.sub_error(&get, &code, &description)?;
                        tracing::warn!(lead = id, "{reason}; asking again");
                        wait_code = code;
                        again.push(id);
                    }
                    SubResult::Missing => again.push(id),
                }
            }
            if !again.is_empty() {
                failed_rounds += 1;
                if failed_rounds >= MAX_ROUNDS {
                    return Err(ExtractError::Unreachable {
                        portal: client.portal(),
                        method: format!("{get} (in batch)"),
                        attempts: failed_rounds,
                        secs: 0,
                        last: format!(
                            "{} of the leads asked for (first {}) kept failing",
                            again.len(),
                            again[0]
                        ),
                    });
                }
                if let Some(wait) = client.sub_error_wait(&get, &wait_code) {
                    client.pause(wait).await?;
                }
            }
            pending = again;
        }
    }
    Ok(found)
}

/// `crm.lead.get`'s answer for a lead the portal does not have: the error code is empty
/// and the description "Not found" (some versions send a `NOT_FOUND` code).
fn not_found(code: &str, description: &str) -> bool {
    let d = description
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    code.eq_ignore_ascii_case("NOT_FOUND") || (code.is_empty() && d == "not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_empty_code_not_found_answer_means_absent() {
        assert!(not_found("", "Not found"));
        assert!(not_found("", "Not found."));
        assert!(not_found("NOT_FOUND", "Lead is not found"));
        assert!(!not_found("", "Access denied."));
        assert!(!not_found("INTERNAL_SERVER_ERROR", "Not found"));
    }
}
