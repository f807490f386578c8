//! The embedded sink: a SQLite file holding the six Oktell tables under the same names.
//!
//! Same tables and column names as on SQL Server, so the same SELECTs work on both;
//! datetimes are stored as text `YYYY-MM-DD HH:MM:SS`, so they sort and compare as text.
//! The schema is created by [`Sink::init_schema`] and also on first use by any other
//! method: for an embedded file there is no DBA to run `init-db` first, and the
//! migrations are idempotent. The run lock is an OS advisory lock on `<db path>.lock`.
//! One connection is shared behind a mutex; every call runs on the blocking pool.

mod admin;
mod batch;
mod lookup;
mod ops;
mod schema;
mod sql;
#[cfg(test)]
mod tests;
mod tokens;

// The OAuth row's reading and writing rules, shared with the SQL Server token store.
pub(crate) use tokens::{app_extra, app_from_row, state_key, OAuthRow};

use async_trait::async_trait;
use chrono::NaiveDateTime;
use rusqlite::{Connection, OptionalExtension};
use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{BatchOutcome, Diagnosis, RunRecord, SchemaReport, Sink, StoreError, StoredError};
use crate::model::caller::{CallerMatch, CallerQuery};
use crate::model::{Batch, LeadId, Operator};

/// The caller lookup's SELECT (`sql/sqlite/lookup_caller.sql`), for people and for the
/// test that checks its query plan.
pub use sql::LOOKUP_CALLER as LOOKUP_CALLER_SQL;

/// How datetime cells are stored: text that sorts and compares chronologically.
pub const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts to take the run lock.
const LOCK_RETRY: Duration = Duration::from_millis(100);

struct Db {
    conn: Connection,
    /// Set once the migrations ran on this connection, so later calls skip them.
    schema_ready: bool,
}

/// The SQLite sink. Cheap to share: all state is behind `Arc`s.
pub struct SqliteSink {
    path: PathBuf,
    db: Arc<Mutex<Db>>,
    /// The open lock file while this sink holds the run lock.
    run_lock: Arc<Mutex<Option<File>>>,
}

impl std::fmt::Debug for SqliteSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteSink {
    /// This database's stores, by role (what the program passes around).
    pub fn into_stores(self) -> crate::load::Stores {
        let backend = std::sync::Arc::new(self);
        crate::load::Stores::bridged(backend.clone(), backend)
    }

    /// Open (creating if needed) the database file, in WAL mode. The schema is created
    /// later, by `init_schema` or the first other call. For the commands that fill a
    /// database (`sync`, `init-db`, `auth`, `demo`); the others use [`Self::open_existing`].
    pub fn open(path: &Path) -> Result<SqliteSink, StoreError> {
        check_folder(path)?;
        let conn = Connection::open(path).map_err(|e| unreachable(path, e.to_string()))?;
        Self::with_connection(path, conn)
    }

