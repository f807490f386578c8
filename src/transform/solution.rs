//! The "solution" list field → `bitrix_lead_solution.sql_solution`, and reading the
//! list's labels (item ID → display name) from the portal's field descriptions.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::text::{describe, fit, text_of};
use crate::model::{Problem, ProblemKind, SMALL_TEXT_CHARS};

/// The display names of the selected list items, in the order received, without repeats,
/// joined with ", ". None when nothing is selected.
pub(crate) fn solution(
    lead: &Map<String, Value>,
    field: &str,
    labels: &HashMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let v = lead.get(field)?;
    // A multiple field sends an array of item IDs, a single one a bare ID; "nothing selected"
    // arrives as false, null, "" or [] depending on the field and the API version.
    let ids: Vec<&Value> = match v {
        Value::Null | Value::Bool(false) => return None,
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut names: Vec<String> = Vec::new();
    for id in ids {
        if matches!(id, Value::Bool(false)) {
            continue;
        }
        let id = match text_of(id) {
            Ok(None) => continue,
            Ok(Some(id)) => id,
            Err(got) => {
                problems.push(Problem {
                    field: field.to_string(),
                    kind: ProblemKind::WrongType,
                    detail: format!("expected a list value ID, got {got}: skipped"),
                });
                continue;
            }
        };
        let name = match labels.get(&id) {
            Some(name) => name.clone(),
            None => {
                problems.push(Problem {
                    field: field.to_string(),
                    kind: ProblemKind::UnknownListValue,
                    detail: format!(
                        "list value {id} is not in {field}'s list (deleted from the field?): stored as {id}"
                    ),
                });
                id
            }
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return None;
    }
    Some(fit(names.join(", "), SMALL_TEXT_CHARS, field, "", problems))
}

/// `{ID, VALUE}` items → ID (as text) → VALUE. Items without both are skipped.
fn labels_of_items(items: &[Value]) -> HashMap<String, String> {
    items
        .iter()
        .filter_map(|item| {
            let id = text_of(item.get("ID")?).ok()??;
            let name = text_of(item.get("VALUE")?).ok()??;
            Some((id, name))
        })
        .collect()
}

/// The labels of a list field from one `crm.lead.userfield.list` entry
/// (`{"FIELD_NAME": ..., "LIST": [{"ID", "VALUE", ...}]}`); the bare `LIST` array works too.
/// IDs may be strings or numbers. Empty when there is no list.
pub fn solution_labels_from_userfield(list: &Value) -> HashMap<String, String> {
    match list {
        Value::Array(items) => labels_of_items(items),
        Value::Object(entry) => match entry.get("LIST") {
            Some(Value::Array(items)) => labels_of_items(items),
            _ => HashMap::new(),
        },
        _ => HashMap::new(),
    }
}

/// The field descriptions of `crm.lead.fields`, whether given as its `result` or whole.
fn fields_map(fields: &Value) -> Option<&Map<String, Value>> {
    let map = fields.as_object()?;
    match map.get("result") {
        Some(Value::Object(inner)) if !map.contains_key("ID") => Some(inner),
        _ => Some(map),
    }
}

/// The labels of `field` from `crm.lead.fields` (`{FIELD: {"type": "enumeration",
/// "items": [{"ID", "VALUE"}]}}`). None when the field is not described at all.
pub fn solution_labels_from_fields(fields: &Value, field: &str) -> Option<HashMap<String, String>> {
    let desc = fields_map(fields)?.get(field)?;
    Some(match desc.get("items") {
        Some(Value::Array(items)) => labels_of_items(items),
        _ => HashMap::new(),
    })
}

/// Whether `field` is a list (`enumeration`) field according to `crm.lead.fields`;
/// `Err` says what is wrong in words fit for a configuration error.
pub fn is_list_field(fields: &Value, field: &str) -> Result<(), String> {
    let Some(map) = fields_map(fields) else {
        return Err(format!(
            "cannot check {field}: crm.lead.fields returned {}, not a list of fields",
            describe(fields)
        ));
    };
    let Some(desc) = map.get(field) else {
        let hint = map
            .keys()
            .find(|k| k.eq_ignore_ascii_case(field))
            .map(|k| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        return Err(format!("{field} is not a lead field on this portal{hint}"));
    };
    match desc.get("type").and_then(Value::as_str) {
        Some("enumeration") => Ok(()),
        Some(other) => Err(format!(
            "{field} is a field of type \"{other}\", not a list (enumeration) field"
        )),
        None => Err(format!(
            "{field} has no type in crm.lead.fields; expected a list (enumeration) field"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels() -> HashMap<String, String> {
        [
            ("55", "Ремонт"),
            ("56", "Замена \"под ключ\""),
            ("57", "Консультация"),
            ("58", "Ремонт"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn solution_values() {
        type Case = (
            Value,
            Option<&'static str>,
            Vec<(ProblemKind, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (json!(["55", "57"]), Some("Ремонт, Консультация"), vec![]),
            (json!(["57", "55"]), Some("Консультация, Ремонт"), vec![]),
            (json!([57, 56]), Some("Консультация, Замена \"под ключ\""), vec![]),
            (json!("56"), Some("Замена \"под ключ\""), vec![]),
            (json!(57), Some("Консультация"), vec![]),
            (json!(["55", "55", 55]), Some("Ремонт"), vec![]),
            // Two items with one name read as one.
            (json!(["55", "58"]), Some("Ремонт"), vec![]),
            (json!(false), None, vec![]),
            (json!(null), None, vec![]),
            (json!(""), None, vec![]),
            (json!([]), None, vec![]),
            (json!(["", null]), None, vec![]),
            (
                json!(["55", "99"]),
                Some("Ремонт, 99"),
                vec![(
                    ProblemKind::UnknownListValue,
                    "list value 99 is not in UF_CRM_SOLUTION's list (deleted from the field?): stored as 99",
                )],
            ),
            (
                json!([{"ID": "55"}, "57"]),
                Some("Консультация"),
                vec![(ProblemKind::WrongType, "expected a list value ID, got an object: skipped")],
            ),
            (
                json!(true),
                None,
                vec![(ProblemKind::WrongType, "expected a list value ID, got a boolean (true): skipped")],
            ),
        ];
        for (v, want, problems) in cases {
            let lead = json!({"ID": "1", "UF_CRM_SOLUTION": v.clone()});
            let mut p = Vec::new();
            let got = solution(
                lead.as_object().unwrap(),
                "UF_CRM_SOLUTION",
                &labels(),
                &mut p,
            );
            assert_eq!(got.as_deref(), want, "{v}");
            let p: Vec<_> = p.iter().map(|p| (p.kind, p.detail.as_str())).collect();
            assert_eq!(p, problems, "{v}");
        }
    }

    #[test]
    fn absent_solution_field_is_none_without_a_problem() {
        let mut p = Vec::new();
        let lead = json!({"ID": "1"});
        assert_eq!(
            solution(
                lead.as_object().unwrap(),
                "UF_CRM_SOLUTION",
                &labels(),
                &mut p
            ),
            None
        );
        assert!(p.is_empty());
    }

    #[test]
    fn long_solutions_are_cut() {
        let labels: HashMap<String, String> = (0..30)
            .map(|i| (i.to_string(), format!("{i:02}{}", "я".repeat(98))))
            .collect();
        let ids: Vec<String> = (0..30).map(|i| i.to_string()).collect();
        let lead = json!({"UF_CRM_S": ids});
        let mut p = Vec::new();
        let got = solution(lead.as_object().unwrap(), "UF_CRM_S", &labels, &mut p).unwrap();
        assert_eq!(got.chars().count(), 2000);
        assert!(got.starts_with("00яя"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, ProblemKind::Truncated);
        assert_eq!(
            p[0].detail,
            "3,058 characters; the column holds 2,000: stored the first 2,000"
        );
    }

    #[test]
    fn labels_from_a_userfield_entry() {
        let entry = json!({
            "ID": "123", "FIELD_NAME": "UF_CRM_SOLUTION", "USER_TYPE_ID": "enumeration",
            "LIST": [
                {"ID": "55", "SORT": "10", "VALUE": "Ремонт", "DEF": "N", "XML_ID": "a"},
                {"ID": 56, "SORT": "20", "VALUE": "Замена", "DEF": "N", "XML_ID": "b"},
                {"SORT": "30", "VALUE": "no id"},
                {"ID": "58"},
            ]
        });
        let want: HashMap<String, String> = [
            ("55".to_string(), "Ремонт".to_string()),
            ("56".to_string(), "Замена".to_string()),
        ]
        .into();
        assert_eq!(solution_labels_from_userfield(&entry), want);
        assert_eq!(solution_labels_from_userfield(&entry["LIST"]), want);
        assert!(solution_labels_from_userfield(&json!({"FIELD_NAME": "UF_X"})).is_empty());
        assert!(solution_labels_from_userfield(&json!("x")).is_empty());
    }

    fn fields() -> Value {
        json!({
            "ID": {"type": "integer", "isReadOnly": true},
            "TITLE": {"type": "string", "title": "Title"},
            "UF_CRM_SOLUTION": {
                "type": "enumeration", "isMultiple": true, "title": "UF_CRM_SOLUTION",
                "listLabel": "Solution",
                "items": [{"ID": "55", "VALUE": "Ремонт"}, {"ID": 57, "VALUE": "Консультация"}]
            },
            "UF_CRM_EMPTY": {"type": "enumeration"},
        })
    }

    #[test]
    fn labels_from_lead_fields() {
        let want: HashMap<String, String> = [
            ("55".to_string(), "Ремонт".to_string()),
            ("57".to_string(), "Консультация".to_string()),
        ]
        .into();
        assert_eq!(
            solution_labels_from_fields(&fields(), "UF_CRM_SOLUTION"),
            Some(want.clone())
        );
        let wrapped = json!({"result": fields(), "time": {}});
        assert_eq!(
            solution_labels_from_fields(&wrapped, "UF_CRM_SOLUTION"),
            Some(want)
        );
        assert_eq!(
            solution_labels_from_fields(&fields(), "UF_CRM_EMPTY"),
            Some(HashMap::new())
        );
        assert_eq!(solution_labels_from_fields(&fields(), "UF_CRM_GONE"), None);
    }

    #[test]
    fn list_field_checks() {
        let f = fields();
        assert_eq!(is_list_field(&f, "UF_CRM_SOLUTION"), Ok(()));
        assert_eq!(
            is_list_field(&f, "TITLE"),
            Err("TITLE is a field of type \"string\", not a list (enumeration) field".to_string())
        );
        assert_eq!(
            is_list_field(&f, "UF_CRM_GONE"),
            Err("UF_CRM_GONE is not a lead field on this portal".to_string())
        );
        assert_eq!(
            is_list_field(&f, "uf_crm_solution"),
            Err("uf_crm_solution is not a lead field on this portal (did you mean UF_CRM_SOLUTION?)".to_string())
        );
        assert!(is_list_field(&json!([]), "UF_X").is_err());
    }
}
