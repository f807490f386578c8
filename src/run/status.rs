//! How a run ended, as a value: [`Status`]. `crate::exit` maps it to the process's exit
//! code; `run` records that code in the run history, so the code of each status is part
//! of its definition (the discriminant), and nothing here imports `exit`.

use crate::extract::client::ExtractError;
use crate::extract::oauth::OAuthError;
use crate::extract::portal::LabelsError;
use crate::store::StoreError;

use super::RunSummary;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Load(#[from] StoreError),
    /// A setting does not fit the portal (e.g. the solution field does not exist).
    #[error("{0}")]
    Config(String),
    /// The deletion check would remove too much: nothing was deleted.
    #[error(
        "refusing to delete {would_delete} of {in_table} {plural} ({:.0}% > the {:.0}% allowed): Bitrix24 \
         listed far fewer {plural} than the database holds. Check that the webhook still has the CRM \
         permission and sees all {plural}; if the deletions are real, run once with --max-delete-share 1",
        *would_delete as f64 * 100.0 / (*in_table).max(1) as f64,
        max_share * 100.0
    )]
    DeletionGuard {
        /// Whose records: `leads`, `contacts`, `companies`.
        plural: &'static str,
        would_delete: u64,
        in_table: u64,
        max_share: f64,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<LabelsError> for RunError {
    fn from(e: LabelsError) -> RunError {
        match e {
            LabelsError::Extract(e) => RunError::Extract(e),
            // A solution field that is missing or not a list is a setting to fix.
            other => RunError::Config(other.to_string()),
        }
    }
}

/// How a run (or a command) ended. The discriminant is the documented exit code (README,
/// "Exit codes"; `crate::exit` names each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Finished; every lead loaded cleanly.
    Ok = 0,
    /// A bug.
    Internal = 1,
    /// A setting is wrong or missing.
    Config = 2,
    /// Finished, with rows in `bitrix_import_lead_error`.
    LoadedWithErrors = 3,
    /// Bitrix24 refused the credentials or the permission.
    BitrixRefused = 4,
    /// Bitrix24 could not be reached, or kept failing.
    BitrixUnreachable = 5,
    /// The database could not be opened or a statement failed.
    Database = 6,
    /// Another run holds the run lock.
    Locked = 7,
    /// OAuth: authorize again.
    Reauthorize = 8,
    /// The deletion guard refused.
    DeletionRefused = 9,
    /// Interrupted after committing the batch in flight.
    Interrupted = 130,
}

impl Status {
    /// The exit code of this status.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

impl RunSummary {
    /// A finished run's status: `LoadedWithErrors` while `bitrix_import_lead_error` holds
    /// rows, this run's or older ones (they need a person until fixed or cleared).
    pub fn status(&self) -> Status {
        if self.interrupted {
            Status::Interrupted
        } else if self.outcome.error_rows > 0 || self.error_rows_held > 0 {
            Status::LoadedWithErrors
        } else {
            Status::Ok
        }
    }
}

impl RunError {
    /// A failed run's status.
    pub fn status(&self) -> Status {
        match self {
            RunError::Extract(e) => extract_status(e),
            RunError::Load(e) => store_status(e),
            RunError::Config(_) => Status::Config,
            RunError::DeletionGuard { .. } => Status::DeletionRefused,
            RunError::Internal(_) => Status::Internal,
        }
    }
}

fn extract_status(e: &ExtractError) -> Status {
    match e {
        ExtractError::Webhook(_) | ExtractError::UnknownHost { .. } => Status::Config,
        ExtractError::Refused { .. } => Status::BitrixRefused,
        ExtractError::Unreachable { .. }
        | ExtractError::GaveUp { .. }
        | ExtractError::Incomplete { .. }
        | ExtractError::Protocol { .. } => Status::BitrixUnreachable,
        ExtractError::Cancelled => Status::Interrupted,
        ExtractError::OAuth(e) => oauth_status(e),
    }
}

fn store_status(e: &StoreError) -> Status {
    match e {
        StoreError::LockBusy { .. } => Status::Locked,
        _ => Status::Database,
    }
}

/// The status of an OAuth failure (also outside a run: `b24sync auth`, `token`).
pub fn oauth_status(e: &OAuthError) -> Status {
    match e {
        OAuthError::Reauthorize { .. } => Status::Reauthorize,
        OAuthError::Refused { .. } => Status::BitrixRefused,
        OAuthError::Unreachable { .. } => Status::BitrixUnreachable,
        OAuthError::Config(_) => Status::Config,
        OAuthError::Store(e) => store_status(e),
        OAuthError::Injected(_) => Status::Internal,
    }
}
