//! The command line's shape: the commands and their own flags (clap). The setting groups
//! several commands share are in `groups.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::auth;
use super::groups::{DbArgs, LoadArgs, PortalArgs, ReadArgs, SyncArgs, ToSyncArgs};
use super::lookup;
use super::serve;

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
    /// Keep running, event-driven: Bitrix24's lead events (outbound posts, or an app's
    /// offline queue) applied within seconds, plus the incremental sync every
    /// --reconcile-every; GET /health and /metrics
    Serve(serve::ServeArgs),
    /// An OAuth application's event bindings for serve: bind, status, unbind
    #[command(subcommand)]
    Events(serve::EventsCommand),
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
    /// How many CRM contacts it has (some share a phone with a lead)
    #[arg(long, default_value_t = 3_000)]
    pub contacts: usize,
    /// How many CRM companies it has
    #[arg(long, default_value_t = 1_000)]
    pub companies: usize,
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
    /// How many CRM contacts the portal has
    #[arg(long, default_value_t = 3_000)]
    pub contacts: usize,
    /// How many CRM companies the portal has
    #[arg(long, default_value_t = 1_000)]
    pub companies: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Turn the portal's request-rate limit off
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Enterprise limits (5 requests/s, burst 250) instead of 2/s, burst 50
    #[arg(long)]
    pub enterprise: bool,
}
