//! The `crm.lead.list` requests an export sends and what it reads back from them.

use serde_json::{json, Value};

use super::super::client::{Bitrix24Client, ExtractError};
use crate::model::LEAD_ID_FIELD;

/// The `crm.lead.list` parameters for the page after `cursor` (and, for one of several
/// parallel chains, at most `upto`).
pub(super) fn list_params(
    filter: &super::ExportFilter,
    cursor: Value,
    start: i64,
    upto: Option<i64>,
) -> Value {
    let mut f = serde_json::Map::new();
    f.insert(">ID".into(), cursor);
    if let Some(upto) = upto {
        f.insert("<=ID".into(), json!(upto));
    }
    if let Some(since) = &filter.modified_since {
        f.insert(">=DATE_MODIFY".into(), Value::String(since.clone()));
    }
    json!({ "order": {"ID": "ASC"}, "filter": f, "select": filter.select, "start": start })
}

/// `order[ID]=DESC`, `select[]=ID`, uncounted: the highest IDs (above `after` and at most
/// `upto`, if given).
pub(super) fn highest_ids_params(
    filter: &super::ExportFilter,
    after: Option<i64>,
    upto: Option<i64>,
) -> Value {
    let mut f = serde_json::Map::new();
    if let Some(after) = after {
        f.insert(">ID".into(), json!(after));
    }
    if let Some(upto) = upto {
        f.insert("<=ID".into(), json!(upto));
    }
    if let Some(since) = &filter.modified_since {
        f.insert(">=DATE_MODIFY".into(), Value::String(since.clone()));
    }
    json!({ "order": {"ID": "DESC"}, "filter": f, "select": [LEAD_ID_FIELD], "start": -1 })
}

/// The highest ID in an answer to [`highest_ids_params`] (`None`: no lead).
pub(super) fn highest_of(result: Value) -> Result<Option<i64>, String> {
    Ok(rows_of(result)?.iter().filter_map(lead_id).max())
}

/// The numeric ID of a lead, if it has one.
pub(super) fn lead_id(lead: &Value) -> Option<i64> {
    match lead.get(LEAD_ID_FIELD)? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Keep the leads after the cursor (and those without a numeric ID, which the transform
/// will report); return them with the highest ID among them.
pub(super) fn after_cursor(rows: Vec<Value>, cursor: i64) -> (Vec<Value>, Option<i64>) {
    let mut max = None;
    let kept = rows
        .into_iter()
        .filter(|lead| match lead_id(lead) {
            Some(id) if id <= cursor => false,
            Some(id) => {
                max = Some(max.map_or(id, |m: i64| m.max(id)));
                true
            }
            None => true,
        })
        .collect();
    (kept, max)
}

pub(super) fn rows_of(result: Value) -> Result<Vec<Value>, String> {
    match result {
        Value::Array(rows) => Ok(rows),
        // An empty page may arrive as `{}` from some PHP versions.
        Value::Object(m) if m.is_empty() => Ok(Vec::new()),
        other => Err(format!(
            "crm.lead.list returned {} instead of a list of leads",
            json_kind(&other)
        )),
    }
}

/// What kind of JSON value Bitrix24 sent where it should have sent something else, for
/// protocol messages ("an object", "a string").
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn protocol(client: &Bitrix24Client, detail: String) -> ExtractError {
    ExtractError::Protocol {
        portal: client.portal(),
        method: "crm.lead.list".into(),
        detail,
    }
}

/// The pause before re-reading a page that came back short.
pub(super) fn reread_wait(client: &Bitrix24Client) -> std::time::Duration {
    client
        .sub_error_wait("crm.lead.list", "")
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::ExportFilter;
    use super::*;
    use crate::extract::query;

    #[test]
    fn rows_at_or_before_the_cursor_are_dropped() {
        let rows = vec![
            json!({"ID": "3"}),
            json!({"ID": "5"}),
            json!({"ID": "abc"}),
            json!({"ID": 7}),
        ];
        let (kept, max) = after_cursor(rows, 4);
        assert_eq!(
            kept,
            vec![json!({"ID": "5"}), json!({"ID": "abc"}), json!({"ID": 7})]
        );
        assert_eq!(max, Some(7));
    }

    #[test]
    fn batch_commands_chain_on_the_previous_page() {
        let f = ExportFilter {
            entity: crate::schema::LEAD,
            modified_since: Some("2024-05-01T00:00:00+03:00".into()),
            select: vec!["ID".into()],
        };
        let q = query::build(&list_params(&f, json!("$result[p0][49][ID]"), -1, None));
        assert!(
            q.contains("filter%5B%3EID%5D=%24result%5Bp0%5D%5B49%5D%5BID%5D"),
            "{q}"
        );
        assert!(
            q.contains("filter%5B%3E%3DDATE_MODIFY%5D=2024-05-01T00%3A00%3A00%2B03%3A00"),
            "{q}"
        );
        assert!(!q.contains("%3C%3DID"), "one chain has no upper bound: {q}");
        assert!(q.ends_with("start=-1"), "{q}");
    }

    #[test]
    fn a_range_is_bounded_above_in_its_pages_and_its_check() {
        let f = ExportFilter {
            entity: crate::schema::LEAD,
            modified_since: None,
            select: vec!["ID".into()],
        };
        // `<=` must be percent-encoded in the key (a raw `=` splits it).
        let page = query::build(&list_params(&f, json!(100), -1, Some(5_000)));
        assert!(page.contains("filter%5B%3C%3DID%5D=5000"), "{page}");
        let check = query::build(&highest_ids_params(&f, Some(100), Some(5_000)));
        assert!(check.contains("filter%5B%3C%3DID%5D=5000"), "{check}");
        assert!(check.contains("filter%5B%3EID%5D=100"), "{check}");
    }
}
