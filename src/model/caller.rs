//! The typed rows of a caller lookup: the keys computed from the caller's number
//! (`CallerQuery::new` and `CallerQuery::params`, in `lookup`, normalise it the way
//! `transform` normalises stored phones) and the leads found.

use chrono::NaiveDateTime;

/// The keys of one lookup, computed from the caller's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerQuery {
    /// The caller's E.164 form, when the number normalises.
    pub e164: Option<String>,
    /// Else the caller's last N digits (the fallback), when there are at least
    /// `lookup::MIN_TAIL_DIGITS` of them.
    pub tail: Option<String>,
    pub limit: u32,
}

impl CallerQuery {
    /// Whether there is anything to look for.
    pub fn is_empty(&self) -> bool {
        self.e164.is_none() && self.tail.is_none()
    }
}

/// One lead found for a caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallerMatch {
    pub lead_id: i64,
    pub title: Option<String>,
    pub name: Option<String>,
    pub last_name: Option<String>,
    pub company_title: Option<String>,
    pub status_id: Option<String>,
    pub date_modify: Option<NaiveDateTime>,
    /// The lead's `ASSIGNED_BY_ID`, known even when the operator's details are not.
    pub operator_id: Option<String>,
    pub operator_name: Option<String>,
    pub operator_last_name: Option<String>,
    /// The operator's internal phone extension (`UF_PHONE_INNER`).
    pub operator_extension: Option<String>,
}
