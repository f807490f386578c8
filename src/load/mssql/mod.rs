//! The SQL Server sink (the production target): the Oktell tables in an existing database.
//!
//! - Connection: an ADO.NET or JDBC string ([`MssqlSink::connect`]), a bb8 pool of tiberius
//!   connections, TLS on unless the string says otherwise.
//! - Schema: `init_schema` runs `sql/mssql/oktell_tables.sql` (creates what is missing, never
//!   touches what exists) and the numbered files in `sql/mssql/migrations/`, each once.
//! - Load: per batch, on one pooled connection, bulk-load `#stage_*` tables and run
//!   `sql/mssql/upsert_batch.sql`, one transaction. A lead the server rejects is isolated
//!   by bisection and recorded in `bitrix_import_lead_error`; the others load.
//! - Lock: `sp_getapplock` on a dedicated connection held for the run, plus a token lock only
//!   this run knows; every write transaction checks the token inside the transaction and
//!   holds a shared lock that a later run's barrier waits for (`sql/mssql/lock_guard.sql`),
//!   so a run whose lock session died commits nothing more.
//! - State, deletion check, error review ([`admin`]): `b24sync_state` upserted without MERGE;
//!   deleted leads' IDs bulk-loaded into `#stage_delete_ids`, then the leads and their
//!   contacts, solution and error rows deleted in one transaction.
//!
//! Every statement sent is in `sql/mssql/` (see [`sql`]); values are always bulk-loaded or
//! passed as parameters.

mod admin;
mod conn;
mod lookup;
mod ops;
pub mod sql;
mod stage;
mod tokens;

#[cfg(test)]
mod sql_tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bb8::{ManageConnection, Pool, PooledConnection};
use chrono::NaiveDateTime;
use conn::Manager as ConnectionManager;
use tiberius::{Query, Row, TokenRow};

use crate::extract::oauth::TokenStore;
use crate::load::{
    BatchOutcome, Diagnosis, RunRecord, SchemaReport, Sink, StoreError, StoredError,
};
use crate::model::caller::{CallerMatch, CallerQuery};
use crate::model::{clip_reason, Batch, LeadId, Operator, RejectedLead};

pub use conn::is_connection_string;
pub use sql::FIX_DUPLICATE_LEADS as FIX_DUPLICATE_LEADS_SQL;

type Client = tiberius::Client<tokio_util::compat::Compat<tokio::net::TcpStream>>;
type Pooled<'a> = PooledConnection<'a, ConnectionManager>;

/// How the sink connects.
#[derive(Debug, Clone)]
pub struct MssqlOptions {
    /// Connections in the pool (at least 1). The run lock uses one more, outside the pool.
    pub pool_size: u32,
    /// How long to wait for the server to accept a connection (TCP, TLS and login), and for a
    /// free pooled connection.
    pub connect_timeout: Duration,
    /// How often a batch is retried when SQL Server picks it as a deadlock victim.
    pub deadlock_retries: u32,
}

impl Default for MssqlOptions {
    fn default() -> Self {
        MssqlOptions {
            pool_size: 4,
            connect_timeout: Duration::from_secs(30),
            deadlock_retries: 3,
        }
    }
}

/// Writes batches into the Oktell tables of a SQL Server database. See the module docs.
pub struct MssqlSink {
    pool: Pool<ConnectionManager>,
    target: conn::Target,
    opts: MssqlOptions,
    /// The connection holding the run lock (session-owned `sp_getapplock`), outside the pool
    /// so the lock cannot be handed to another task or released by a pool reaper.
    lock_conn: tokio::sync::Mutex<Option<Client>>,
    /// The held run lock's token and session, read by every write transaction.
    run_lock: std::sync::Mutex<Option<RunLock>>,
    /// Whether this sink has seen every migration applied (checked once, before loading).
    schema_ready: AtomicBool,
}

impl std::fmt::Debug for MssqlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MssqlSink")
            .field("target", &self.target.describe())
            .finish()
    }
}

impl MssqlSink {
    /// This database's stores, by role (what the program passes around).
    pub fn into_stores(self) -> crate::load::Stores {
        let backend = std::sync::Arc::new(self);
        crate::load::Stores::bridged(backend.clone(), backend)
    }

    /// Connect to SQL Server with an ADO.NET (`Server=tcp:host,1433;Database=oktell;User
    /// Id=...;Password=...;TrustServerCertificate=true`) or `jdbc:sqlserver://` string.
    ///
    /// Opens one connection right away, so a server that is down or a refused login is
    /// reported here, as [`StoreError::Unreachable`] naming `host:port/database` and the reason
    /// (never the password).
    pub async fn connect(conn: &str, opts: MssqlOptions) -> Result<MssqlSink, StoreError> {
        let (config, target) = conn::parse(conn)?;
        say_tls_choice(&target);
        // TCP and the TLS/login phase each get the connect timeout, and say which one failed.
        let manager = ConnectionManager::new(config, opts.connect_timeout, opts.connect_timeout);
        let first = match manager.connect().await {
            Ok(c) => c,
            Err(e) => {
                return Err(target.unreachable(&conn::Failure::from_connect(&e).reason(&target)))
            }
        };
        // A new pooled connection is bounded by the manager's two phases; the pool waits a
        // little longer than both (and retries a failed attempt meanwhile: a network blip in
        // the middle of a run should not end it). The first connection, above, is the one
        // that reports which phase failed.
        let pool = Pool::builder()
            .max_size(opts.pool_size.max(1))
            .connection_timeout(opts.connect_timeout * 2 + Duration::from_secs(1))
            .build_unchecked(manager);
        // The pool starts with the connection that proved the string works; if the pool
        // cannot take it (it cannot be full yet), dropping it just closes it.
        let _ = pool.add(first);
        Ok(MssqlSink {
            pool,
            target,
            opts,
            lock_conn: tokio::sync::Mutex::new(None),
            run_lock: std::sync::Mutex::new(None),
            schema_ready: AtomicBool::new(false),
        })
    }

