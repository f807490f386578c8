//! The setting groups several commands share (each with its help heading), and
//! [`SyncArgs`], the full set of settings every command's arguments convert into.

use clap::Args;

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
    /// Read with up to N `batch` chains at the same time, each over its own ID range; fewer
    /// when the portal holds fewer leads or the operating budget is tight, and the leaky
    /// bucket still paces every request. Where IDs are uneven each range may cost a request
    /// or two over the one chain's; 1 reads with one chain at a time [default: 4]
    #[arg(
        long,
        env = "B24SYNC_MAX_CHAINS",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub max_chains: Option<i64>,
    /// Which CRM entities to sync, comma-separated: lead, contact, company. Each fills its
    /// own tables (leads: the Oktell tables; contacts: bitrix_contacts, ...; companies:
    /// bitrix_companies, ...) and has its own watermark, so an entity added later is read
    /// in full once. One the webhook may not read is skipped with a warning
    /// [default: lead,contact,company]
    #[arg(long, env = "B24SYNC_ENTITIES", value_name = "LIST")]
    pub entities: Option<String>,
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
/// full set [`Settings::resolve`](super::settings::Settings::resolve) reads; the other commands' arguments convert into it
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
    /// Read every lead (default: only leads changed since the last completed run, once one has completed).
    /// Leads whose content did not change since b24sync wrote them are skipped (their stored
    /// fingerprint matches): nothing is written for them
    #[arg(long, help_heading = "This run")]
    pub full: bool,
    /// Ignore the stored fingerprints: compare every lead read with the tables and write what
    /// differs, as if b24sync had never seen it. `--full --verify` repairs rows edited by
    /// hand in the Oktell tables or restored from a backup, which a plain `--full` does not see
    #[arg(long, help_heading = "This run")]
    pub verify: bool,
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
