//! One sync run — the only place that knows the order of things:
//!
//! lock → schema → decide the mode (full, or incremental from the watermark) →
//! extract ⇢ transform ⇢ load (three tokio tasks joined by bounded channels, so a slow
//! database slows the reader instead of filling memory) → deletion check when due →
//! watermark → stamp `bitrix_lead_runtime` → unlock.
//!
//! The watermark is Bitrix24's own clock (`server.time`, asked in the first request of
//! the run), never this machine's or the database server's: the next incremental run
//! reads every lead with `DATE_MODIFY >=` that instant minus an overlap, so a lead
//! changed while this run was reading is read again next time (loads are idempotent).
//!
//! Cancellation (Ctrl-C): the reader stops at once, the transform hands over what it has,
//! the loader commits that last batch, and the run reports itself as interrupted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDateTime};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::extract::client::{Auth, Bitrix24Client, ExtractError, SubResult};
use crate::extract::idset::IdSet;
use crate::extract::paging::{self, ExportFilter, ExportStats, Extent, Paging};
use crate::extract::query;
use crate::load::Stores;
use crate::lookup::{self, OperatorsError};
use crate::model::{parse_lead_id, Batch, Cell, LeadId};
use crate::prepare::prepare;
use crate::store::{BatchOutcome, RunRecord, StoreError};
use crate::transform::phone::DefaultRegion;
use crate::transform::{self, TimePolicy, TransformContext};

/// `b24sync_state` keys.
pub mod state_keys {
    /// Bitrix24's clock at the start of the last completed run (`2024-05-01T12:00:00+03:00`).
    pub const WATERMARK: &str = "watermark.date_modify";
    /// Unix seconds (this machine) of the last deletion check.
    pub const DELETION_CHECK_AT: &str = "deletion_check.last_unix";
    /// Incremental runs since the last deletion check.
    pub const RUNS_SINCE_DELETION_CHECK: &str = "deletion_check.runs_since";
    /// Leads read by the last full run (what the next full run's progress bar expects).
    pub const FULL_RUN_LEADS: &str = "full_sync.leads_read";
    /// The portal the database is synced from: its host (`acme.bitrix24.ru`, with the port
    /// when it has one), written by the first sync.
    pub const PORTAL_DOMAIN: &str = "portal.domain";
    /// The portal's `member_id`, where Bitrix24 gives it (OAuth mode); empty otherwise.
    pub const PORTAL_MEMBER_ID: &str = "portal.member_id";
}

/// Where a run reports its progress (the CLI draws a bar on a terminal). Calls come from
/// the loader, once per committed batch.
pub trait Progress: Send + Sync {
    /// The run starts reading; `expected` is the number of leads when it can be known.
    fn started(&self, mode: &str, expected: Option<u64>);
    /// `leads` leads have been loaded so far.
    fn advanced(&self, leads: u64);
    /// The run is over (successful or not).
    fn finished(&self);
}

/// A shareable [`Progress`] that fits in [`SyncOptions`].
#[derive(Clone)]
pub struct ProgressHandle(pub std::sync::Arc<dyn Progress>);

impl std::fmt::Debug for ProgressHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHandle")
    }
}

/// Which leads a run reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Incremental when a watermark exists (a run has completed), else full.
    #[default]
    Auto,
    /// Every lead.
    Full,
    /// Leads modified since this point (`2024-05-01`, `2024-05-01T12:00`, with or
    /// without an offset; without one, the portal's offset is used).
    Since(String),
}

/// When to look for leads deleted in Bitrix24.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletionPolicy {
    /// Check on every N-th incremental run (full runs always check).
    pub every_runs: u32,
    /// ... or when this long has passed since the last check.
    pub every: Duration,
    /// Refuse to delete more than this share of `bitrix_leads` in one check (a webhook
    /// that lost its CRM permission sees an empty portal).
    pub max_share: f64,
}

impl Default for DeletionPolicy {
    fn default() -> Self {
        DeletionPolicy {
            every_runs: 12,
            every: Duration::from_secs(3600),
            max_share: 0.2,
        }
    }
}

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub paging: Paging,
    pub time_policy: TimePolicy,
    /// The list-type user field copied into `bitrix_lead_solution`.
    pub solution_field: Option<String>,
    /// Leads per load transaction.
    pub batch_leads: usize,
    /// How long to wait for another run's lock.
    pub lock_wait: Duration,
    pub mode: SyncMode,
    /// How far before the watermark an incremental run starts reading.
    pub overlap: Duration,
    pub deletion: DeletionPolicy,
    /// Read and compare, change nothing: the loader previews each batch in a transaction
    /// that is rolled back, deletions are counted, not made, and no state is written.
    pub dry_run: bool,
    pub progress: Option<ProgressHandle>,
    /// How PHONE values written without a country code are read (`--phone-region`).
    pub phone_region: DefaultRegion,
    /// `--rebind-portal`: the database is bound to another portal, and this run moves it to
    /// the client's portal on purpose (and reads every lead: see [`check_portal`]).
    pub rebind_portal: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            paging: Paging::Batch,
            time_policy: TimePolicy::Portal,
            solution_field: None,
            batch_leads: 2500,
            lock_wait: Duration::from_secs(60),
            mode: SyncMode::Auto,
            overlap: Duration::from_secs(300),
            deletion: DeletionPolicy::default(),
            dry_run: false,
            progress: None,
            phone_region: DefaultRegion::default(),
            rebind_portal: false,
        }
    }
}

