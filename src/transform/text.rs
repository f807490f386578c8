//! Text values: how a JSON value becomes an `nvarchar`/`ntext` cell, and the wording
//! shared by every problem the transform reports.

use serde_json::Value;

use crate::model::{truncate_utf16, utf16_len, Problem, ProblemKind};
use crate::schema::limits;

/// A JSON value as a DBA would name it in a sentence ("an object", "a boolean (true)").
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(_) => "a string".to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// A received value quoted for a message, shortened so one absurd value cannot
/// crowd the other problems out of `sql_error` (2,000 characters).
pub(crate) fn quote(s: &str) -> String {
    const SHOWN: usize = 60;
    if utf16_len(s) <= SHOWN {
        format!("{s:?}")
    } else {
        format!("{:?}…", truncate_utf16(s, SHOWN))
    }
}

pub(crate) use crate::schema::limits::thousands;

/// The text of a JSON value that may stand for text: strings as they are, numbers as
/// received (the legacy API sends numbers as strings, `crm.item.*` as JSON numbers).
/// `Ok(None)` for null and `""`; `Err` names the JSON type otherwise.
pub(crate) fn text_of(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(describe(other)),
    }
}

/// Cut `s` to `max` UTF-16 code units (what SQL Server's nvarchar(N) counts), saying so.
/// `what` prefixes the detail when the field alone does not say which value was cut.
pub(crate) fn fit(
    s: String,
    max: usize,
    field: &str,
    what: &str,
    problems: &mut Vec<Problem>,
) -> String {
    let Some(cut) = limits::cut(&s, max) else {
        return s;
    };
    problems.push(Problem {
        field: field.to_string(),
        kind: ProblemKind::Truncated,
        detail: format!("{what}{}", cut.describe()),
    });
    cut.kept
}

/// A text column's value: `None` = NULL. `max` = None for `ntext` (never cut).
pub(crate) fn text_cell(
    v: Option<&Value>,
    max: Option<usize>,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let v = v?;
    match text_of(v) {
        Ok(None) => None,
        Ok(Some(s)) => Some(match max {
            Some(max) => fit(s, max, field, "", problems),
            None => s,
        }),
        Err(got) => {
            problems.push(Problem {
                field: field.to_string(),
                kind: ProblemKind::WrongType,
                detail: format!("expected text, got {got}"),
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thousands_groups_digits() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (4001, "4,001"),
            (100000, "100,000"),
            (1234567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }

    #[test]
    fn quote_shortens_long_values_on_a_character_boundary() {
        assert_eq!(quote("abc"), "\"abc\"");
        let long = "я".repeat(100);
        let q = quote(&long);
        assert!(q.ends_with("\"…"));
        assert_eq!(q.chars().filter(|c| *c == 'я').count(), 60);
    }

    #[test]
    fn text_cells() {
        let cases: Vec<(Value, Option<&str>, Option<ProblemKind>)> = vec![
            (json!("Иван"), Some("Иван"), None),
            (json!("ООО \"Ромашка\""), Some("ООО \"Ромашка\""), None),
            (json!("C:\\путь\\"), Some("C:\\путь\\"), None),
            (json!("  padded  "), Some("  padded  "), None),
            (json!("🚀 старт"), Some("🚀 старт"), None),
            (json!(""), None, None),
            (json!(null), None, None),
            (json!(15000), Some("15000"), None),
            (json!(15000.5), Some("15000.5"), None),
            (json!(-3), Some("-3"), None),
            (json!(true), None, Some(ProblemKind::WrongType)),
            (json!([1]), None, Some(ProblemKind::WrongType)),
            (json!({"a": 1}), None, Some(ProblemKind::WrongType)),
        ];
        for (v, want, kind) in cases {
            let mut p = Vec::new();
            let got = text_cell(Some(&v), Some(3000), "NAME", &mut p);
            assert_eq!(got.as_deref(), want, "{v}");
            assert_eq!(p.first().map(|p| p.kind), kind, "{v}");
            assert!(p.iter().all(|p| p.field == "NAME"));
        }
        let mut p = Vec::new();
        assert_eq!(text_cell(None, Some(10), "NAME", &mut p), None);
        assert!(p.is_empty());
    }

    #[test]
    fn wrong_type_detail_names_the_type() {
        let mut p = Vec::new();
        text_cell(Some(&json!({"x": 1})), Some(10), "TITLE", &mut p);
        assert_eq!(p[0].detail, "expected text, got an object");
    }
}