    /// The server session (`@@SPID`) holding this sink's run lock, while it holds one: for
    /// log lines and for a DBA (`sys.dm_tran_locks`), and for tests that end that session.
    pub fn run_lock_session(&self) -> Option<i32> {
        self.held_lock().map(|l| l.spid)
    }

    fn held_lock(&self) -> Option<RunLock> {
        self.run_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The token write transactions check (None: this sink holds no run lock).
    fn token(&self) -> Option<String> {
        self.held_lock().map(|l| l.token)
    }

    fn set_lock(&self, lock: Option<RunLock>) {
        *self.run_lock.lock().unwrap_or_else(|p| p.into_inner()) = lock;
    }

    /// The error of a write transaction: a lost run lock, or what the server said.
    fn tx_error(&self, context: &str, e: &TxError) -> StoreError {
        match e {
            TxError::Db(e) => self.db_error(context, e),
            TxError::LockLost(why) => StoreError::Database {
                context: context.to_string(),
                reason: format!(
                    "the run lock on {} was lost: {why}; this transaction was rolled back and the \
                     run writes nothing more (run the sync again)",
                    self.target.describe()
                ),
            },
        }
    }

    async fn conn(&self) -> Result<Pooled<'_>, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            bb8::RunError::User(e) => self
                .target
                .unreachable(&conn::Failure::from_connect(&e).reason(&self.target)),
            bb8::RunError::TimedOut => self.target.unreachable(&format!(
                "no connection within {} s (server unreachable, or all {} pooled connections busy)",
                (self.opts.connect_timeout * 2 + Duration::from_secs(1)).as_secs(),
                self.opts.pool_size.max(1)
            )),
        })
    }

    /// A pooled connection to a database that `init-db` has prepared (see `ensure_ready`).
    async fn ready_conn(&self) -> Result<Pooled<'_>, StoreError> {
        let mut pooled = self.conn().await?;
        self.ensure_ready(&mut pooled).await?;
        Ok(pooled)
    }

    fn db_error(&self, context: &str, e: &tiberius::error::Error) -> StoreError {
        StoreError::Database {
            context: context.to_string(),
            reason: self.target.scrub(&server_text(e)),
        }
    }

    /// Versions and checksums of the migrations already applied.
    async fn applied(&self, c: &mut Client) -> Result<BTreeMap<i32, String>, StoreError> {
        let rows = run(c, sql::MIGRATIONS_APPLIED)
            .await
            .map_err(|e| self.db_error("reading b24sync_migrations", &e))?;
        Ok(rows
            .iter()
            .flatten()
            .filter_map(|r| {
                Some((
                    r.get::<i32, _>("version")?,
                    r.get::<&str, _>("checksum").unwrap_or("").to_string(),
                ))
            })
            .collect())
    }

    /// Refuse to load into a database `init-db` has not prepared: the upsert relies on the
    /// unique index on `sql_ID`.
    async fn ensure_ready(&self, c: &mut Client) -> Result<(), StoreError> {
        if self.schema_ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        let applied = self.applied(c).await?;
        let missing: Vec<String> = sql::MIGRATIONS
            .iter()
            .filter(|m| !applied.contains_key(&m.version))
            .map(|m| format!("{:04} {}", m.version, m.name))
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::Schema(format!(
                "the database {} is not prepared for b24sync (not applied: {}); run `b24sync init-db` first",
                self.target.describe(),
                missing.join(", ")
            )));
        }
        self.schema_ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Make sure `bitrix_lead_runtime` has row Id = 1 (`runtime_row.sql`). Part of the schema
    /// check every sync starts with, so a login that may not create the row (ALTER, for
    /// IDENTITY_INSERT) is told what to do before the run writes anything, not after.
    async fn runtime_row(
        &self,
        c: &mut Client,
        report: &mut SchemaReport,
    ) -> Result<(), StoreError> {
        let context = "checking row Id = 1 of dbo.bitrix_lead_runtime";
        let state = match run(c, sql::RUNTIME_ROW).await {
            Ok(sets) => sets
                .iter()
                .rev()
                .find_map(|s| s.first())
                .and_then(|r| r.get::<&str, _>("runtime_row"))
                .map(str::to_string),
            Err(e) => {
                self.rollback(c, context).await;
                return Err(self.db_error(context, &e));
            }
        };
        match state.as_deref() {
            Some("present") => Ok(()),
            Some("created") => {
                let row = "row Id = 1 of dbo.bitrix_lead_runtime";
                tracing::debug!("created {row}");
                match report.created.last_mut() {
                    // Right after the tables: part of the same step.
                    Some(tables) if tables.contains(" table(s): ") => {
                        tables.push_str("; ");
                        tables.push_str(row);
                    }
                    _ => report.created.push(row.to_string()),
                }
                Ok(())
            }
            Some("no_permission") => Err(StoreError::Schema(runtime_row_refused(&self.target))),
            other => Err(StoreError::Database {
                context: context.to_string(),
                reason: format!("runtime_row.sql answered {other:?}"),
            }),
        }
    }

    /// The error `init-db` gives when duplicate `sql_ID` rows block the unique index.
    async fn duplicates_report(&self, c: &mut Client) -> Result<Option<String>, StoreError> {
        let Some((ids, surplus, examples)) = ops::duplicates(c)
            .await
            .map_err(|e| self.db_error("looking for duplicate sql_ID rows", &e))?
        else {
            return Ok(None);
        };
        Ok(Some(format!(
            "dbo.bitrix_leads on {} has {ids} sql_ID value(s) stored more than once ({surplus} surplus row(s)), e.g. sql_ID {}; \
             b24sync upserts by sql_ID and needs it unique. Remove the duplicates with sql/mssql/fix_duplicate_leads.sql \
             (keeps the row with the highest Id of each sql_ID, all in one transaction): \
             {} \
             -- then run `b24sync init-db` again",
            self.target.describe(),
            examples.join(", "),
            ops::fix_duplicates_command(&self.target),
        )))
    }

    /// A connection of its own, outside the pool, for a session-owned app lock: the lock
    /// cannot be handed to another task with a pooled connection, nor released by the pool
    /// closing an idle one. `purpose` names it in messages.
    async fn dedicated(&self, purpose: &str) -> Result<Client, StoreError> {
        // The manager bounds each phase (TCP, then TLS and login) by the connect timeout.
        match self.pool.dedicated_connection().await {
            Ok(c) => Ok(c),
            Err(e) => Err(self.target.unreachable(&format!(
                "opening a connection for {purpose}: {}",
                conn::Failure::from_connect(&e).reason(&self.target)
            ))),
        }
    }

    /// Stage and upsert one batch, isolating leads the server rejects (see [`Self::load_batch`]).
    ///
    /// With `commit` false (a dry-run preview) every attempt is rolled back instead of
    /// committed; the bisection works the same, so the counts are what a load would report.
    async fn load_isolating(
        &self,
        c: &mut Client,
        batch: Batch,
        now: NaiveDateTime,
        commit: bool,
    ) -> Result<BatchOutcome, StoreError> {
        let mut total = BatchOutcome::default();
        // A stack rather than recursion: halves are pushed right-then-left so leads are
        // written in their original order.
        let mut pending = vec![batch];
        while let Some(b) = pending.pop() {
            match self.load_retrying(c, &b, now, commit).await {
                Ok(o) => total.add(&o),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Rejected(why)) if stage::units(&b) > 1 => {
                    tracing::debug!(
                        leads = stage::units(&b),
                        "batch rejected by the server, splitting it: {why}"
                    );
                    let (left, right) = stage::split(b);
                    pending.push(right);
                    pending.push(left);
                }
                Err(Attempt::Rejected(why)) => match b.records.into_iter().next() {
                    Some(r) => {
                        tracing::warn!(lead = r.lead.id, "SQL Server rejected the lead: {why}");
                        pending.push(Batch {
                            records: Vec::new(),
                            rejected: vec![RejectedLead {
                                lead_id: Some(r.lead.id.to_string()),
                                reason: clip_reason(&format!(
                                    "not loaded: SQL Server rejected the lead: {why}"
                                )),
                                raw_json: r.raw_json,
                            }],
                        });
                    }
                    // Even the error row alone cannot be written: nothing left to isolate.
                    None => {
                        return Err(StoreError::Database {
                            context: format!(
                                "writing the error row of lead {}",
                                b.rejected
                                    .first()
                                    .and_then(|r| r.lead_id.as_deref())
                                    .unwrap_or("(no ID)")
                            ),
                            reason: why,
                        })
                    }
                },
            }
        }
        Ok(total)
    }

    async fn load_retrying(
        &self,
        c: &mut Client,
        b: &Batch,
        now: NaiveDateTime,
        commit: bool,
    ) -> Result<BatchOutcome, Attempt> {
        let mut tries = 0;
        loop {
            match self.load_once(c, b, now, commit).await {
                Err(TxError::Db(e)) if e.is_deadlock() && tries < self.opts.deadlock_retries => {
                    tries += 1;
                    tracing::info!(
                        try_no = tries,
                        "batch chosen as a deadlock victim; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                }
                Err(TxError::Db(e)) => {
                    return Err(if is_row_rejection(&e) {
                        Attempt::Rejected(self.target.scrub(&server_text(&e)))
                    } else {
                        Attempt::Fatal(self.db_error("loading a batch", &e))
                    })
                }
                Err(e @ TxError::LockLost(_)) => {
                    return Err(Attempt::Fatal(self.tx_error("loading a batch", &e)))
                }
                Ok(o) => return Ok(o),
            }
        }
    }

    /// One try: stage, upsert, read the counts. Rolls back on failure, and always when
    /// `commit` is false: then an outer transaction (`preview_begin.sql`) holds the staging
    /// and the upsert, whose own COMMIT only closes its nested transaction.
    async fn load_once(
        &self,
        c: &mut Client,
        b: &Batch,
        now: NaiveDateTime,
        commit: bool,
    ) -> Result<BatchOutcome, TxError> {
        let token = self.token();
        let token = token.as_deref();
        let result = if commit {
            stage_and_upsert(c, b, now, token).await
        } else {
            async {
                run(c, sql::PREVIEW_BEGIN).await?;
                let outcome = stage_and_upsert(c, b, now, token).await?;
                run(c, sql::PREVIEW_END).await?;
                Ok(outcome)
            }
            .await
        };
        if result.is_err() {
            // Usually XACT_ABORT rolled back already; make sure, so the pooled connection
            // goes back clean. A failure here means the connection is gone anyway.
            if let Err(e) = run(c, sql::ROLLBACK).await {
                tracing::warn!(
                    "rollback after a failed batch failed: {}",
                    self.target.scrub(&e.to_string())
                );
            }
        }
        result
    }

    /// Undo whatever a failed statement left open on this pooled connection, so it goes back
    /// to the pool clean. XACT_ABORT usually rolled back already; a failure here means the
    /// connection is gone anyway, so it is only logged.
    async fn rollback(&self, c: &mut Client, after: &str) {
        if let Err(e) = run(c, sql::ROLLBACK).await {
            tracing::warn!(
                "rollback after a failure while {after} failed: {}",
                self.target.scrub(&e.to_string())
            );
        }
    }
}

/// The run lock this sink holds: its token (see `sql/mssql/lock_confirm.sql`) and session.
#[derive(Debug, Clone)]
struct RunLock {
    token: String,
    spid: i32,
}

/// How a write transaction failed.
#[derive(Debug)]
enum TxError {
    Db(tiberius::error::Error),
    /// `lock_guard.sql` found the run lock gone; the words say how.
    LockLost(String),
}

impl From<tiberius::error::Error> for TxError {
    fn from(e: tiberius::error::Error) -> Self {
        TxError::Db(e)
    }
}

/// Inside an open transaction on `c`, before it writes: take the shared write lock and check
/// that this run's lock session still holds its token (`sql/mssql/lock_guard.sql` says why
/// that is enough). No token: this sink holds no run lock (tests, `errors clear`), nothing
/// to check.
async fn check_lock(c: &mut Client, token: Option<&str>) -> Result<(), TxError> {
    let Some(token) = token else {
        return Ok(());
    };
    let sets = c
        .query(sql::LOCK_GUARD, &[&token])
        .await?
        .into_results()
        .await?;
    let row = sets.iter().rev().find_map(|s| s.first());
    guard_verdict(
        row.and_then(|r| r.get::<&str, _>("writes_mode")),
        row.and_then(|r| r.get::<i32, _>("token_free")),
    )
    .map_err(TxError::LockLost)
}

/// What `lock_guard.sql` answered: Ok only for a granted shared write lock (`writes_mode`
/// `Shared`) and a token still held by the run's lock session (`token_free` 0).
fn guard_verdict(writes_mode: Option<&str>, token_free: Option<i32>) -> Result<(), String> {
    match (writes_mode, token_free) {
        (Some(m), Some(0)) if m.eq_ignore_ascii_case("Shared") => Ok(()),
        (_, Some(1)) => Err(
            "the session that held it has ended (closed by the server, a \
             KILL, or a dropped network connection), so another run may be writing"
                .to_string(),
        ),
        (Some(_), Some(0)) => Err("another run is taking the run lock over (its barrier \
             did not let this transaction through within 30 s)"
            .to_string()),
        _ => Err("the lock check (lock_guard.sql) returned no answer".to_string()),
    }
}

/// What `lock_confirm.sql` answered: the token held and the barrier passed.
fn confirm_verdict(token_mode: Option<&str>, barrier_mode: Option<&str>) -> Result<(), String> {
    let held = |m: Option<&str>| m.is_some_and(|m| m.eq_ignore_ascii_case("Exclusive"));
    if !held(token_mode) {
        return Err("this run's token lock was not granted".to_string());
    }
    if !held(barrier_mode) {
        return Err("a previous run's write transactions did not end in time".to_string());
    }
    Ok(())
}

/// Say once per process and server what the connection string chose about TLS: trusting
/// any certificate is the DBA's choice, so it is information (INFO), not a warning; data
/// without TLS (`Encrypt=false`, `DANGER_PLAINTEXT`) is a warning. (tiberius's own WARN on every connection is not forwarded, see
/// `conn::Manager`.)
fn say_tls_choice(target: &conn::Target) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let key = target.describe();
    {
        let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
        if said.contains(&key) {
            return;
        }
        said.push(key.clone());
    }
    if target.plaintext {
        tracing::warn!(
            "{key}: Encrypt=DANGER_PLAINTEXT: the login and all data travel unencrypted"
        );
    } else if target.login_only {
        tracing::warn!(
            "{key}: Encrypt=false: only the login is encrypted, the data travel unencrypted \
             (leave Encrypt out, or set Encrypt=true, to encrypt everything)"
        );
    } else if target.trusts_cert {
        tracing::info!(
            "{key}: TLS without validating the server certificate (TrustServerCertificate=true)"
        );
    }
}

