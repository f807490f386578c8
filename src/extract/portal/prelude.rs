//! A run's first request: its one-off questions asked together in one `batch` (the
//! portal's clock, the solution field, the highest IDs of the leads to read and, for an
//! incremental run's deletion check, of all leads).

use serde_json::Value;

use super::labels::{self, LabelsError};
use super::{describe_answer, time};
use crate::extract::client::{Bitrix24Client, ExtractError, SubResult};
use crate::extract::paging::{self, ExportFilter, Extent};

/// The sub-command names.
const TIME: &str = "server_time";
/// Highest IDs of the leads this run reads (see `paging::Extent`).
const EXTENT: &str = "extent";
/// Highest IDs of all leads, for the deletion check's ID listing (incremental runs only;
/// for a full run it is the same question as `extent`).
const ALL_IDS: &str = "extent_all";

/// What to ask.
#[derive(Debug, Clone, Copy, Default)]
pub struct PreludeAsk<'a> {
    /// The solution field to describe.
    pub solution_field: Option<&'a str>,
    /// The leads whose extent to probe (none: no probe).
    pub extent_of: Option<&'a ExportFilter>,
    /// Also probe the extent of all leads.
    pub all_ids: bool,
}

/// The answers.
#[derive(Debug, Clone, Default)]
pub struct Prelude {
    /// The portal's now as it wrote it; `None` (a warning is logged) when unusable: the
    /// watermark then does not move.
    pub portal_time: Option<String>,
    /// The solution field's description (when asked).
    pub solution_field: Option<Value>,
    pub extent: Option<Extent>,
    pub all_ids: Option<Extent>,
}

/// Ask it all in one request.
pub async fn prelude(client: &Bitrix24Client, ask: PreludeAsk<'_>) -> Result<Prelude, LabelsError> {
    let mut commands = vec![(TIME.to_string(), time::METHOD.to_string())];
    commands.extend(ask.solution_field.map(labels::sub_command));
    if let Some(filter) = ask.extent_of {
        commands.push((EXTENT.to_string(), paging::probe_command(filter)));
    }
    if ask.all_ids {
        let all = ExportFilter {
            modified_since: None,
            select: vec![],
        };
        commands.push((ALL_IDS.to_string(), paging::probe_command(&all)));
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
    let extent_of = |name: &str| {
        paging::extent_of(answers.get(name)).map_err(|detail| ExtractError::Protocol {
            portal: client.portal(),
            method: "crm.lead.list (highest IDs)".into(),
            detail,
        })
    };
    let extent = match ask.extent_of {
        Some(_) => Some(extent_of(EXTENT)?),
        None => None,
    };
    let all_ids = match ask.all_ids {
        true => Some(extent_of(ALL_IDS)?),
        false => None,
    };
    Ok(Prelude {
        portal_time,
        solution_field,
        extent,
        all_ids,
    })
}
