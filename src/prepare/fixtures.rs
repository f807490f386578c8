//! Rows for tests of `prepare` and of the backends' staging.

use crate::model::{Cell, LeadRecord, LeadRow, LEAD_COLUMNS};
use crate::schema::lead_column_index;

/// A lead with only its TITLE set, no contact values, no problems.
pub(crate) fn lead(id: i32, title: &str) -> LeadRecord {
    let mut cells = vec![Cell::Null; LEAD_COLUMNS.len()];
    if let Some(i) = lead_column_index("TITLE") {
        cells[i] = Cell::Text(title.to_string());
    }
    LeadRecord {
        lead: LeadRow { id, cells },
        contacts: vec![],
        phones: vec![],
        solution: None,
        problems: vec![],
        raw_json: format!("{{\"ID\":\"{id}\"}}"),
    }
}
