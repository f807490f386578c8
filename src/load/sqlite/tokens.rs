//! The SQLite sink as an OAuth [`TokenStore`]: the app's row in `bitrix_oauth` (one per
//! `client_id`, updated in place), and beside it, in `b24sync_state` under
//! `oauth:<client_id>`, what the contract table has no column for: the absolute expiry,
//! the REST endpoint and the OAuth server.
//!
//! The refresh lock is an OS advisory lock on `<db path>.oauth-<app>.lock`, held from the
//! re-read through the refresh HTTP call to the write. Not a `BEGIN IMMEDIATE`
//! transaction around all three: that would hold SQLite's single write lock while the
//! OAuth server answers, and a batch the loader commits meanwhile (same process, 5 s busy
//! timeout) would fail. The OS lock serializes refreshers only; it is released when the
//! guard drops or the process dies. The write itself is one short transaction (row and
//! state together) on a connection with `synchronous = FULL`, so once it returns the new
//! pair survives a crash or power loss.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::lock::lock_file;
use super::{
    check_ready, db_err, lock_ignoring_poison, pending_migrations, sql, SqliteSink, DATETIME_FORMAT,
};
use crate::load::oauth_row::{app_extra, app_from_row, state_key, OAuthRow};
use crate::model::oauth::StoredApp;
use crate::store::{StoreError, TokenLock, TokenStore};

const OAUTH_READ: &str = include_str!("../../../sql/sqlite/oauth_read.sql");
const OAUTH_UPDATE: &str = include_str!("../../../sql/sqlite/oauth_update.sql");
const OAUTH_INSERT: &str = include_str!("../../../sql/sqlite/oauth_insert.sql");

/// A refresher waiting for another one waits on the OS lock, not on SQLite; this only
/// covers the loader's short batch commits.
const TOKEN_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl SqliteSink {
    /// The side file that carries one application's OAuth refresh lock:
    /// `<db path>.oauth-<client_id in hex>.lock`, so the apps of one database refresh
    /// independently (as on SQL Server, one application lock per app). Hex keeps any
    /// `client_id` a valid file name.
    pub fn oauth_lock_path(&self, client_id: &str) -> PathBuf {
        let hex: String = client_id.bytes().map(|b| format!("{b:02x}")).collect();
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".oauth-{hex}.lock"));
        PathBuf::from(name)
    }
}

#[async_trait]
impl TokenStore for SqliteSink {
    fn describe(&self) -> String {
        SqliteSink::describe(self)
    }

    /// Reads only, like every read of this sink; a file b24sync never prepared holds no app
    /// (`b24sync auth` prepares it and stores one), one prepared by an older version is
    /// refused naming `b24sync init-db`.
    async fn load_app(&self, client_id: &str) -> Result<Option<StoredApp>, StoreError> {
        let client_id = client_id.to_string();
        let target = self.describe();
        self.with_db("reading bitrix_oauth", move |db| {
            if !db.schema_ready {
                if pending_migrations(&db.conn)?.is_none() {
                    return Ok(None);
                }
                check_ready(&db.conn, &target)?;
                db.schema_ready = true;
            }
            read_app(&db.conn, &client_id)
        })
        .await
    }

    async fn save_app(&self, app: &StoredApp) -> Result<(), StoreError> {
        let mut lock = self
            .lock_app(&app.client_id, Duration::from_secs(60))
            .await?;
        lock.write(app).await
    }

    async fn lock_app(
        &self,
        client_id: &str,
        wait: Duration,
    ) -> Result<Box<dyn TokenLock>, StoreError> {
        // The schema first (through the sink's connection, which runs the migrations).
        self.with_schema("preparing bitrix_oauth", |_| Ok(()))
            .await?;
        let (db_path, lock_path) = (self.path.clone(), self.oauth_lock_path(client_id));
        let busy = lock_path.display().to_string();
        let file = lock_file(&lock_path, wait, "the OAuth refresh lock", busy).await?;
        let conn = tokio::task::spawn_blocking(move || open_token_connection(&db_path))
            .await
            .map_err(|e| StoreError::Database {
                context: "opening the token connection".into(),
                reason: format!("the database task failed: {e}"),
            })??;
        Ok(Box::new(SqliteTokenLock {
            _file: file,
            conn: Arc::new(Mutex::new(conn)),
            client_id: client_id.to_string(),
        }))
    }
}