/// What a run did, for the summary line and the exit code.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// `full` or `incremental`.
    pub mode: String,
    /// For an incremental run: the `DATE_MODIFY` it read from.
    pub since: Option<String>,
    /// Leads Bitrix24 returned.
    pub leads_read: u64,
    pub pages: u64,
    /// Leads written to `bitrix_leads` (inserted, updated or unchanged).
    pub leads_loaded: u64,
    /// Contact values of the loaded leads.
    pub contact_values: u64,
    /// Leads that could not be loaded at all (their whole JSON is in the error table).
    pub leads_rejected: u64,
    pub outcome: BatchOutcome,
    /// Error rows of leads without a numeric ID that this full run cleared (it no longer
    /// read such a lead).
    pub stale_errors_cleared: u64,
    /// Whether this run looked for leads deleted in Bitrix24, and how many it removed.
    pub deletion_checked: bool,
    pub leads_deleted: u64,
    /// The first [`DELETED_SHOWN`] IDs of those leads, lowest first (a dry run lists
    /// what it would delete).
    pub deleted_sample: Vec<i64>,
    pub requests: u64,
    pub retries: u64,
    pub server_secs: f64,
    pub elapsed: Duration,
    /// Stopped by Ctrl-C after committing the batch in flight.
    pub interrupted: bool,
    /// The watermark the run started with (`None`: there was none). An interrupted run
    /// leaves it where it was, so the next run reads from there (or every lead again).
    pub watermark_before: Option<String>,
    /// Operators (`b24sync_operators`) refreshed from `user.get`.
    pub operators: u64,
    /// Things that did not stop the run but need a person (e.g. no `user` scope).
    pub warnings: Vec<String>,
    /// The first [`NEW_ERROR_ROWS_SHOWN`] rows this run added to `bitrix_import_lead_error`
    /// (lead ID as stored, reason): what a quiet scheduled run still reports.
    pub new_error_rows: Vec<(String, String)>,
    /// Rows in `bitrix_import_lead_error` when the run ended (this run's and older ones):
    /// while there are any, the run exits with 3.
    pub error_rows_held: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Load(#[from] StoreError),
    /// A setting does not fit the portal (e.g. the solution field does not exist).
    #[error("{0}")]
    Config(String),
    /// The deletion check would remove too much: nothing was deleted.
    #[error(
        "refusing to delete {would_delete} of {in_table} leads ({:.0}% > the {:.0}% allowed): Bitrix24 \
         listed far fewer leads than the database holds. Check that the webhook still has the CRM \
         permission and sees all leads; if the deletions are real, run once with --max-delete-share 1",
        *would_delete as f64 * 100.0 / (*in_table).max(1) as f64,
        max_share * 100.0
    )]
    DeletionGuard {
        would_delete: u64,
        in_table: u64,
        max_share: f64,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

/// How many deleted lead IDs [`RunSummary::deleted_sample`] keeps.
pub const DELETED_SHOWN: usize = 20;

/// How many of a run's new error rows [`RunSummary::new_error_rows`] lists (the count is
/// in `outcome.error_rows_new`).
pub const NEW_ERROR_ROWS_SHOWN: usize = 20;

/// One line with everything a scheduler's log should keep. A dry run wrote nothing: it
/// says what it *would* load and delete, and which leads it would delete.
pub fn summary_line(s: &RunSummary) -> String {
    let dry = s.mode.starts_with("dry-run");
    let (load, delete) = if dry {
        ("would load", "would delete")
    } else {
        ("loaded", "deleted")
    };
    let deleted_ids = if dry && !s.deleted_sample.is_empty() {
        format!(
            " (lead IDs {})",
            id_list(&s.deleted_sample, s.leads_deleted as usize)
        )
    } else {
        String::new()
    };
    format!(
        "{} {}: {} leads read, {} {load} ({} new, {} changed, {} unchanged), {} contact values, \
         {} rows in bitrix_import_lead_error, {} {delete}{deleted_ids}, {} requests ({} retried), {:.1} s server time, {:.1} s",
        s.mode,
        if s.interrupted { "sync interrupted" } else { "sync finished" },
        s.leads_read,
        s.leads_loaded,
        s.outcome.leads_inserted,
        s.outcome.leads_updated,
        s.outcome.leads_unchanged,
        s.contact_values,
        s.outcome.error_rows,
        s.leads_deleted,
        s.requests,
        s.retries,
        s.server_secs,
        s.elapsed.as_secs_f64(),
    )
}

/// What an interrupted run means for the next one, in words: every committed batch stays,
/// and the watermark did not move.
pub fn interrupted_note(s: &RunSummary) -> String {
    match &s.watermark_before {
        None => "interrupted: every batch read so far was committed, but this was the first full \
                 read: the next run reads every lead again from the first one (the leads loaded so \
                 far are found unchanged; nothing is lost)"
            .to_string(),
        Some(w) => format!(
            "interrupted: every batch read so far was committed; the watermark stays at {w}, so the \
             next run reads the leads changed since then again (nothing is skipped)"
        ),
    }
}

/// The wall-clock time b24sync stamps its own rows with (like `GETDATE()` did).
pub fn local_now() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}

/// Said once per run (and by `doctor`) when no solution field is configured.
pub const NO_SOLUTION_FIELD: &str =
    "no solution field is set (--solution-field / B24SYNC_SOLUTION_FIELD): \
     bitrix_lead_solution stays empty. Set it to the UF_CRM_... code of the leads' list field \
     (CRM → Settings → Custom fields → Leads, or the REST method crm.lead.userfield.list); \
     `b24sync doctor` lists the portal's list fields";

/// The prelude's sub-command names (the run's one-off questions, asked in one request).
const PRELUDE_TIME: &str = "server_time";
const PRELUDE_LABELS: &str = "solution_field";
/// Highest IDs of the leads this run reads (see `paging::Extent`).
const PRELUDE_EXTENT: &str = "extent";
/// Highest IDs of all leads, for the deletion check's ID listing (incremental runs only;
/// for a full run it is the same question as `extent`).
const PRELUDE_ALL_IDS: &str = "extent_all";

fn prelude(solution_field: Option<&str>) -> Vec<(String, String)> {
    let mut p = vec![(PRELUDE_TIME.to_string(), "server.time".to_string())];
    p.extend(solution_field.map(labels_command));
    p
}

/// The sub-command that reads the solution field's list.
fn labels_command(field: &str) -> (String, String) {
    let q = query::build(&json!({ "filter": { "FIELD_NAME": field } }));
    (
        PRELUDE_LABELS.to_string(),
        format!("crm.lead.userfield.list?{q}"),
    )
}

/// Read the display names of the solution field's list (one request).
pub async fn fetch_solution_labels(
    client: &Bitrix24Client,
    field: &str,
) -> Result<HashMap<String, String>, RunError> {
    let answers = client.batch(&[labels_command(field)]).await?;
    solution_labels(field, answers.get(PRELUDE_LABELS), client)
}

/// The display names of the solution field's list, from a `crm.lead.userfield.list` answer.
fn solution_labels(
    field: &str,
    answer: Option<&SubResult>,
    client: &Bitrix24Client,
) -> Result<HashMap<String, String>, RunError> {
    let entries = match answer {
        Some(SubResult::Ok {
            result: Value::Array(entries),
            ..
        }) => entries.clone(),
        Some(SubResult::Err { code, description }) => {
            client.sub_error("crm.lead.userfield.list", code, description)?;
            return Err(RunError::Extract(ExtractError::Protocol {
                portal: client.portal(),
                method: "crm.lead.userfield.list".into(),
                detail: format!("{code}: {description}"),
            }));
        }
        // Not a list: the portal said something this build cannot read, which is not
        // "the field does not exist".
        other => {
            return Err(RunError::Extract(ExtractError::Protocol {
                portal: client.portal(),
                method: "crm.lead.userfield.list".into(),
                detail: format!(
                    "{} instead of a list of user fields (looking for {field})",
                    describe_answer(other)
                ),
            }))
        }
    };
    let entry = entries
        .iter()
        .find(|e| e.get("FIELD_NAME").and_then(Value::as_str) == Some(field))
        .ok_or_else(|| {
            RunError::Config(format!(
                "the solution field {field} does not exist on the portal: set --solution-field (B24SYNC_SOLUTION_FIELD) \
                 to the UF_CRM_... code of the list field, as shown in CRM → Settings → Custom fields → Leads"
            ))
        })?;
    let kind = entry
        .get("USER_TYPE_ID")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind != "enumeration" {
        return Err(RunError::Config(format!(
            "the solution field {field} is of type {kind:?}, not a list (enumeration): choose a list field"
        )));
    }
    Ok(transform::solution_labels_from_userfield(entry))
}

/// Parse a Bitrix24 timestamp (`2024-05-01T12:00:00+03:00`).
fn parse_portal_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s.trim()).ok()
}

