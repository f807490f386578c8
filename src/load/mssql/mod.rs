//! The SQL Server sink (the production target): the Oktell tables in an existing database.
//!
//! - Connection: an ADO.NET or JDBC string ([`MssqlSink::connect`]), a bb8 pool of tiberius
//!   connections, TLS on unless the string says otherwise.
//! - Schema ([`schema`]): `init_schema` runs `sql/mssql/oktell_tables.sql` (creates what is missing, never
//!   touches what exists) and the numbered files in `sql/mssql/migrations/`, each once.
//! - Load ([`writer`]): per batch, on one pooled connection, bulk-load `#stage_*` tables and run
//!   `sql/mssql/upsert_batch.sql`, one transaction. A lead the server rejects is isolated
//!   by bisection and recorded in `bitrix_import_lead_error`; the others load.
//! - Lock ([`lock`]): `sp_getapplock` on a dedicated connection held by the run's guard, plus
//!   a token lock only this run knows; every write transaction checks the token inside the
//!   transaction and holds a shared lock that a later run's barrier waits for
//!   (`sql/mssql/lock_guard.sql`), so a run whose lock session died commits nothing more.
//! - State, deletion check, error review ([`roles`], [`admin`]): `b24sync_state` upserted without MERGE;
//!   deleted leads' IDs bulk-loaded into `#stage_delete_ids`, then the leads and their
//!   contacts, solution and error rows deleted in one transaction.
//!
//! Every statement sent is in `sql/mssql/` (see [`sql`]); values are always bulk-loaded or
//! passed as parameters.

mod admin;
mod conn;
mod connect;
mod entity_sql;
mod lock;
mod lookup;
mod ops;
mod queue;
mod roles;
mod schema;
pub mod sql;
mod stage;
mod tokens;
mod writer;

#[cfg(test)]
mod sql_tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bb8::{ManageConnection, Pool, PooledConnection};
use connect::Manager as ConnectionManager;
use tiberius::{Row, TokenRow};

use crate::load::held::HeldBy;
use crate::load::Stores;
use crate::store::StoreError;
use lock::check_lock;

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
    /// The run lock while this sink's guards hold it: its token is checked by every write
    /// transaction.
    run_lock: HeldBy<lock::MssqlRunLock>,
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
    pub fn into_stores(self) -> Stores {
        Stores::of(self.describe(), Arc::new(self))
    }

    /// A name for messages: `host:port/database` (never a password).
    pub fn describe(&self) -> String {
        self.target.describe()
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
            run_lock: HeldBy::default(),
            schema_ready: AtomicBool::new(false),
        })
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
            return Err(super::not_prepared(&self.target.describe(), &missing));
        }
        self.schema_ready.store(true, Ordering::Relaxed);
        Ok(())
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

/// Say once per process and server what the connection string chose about TLS: trusting
/// any certificate is the DBA's choice, so it is information (INFO), not a warning; data
/// without TLS (`Encrypt=false`, `DANGER_PLAINTEXT`) is a warning. (tiberius's own WARN on every connection is not forwarded, see
/// `connect::Manager`.)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
