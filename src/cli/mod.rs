//! The command line: clap definitions, settings from flags > environment > TOML file,
//! and the mapping of each command onto the library. No business logic lives here.

mod auth;
mod ops;
pub mod ui;
pub use crate::exit;
mod lookup;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::extract::client::{Bitrix24Client, ClientConfig};
use crate::extract::limits::RateConfig;
use crate::extract::Webhook;
use crate::run::{self, RunError, RunSummary, SyncOptions};
use crate::simulator::{RateLimit, Simulator, SimulatorConfig};
pub use settings::{FileSettings, Settings};

/// b24sync keeps the Oktell tables of a call centre's database (bitrix_leads,
/// bitrix_lead_contacts, ...) in step with the leads of a Bitrix24 portal, so that a
/// telephony system can recognise callers by their phone number.
#[derive(Debug, Parser)]
#[command(name = "b24sync", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// TOML settings file [default: ./b24sync.toml when it exists]
    #[arg(long, global = true, env = "B24SYNC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output (-v: debug, -vv: trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors (and no progress bar)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log format on stderr: "text" for people, "json" (one JSON object per line) for
    /// schedulers and log shippers
    #[arg(long, global = true, env = "B24SYNC_LOG_FORMAT", value_name = "FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "\
Settings come from flags, then environment variables (B24SYNC_*), then the TOML file.

Quick start:
  b24sync demo                                   # simulated portal → ./b24sync-demo.db
  b24sync sync --webhook https://PORTAL/rest/1/SECRET/ --db leads.db
  b24sync sync --db 'Server=tcp:sql1,1433;Database=oktell;User Id=b24;Password=...;TrustServerCertificate=true'
  b24sync lookup 89123456789 --db leads.db       # who is calling
  b24sync lookup 80291234567 --phone-region BY --db leads.db   # a number without +375 is read as --phone-region's

Exit codes: 0 ok, 2 configuration, 3 finished with rows in bitrix_import_lead_error,
4 Bitrix24 refused (webhook/permissions), 5 Bitrix24 unreachable, 6 database,
7 another run holds the lock, 8 OAuth authorization expired or revoked (run `b24sync auth`),
9 deletion check refused (too many leads would go), 10 doctor found problems,
130 interrupted, 1 internal error.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read leads from Bitrix24 (changed ones once a full sync has completed) and upsert them
    Sync(SyncArgs),
    /// Keep running: an incremental sync every interval, until Ctrl-C / SIGTERM
    Run(RunArgs),
    /// Review bitrix_import_lead_error: list, retry, clear
    #[command(subcommand)]
    Errors(ErrorsCommand),
    /// Create the tables and indexes b24sync needs (keeps existing tables and data)
    InitDb(DbArgs),
    /// Find the lead(s) and operator for a caller's phone number, written in any format
    Lookup(lookup::LookupArgs),
    /// Start a simulated portal with 10,000 leads and sync it into ./b24sync-demo.db
    Demo(DemoArgs),
    /// Run the Bitrix24 simulator until Ctrl-C (prints its webhook URL)
    Simulator(SimulatorArgs),
    /// Show the watermark and the last runs (the b24sync_runs table)
    Status {
        /// How many runs to show
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// One JSON document, for scripts
        #[arg(long)]
        json: bool,
        // Groups with a help heading come last: the heading would also cover what follows.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Check the setup: Bitrix24 access and scopes, clocks, the database, the contract
    /// tables, the indexes, the solution field; one verdict per check
    Doctor(DoctorArgs),
    /// Settings file helpers
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Authorize b24sync as a Bitrix24 OAuth application (once); stores the tokens in bitrix_oauth
    Auth(auth::AuthArgs),
    /// Refresh or show the OAuth tokens stored in bitrix_oauth
    Token {
        #[command(subcommand)]
        command: auth::TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a commented TOML file with every setting and its environment variable
    Example,
}

#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Database")]
pub struct DbArgs {
    /// Database: a file path (the embedded SQLite database) or a SQL Server connection
    /// string (ADO.NET "Server=...;Database=..." or "jdbc:sqlserver://...") [default: b24sync.db]
    #[arg(long, env = "B24SYNC_DB", value_name = "PATH|CONNECTION")]
    pub db: Option<String>,
    /// SQL Server connection pool size [default: 4]
    #[arg(
        long,
        env = "B24SYNC_POOL_SIZE",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub pool_size: Option<u32>,
}

/// Where leads come from and how fast b24sync may ask: every command that talks to Bitrix24.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Bitrix24")]
pub struct PortalArgs {
    /// Inbound webhook URL: https://PORTAL/rest/USER_ID/SECRET/ (needs the crm scope)
    #[arg(
        long,
        env = "B24SYNC_WEBHOOK",
        value_name = "URL",
        hide_env_values = true
    )]
    pub webhook: Option<String>,
    /// OAuth mode instead of a webhook: the application authorized with `b24sync auth`
    /// (tokens from bitrix_oauth in --db)
    #[arg(long, env = "B24SYNC_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// OAuth server for refreshing tokens [default: the one `auth` used]
    #[arg(long, env = "B24SYNC_OAUTH_SERVER", value_name = "URL")]
    pub oauth_server: Option<String>,
    /// Requests per second the portal allows, above 0 and at most 1000 (Enterprise: 5) [default: 2]
    #[arg(
        long,
        env = "B24SYNC_RATE",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub rate: Option<f64>,
    /// Burst of requests the portal allows (Enterprise: 250) [default: 50]
    #[arg(
        long,
        env = "B24SYNC_BURST",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub burst: Option<u32>,
    /// Give up on a portal that does not answer after this long in total, retries
    /// included (e.g. 2m), exiting 5 [default: 2m]
    #[arg(long, env = "B24SYNC_GIVE_UP_AFTER", value_name = "DURATION")]
    pub give_up_after: Option<String>,
}

