//! `filter` of the list methods: operator prefixes, operands typed by field (ID, dates,
//! text), evaluation on the compact stored lead where possible, and the ID range a filter
//! allows.

use std::ops::Bound;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use serde_json::{Map, Value};

use super::{as_int, as_text, list_values, Ctx};
use crate::data::Lead;
use crate::entity::Entity;
use crate::fields;

/// Parses a filter date the way PHP `strtotime` would for the formats clients send;
/// no offset means the portal's zone. Anything else is unusable (the filter is dropped).
pub fn parse_filter_datetime(s: &str, offset: FixedOffset) -> Option<i64> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%:z",
        "%Y-%m-%d %H:%M:%S%:z",
        "%Y-%m-%dT%H:%M:%S%z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, f) {
            return Some(d.timestamp());
        }
    }
    let local = |n: NaiveDateTime| {
        offset
            .from_local_datetime(&n)
            .single()
            .map(|d| d.timestamp())
    };
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%d.%m.%Y %H:%M:%S",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return local(n);
        }
    }
    for f in ["%Y-%m-%d", "%d.%m.%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return local(d.and_hms_opt(0, 0, 0)?);
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    NotIn,
    Like,
    NotLike,
}

/// A comparable filter operand.
#[derive(Debug, Clone)]
enum Operand {
    Int(Vec<i64>),
    Time(Vec<i64>),
    Text(Vec<String>),
}

#[derive(Debug, Clone)]
pub(super) struct Cond {
    field: String,
    op: Op,
    operand: Operand,
}

/// Operator prefixes, longest first so `>=` wins over `>`.
const OPS: &[(&str, Op)] = &[
    ("!=%", Op::NotLike),
    ("!%=", Op::NotLike),
    ("!@", Op::NotIn),
    ("!=", Op::Ne),
    ("!%", Op::NotLike),
    ("=%", Op::Like),
    ("%=", Op::Like),
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("!", Op::Ne),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("=", Op::Eq),
    ("@", Op::In),
    ("%", Op::Like),
];

fn known_field(ctx: &Ctx<'_>, entity: Entity, name: &str) -> bool {
    entity.is_standard(name)
        || fields::is_multi(name)
        || ctx
            .portal
            .inner
            .user_fields_of(entity)
            .iter()
            .any(|u| u.name == name)
}

/// Builds the conditions; unknown fields and unusable values are dropped silently, as
/// the real server does (a typo gives an unfiltered list).
pub(super) fn parse_filter(ctx: &Ctx<'_>, entity: Entity, filter: Option<&Value>) -> Vec<Cond> {
    let Some(Value::Object(filter)) = filter else {
        return vec![];
    };
    let offset = ctx.portal.offset();
    let mut conds = Vec::new();
    for (key, value) in filter {
        let (op, field) = OPS
            .iter()
            .find_map(|(p, op)| key.strip_prefix(p).map(|f| (*op, f)))
            .unwrap_or((Op::Eq, key.as_str()));
        // Case-sensitive, like the server's field lookup: `>id` is an unknown key.
        let field = field.to_string();
        if !known_field(ctx, entity, &field) {
            continue;
        }
        let is_list = matches!(value, Value::Array(_) | Value::Object(_));
        let op = match (op, is_list) {
            (Op::Eq, true) => Op::In,
            (Op::Ne, true) => Op::NotIn,
            (op, _) => op,
        };
        let raw = list_values(value);
        let operand = if field == "ID" {
            let ints: Vec<i64> = raw.iter().filter_map(as_int).collect();
            if ints.len() != raw.len() || (ints.is_empty() && !matches!(op, Op::In | Op::NotIn)) {
                continue; // "" or "abc": no usable value, the condition vanishes
            }
            Operand::Int(ints)
        } else if fields::is_datetime(&field) {
            let times: Vec<i64> = raw
                .iter()
                .filter_map(|v| as_text(v).and_then(|s| parse_filter_datetime(&s, offset)))
                .collect();
            if times.len() != raw.len() || times.is_empty() {
                continue;
            }
            Operand::Time(times)
        } else {
            let texts: Vec<String> = raw.iter().map(|v| as_text(v).unwrap_or_default()).collect();
            Operand::Text(texts)
        };
        conds.push(Cond { field, op, operand });
    }
    conds
}

fn cmp_op<T: PartialOrd>(op: Op, have: &T, want: &[T]) -> bool {
    let first = want.first();
    match op {
        Op::Eq | Op::Like => first.is_some_and(|w| have == w),
        Op::Ne | Op::NotLike => first.is_some_and(|w| have != w),
        Op::Gt => first.is_some_and(|w| have > w),
        Op::Ge => first.is_some_and(|w| have >= w),
        Op::Lt => first.is_some_and(|w| have < w),
        Op::Le => first.is_some_and(|w| have <= w),
        Op::In => want.iter().any(|w| have == w),
        Op::NotIn => !want.iter().any(|w| have == w),
    }
}

/// The texts a rendered field offers to a text comparison.
fn field_texts(v: Option<&Value>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => vec![String::new()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::Object(o) => o.get("VALUE").and_then(as_text).unwrap_or_default(),
                other => as_text(other).unwrap_or_default(),
            })
            .collect(),
        Some(other) => vec![as_text(other).unwrap_or_default()],
    }
}

