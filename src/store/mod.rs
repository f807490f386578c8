//! What the program asks of a database, one small trait per role.
//!
//! Each part of the program takes only the roles it uses (`run::sync` never sees caller
//! lookup; `b24sync lookup` never sees the batch writer), so each can be faked on its own
//! in a test. Every backend (`load::sqlite`, `load::mssql`) implements all of them, and
//! `load::open_stores` hands them out together as one `load::Stores` value.
//!
//! | role | trait | used by |
//! |---|---|---|
//! | create / check the schema | [`SchemaAdmin`] | `init-db`, `doctor` |
//! | one run at a time | [`RunLock`] → [`RunLockGuard`] | `sync`, `errors retry` |
//! | write prepared batches (commit or preview) | [`BatchWriter`] | the pipeline |
//! | deletions (always behind the guard in `run`) | [`DeletionStore`] | deletion check |
//! | the leads' fingerprints (`b24sync_lead_fingerprints`) | [`FingerprintStore`] | full sync |
//! | watermarks, portal identity | [`StateStore`] | run planning |
//! | run history, `bitrix_lead_runtime` | [`RunHistory`] | `sync`, `status` |
//! | the error table | [`ErrorReview`] | `errors`, full-sync clean-up |
//! | operators (`b24sync_operators`) | [`OperatorStore`] | operator refresh |
//! | caller lookup | [`CallerLookup`] | `lookup` |
//! | OAuth tokens (`bitrix_oauth`) | [`TokenStore`] → [`TokenLock`] | the OAuth session |
//! | the event queue (`b24sync_event_queue`) | [`EventQueue`] | `serve` |

mod error;
mod lock;
mod queue;
mod records;
mod roles;
mod tokens;

pub use error::StoreError;
pub use lock::{HeldLock, RunLockGuard};
pub use queue::{EventQueue, QueueDepth, QueueItem, QueuedAction, QueuedEvent};
pub use records::{BatchOutcome, Diagnosis, RunRecord, SchemaReport, StoredError};
pub use roles::{
    BatchWriter, CallerLookup, DeletionStore, ErrorReview, FingerprintStore, OperatorStore,
    RunHistory, RunLock, SchemaAdmin, StateStore,
};
pub use tokens::{TokenLock, TokenStore};
