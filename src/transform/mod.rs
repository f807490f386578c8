//! The transform stage: pure functions from one raw Bitrix24 lead (JSON) to rows.
//!
//! No I/O here. Column sizes come from [`crate::model`]; date rules live in this module.

use std::collections::HashMap;

use crate::model::{LeadRecord, RejectedLead};

/// Which wall clock the `datetime` columns hold. Bitrix24 sends `2024-05-01T12:34:56+03:00`;
/// the Oktell columns have no offset, so one must be chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum TimePolicy {
    /// The portal's own wall-clock time, the offset dropped (what Oktell reports expect).
    Portal,
    /// Converted to UTC.
    Utc,
    /// Converted to a named zone (`Europe/Moscow`).
    Zone(chrono_tz::Tz),
}

impl std::str::FromStr for TimePolicy {
    type Err = String;
    /// `portal`, `utc`, or an IANA zone name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portal" => Ok(TimePolicy::Portal),
            "utc" | "z" => Ok(TimePolicy::Utc),
            _ => s.trim().parse::<chrono_tz::Tz>().map(TimePolicy::Zone).map_err(|_| {
                format!("unknown time zone {s:?}: use \"portal\", \"utc\" or an IANA name such as \"Europe/Moscow\"")
            }),
        }
    }
}

/// What the transform needs besides the lead itself.
#[derive(Debug, Clone)]
pub struct TransformContext {
    pub time_policy: TimePolicy,
    /// The list-type user field read into `bitrix_lead_solution` (`UF_CRM_...`), if any.
    pub solution_field: Option<String>,
    /// The solution field's list: item ID (as text) → display name.
    pub solution_labels: HashMap<String, String>,
}

/// The result of transforming one lead.
#[derive(Debug, Clone, PartialEq)]
pub enum Transformed {
    Record(LeadRecord),
    Rejected(RejectedLead),
}

/// Turn one lead, as received from `crm.lead.list`, into rows.
pub fn transform_lead(raw: &serde_json::Value, ctx: &TransformContext) -> Transformed {
    let _ = (raw, ctx);
    todo!("transform helper")
}