/// Why a sync (or init-db) stops when row Id = 1 is missing and this login may not create it.
fn runtime_row_refused(target: &conn::Target) -> String {
    format!(
        "dbo.bitrix_lead_runtime on {} has no row Id = 1 (the row each run stamps), and the login '{}' \
         may not create it (SET IDENTITY_INSERT needs ALTER on the table); nothing was written. \
         Run `b24sync init-db` once with a login that may (e.g. the database owner), then sync \
         with this one: a sync itself needs only SELECT, INSERT, UPDATE and DELETE",
        target.describe(),
        target.user.as_deref().unwrap_or("")
    )
}

/// A fresh token resource for one hold of the run lock: random, so no other session ever
/// asks for it.
fn new_token() -> String {
    format!("b24sync:run:{:016x}", rand::random::<u64>())
}

enum Attempt {
    /// The server refused the data (constraint, conversion): worth isolating the lead.
    Rejected(String),
    /// Anything else (connection, permissions, schema): stop.
    Fatal(StoreError),
}

/// Errors that say "this data cannot go in", as opposed to "this cannot work at all".
/// Severity above 16 is a resource or system problem; the listed codes are about schema,
/// permissions, syntax or locking, which no subset of the batch would get past.
fn is_row_rejection(e: &tiberius::error::Error) -> bool {
    const NOT_ABOUT_DATA: [u32; 24] = [
        102, 137, 156, 207, 208, 229, 230, 262, 266, 297, 300, 701, 1105, 1205, 1222, 2714, 2812,
        3902, 3903, 4060, 4104, 8645, 9002, 18456,
    ];
    match e {
        tiberius::error::Error::Server(t) => t.class() <= 16 && !NOT_ABOUT_DATA.contains(&t.code()),
        _ => false,
    }
}

