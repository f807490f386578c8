//! The SQL Server sink (the production target): the Oktell tables in an existing database.
//!
//! - Connection: an ADO.NET or JDBC string ([`MssqlSink::connect`]), a bb8 pool of tiberius
//!   connections, TLS on unless the string says otherwise.
//! - Schema: `init_schema` runs `sql/mssql/oktell_tables.sql` (creates what is missing, never
//!   touches what exists) and the numbered files in `sql/mssql/migrations/`, each once.
//! - Load: per batch, on one pooled connection, bulk-load `#stage_*` tables and run
//!   `sql/mssql/upsert_batch.sql`, one transaction. A lead the server rejects is isolated
//!   by bisection and recorded in `bitrix_import_lead_error`; the others load.
//! - Lock: `sp_getapplock` on a dedicated connection held for the run.
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
use bb8_tiberius::ConnectionManager;
use chrono::NaiveDateTime;
use tiberius::{Query, Row, TokenRow};

use crate::extract::oauth::TokenStore;
use crate::load::{BatchOutcome, Diagnosis, LoadError, RunRecord, SchemaReport, Sink, StoredError};
use crate::lookup::{CallerMatch, CallerQuery};
use crate::model::{clip_reason, Batch, LeadId, Operator, RejectedLead};

pub use conn::is_connection_string;
pub use sql::FIX_DUPLICATE_LEADS as FIX_DUPLICATE_LEADS_SQL;