fn format_portal_time(t: &DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// `--since` as a Bitrix24 timestamp, in the portal's offset when none was given. Refused
/// when it lies after the portal's own now: such a run reads nothing and would only hide
/// the leads that are there.
async fn resolve_since(client: &Bitrix24Client, since: &str) -> Result<String, RunError> {
    let not_a_date = || {
        RunError::Config(format!(
            "--since {since:?} is not a date: use 2024-05-01, 2024-05-01T12:00 or 2024-05-01T12:00:00+03:00"
        ))
    };
    let given = parse_portal_time(since);
    let naive = match given {
        Some(_) => None,
        None => Some(
            NaiveDateTime::parse_from_str(since.trim(), "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| NaiveDateTime::parse_from_str(since.trim(), "%Y-%m-%dT%H:%M"))
                .or_else(|_| NaiveDateTime::parse_from_str(since.trim(), "%Y-%m-%d %H:%M:%S"))
                .or_else(|_| NaiveDateTime::parse_from_str(since.trim(), "%Y-%m-%d %H:%M"))
                .or_else(|_| {
                    chrono::NaiveDate::parse_from_str(since.trim(), "%Y-%m-%d")
                        .map(|d| d.and_time(chrono::NaiveTime::MIN))
                })
                .map_err(|_| not_a_date())?,
        ),
    };
    // The portal's now: for the offset when none was given, and to refuse the future.
    let answer = client.call("server.time", &json!({})).await?;
    let now = portal_time_of(client, &answer.result)?;
    let t = match (given, naive) {
        (Some(t), _) => t,
        (None, Some(naive)) => naive
            .and_local_timezone(*now.offset())
            .single()
            .ok_or_else(|| RunError::Config(format!("--since {since:?} is not a valid time")))?,
        (None, None) => return Err(not_a_date()),
    };
    if t > now {
        return Err(RunError::Config(format!(
            "--since {since:?} ({}) is later than the portal's now ({}): such a run would read no \
             lead. Give a point in the past, or run without --since (incremental from the last run)",
            format_portal_time(&t),
            format_portal_time(&now)
        )));
    }
    Ok(format_portal_time(&t))
}

/// A `server.time` answer as a time; anything else is a protocol error saying, in plain
/// words, what came back.
fn portal_time_of(
    client: &Bitrix24Client,
    result: &Value,
) -> Result<DateTime<FixedOffset>, RunError> {
    result.as_str().and_then(parse_portal_time).ok_or_else(|| {
        RunError::Extract(ExtractError::Protocol {
            portal: client.portal(),
            method: "server.time".into(),
            detail: format!(
                "answered {} instead of a date-time like 2024-05-01T12:00:00+03:00",
                describe_json(result)
            ),
        })
    })
}

/// The portal a client reads from, as a database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalIdentity {
    /// Host name, lower-case, with the port when the URL has one.
    pub domain: String,
    /// Bitrix24's `member_id` of the portal, when known (OAuth mode).
    pub member_id: Option<String>,
}

impl std::fmt::Display for PortalIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.member_id {
            Some(m) => write!(f, "{} (member_id {m})", self.domain),
            None => f.write_str(&self.domain),
        }
    }
}

impl PortalIdentity {
    /// Whether `other` is the same portal: by `member_id` when both have one (a portal can
    /// be renamed), else by the host.
    pub fn same_portal(&self, other: &PortalIdentity) -> bool {
        match (&self.member_id, &other.member_id) {
            (Some(a), Some(b)) => a == b,
            _ => self.domain.eq_ignore_ascii_case(&other.domain),
        }
    }

    /// A loopback host (`127.0.0.1:PORT`, `localhost`, `[::1]`): the simulator.
    pub fn is_loopback(&self) -> bool {
        let host = match self.domain.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => self.domain.as_str(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// The portal `client` reads from.
pub async fn client_portal(client: &Bitrix24Client) -> PortalIdentity {
    let member_id = match client.auth() {
        Auth::OAuth(session) => Some(session.member_id().await),
        Auth::Webhook(_) => None,
    };
    PortalIdentity {
        domain: client.portal().to_ascii_lowercase(),
        member_id: member_id.filter(|m| !m.trim().is_empty()),
    }
}

/// The portal the database is bound to (`None` before the first sync of this version).
pub async fn bound_portal(sink: &Stores) -> Result<Option<PortalIdentity>, RunError> {
    let domain = read_state_text(sink, state_keys::PORTAL_DOMAIN).await?;
    let member_id = read_state_text(sink, state_keys::PORTAL_MEMBER_ID).await?;
    Ok(domain.map(|domain| PortalIdentity { domain, member_id }))
}

/// A state value; an empty one counts as unset (that is how a value is reset).
async fn read_state_text(sink: &Stores, key: &str) -> Result<Option<String>, RunError> {
    Ok(sink
        .state
        .read_state(key)
        .await?
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty()))
}

async fn write_binding(sink: &Stores, portal: &PortalIdentity) -> Result<(), RunError> {
    sink.state
        .write_state(state_keys::PORTAL_DOMAIN, &portal.domain)
        .await?;
    sink.state
        .write_state(
            state_keys::PORTAL_MEMBER_ID,
            portal.member_id.as_deref().unwrap_or(""),
        )
        .await?;
    Ok(())
}

/// What [`check_portal`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// The database is this portal's (or new, or adopted): go on.
    Same,
    /// `--rebind-portal` moved it from another portal: this run must read every lead.
    Rebound,
}

/// A database belongs to one portal: refuse a run from another one before anything is read
/// or written. `bind` records the portal (first sync, adoption of a database synced by an
/// earlier version, `--rebind-portal`); `errors retry` only checks.
///
/// Re-binding resets the watermark: it is the other portal's clock, and an incremental run
/// from it would skip every lead of this portal modified before that instant.
async fn check_portal(
    client: &Bitrix24Client,
    sink: &Stores,
    opts: &SyncOptions,
    bind: bool,
) -> Result<Binding, RunError> {
    let current = client_portal(client).await;
    let write = bind && !opts.dry_run;
    match bound_portal(sink).await? {
        Some(bound) if bound.same_portal(&current) => {
            // Same portal, renamed or now with a member_id: keep the record current.
            if write && bound != current {
                tracing::info!(from = %bound, to = %current, "updating the database's portal binding");
                write_binding(sink, &current).await?;
            }
            Ok(Binding::Same)
        }
        Some(bound) if bind && opts.rebind_portal => {
            tracing::warn!(
                from = %bound,
                to = %current,
                "--rebind-portal: the database now follows {current}; this run reads every lead"
            );
            if write {
                sink.state.write_state(state_keys::WATERMARK, "").await?;
                write_binding(sink, &current).await?;
            }
            Ok(Binding::Rebound)
        }
        Some(bound) => Err(RunError::Config(format!(
            "the database {} holds the leads of the Bitrix24 portal {bound}, but this run reads \
             from {current}: refusing to mix two portals' leads (nothing was read or written). \
             Point --db at {current}'s database; or, if this database is to follow {current} from \
             now on, run `b24sync sync --rebind-portal` once (it reads every lead, and its deletion \
             check removes {}'s leads behind --max-delete-share)",
            sink.target,
            bound.domain
        ))),
        None => {
            if write {
                if !sink.deletions.lead_ids().await?.is_empty() {
                    tracing::info!(
                        portal = %current,
                        "the database holds leads but records no portal (synced by an earlier \
                         version): adopting it for {current}"
                    );
                }
                write_binding(sink, &current).await?;
            }
            Ok(Binding::Same)
        }
    }
}

/// Run one sync into `sink`.
pub async fn sync(
    client: &Bitrix24Client,
    sink: &Stores,
    opts: &SyncOptions,
    cancel: CancellationToken,
) -> Result<RunSummary, RunError> {
    let guard = sink.lock.lock_run(opts.lock_wait).await?;
    let mut history = None;
    let mut refused = None;
    let result = sync_locked(client, sink, opts, cancel, &mut history, &mut refused).await;
    if let Some(p) = &opts.progress {
        p.0.finished();
    }
    if let Some(record) = history {
        finish_history(sink, record, &result, refused.as_ref()).await;
    }
    if let Err(e) = guard.release().await {
        tracing::warn!("could not release the run lock: {e}");
    }
    result
}

/// Complete the run's history row. The history is for people: failing to write it is
/// logged, never the reason a sync fails.
async fn finish_history(
    sink: &Stores,
    mut record: RunRecord,
    result: &Result<RunSummary, RunError>,
    refused: Option<&RunSummary>,
) {
    record.finished_at = Some(local_now());
    let counts = |record: &mut RunRecord, s: &RunSummary| {
        record.leads_read = s.leads_read as i64;
        record.leads_upserted = (s.outcome.leads_inserted + s.outcome.leads_updated) as i64;
        record.leads_deleted = s.leads_deleted as i64;
        record.contact_values = s.contact_values as i64;
        record.error_rows = s.outcome.error_rows as i64;
        record.requests = s.requests as i64;
        record.server_seconds = s.server_secs;
        record.seconds = s.elapsed.as_secs_f64();
    };
    match result {
        Ok(s) => {
            let code = crate::exit::for_summary(s);
            record.status = match code {
                crate::exit::OK => "ok",
                crate::exit::INTERRUPTED => "interrupted",
                _ => "errors",
            }
            .to_string();
            record.exit_code = Some(code as i64);
            counts(&mut record, s);
        }
        // The deletion guard refused after the leads were loaded: the run did change
        // data, and its history row says how much.
        Err(e @ RunError::DeletionGuard { .. }) if refused.is_some() => {
            record.status = "refused".to_string();
            record.exit_code = Some(crate::exit::for_error(e) as i64);
            record.message = Some(crate::model::clip_reason(&e.to_string()));
            if let Some(s) = refused {
                counts(&mut record, s);
            }
        }
        Err(e) => {
            record.status = "failed".to_string();
            record.exit_code = Some(crate::exit::for_error(e) as i64);
            record.message = Some(crate::model::clip_reason(&e.to_string()));
            record.seconds = record
                .started_at
                .and_then(|s| {
                    record
                        .finished_at
                        .map(|f| (f - s).num_milliseconds() as f64 / 1000.0)
                })
                .unwrap_or(0.0);
        }
    }
    if let Err(e) = sink.history.run_finished(&record).await {
        tracing::warn!("could not complete the run history row: {e}");
    }
}

async fn sync_locked(
    client: &Bitrix24Client,
    sink: &Stores,
    opts: &SyncOptions,
    cancel: CancellationToken,
    history: &mut Option<RunRecord>,
    refused: &mut Option<RunSummary>,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    // A dry run changes nothing, not even the schema.
    let report = if opts.dry_run {
        Default::default()
    } else {
        sink.schema.init_schema().await?
    };
    for created in &report.created {
        tracing::info!("applied {created}");
    }
    for object in &report.objects {
        tracing::debug!("created {object}");
    }
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }

