//! The solution field (`crm.lead.userfield.list`): the list-type user field whose value
//! `bitrix_lead_solution` keeps, with the display names of its list.

use serde_json::{json, Value};

use super::describe_answer;
use crate::extract::client::{Bitrix24Client, ExtractError, SubResult};
use crate::extract::query;

const METHOD: &str = "crm.lead.userfield.list";
/// The prelude's sub-command name for the field's description.
pub(crate) const SUB_COMMAND: &str = "solution_field";

/// Why the solution field's description could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// The portal has no user field of leads with that code: a setting to fix.
    #[error(
        "the solution field {field} does not exist on the portal: set --solution-field (B24SYNC_SOLUTION_FIELD) \
         to the UF_CRM_... code of the list field, as shown in CRM → Settings → Custom fields → Leads"
    )]
    Missing { field: String },
    /// The field exists but is not a list: a setting to fix.
    #[error(
        "the solution field {field} is of type {kind:?}, not a list (enumeration): choose a list field"
    )]
    NotAList { field: String, kind: String },
}

/// The sub-command that reads the field's description.
pub(crate) fn sub_command(field: &str) -> (String, String) {
    let q = query::build(&json!({ "filter": { "FIELD_NAME": field } }));
    (SUB_COMMAND.to_string(), format!("{METHOD}?{q}"))
}

/// The description of the solution field (`FIELD_NAME`, `USER_TYPE_ID`, `LIST`), in one
/// request; `transform::solution_labels_from_userfield` reads the labels from it.
pub async fn solution_field(client: &Bitrix24Client, field: &str) -> Result<Value, LabelsError> {
    let answers = client.batch(&[sub_command(field)]).await?;
    field_of_answer(field, answers.get(SUB_COMMAND), client)
}

/// The field's description from a `crm.lead.userfield.list` sub-answer.
pub(crate) fn field_of_answer(
    field: &str,
    answer: Option<&SubResult>,
    client: &Bitrix24Client,
) -> Result<Value, LabelsError> {
    match answer {
        Some(SubResult::Ok {
            result: Value::Array(entries),
            ..
        }) => list_field(entries, field).cloned(),
        Some(SubResult::Err { code, description }) => {
            client.sub_error(METHOD, code, description)?;
            Err(protocol(client, format!("{code}: {description}")).into())
        }
        // Not a list: the portal said something this build cannot read, which is not
        // "the field does not exist".
        other => Err(protocol(
            client,
            format!(
                "{} instead of a list of user fields (looking for {field})",
                describe_answer(other)
            ),
        )
        .into()),
    }
}

fn protocol(client: &Bitrix24Client, detail: String) -> ExtractError {
    ExtractError::Protocol {
        portal: client.portal(),
        method: METHOD.into(),
        detail,
    }
}

/// The entry of `field` among the portal's user fields, if it is a list field.
fn list_field<'a>(entries: &'a [Value], field: &str) -> Result<&'a Value, LabelsError> {
    let entry = entries
        .iter()
        .find(|e| e.get("FIELD_NAME").and_then(Value::as_str) == Some(field))
        .ok_or_else(|| LabelsError::Missing {
            field: field.to_string(),
        })?;
    let kind = entry
        .get("USER_TYPE_ID")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != "enumeration" {
        return Err(LabelsError::NotAList {
            field: field.to_string(),
            kind: kind.to_string(),
        });
    }
    Ok(entry)
}

/// What `b24sync doctor` finds about the solution field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SolutionFieldCheck {
    /// The configured field is a list field with this many values.
    List { field: String, values: usize },
    /// The configured field does not exist.
    Missing { field: String },
    /// The configured field is not a list (`kind`: its `USER_TYPE_ID`, empty if none).
    NotAList { field: String, kind: String },
    /// No field is configured: the portal's list fields of leads, as (code, display name),
    /// so the DBA can pick one.
    NotSet {
        list_fields: Vec<(String, Option<String>)>,
    },
}

