//! PHP-style query strings (`filter[>ID]=5&select[0]=ID`), the format Bitrix24 parses with
//! PHP's `parse_str`. `batch` sub-commands must be written this way even inside a JSON body.
//!
//! Keys are percent-encoded whole, brackets and operators included, as PHP's
//! `http_build_query` does: the server splits each pair at its first raw `=`, so an
//! unencoded `filter[>=DATE_MODIFY]=...` would arrive as the key `filter[>` and the filter
//! would be silently lost. Values are encoded too (a raw `+` in `+03:00` would become a space).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// Everything but RFC 3986's unreserved characters is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Build a query string from a JSON object (nested objects and arrays use brackets).
/// `null` values are left out, as `http_build_query` does; booleans become `1`/`0`.
pub fn build(params: &Value) -> String {
    let mut pairs = Vec::new();
    if let Value::Object(map) = params {
        for (k, v) in map {
            push_pairs(k.clone(), v, &mut pairs);
        }
    }
    pairs.join("&")
}

fn push_pairs(key: String, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push(format!("{}={}", enc(&key), if *b { 1 } else { 0 })),
        Value::Number(n) => out.push(format!("{}={}", enc(&key), enc(&n.to_string()))),
        Value::String(s) => out.push(format!("{}={}", enc(&key), enc(s))),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                push_pairs(format!("{key}[{i}]"), v, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                push_pairs(format!("{key}[{k}]"), v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operators_in_keys_and_plus_in_values_are_encoded() {
        let q = build(&json!({
            "filter": {">=DATE_MODIFY": "2024-05-01T00:00:00+03:00", ">ID": 10},
            "order": {"ID": "ASC"},
            "select": ["ID", "PHONE"],
            "start": -1,
        }));
        assert_eq!(
            q,
            "filter%5B%3E%3DDATE_MODIFY%5D=2024-05-01T00%3A00%3A00%2B03%3A00&filter%5B%3EID%5D=10\
             &order%5BID%5D=ASC&select%5B0%5D=ID&select%5B1%5D=PHONE&start=-1"
        );
        assert!(!q.contains('+'), "a raw + would arrive as a space");
        // every '=' left in the string is a pair separator, never part of a key
        assert_eq!(q.matches('=').count(), q.split('&').count());
    }

    #[test]
    fn batch_references_survive_encoding_and_nulls_are_left_out() {
        let q = build(&json!({"filter": {">ID": "$result[p0][49][ID]"}, "x": null, "halt": true}));
        assert_eq!(
            q,
            "filter%5B%3EID%5D=%24result%5Bp0%5D%5B49%5D%5BID%5D&halt=1"
        );
    }
}
