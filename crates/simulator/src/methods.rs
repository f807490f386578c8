//! The REST methods themselves: parameters in (already parsed into JSON), result and
//! simulated server time out. No HTTP here; `server.rs` wraps these in envelopes,
//! limits and faults.
//!
//! `crm.lead.list` is the one that matters. Filters on ID, DATE_CREATE and DATE_MODIFY
//! use the compact stored form (ID filters even narrow the B-tree range, so keyset paging
//! over a million leads stays cheap); any other filter renders the lead to compare.

use std::collections::HashSet;
use std::ops::Bound;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use serde_json::{json, Map, Value};

use super::data::{Lead, Portal};
use super::fields::{self, userfield_rows};
use super::limits::CostModel;

/// Rows per page of every list method; there is no page-size parameter.
pub const PAGE: usize = 50;

/// A method's successful answer.
#[derive(Debug)]
pub struct CallOk {
    pub result: Value,
    pub total: Option<u64>,
    pub next: Option<u64>,
}

/// A method's error answer: HTTP status and the `{error, error_description}` envelope.
#[derive(Debug, Clone)]
pub struct CallErr {
    pub status: u16,
    pub code: String,
    pub description: String,
}

impl CallErr {
    pub fn new(status: u16, code: &str, description: &str) -> Self {
        CallErr {
            status,
            code: code.to_string(),
            description: description.to_string(),
        }
    }
}

pub type CallResult = (Result<CallOk, CallErr>, f64);

/// Methods the simulator knows (lower case, as routing normalises them).
pub const METHODS: &[&str] = &[
    "crm.lead.list",
    "crm.lead.get",
    "crm.lead.fields",
    "crm.lead.userfield.list",
    "server.time",
    "user.get",
    "batch",
];

pub struct Ctx<'a> {
    pub portal: &'a Portal,
    pub cost: &'a CostModel,
    pub uf_mask_includes_multiple: bool,
    pub user_scope: bool,
}

/// Runs one non-batch method.
pub fn call(ctx: &Ctx<'_>, method: &str, params: &Map<String, Value>) -> CallResult {
    let base = ctx.cost.base;
    let ok = |result: Value| {
        Ok(CallOk {
            result,
            total: None,
            next: None,
        })
    };
    match method {
        "crm.lead.list" => lead_list(ctx, params),
        "crm.lead.get" => lead_get(ctx, params),
        "crm.lead.fields" => (
            ok(fields::fields_description(&ctx.portal.inner.user_fields)),
            base,
        ),
        "crm.lead.userfield.list" => (userfield_list(ctx, params), base),
        "server.time" => (
            ok(json!(ctx
                .portal
                .now()
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string())),
            base / 10.0,
        ),
        "user.get" => (user_get(ctx, params), base),
        _ => (
            Err(CallErr::new(
                404,
                "ERROR_METHOD_NOT_FOUND",
                "Method not found!",
            )),
            0.0,
        ),
    }
}

/// A JSON parameter as text: strings as they are, numbers printed, else None.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("1".into()),
        Value::Bool(false) => Some(String::new()),
        _ => None,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Case-insensitive lookup: Bitrix accepts `filter`/`FILTER`, `id`/`ID`.