type Client = bb8_tiberius::rt::Client;
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
    /// Connect to SQL Server with an ADO.NET (`Server=tcp:host,1433;Database=oktell;User
    /// Id=...;Password=...;TrustServerCertificate=true`) or `jdbc:sqlserver://` string.
    ///
    /// Opens one connection right away, so a server that is down or a refused login is
    /// reported here, as [`LoadError::Unreachable`] naming `host:port/database` and the reason
    /// (never the password).
    pub async fn connect(conn: &str, opts: MssqlOptions) -> Result<MssqlSink, LoadError> {
        let (config, target) = conn::parse(conn)?;
        let manager = ConnectionManager::new(config);
        let first = match tokio::time::timeout(opts.connect_timeout, manager.connect()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(target.unreachable(&conn::Failure::from_manager(&e).reason(&target)))
            }
            Err(_) => {
                return Err(target.unreachable(&format!(
                    "no answer within {} s (is the server running, and port {} open?)",
                    opts.connect_timeout.as_secs(),
                    target.port
                )))
            }
        };
        let pool = Pool::builder()
            .max_size(opts.pool_size.max(1))
            .connection_timeout(opts.connect_timeout)
            .build_unchecked(manager);
        // The pool starts with the connection that proved the string works; if the pool
        // cannot take it (it cannot be full yet), dropping it just closes it.
        let _ = pool.add(first);
        Ok(MssqlSink {
            pool,
            target,
            opts,
            lock_conn: tokio::sync::Mutex::new(None),
            schema_ready: AtomicBool::new(false),
        })
    }

    async fn conn(&self) -> Result<Pooled<'_>, LoadError> {
        self.pool.get().await.map_err(|e| match e {
            bb8::RunError::User(e) => self
                .target
                .unreachable(&conn::Failure::from_manager(&e).reason(&self.target)),
            bb8::RunError::TimedOut => self.target.unreachable(&format!(
                "no connection within {} s (server unreachable, or all {} pooled connections busy)",
                self.opts.connect_timeout.as_secs(),
                self.opts.pool_size.max(1)
            )),
        })
    }

    /// A pooled connection to a database that `init-db` has prepared (see `ensure_ready`).
    async fn ready_conn(&self) -> Result<Pooled<'_>, LoadError> {
        let mut pooled = self.conn().await?;
        self.ensure_ready(&mut pooled).await?;
        Ok(pooled)
    }

    fn db_error(&self, context: &str, e: &tiberius::error::Error) -> LoadError {
        LoadError::Database {
            context: context.to_string(),
            reason: self.target.scrub(&server_text(e)),
        }
    }

    /// Versions and checksums of the migrations already applied.
    async fn applied(&self, c: &mut Client) -> Result<BTreeMap<i32, String>, LoadError> {
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
    async fn ensure_ready(&self, c: &mut Client) -> Result<(), LoadError> {
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
            return Err(LoadError::Schema(format!(
                "the database {} is not prepared for b24sync (not applied: {}); run `b24sync init-db` first",
                self.target.describe(),
                missing.join(", ")
            )));
        }
        self.schema_ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The error `init-db` gives when duplicate `sql_ID` rows block the unique index.
    async fn duplicates_report(&self, c: &mut Client) -> Result<Option<String>, LoadError> {
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
    async fn dedicated(&self, purpose: &str) -> Result<Client, LoadError> {
        match tokio::time::timeout(self.opts.connect_timeout, self.pool.dedicated_connection())
            .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(self
                .target
                .unreachable(&conn::Failure::from_manager(&e).reason(&self.target))),
            Err(_) => Err(self.target.unreachable(&format!(
                "no connection for {purpose} within {} s",
                self.opts.connect_timeout.as_secs()
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
    ) -> Result<BatchOutcome, LoadError> {
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
                        return Err(LoadError::Database {
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
                Err(e) if e.is_deadlock() && tries < self.opts.deadlock_retries => {
                    tries += 1;
                    tracing::info!(
                        try_no = tries,
                        "batch chosen as a deadlock victim; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                }
                Err(e) => {
                    return Err(if is_row_rejection(&e) {
                        Attempt::Rejected(self.target.scrub(&server_text(&e)))
                    } else {
                        Attempt::Fatal(self.db_error("loading a batch", &e))
                    })
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
    ) -> tiberius::Result<BatchOutcome> {
        let result = if commit {
            stage_and_upsert(c, b, now).await
        } else {
            async {
                run(c, sql::PREVIEW_BEGIN).await?;
                let outcome = stage_and_upsert(c, b, now).await?;
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

enum Attempt {
    /// The server refused the data (constraint, conversion): worth isolating the lead.
    Rejected(String),
    /// Anything else (connection, permissions, schema): stop.
    Fatal(LoadError),
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
) -> tiberius::Result<BatchOutcome> {
    run(c, sql::STAGE_CREATE).await?;
    run(c, sql::LOOKUP_STAGE_CREATE).await?;
    let errors = stage::error_rows(b);
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

    async fn init_schema(&self) -> Result<SchemaReport, LoadError> {
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
        report.created.extend(
            sql::SCHEMA_TABLES
                .iter()
                .filter(|t| !before.contains(**t))
                .map(|t| format!("table dbo.{t}")),
        );

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
                    return Err(LoadError::Schema(message));
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
            report
                .created
                .push(format!("migration {:04} {}", m.version, m.name));
        }
        self.schema_ready.store(true, Ordering::Relaxed);
        Ok(report)
    }

    async fn lock_run(&self, wait: Duration) -> Result<(), LoadError> {
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
                *held = Some(client);
                Ok(())
            }
            // -1 timeout is the usual one; -2 cancelled, -3 deadlock victim: also "not now".
            Some(_) => {
                let _ = client.close().await;
                Err(LoadError::LockBusy {
                    target: self.target.describe(),
                    waited_secs: wait.as_secs(),
                })
            }
            None => Err(LoadError::Database {
                context: "taking the run lock (sp_getapplock)".into(),
                reason: "no result code returned".into(),
            }),
        }
    }

    async fn unlock_run(&self) -> Result<(), LoadError> {
        let Some(mut client) = self.lock_conn.lock().await.take() else {
            return Ok(());
        };
        // Closing the session frees the lock even if the release fails, so a failed release
        // is only worth a log line.
        if let Err(e) = run(&mut client, sql::LOCK_RELEASE).await {
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
    ) -> Result<BatchOutcome, LoadError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let batch = stage::prepare(batch);
        if batch.is_empty() {
            return Ok(BatchOutcome::default());
        }
        self.load_isolating(c, batch, now, true).await
    }

    async fn stamp_runtime(&self, finished: NaiveDateTime) -> Result<(), LoadError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        if let Err(e) = c.execute(sql::STAMP_RUNTIME, &[&finished]).await {
            let _ = run(c, sql::ROLLBACK).await;
            return Err(self.db_error("stamping bitrix_lead_runtime", &e));
        }
        Ok(())
    }

    async fn read_state(&self, name: &str) -> Result<Option<String>, LoadError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        admin::read_state(c, name)
            .await
            .map_err(|e| self.db_error("reading b24sync_state", &e))
    }

    async fn write_state(&self, name: &str, value: &str) -> Result<(), LoadError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        if let Err(e) = admin::write_state(c, name, value).await {
            self.rollback(c, "writing b24sync_state").await;
            return Err(self.db_error("writing b24sync_state", &e));
        }
        Ok(())
    }

    async fn lead_ids(&self) -> Result<Vec<LeadId>, LoadError> {
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
    async fn delete_leads(&self, ids: Vec<LeadId>) -> Result<u64, LoadError> {
        let context = "deleting leads removed in Bitrix24";
        if ids.is_empty() {
            return Ok(0);
        }
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let mut tries = 0;
        loop {
            match admin::delete_leads(c, &ids).await {
                Ok(n) => return Ok(n),
                Err(e) => {
                    self.rollback(c, context).await;
                    if e.is_deadlock() && tries < self.opts.deadlock_retries {
                        tries += 1;
                        tracing::info!(
                            try_no = tries,
                            "deletion chosen as a deadlock victim; retrying"
                        );
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                        continue;
                    }
                    return Err(self.db_error(context, &e));
                }
            }
        }
    }

    // The error review reads and deletes only in the Oktell error table, which the original
    // scripts already created: it works before (or without) `init-db`, so a DBA can look at a
    // database b24sync has not prepared yet.
    async fn error_rows(&self) -> Result<Vec<StoredError>, LoadError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        admin::error_rows(c)
            .await
            .map_err(|e| self.db_error("reading bitrix_import_lead_error", &e))
    }

    async fn clear_errors(&self, before: NaiveDateTime) -> Result<u64, LoadError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        admin::clear_errors(c, before)
            .await
            .map_err(|e| self.db_error("clearing bitrix_import_lead_error", &e))
    }

    async fn delete_error_rows(&self, row_ids: Vec<i64>) -> Result<u64, LoadError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        admin::delete_error_rows(c, row_ids)
            .await
            .map_err(|e| self.db_error("deleting stale rows of bitrix_import_lead_error", &e))
    }

    async fn operator_ids(&self) -> Result<Vec<String>, LoadError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        lookup::operator_ids(c)
            .await
            .map_err(|e| self.db_error("reading b24sync_operators", &e))
    }

    async fn store_operators(&self, operators: Vec<Operator>) -> Result<(), LoadError> {
        let context = "writing b24sync_operators";
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        if let Err(e) = lookup::store_operators(c, &operators).await {
            self.rollback(c, context).await;
            return Err(self.db_error(context, &e));
        }
        Ok(())
    }

    /// Runs `dbo.b24sync_lookup_caller_keys`, the function telephony systems call. Works
    /// without the run lock, alongside a sync.
    async fn lookup_caller(&self, query: &CallerQuery) -> Result<Vec<CallerMatch>, LoadError> {
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
    ) -> Result<BatchOutcome, LoadError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        let batch = stage::prepare(batch);
        if batch.is_empty() {
            return Ok(BatchOutcome::default());
        }
        self.load_isolating(c, batch, now, false).await
    }

    async fn run_started(&self, record: &RunRecord) -> Result<i64, LoadError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        ops::run_started(c, record)
            .await
            .map_err(|e| self.db_error("writing dbo.b24sync_runs", &e))
    }

    async fn run_finished(&self, record: &RunRecord) -> Result<(), LoadError> {
        let context = "completing dbo.b24sync_runs";
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        match ops::run_finished(c, record).await {
            Ok(0) => Err(LoadError::Database {
                context: context.into(),
                reason: format!("there is no run with Id {}", record.id),
            }),
            Ok(_) => Ok(()),
            Err(e) => Err(self.db_error(context, &e)),
        }
    }

    async fn recent_runs(&self, limit: u32) -> Result<Vec<RunRecord>, LoadError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        ops::recent_runs(c, limit)
            .await
            .map_err(|e| self.db_error("reading dbo.b24sync_runs", &e))
    }

    /// Reads only, and works before `init-db` (it says what init-db would do).
    async fn diagnose(&self) -> Result<Vec<Diagnosis>, LoadError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        Ok(ops::diagnose(c, &self.target).await)
    }
}

/// The OAuth token store behind `--db`: `bitrix_oauth` in SQL Server when `db` is a
/// connection string, else in the embedded database file. For `b24sync auth`, `token` and
/// `sync --client-id`. A SQL Server database must have had `b24sync init-db` (the store keeps
/// a side record in `b24sync_state`).
pub async fn open_token_store(db: &str) -> Result<Arc<dyn TokenStore>, LoadError> {
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
