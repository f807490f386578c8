//! The run history (`dbo.b24sync_runs`) and `b24sync doctor`'s checks on SQL Server, one
//! job per file: `runs` (the history), `doctor` (the checks, in order), `columns` (the
//! contract columns against the schema description), `perms` (the login's rights).

mod columns;
mod doctor;
mod perms;
mod runs;

pub(super) use doctor::{diagnose, duplicates, fix_duplicates_command};
#[cfg(test)]
pub(super) use perms::SYNC_RIGHTS;
pub(super) use runs::{recent_runs, run_finished, run_started};
