//! The SQLite sink as an OAuth [`TokenStore`]: the app's row in `bitrix_oauth` (one per
//! `client_id`, updated in place), and beside it, in `b24sync_state` under
//! `oauth:<client_id>`, what the contract table has no column for: the absolute expiry,
//! the REST endpoint and the OAuth server.
//!
//! The refresh lock is an OS advisory lock on `<db path>.oauth.lock`, held from the
//! re-read through the refresh HTTP call to the write. Not a `BEGIN IMMEDIATE`
//! transaction around all three: that would hold SQLite's single write lock while the
//! OAuth server answers, and a batch the loader commits meanwhile (same process, 5 s busy
//! timeout) would fail. The OS lock serializes refreshers only; it is released when the
//! guard drops or the process dies. The write itself is one short transaction (row and
//! state together) on a connection with `synchronous = FULL`, so once it returns the new
//! pair survives a crash or power loss.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{json, Value};

use super::{db_err, lock_ignoring_poison, sql, SqliteSink, DATETIME_FORMAT, LOCK_RETRY};
use crate::extract::oauth::{Secret, StoredApp, TokenLock, TokenSet, TokenStore};
use crate::load::StoreError;

const OAUTH_READ: &str = include_str!("../../../sql/sqlite/oauth_read.sql");
const OAUTH_UPDATE: &str = include_str!("../../../sql/sqlite/oauth_update.sql");
const OAUTH_INSERT: &str = include_str!("../../../sql/sqlite/oauth_insert.sql");

/// A refresher waiting for another one waits on the OS lock, not on SQLite; this only
/// covers the loader's short batch commits.
const TOKEN_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl SqliteSink {
    /// The side file that carries the OAuth refresh lock: `<db path>.oauth.lock`.
    pub fn oauth_lock_path(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(".oauth.lock");
        PathBuf::from(name)
    }
}

#[async_trait]
impl TokenStore for SqliteSink {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    async fn load_app(&self, client_id: &str) -> Result<Option<StoredApp>, StoreError> {
        let client_id = client_id.to_string();
        self.with_schema("reading bitrix_oauth", move |conn| {
            read_app(conn, &client_id)
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
        let (db_path, lock_path) = (self.path.clone(), self.oauth_lock_path());
        let started = Instant::now();
        let file = loop {
            let lp = lock_path.clone();
            let taken = tokio::task::spawn_blocking(move || try_lock(&lp))
                .await
                .map_err(|e| StoreError::Database {
                    context: "taking the OAuth refresh lock".into(),
                    reason: format!("the lock task failed: {e}"),
                })??;
            if let Some(file) = taken {
                break file;
            }
            let waited = started.elapsed();
            if waited >= wait {
                return Err(StoreError::LockBusy {
                    target: lock_path.display().to_string(),
                    waited_secs: waited.as_secs(),
                });
            }
            tokio::time::sleep(LOCK_RETRY.min(wait - waited)).await;
        };
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

fn try_lock(path: &Path) -> Result<Option<File>, StoreError> {
    let err = |reason: String| StoreError::Database {
        context: format!("taking the OAuth refresh lock {}", path.display()),
        reason,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(err(e.to_string())),
    }
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

/// What `b24sync_state` keeps beside the row.
struct Extra {
    expires_at: Option<i64>,
    obtained_at: Option<i64>,
    client_endpoint: Option<String>,
    server_endpoint: Option<String>,
    oauth_server: Option<String>,
}

fn parse_extra(text: Option<&str>) -> Option<Extra> {
    let v = serde_json::from_str::<Value>(text?).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Extra {
        expires_at: v.get("expires_at").and_then(Value::as_i64),
        obtained_at: v.get("obtained_at").and_then(Value::as_i64),
        client_endpoint: s("client_endpoint"),
        server_endpoint: s("server_endpoint"),
        oauth_server: s("oauth_server"),
    })
}

/// The local wall-clock time `dateexec` holds for an instant (whole seconds).
fn local_naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&Local).naive_local()
}

/// An application's `bitrix_oauth` row as read, whatever the database. Shared with the SQL
/// Server store so both read and write the row and its side record the same way.
pub(crate) struct OAuthRow {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub redirect_uri: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<String>,
    pub scope: Option<String>,
    pub domain: Option<String>,
    pub member_id: Option<String>,
    pub user_id: Option<String>,
    /// Local time, whole seconds.
    pub dateexec: Option<NaiveDateTime>,
}

/// The `b24sync_state` name of an app's side record.
pub(crate) fn state_key(client_id: &str) -> String {
    format!("oauth:{client_id}")
}

/// The app as stored: its row, plus the side record `extra` (the JSON under
/// [`state_key`]) when that record describes this very row.
pub(crate) fn app_from_row(client_id: &str, row: OAuthRow, extra: Option<&str>) -> StoredApp {
    let dateexec = row.dateexec;
    let dateexec_utc = dateexec
        .and_then(|n| Local.from_local_datetime(&n).earliest())
        .map(|d| d.with_timezone(&Utc));
    // b24sync's side record describes this row only if the row's dateexec is the one it
    // wrote; a row refreshed by something else (an Oktell scenario) is read on its own.
    let extra = parse_extra(extra).filter(|x| {
        match (
            x.obtained_at.and_then(|t| DateTime::from_timestamp(t, 0)),
            dateexec,
        ) {
            (Some(t), Some(d)) => local_naive(t) == d,
            _ => false,
        }
    });
    let expires_in = row.expires_in.unwrap_or_default();
    let obtained_at = extra
        .as_ref()
        .and_then(|x| x.obtained_at)
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .or(dateexec_utc)
        .unwrap_or(DateTime::UNIX_EPOCH);
    let expires_at = extra
        .as_ref()
        .and_then(|x| x.expires_at)
        .unwrap_or_else(|| obtained_at.timestamp() + expires_in.trim().parse::<i64>().unwrap_or(0));
    let domain = row.domain.unwrap_or_default();
    let client_endpoint = extra
        .as_ref()
        .and_then(|x| x.client_endpoint.clone())
        .unwrap_or_else(|| format!("https://{domain}/rest/"));
    StoredApp {
        client_id: row.client_id.unwrap_or_else(|| client_id.to_string()),
        client_secret: Secret::new(row.client_secret.unwrap_or_default()),
        redirect_uri: row.redirect_uri,
        oauth_server: extra.as_ref().and_then(|x| x.oauth_server.clone()),
        tokens: TokenSet {
            access_token: Secret::new(row.access_token.unwrap_or_default()),
            refresh_token: Secret::new(row.refresh_token.unwrap_or_default()),
            expires_in,
            expires_at,
            obtained_at,
            scope: row.scope.unwrap_or_default(),
            domain,
            member_id: row.member_id.unwrap_or_default(),
            user_id: row.user_id.unwrap_or_default(),
            client_endpoint,
            server_endpoint: extra.and_then(|x| x.server_endpoint),
        },
    }
}

/// What to write for `app`: its `dateexec` (local time, whole seconds: what the column can
/// hold and what [`app_from_row`] compares) and the side record's JSON.
pub(crate) fn app_extra(app: &StoredApp) -> (NaiveDateTime, String) {
    let t = &app.tokens;
    let obtained = DateTime::from_timestamp(t.obtained_at.timestamp(), 0).unwrap_or(t.obtained_at);
    let extra = json!({
        "expires_at": t.expires_at,
        "obtained_at": obtained.timestamp(),
        "client_endpoint": t.client_endpoint,
        "server_endpoint": t.server_endpoint,
        "oauth_server": app.oauth_server,
    })
    .to_string();
    (local_naive(obtained), extra)
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