/// How leads become rows, and what one run may change: every command that loads leads.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Loading")]
pub struct LoadArgs {
    /// The list-type lead field copied into bitrix_lead_solution (UF_CRM_...)
    #[arg(long, env = "B24SYNC_SOLUTION_FIELD", value_name = "UF_CRM_...")]
    pub solution_field: Option<String>,
    /// Wall clock of the datetime columns: "portal" (the portal's own time, as Oktell
    /// reports expect), "utc", or a zone name like "Europe/Moscow" [default: portal]
    #[arg(long, env = "B24SYNC_TIME_ZONE", value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// Country of phone numbers written without a country code, for normalising them
    /// (two-letter code: RU, BY, UA, KZ, ...) [default: RU]
    #[arg(long, env = "B24SYNC_PHONE_REGION", value_name = "CODE")]
    pub phone_region: Option<String>,
    /// Leads per database transaction [default: 2500]
    #[arg(
        long,
        env = "B24SYNC_BATCH_SIZE",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub batch_size: Option<usize>,
    /// Seconds to wait for another run's lock before giving up [default: 60]
    #[arg(
        long,
        env = "B24SYNC_LOCK_WAIT",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub lock_wait: Option<u64>,
    /// Refuse a deletion check that would delete more than this share of the leads
    /// (a webhook that lost its CRM permission sees an empty portal) [default: 0.2]
    #[arg(
        long,
        env = "B24SYNC_MAX_DELETE_SHARE",
        value_name = "SHARE",
        allow_negative_numbers = true
    )]
    pub max_delete_share: Option<f64>,
}

/// How the lead list is read, and how often deletions are looked for: `sync` and `run`.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Reading")]
pub struct ReadArgs {
    /// How to page: "batch" (50 pages per request, fastest) or "next" (one page per request) [default: batch]
    #[arg(long, env = "B24SYNC_PAGING", value_name = "MODE")]
    pub paging: Option<String>,
    /// How far before the last run's start an incremental run re-reads (e.g. 5m) [default: 5m]
    #[arg(long, env = "B24SYNC_OVERLAP", value_name = "DURATION")]
    pub overlap: Option<String>,
    /// Look for leads deleted in Bitrix24 on every N-th incremental run (full runs always look) [default: 12]
    #[arg(
        long,
        env = "B24SYNC_DELETION_CHECK_RUNS",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub deletion_check_runs: Option<u32>,
    /// ... or when this long has passed since the last look (e.g. 1h) [default: 1h]
    #[arg(long, env = "B24SYNC_DELETION_CHECK_EVERY", value_name = "DURATION")]
    pub deletion_check_every: Option<String>,
}

