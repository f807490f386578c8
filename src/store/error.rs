//! The one error every store returns, whatever the backend.

#[derive(Debug, thiserror::Error)]
/// Why a store could not do what it was asked; never holds a password.
pub enum StoreError {
    /// The database cannot be opened or reached; `target` never holds a password.
    #[error("cannot open the database {target}: {reason}")]
    Unreachable { target: String, reason: String },
    /// Another run holds the run lock.
    #[error("another b24sync run holds the lock on {target} (waited {waited_secs} s); try again later or raise --lock-wait")]
    LockBusy { target: String, waited_secs: u64 },
    /// The schema is not what the loader needs (run `b24sync init-db`, or fix what it says).
    #[error("{0}")]
    Schema(String),
    /// A statement failed.
    #[error("database error while {context}: {reason}")]
    Database { context: String, reason: String },
}
