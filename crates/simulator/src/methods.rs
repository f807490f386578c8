//! The REST methods themselves: parameters in (already parsed into JSON), result and
//! simulated server time out. No HTTP here; `server.rs` wraps these in envelopes,
//! limits and faults.
//!
//! `crm.lead.list` is the one that matters; contacts and companies go through the same
//! code (`leads.rs`, parametrised by [`Entity`]). Filters on ID, DATE_CREATE and DATE_MODIFY
//! use the compact stored form (ID filters even narrow the B-tree range, so keyset paging
//! over a million leads stays cheap); any other filter renders the lead to compare.
//!
//! Here: the call's types and the dispatch, and the parameter readers every method uses.
//! `filter.rs` parses and evaluates `filter`, `select.rs` reads `select` and `order`,
//! `leads.rs` runs the CRM entity methods, `users.rs` runs `user.get`, `events.rs` the
//! `event.*` methods.

mod events;
mod filter;
mod leads;
mod select;
mod users;

use serde_json::{json, Map, Value};

use super::data::Portal;
use super::entity::Entity;
use super::events::EventHub;
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
    "crm.contact.list",
    "crm.contact.get",
    "crm.contact.fields",
    "crm.contact.userfield.list",
    "crm.company.list",
    "crm.company.get",
    "crm.company.fields",
    "crm.company.userfield.list",
    "server.time",
    "user.get",
    "batch",
    "event.bind",
    "event.get",
    "event.unbind",
    "event.offline.get",
    "event.offline.clear",
    "event.offline.error",
];

/// Who is calling: the inbound webhook, or an OAuth application (some methods, such as
/// `event.*`, answer only the latter).
#[derive(Debug, Clone)]
pub enum Caller {
    Webhook,
    App { client_id: String, scope: String },
}

pub struct Ctx<'a> {
    pub portal: &'a Portal,
    pub cost: &'a CostModel,
    pub uf_mask_includes_multiple: bool,
    pub user_scope: bool,
    /// Method families the caller may not use (`SimulatorConfig::denied`).
    pub denied: &'a [String],
    pub caller: &'a Caller,
    pub events: &'a EventHub,
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
    if ctx
        .denied
        .iter()
        .any(|family| method.starts_with(&format!("{family}.")))
    {
        return (
            Err(CallErr::new(403, "ACCESS_DENIED", "Access denied.")),
            base / 10.0,
        );
    }
    // crm.lead.* / crm.contact.* / crm.company.*: one implementation over the entity.
    if let Some(res) =
        Entity::from_method(method).and_then(|(entity, op)| leads::call(ctx, entity, op, params))
    {
        return res;
    }
    match method {
        "server.time" => (
            ok(json!(ctx
                .portal
                .now()
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string())),
            base / 10.0,
        ),
        "user.get" => (users::user_get(ctx, params), base),
        m if m.starts_with("event.") => (events::call(ctx, m, params), base),
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
