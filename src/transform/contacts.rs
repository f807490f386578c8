//! Multi-fields (PHONE, EMAIL, WEB, IM) → `bitrix_lead_contacts` rows.

use serde_json::{Map, Value};

use super::text::{describe, fit, text_of};
use crate::model::{ContactRow, LeadId, Problem, ProblemKind, CONTACT_TYPES, SMALL_TEXT_CHARS};

fn wrong_type(field: &str, detail: String, problems: &mut Vec<Problem>) {
    problems.push(Problem {
        field: field.to_string(),
        kind: ProblemKind::WrongType,
        detail,
    });
}

/// The contact rows of one lead, PHONE then EMAIL, WEB, IM, each in the order received.
pub(crate) fn contacts(
    lead: &Map<String, Value>,
    lead_id: LeadId,
    problems: &mut Vec<Problem>,
) -> Vec<ContactRow> {
    let mut rows: Vec<ContactRow> = Vec::new();
    for field in CONTACT_TYPES {
        let items = match lead.get(field) {
            None | Some(Value::Null) => continue,
            // Bitrix24 sends "" for other empty values; read it as "no values" here too.
            Some(Value::String(s)) if s.is_empty() => continue,
            Some(Value::Array(items)) => items,
            Some(other) => {
                let detail = format!(
                    "expected a list of values, got {}: no {field} values stored",
                    describe(other)
                );
                wrong_type(field, detail, problems);
                continue;
            }
        };
        for (n, item) in items.iter().enumerate() {
            let pos = n + 1;
            let Value::Object(item) = item else {
                let detail = format!("value #{pos} is {}, not an object: skipped", describe(item));
                wrong_type(field, detail, problems);
                continue;
            };
            let contact_id = match item.get("ID").map(text_of) {
                None | Some(Ok(None)) => None,
                Some(Ok(Some(id))) => Some(fit(
                    id,
                    SMALL_TEXT_CHARS,
                    field,
                    &format!("value #{pos} ID: "),
                    problems,
                )),
                Some(Err(got)) => {
                    wrong_type(
                        field,
                        format!("value #{pos} has ID {got}: stored without an ID"),
                        problems,
                    );
                    None
                }
            };
            let label = match &contact_id {
                Some(id) => format!("value #{pos} (ID {id})"),
                None => format!("value #{pos}"),
            };
            let value = match item.get("VALUE").map(text_of) {
                // Nothing to call or write to: no row (a caller lookup cannot use an
                // empty number), but a problem, so the DBA sees that Bitrix24 holds an
                // empty value (nothing is dropped without a trace).
                Some(Ok(None)) if item.get("VALUE").is_some_and(|v| v == "") => {
                    wrong_type(
                        field,
                        format!("{label} has an empty VALUE: no {field} row stored"),
                        problems,
                    );
                    continue;
                }
                None | Some(Ok(None)) => {
                    wrong_type(field, format!("{label} has no VALUE: skipped"), problems);
                    continue;
                }
                Some(Ok(Some(v))) => v,
                Some(Err(got)) => {
                    wrong_type(
                        field,
                        format!("{label} has VALUE {got}, not text: skipped"),
                        problems,
                    );
                    continue;
                }
            };
            // A value listed twice is kept here: `prepare` keeps each value once, for every
            // batch whatever built it (src/prepare/fit.rs).
            let value = fit(
                value,
                SMALL_TEXT_CHARS,
                field,
                &format!("{label} VALUE: "),
                problems,
            );
            let value_type = match item.get("VALUE_TYPE").map(text_of) {
                None | Some(Ok(None)) => None,
                Some(Ok(Some(t))) => Some(fit(
                    t,
                    SMALL_TEXT_CHARS,
                    field,
                    &format!("{label} VALUE_TYPE: "),
                    problems,
                )),
                Some(Err(got)) => {
                    wrong_type(
                        field,
                        format!("{label} has VALUE_TYPE {got}: stored NULL"),
                        problems,
                    );
                    None
                }
            };
            rows.push(ContactRow {
                lead_id,
                contact_id,
                value_type,
                value: Some(value),
                type_id: field.to_string(),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(lead: Value) -> (Vec<ContactRow>, Vec<Problem>) {
        let Value::Object(map) = lead else {
            panic!("test lead must be an object")
        };
        let mut p = Vec::new();
        let rows = contacts(&map, 7, &mut p);
        (rows, p)
    }

    fn row(id: Option<&str>, vt: Option<&str>, v: &str, t: &str) -> ContactRow {
        ContactRow {
            lead_id: 7,
            contact_id: id.map(str::to_string),
            value_type: vt.map(str::to_string),
            value: Some(v.to_string()),
            type_id: t.to_string(),
        }
    }

    #[test]
    fn several_values_of_each_type_in_order() {
        let (rows, p) = run(json!({
            "EMAIL": [{"ID": "20", "VALUE_TYPE": "WORK", "VALUE": "a@b.ru", "TYPE_ID": "EMAIL"}],
            "PHONE": [
                {"ID": "11", "VALUE_TYPE": "MOBILE", "VALUE": "+7 (900) 000-11-22", "TYPE_ID": "PHONE"},
                {"ID": 12, "VALUE_TYPE": "WORK", "VALUE": "8 800 555-35-35", "TYPE_ID": "PHONE"},
                {"ID": "13", "VALUE_TYPE": "HOME", "VALUE": "  +1 555 0100 ", "TYPE_ID": "PHONE"},
            ],
            "IM": [{"ID": "30", "VALUE_TYPE": "OPENLINE", "VALUE": "imol|livechat|1|67|21", "TYPE_ID": "IM"}],
            "WEB": [{"ID": "40", "VALUE_TYPE": "OTHER", "VALUE": "https://пример.рф/?a=\"b\"", "TYPE_ID": "WEB"}],
        }));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            rows,
            vec![
                row(Some("11"), Some("MOBILE"), "+7 (900) 000-11-22", "PHONE"),
                row(Some("12"), Some("WORK"), "8 800 555-35-35", "PHONE"),
                row(Some("13"), Some("HOME"), "  +1 555 0100 ", "PHONE"),
                row(Some("20"), Some("WORK"), "a@b.ru", "EMAIL"),
                row(
                    Some("40"),
                    Some("OTHER"),
                    "https://пример.рф/?a=\"b\"",
                    "WEB"
                ),
                row(Some("30"), Some("OPENLINE"), "imol|livechat|1|67|21", "IM"),
            ]
        );
    }

    #[test]
    fn the_type_is_the_multi_field_not_the_elements_type_id() {
        let (rows, p) = run(json!({"PHONE": [{"ID": "1", "VALUE": "123", "TYPE_ID": "EMAIL"}]}));
        assert!(p.is_empty());
        assert_eq!(rows, vec![row(Some("1"), None, "123", "PHONE")]);
        // A missing TYPE_ID and a numeric VALUE (lenient, like text columns) are fine too.
        let (rows, p) = run(json!({"PHONE": [{"ID": "1", "VALUE": 79001234567_i64}]}));
        assert!(p.is_empty());
        assert_eq!(rows, vec![row(Some("1"), None, "79001234567", "PHONE")]);
    }

    #[test]
    fn awkward_multi_fields() {
        struct Case {
            name: &'static str,
            lead: Value,
            rows: Vec<ContactRow>,
            problems: Vec<(&'static str, ProblemKind, &'static str)>,
        }
        let cases = vec![
            Case {
                name: "absent",
                lead: json!({}),
                rows: vec![],
                problems: vec![],
            },
            Case {
                name: "null",
                lead: json!({"PHONE": null}),
                rows: vec![],
                problems: vec![],
            },
            Case {
                name: "empty list",
                lead: json!({"PHONE": [], "EMAIL": ""}),
                rows: vec![],
                problems: vec![],
            },
            Case {
                name: "not an array",
                lead: json!({"PHONE": {"ID": "1", "VALUE": "123"}, "EMAIL": "a@b.ru"}),
                rows: vec![],
                problems: vec![
                    (
                        "PHONE",
                        ProblemKind::WrongType,
                        "expected a list of values, got an object: no PHONE values stored",
                    ),
                    (
                        "EMAIL",
                        ProblemKind::WrongType,
                        "expected a list of values, got a string: no EMAIL values stored",
                    ),
                ],
            },
            Case {
                name: "element not an object",
                lead: json!({"PHONE": ["+7900", {"ID": "2", "VALUE": "+7901"}]}),
                rows: vec![row(Some("2"), None, "+7901", "PHONE")],
                problems: vec![(
                    "PHONE",
                    ProblemKind::WrongType,
                    "value #1 is a string, not an object: skipped",
                )],
            },
            Case {
                name: "element without VALUE",
                lead: json!({"PHONE": [{"ID": "1", "VALUE_TYPE": "WORK"}, {"ID": "2", "VALUE": null}, {"ID": "3", "VALUE": "+7"}]}),
                rows: vec![row(Some("3"), None, "+7", "PHONE")],
                problems: vec![
                    (
                        "PHONE",
                        ProblemKind::WrongType,
                        "value #1 (ID 1) has no VALUE: skipped",
                    ),
                    (
                        "PHONE",
                        ProblemKind::WrongType,
                        "value #2 (ID 2) has no VALUE: skipped",
                    ),
                ],
            },
            Case {
                name: "VALUE of the wrong type",
                lead: json!({"EMAIL": [{"ID": "1", "VALUE": ["a@b.ru"]}]}),
                rows: vec![],
                problems: vec![(
                    "EMAIL",
                    ProblemKind::WrongType,
                    "value #1 (ID 1) has VALUE an array, not text: skipped",
                )],
            },
            // An empty value: no row, and a problem naming the field and the value's ID,
            // the same for every multi-field type.
            Case {
                name: "empty PHONE VALUE is reported",
                lead: json!({"PHONE": [{"ID": "1", "VALUE": ""}, {"ID": "2", "VALUE": "+7"}]}),
                rows: vec![row(Some("2"), None, "+7", "PHONE")],
                problems: vec![(
                    "PHONE",
                    ProblemKind::WrongType,
                    "value #1 (ID 1) has an empty VALUE: no PHONE row stored",
                )],
            },
            Case {
                name: "empty EMAIL, WEB and IM VALUEs are reported",
                lead: json!({
                    "EMAIL": [{"ID": "3", "VALUE_TYPE": "WORK", "VALUE": "", "TYPE_ID": "EMAIL"}],
                    "WEB": [{"ID": "4", "VALUE": ""}],
                    "IM": [{"VALUE": ""}],
                }),
                rows: vec![],
                problems: vec![
                    (
                        "EMAIL",
                        ProblemKind::WrongType,
                        "value #1 (ID 3) has an empty VALUE: no EMAIL row stored",
                    ),
                    (
                        "WEB",
                        ProblemKind::WrongType,
                        "value #1 (ID 4) has an empty VALUE: no WEB row stored",
                    ),
                    (
                        "IM",
                        ProblemKind::WrongType,
                        "value #1 has an empty VALUE: no IM row stored",
                    ),
                ],
            },
            Case {
                name: "null, missing and non-text VALUEs are reported for every type",
                lead: json!({
                    "WEB": [{"ID": "5", "VALUE": null}],
                    "IM": [{"ID": "6", "VALUE": {"x": 1}}],
                    "EMAIL": [{"ID": "7"}],
                }),
                rows: vec![],
                problems: vec![
                    (
                        "EMAIL",
                        ProblemKind::WrongType,
                        "value #1 (ID 7) has no VALUE: skipped",
                    ),
                    (
                        "WEB",
                        ProblemKind::WrongType,
                        "value #1 (ID 5) has no VALUE: skipped",
                    ),
                    (
                        "IM",
                        ProblemKind::WrongType,
                        "value #1 (ID 6) has VALUE an object, not text: skipped",
                    ),
                ],
            },
            // A missing TYPE_ID is no loss: the multi-field names the type.
            Case {
                name: "missing TYPE_ID is stored under the field's type",
                lead: json!({"EMAIL": [{"ID": "8", "VALUE": "a@b.ru"}]}),
                rows: vec![row(Some("8"), None, "a@b.ru", "EMAIL")],
                problems: vec![],
            },
            // Duplicates are read as they come; prepare keeps the first (src/prepare/tests.rs
            // asserts that rule on the same shapes).
            Case {
                name: "duplicate IDs are read as they come",
                lead: json!({"PHONE": [
                    {"ID": "5", "VALUE": "+7 first"},
                    {"ID": 5, "VALUE": "+7 second"},
                    {"ID": "6", "VALUE": "+7 third"},
                ]}),
                rows: vec![
                    row(Some("5"), None, "+7 first", "PHONE"),
                    row(Some("5"), None, "+7 second", "PHONE"),
                    row(Some("6"), None, "+7 third", "PHONE"),
                ],
                problems: vec![],
            },
            Case {
                name: "values without an ID are all kept",
                lead: json!({"PHONE": [{"VALUE": "+7 a"}, {"ID": "", "VALUE": "+7 b"}]}),
                rows: vec![
                    row(None, None, "+7 a", "PHONE"),
                    row(None, None, "+7 b", "PHONE"),
                ],
                problems: vec![],
            },
            Case {
                name: "ID of the wrong type",
                lead: json!({"PHONE": [{"ID": {"x": 1}, "VALUE": "+7"}]}),
                rows: vec![row(None, None, "+7", "PHONE")],
                problems: vec![(
                    "PHONE",
                    ProblemKind::WrongType,
                    "value #1 has ID an object: stored without an ID",
                )],
            },
            Case {
                name: "VALUE_TYPE of the wrong type",
                lead: json!({"IM": [{"ID": "9", "VALUE_TYPE": true, "VALUE": "@me"}]}),
                rows: vec![row(Some("9"), None, "@me", "IM")],
                problems: vec![(
                    "IM",
                    ProblemKind::WrongType,
                    "value #1 (ID 9) has VALUE_TYPE a boolean (true): stored NULL",
                )],
            },
        ];
        for c in cases {
            let (rows, p) = run(c.lead);
            assert_eq!(rows, c.rows, "{}", c.name);
            let got: Vec<_> = p
                .iter()
                .map(|p| (p.field.as_str(), p.kind, p.detail.as_str()))
                .collect();
            assert_eq!(got, c.problems, "{}", c.name);
        }
    }

    #[test]
    fn long_values_are_cut_to_2000_units() {
        let email = format!("{}@example.com", "a".repeat(1989)); // 2,001 characters
        assert_eq!(email.len(), 2001);
        let (rows, p) = run(json!({"EMAIL": [{"ID": "3", "VALUE_TYPE": "WORK", "VALUE": email}]}));
        assert_eq!(rows[0].value.as_deref(), Some(&email[..2000]));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].field, "EMAIL");
        assert_eq!(p[0].kind, ProblemKind::Truncated);
        assert_eq!(
            p[0].detail,
            "value #1 (ID 3) VALUE: 2,001 characters; the column holds 2,000: stored the first 2,000"
        );
    }
}