    if opts.rebind_portal && matches!(opts.mode, SyncMode::Since(_)) {
        return Err(RunError::Config(
            "--rebind-portal reads every lead of the new portal: leave out --since".into(),
        ));
    }
    let binding = check_portal(client, sink, opts, true).await?;
    let watermark = match binding {
        Binding::Rebound => None,
        Binding::Same => read_state_text(sink, state_keys::WATERMARK).await?,
    };
    let overlap = chrono::Duration::from_std(opts.overlap).unwrap_or_default();
    // Where an incremental run would start reading (the watermark minus the overlap).
    let incremental_from = match &watermark {
        None => None,
        Some(w) => Some(
            parse_portal_time(w).ok_or_else(|| {
                RunError::Config(format!(
                    "the stored watermark {w:?} is not a date-time; run `b24sync sync --full` once to reset it"
                ))
            })? - overlap,
        ),
    };
    let since = match (&opts.mode, incremental_from) {
        (SyncMode::Full, _) | (SyncMode::Auto, None) => None,
        (SyncMode::Since(s), _) => Some(resolve_since(client, s).await?),
        (SyncMode::Auto, Some(from)) => Some(format_portal_time(&from)),
    };
    // A `--since` run is not the complete read incremental runs start from: it never
    // creates the watermark, and moves it only when it read at least what an incremental
    // run would have (from no later than the watermark minus the overlap).
    let watermark_may_move = match (&opts.mode, &since, incremental_from) {
        (SyncMode::Since(_), Some(s), Some(from)) => {
            parse_portal_time(s).is_some_and(|s| s <= from)
        }
        (SyncMode::Since(_), _, _) => false,
        _ => true,
    };
    let mode = if since.is_some() {
        "incremental"
    } else {
        "full"
    };
    let mut summary = RunSummary {
        mode: if opts.dry_run {
            format!("dry-run {mode}")
        } else {
            mode.to_string()
        },
        since: since.clone(),
        watermark_before: watermark.clone(),
        ..RunSummary::default()
    };
    tracing::info!(mode = %summary.mode, since = since.as_deref().unwrap_or("-"), "reading leads");
    if !opts.dry_run {
        let mut record = RunRecord {
            started_at: Some(local_now()),
            mode: summary.mode.clone(),
            status: "running".into(),
            ..RunRecord::default()
        };
        match sink.history.run_started(&record).await {
            Ok(id) => {
                record.id = id;
                *history = Some(record);
            }
            Err(e) => tracing::warn!("could not write the run history row: {e}"),
        }
    }
    if let Some(p) = &opts.progress {
        let expected = match since {
            None => sink
                .state
                .read_state(state_keys::FULL_RUN_LEADS)
                .await?
                .and_then(|v| v.parse().ok()),
            Some(_) => None,
        };
        p.0.started(&summary.mode, expected);
    }

    let user_fields: Vec<String> = opts.solution_field.iter().cloned().collect();
    let filter = ExportFilter {
        modified_since: since.clone(),
        select: paging::select_fields(&user_fields),
    };
    let mut prelude = prelude(opts.solution_field.as_deref());
    prelude.push((PRELUDE_EXTENT.to_string(), paging::probe_command(&filter)));
    if since.is_some() {
        let all = ExportFilter {
            modified_since: None,
            select: vec![],
        };
        prelude.push((PRELUDE_ALL_IDS.to_string(), paging::probe_command(&all)));
    }
    let answers = client.batch(&prelude).await?;
    let portal_time = match answers.get(PRELUDE_TIME) {
        Some(SubResult::Ok {
            result: Value::String(t),
            ..
        }) if parse_portal_time(t).is_some() => Some(t.clone()),
        other => {
            tracing::warn!(
                "server.time gave no usable time ({}); the watermark will not move",
                describe_answer(other)
            );
            None
        }
    };
    let labels = match &opts.solution_field {
        Some(field) => solution_labels(field, answers.get(PRELUDE_LABELS), client)?,
        None => {
            tracing::warn!("{NO_SOLUTION_FIELD}");
            summary.warnings.push(NO_SOLUTION_FIELD.to_string());
            HashMap::new()
        }
    };
    let extent = paging::extent_of(answers.get(PRELUDE_EXTENT))
        .map_err(|detail| probe_error(client, detail))?;
    let all_ids = match since {
        Some(_) => paging::extent_of(answers.get(PRELUDE_ALL_IDS))
            .map_err(|detail| probe_error(client, detail))?,
        None => extent,
    };
    let ctx = TransformContext {
        time_policy: opts.time_policy.clone(),
        solution_field: opts.solution_field.clone(),
        solution_labels: labels,
        phone_region: opts.phone_region,
    };

