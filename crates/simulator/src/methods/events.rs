//! The `event.*` methods: `event.bind`, `event.get`, `event.unbind`, `event.offline.get`,
//! `event.offline.clear`, `event.offline.error`. Parameters are read here, case-insensitively
//! as the portal does; the bindings and the queue are `events.rs`'s. Application (OAuth)
//! authorisation only: a webhook call answers 403 `WRONG_AUTH_TYPE`, like the portal.

use serde_json::{json, Map, Value};

use super::{as_int, as_text, list_values, param, CallErr, CallOk, Caller, Ctx};
use crate::events::{check_limit, lock, BindRequest, Cond, EventError, Field, OfflineQuery, Op};
use crate::methods::PAGE;

pub(super) fn call(
    ctx: &Ctx<'_>,
    method: &str,
    params: &Map<String, Value>,
) -> Result<CallOk, CallErr> {
    let Caller::App { client_id, scope } = ctx.caller else {
        return Err(CallErr::new(
            403,
            "WRONG_AUTH_TYPE",
            "Current authorization type is denied for this method",
        ));
    };
    run(ctx, method, client_id, scope, params)
        .map_err(|e| CallErr::new(e.status, e.code, &e.description))
}

fn text(params: &Map<String, Value>, name: &str) -> String {
    param(params, name).and_then(as_text).unwrap_or_default()
}

/// PHP's `intval` of a parameter, `default` when it is absent.
fn int(params: &Map<String, Value>, name: &str, default: i64) -> i64 {
    param(params, name).map_or(default, |v| as_int(v).unwrap_or(0))
}

/// An array parameter (JSON array or PHP-style `{"0": ..}`); `None` when absent.
fn array(
    params: &Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<Option<Vec<Value>>, EventError> {
    match param(params, name) {
        None => Ok(None),
        Some(v @ (Value::Array(_) | Value::Object(_))) => Ok(Some(list_values(v))),
        Some(_) => Err(EventError::argument(what)),
    }
}

fn ok(result: Value) -> CallOk {
    CallOk {
        result,
        total: None,
        next: None,
    }
}

fn run(
    ctx: &Ctx<'_>,
    method: &str,
    app: &str,
    scope: &str,
    params: &Map<String, Value>,
) -> Result<CallOk, EventError> {
    let hub = ctx.events;
    let connector = text(params, "auth_connector");
    match method {
        "event.bind" => {
            let req = BindRequest {
                app,
                scope,
                event: &text(params, "event"),
                handler: &text(params, "handler"),
                event_type: &text(params, "event_type"),
                auth_type: int(params, "auth_type", 0),
                connector: &connector,
                application_token: hub.application_token(),
            };
            lock(&hub.bindings).bind(&req)?;
            Ok(ok(json!(true)))
        }
        "event.get" => Ok(ok(lock(&hub.bindings).get(app))),
        "event.unbind" => {
            let auth_type = param(params, "auth_type").map(|v| as_int(v).unwrap_or(0));
            let count = lock(&hub.bindings).unbind(
                app,
                &text(params, "event"),
                &text(params, "handler"),
                &text(params, "event_type"),
                auth_type,
                &connector,
            )?;
            Ok(ok(json!({"count": count})))
        }
        "event.offline.get" => {
            let query = OfflineQuery {
                app,
                connector: &connector,
                filter: parse_filter(param(params, "filter"))?,
                order: parse_order(param(params, "order"))?,
                limit: check_limit(int(params, "limit", PAGE as i64))?,
                clear: int(params, "clear", 1) != 0,
                process_id: param(params, "process_id")
                    .map(|v| as_text(v).unwrap_or_default().trim().to_string()),
                error: int(params, "error", 0) == 1,
            };
            let (process_id, events) = lock(&hub.offline).get(&query);
            Ok(ok(json!({"process_id": process_id, "events": events})))
        }
        "event.offline.clear" => {
            let process_id = required_process_id(params)?;
            let message_ids = message_ids(params)?;
            let ids = match array(params, "id", "Value must be array of integers")? {
                None => None,
                Some(list) => Some(
                    list.iter()
                        .map(|v| as_int(v).filter(|i| *i > 0).map(|i| i as u64))
                        .collect::<Option<Vec<u64>>>()
                        .ok_or_else(|| EventError::argument("Value must be array of integers"))?,
                ),
            };
            lock(&hub.offline).clear(
                app,
                &connector,
                &process_id,
                ids.as_deref(),
                message_ids.as_deref(),
            );
            Ok(ok(json!(true)))
        }
        "event.offline.error" => {
            let process_id = required_process_id(params)?;
            let Some(message_ids) = message_ids(params)? else {
                return Err(EventError::argument(
                    "Value must be array of MESSAGE_ID values",
                ));
            };
            if !message_ids.is_empty() {
                lock(&hub.offline).mark_error(app, &connector, &process_id, &message_ids);
            }
            Ok(ok(json!(true)))
        }
        _ => Err(EventError::new(
            404,
            "ERROR_METHOD_NOT_FOUND",
            "Method not found!",
        )),
    }
}

fn required_process_id(params: &Map<String, Value>) -> Result<String, EventError> {
    param(params, "process_id")
        .map(|v| as_text(v).unwrap_or_default().trim().to_string())
        .ok_or_else(|| EventError::argument("Required argument PROCESS_ID is empty"))
}

/// `message_id`: an array of 32-character values, or absent.
fn message_ids(params: &Map<String, Value>) -> Result<Option<Vec<String>>, EventError> {
    const WHAT: &str = "Value must be array of MESSAGE_ID values";
    let Some(list) = array(params, "message_id", WHAT)? else {
        return Ok(None);
    };
    list.iter()
        .map(|v| {
            as_text(v)
                .map(|s| s.trim().to_string())
                .filter(|s| s.chars().count() == 32)
        })
        .collect::<Option<Vec<String>>>()
        .map(Some)
        .ok_or_else(|| EventError::argument(WHAT))
}

/// `filter`: `{"=EVENT_NAME": .., ">=ID": .., "MESSAGE_ID": ..}` on ID, TIMESTAMP_X,
/// EVENT_NAME, MESSAGE_ID; another field or an array value is refused.
fn parse_filter(filter: Option<&Value>) -> Result<Vec<Cond>, EventError> {
    let Some(Value::Object(f)) = filter else {
        return Ok(vec![]);
    };
    f.iter()
        .map(|(key, value)| {
            let split = key
                .char_indices()
                .find(|(_, c)| c.is_alphanumeric() || *c == '_')
                .map_or(key.len(), |(i, _)| i);
            let (op, name) = key.split_at(split);
            let op = match op {
                "" | "=" => Op::Eq,
                "!" | "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                _ => return Err(EventError::argument("Filter operation not allowed")),
            };
            let field = Field::parse(name)
                .ok_or_else(|| EventError::argument("Filter field not allowed"))?;
            let value = as_text(value)
                .ok_or_else(|| EventError::argument("Filter value must be a scalar"))?;
            Ok(Cond { field, op, value })
        })
        .collect()
}

/// `order`: `{"FIELD": "ASC"|"DESC"}` on the filter's fields.
fn parse_order(order: Option<&Value>) -> Result<Vec<(Field, bool)>, EventError> {
    let Some(Value::Object(o)) = order else {
        return Ok(vec![]);
    };
    o.iter()
        .map(|(k, v)| {
            let field =
                Field::parse(k).ok_or_else(|| EventError::argument("Order field not allowed"))?;
            let desc = as_text(v).is_some_and(|d| d.trim().eq_ignore_ascii_case("DESC"));
            Ok((field, desc))
        })
        .collect()
}