fn text_match(op: Op, have: &str, want: &[String]) -> bool {
    let numeric = |s: &str| s.trim().parse::<f64>().ok();
    match op {
        Op::Like | Op::NotLike => {
            let needle = want
                .first()
                .map(|w| w.trim_matches('%').to_lowercase())
                .unwrap_or_default();
            let hit = have.to_lowercase().contains(&needle);
            (op == Op::Like) == hit
        }
        Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            match (numeric(have), want.first().and_then(|w| numeric(w))) {
                (Some(h), Some(w)) => cmp_op(op, &h, &[w]),
                _ => cmp_op(op, &have.to_string(), want),
            }
        }
        _ => cmp_op(op, &have.to_string(), want),
    }
}

impl Cond {
    /// Evaluates on the compact form when possible; `None` = needs the rendered lead.
    pub(super) fn eval_compact(&self, id: i64, lead: &Lead) -> Option<bool> {
        match (&self.operand, self.field.as_str()) {
            (Operand::Int(want), "ID") => Some(cmp_op(self.op, &id, want)),
            (Operand::Time(want), "DATE_MODIFY") => {
                Some(lead.date_modify.is_some_and(|t| cmp_op(self.op, &t, want)))
            }
            (Operand::Time(want), "DATE_CREATE") => {
                Some(lead.date_create.is_some_and(|t| cmp_op(self.op, &t, want)))
            }
            _ => None,
        }
    }

    pub(super) fn eval_rendered(&self, lead: &Map<String, Value>, offset: FixedOffset) -> bool {
        let v = lead.get(&self.field);
        match &self.operand {
            Operand::Time(want) => v
                .and_then(Value::as_str)
                .and_then(|s| parse_filter_datetime(s, offset))
                .is_some_and(|t| cmp_op(self.op, &t, want)),
            Operand::Int(want) => v
                .and_then(as_int)
                .is_some_and(|n| cmp_op(self.op, &n, want)),
            Operand::Text(want) => {
                let haves = field_texts(v);
                match self.op {
                    // Negations hold only when no value of a multiple field matches.
                    Op::Ne | Op::NotIn | Op::NotLike => {
                        haves.iter().all(|h| text_match(self.op, h, want))
                    }
                    _ => haves.iter().any(|h| text_match(self.op, h, want)),
                }
            }
        }
    }
}

impl Cond {
    fn operand_first(&self) -> Option<&i64> {
        match &self.operand {
            Operand::Int(v) => v.first(),
            _ => None,
        }
    }
}

fn tighter_lo(a: Bound<i64>, b: Bound<i64>) -> Bound<i64> {
    let key = |x: &Bound<i64>| match x {
        Bound::Unbounded => (i64::MIN, 0),
        Bound::Included(v) => (*v, 0),
        Bound::Excluded(v) => (*v, 1),
    };
    if key(&b) > key(&a) {
        b
    } else {
        a
    }
}

fn tighter_hi(a: Bound<i64>, b: Bound<i64>) -> Bound<i64> {
    let key = |x: &Bound<i64>| match x {
        Bound::Unbounded => (i64::MAX, 0),
        Bound::Included(v) => (*v, 0),
        Bound::Excluded(v) => (*v, -1),
    };
    if key(&b) < key(&a) {
        b
    } else {
        a
    }
}

/// The ID range the conditions allow, so that keyset paging narrows the B-tree range
/// instead of rescanning from ID 1; `None` when no ID can match.
pub(super) fn id_range(conds: &[Cond]) -> Option<(Bound<i64>, Bound<i64>)> {
    let (mut lo, mut hi) = (Bound::Unbounded, Bound::Unbounded);
    for c in conds {
        if let Some(&x) = c.operand_first() {
            match c.op {
                Op::Gt => lo = tighter_lo(lo, Bound::Excluded(x)),
                Op::Ge => lo = tighter_lo(lo, Bound::Included(x)),
                Op::Eq => {
                    lo = tighter_lo(lo, Bound::Included(x));
                    hi = tighter_hi(hi, Bound::Included(x));
                }
                Op::Lt => hi = tighter_hi(hi, Bound::Excluded(x)),
                Op::Le => hi = tighter_hi(hi, Bound::Included(x)),
                _ => {}
            }
        }
    }
    let empty_range = match (lo, hi) {
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a > b
                || (a == b
                    && (matches!(lo, Bound::Excluded(_)) || matches!(hi, Bound::Excluded(_))))
        }
        _ => false,
    };
    (!empty_range).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_dates() {
        let msk = FixedOffset::east_opt(3 * 3600).unwrap();
        let a = parse_filter_datetime("2026-01-01T00:00:00+03:00", msk).unwrap();
        assert_eq!(parse_filter_datetime("2026-01-01 00:00:00", msk), Some(a));
        assert_eq!(parse_filter_datetime("2026-01-01", msk), Some(a));
        assert_eq!(parse_filter_datetime("2025-12-31T21:00:00Z", msk), Some(a));
        // A raw '+' decoded to a space leaves an unusable value.
        assert_eq!(
            parse_filter_datetime("2026-01-01T00:00:00 03:00", msk),
            None
        );
    }
}