/// A server error as "message (error N)"; other errors as tiberius words them.
fn server_text(e: &tiberius::error::Error) -> String {
    match e {
        tiberius::error::Error::Server(t) => format!("{} (error {})", t.message(), t.code()),
        other => other.to_string(),
    }
}

/// Send a plain batch (no parameters) and read every result set.
async fn run(c: &mut Client, text: &str) -> tiberius::Result<Vec<Vec<Row>>> {
    c.simple_query(text).await?.into_results().await
}

async fn bulk<'a>(
    c: &'a mut Client,
    table: &'a str,
    rows: Vec<TokenRow<'a>>,
) -> tiberius::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut req = c.bulk_insert(table).await?;
    for row in rows {
        req.send(row).await?;
    }
    req.finalize().await?;
    Ok(())
}

/// Set values the bulk path cannot carry, [`sql::LONG_CHUNK`] per statement.
async fn set_long(
    c: &mut Client,
    statement: &'static str,
    values: &[(i32, &str)],
) -> tiberius::Result<()> {
    for chunk in values.chunks(sql::LONG_CHUNK) {
        let mut q = Query::new(statement);
        for i in 0..sql::LONG_CHUNK {
            // A short chunk repeats its last pair: setting the same value twice is harmless
            // and keeps the statement text (and its parameter count) fixed.
            let (key, value) = chunk.get(i).or(chunk.last()).copied().unwrap_or((0, ""));
            q.bind(key);
            q.bind(value.to_string());
        }
        q.execute(c).await?;
    }
    Ok(())
}