/// The held refresh lock and a connection of its own (the sink's stays free for batches).
struct SqliteTokenLock {
    /// Closing the file releases the OS lock.
    _file: File,
    conn: Arc<Mutex<Connection>>,
    client_id: String,
}

#[async_trait]
impl TokenLock for SqliteTokenLock {
    async fn read(&mut self) -> Result<Option<StoredApp>, StoreError> {
        let (conn, client_id) = (Arc::clone(&self.conn), self.client_id.clone());
        blocking("reading bitrix_oauth", move || {
            read_app(&lock_ignoring_poison(&conn), &client_id)
        })
        .await
    }

    async fn write(&mut self, app: &StoredApp) -> Result<(), StoreError> {
        if app.client_id != self.client_id {
            return Err(StoreError::Database {
                context: "writing bitrix_oauth".into(),
                reason: "the lock is held for another client_id".into(),
            });
        }
        let (conn, app) = (Arc::clone(&self.conn), app.clone());
        blocking("writing bitrix_oauth", move || {
            write_app(&mut lock_ignoring_poison(&conn), &app)
        })
        .await
    }
}

async fn blocking<T, F>(context: &'static str, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Database {
            context: context.to_string(),
            reason: format!("the database task failed: {e}"),
        })?
}

fn open_token_connection(path: &Path) -> Result<Connection, StoreError> {
    let unreachable = |e: rusqlite::Error| StoreError::Unreachable {
        target: path.display().to_string(),
        reason: e.to_string(),
    };
    let conn = Connection::open(path).map_err(unreachable)?;
    conn.busy_timeout(TOKEN_BUSY_TIMEOUT).map_err(unreachable)?;
    // A spent refresh token cannot be re-obtained: its successor must reach the disk.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(unreachable)?;
    Ok(conn)
}

fn read_app(conn: &Connection, client_id: &str) -> Result<Option<StoredApp>, StoreError> {
    let row: Option<OAuthRow> = conn
        .query_row(OAUTH_READ, [client_id], |r| {
            let dateexec: Option<String> = r.get(10)?;
            Ok(OAuthRow {
                client_id: r.get(0)?,
                client_secret: r.get(1)?,
                redirect_uri: r.get(2)?,
                access_token: r.get(3)?,
                refresh_token: r.get(4)?,
                expires_in: r.get(5)?,
                scope: r.get(6)?,
                domain: r.get(7)?,
                member_id: r.get(8)?,
                user_id: r.get(9)?,
                dateexec: dateexec
                    .and_then(|d| NaiveDateTime::parse_from_str(d.trim(), DATETIME_FORMAT).ok()),
            })
        })
        .optional()
        .map_err(db_err("reading bitrix_oauth"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let extra: Option<String> = conn
        .query_row(sql::STATE_READ, [state_key(client_id)], |r| r.get(0))
        .optional()
        .map_err(db_err("reading b24sync_state"))?;
    Ok(Some(app_from_row(client_id, row, extra.as_deref())))
}

fn write_app(conn: &mut Connection, app: &StoredApp) -> Result<(), StoreError> {
    let t = &app.tokens;
    let (dateexec, extra) = app_extra(app);
    let dateexec = dateexec.format(DATETIME_FORMAT).to_string();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err("writing bitrix_oauth"))?;
    let values = params![
        app.client_id,
        app.client_secret.expose(),
        t.access_token.expose(),
        t.refresh_token.expose(),
        t.expires_in,
        t.scope,
        t.domain,
        t.member_id,
        app.redirect_uri,
        t.user_id,
        dateexec,
    ];
    let updated = tx
        .execute(OAUTH_UPDATE, values)
        .map_err(db_err("updating bitrix_oauth"))?;
    if updated == 0 {
        tx.execute(OAUTH_INSERT, values)
            .map_err(db_err("inserting into bitrix_oauth"))?;
    }
    tx.execute(sql::STATE_WRITE, [state_key(&app.client_id), extra])
        .map_err(db_err("writing b24sync_state"))?;
    tx.commit().map_err(db_err("committing bitrix_oauth"))
}