/// Check the configured solution field, or list the candidates when none is set (one
/// request either way).
pub async fn check_solution_field(
    client: &Bitrix24Client,
    field: Option<&str>,
) -> Result<SolutionFieldCheck, ExtractError> {
    let params = match field {
        Some(f) => json!({ "filter": { "FIELD_NAME": f } }),
        None => json!({}),
    };
    let answer = client.call(METHOD, &params).await?;
    let Some(entries) = answer.result.as_array() else {
        return Err(protocol(
            client,
            format!(
                "{} instead of a list of user fields",
                super::describe_json(&answer.result)
            ),
        ));
    };
    let Some(field) = field else {
        let list_fields = entries
            .iter()
            .filter(|f| f.get("USER_TYPE_ID").and_then(Value::as_str) == Some("enumeration"))
            .filter_map(|f| {
                let code = f.get("FIELD_NAME").and_then(Value::as_str)?;
                Some((code.to_string(), field_label(f)))
            })
            .collect();
        return Ok(SolutionFieldCheck::NotSet { list_fields });
    };
    Ok(match list_field(entries, field) {
        Ok(entry) => SolutionFieldCheck::List {
            field: field.to_string(),
            values: entry
                .get("LIST")
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0),
        },
        Err(LabelsError::NotAList { field, kind }) => SolutionFieldCheck::NotAList { field, kind },
        Err(_) => SolutionFieldCheck::Missing {
            field: field.to_string(),
        },
    })
}

/// A user field's display name: a plain label, or the label of the first language.
fn field_label(f: &Value) -> Option<String> {
    ["EDIT_FORM_LABEL", "LIST_COLUMN_LABEL"]
        .iter()
        .find_map(|k| match f.get(*k)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Object(by_lang) => by_lang
                .get("ru")
                .or_else(|| by_lang.get("en"))
                .or_else(|| by_lang.values().next())
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::client::ClientConfig;
    use crate::extract::Webhook;
    use tokio_util::sync::CancellationToken;

    fn client() -> Bitrix24Client {
        let webhook = Webhook::parse("https://acme.bitrix24.ru/rest/1/s3cr3t/").unwrap();
        Bitrix24Client::new(webhook, ClientConfig::default(), CancellationToken::new()).unwrap()
    }

    fn ok(result: Value) -> SubResult {
        SubResult::Ok {
            result,
            total: None,
            next: None,
        }
    }

    // 16.8: a malformed crm.lead.userfield.list answer is a protocol error naming the
    // method and what came back, not "the field does not exist".
    #[test]
    fn a_malformed_userfield_answer_is_not_a_missing_field() {
        let c = client();
        for answer in [
            Some(ok(json!({"FIELD_NAME": "UF_CRM_X"}))),
            Some(ok(json!("oops"))),
            None,
        ] {
            let err = field_of_answer("UF_CRM_X", answer.as_ref(), &c).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, LabelsError::Extract(ExtractError::Protocol { .. })),
                "{msg}"
            );
            assert!(msg.contains("crm.lead.userfield.list"), "{msg}");
            assert!(!msg.contains("does not exist"), "{msg}");
        }
        let err = field_of_answer("UF_CRM_X", Some(&ok(json!({"a": 1}))), &c).unwrap_err();
        assert!(err.to_string().contains("an object ({\"a\":1})"), "{err}");
        // A list without the field is the missing field.
        let err = field_of_answer("UF_CRM_X", Some(&ok(json!([]))), &c).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let entries = [json!({"FIELD_NAME": "UF_CRM_X", "USER_TYPE_ID": "string"})];
        let err = field_of_answer("UF_CRM_X", Some(&ok(json!(entries))), &c).unwrap_err();
        assert!(err.to_string().contains("of type \"string\""), "{err}");
    }

    #[test]
    fn labels_of_fields_come_from_the_first_language() {
        assert_eq!(
            field_label(&json!({"EDIT_FORM_LABEL": {"en": "Result", "ru": "Итог"}})),
            Some("Итог".into())
        );
        assert_eq!(
            field_label(&json!({"LIST_COLUMN_LABEL": "Plain"})),
            Some("Plain".into())
        );
        assert_eq!(field_label(&json!({"EDIT_FORM_LABEL": ""})), None);
    }
}