async fn stage_and_upsert(
    c: &mut Client,
    b: &Batch,
    now: NaiveDateTime,
    token: Option<&str>,
) -> Result<BatchOutcome, TxError> {
    run(c, sql::STAGE_CREATE).await?;
    run(c, sql::LOOKUP_STAGE_CREATE).await?;
    let errors = b.error_rows();
    let staged = stage::build(b, &errors, now);
    bulk(c, sql::STAGE_LEADS, staged.leads).await?;
    bulk(c, sql::STAGE_CONTACTS, staged.contacts).await?;
    bulk(c, sql::STAGE_ERRORS, staged.errors).await?;
    bulk(c, sql::STAGE_PHONES, lookup::phone_rows(b)).await?;
    set_long(c, sql::STAGE_LONG_COMMENTS, &staged.long_comments).await?;
    set_long(c, sql::STAGE_LONG_ERROR_JSON, &staged.long_error_json).await?;

    // One transaction around the upsert and the phones: upsert_batch.sql's own
    // BEGIN/COMMIT nest inside it, and XACT_ABORT (set by TX_BEGIN) rolls all of it back
    // on any failure, so the normalised phones always agree with the contact values.
    run(c, sql::TX_BEGIN).await?;
    check_lock(c, token).await?;
    let sets = run(c, sql::UPSERT_BATCH).await?;
    run(c, sql::LOOKUP_PHONES_SYNC).await?;
    run(c, sql::TX_COMMIT).await?;
    let row = sets.iter().rev().find_map(|s| s.first()).ok_or_else(|| {
        tiberius::error::Error::Protocol("upsert_batch.sql returned no counts".into())
    })?;
    let n = |name: &str| {
        row.get::<i32, _>(name)
            .map(|v| u64::try_from(v).unwrap_or(0))
            .unwrap_or(0)
    };
    Ok(BatchOutcome {
        leads_inserted: n("leads_inserted"),
        leads_updated: n("leads_updated"),
        leads_unchanged: n("leads_unchanged"),
        contacts_written: n("contacts_written"),
        contacts_deleted: n("contacts_deleted"),
        error_rows: n("error_rows"),
        error_rows_new: n("error_rows_new"),
    })
}

#[async_trait]
impl Sink for MssqlSink {
    fn describe(&self) -> String {
        self.target.describe()
    }

    async fn init_schema(&self) -> Result<SchemaReport, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        let mut report = SchemaReport::default();