    /// Open a b24sync database that must already exist: never creates the file, and refuses
    /// a file that is not a b24sync database (no `bitrix_leads`) instead of creating tables
    /// in it. For the commands that only read or tidy (`lookup`, `status`, `errors list`,
    /// `doctor`, ...): a mistyped `--db` must fail naming the path, not answer "no lead"
    /// from a new, empty file.
    pub fn open_existing(path: &Path) -> Result<SqliteSink, StoreError> {
        check_folder(path)?;
        if !path.exists() {
            return Err(unreachable(
                path,
                "there is no database at this path; check --db / B24SYNC_DB, or run \
                 `b24sync init-db` / `b24sync sync` first to create it"
                    .to_string(),
            ));
        }
        // Without SQLITE_OPEN_CREATE: a file removed since the check is not recreated.
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| unreachable(path, e.to_string()))?;
        // Checked before switching to WAL, which would change someone else's file.
        let has_leads: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'bitrix_leads')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| unreachable(path, e.to_string()))?;
        if !has_leads {
            return Err(unreachable(
                path,
                format!(
                    "it is not a b24sync database (it has no bitrix_leads table); check --db / \
                     B24SYNC_DB, or run `b24sync init-db --db {}` to create the tables in it",
                    path.display()
                ),
            ));
        }
        Self::with_connection(path, conn)
    }

    /// WAL journaling and the busy timeout on a freshly opened connection.
    fn with_connection(path: &Path, conn: Connection) -> Result<SqliteSink, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| unreachable(path, e.to_string()))?;
        // Switching to WAL reads the file header, so a file that is not a SQLite database
        // (or cannot be written) fails here rather than at the first batch. WAL lets
        // readers (reports) work while a sync writes.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| unreachable(path, e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(unreachable(
                path,
                format!("cannot switch it to WAL journaling (got {mode})"),
            ));
        }
        // In WAL mode NORMAL is still crash-safe for the database; only the last
        // commits before a power loss may be lost, and the next sync redoes them.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| unreachable(path, e.to_string()))?;
        Ok(SqliteSink {
            path: path.to_path_buf(),
            db: Arc::new(Mutex::new(Db {
                conn,
                schema_ready: false,
            })),
            run_lock: Arc::new(Mutex::new(None)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The side file that carries the run lock: `<db path>.lock`.
    pub fn lock_path(&self) -> PathBuf {
        let mut name: OsString = self.path.clone().into_os_string();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// A value of `b24sync_state` (watermarks and such), if set.
    pub async fn read_state_value(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_string();
        self.with_schema("reading b24sync_state", move |conn| {
            conn.query_row(sql::STATE_READ, [&name], |r| r.get(0))
                .optional()
                .map_err(db_err("reading b24sync_state"))
        })
        .await
    }

    /// Set a value of `b24sync_state` (its `updated_at` is UTC now).
    pub async fn write_state_value(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let (name, value) = (name.to_string(), value.to_string());
        self.with_schema("writing b24sync_state", move |conn| {
            conn.execute(sql::STATE_WRITE, [&name, &value])
                .map(drop)
                .map_err(db_err("writing b24sync_state"))
        })
        .await
    }

    /// Run `f` on the blocking pool with the connection.
    async fn with_db<T, F>(&self, context: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&mut lock_ignoring_poison(&db)))
            .await
            .map_err(|e| StoreError::Database {
                context: context.to_string(),
                reason: format!("the database task failed: {e}"),
            })?
    }

    /// Like [`Self::with_db`], after making sure the schema exists.
    async fn with_schema<T, F>(&self, context: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let target = self.describe();
        self.with_db(context, move |db| {
            if !db.schema_ready {
                let report = schema::migrate(&mut db.conn, &target)?;
                log_report(&target, &report);
                db.schema_ready = true;
            }
            f(&mut db.conn)
        })
        .await
    }
}

fn unreachable(path: &Path, reason: String) -> StoreError {
    StoreError::Unreachable {
        target: path.display().to_string(),
        reason,
    }
}

/// A path naming a folder, or a file in a folder that does not exist, is refused by name.
fn check_folder(path: &Path) -> Result<(), StoreError> {
    if path.is_dir() {
        return Err(unreachable(
            path,
            "it is a folder, not a database file".to_string(),
        ));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(unreachable(
                path,
                format!("the folder {} does not exist", parent.display()),
            ));
        }
    }
    Ok(())
}

/// A panic while the mutex was held rolled its transaction back (rusqlite rolls back on
/// drop), so the connection is still usable.
fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn log_report(target: &str, report: &SchemaReport) {
    for line in &report.created {
        tracing::info!(database = target, "applied {line}");
    }
    for object in &report.objects {
        tracing::debug!(database = target, "created {object}");
    }
    for w in &report.warnings {
        tracing::warn!(database = target, "{w}");
    }
}

/// Maps a rusqlite error to [`StoreError::Database`] saying what was being done.
fn db_err(context: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Database {
        context: context.to_string(),
        reason: e.to_string(),
    }
}

