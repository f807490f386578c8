//! Exit codes: what a scheduler should alert on. Documented in README.md ("Exit codes").
//!
//! `run` says how a run ended as a [`Status`]; this module names the code of each status,
//! and of the outcomes that are not a run's (`doctor`'s failed checks).

use crate::extract::oauth::OAuthError;
use crate::run::{RunError, RunSummary, Status};

/// Finished; every lead loaded cleanly.
pub const OK: u8 = Status::Ok.code();
/// An unexpected internal error (a bug: please report it with the log).
pub const INTERNAL: u8 = Status::Internal.code();
/// A setting is wrong or missing (a flag, an environment variable, the TOML file).
pub const CONFIG: u8 = Status::Config.code();
/// Finished, but some leads have rows in `bitrix_import_lead_error` (loaded with a value
/// cut or left NULL, or not loadable at all): review them.
pub const LOADED_WITH_ERRORS: u8 = Status::LoadedWithErrors.code();
/// Bitrix24 refused the credentials or the permission (bad webhook, missing scope, plan).
pub const BITRIX_REFUSED: u8 = Status::BitrixRefused.code();
/// Bitrix24 could not be reached, or kept failing after all retries.
pub const BITRIX_UNREACHABLE: u8 = Status::BitrixUnreachable.code();
/// The database could not be opened or a statement failed.
pub const DATABASE: u8 = Status::Database.code();
/// Another b24sync run holds the run lock.
pub const LOCKED: u8 = Status::Locked.code();
/// OAuth mode: the authorization expired or was revoked (or never happened): run
/// `b24sync auth` again.
pub const REAUTHORIZE: u8 = Status::Reauthorize.code();
/// The deletion check refused: Bitrix24 listed far fewer leads than the database holds
/// (a webhook that lost its CRM permission sees an empty portal). Nothing was deleted.
pub const DELETION_REFUSED: u8 = Status::DeletionRefused.code();
/// `b24sync doctor` found something wrong (each failed check says what to do).
pub const CHECKS_FAILED: u8 = 10;
/// Interrupted (Ctrl-C / SIGTERM) after committing the batch in flight.
pub const INTERRUPTED: u8 = Status::Interrupted.code();

/// The exit code of a status.
pub fn code(status: Status) -> u8 {
    status.code()
}

/// The exit code of a failed run.
pub fn for_error(e: &RunError) -> u8 {
    code(e.status())
}

/// The exit code of a finished run: 3 while `bitrix_import_lead_error` holds rows, this
/// run's or older ones (they need a person until they are fixed or cleared).
pub fn for_summary(s: &RunSummary) -> u8 {
    code(s.status())
}

/// The exit code of an OAuth failure.
pub fn for_oauth(e: &OAuthError) -> u8 {
    code(crate::run::oauth_status(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The documented codes (README, "Exit codes").
    #[test]
    fn the_codes_are_the_documented_ones() {
        let codes = [
            OK,
            INTERNAL,
            CONFIG,
            LOADED_WITH_ERRORS,
            BITRIX_REFUSED,
            BITRIX_UNREACHABLE,
            DATABASE,
            LOCKED,
            REAUTHORIZE,
            DELETION_REFUSED,
            CHECKS_FAILED,
            INTERRUPTED,
        ];
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 130]);
    }
}
