//! PHP's `parse_str`, faithfully: how a Bitrix24 server (PHP) turns a query string or a
//! form body — and every `batch` sub-command string — into request parameters.
//!
//! The details matter because clients get them wrong in ways the real server punishes
//! silently:
//! - pairs split at `&`, each pair at its **first raw `=`**: an unencoded
//!   `filter[>=DATE_MODIFY]=x` becomes key `filter[>` and value `DATE_MODIFY]=x`;
//! - keys and values are percent-decoded and `+` is a space (a raw `+` in a `+03:00`
//!   offset becomes a space);
//! - brackets in the (decoded) key build nested arrays; `[]` appends; a `[` without a
//!   closing `]` at the first level turns into `_` (so `filter[>` registers `filter_>`,
//!   a key nobody reads — the filter is lost);
//! - spaces and dots in the top-level name become `_`; later assignments win.
//!
//! PHP arrays are ordered maps; we convert one to a JSON array when its keys are exactly
//! `0..n` in order, otherwise to an object with string keys.

use serde_json::{Map, Value};

/// A PHP array key: integers and non-canonical strings are distinct kinds.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Int(i64),
    Str(String),
}

impl Key {
    /// PHP turns canonical decimal strings ("5", "-3", not "05" or "+5") into int keys.
    fn from_str(s: &str) -> Key {
        let digits = s.strip_prefix('-').unwrap_or(s);
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
            && s != "-0";
        match s.parse::<i64>() {
            Ok(n) if canonical => Key::Int(n),
            _ => Key::Str(s.to_string()),
        }
    }
    fn to_string_key(&self) -> String {
        match self {
            Key::Int(n) => n.to_string(),
            Key::Str(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone)]
enum PVal {
    Str(String),
    Arr(PArr),
}

#[derive(Debug, Clone, Default)]
struct PArr {
    entries: Vec<(Key, PVal)>,
    next_index: i64,
}

impl PArr {
    fn slot(&mut self, key: Option<Key>) -> &mut PVal {
        let key = match key {
            Some(k) => k,
            None => Key::Int(self.next_index),
        };
        if let Key::Int(n) = key {
            if n >= self.next_index {
                self.next_index = n.saturating_add(1);
            }
        }
        let pos = match self.entries.iter().position(|(k, _)| *k == key) {
            Some(p) => p,
            None => {
                self.entries.push((key, PVal::Str(String::new())));
                self.entries.len() - 1
            }
        };
        &mut self.entries[pos].1
    }

    fn into_json(self) -> Value {
        let sequential = self
            .entries
            .iter()
            .enumerate()
            .all(|(i, (k, _))| *k == Key::Int(i as i64));
        if sequential {
            Value::Array(
                self.entries
                    .into_iter()
                    .map(|(_, v)| v.into_json())
                    .collect(),
            )
        } else {
            let mut m = Map::new();
            for (k, v) in self.entries {
                m.insert(k.to_string_key(), v.into_json());
            }
            Value::Object(m)
        }
    }
}

impl PVal {
    fn into_json(self) -> Value {
        match self {
            PVal::Str(s) => Value::String(s),
            PVal::Arr(a) => a.into_json(),
        }
    }
}

/// `urldecode`: `+` is a space, `%XX` a byte; invalid escapes stay as they are.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a decoded key into its top-level name and bracket indices, as PHP's
/// `php_register_variable_ex` does. `None` = the variable is dropped.
fn split_key(key: &str) -> Option<(String, Vec<Option<Key>>)> {
    let key = key.trim_start_matches(' ');
    let (base_raw, mut rest) = match key.find('[') {
        Some(p) => (&key[..p], Some(&key[p..])),
        None => (key, None),
    };
    let mut base: String = base_raw
        .chars()
        .map(|c| if c == ' ' || c == '.' { '_' } else { c })
        .collect();
    let mut indices = Vec::new();
    let mut first = true;
    while let Some(r) = rest {
        // r starts with '['
        let inner = &r[1..];
        match inner.find(']') {
            Some(close) => {
                let idx = &inner[..close];
                indices.push(if idx.is_empty() {
                    None
                } else {
                    Some(Key::from_str(idx))
                });
                let after = &inner[close + 1..];
                // PHP keeps parsing only if the next char opens another index.
                rest = if after.starts_with('[') {
                    Some(after)
                } else {
                    None
                };
            }
            None => {
                if first {
                    // Unterminated first index: the '[' becomes '_' and the whole
                    // remainder is part of a plain variable name.
                    base.push('_');
                    base.push_str(inner);
                }
                // At deeper levels PHP ignores the unterminated tail.
                rest = None;
            }
        }
        first = false;
    }
    if base.is_empty() {
        return None;
    }
    Some((base, indices))
}

/// Parses a query string / form body exactly like PHP `parse_str` into a JSON object.
pub fn parse_str(input: &str) -> Map<String, Value> {
    let mut root = PArr::default();
    for pair in input.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = match pair.find('=') {
            Some(p) => (&pair[..p], &pair[p + 1..]),
            None => (pair, ""),
        };
        let key = url_decode(k);
        let value = url_decode(v);
        let Some((base, indices)) = split_key(&key) else {
            continue;
        };
        let mut slot = root.slot(Some(Key::Str(base)));
        for idx in indices {
            if !matches!(slot, PVal::Arr(_)) {
                *slot = PVal::Arr(PArr::default());
            }
            let PVal::Arr(arr) = slot else {
                unreachable!("just made it an array")
            };
            slot = arr.slot(idx);
        }
        *slot = PVal::Str(value);
    }
    let mut out = Map::new();
    for (k, v) in root.entries {
        out.insert(k.to_string_key(), v.into_json());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Value {
        Value::Object(parse_str(s))
    }

    #[test]
    fn flat_and_nested() {
        assert_eq!(
            p("filter[>ID]=5&select[]=ID&select[]=PHONE&order[ID]=ASC&start=-1"),
            json!({"filter": {">ID": "5"}, "select": ["ID", "PHONE"], "order": {"ID": "ASC"}, "start": "-1"})
        );
        assert_eq!(
            p("select[0]=ID&select[1]=TITLE"),
            json!({"select": ["ID", "TITLE"]})
        );
        // Non-sequential int keys make an object.
        assert_eq!(p("a[2]=x&a[0]=y"), json!({"a": {"2": "x", "0": "y"}}));
        // `[]` appends after the highest int key.
        assert_eq!(p("a[5]=x&a[]=y"), json!({"a": {"5": "x", "6": "y"}}));
        assert_eq!(
            p("a[x][y][]=1&a[x][y][]=2"),
            json!({"a": {"x": {"y": ["1", "2"]}}})
        );
    }

    #[test]
    fn raw_ge_operator_is_lost() {
        // The raw '=' of '>=' splits the pair: key "filter[>" (unterminated -> "filter_>").
        let v = p("filter[>=DATE_MODIFY]=2026-01-01&start=0");
        assert_eq!(v["filter_>"], json!("DATE_MODIFY]=2026-01-01"));
        assert!(v.get("filter").is_none());
        // Encoded, it survives.
        let v = p("filter%5B%3E%3DDATE_MODIFY%5D=2026-01-01T00%3A00%3A00%2B03%3A00");
        assert_eq!(
            v,
            json!({"filter": {">=DATE_MODIFY": "2026-01-01T00:00:00+03:00"}})
        );
    }

    #[test]
    fn plus_is_space_and_percent_decoding() {
        let v = p("filter[>DATE_MODIFY]=2026-01-01T00:00:00+03:00");
        assert_eq!(
            v["filter"][">DATE_MODIFY"],
            json!("2026-01-01T00:00:00 03:00")
        );
        assert_eq!(p("t=%D0%9E%D0%9E%D0%9E+%22X%22"), json!({"t": "ООО \"X\""}));
        // Invalid escapes stay literal.
        assert_eq!(p("t=100%&u=%zz"), json!({"t": "100%", "u": "%zz"}));
    }

    #[test]
    fn php_quirks() {
        // Later wins; scalar replaced by array and back.
        assert_eq!(p("a=1&a=2"), json!({"a": "2"}));
        assert_eq!(p("a=1&a[]=2"), json!({"a": ["2"]}));
        assert_eq!(p("a[]=1&a=x"), json!({"a": "x"}));
        // No '=' -> empty value; empty names dropped; dots and spaces in names -> '_'.
        assert_eq!(
            p("flag&=x&[a]=1&a.b=1&c d=2"),
            json!({"flag": "", "a_b": "1", "c_d": "2"})
        );
        // Trailing garbage after an index is ignored.
        assert_eq!(p("a[x]y=1"), json!({"a": {"x": "1"}}));
        // Deeper unterminated index: tail ignored.
        assert_eq!(p("a[x][y=1"), json!({"a": {"x": "1"}}));
        // Leading zeros keep a string key.
        assert_eq!(p("a[01]=1"), json!({"a": {"01": "1"}}));
        // Batch chaining values keep their brackets (only keys are parsed).
        assert_eq!(
            p("filter[>ID]=$result[p0][49][ID]"),
            json!({"filter": {">ID": "$result[p0][49][ID]"}})
        );
    }
}