    // Small channels: a few pages and one batch in flight keep memory flat whatever N is.
    let (page_tx, page_rx) = mpsc::channel::<Vec<Value>>(8);
    let (batch_tx, mut batch_rx) = mpsc::channel::<Batch>(1);
    let extractor = {
        let (client, paging) = (client.clone(), opts.paging);
        tokio::spawn(async move {
            paging::export(&client, paging, &filter, Some(extent), page_tx).await
        })
    };
    let transformer = tokio::spawn(transform_stage(
        page_rx,
        batch_tx,
        ctx,
        opts.batch_leads.max(1),
    ));

    let mut load_error = None;
    // The operators of the loaded leads, read with user.get once the leads are in.
    let mut assigned: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    // The leads that get an error row wait here until 50 of them (one crm.lead.get
    // request) or the end of the read, so their rows keep the whole lead at the cost of
    // about one request per run rather than one per batch (see `attach_full_leads`).
    let mut held = Batch::default();
    // The error rows of leads without a numeric ID that this run saw again (lead ID as
    // received, reason as stored): a complete full read clears the others.
    let mut unkeyed_seen: HashSet<(Option<String>, String)> = HashSet::new();
    loop {
        let (mut batch, last) = match batch_rx.recv().await {
            Some(batch) => (batch, false),
            None if held.is_empty() => break,
            None => (Batch::default(), true),
        };
        assigned.extend(batch.records.iter().filter_map(|r| {
            r.lead
                .get("ASSIGNED_BY_ID")
                .and_then(Cell::as_text)
                .map(|id| id.trim().to_string())
        }));
        summary.leads_loaded += batch.records.len() as u64;
        summary.leads_rejected += batch.rejected.len() as u64;
        unkeyed_seen.extend(
            batch
                .rejected
                .iter()
                .filter(|r| !has_numeric_id(r))
                .map(|r| (r.lead_id.clone(), crate::model::clip_reason(&r.reason))),
        );
        summary.contact_values += batch
            .records
            .iter()
            .map(|r| r.contacts.len() as u64)
            .sum::<u64>();
        if !opts.dry_run {
            // A lead read again supersedes the version waiting here.
            let fresh: HashSet<LeadId> = batch.records.iter().map(|r| r.lead.id).collect();
            held.records.retain(|r| !fresh.contains(&r.lead.id));
            let (with_errors, clean): (Vec<_>, Vec<_>) = std::mem::take(&mut batch.records)
                .into_iter()
                .partition(|r| !r.problems.is_empty());
            batch.records = clean;
            held.records.extend(with_errors);
            held.rejected.append(&mut batch.rejected);
            if last || held.len() >= paging::BATCH_SIZE {
                let mut ready = std::mem::take(&mut held);
                attach_full_leads(client, &mut ready).await;
                batch.records.append(&mut ready.records);
                batch.rejected.append(&mut ready.rejected);
            }
        }
        if batch.is_empty() {
            continue;
        }
        let loaded = if opts.dry_run {
            sink.batches
                .preview_batch(prepare(batch), local_now())
                .await
        } else {
            sink.batches.load_batch(prepare(batch), local_now()).await
        };
        match loaded {
            Ok(outcome) => {
                summary.outcome.add(&outcome);
                if let Some(p) = &opts.progress {
                    p.0.advanced(summary.leads_loaded + summary.leads_rejected);
                }
                tracing::debug!(
                    leads = summary.leads_loaded + summary.leads_rejected,
                    inserted = summary.outcome.leads_inserted,
                    updated = summary.outcome.leads_updated,
                    "batch committed"
                );
            }
            Err(e) => {
                // Stop the other stages: dropping the receiver makes their sends fail.
                load_error = Some(e);
                break;
            }
        }
        if last {
            break;
        }
    }
    drop(batch_rx);
    let transformed = transformer
        .await
        .map_err(|e| RunError::Internal(format!("transform task: {e}")))?;
    let exported = extractor
        .await
        .map_err(|e| RunError::Internal(format!("extract task: {e}")))?;
    if let Some(e) = load_error {
        return Err(e.into());
    }
    if transformed != summary.leads_loaded + summary.leads_rejected {
        return Err(RunError::Internal(format!(
            "{transformed} leads were transformed but {} reached the database",
            summary.leads_loaded + summary.leads_rejected
        )));
    }
    let mut read_ids = None;
    match exported {
        Ok(ExportStats { pages, leads, ids }) => {
            summary.pages = pages;
            summary.leads_read = leads;
            // A full read is an ID listing too (see `delete_missing`).
            read_ids = since.is_none().then_some(ids);
        }
        Err(ExtractError::Cancelled) => {
            summary.leads_read = transformed;
            summary.interrupted = true;
        }
        Err(e) => return Err(e.into()),
    }
    if cancel.is_cancelled() {
        summary.interrupted = true;
    }
    // Operators are refreshed by full runs and by runs that changed a lead (a reassigned
    // lead is a changed one); an idle incremental run asks Bitrix24 nothing more.
    let changed = summary.outcome.leads_inserted + summary.outcome.leads_updated;
    if !summary.interrupted && !opts.dry_run && (since.is_none() || changed > 0) {
        match lookup::refresh_operators(client, sink.operators.as_ref(), &assigned).await {
            Ok(o) => {
                summary.operators = o.found;
                summary.warnings.extend(o.warning);
            }
            Err(OperatorsError::Load(e)) => return Err(e.into()),
            Err(OperatorsError::Extract(ExtractError::Cancelled)) => summary.interrupted = true,
            // The leads are in; the operators' names can wait for the next sync.
            Err(OperatorsError::Extract(e)) => {
                let warning = format!("the operators (user.get) were not refreshed: {e}");
                tracing::warn!("{warning}");
                summary.warnings.push(warning);
            }
        }
    }

    if since.is_none() && !summary.interrupted && !opts.dry_run {
        summary.stale_errors_cleared = clear_unkeyed_errors(sink, &unkeyed_seen).await?;
    }

