//! The portal's one-off questions, each a typed function, so that no other part of the
//! program builds a Bitrix24 method name or query string:
//!
//! - [`time`]: `server.time`, the portal's clock (the watermark's only source);
//! - [`labels`]: `crm.lead.userfield.list`, the solution field and its list's labels;
//! - [`users`]: `user.get` for the operators leads are assigned to;
//! - [`ids`]: leads by ID (`@ID` listings, for `errors retry`) and the access probe;
//! - [`leads`]: chosen leads read whole (`crm.lead.get`), for the error table;
//! - [`events`]: event bindings and the offline queue (`event.*`), for `serve` and `events`;
//! - [`prelude`](mod@prelude): a run's first request, which asks several of these at once.

pub mod events;
pub mod ids;
pub mod labels;
pub mod leads;
pub mod prelude;
pub mod time;
pub mod users;

pub use ids::{leads_by_id, probe_leads, records_by_id};
pub use labels::{check_solution_field, solution_field, LabelsError, SolutionFieldCheck};
pub use leads::{fetch_full_leads, fetch_full_records};
pub use prelude::{prelude, EntityAsk, EntityExtents, Prelude, PreludeAsk};
pub use time::{format_portal_time, parse_portal_time, server_time};

use serde_json::Value;

use super::client::SubResult;

/// A batch sub-answer in a few plain words, for messages.
pub(crate) fn describe_answer(answer: Option<&SubResult>) -> String {
    match answer {
        Some(SubResult::Ok { result, .. }) => format!("answered {}", describe_json(result)),
        Some(SubResult::Err { code, description }) => {
            format!("answered the error {code}: {description}")
        }
        Some(SubResult::Missing) | None => "gave no answer".to_string(),
    }
}

/// A JSON value in a few plain words, for messages: its kind and a short excerpt.
pub(crate) fn describe_json(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    let text = v.to_string();
    let excerpt: String = text.chars().take(120).collect();
    if excerpt.len() < text.len() {
        format!("{kind} ({excerpt}…)")
    } else {
        format!("{kind} ({excerpt})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // 16.8: a bad answer is said in plain words, never as Rust debug text.
    #[test]
    fn answers_are_described_in_plain_words() {
        let ok = SubResult::Ok {
            result: json!("soon"),
            total: None,
            next: None,
        };
        let said = describe_answer(Some(&ok));
        assert_eq!(said, "answered a text (\"soon\")");
        assert!(!said.contains("Ok {"));
        assert_eq!(describe_answer(None), "gave no answer");
        let long = describe_json(&json!("x".repeat(500)));
        assert!(long.ends_with("…)") && long.chars().count() < 150, "{long}");
    }
}