/// `sync`: every setting, and the flags that only make sense for one run. It is also the
/// full set [`Settings::resolve`] reads; the other commands' arguments convert into it
/// ([`ToSyncArgs`]) with what they do not have left unset.
#[derive(Debug, Args, Default, Clone)]
pub struct SyncArgs {
    #[command(flatten)]
    pub portal: PortalArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Read from Bitrix24 and report what would change (new, changed, deleted, error
    /// rows) without writing anything
    #[arg(long, help_heading = "This run")]
    pub dry_run: bool,
    /// Read every lead (default: only leads changed since the last completed run, once one has completed)
    #[arg(long, help_heading = "This run")]
    pub full: bool,
    /// Read leads changed since this point: 2024-05-01, 2024-05-01T12:00 or 2024-05-01T12:00:00+03:00
    /// (without an offset, the portal's time zone)
    #[arg(long, value_name = "DATETIME", help_heading = "This run")]
    pub since: Option<String>,
    /// The database is bound to another Bitrix24 portal and is to follow this one from now
    /// on: re-bind it, forget the watermark (the other portal's clock) and read every lead
    #[arg(long, help_heading = "This run")]
    pub rebind_portal: bool,
    /// Not a sync setting: the lookup's fallback tail length (see `lookup`)
    #[arg(skip)]
    pub tail_digits: Option<usize>,
}

/// Any command's arguments as the full set of settings (what the command lacks stays unset).
pub trait ToSyncArgs {
    fn to_sync_args(&self) -> SyncArgs;
}

impl ToSyncArgs for SyncArgs {
    fn to_sync_args(&self) -> SyncArgs {
        self.clone()
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interval between incremental syncs, e.g. 5m
    #[arg(long, value_name = "DURATION", help_heading = "Schedule")]
    pub every: String,
    #[command(flatten)]
    pub portal: PortalArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub read: ReadArgs,
}

impl ToSyncArgs for RunArgs {
    fn to_sync_args(&self) -> SyncArgs {
        SyncArgs {
            portal: self.portal.clone(),
            db: self.db.clone(),
            load: self.load.clone(),
            read: self.read.clone(),
            ..SyncArgs::default()
        }
    }
}

/// `doctor`: the portal, the database, and the solution field it checks.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub portal: PortalArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// The list-type lead field to check (UF_CRM_...)
    #[arg(
        long,
        env = "B24SYNC_SOLUTION_FIELD",
        value_name = "UF_CRM_...",
        help_heading = "Loading"
    )]
    pub solution_field: Option<String>,
}

impl ToSyncArgs for DoctorArgs {
    fn to_sync_args(&self) -> SyncArgs {
        SyncArgs {
            portal: self.portal.clone(),
            db: self.db.clone(),
            load: LoadArgs {
                solution_field: self.solution_field.clone(),
                ..LoadArgs::default()
            },
            ..SyncArgs::default()
        }
    }
}

/// `errors retry`: the portal, the database, and how the leads read again are loaded.
#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub portal: PortalArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub load: LoadArgs,
}

impl ToSyncArgs for RetryArgs {
    fn to_sync_args(&self) -> SyncArgs {
        SyncArgs {
            portal: self.portal.clone(),
            db: self.db.clone(),
            load: self.load.clone(),
            ..SyncArgs::default()
        }
    }
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ErrorsCommand {
    /// Show the rows of bitrix_import_lead_error (lead ID, when, reason)
    List {
        /// One JSON object per line, for scripts
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Read those leads from Bitrix24 again and load them: rows of leads that now load
    /// cleanly go, rows of leads that still fail stay (once)
    Retry(RetryArgs),
    /// Delete error rows dated before DATE (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)
    Clear {
        /// Delete the rows whose sql_date_error is before this moment, in this machine's
        /// local time like the column: YYYY-MM-DD (midnight) or "YYYY-MM-DD HH:MM:SS"
        #[arg(long, value_name = "DATE")]
        before: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many leads the simulated portal has
    #[arg(long, default_value_t = 10_000)]
    pub leads: usize,
    /// The embedded database to fill (its own file, not the other commands' b24sync.db)
    #[arg(long, default_value = "b24sync-demo.db")]
    pub db: PathBuf,
    /// Seed of the generated data
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How to page: batch or next
    #[arg(long, default_value = "batch")]
    pub paging: String,
}

#[derive(Debug, Args)]
pub struct SimulatorArgs {
    /// Port on 127.0.0.1 (0 picks a free one)
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    #[arg(long, default_value_t = 10_000)]
    pub leads: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Turn the portal's request-rate limit off
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Enterprise limits (5 requests/s, burst 250) instead of 2/s, burst 50
    #[arg(long)]
    pub enterprise: bool,
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let json = cli.log_format == "json";
    ui::set(ui::Ui {
        json,
        quiet: cli.quiet,
    });
    init_logging(cli.verbose, cli.quiet, json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ui::error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let code = runtime.block_on(dispatch(cli));
    ExitCode::from(code)
}

/// A closed stdout (`b24sync lookup ... | head -3`) ends the command quietly with exit 0, as
/// for ripgrep, instead of `println!`'s panic "failed printing to stdout: Broken pipe"
/// (exit 101). Done once here rather than at every `println!`.
///
/// Why a panic hook and not `signal(SIGPIPE, SIG_DFL)` (what `ls` gets from C): Rust starts
/// with SIGPIPE ignored so that a write to a closed *socket* is an ordinary error. Not every
/// socket write is protected otherwise (`writev`, used for vectored writes by hyper and
/// rustls, has no MSG_NOSIGNAL), so restoring the signal could kill a sync without a word
/// when Bitrix24 or SQL Server drops a connection mid-write. The hook covers every
/// platform (Windows has no SIGPIPE) and touches nothing but this one panic.
fn quiet_on_closed_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_closed_stdout_panic(info.payload()) {
            // Nobody reads what is left to print; the work already done stays done (a sync
            // reports on stderr, and every batch it wrote is committed).
            std::process::exit(exit::OK as i32);
        }
        default_hook(info);
    }));
}

