//! What a successful answer holds: the result, paging keys, the server-time report, and
//! a `batch` answer taken apart per sub-command.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{Bitrix24Client, ExtractError};

/// The `time` object of an answer (every key optional: the docs' examples vary).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResponseTime {
    pub duration: Option<f64>,
    pub processing: Option<f64>,
    pub operating: Option<f64>,
    pub operating_reset_at: Option<f64>,
}

impl ResponseTime {
    pub(super) fn from_json(v: Option<&Value>) -> ResponseTime {
        let get = |k: &str| v.and_then(|t| t.get(k)).and_then(number);
        ResponseTime {
            duration: get("duration"),
            processing: get("processing"),
            operating: get("operating"),
            operating_reset_at: get("operating_reset_at"),
        }
    }

    /// Server seconds this answer cost (what the operating budget counts).
    pub fn server_secs(&self) -> f64 {
        self.processing.or(self.duration).unwrap_or(0.0)
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub result: Value,
    pub total: Option<u64>,
    pub next: Option<u64>,
    pub time: ResponseTime,
}

/// One sub-command's outcome inside a `batch`.
#[derive(Debug, Clone, PartialEq)]
pub enum SubResult {
    Ok {
        result: Value,
        total: Option<u64>,
        next: Option<u64>,
    },
    Err {
        code: String,
        description: String,
    },
    /// Not in the answer at all (after a `halt`, or lost by the server).
    Missing,
}

impl Bitrix24Client {
    /// Run up to 50 sub-commands (`name`, `method?query`) in one request. Sub-command
    /// failures come back per name; the call itself fails only when the request does.
    pub async fn batch(
        &self,
        commands: &[(String, String)],
    ) -> Result<BTreeMap<String, SubResult>, ExtractError> {
        let cmd: Map<String, Value> = commands
            .iter()
            .map(|(n, c)| (n.clone(), Value::String(c.clone())))
            .collect();
        let resp = self
            .call("batch", &json!({ "halt": 0, "cmd": cmd }))
            .await?;
        let protocol = |detail: String| ExtractError::Protocol {
            portal: self.portal(),
            method: "batch".into(),
            detail,
        };
        // Own the answer and move each page out of it: a 2,500-lead answer then exists
        // once in memory, not three times.
        let Value::Object(mut body) = resp.result else {
            return Err(protocol("result is not an object".into()));
        };
        let mut section = |key: &str| keyed(body.remove(key), commands);
        let (mut results, errors, totals, nexts, times) = (
            section("result"),
            section("result_error"),
            section("result_total"),
            section("result_next"),
            section("result_time"),
        );
        let mut out = BTreeMap::new();
        for (name, command) in commands {
            let sub_method = command.split('?').next().unwrap_or(command);
            if let Some(t) = times.get(name) {
                self.note_time(sub_method, &ResponseTime::from_json(Some(t)));
            }
            let outcome = if let Some(err) = errors.get(name) {
                SubResult::Err {
                    code: err
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    description: err
                        .get("error_description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                }
            } else if let Some(result) = results.remove(name) {
                SubResult::Ok {
                    result,
                    total: totals.get(name).and_then(number).map(|n| n as u64),
                    next: nexts.get(name).and_then(number).map(|n| n as u64),
                }
            } else {
                SubResult::Missing
            };
            out.insert(name.clone(), outcome);
        }
        Ok(out)
    }
}

/// A batch section keyed by command name; numeric names may arrive as a JSON array.
fn keyed(section: Option<Value>, commands: &[(String, String)]) -> Map<String, Value> {
    match section {
        Some(Value::Object(m)) => m,
        Some(Value::Array(items)) => commands.iter().map(|(n, _)| n.clone()).zip(items).collect(),
        _ => Map::new(),
    }
}

/// JSON number, or a number written as a string (the legacy API does both).
pub(super) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_arrive_as_numbers_or_strings() {
        assert_eq!(number(&json!(5)), Some(5.0));
        assert_eq!(number(&json!("50")), Some(50.0));
        assert_eq!(number(&json!(null)), None);
    }
}