fn param<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    params.get(name).or_else(|| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Values of a JSON array or of a PHP-style object `{"0": .., "1": ..}`.
fn list_values(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o.values().cloned().collect(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

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
struct Cond {
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

fn known_field(ctx: &Ctx<'_>, name: &str) -> bool {
    fields::is_standard(name)
        || fields::is_multi(name)
        || ctx.portal.inner.user_fields.iter().any(|u| u.name == name)
}

/// Builds the conditions; unknown fields and unusable values are dropped silently, as
/// the real server does (a typo gives an unfiltered list).
fn parse_filter(ctx: &Ctx<'_>, filter: Option<&Value>) -> Vec<Cond> {
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
        if !known_field(ctx, &field) {
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
    fn eval_compact(&self, id: i64, lead: &Lead) -> Option<bool> {
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

    fn eval_rendered(&self, lead: &Map<String, Value>, offset: FixedOffset) -> bool {
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

/// Which fields a `select` asks for.
pub struct Selection {
    std_all: bool,
    uf_all: bool,
    names: HashSet<String>,
}

impl Selection {
    fn parse(select: Option<&Value>) -> Selection {
        let names: Vec<String> = select
            .map(list_values)
            .unwrap_or_default()
            .iter()
            .filter_map(as_text)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() {
            return Selection {
                std_all: true,
                uf_all: false,
                names: HashSet::new(),
            };
        }
        Selection {
            std_all: names.iter().any(|n| n == "*"),
            uf_all: names.iter().any(|n| n == "UF_*"),
            names: names.into_iter().collect(),
        }
    }

    fn includes(&self, ctx: &Ctx<'_>, key: &str) -> bool {
        if key == "ID" || self.names.contains(key) {
            return true;
        }
        if self.std_all && fields::is_standard(key) {
            return true;
        }
        if self.uf_all {
            // The docs say `UF_*` is "without multiple"; strict: multiple UFs must be named.
            return ctx
                .portal
                .inner
                .user_fields
                .iter()
                .any(|u| u.name == key && (!u.multiple || ctx.uf_mask_includes_multiple));
        }
        false
    }
}

/// Cost weight of a field in a row: joins (multi-fields, UFs) cost more.
fn weight(cost: &CostModel, key: &str) -> f64 {
    if fields::is_multi(key) || key.starts_with("UF_") {
        cost.join_field_weight
    } else {
        1.0
    }
}

#[derive(Clone, Copy, PartialEq)]
enum SortKey {
    Id,
    Modify,
    Create,
}

fn parse_order(order: Option<&Value>) -> Vec<(SortKey, bool)> {
    let mut out = Vec::new();
    if let Some(Value::Object(o)) = order {
        for (k, dir) in o {
            let key = match k.trim().to_ascii_uppercase().as_str() {
                "ID" => SortKey::Id,
                "DATE_MODIFY" => SortKey::Modify,
                "DATE_CREATE" => SortKey::Create,
                _ => continue,
            };
            let desc = as_text(dir).is_some_and(|d| d.trim().eq_ignore_ascii_case("DESC"));
            out.push((key, desc));
        }
    }
    out
}

fn lead_list(ctx: &Ctx<'_>, params: &Map<String, Value>) -> CallResult {
    let portal = ctx.portal;
    let offset = portal.offset();
    let conds = parse_filter(ctx, param(params, "filter"));
    let order = parse_order(param(params, "order"));
    let sel = Selection::parse(param(params, "select"));
    let start = param(params, "start").and_then(as_int).unwrap_or(0);
    let counting = start >= 0;
    let skip = start.max(0) as usize;

    // ID conditions narrow the B-tree range: keyset paging must not rescan from ID 1.
    let (mut lo, mut hi) = (Bound::Unbounded, Bound::Unbounded);
    for c in &conds {
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
    let by_id_only = order.iter().all(|(k, _)| *k == SortKey::Id);
    let desc_id = order.first().is_some_and(|(_, d)| *d);

    let matches = |id: i64, lead: &Lead| {
        let mut rendered: Option<Map<String, Value>> = None;
        conds.iter().all(|c| match c.eval_compact(id, lead) {
            Some(b) => b,
            None => c.eval_rendered(
                rendered.get_or_insert_with(|| portal.render(id, lead)),
                offset,
            ),
        })
    };

    let mut total = 0usize;
    let mut page: Vec<(i64, Lead)> = Vec::with_capacity(PAGE);
    {
        let st = portal.lock();
        let range = if empty_range {
            None
        } else {
            Some(st.leads.range((lo, hi)))
        };
        if let Some(range) = range {
            if by_id_only {
                let iter: Box<dyn Iterator<Item = (&i64, &Lead)>> = if desc_id {
                    Box::new(range.rev())
                } else {
                    Box::new(range)
                };
                for (id, lead) in iter {
                    if !matches(*id, lead) {
                        continue;
                    }
                    if total >= skip && page.len() < PAGE {
                        page.push((*id, lead.clone()));
                    }
                    total += 1;
                    if !counting && page.len() == PAGE {
                        break;
                    }
                }
            } else {
                let mut all: Vec<(i64, &Lead)> = range
                    .filter(|(id, l)| matches(**id, l))
                    .map(|(id, l)| (*id, l))
                    .collect();
                total = all.len();
                let key = |k: SortKey, id: i64, l: &Lead| match k {
                    SortKey::Id => Some(id),
                    SortKey::Modify => l.date_modify,
                    SortKey::Create => l.date_create,
                };
                all.sort_by(|(ia, la), (ib, lb)| {
                    for (k, desc) in &order {
                        let o = key(*k, *ia, la).cmp(&key(*k, *ib, lb));
                        let o = if *desc { o.reverse() } else { o };
                        if o.is_ne() {
                            return o;
                        }
                    }
                    ia.cmp(ib)
                });
                page = all
                    .into_iter()
                    .skip(skip)
                    .take(PAGE)
                    .map(|(id, l)| (id, l.clone()))
                    .collect();
            }
        }
    }

    let mut weight_sum = 0.0;
    let rows: Vec<Value> = page
        .iter()
        .map(|(id, lead)| {
            let full = portal.render(*id, lead);
            let mut row = Map::new();
            for (k, v) in full {
                if sel.includes(ctx, &k) {
                    weight_sum += weight(ctx.cost, &k);
                    row.insert(k, v);
                }
            }
            Value::Object(row)
        })
        .collect();
    let c = ctx.cost;
    let mut cost = c.base + c.per_row_field * weight_sum + c.per_offset_row * skip as f64;
    let (total_out, next) = if counting {
        cost += c.per_counted_row * total as f64;
        let next = (skip + PAGE < total).then_some((skip + PAGE) as u64);
        (total as u64, next)
    } else {
        (0, None)
    };
    (
        Ok(CallOk {
            result: Value::Array(rows),
            total: Some(total_out),
            next,
        }),
        cost,
    )
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

fn lead_get(ctx: &Ctx<'_>, params: &Map<String, Value>) -> CallResult {
    let base = ctx.cost.base;
    let Some(id) = param(params, "id").and_then(as_int).filter(|id| *id > 0) else {
        return (
            Err(CallErr::new(400, "", "ID is not defined or invalid.")),
            base,
        );
    };
    match ctx.portal.lead(id) {
        Some(Value::Object(lead)) => {
            let w: f64 = lead.keys().map(|k| weight(ctx.cost, k)).sum();
            (
                Ok(CallOk {
                    result: Value::Object(lead),
                    total: None,
                    next: None,
                }),
                base + ctx.cost.per_row_field * w,
            )
        }
        _ => (Err(CallErr::new(400, "", "Not found")), base),
    }
}

fn userfield_list(ctx: &Ctx<'_>, params: &Map<String, Value>) -> Result<CallOk, CallErr> {
    let filter = match param(params, "filter") {
        Some(Value::Object(f)) => f.clone(),
        _ => Map::new(),
    };
    let lang = filter
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("LANG"))
        .and_then(|(_, v)| as_text(v));
    let rows: Vec<Value> = userfield_rows(&ctx.portal.inner.user_fields, lang.as_deref())
        .into_iter()
        .filter(|row| {
            filter.iter().all(|(k, want)| {
                let key = k.trim_start_matches('=').to_ascii_uppercase();
                if key == "LANG" {
                    return true;
                }
                match (row.get(&key), as_text(want)) {
                    (Some(have), Some(want)) => as_text(have).is_some_and(|h| h == want),
                    // Unknown keys are ignored, as in the lead filter.
                    _ => row.get(&key).is_none(),
                }
            })
        })
        .collect();
    let total = rows.len() as u64;
    Ok(CallOk {
        result: Value::Array(rows),
        total: Some(total),
        next: None,
    })
}

fn user_get(ctx: &Ctx<'_>, params: &Map<String, Value>) -> Result<CallOk, CallErr> {
    if !ctx.user_scope {
        return Err(CallErr::new(
            401,
            "insufficient_scope",
            "The request requires higher privileges than provided by the webhook token",
        ));
    }
    // IDs may come as a top-level `ID`, or in `filter`/`FILTER` as `ID`, `@ID` or `=ID`.
    let mut wanted: Option<Vec<String>> = None;
    let mut consider = |k: &str, v: &Value| {
        if matches!(k.to_ascii_uppercase().as_str(), "ID" | "@ID" | "=ID") {
            wanted = Some(list_values(v).iter().filter_map(as_text).collect());
        }
    };
    for (k, v) in params {
        consider(k, v);
    }
    if let Some(Value::Object(f)) = param(params, "filter") {
        for (k, v) in f {
            consider(k, v);
        }
    }
    let users: Vec<Value> = ctx
        .portal
        .inner
        .users
        .iter()
        .filter(|u| match &wanted {
            None => true,
            Some(ids) => ids.iter().any(|w| u["ID"].as_str() == Some(w.as_str())),
        })
        .cloned()
        .collect();
    let start = param(params, "start").and_then(as_int).unwrap_or(0).max(0) as usize;
    let total = users.len();
    let page: Vec<Value> = users.into_iter().skip(start).take(PAGE).collect();
    let next = (start + PAGE < total).then_some((start + PAGE) as u64);
    Ok(CallOk {
        result: Value::Array(page),
        total: Some(total as u64),
        next,
    })
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
