//! The CRM entity methods, one implementation for leads, contacts and companies:
//! `crm.{entity}.list` (filter, select, order, paging and its cost), `.get`, `.fields`
//! and `.userfield.list`.

use serde_json::{Map, Value};

use super::filter::{id_range, parse_filter};
use super::select::{parse_order, weight, Selection, SortKey};
use super::{as_int, as_text, param, CallErr, CallOk, CallResult, Ctx, PAGE};
use crate::data::Lead;
use crate::entity::Entity;
use crate::fields::userfield_rows;

/// Runs `crm.{entity}.{op}`; None for an operation the simulator does not serve.
pub(super) fn call(
    ctx: &Ctx<'_>,
    entity: Entity,
    op: &str,
    params: &Map<String, Value>,
) -> Option<CallResult> {
    let base = ctx.cost.base;
    let ufs = ctx.portal.inner.user_fields_of(entity);
    Some(match op {
        "list" => list(ctx, entity, params),
        "get" => get(ctx, entity, params),
        "fields" => (
            Ok(CallOk {
                result: entity.fields_description(ufs),
                total: None,
                next: None,
            }),
            base,
        ),
        "userfield.list" => (userfield_list(ctx, entity, params), base),
        _ => return None,
    })
}

fn list(ctx: &Ctx<'_>, entity: Entity, params: &Map<String, Value>) -> CallResult {
    let portal = ctx.portal;
    let offset = portal.offset();
    let conds = parse_filter(ctx, entity, param(params, "filter"));
    let order = parse_order(param(params, "order"));
    let sel = Selection::parse(entity, param(params, "select"));
    let start = param(params, "start").and_then(as_int).unwrap_or(0);
    let counting = start >= 0;
    let skip = start.max(0) as usize;

    let id_range = id_range(&conds);
    let by_id_only = order.iter().all(|(k, _)| *k == SortKey::Id);
    let desc_id = order.first().is_some_and(|(_, d)| *d);

    let matches = |id: i64, lead: &Lead| {
        let mut rendered: Option<Map<String, Value>> = None;
        conds.iter().all(|c| match c.eval_compact(id, lead) {
            Some(b) => b,
            None => c.eval_rendered(
                rendered.get_or_insert_with(|| portal.render(entity, id, lead)),
                offset,
            ),
        })
    };

    let mut total = 0usize;
    let mut page: Vec<(i64, Lead)> = Vec::with_capacity(PAGE);
    {
        let st = portal.lock();
        let range = id_range.map(|bounds| st.store(entity).range(bounds));
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
            let full = portal.render(entity, *id, lead);
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

fn get(ctx: &Ctx<'_>, entity: Entity, params: &Map<String, Value>) -> CallResult {
    let base = ctx.cost.base;
    let Some(id) = param(params, "id").and_then(as_int).filter(|id| *id > 0) else {
        return (
            Err(CallErr::new(400, "", "ID is not defined or invalid.")),
            base,
        );
    };
    match ctx.portal.record(entity, id) {
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

fn userfield_list(
    ctx: &Ctx<'_>,
    entity: Entity,
    params: &Map<String, Value>,
) -> Result<CallOk, CallErr> {
    let filter = match param(params, "filter") {
        Some(Value::Object(f)) => f.clone(),
        _ => Map::new(),
    };
    let lang = filter
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("LANG"))
        .and_then(|(_, v)| as_text(v));
    let ufs = ctx.portal.inner.user_fields_of(entity);
    let rows: Vec<Value> = userfield_rows(entity.uf_entity_id(), ufs, lang.as_deref())
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
