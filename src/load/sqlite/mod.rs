//! The embedded sink: a SQLite file holding the six Oktell tables under the same names.
//!
//! Same tables and column names as on SQL Server, so the same SELECTs work on both;
//! datetimes are stored as text `YYYY-MM-DD HH:MM:SS`, so they sort and compare as text.
//! The schema is created by `init_schema` (`SchemaAdmin`) and also on the first write by
//! any other role: for an embedded file there is no DBA to run `init-db` first, and the
//! migrations are idempotent. A read never migrates (a `sync --dry-run` changes nothing, not
//! even the schema): on a file whose schema is not complete it refuses, naming
//! `b24sync init-db`, as the SQL Server sink does. The run lock is an OS advisory lock on
//! `<db path>.lock` (see [`lock`]). One connection is shared behind a mutex; every call runs
//! on the blocking pool. The role traits are implemented in [`roles`], [`lock`] and
//! [`tokens`].

mod admin;
mod batch;
mod entity_sql;
mod lock;
mod lookup;
mod ops;
mod queue;
mod roles;
mod schema;
mod sql;
#[cfg(test)]
mod tests;
mod tokens;

use rusqlite::{Connection, OptionalExtension};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::load::held::HeldBy;
use crate::load::Stores;
use crate::store::{SchemaReport, StoreError};

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

/// The SQLite sink. Cheap to clone: all state is behind `Arc`s; the run lock is owned by
/// the guards `lock_run` returns, not by the sink.
#[derive(Clone)]
pub struct SqliteSink {
    path: PathBuf,
    db: Arc<Mutex<Db>>,
    /// The run lock while this sink's guards hold it.
    run_lock: Arc<HeldBy<lock::SqliteRunLock>>,
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
    pub fn into_stores(self) -> Stores {
        Stores::of(self.describe(), Arc::new(self))
    }

    /// A name for messages: the file path.
    pub fn describe(&self) -> String {
        self.path.display().to_string()
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
            run_lock: Arc::default(),
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
        self.with_ready("reading b24sync_state", move |conn| {
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

    /// Like [`Self::with_db`], for a write: the schema is created first if it is not
    /// complete (an embedded file has no DBA to run `init-db`).
    async fn with_schema<T, F>(&self, context: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.with_tables(context, true, f).await
    }

    /// Like [`Self::with_db`], for a read: never migrates (a dry run changes nothing, not
    /// even the schema), and refuses a file whose schema is not complete, as the SQL Server
    /// sink does.
    async fn with_ready<T, F>(&self, context: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.with_tables(context, false, f).await
    }

    /// Run `f` once the schema is known complete: made so (`migrate`) or checked.
    async fn with_tables<T, F>(
        &self,
        context: &'static str,
        migrate: bool,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let target = self.describe();
        self.with_db(context, move |db| {
            if !db.schema_ready {
                if migrate {
                    let report = schema::migrate(&mut db.conn, &target)?;
                    log_report(&target, &report);
                } else {
                    check_ready(&db.conn, &target)?;
                }
                db.schema_ready = true;
            }
            f(&mut db.conn)
        })
        .await
    }
}

/// Every migration this build knows is applied (reads only), else the error that says to
/// run `b24sync init-db`.
fn check_ready(conn: &Connection, target: &str) -> Result<(), StoreError> {
    let missing = match pending_migrations(conn)? {
        Some(missing) => missing,
        None => schema::known_migrations()
            .map(|(v, name)| migration_name(v, name))
            .collect(),
    };
    if missing.is_empty() {
        Ok(())
    } else {
        Err(super::not_prepared(target, &missing))
    }
}

/// The migrations of this build not applied yet; `None` when b24sync never prepared the file
/// (no `b24sync_migrations`). Reads only.
fn pending_migrations(conn: &Connection) -> Result<Option<Vec<String>>, StoreError> {
    let recorded: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'b24sync_migrations')",
            [],
            |r| r.get(0),
        )
        .map_err(db_err("reading b24sync_migrations"))?;
    if !recorded {
        return Ok(None);
    }
    let applied = schema::applied_versions(conn)?;
    Ok(Some(
        schema::known_migrations()
            .filter(|(v, _)| !applied.contains(v))
            .map(|(v, name)| migration_name(v, name))
            .collect(),
    ))
}

fn migration_name(version: i64, name: &str) -> String {
    format!("{version:04} {name}")
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
