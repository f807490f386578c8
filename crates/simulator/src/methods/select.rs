//! `select` (which fields a row carries, and what they cost) and `order` of the list
//! methods.

use std::collections::HashSet;

use serde_json::Value;

use super::{as_text, list_values, Ctx};
use crate::entity::Entity;
use crate::fields;
use crate::limits::CostModel;

/// Which fields a `select` asks for.
pub struct Selection {
    entity: Entity,
    std_all: bool,
    uf_all: bool,
    names: HashSet<String>,
}

impl Selection {
    pub(super) fn parse(entity: Entity, select: Option<&Value>) -> Selection {
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
                entity,
                std_all: true,
                uf_all: false,
                names: HashSet::new(),
            };
        }
        Selection {
            entity,
            std_all: names.iter().any(|n| n == "*"),
            uf_all: names.iter().any(|n| n == "UF_*"),
            names: names.into_iter().collect(),
        }
    }

    pub(super) fn includes(&self, ctx: &Ctx<'_>, key: &str) -> bool {
        if key == "ID" || self.names.contains(key) {
            return true;
        }
        if self.std_all && self.entity.is_standard(key) {
            return true;
        }
        if self.uf_all {
            // The docs say `UF_*` is "without multiple"; strict: multiple UFs must be named.
            return ctx
                .portal
                .inner
                .user_fields_of(self.entity)
                .iter()
                .any(|u| u.name == key && (!u.multiple || ctx.uf_mask_includes_multiple));
        }
        false
    }
}

/// Cost weight of a field in a row: joins (multi-fields, UFs) cost more.
pub(super) fn weight(cost: &CostModel, key: &str) -> f64 {
    if fields::is_multi(key) || key.starts_with("UF_") {
        cost.join_field_weight
    } else {
        1.0
    }
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum SortKey {
    Id,
    Modify,
    Create,
}

pub(super) fn parse_order(order: Option<&Value>) -> Vec<(SortKey, bool)> {
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