    let mut guard_error = None;
    if !summary.interrupted && deletion_check_due(sink, opts, since.is_none()).await? {
        match delete_missing(client, sink, opts, all_ids, read_ids).await {
            Ok((deleted, sample)) => {
                summary.deletion_checked = true;
                summary.leads_deleted = deleted;
                summary.deleted_sample = sample;
            }
            Err(RunError::Extract(ExtractError::Cancelled)) => summary.interrupted = true,
            // Refused: keep the data, still move the watermark (the read was complete),
            // and report the refusal; the next run checks again.
            Err(e @ RunError::DeletionGuard { .. }) => guard_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    if !opts.dry_run {
        // New rows have the highest Ids: the table's last `error_rows_new` rows.
        let rows = sink.errors.error_rows().await?;
        summary.error_rows_held = rows.len() as u64;
        let skip = rows
            .len()
            .saturating_sub(summary.outcome.error_rows_new as usize);
        summary.new_error_rows = rows
            .into_iter()
            .skip(skip)
            .take(NEW_ERROR_ROWS_SHOWN)
            .map(|r| {
                (
                    r.lead_id.unwrap_or_else(|| "-".into()),
                    r.reason.unwrap_or_default(),
                )
            })
            .collect();
    }
    if !summary.interrupted && !opts.dry_run {
        // The watermark moves only after a complete read, so nothing is ever skipped.
        if since.is_none() {
            sink.state
                .write_state(state_keys::FULL_RUN_LEADS, &summary.leads_read.to_string())
                .await?;
        }
        match &portal_time {
            Some(t) if watermark_may_move => {
                sink.state.write_state(state_keys::WATERMARK, t).await?
            }
            Some(_) => tracing::info!(
                "--since read less than an incremental run would: the watermark stays where it was"
            ),
            None => {}
        }
        let runs_since = if summary.deletion_checked {
            0
        } else {
            read_u64(sink, state_keys::RUNS_SINCE_DELETION_CHECK).await? + 1
        };
        sink.state
            .write_state(
                state_keys::RUNS_SINCE_DELETION_CHECK,
                &runs_since.to_string(),
            )
            .await?;
        if summary.deletion_checked {
            sink.state
                .write_state(state_keys::DELETION_CHECK_AT, &unix_now_secs().to_string())
                .await?;
        }
        sink.history.stamp_runtime(local_now()).await?;
    }
    let stats = client.stats();
    summary.requests = stats.requests;
    summary.retries = stats.retries;
    summary.server_secs = stats.server_secs;
    summary.elapsed = started.elapsed();
    if let Some(e) = guard_error {
        *refused = Some(summary);
        return Err(e);
    }
    Ok(summary)
}

fn unix_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn read_u64(sink: &Stores, key: &str) -> Result<u64, RunError> {
    Ok(sink
        .state
        .read_state(key)
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Full runs always check; incremental runs every N-th run or every T.
async fn deletion_check_due(
    sink: &Stores,
    opts: &SyncOptions,
    full: bool,
) -> Result<bool, RunError> {
    if full {
        return Ok(true);
    }
    let runs_since = read_u64(sink, state_keys::RUNS_SINCE_DELETION_CHECK).await?;
    let last = read_u64(sink, state_keys::DELETION_CHECK_AT).await?;
    let due_by_count =
        opts.deletion.every_runs > 0 && runs_since + 1 >= opts.deletion.every_runs as u64;
    let due_by_time = unix_now_secs().saturating_sub(last) >= opts.deletion.every.as_secs();
    Ok(due_by_count || due_by_time)
}

/// Compare the portal's lead IDs with the table's and delete what Bitrix24 no longer has.
async fn delete_missing(
    client: &Bitrix24Client,
    sink: &Stores,
    opts: &SyncOptions,
    extent: Extent,
    read_ids: Option<IdSet>,
) -> Result<(u64, Vec<i64>), RunError> {
    // A full run has just read every lead that existed when it started: those IDs are the
    // listing. (A lead deleted after it was read stays until the next check.)
    let listed = match read_ids {
        Some(ids) => ids,
        None => paging::list_ids(client, opts.paging, Some(extent)).await?,
    };
    let on_portal = listed;
    let in_table = sink.deletions.lead_ids().await?;
    let table_size = in_table.len() as u64;
    let missing: Vec<LeadId> = in_table
        .into_iter()
        .filter(|id| !on_portal.contains(i64::from(*id)))
        .collect();
    delete_behind_guard(sink, opts, missing, table_size).await
}

/// The one way leads are deleted (the deletion check of `sync`, and `errors retry` for
/// leads Bitrix24 no longer lists): refuse when `missing` is more than
/// `--max-delete-share` of the `table_size` leads in `bitrix_leads`, before anything is
/// deleted; a webhook that lost its CRM permission sees an empty portal, and that must
/// never empty the table.
async fn delete_behind_guard(
    sink: &Stores,
    opts: &SyncOptions,
    mut missing: Vec<LeadId>,
    table_size: u64,
) -> Result<(u64, Vec<i64>), RunError> {
    if missing.is_empty() {
        return Ok((0, Vec::new()));
    }
    missing.sort_unstable();
    let sample: Vec<i64> = missing
        .iter()
        .take(DELETED_SHOWN)
        .map(|id| i64::from(*id))
        .collect();
    let share = missing.len() as f64 / table_size.max(1) as f64;
    if share > opts.deletion.max_share {
        return Err(RunError::DeletionGuard {
            would_delete: missing.len() as u64,
            in_table: table_size,
            max_share: opts.deletion.max_share,
        });
    }
    if opts.dry_run {
        tracing::info!(
            leads = missing.len(),
            "dry run: these leads were deleted in Bitrix24 and would be deleted here: {}",
            id_list(&sample, missing.len())
        );
        return Ok((missing.len() as u64, sample));
    }
    tracing::info!(
        leads = missing.len(),
        "deleting leads that were deleted in Bitrix24: {}",
        id_list(&sample, missing.len())
    );
    Ok((sink.deletions.delete_leads(missing).await?, sample))
}

/// `3, 17, 42` or `3, 17, ... and 480 more`: the first IDs of `total`.
pub fn id_list(sample: &[i64], total: usize) -> String {
    let shown: Vec<String> = sample.iter().map(i64::to_string).collect();
    match total.saturating_sub(sample.len()) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

fn has_numeric_id(r: &crate::model::RejectedLead) -> bool {
    r.lead_id.as_deref().and_then(parse_lead_id).is_some()
}

/// Error rows whose lead ID is not a number can never be read again (`errors retry` skips
/// them), so they would stay forever. A complete full read is the proof: a row whose lead
/// it did not return again goes. Rows without a lead ID are matched by their reason.
async fn clear_unkeyed_errors(
    sink: &Stores,
    seen: &HashSet<(Option<String>, String)>,
) -> Result<u64, RunError> {
    let seen_reasons_without_id: HashSet<&str> = seen
        .iter()
        .filter(|(id, _)| id.is_none())
        .map(|(_, reason)| reason.as_str())
        .collect();
    let stale: Vec<i64> = sink
        .errors
        .error_rows()
        .await?
        .into_iter()
        .filter(|r| r.numeric_lead_id().is_none())
        .filter(|r| {
            let reason = r.reason.clone().unwrap_or_default();
            match &r.lead_id {
                None => !seen_reasons_without_id.contains(reason.as_str()),
                Some(_) => !seen.contains(&(r.lead_id.clone(), reason)),
            }
        })
        .map(|r| r.row_id)
        .collect();
    if stale.is_empty() {
        return Ok(0);
    }
    let cleared = sink.errors.delete_error_rows(stale).await?;
    tracing::info!(
        rows = cleared,
        "cleared error rows of leads without a numeric ID that the full read no longer returned"
    );
    Ok(cleared)
}

/// `bitrix_import_lead_error.sql_full_lead_info` keeps the whole lead as Bitrix24 has it
/// (every field, UF fields, multi-fields), as the Oktell scripts' `crm.lead.get` did; the
/// export selects only the columns it stores. So the few leads of a batch that get an
/// error row are read again whole, 50 per request. If that read fails, the row keeps the
/// exported fields and its reason says so: the run never fails for it.
async fn attach_full_leads(client: &Bitrix24Client, batch: &mut Batch) {
    let mut ids: Vec<i64> = batch
        .records
        .iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| i64::from(r.lead.id))
        .collect();
    ids.extend(
        batch
            .rejected
            .iter()
            .filter_map(|r| r.lead_id.as_deref().and_then(parse_lead_id))
            .map(i64::from),
    );
    if ids.is_empty() {
        return;
    }
    ids.sort_unstable();
    ids.dedup();
    let (full, failure) = match crate::extract::portal::fetch_full_leads(client, &ids).await {
        Ok(full) => (full, None),
        Err(e) => {
            tracing::warn!(
                leads = ids.len(),
                "could not read the leads with error rows whole ({e}): their rows keep the exported fields"
            );
            (HashMap::new(), Some(e.to_string()))
        }
    };
    let missing_note = |id: i64| match &failure {
        Some(e) => format!("reading the whole lead failed ({e})"),
        None => format!("crm.lead.get no longer returns lead {id}"),
    };
    for record in batch.records.iter_mut().filter(|r| !r.problems.is_empty()) {
        let id = i64::from(record.lead.id);
        match full.get(&id) {
            Some(lead) => record.raw_json = lead.to_string(),
            None => record.problems.push(crate::model::Problem {
                field: "sql_full_lead_info".into(),
                kind: crate::model::ProblemKind::Incomplete,
                detail: format!("holds the exported fields only: {}", missing_note(id)),
            }),
        }
    }
    for rejected in &mut batch.rejected {
        let Some(id) = rejected.lead_id.as_deref().and_then(parse_lead_id) else {
            continue;
        };
        let id = i64::from(id);
        match full.get(&id) {
            Some(lead) => rejected.raw_json = lead.to_string(),
            None => {
                rejected.reason = format!(
                    "{}; sql_full_lead_info holds the lead as exported: {}",
                    rejected.reason,
                    missing_note(id)
                )
            }
        }
    }
}

/// Pages in; batches of about `batch_leads` leads out. Returns how many leads it handled.
async fn transform_stage(
    mut input: mpsc::Receiver<Vec<Value>>,
    batches: mpsc::Sender<Batch>,
    ctx: TransformContext,
    batch_leads: usize,
) -> u64 {
    let mut handled = 0u64;
    let mut pending = Pending::default();
    while let Some(page) = input.recv().await {
        let batch = transform::transform_page(&page, &ctx);
        handled += (batch.records.len() + batch.rejected.len()) as u64;
        pending.merge(batch);
        if pending.len() >= batch_leads && batches.send(pending.take()).await.is_err() {
            return handled;
        }
    }
    if pending.len() > 0 {
        let _ = batches.send(pending.take()).await;
    }
    handled
}

fn probe_error(client: &Bitrix24Client, detail: String) -> RunError {
    RunError::Extract(ExtractError::Protocol {
        portal: client.portal(),
        method: "crm.lead.list (highest IDs)".into(),
        detail,
    })
}

/// The batch being filled. A lead already pending is replaced rather than added, so a
/// batch never holds one `sql_ID` twice (the sinks' set-based upserts rely on it).
#[derive(Default)]
struct Pending {
    batch: Batch,
    index: HashMap<LeadId, usize>,
}

impl Pending {
    fn len(&self) -> usize {
        self.batch.records.len() + self.batch.rejected.len()
    }

    fn merge(&mut self, page: Batch) {
        for record in page.records {
            match self.index.get(&record.lead.id) {
                Some(&i) => self.batch.records[i] = record,
                None => {
                    self.index.insert(record.lead.id, self.batch.records.len());
                    self.batch.records.push(record);
                }
            }
        }
        self.batch.rejected.extend(page.rejected);
    }

    fn take(&mut self) -> Batch {
        self.index.clear();
        std::mem::take(&mut self.batch)
    }
}

/// What `b24sync errors retry` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetrySummary {
    /// Leads with error rows that were read again from Bitrix24.
    pub retried: u64,
    /// Of those, leads that now load cleanly (their error rows are gone).
    pub now_clean: u64,
    /// Leads that still have a problem (their rows are kept, not duplicated).
    pub still_failing: u64,
    /// Leads no longer in Bitrix24 (removed, with their error rows).
    pub gone: u64,
    /// Error rows whose lead ID is not a number, so they cannot be read again.
    pub not_retryable: u64,
}

/// Read the leads of `bitrix_import_lead_error` again and load them: rows of leads that
/// now load cleanly go, those still failing stay (once).
pub async fn retry_errors(
    client: &Bitrix24Client,
    sink: &Stores,
    opts: &SyncOptions,
) -> Result<RetrySummary, RunError> {
    let guard = sink.lock.lock_run(opts.lock_wait).await?;
    let result = retry_errors_locked(client, sink, opts).await;
    if let Err(e) = guard.release().await {
        tracing::warn!("could not release the run lock: {e}");
    }
    result
}

async fn retry_errors_locked(
    client: &Bitrix24Client,
    sink: &Stores,
    opts: &SyncOptions,
) -> Result<RetrySummary, RunError> {
    sink.schema.init_schema().await?;
    check_portal(client, sink, opts, false).await?;
    let rows = sink.errors.error_rows().await?;
    let mut summary = RetrySummary::default();
    let mut ids: Vec<LeadId> = Vec::new();
    let mut seen: HashSet<LeadId> = HashSet::new();
    for row in &rows {
        match row.numeric_lead_id() {
            Some(id) if seen.insert(id) => ids.push(id),
            Some(_) => {}
            None => summary.not_retryable += 1,
        }
    }
    if ids.is_empty() {
        return Ok(summary);
    }
    let user_fields: Vec<String> = opts.solution_field.iter().cloned().collect();
    let select = paging::select_fields(&user_fields);
    let prelude = prelude(opts.solution_field.as_deref());
    let answers = client.batch(&prelude).await?;
    let labels = match &opts.solution_field {
        Some(field) => solution_labels(field, answers.get(PRELUDE_LABELS), client)?,
        None => HashMap::new(),
    };
    let ctx = TransformContext {
        time_policy: opts.time_policy.clone(),
        solution_field: opts.solution_field.clone(),
        solution_labels: labels,
        phone_region: opts.phone_region,
    };

    // 50 IDs per sub-command (one page), 50 sub-commands per request.
    let mut found: BTreeMap<LeadId, Value> = BTreeMap::new();
    for chunk in ids.chunks(paging::PAGE_SIZE * paging::BATCH_SIZE) {
        let commands: Vec<(String, String)> = chunk
            .chunks(paging::PAGE_SIZE)
            .enumerate()
            .map(|(i, part)| {
                let params = json!({ "filter": { "@ID": part }, "select": select, "start": -1 });
                (
                    format!("ids{i}"),
                    format!("crm.lead.list?{}", query::build(&params)),
                )
            })
            .collect();
        for (_, answer) in client.batch(&commands).await? {
            for lead in listed_leads(client, answer)? {
                if let Some(id) = lead
                    .get("ID")
                    .and_then(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .or_else(|| v.as_i64().map(|n| n.to_string()))
                    })
                    .and_then(|s| s.trim().parse().ok())
                {
                    found.insert(id, lead);
                }
            }
        }
    }
    // A lead the `@ID` listing did not return is gone from Bitrix24 — or the webhook no
    // longer sees it: judged by the same guard as the deletion check, against the whole
    // table, before anything is loaded or deleted.
    let gone: Vec<LeadId> = ids
        .iter()
        .copied()
        .filter(|id| !found.contains_key(id))
        .collect();
    summary.gone = gone.len() as u64;
    let table_size = sink.deletions.lead_ids().await?.len() as u64;
    delete_behind_guard(sink, opts, gone, table_size).await?;
    summary.retried = found.len() as u64;
    let leads: Vec<Value> = found.values().cloned().collect();
    let batch = transform::transform_page(&leads, &ctx);
    let failing: HashSet<String> = batch
        .error_rows()
        .into_iter()
        .filter_map(|r| r.lead_id)
        .collect();
    summary.still_failing = failing.len() as u64;
    summary.now_clean = summary.retried - summary.still_failing;
    let mut batch = batch;
    attach_full_leads(client, &mut batch).await;
    sink.batches.load_batch(prepare(batch), local_now()).await?;
    Ok(summary)
}

/// The leads of one `crm.lead.list` sub-answer. Anything but a list is a protocol error:
/// an answer that cannot be read must never count as "these leads are gone".
fn listed_leads(client: &Bitrix24Client, answer: SubResult) -> Result<Vec<Value>, RunError> {
    match answer {
        SubResult::Ok {
            result: Value::Array(leads),
            ..
        } => Ok(leads),
        SubResult::Ok { result, .. } => Err(RunError::Extract(ExtractError::Protocol {
            portal: client.portal(),
            method: "crm.lead.list (in batch)".into(),
            detail: format!(
                "answered {} instead of a list of leads; nothing was changed",
                describe_json(&result)
            ),
        })),
        SubResult::Err { code, description } => {
            let reason = client.sub_error("crm.lead.list", &code, &description)?;
            Err(RunError::Extract(ExtractError::Unreachable {
                portal: client.portal(),
                method: "crm.lead.list (in batch)".into(),
                attempts: 1,
                secs: 0,
                last: reason,
            }))
        }
        SubResult::Missing => Err(RunError::Extract(ExtractError::Protocol {
            portal: client.portal(),
            method: "batch".into(),
            detail: "a sub-command's answer is missing".into(),
        })),
    }
}

/// A batch sub-answer in a few plain words, for messages.
fn describe_answer(answer: Option<&SubResult>) -> String {
    match answer {
        Some(SubResult::Ok { result, .. }) => format!("answered {}", describe_json(result)),
        Some(SubResult::Err { code, description }) => {
            format!("answered the error {code}: {description}")
        }
        Some(SubResult::Missing) | None => "gave no answer".to_string(),
    }
}

/// A JSON value in a few plain words, for messages: its kind and a short excerpt.
fn describe_json(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    let text = v.to_string();
    let excerpt: String = text.chars().take(120).collect();
    if excerpt.len() < text.len() {
        format!("{kind} ({excerpt}…)")
    } else {
        format!("{kind} ({excerpt})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::client::ClientConfig;
    use crate::extract::Webhook;

    fn client() -> Bitrix24Client {
        let webhook = Webhook::parse("https://acme.bitrix24.ru/rest/1/s3cr3t/").unwrap();
        Bitrix24Client::new(webhook, ClientConfig::default(), CancellationToken::new()).unwrap()
    }

    fn ok(result: Value) -> SubResult {
        SubResult::Ok {
            result,
            total: None,
            next: None,
        }
    }

    // 16.8: a malformed crm.lead.userfield.list answer is a protocol error naming the
    // method and what came back, not "the field does not exist".
    #[test]
    fn a_malformed_userfield_answer_is_not_a_missing_field() {
        let c = client();
        for answer in [
            Some(ok(json!({"FIELD_NAME": "UF_CRM_X"}))),
            Some(ok(json!("oops"))),
            None,
        ] {
            let err = solution_labels("UF_CRM_X", answer.as_ref(), &c).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, RunError::Extract(ExtractError::Protocol { .. })),
                "{msg}"
            );
            assert!(msg.contains("crm.lead.userfield.list"), "{msg}");
            assert!(!msg.contains("does not exist"), "{msg}");
        }
        let err = solution_labels("UF_CRM_X", Some(&ok(json!({"a": 1}))), &c).unwrap_err();
        assert!(err.to_string().contains("an object ({\"a\":1})"), "{err}");
        // A list without the field is the missing field.
        let err = solution_labels("UF_CRM_X", Some(&ok(json!([]))), &c).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    // 16.8: a bad server.time answer is said in plain words, never as Rust debug text.
    #[test]
    fn a_bad_server_time_answer_is_described_in_plain_words() {
        let c = client();
        let err = portal_time_of(&c, &json!("soon")).unwrap_err().to_string();
        assert!(
            err.contains("server.time") && err.contains("a text (\"soon\")"),
            "{err}"
        );
        assert!(!err.contains("String(") && !err.contains("Some("), "{err}");
        let said = describe_answer(Some(&ok(json!("soon"))));
        assert_eq!(said, "answered a text (\"soon\")");
        assert!(!said.contains("Ok {"));
        assert_eq!(describe_answer(None), "gave no answer");
        let long = describe_json(&json!("x".repeat(500)));
        assert!(long.ends_with("…)") && long.chars().count() < 150, "{long}");
    }

    // 16.12: what an interrupted run means for the next one, said as it is.
    #[test]
    fn the_interrupted_note_says_what_the_next_run_does() {
        let first = RunSummary {
            interrupted: true,
            ..Default::default()
        };
        let note = interrupted_note(&first);
        assert!(
            note.contains("reads every lead again from the first one"),
            "{note}"
        );
        assert!(!note.contains("continues"), "{note}");
        let later = RunSummary {
            interrupted: true,
            watermark_before: Some("2026-11-20T10:00:00+03:00".into()),
            ..Default::default()
        };
        let note = interrupted_note(&later);
        assert!(
            note.contains("stays at 2026-11-20T10:00:00+03:00"),
            "{note}"
        );
    }

    #[test]
    fn portals_compare_by_member_id_when_both_have_one_else_by_host() {
        let p = |d: &str, m: Option<&str>| PortalIdentity {
            domain: d.into(),
            member_id: m.map(str::to_string),
        };
        assert!(p("acme.bitrix24.ru", None).same_portal(&p("ACME.bitrix24.ru", None)));
        assert!(!p("acme.bitrix24.ru", None).same_portal(&p("beta.bitrix24.ru", None)));
        assert!(p("old.bitrix24.ru", Some("m1")).same_portal(&p("new.bitrix24.ru", Some("m1"))));
        assert!(!p("acme.bitrix24.ru", Some("m1")).same_portal(&p("acme.bitrix24.ru", Some("m2"))));
        assert!(p("127.0.0.1:4545", None).is_loopback());
        assert!(p("localhost", None).is_loopback());
        assert!(p("[::1]:80", None).is_loopback());
        assert!(!p("acme.bitrix24.ru", None).is_loopback());
    }
}
