//! Exit codes: what a scheduler should alert on. Documented in README.md ("Exit codes").

use crate::extract::client::ExtractError;
use crate::extract::oauth::OAuthError;
use crate::run::{RunError, RunSummary};
use crate::store::StoreError;

/// Finished; every lead loaded cleanly.
pub const OK: u8 = 0;
/// An unexpected internal error (a bug: please report it with the log).
pub const INTERNAL: u8 = 1;
/// A setting is wrong or missing (a flag, an environment variable, the TOML file).
pub const CONFIG: u8 = 2;
/// Finished, but some leads have rows in `bitrix_import_lead_error` (loaded with a value
/// cut or left NULL, or not loadable at all): review them.
pub const LOADED_WITH_ERRORS: u8 = 3;
/// Bitrix24 refused the credentials or the permission (bad webhook, missing scope, plan).
pub const BITRIX_REFUSED: u8 = 4;
/// Bitrix24 could not be reached, or kept failing after all retries.
pub const BITRIX_UNREACHABLE: u8 = 5;
/// The database could not be opened or a statement failed.
pub const DATABASE: u8 = 6;
/// Another b24sync run holds the run lock.
pub const LOCKED: u8 = 7;
/// OAuth mode: the authorization expired or was revoked (or never happened): run
/// `b24sync auth` again.
pub const REAUTHORIZE: u8 = 8;
/// The deletion check refused: Bitrix24 listed far fewer leads than the database holds
/// (a webhook that lost its CRM permission sees an empty portal). Nothing was deleted.
pub const DELETION_REFUSED: u8 = 9;
/// `b24sync doctor` found something wrong (each failed check says what to do).
pub const CHECKS_FAILED: u8 = 10;
/// Interrupted (Ctrl-C / SIGTERM) after committing the batch in flight.
pub const INTERRUPTED: u8 = 130;

/// The exit code of a failed run.
pub fn for_error(e: &RunError) -> u8 {
    match e {
        RunError::Extract(ExtractError::Webhook(_) | ExtractError::UnknownHost { .. }) => CONFIG,
        RunError::Extract(ExtractError::Refused { .. }) => BITRIX_REFUSED,
        RunError::Extract(
            ExtractError::Unreachable { .. }
            | ExtractError::GaveUp { .. }
            | ExtractError::Incomplete { .. }
            | ExtractError::Protocol { .. },
        ) => BITRIX_UNREACHABLE,
        RunError::Extract(ExtractError::Cancelled) => INTERRUPTED,
        RunError::Extract(ExtractError::OAuth(e)) => for_oauth(e),
        RunError::Load(StoreError::LockBusy { .. }) => LOCKED,
        RunError::Load(_) => DATABASE,
        RunError::Config(_) => CONFIG,
        RunError::DeletionGuard { .. } => DELETION_REFUSED,
        RunError::Internal(_) => INTERNAL,
    }
}

/// The exit code of a finished run: 3 while `bitrix_import_lead_error` holds rows, this
/// run's or older ones (they need a person until they are fixed or cleared).
pub fn for_summary(s: &RunSummary) -> u8 {
    if s.interrupted {
        INTERRUPTED
    } else if s.outcome.error_rows > 0 || s.error_rows_held > 0 {
        LOADED_WITH_ERRORS
    } else {
        OK
    }
}

/// The exit code of an OAuth failure.
pub fn for_oauth(e: &OAuthError) -> u8 {
    match e {
        OAuthError::Reauthorize { .. } => REAUTHORIZE,
        OAuthError::Refused { .. } => BITRIX_REFUSED,
        OAuthError::Unreachable { .. } => BITRIX_UNREACHABLE,
        OAuthError::Config(_) => CONFIG,
        OAuthError::Store(StoreError::LockBusy { .. }) => LOCKED,
        OAuthError::Store(_) => DATABASE,
        OAuthError::Injected(_) => INTERNAL,
    }
}
