//! `user.get`: the portal's users (operators), by ID or all, 50 per page.

use serde_json::{Map, Value};

use super::{as_int, as_text, list_values, param, CallErr, CallOk, Ctx, PAGE};

pub(super) fn user_get(ctx: &Ctx<'_>, params: &Map<String, Value>) -> Result<CallOk, CallErr> {
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
