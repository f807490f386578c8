//! The portal's users that leads are assigned to (`ASSIGNED_BY_ID`), read with `user.get`
//! so the caller lookup can name the operator and give their internal extension.
//!
//! Only the users asked for are read: 50 IDs per `user.get` sub-command (one page of it),
//! 50 sub-commands per `batch` request, so a call centre's few hundred operators cost one
//! request per sync. `user.get` needs the webhook's `user` scope (`user_basic` is enough for
//! names and `UF_PHONE_INNER`); a webhook without it gets [`UsersAnswer::NoScope`] rather
//! than an error, since the sync itself does not need the users.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::extract::client::{Bitrix24Client, ExtractError, SubResult};
use crate::extract::paging::{BATCH_SIZE, PAGE_SIZE};
use crate::extract::query;
use crate::model::Operator;

/// The Bitrix24 error code of a call the webhook has no scope for.
const NO_SCOPE: &str = "insufficient_scope";

/// What `user.get` gave.
#[derive(Debug, Clone, PartialEq)]
pub enum UsersAnswer {
    /// The users found, keyed by ID (asked-for users the portal did not return are absent).
    Users(BTreeMap<String, Operator>),
    /// The webhook lacks the `user` scope: Bitrix24's words, for the warning.
    NoScope(String),
}

/// Read the users with these IDs (each a Bitrix24 user ID, digits only).
pub async fn fetch_users(
    client: &Bitrix24Client,
    ids: &[String],
) -> Result<UsersAnswer, ExtractError> {
    let mut found = BTreeMap::new();
    for request in ids.chunks(PAGE_SIZE * BATCH_SIZE) {
        let commands: Vec<(String, String)> = request
            .chunks(PAGE_SIZE)
            .enumerate()
            .map(|(i, part)| {
                let params = json!({ "FILTER": { "ID": part } });
                (
                    format!("u{i}"),
                    format!("user.get?{}", query::build(&params)),
                )
            })
            .collect();
        let answers = match client.batch(&commands).await {
            Ok(a) => a,
            Err(ExtractError::Refused {
                code, description, ..
            }) if code == NO_SCOPE => return Ok(UsersAnswer::NoScope(description)),
            Err(e) => return Err(e),
        };
        for (_, answer) in answers {
            match answer {
                SubResult::Ok { result, .. } => {
                    for user in result.as_array().into_iter().flatten() {
                        if let Some(op) = operator(user) {
                            found.insert(op.user_id.clone(), op);
                        }
                    }
                }
                SubResult::Err { code, description } if code == NO_SCOPE => {
                    return Ok(UsersAnswer::NoScope(description))
                }
                SubResult::Err { code, description } => {
                    // Fatal refusals (a revoked webhook) surface as errors; anything else
                    // that might heal is also an error here: the caller decides to go on.
                    let reason = client.sub_error("user.get", &code, &description)?;
                    return Err(ExtractError::Protocol {
                        portal: client.portal(),
                        method: "user.get (in batch)".into(),
                        detail: reason,
                    });
                }
                SubResult::Missing => {
                    return Err(ExtractError::Protocol {
                        portal: client.portal(),
                        method: "batch".into(),
                        detail: "a user.get sub-command's answer is missing".into(),
                    })
                }
            }
        }
    }
    Ok(UsersAnswer::Users(found))
}

/// Whether the credentials may read users (the `user` scope): one `user.get` call.
pub async fn probe_users(client: &Bitrix24Client) -> Result<(), ExtractError> {
    client
        .call("user.get", &json!({ "filter": { "ID": 1 } }))
        .await
        .map(|_| ())
}

/// One `user.get` row as an [`Operator`]; `None` without a usable ID.
pub fn operator(user: &Value) -> Option<Operator> {
    let text = |k: &str| match user.get(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let user_id = text("ID")?;
    // ACTIVE is a JSON boolean in `user.get`; older portals and other methods say "Y"/"N".
    let active = match user.get("ACTIVE") {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => match s.as_str() {
            "Y" | "1" | "true" => Some(true),
            "N" | "0" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    };
    Some(Operator {
        user_id,
        name: text("NAME"),
        last_name: text("LAST_NAME"),
        email: text("EMAIL"),
        phone_inner: text("UF_PHONE_INNER"),
        active,
        details: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_rows_become_operators() {
        let op = operator(&json!({
            "ID": "7", "ACTIVE": true, "NAME": "Анна", "LAST_NAME": " Смирнова ",
            "EMAIL": "", "UF_PHONE_INNER": "107"
        }))
        .unwrap();
        assert_eq!(op.user_id, "7");
        assert_eq!(op.last_name.as_deref(), Some("Смирнова"));
        assert_eq!(op.email, None);
        assert_eq!(op.phone_inner.as_deref(), Some("107"));
        assert_eq!(op.active, Some(true));
        assert!(op.details);
        let op = operator(&json!({"ID": 8, "ACTIVE": "N", "UF_PHONE_INNER": null})).unwrap();
        assert_eq!(
            (op.user_id.as_str(), op.active, op.phone_inner),
            ("8", Some(false), None)
        );
        assert_eq!(operator(&json!({"NAME": "no id"})), None);
    }
}