        let before: HashSet<String> = run(c, sql::TABLES_PRESENT)
            .await
            .map_err(|e| self.db_error("looking for the Oktell tables", &e))?
            .iter()
            .flatten()
            .filter_map(|r| r.get::<&str, _>("name").map(str::to_string))
            .collect();
        run(c, sql::OKTELL_TABLES)
            .await
            .map_err(|e| self.db_error("creating the missing Oktell tables", &e))?;
        // One entry for the tables, one per migration: the log says what happened in a few
        // lines, the objects themselves are named at debug level (-v).
        let created: Vec<String> = sql::SCHEMA_TABLES
            .iter()
            .filter(|t| !before.contains(**t))
            .map(|t| format!("dbo.{t}"))
            .collect();
        for t in &created {
            tracing::debug!("created table {t}");
        }
        if !created.is_empty() {
            report.created.push(format!(
                "{} table(s): {}",
                created.len(),
                created.join(", ")
            ));
        }
        self.runtime_row(c, &mut report).await?;

        let applied = self.applied(c).await?;
        for m in sql::MIGRATIONS.iter() {
            let sum = sql::checksum(m.sql);
            if let Some(recorded) = applied.get(&m.version) {
                if recorded != "manual" && *recorded != sum {
                    report.warnings.push(format!(
                        "migration {:04} {} was applied from a different file (recorded checksum {recorded}, \
                         this build's {sum}); it is not applied again",
                        m.version, m.name
                    ));
                }
                continue;
            }
            if m.needs_unique_leads {
                if let Some(message) = self.duplicates_report(c).await? {
                    return Err(StoreError::Schema(message));
                }
            }
            let context = format!("applying migration {:04} {}", m.version, m.name);
            let applied_ok = async {
                run(c, sql::TX_BEGIN).await?;
                for batch in sql::batches(m.sql) {
                    run(c, &batch).await?;
                }
                c.execute(sql::MIGRATION_SET_CHECKSUM, &[&sum.as_str(), &m.version])
                    .await?;
                run(c, sql::TX_COMMIT).await?;
                Ok::<(), tiberius::error::Error>(())
            }
            .await;
            if let Err(e) = applied_ok {
                let _ = run(c, sql::ROLLBACK).await;
                return Err(self.db_error(&context, &e));
            }
            for object in sql::objects(m.sql) {
                tracing::debug!("migration {:04} {}: created {object}", m.version, m.name);
            }
            report
                .created
                .push(format!("migration {:04} {}", m.version, m.name));
        }
        self.schema_ready.store(true, Ordering::Relaxed);
        Ok(report)
    }

    async fn lock_run(&self, wait: Duration) -> Result<(), StoreError> {
        let mut held = self.lock_conn.lock().await;
        if held.is_some() {
            return Ok(());
        }
        let mut client = self.dedicated("the run lock").await?;
        let wait_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        let code = async {
            let row = client
                .query(sql::LOCK_ACQUIRE, &[&wait_ms])
                .await?
                .into_row()
                .await?;
            Ok::<_, tiberius::error::Error>(row.and_then(|r| r.get::<i32, _>("result")))
        }
        .await
        .map_err(|e| self.db_error("taking the run lock (sp_getapplock)", &e))?;
        match code {
            Some(c) if c >= 0 => {
                let token = new_token();
                let confirmed = async {
                    let sets = client
                        .query(sql::LOCK_CONFIRM, &[&token.as_str(), &wait_ms])
                        .await?
                        .into_results()
                        .await?;
                    let row = sets.iter().rev().find_map(|s| s.first());
                    Ok::<_, tiberius::error::Error>((
                        confirm_verdict(
                            row.and_then(|r| r.get::<&str, _>("token_mode")),
                            row.and_then(|r| r.get::<&str, _>("barrier_mode")),
                        ),
                        row.and_then(|r| r.get::<i32, _>("spid")).unwrap_or(0),
                    ))
                }
                .await;
                match confirmed {
                    Ok((Ok(()), spid)) => {
                        tracing::debug!("run lock taken on session {spid}");
                        self.set_lock(Some(RunLock { token, spid }));
                        *held = Some(client);
                        Ok(())
                    }
                    // Closing the session frees the run lock it was granted.
                    Ok((Err(why), _)) => {
                        tracing::info!("run lock not confirmed: {why}");
                        let _ = client.close().await;
                        Err(StoreError::LockBusy {
                            target: self.target.describe(),
                            waited_secs: wait.as_secs(),
                        })
                    }
                    Err(e) => {
                        let _ = client.close().await;
                        Err(self.db_error("taking the run lock (lock_confirm.sql)", &e))
                    }
                }
            }
            // -1 timeout is the usual one; -2 cancelled, -3 deadlock victim: also "not now".
            Some(_) => {
                let _ = client.close().await;
                Err(StoreError::LockBusy {
                    target: self.target.describe(),
                    waited_secs: wait.as_secs(),
                })
            }
            None => Err(StoreError::Database {
                context: "taking the run lock (sp_getapplock)".into(),
                reason: "no result code returned".into(),
            }),
        }
    }

    async fn unlock_run(&self) -> Result<(), StoreError> {
        let Some(mut client) = self.lock_conn.lock().await.take() else {
            return Ok(());
        };
        let token = self.token().unwrap_or_default();
        self.set_lock(None);
        // Closing the session frees the lock even if the release fails, so a failed release
        // is only worth a log line.
        if let Err(e) = client.execute(sql::LOCK_RELEASE, &[&token.as_str()]).await {
            tracing::warn!(
                "releasing the run lock failed (closing its connection frees it): {}",
                self.target.scrub(&e.to_string())
            );
        }
        let _ = client.close().await;
        Ok(())
    }

    /// See the module docs of [`crate::load`] for the contract. Unchanged leads are not
    /// touched; when the server rejects a row, the batch is rolled back and bisected until the
    /// rejected lead(s) are isolated, the rest is loaded, and each rejected lead gets an error
    /// row with the server's message.
    async fn load_batch(
        &self,
        batch: Batch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let batch = crate::prepare::prepare(batch).into_batch();
        if batch.is_empty() {
            return Ok(BatchOutcome::default());
        }
        self.load_isolating(c, batch, now, true).await
    }

    async fn stamp_runtime(&self, finished: NaiveDateTime) -> Result<(), StoreError> {
        let context = "stamping bitrix_lead_runtime";
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        let token = self.token();
        let result = async {
            run(c, sql::TX_BEGIN).await?;
            check_lock(c, token.as_deref()).await?;
            let sets = c
                .query(sql::STAMP_RUNTIME, &[&finished])
                .await?
                .into_results()
                .await?;
            run(c, sql::TX_COMMIT).await?;
            Ok::<_, TxError>(
                sets.iter()
                    .rev()
                    .find_map(|s| s.first())
                    .and_then(|r| r.get::<i32, _>("runtime_rows"))
                    .unwrap_or(0),
            )
        }
        .await;
        match result {
            Err(e) => {
                self.rollback(c, context).await;
                Err(self.tx_error(context, &e))
            }
            Ok(0) => Err(StoreError::Schema(format!(
                "dbo.bitrix_lead_runtime on {} has no row Id = 1 any more (the row each run stamps; \
                 the data of this run is in): run `b24sync init-db` to create it again",
                self.target.describe()
            ))),
            Ok(_) => Ok(()),
        }
    }

    async fn read_state(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        admin::read_state(c, name)
            .await
            .map_err(|e| self.db_error("reading b24sync_state", &e))
    }

    async fn write_state(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let context = "writing b24sync_state";
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let token = self.token();
        let result = async {
            run(c, sql::TX_BEGIN).await?;
            check_lock(c, token.as_deref()).await?;
            admin::write_state(c, name, value).await?;
            run(c, sql::TX_COMMIT).await?;
            Ok::<(), TxError>(())
        }
        .await;
        if let Err(e) = result {
            self.rollback(c, context).await;
            return Err(self.tx_error(context, &e));
        }
        Ok(())
    }

    async fn lead_ids(&self) -> Result<Vec<LeadId>, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        // The deletion check compares these with the portal's IDs; it is only meaningful once
        // init-db made sql_ID unique.
        self.ensure_ready(c).await?;
        admin::lead_ids(c)
            .await
            .map_err(|e| self.db_error("reading the lead IDs", &e))
    }

    /// Stages the IDs in `#stage_delete_ids` and runs `delete_leads.sql` (one transaction).
    /// A deadlock (e.g. with Oktell reading the same rows) rolls everything back, so the whole
    /// sequence is simply tried again, like a batch.
    async fn delete_leads(&self, ids: Vec<LeadId>) -> Result<u64, StoreError> {
        let context = "deleting leads removed in Bitrix24";
        if ids.is_empty() {
            return Ok(0);
        }
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let token = self.token();
        let mut tries = 0;
        loop {
            match admin::delete_leads(c, &ids, token.as_deref()).await {
                Ok(n) => return Ok(n),
                Err(e) => {
                    self.rollback(c, context).await;
                    let deadlock = matches!(&e, TxError::Db(d) if d.is_deadlock());
                    if deadlock && tries < self.opts.deadlock_retries {
                        tries += 1;
                        tracing::info!(
                            try_no = tries,
                            "deletion chosen as a deadlock victim; retrying"
                        );
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                        continue;
                    }
                    return Err(self.tx_error(context, &e));
                }
            }
        }
    }

    // The error review reads and deletes only in the Oktell error table, which the original
    // scripts already created: it works before (or without) `init-db`, so a DBA can look at a
    // database b24sync has not prepared yet.
    async fn error_rows(&self) -> Result<Vec<StoredError>, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        admin::error_rows(c)
            .await
            .map_err(|e| self.db_error("reading bitrix_import_lead_error", &e))
    }

    async fn clear_errors(&self, before: NaiveDateTime) -> Result<u64, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        admin::clear_errors(c, before)
            .await
            .map_err(|e| self.db_error("clearing bitrix_import_lead_error", &e))
    }

    async fn delete_error_rows(&self, row_ids: Vec<i64>) -> Result<u64, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        admin::delete_error_rows(c, row_ids)
            .await
            .map_err(|e| self.db_error("deleting stale rows of bitrix_import_lead_error", &e))
    }

    async fn operator_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        lookup::operator_ids(c)
            .await
            .map_err(|e| self.db_error("reading b24sync_operators", &e))
    }

    async fn store_operators(&self, operators: Vec<Operator>) -> Result<(), StoreError> {
        let context = "writing b24sync_operators";
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let token = self.token();
        if let Err(e) = lookup::store_operators(c, &operators, token.as_deref()).await {
            self.rollback(c, context).await;
            return Err(self.tx_error(context, &e));
        }
        Ok(())
    }

    /// Runs `dbo.b24sync_lookup_caller_keys`, the function telephony systems call. Works
    /// without the run lock, alongside a sync.
    async fn lookup_caller(&self, query: &CallerQuery) -> Result<Vec<CallerMatch>, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        lookup::lookup_caller(c, query)
            .await
            .map_err(|e| self.db_error("looking up the caller", &e))
    }

    /// The same staging, upsert and bisection as `load_batch`, each attempt rolled back.
    async fn preview_batch(
        &self,
        batch: Batch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let batch = crate::prepare::prepare(batch).into_batch();
        if batch.is_empty() {
            return Ok(BatchOutcome::default());
        }
        self.load_isolating(c, batch, now, false).await
    }

    async fn run_started(&self, record: &RunRecord) -> Result<i64, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        ops::run_started(c, record)
            .await
            .map_err(|e| self.db_error("writing dbo.b24sync_runs", &e))
    }

    async fn run_finished(&self, record: &RunRecord) -> Result<(), StoreError> {
        let context = "completing dbo.b24sync_runs";
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        match ops::run_finished(c, record).await {
            Ok(0) => Err(StoreError::Database {
                context: context.into(),
                reason: format!("there is no run with Id {}", record.id),
            }),
            Ok(_) => Ok(()),
            Err(e) => Err(self.db_error(context, &e)),
        }
    }

    async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        ops::recent_runs(c, limit)
            .await
            .map_err(|e| self.db_error("reading dbo.b24sync_runs", &e))
    }

    /// Reads only, and works before `init-db` (it says what init-db would do).
    async fn diagnose(&self) -> Result<Vec<Diagnosis>, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        Ok(ops::diagnose(c, &self.target).await)
    }
}