/// Whether a panic is `print!`/`println!` failing because the reader of stdout went away.
/// std's message is "failed printing to stdout: {io error}"; the io error's text is the
/// system's (localised on Windows), its code is not: EPIPE (32) on Unix, ERROR_NO_DATA
/// (232) or ERROR_BROKEN_PIPE (109) on Windows.
fn is_closed_stdout_panic(payload: &(dyn std::any::Any + Send)) -> bool {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    let Some(error) = msg.strip_prefix("failed printing to stdout: ") else {
        return false;
    };
    let code = if cfg!(windows) {
        ["(os error 232)", "(os error 109)"].as_slice()
    } else {
        ["(os error 32)"].as_slice()
    };
    code.iter().any(|c| error.ends_with(c))
}

fn init_logging(verbose: u8, quiet: bool, json: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,b24sync={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        // No colour codes when stderr is a file or a pipe (scheduler logs).
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}

async fn dispatch(cli: Cli) -> u8 {
    let file = match settings::load_file(cli.config.as_deref()) {
        Ok(f) => f,
        Err(e) => return fail(exit::CONFIG, &e),
    };
    match cli.command {
        Command::Sync(args) => match Settings::resolve(&args, &file) {
            Ok(s) => sync_command(&s.creating_db()).await,
            Err(e) => fail(exit::CONFIG, &e),
        },
        Command::InitDb(args) => {
            let s = Settings::resolve(
                &SyncArgs {
                    db: args,
                    ..Default::default()
                },
                &file,
            );
            match s {
                Ok(s) => init_db_command(&s.creating_db()).await,
                Err(e) => fail(exit::CONFIG, &e),
            }
        }
        Command::Run(args) => match (
            Settings::resolve(&args, &file),
            settings::parse_duration(&args.every),
        ) {
            (Ok(s), Ok(every)) if !every.is_zero() => {
                scheduled_command(&s.creating_db(), every).await
            }
            (Err(e), _) => fail(exit::CONFIG, &e),
            (_, Err(e)) => fail(exit::CONFIG, &anyhow::anyhow!("--every: {e}")),
            (_, Ok(_)) => fail(
                exit::CONFIG,
                &anyhow::anyhow!("--every must be longer than 0 (e.g. 5m)"),
            ),
        },
        Command::Errors(cmd) => errors_command(cmd, &file).await,
        Command::Status { db, limit, json } => match Settings::resolve(
            &SyncArgs {
                db,
                ..Default::default()
            },
            &file,
        ) {
            Ok(s) => match open_stores(&s).await {
                Ok(stores) => ops::status_command(&stores, limit, json).await,
                Err(code) => code,
            },
            Err(e) => fail(exit::CONFIG, &e),
        },
        Command::Doctor(args) => match Settings::resolve(&args, &file) {
            Ok(s) => {
                let client = ops::doctor_client(&s).await;
                ops::doctor_command(&s, client).await
            }
            Err(e) => fail(exit::CONFIG, &e),
        },
        Command::Config(ConfigCommand::Example) => {
            print!("{}", ops::config_example());
            exit::OK
        }
        Command::Lookup(args) => lookup::lookup_command(&args, &file).await,
        Command::Demo(args) => demo_command(&args).await,
        Command::Simulator(args) => simulator_command(&args).await,
        Command::Auth(args) => auth::auth_command(&args, &file).await,
        Command::Token { command } => auth::token_command(&command, &file).await,
    }
}

pub(crate) fn fail(code: u8, e: &anyhow::Error) -> u8 {
    ui::error(&format!("{e:#}"));
    code
}

/// Cancelled on the first Ctrl-C or SIGTERM; a second one ends the process at once.
fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    // Listening starts here, not when the task is first polled: a Ctrl-C that comes right
    // after the command starts is a clean interruption, never the default handler's kill.
    let mut signals = Signals::install();
    tokio::spawn(async move {
        signals.recv().await;
        ui::note("interrupted: finishing the batch in flight (press Ctrl-C again to stop at once)");
        t.cancel();
        signals.recv().await;
        std::process::exit(exit::INTERRUPTED as i32);
    });
    token
}

