//! A run's first request: its one-off questions asked together in one `batch` — the
//! portal's clock, the solution field, and for each entity the run reads the highest IDs of
//! the records to read and, for an incremental run's deletion check, of all its records.
//! However many entities a run syncs, this is one request.

use serde_json::Value;

use super::labels::{self, LabelsError};
use super::{describe_answer, time};
use crate::extract::client::{Bitrix24Client, ExtractError, SubResult};
use crate::extract::paging::{self, ExportFilter, Extent};

/// The sub-command names (the entity's name is appended to the extent probes').
const TIME: &str = "server_time";
/// Highest IDs of the records this run reads (see `paging::Extent`).
const EXTENT: &str = "extent";
/// Highest IDs of all records, for the deletion check's ID listing (incremental runs only;
/// for a full run it is the same question as `extent`).
const ALL_IDS: &str = "extent_all";

/// The answer codes that mean "this webhook or application may not read this entity"
/// (no CRM rights for it, no scope, the entity switched off): the entity is skipped with a
/// warning, the others are read.
const NO_ACCESS: [&str; 4] = [
    "ACCESS_DENIED",
    "insufficient_scope",
    "user_access_error",
    "ERROR_METHOD_NOT_FOUND",
];

/// What to ask about one entity.
#[derive(Debug, Clone, Copy)]
pub struct EntityAsk<'a> {
    /// The records whose extent to probe.
    pub filter: &'a ExportFilter,
    /// Also probe the extent of all its records.
    pub all_ids: bool,
}

/// What to ask.
#[derive(Debug, Clone, Default)]
pub struct PreludeAsk<'a> {
    /// The solution field to describe.
    pub solution_field: Option<&'a str>,
    /// The entities whose extents to probe, in order.
    pub entities: Vec<EntityAsk<'a>>,
}

/// One entity's answers.
#[derive(Debug, Clone, PartialEq)]
pub enum EntityExtents {
    /// The records to read, and (when asked) all records.
    Readable {
        extent: Extent,
        all_ids: Option<Extent>,
    },
    /// The portal refused this entity (its code and description): skip it.
    NoAccess { refusal: String },
}

/// The answers.
#[derive(Debug, Clone, Default)]
pub struct Prelude {
    /// The portal's now as it wrote it; `None` (a warning is logged) when unusable: the
    /// watermark then does not move.
    pub portal_time: Option<String>,
    /// The solution field's description (when asked).
    pub solution_field: Option<Value>,
    /// One per [`PreludeAsk::entities`], in order.
    pub entities: Vec<EntityExtents>,
}

/// Ask it all in one request.
pub async fn prelude(client: &Bitrix24Client, ask: PreludeAsk<'_>) -> Result<Prelude, LabelsError> {
    let mut commands = vec![(TIME.to_string(), time::METHOD.to_string())];
    commands.extend(ask.solution_field.map(labels::sub_command));
    let name = |base: &str, e: &EntityAsk<'_>| format!("{base}_{}", e.filter.entity.name);
    for e in &ask.entities {
        commands.push((name(EXTENT, e), paging::probe_command(e.filter)));
        if e.all_ids {
            let all = ExportFilter {
                select: vec![],
                ..ExportFilter::of(e.filter.entity)
            };
            commands.push((name(ALL_IDS, e), paging::probe_command(&all)));
        }
    }
    let answers = client.batch(&commands).await?;
    let portal_time = match answers.get(TIME) {
        Some(SubResult::Ok {
            result: Value::String(t),
            ..
        }) if time::parse_portal_time(t).is_some() => Some(t.clone()),
        other => {
            tracing::warn!(
                "server.time gave no usable time ({}); the watermark will not move",
                describe_answer(other)
            );
            None
        }
    };
    let solution_field = match ask.solution_field {
        Some(field) => Some(labels::field_of_answer(
            field,
            answers.get(labels::SUB_COMMAND),
            client,
        )?),
        None => None,
    };
    let mut entities = Vec::with_capacity(ask.entities.len());
    for e in &ask.entities {
        let answer = answers.get(&name(EXTENT, e));
        if let Some(SubResult::Err { code, description }) = answer {
            if NO_ACCESS.iter().any(|c| c.eq_ignore_ascii_case(code)) {
                entities.push(EntityExtents::NoAccess {
                    refusal: format!("{code}: {description}"),
                });
                continue;
            }
        }
        let extent_of = |answer: Option<&SubResult>| {
            paging::extent_of(answer).map_err(|detail| ExtractError::Protocol {
                portal: client.portal(),
                method: format!("{} (highest IDs)", e.filter.list_method()),
                detail,
            })
        };
        let extent = extent_of(answer)?;
        let all_ids = match e.all_ids {
            true => Some(extent_of(answers.get(&name(ALL_IDS, e)))?),
            false => None,
        };
        entities.push(EntityExtents::Readable { extent, all_ids });
    }
    Ok(Prelude {
        portal_time,
        solution_field,
        entities,
    })
}