/// One attempt at the run lock: `Ok(true)` when this sink holds it now.
fn try_take_lock(held: &Mutex<Option<File>>, lock_path: &Path) -> Result<bool, StoreError> {
    let mut held = lock_ignoring_poison(held);
    if held.is_some() {
        return Ok(true);
    }
    let lock_error = |reason: String| StoreError::Database {
        context: format!("taking the run lock {}", lock_path.display()),
        reason,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .map_err(|e| lock_error(e.to_string()))?;
    match file.try_lock() {
        Ok(()) => {
            *held = Some(file);
            Ok(true)
        }
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(lock_error(e.to_string())),
    }
}

#[async_trait]
impl Sink for SqliteSink {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    async fn init_schema(&self) -> Result<SchemaReport, StoreError> {
        let target = self.describe();
        self.with_db("creating the schema", move |db| {
            let report = schema::migrate(&mut db.conn, &target)?;
            db.schema_ready = true;
            Ok(report)
        })
        .await
    }

    async fn lock_run(&self, wait: Duration) -> Result<(), StoreError> {
        let started = Instant::now();
        loop {
            let held = Arc::clone(&self.run_lock);
            let lock_path = self.lock_path();
            let taken = tokio::task::spawn_blocking(move || try_take_lock(&held, &lock_path))
                .await
                .map_err(|e| StoreError::Database {
                    context: "taking the run lock".to_string(),
                    reason: format!("the lock task failed: {e}"),
                })??;
            if taken {
                return Ok(());
            }
            let waited = started.elapsed();
            if waited >= wait {
                return Err(StoreError::LockBusy {
                    target: self.describe(),
                    waited_secs: waited.as_secs(),
                });
            }
            tokio::time::sleep(LOCK_RETRY.min(wait - waited)).await;
        }
    }

    async fn unlock_run(&self) -> Result<(), StoreError> {
        let held = Arc::clone(&self.run_lock);
        tokio::task::spawn_blocking(move || {
            // Closing the file releases the OS lock; unlocking first just makes it explicit.
            if let Some(file) = lock_ignoring_poison(&held).take() {
                file.unlock().map_err(|e| StoreError::Database {
                    context: "releasing the run lock".to_string(),
                    reason: e.to_string(),
                })?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Database {
            context: "releasing the run lock".to_string(),
            reason: format!("the lock task failed: {e}"),
        })?
    }

    async fn load_batch(
        &self,
        batch: Batch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError> {
        self.with_schema("loading a batch", move |conn| {
            batch::load(conn, crate::prepare::prepare(batch), now, true)
        })
        .await
    }

    async fn stamp_runtime(&self, finished: NaiveDateTime) -> Result<(), StoreError> {
        let finished = finished.format(DATETIME_FORMAT).to_string();
        self.with_schema("stamping bitrix_lead_runtime", move |conn| {
            conn.execute(sql::RUNTIME_STAMP, [&finished])
                .map(drop)
                .map_err(db_err("stamping bitrix_lead_runtime"))
        })
        .await
    }

    async fn read_state(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.read_state_value(name).await
    }

    async fn write_state(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.write_state_value(name, value).await
    }

    async fn lead_ids(&self) -> Result<Vec<LeadId>, StoreError> {
        self.with_schema("reading the lead IDs", admin::lead_ids)
            .await
    }

    async fn delete_leads(&self, ids: Vec<LeadId>) -> Result<u64, StoreError> {
        self.with_schema("deleting leads", move |conn| admin::delete_leads(conn, ids))
            .await
    }

    async fn error_rows(&self) -> Result<Vec<StoredError>, StoreError> {
        self.with_schema("reading bitrix_import_lead_error", admin::error_rows)
            .await
    }

    async fn clear_errors(&self, before: NaiveDateTime) -> Result<u64, StoreError> {
        self.with_schema("clearing bitrix_import_lead_error", move |conn| {
            admin::clear_errors(conn, before)
        })
        .await
    }

    async fn delete_error_rows(&self, row_ids: Vec<i64>) -> Result<u64, StoreError> {
        self.with_schema(
            "deleting stale rows of bitrix_import_lead_error",
            move |conn| admin::delete_error_rows(conn, row_ids),
        )
        .await
    }

    async fn operator_ids(&self) -> Result<Vec<String>, StoreError> {
        self.with_schema("reading b24sync_operators", lookup::operator_ids)
            .await
    }

    async fn store_operators(&self, operators: Vec<Operator>) -> Result<(), StoreError> {
        self.with_schema("writing b24sync_operators", move |conn| {
            lookup::store_operators(conn, operators)
        })
        .await
    }

    async fn lookup_caller(&self, query: &CallerQuery) -> Result<Vec<CallerMatch>, StoreError> {
        let query = query.clone();
        self.with_schema("looking up the caller", move |conn| {
            lookup::lookup_caller(conn, &query)
        })
        .await
    }

    /// The same statements as `load_batch`, rolled back. The schema is created first if the
    /// file is new, as for every call of this sink (an empty file has nothing to preview
    /// against otherwise); no lead, contact, solution or error row is changed.
    async fn preview_batch(
        &self,
        batch: Batch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError> {
        self.with_schema("previewing a batch", move |conn| {
            batch::load(conn, crate::prepare::prepare(batch), now, false)
        })
        .await
    }

    async fn run_started(&self, record: &RunRecord) -> Result<i64, StoreError> {
        let record = record.clone();
        self.with_schema("writing b24sync_runs", move |conn| {
            ops::run_started(conn, &record)
        })
        .await
    }

    async fn run_finished(&self, record: &RunRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.with_schema("completing b24sync_runs", move |conn| {
            ops::run_finished(conn, &record)
        })
        .await
    }

    async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        self.with_schema("reading b24sync_runs", move |conn| {
            ops::recent_runs(conn, limit)
        })
        .await
    }

    /// Reads only: no migration runs first (see [`ops`]).
    async fn diagnose(&self) -> Result<Vec<Diagnosis>, StoreError> {
        let path = self.path.clone();
        self.with_db("checking the database", move |db| {
            ops::diagnose(&db.conn, &path)
        })
        .await
    }
}