/// The OAuth token store behind `--db`: `bitrix_oauth` in SQL Server when `db` is a
/// connection string, else in the embedded database file. For `b24sync auth`, `token` and
/// `sync --client-id`. A SQL Server database must have had `b24sync init-db` (the store keeps
/// a side record in `b24sync_state`).
pub async fn open_token_store(db: &str) -> Result<Arc<dyn TokenStore>, StoreError> {
    if is_connection_string(db) {
        // The refresh lock takes a dedicated connection besides these.
        let opts = MssqlOptions {
            pool_size: 2,
            ..MssqlOptions::default()
        };
        Ok(Arc::new(MssqlSink::connect(db, opts).await?))
    } else {
        Ok(Arc::new(crate::load::sqlite::SqliteSink::open(
            std::path::Path::new(db),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_goes_ahead_only_with_the_write_lock_and_the_token_held() {
        assert_eq!(guard_verdict(Some("Shared"), Some(0)), Ok(()));
        // The lock session ended: the token can be granted to anyone.
        let gone = guard_verdict(Some("Shared"), Some(1)).unwrap_err();
        assert!(gone.contains("session that held it has ended"), "{gone}");
        // Another run's barrier kept the shared lock from being granted.
        let taken = guard_verdict(Some("NoLock"), Some(0)).unwrap_err();
        assert!(taken.contains("another run"), "{taken}");
        assert!(guard_verdict(Some("NoLock"), Some(1)).is_err());
        assert!(guard_verdict(None, None).is_err());
    }

    #[test]
    fn the_lock_is_confirmed_only_with_token_and_barrier() {
        assert_eq!(
            confirm_verdict(Some("Exclusive"), Some("Exclusive")),
            Ok(())
        );
        assert!(confirm_verdict(Some("NoLock"), Some("Exclusive")).is_err());
        assert!(confirm_verdict(Some("Exclusive"), Some("NoLock"))
            .unwrap_err()
            .contains("previous run"));
        assert!(confirm_verdict(None, None).is_err());
    }

    /// Captures what the sink logs while `f` runs on this thread.
    fn logs(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn trusting_the_certificate_is_said_once_at_info_and_plaintext_warns() {
        let connect_twice = |extra: &str| {
            // A port nothing listens on: the sink says its TLS choice before connecting.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let s = format!(
                "Server=tcp:127.0.0.1,{port};Database=oktell;User Id=b24;Password=pw;{extra}"
            );
            logs(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    for _ in 0..2 {
                        let opts = MssqlOptions {
                            connect_timeout: Duration::from_secs(2),
                            ..MssqlOptions::default()
                        };
                        assert!(MssqlSink::connect(&s, opts).await.is_err());
                    }
                });
            })
        };
        let trusted = connect_twice("TrustServerCertificate=true");
        let lines: Vec<&str> = trusted
            .lines()
            .filter(|l| l.contains("TrustServerCertificate=true"))
            .collect();
        assert_eq!(lines.len(), 1, "{trusted}");
        assert!(
            lines[0].contains("INFO") && !trusted.contains("WARN"),
            "{trusted}"
        );
        let plain = connect_twice("Encrypt=DANGER_PLAINTEXT");
        assert!(
            plain.contains("WARN") && plain.contains("unencrypted"),
            "{plain}"
        );
        let login_only = connect_twice("Encrypt=false;TrustServerCertificate=true");
        assert_eq!(login_only.matches("WARN").count(), 1, "{login_only}");
        assert!(
            login_only.contains("only the login is encrypted"),
            "{login_only}"
        );
        let validated = connect_twice("");
        assert!(
            !validated.contains("certificate") && !validated.contains("WARN"),
            "{validated}"
        );
    }

    #[test]
    fn tokens_are_distinct_and_fit_an_applock_name() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(
            a.starts_with("b24sync:run:") && a.len() == 28 && a.len() <= 255,
            "{a}"
        );
    }
}
