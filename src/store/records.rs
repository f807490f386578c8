//! The values stores hand back: what a batch changed, what `init-db` did, error rows, run
//! history rows and `doctor` verdicts. Both backends return exactly these.

use chrono::NaiveDateTime;

use crate::model::LeadId;

/// What one `load_batch` call changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub leads_inserted: u64,
    pub leads_updated: u64,
    pub leads_unchanged: u64,
    /// Contact values written (inserted or changed) and removed.
    pub contacts_written: u64,
    pub contacts_deleted: u64,
    /// Rows this batch left in `bitrix_import_lead_error` (new or kept).
    pub error_rows: u64,
    /// Of those, rows this batch inserted: problems not in the table before (a kept row
    /// is a problem someone has already been told about).
    pub error_rows_new: u64,
}

impl BatchOutcome {
    pub fn add(&mut self, other: &BatchOutcome) {
        self.leads_inserted += other.leads_inserted;
        self.leads_updated += other.leads_updated;
        self.leads_unchanged += other.leads_unchanged;
        self.contacts_written += other.contacts_written;
        self.contacts_deleted += other.contacts_deleted;
        self.error_rows += other.error_rows;
        self.error_rows_new += other.error_rows_new;
    }
}

/// What `init_schema` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaReport {
    /// What this call did, one line per migration applied (`migration 1 (...)`), for the
    /// log at INFO.
    pub created: Vec<String>,
    /// The objects those migrations created (`table bitrix_leads`, `index ...`), for the
    /// log at debug (`-v`).
    pub objects: Vec<String>,
    /// Problems that need a person (e.g. duplicate `sql_ID` rows), each with what to do.
    pub warnings: Vec<String>,
}

/// One row of `bitrix_import_lead_error`, for `b24sync errors list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredError {
    /// The row's `Id`.
    pub row_id: i64,
    /// `sql_ID`: the lead ID as received.
    pub lead_id: Option<String>,
    /// `sql_error`.
    pub reason: Option<String>,
    /// `sql_date_error`.
    pub at: Option<NaiveDateTime>,
}

impl StoredError {
    /// The lead ID as a Bitrix24 lead ID (a positive number), if it is one: only such rows
    /// can be read again by `errors retry`.
    pub fn numeric_lead_id(&self) -> Option<LeadId> {
        self.lead_id
            .as_deref()
            .and_then(crate::model::parse_lead_id)
    }
}

/// One row of the run history (`b24sync_runs`): written when a run starts, completed when
/// it ends, so a run that died shows as unfinished (`finished_at` NULL, status `running`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunRecord {
    /// The row's `Id` (0 before it is written).
    pub id: i64,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    /// `full`, `incremental`, `dry-run full`, `errors retry`, ...
    pub mode: String,
    /// `running`, `ok`, `errors` (finished with rows in the error table), `failed`,
    /// `refused` (the deletion guard refused after the leads were loaded), `interrupted`.
    pub status: String,
    pub leads_read: i64,
    /// Leads inserted or changed.
    pub leads_upserted: i64,
    pub leads_deleted: i64,
    pub contact_values: i64,
    pub error_rows: i64,
    pub requests: i64,
    /// Server time Bitrix24 reported for the run.
    pub server_seconds: f64,
    pub seconds: f64,
    pub exit_code: Option<i64>,
    /// The summary line, or the error (never a secret).
    pub message: Option<String>,
}

/// One verdict of `b24sync doctor` about the database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnosis {
    /// Short name: `tables`, `columns`, `indexes`, `duplicates`, `permissions`, ...
    pub check: String,
    pub ok: bool,
    /// What was found, in one line.
    pub detail: String,
    /// What to do when not ok (empty when ok).
    pub fix: String,
}