/// Ctrl-C and (on Unix) SIGTERM, listened for from the moment [`Signals::install`] returns.
struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            // Registration fails only when the runtime has no signal driver; then the
            // Ctrl-C future below (registered on first poll) is all there is.
            let unix = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Some((int, term)),
                _ => None,
            };
            Signals { unix }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// The next Ctrl-C or SIGTERM.
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.unix {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Exit code for a failed run, with the message printed.
pub fn run_error_code(e: &RunError) -> u8 {
    ui::error(&e.to_string());
    exit::for_error(e)
}

/// Whether a command may create the embedded database it is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DbOpen {
    /// Only an existing b24sync database: `lookup`, `status`, `errors`, `doctor`, `token`.
    /// A mistyped `--db` fails naming the path instead of answering from a new, empty file
    /// (a telephony lookup would say "unknown caller" for everyone).
    #[default]
    MustExist,
    /// Create the file when missing: `sync`, `run`, `init-db`, `auth` (and `demo`).
    Create,
}

/// The stores behind `--db`, opened as the command's [`DbOpen`] allows. SQL Server databases
/// are never created by b24sync (a DBA makes them), so the mode only changes the file case.
pub(crate) async fn open_stores_db(
    db: &str,
    pool_size: u32,
    mode: DbOpen,
) -> Result<crate::load::Stores, crate::store::StoreError> {
    if mode == DbOpen::MustExist && !crate::load::mssql::is_connection_string(db) {
        let sink = crate::load::sqlite::SqliteSink::open_existing(std::path::Path::new(db))?;
        return Ok(sink.into_stores());
    }
    crate::load::open_stores(db, pool_size).await
}

pub(crate) async fn open_stores(s: &Settings) -> Result<crate::load::Stores, u8> {
    open_stores_db(&s.db, s.pool_size, s.db_open)
        .await
        .map_err(|e| {
            ui::error(&e.to_string());
            exit::DATABASE
        })
}

fn client_for(s: &Settings, cancel: CancellationToken) -> Result<Bitrix24Client, u8> {
    let config = ClientConfig {
        rate: RateConfig {
            per_second: s.rate,
            burst: s.burst,
        },
        ..ClientConfig::default()
    };
    client_with(s, cancel, config)
}

fn client_with(
    s: &Settings,
    cancel: CancellationToken,
    config: ClientConfig,
) -> Result<Bitrix24Client, u8> {
    let webhook_text = s.webhook.as_deref().ok_or_else(|| {
        ui::error(
            "no Bitrix24 webhook: pass --webhook https://PORTAL/rest/USER_ID/SECRET/ or set B24SYNC_WEBHOOK \
             (create one in Bitrix24 under Developer resources → Other → Inbound webhook, with the crm scope)",
        );
        exit::CONFIG
    })?;
    let webhook = Webhook::parse(webhook_text).map_err(|e| {
        ui::error(&e.to_string());
        exit::CONFIG
    })?;
    let config = ClientConfig {
        rate: RateConfig {
            per_second: s.rate,
            burst: s.burst,
        },
        give_up_after: s.give_up_after.unwrap_or(config.give_up_after),
        ..config
    };
    Bitrix24Client::new(webhook, config, cancel).map_err(|e| run_error_code(&e.into()))
}

async fn sync_command(s: &Settings) -> u8 {
    let cancel = interrupt_token();
    sync_once(s, cancel).await
}

