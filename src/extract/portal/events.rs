//! The portal's event methods (OAuth applications only; docs/bitrix24-api.md §7):
//! `event.bind` / `event.get` / `event.unbind` for outbound and offline bindings, and the
//! offline queue: `event.offline.get` with `clear=0` (the rows stay reserved under the
//! answer's `process_id`) and `event.offline.clear` once they are safely queued here.

use serde_json::{json, Value};

use super::describe_json;
use crate::extract::client::{Bitrix24Client, ExtractError, SubResult};

/// The CRM events of an entity type: (`ONCRM<TYPE>ADD`, `...UPDATE`, `...DELETE`), e.g.
/// "lead" → `ONCRMLEADADD`. None for a type b24sync does not know.
pub fn crm_events(entity: &str) -> Option<[String; 3]> {
    let upper = match entity {
        "lead" | "contact" | "company" => entity.to_ascii_uppercase(),
        _ => return None,
    };
    Some(["ADD", "UPDATE", "DELETE"].map(|what| format!("ONCRM{upper}{what}")))
}

/// `event.bind`: `event` to `handler` (outbound), or into the app's offline queue.
pub async fn bind_event(
    client: &Bitrix24Client,
    event: &str,
    handler: Option<&str>,
    offline: bool,
) -> Result<(), ExtractError> {
    let mut params = json!({ "event": event });
    if let Some(h) = handler {
        params["handler"] = json!(h);
    }
    if offline {
        params["event_type"] = json!("offline");
    }
    client.call("event.bind", &params).await.map(drop)
}

/// `event.get`: the app's bindings, as the portal lists them (`event`, `handler`,
/// `auth_type`, `offline`).
pub async fn bound_events(client: &Bitrix24Client) -> Result<Vec<Value>, ExtractError> {
    let answer = client.call("event.get", &json!({})).await?;
    match answer.result {
        Value::Array(items) => Ok(items),
        other => Err(protocol(client, "event.get", &other, "a list of bindings")),
    }
}

/// `event.unbind`: returns how many bindings went.
pub async fn unbind_event(
    client: &Bitrix24Client,
    event: &str,
    handler: Option<&str>,
    offline: bool,
) -> Result<u64, ExtractError> {
    let mut params = json!({ "event": event });
    if let Some(h) = handler {
        params["handler"] = json!(h);
    }
    if offline {
        params["event_type"] = json!("offline");
    }
    let answer = client.call("event.unbind", &params).await?;
    Ok(answer
        .result
        .get("count")
        .and_then(|c| {
            c.as_u64()
                .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(0))
}

/// One offline event: its name and the record ID it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineEvent {
    pub event: String,
    pub id: Option<i64>,
}

/// `event.offline.get` with `clear=0`: up to `limit` events, reserved under the returned
/// process ID until [`clear_offline`] (`process_id` given: that process's events again, for
/// a reader that stopped before queueing them).
pub async fn offline_events(
    client: &Bitrix24Client,
    limit: u32,
    process_id: Option<&str>,
) -> Result<(Option<String>, Vec<OfflineEvent>), ExtractError> {
    let answer = client
        .call("event.offline.get", &offline_get_params(limit, process_id))
        .await?;
    offline_answer(client, &answer.result)
}

fn offline_get_params(limit: u32, process_id: Option<&str>) -> Value {
    let mut params = json!({ "clear": 0, "limit": limit });
    if let Some(p) = process_id {
        params["process_id"] = json!(p);
    }
    params
}

/// One request for a poll: `event.offline.clear` of `done` (a process whose events are
/// queued already) and the next `event.offline.get` with `clear=0`, in one `batch` (its
/// sub-commands run in order). A failed clear is only logged: those events are queued here,
/// and the portal forgets reserved rows on its own.
pub async fn clear_and_get_offline(
    client: &Bitrix24Client,
    done: &str,
    limit: u32,
) -> Result<(Option<String>, Vec<OfflineEvent>), ExtractError> {
    let commands = vec![
        (
            "clear".to_string(),
            format!(
                "event.offline.clear?{}",
                crate::extract::query::build(&json!({ "process_id": done }))
            ),
        ),
        (
            "get".to_string(),
            format!(
                "event.offline.get?{}",
                crate::extract::query::build(&offline_get_params(limit, None))
            ),
        ),
    ];
    let mut answers = client.batch(&commands).await?;
    match answers.remove("clear") {
        Some(SubResult::Ok { .. }) => {}
        Some(SubResult::Err { code, description }) => {
            let reason = client.sub_error("event.offline.clear", &code, &description)?;
            tracing::warn!(
                "event.offline.clear failed ({reason}); those events are queued already"
            );
        }
        Some(SubResult::Missing) | None => {
            tracing::warn!("event.offline.clear gave no answer; those events are queued already")
        }
    }
    match answers.remove("get") {
        Some(SubResult::Ok { result, .. }) => offline_answer(client, &result),
        Some(SubResult::Err { code, description }) => {
            let reason = client.sub_error("event.offline.get", &code, &description)?;
            Err(ExtractError::Unreachable {
                portal: client.portal(),
                method: "event.offline.get (in batch)".into(),
                attempts: 1,
                secs: 0,
                last: reason,
            })
        }
        Some(SubResult::Missing) | None => Err(ExtractError::Protocol {
            portal: client.portal(),
            method: "batch".into(),
            detail: "the event.offline.get sub-command's answer is missing".into(),
        }),
    }
}

fn offline_answer(
    client: &Bitrix24Client,
    result: &Value,
) -> Result<(Option<String>, Vec<OfflineEvent>), ExtractError> {
    let pid = result
        .get("process_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|p| !p.is_empty());
    let events = match result.get("events") {
        Some(Value::Array(items)) => items.iter().map(offline_event).collect(),
        Some(Value::Object(items)) => items.values().map(offline_event).collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(other) => {
            return Err(protocol(
                client,
                "event.offline.get",
                other,
                "a list of events",
            ))
        }
    };
    Ok((pid, events))
}

fn offline_event(v: &Value) -> OfflineEvent {
    let id = v.pointer("/EVENT_DATA/FIELDS/ID").and_then(|id| {
        id.as_i64()
            .or_else(|| id.as_str().and_then(|s| s.trim().parse().ok()))
    });
    OfflineEvent {
        event: v
            .get("EVENT_NAME")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        id,
    }
}

/// `event.offline.clear`: removes every event reserved under `process_id`.
pub async fn clear_offline(client: &Bitrix24Client, process_id: &str) -> Result<(), ExtractError> {
    client
        .call("event.offline.clear", &json!({ "process_id": process_id }))
        .await
        .map(drop)
}

fn protocol(client: &Bitrix24Client, method: &str, got: &Value, wanted: &str) -> ExtractError {
    ExtractError::Protocol {
        portal: client.portal(),
        method: method.into(),
        detail: format!("answered {} instead of {wanted}", describe_json(got)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crm_events_are_named_by_entity_type() {
        assert_eq!(
            crm_events("lead").unwrap(),
            ["ONCRMLEADADD", "ONCRMLEADUPDATE", "ONCRMLEADDELETE"]
        );
        assert!(crm_events("deal").is_none());
    }

    #[test]
    fn offline_events_name_their_record() {
        let e = offline_event(
            &json!({"EVENT_NAME": "ONCRMLEADUPDATE", "EVENT_DATA": {"FIELDS": {"ID": "42"}}}),
        );
        assert_eq!((e.event.as_str(), e.id), ("ONCRMLEADUPDATE", Some(42)));
        assert_eq!(offline_event(&json!({})).id, None);
    }
}
