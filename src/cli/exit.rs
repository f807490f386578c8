//! Exit codes: what a scheduler should alert on. Documented in README.md ("Exit codes").

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
/// Interrupted (Ctrl-C / SIGTERM) after committing the batch in flight.
pub const INTERRUPTED: u8 = 130;
