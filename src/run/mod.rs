//! One sync run — the only place that knows the order of things:
//!
//! lock → schema → plan the run (the portal binding; full, or incremental from the
//! watermark) → extract ⇢ transform ⇢ prepare ⇢ load (bounded channels) → operators →
//! deletion check when due → watermark → stamp `bitrix_lead_runtime` → unlock.
//!
//! The watermark is Bitrix24's own clock (`server.time`, asked in the first request of
//! the run), never this machine's or the database server's: the next incremental run
//! reads every lead with `DATE_MODIFY >=` that instant minus an overlap, so a lead
//! changed while this run was reading is read again next time (loads are idempotent).
//!
//! One job per file: `options` (how a run is asked to go: [`SyncOptions`]), `plan` (what it
//! reads; whether the deletion check is due), `binding` (one portal per database),
//! `sync` (the steps), `pipeline` (the stages), `deletions` (behind the guard),
//! `operators`, `history`, `retry` (`errors retry`), `changes` (leads named by events, for
//! `serve`), `summary` and `status` (what a run
//! did, and how it ended: a [`Status`] that `crate::exit` maps to an exit code).

mod binding;
mod changes;
mod deletions;
mod history;
mod operators;
mod options;
mod pipeline;
mod plan;
mod retry;
mod status;
mod summary;
mod sync;

use std::sync::Arc;

use chrono::NaiveDateTime;

use crate::store::{
    BatchWriter, DeletionStore, ErrorReview, FingerprintStore, OperatorStore, RunHistory, RunLock,
    SchemaAdmin, StateStore,
};

pub use binding::{bound_portal, client_portal, PortalIdentity};
pub use changes::{apply_changes, change_context, park_failed, ChangesOutcome};
pub use operators::{is_user_id, refresh_operators, OperatorsError, OperatorsOutcome};
pub use options::{state_keys, DeletionPolicy, Progress, ProgressHandle, SyncMode, SyncOptions};
pub use plan::fetch_solution_labels;
pub use retry::{retry_errors, RetrySummary};
pub use status::{oauth_status, RunError, Status};
pub use summary::{
    id_list, interrupted_note, summary_line, EntityRun, RunSummary, DELETED_SHOWN,
    NEW_ERROR_ROWS_SHOWN, NO_SOLUTION_FIELD,
};
pub use sync::sync;

/// The stores a run uses, by role (see `crate::store`): nothing else of the database.
#[derive(Clone)]
pub struct RunStores {
    /// A name for messages: the file path or `host:port/database` (never a password).
    pub target: String,
    pub schema: Arc<dyn SchemaAdmin>,
    pub lock: Arc<dyn RunLock>,
    pub batches: Arc<dyn BatchWriter>,
    pub deletions: Arc<dyn DeletionStore>,
    pub fingerprints: Arc<dyn FingerprintStore>,
    pub state: Arc<dyn StateStore>,
    pub history: Arc<dyn RunHistory>,
    pub errors: Arc<dyn ErrorReview>,
    pub operators: Arc<dyn OperatorStore>,
}

impl From<&crate::load::Stores> for RunStores {
    fn from(s: &crate::load::Stores) -> RunStores {
        RunStores {
            target: s.target.clone(),
            schema: s.schema.clone(),
            lock: s.lock.clone(),
            batches: s.batches.clone(),
            deletions: s.deletions.clone(),
            fingerprints: s.fingerprints.clone(),
            state: s.state.clone(),
            history: s.history.clone(),
            errors: s.errors.clone(),
            operators: s.operators.clone(),
        }
    }
}

impl std::fmt::Debug for RunStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunStores")
            .field("target", &self.target)
            .finish()
    }
}

/// Release the run lock at the end of a run. A failure is logged, not the run's result:
/// the run is over, and the lock goes with the connection or file handle anyway.
async fn release_lock(guard: crate::store::RunLockGuard) {
    if let Err(e) = guard.release().await {
        tracing::warn!("could not release the run lock: {e}");
    }
}

/// The wall-clock time b24sync stamps its own rows with (like `GETDATE()` did).
pub fn local_now() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}
