//! `batch`: up to 50 sub-calls run in order, `halt`, and `$result[...]` references to
//! earlier sub-calls' outputs, answered as PHP's `json_encode` would.

use serde_json::{json, Map, Value};

use super::{error_body, normalize_method, Reply, Shared};
use crate::methods::{CallErr, Caller, METHODS};
use crate::query::parse_str;

impl Shared {
    pub(super) fn run_batch(&self, params: &Map<String, Value>, caller: &Caller) -> (Reply, f64) {
        let halt = params.get("halt").is_some_and(|h| match h {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
            Value::String(s) => !matches!(s.trim(), "" | "0" | "false" | "N" | "n"),
            _ => false,
        });
        let cmds: Vec<(String, String)> = match params.get("cmd") {
            Some(Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), text(v)))
                .collect(),
            _ => vec![],
        };
        if cmds.len() > 50 {
            let body = error_body("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded");
            return (Reply { status: 400, body }, 0.0);
        }
        let mut parsed = Vec::with_capacity(cmds.len());
        for (name, cmd) in cmds {
            let (method, query) = cmd.split_once('?').unwrap_or((cmd.as_str(), ""));
            let method = normalize_method(method);
            if method == "batch" {
                let body = error_body(
                    "ERROR_BATCH_METHOD_NOT_ALLOWED",
                    "Method is not allowed for batch usage",
                );
                return (Reply { status: 405, body }, 0.0);
            }
            parsed.push((name, method, query.to_string()));
        }

        let mut results = Map::new();
        let mut errors = Map::new();
        let mut totals = Map::new();
        let mut nexts = Map::new();
        let mut times = Map::new();
        let mut processing = 0.0;
        for (name, method, query) in parsed {
            let mut sub = parse_str(&query);
            let chained = sub.values().any(refers_to_result);
            let refs = Refs {
                result: &results,
                total: &totals,
                next: &nexts,
                error: &errors,
            };
            for v in sub.values_mut() {
                substitute(v, &refs);
            }
            let (res, time, cost) = if METHODS.contains(&method.as_str()) {
                self.run_call(&method, &sub, chained, caller)
            } else {
                let e = CallErr::new(404, "ERROR_METHOD_NOT_FOUND", "Method not found!");
                (
                    Err(e),
                    self.time_block(0.0, self.operating_state(&method)),
                    0.0,
                )
            };
            processing += cost;
            times.insert(name.clone(), time);
            match res {
                Ok(ok) => {
                    results.insert(name.clone(), ok.result);
                    if let Some(t) = ok.total {
                        totals.insert(name.clone(), json!(t));
                    }
                    if let Some(n) = ok.next {
                        nexts.insert(name.clone(), json!(n));
                    }
                }
                Err(e) => {
                    errors.insert(name.clone(), error_body(&e.code, &e.description));
                    if halt {
                        break;
                    }
                }
            }
        }
        let body = json!({
            "result": {
                "result": php_array(results),
                "result_error": php_array(errors),
                "result_total": php_array(totals),
                "result_next": php_array(nexts),
                "result_time": php_array(times),
            },
            "time": self.time_block(processing, self.operating_state("batch")),
        });
        (Reply { status: 200, body }, processing)
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// PHP `json_encode` of an array: keys 0..n in order → JSON array (so empty → `[]`).
fn php_array(m: Map<String, Value>) -> Value {
    let sequential = m.keys().enumerate().all(|(i, k)| *k == i.to_string());
    if sequential {
        Value::Array(m.into_iter().map(|(_, v)| v).collect())
    } else {
        Value::Object(m)
    }
}

/// Whether a parameter refers to an earlier sub-call's output.
fn refers_to_result(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("$result"),
        Value::Array(a) => a.iter().any(refers_to_result),
        Value::Object(o) => o.values().any(refers_to_result),
        _ => false,
    }
}

/// Earlier sub-calls' outputs, for `$result[...]` chaining.
struct Refs<'a> {
    result: &'a Map<String, Value>,
    total: &'a Map<String, Value>,
    next: &'a Map<String, Value>,
    error: &'a Map<String, Value>,
}

/// Replaces `$result[name][path]...` (also `$result_total`, `$result_next`,
/// `$result_error`) inside string values. A missing element becomes "" — the value is
/// then unusable and, for a filter, dropped (the strict reading of the docs).
fn substitute(v: &mut Value, refs: &Refs<'_>) {
    match v {
        Value::String(s) if s.contains("$result") => {
            if let Some(whole) = resolve_whole(s, refs) {
                *v = whole;
            } else {
                *s = replace_refs(s, refs);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, refs)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, refs)),
        _ => {}
    }
}

/// Parses one reference at the start of `s`: (its value if present, bytes consumed).
fn parse_ref(s: &str, refs: &Refs<'_>) -> Option<(Option<Value>, usize)> {
    let rest = s.strip_prefix('$')?;
    let (root, name_len) = [
        ("result_total", refs.total),
        ("result_next", refs.next),
        ("result_error", refs.error),
        ("result", refs.result),
    ]
    .into_iter()
    .find(|(n, _)| rest.starts_with(n) && rest[n.len()..].starts_with('['))
    .map(|(n, m)| (m, n.len()))?;
    let mut pos = 1 + name_len;
    let mut path = Vec::new();
    while s[pos..].starts_with('[') {
        let close = s[pos..].find(']')?;
        path.push(s[pos + 1..pos + close].to_string());
        pos += close + 1;
    }
    let (first, tail) = path.split_first()?;
    let mut cur = root.get(first);
    for p in tail {
        cur = match cur {
            Some(Value::Array(a)) => p.parse::<usize>().ok().and_then(|i| a.get(i)),
            Some(Value::Object(o)) => o.get(p),
            _ => None,
        };
    }
    Some((cur.cloned(), pos))
}

fn resolve_whole(s: &str, refs: &Refs<'_>) -> Option<Value> {
    match parse_ref(s, refs) {
        Some((Some(v @ (Value::Array(_) | Value::Object(_))), used)) if used == s.len() => Some(v),
        _ => None,
    }
}

fn replace_refs(s: &str, refs: &Refs<'_>) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with("$result") {
            if let Some((val, used)) = parse_ref(&s[i..], refs) {
                out.push_str(&match val {
                    Some(Value::String(x)) => x,
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::Bool(true)) => "1".into(),
                    Some(Value::Array(_) | Value::Object(_)) => "Array".into(),
                    _ => String::new(),
                });
                i += used;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}