async fn sync_once(s: &Settings, cancel: CancellationToken) -> u8 {
    let client = match &s.client_id {
        Some(_) => auth::oauth_client(s, cancel.clone()).await,
        None => client_for(s, cancel.clone()),
    };
    let client = match client {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stores = match open_stores(s).await {
        Ok(stores) => stores,
        Err(code) => return code,
    };
    tracing::info!(auth = %client.describe(), db = %stores.target, "sync starting");
    let opts = SyncOptions {
        progress: ui::progress(),
        ..s.sync_options()
    };
    finish(run::sync(&client, &(&stores).into(), &opts, cancel).await)
}

/// `run --every`: one incremental sync per interval until interrupted. A failed run is
/// logged and the next interval tries again, except for failures that cannot heal by
/// waiting (configuration, refused credentials).
async fn scheduled_command(s: &Settings, every: std::time::Duration) -> u8 {
    let cancel = interrupt_token();
    tracing::info!(
        every_s = every.as_secs(),
        "running a sync every interval (Ctrl-C to stop)"
    );
    loop {
        let started = tokio::time::Instant::now();
        let code = sync_once(s, cancel.clone()).await;
        if cancel.is_cancelled() {
            tracing::info!("stopped");
            return exit::OK;
        }
        if matches!(code, exit::CONFIG | exit::BITRIX_REFUSED) {
            return code;
        }
        tokio::select! {
            _ = cancel.cancelled() => {
                tracing::info!("stopped");
                return exit::OK;
            }
            _ = tokio::time::sleep_until(started + every) => {}
        }
    }
}

async fn errors_command(cmd: ErrorsCommand, file: &FileSettings) -> u8 {
    match cmd {
        ErrorsCommand::List { db, json } => {
            let s = match Settings::resolve(
                &SyncArgs {
                    db,
                    ..Default::default()
                },
                file,
            ) {
                Ok(s) => s,
                Err(e) => return fail(exit::CONFIG, &e),
            };
            let sink = match open_stores(&s).await {
                Ok(sink) => sink,
                Err(code) => return code,
            };
            match sink.errors.error_rows().await {
                Ok(rows) => {
                    // A row whose lead ID is not a number cannot be read again: say so on
                    // the row, and what clears it.
                    const NOT_RETRYABLE: &str = "[not retryable: the lead ID is not a number; the next full sync \
                         clears this row once Bitrix24 no longer returns such a lead, or remove it with \
                         `b24sync errors clear`]";
                    for r in &rows {
                        let retryable = r.numeric_lead_id().is_some();
                        if json {
                            let mut v = serde_json::to_value(r).unwrap_or_default();
                            if let Some(o) = v.as_object_mut() {
                                o.insert("retryable".into(), retryable.into());
                            }
                            println!("{v}");
                        } else {
                            println!(
                                "{}\t{}\t{}{}",
                                r.lead_id.as_deref().unwrap_or("-"),
                                r.at.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                                r.reason.as_deref().unwrap_or(""),
                                if retryable {
                                    String::new()
                                } else {
                                    format!("\t{NOT_RETRYABLE}")
                                }
                            );
                        }
                    }
                    if !json {
                        let stuck = rows
                            .iter()
                            .filter(|r| r.numeric_lead_id().is_none())
                            .count();
                        ui::note(&format!("{} rows in bitrix_import_lead_error", rows.len()));
                        if stuck > 0 {
                            ui::note(&format!(
                                "{stuck} of them cannot be retried (their lead ID is not a number): a full \
                                 sync (`b24sync sync --full`) clears them once Bitrix24 no longer returns such leads"
                            ));
                        }
                    }
                    exit::OK
                }
                Err(e) => run_error_code(&e.into()),
            }
        }
        ErrorsCommand::Retry(args) => {
            let s = match Settings::resolve(&args, file) {
                Ok(s) => s,
                Err(e) => return fail(exit::CONFIG, &e),
            };
            let cancel = interrupt_token();
            let client = match client_for(&s, cancel) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let stores = match open_stores(&s).await {
                Ok(stores) => stores,
                Err(code) => return code,
            };
            match run::retry_errors(&client, &(&stores).into(), &s.sync_options()).await {
                Ok(r) => {
                    println!(
                        "{} leads read again: {} now load cleanly, {} still fail; {} no longer in Bitrix24 (removed); \
                         {} rows have no numeric lead ID and cannot be retried{}",
                        r.retried, r.now_clean, r.still_failing, r.gone, r.not_retryable,
                        if r.not_retryable > 0 {
                            " (a full sync clears them once Bitrix24 no longer returns such leads)"
                        } else {
                            ""
                        }
                    );
                    if r.still_failing > 0 || r.not_retryable > 0 {
                        exit::LOADED_WITH_ERRORS
                    } else {
                        exit::OK
                    }
                }
                Err(e) => run_error_code(&e),
            }
        }
        ErrorsCommand::Clear { db, before } => {
            let s = match Settings::resolve(
                &SyncArgs {
                    db,
                    ..Default::default()
                },
                file,
            ) {
                Ok(s) => s,
                Err(e) => return fail(exit::CONFIG, &e),
            };
            let Some(before) = parse_local_datetime(&before) else {
                return fail(
                    exit::CONFIG,
                    &anyhow::anyhow!(
                        "--before {before:?} is not a date: use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS"
                    ),
                );
            };
            let sink = match open_stores(&s).await {
                Ok(sink) => sink,
                Err(code) => return code,
            };
            match sink.errors.clear_errors(before).await {
                Ok(n) => {
                    println!("deleted {n} rows of bitrix_import_lead_error dated before {before}");
                    exit::OK
                }
                Err(e) => run_error_code(&e.into()),
            }
        }
    }
}

fn parse_local_datetime(s: &str) -> Option<chrono::NaiveDateTime> {
    let s = s.trim();
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
}

/// The run's last words. With `-q` a scheduled run that needs no one says nothing: exit 0,
/// or 3 with only error rows someone was already told about (cron mails whatever is
/// printed). New error rows still print, one line each, and so does everything else.
fn finish(result: Result<RunSummary, RunError>) -> u8 {
    match result {
        Ok(summary) => {
            let code = exit::for_summary(&summary);
            let quiet = ui::get().quiet && !ui::get().json;
            for (lead, reason) in &summary.new_error_rows {
                ui::warn(&format!(
                    "new row in bitrix_import_lead_error: lead {lead}: {reason}"
                ));
            }
            let more = summary
                .outcome
                .error_rows_new
                .saturating_sub(summary.new_error_rows.len() as u64);
            if more > 0 {
                ui::warn(&format!(
                    "... and {more} more new rows in bitrix_import_lead_error (see `b24sync errors list`)"
                ));
            }
            if quiet && matches!(code, exit::OK | exit::LOADED_WITH_ERRORS) {
                return code;
            }
            ui::summary(&summary, code);
            if summary.interrupted {
                ui::note(&run::interrupted_note(&summary));
            }
            code
        }
        Err(e) => {
            let code = exit::for_error(&e);
            ui::failure(&e.to_string(), code);
            code
        }
    }
}

async fn init_db_command(s: &Settings) -> u8 {
    let sink = match open_stores(s).await {
        Ok(sink) => sink,
        Err(code) => return code,
    };
    match sink.schema.init_schema().await {
        Ok(report) => {
            // One line per migration applied (the objects each created are logged at -v);
            // with -q nothing, unless something needs a person (the warnings below).
            if !ui::get().quiet {
                for c in &report.created {
                    println!("created {c}");
                }
                if report.created.is_empty() {
                    println!("{}: schema up to date, nothing to create", sink.target);
                }
            }
            for w in &report.warnings {
                ui::warn(w);
            }
            exit::OK
        }
        Err(e) => run_error_code(&e.into()),
    }
}

/// The six Oktell tables, as the demo names them.
const OKTELL_TABLES: &str = "bitrix_leads, bitrix_lead_contacts, bitrix_lead_solution, \
     bitrix_import_lead_error, bitrix_lead_runtime, bitrix_oauth";

/// `b24sync demo`: a simulated portal synced into a database of its own. It exits by the
/// same rule as `sync` (3 while bitrix_import_lead_error holds rows, which the simulator
/// seeds on purpose), and never writes into a database holding a real portal's leads.
async fn demo_command(args: &DemoArgs) -> u8 {
    let result: anyhow::Result<u8> = async {
        let paging = args.paging.parse().map_err(anyhow::Error::msg)?;
        let db = args.db.to_string_lossy().to_string();
        let stores = crate::load::open_stores(&db, 1).await?;
        // Reads never create the schema: the demo's database is made here, as `init-db` would.
        stores.schema.init_schema().await?;
        // A database bound to a loopback portal is an earlier demo's (the simulator's port
        // changes every run): re-bound freely. Anything else is a real portal's data.
        let rebind = match run::bound_portal(stores.state.as_ref()).await {
            Ok(Some(bound)) if bound.is_loopback() => true,
            Ok(Some(bound)) => {
                return Ok(fail(
                    exit::CONFIG,
                    &anyhow::anyhow!(
                        "the database {} holds the leads of the Bitrix24 portal {bound}: the demo \
                         writes only into a database of its own. Leave out --db (the demo's file is \
                         ./b24sync-demo.db) or name a new file",
                        stores.target
                    ),
                ))
            }
            Ok(None) if !stores.deletions.lead_ids().await.map_err(RunError::from)?.is_empty() => {
                return Ok(fail(
                    exit::CONFIG,
                    &anyhow::anyhow!(
                        "the database {} holds leads but records no portal (synced by an earlier \
                         b24sync): the demo does not write into it. Leave out --db (the demo's file \
                         is ./b24sync-demo.db) or name a new file",
                        stores.target
                    ),
                ))
            }
            Ok(None) => false,
            Err(e) => return Ok(run_error_code(&e)),
        };
        let config = SimulatorConfig { leads: args.leads, seed: args.seed, ..SimulatorConfig::default() };
        let solution_field = config.solution_field.clone();
        let sim = Simulator::start(config).await.context("cannot start the Bitrix24 simulator on 127.0.0.1")?;
        println!("Bitrix24 simulator: {} leads at {}", args.leads, sim.base_url());
        println!("writing into the demo database {} (not your b24sync.db)", args.db.display());
        let cancel = interrupt_token();
        let webhook = Webhook::parse(&sim.webhook_url())?;
        let client = Bitrix24Client::new(webhook, ClientConfig::default(), cancel.clone())?;
        let opts = SyncOptions {
            paging,
            solution_field: Some(solution_field),
            rebind_portal: rebind,
            ..SyncOptions::default()
        };
        let summary = match run::sync(&client, &(&stores).into(), &opts, cancel).await {
            Ok(s) => s,
            Err(e) => return Ok(run_error_code(&e)),
        };
        println!("{}", crate::run::summary_line(&summary));
        println!("database: {} (tables {OKTELL_TABLES})", args.db.display());
        // What the table holds now, not only what this run added: a second demo keeps the
        // first one's rows (they are the same problems).
        let held = stores.errors.error_rows().await.map_err(RunError::from)?.len();
        let code = exit::for_summary(&summary);
        if held > 0 {
            println!(
                "{held} rows in bitrix_import_lead_error (the simulator seeds values too long for their \
                 columns on purpose, so the demo exits with 3 like a sync with error rows does); \
                 see: sqlite3 {} 'SELECT sql_ID, sql_error FROM bitrix_import_lead_error'",
                args.db.display()
            );
        }
        sim.shutdown().await;
        Ok(code)
    }
    .await;
    result.unwrap_or_else(|e| fail(exit::INTERNAL, &e))
}

async fn simulator_command(args: &SimulatorArgs) -> u8 {
    let rate_limit = match (args.no_rate_limit, args.enterprise) {
        (true, _) => None,
        (false, true) => Some(RateLimit::ENTERPRISE),
        (false, false) => Some(RateLimit::STANDARD),
    };
    let config = SimulatorConfig {
        port: args.port,
        leads: args.leads,
        seed: args.seed,
        rate_limit,
        ..SimulatorConfig::default()
    };
    // Before the URL is printed, so a script that reads it and stops us at once is heard.
    let mut signals = Signals::install();
    let sim = match Simulator::start(config).await {
        Ok(sim) => sim,
        Err(e) => {
            return fail(
                exit::CONFIG,
                &anyhow::anyhow!("cannot start the simulator on port {}: {e}", args.port),
            )
        }
    };
    println!("Bitrix24 simulator with {} leads; webhook URL:", args.leads);
    println!("{}", sim.webhook_url());
    println!("(Ctrl-C to stop)");
    signals.recv().await;
    sim.shutdown().await;
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_print_to_a_closed_stdout_is_taken_for_a_closed_pipe() {
        let epipe = std::io::Error::from_raw_os_error(if cfg!(windows) { 232 } else { 32 });
        let msg = format!("failed printing to stdout: {epipe}");
        assert!(is_closed_stdout_panic(&msg), "{msg}");
        let full_disk = format!(
            "failed printing to stdout: {}",
            std::io::Error::from_raw_os_error(28)
        );
        assert!(!is_closed_stdout_panic(&full_disk), "{full_disk}");
        let stderr = format!("failed printing to stderr: {epipe}");
        assert!(!is_closed_stdout_panic(&stderr));
        assert!(!is_closed_stdout_panic(&"index out of bounds"));
        assert!(!is_closed_stdout_panic(&7_u8));
    }

    #[test]
    fn negative_numbers_reach_validation() {
        let cli = Cli::try_parse_from(["b24sync", "sync", "--rate", "-1"]).unwrap();
        let Command::Sync(args) = cli.command else {
            panic!("not sync")
        };
        assert_eq!(args.portal.rate, Some(-1.0));
        let e = Settings::resolve(&args, &FileSettings::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("got -1") && e.contains("1000"), "{e}");
    }

    #[test]
    fn the_clap_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
