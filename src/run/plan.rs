//! Planning a run before anything is read: which leads (full, incremental from the
//! watermark, or `--since`), whether the watermark may move afterwards, whether the
//! deletion check is due, and the solution field's labels.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use crate::extract::client::Bitrix24Client;
use crate::extract::portal::{self, format_portal_time, parse_portal_time};
use crate::schema::Entity;
use crate::store::StateStore;
use crate::transform;

use super::binding::{check_portal, read_state_text, Binding};
use super::{state_keys, RunError, RunStores, SyncMode, SyncOptions};

/// What a run reads of one entity, decided before it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub entity: Entity,
    /// For an incremental run: the `DATE_MODIFY` it reads from (`None`: a full run).
    pub since: Option<String>,
    /// The watermark the run starts with.
    pub watermark: Option<String>,
    /// Whether a complete read may move the watermark.
    pub watermark_may_move: bool,
}

impl Plan {
    /// `full`, `incremental`, `dry-run full`, ...
    pub fn mode(&self, dry_run: bool) -> String {
        let mode = if self.since.is_some() {
            "incremental"
        } else {
            "full"
        };
        if dry_run {
            format!("dry-run {mode}")
        } else {
            mode.to_string()
        }
    }
}

/// Check the portal binding, then decide what to read of each entity (in `opts.entities`'
/// order): each from its own watermark.
pub(super) async fn plan(
    client: &Bitrix24Client,
    stores: &RunStores,
    opts: &SyncOptions,
) -> Result<Vec<Plan>, RunError> {
    if opts.rebind_portal && matches!(opts.mode, SyncMode::Since(_)) {
        return Err(RunError::Config(
            "--rebind-portal reads every lead of the new portal: leave out --since".into(),
        ));
    }
    if opts.entities.is_empty() {
        return Err(RunError::Config(
            "no entity to sync: give --entities one or more of lead, contact, company".into(),
        ));
    }
    let binding = check_portal(client, stores, opts, true).await?;
    // Resolved once: `--since` asks the portal's clock.
    let since_given = match &opts.mode {
        SyncMode::Since(s) => Some(resolve_since(client, s).await?),
        _ => None,
    };
    let mut plans = Vec::with_capacity(opts.entities.len());
    for entity in &opts.entities {
        let key = state_keys::watermark(*entity);
        let watermark = match binding {
            Binding::Rebound => None,
            Binding::Same => read_state_text(stores.state.as_ref(), &key).await?,
        };
        plans.push(plan_entity(*entity, opts, watermark, since_given.clone())?);
    }
    Ok(plans)
}

/// One entity's plan, from its watermark (and `--since`, resolved).
fn plan_entity(
    entity: Entity,
    opts: &SyncOptions,
    watermark: Option<String>,
    since_given: Option<String>,
) -> Result<Plan, RunError> {
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
        (SyncMode::Since(_), _) => since_given,
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
    Ok(Plan {
        entity,
        since,
        watermark,
        watermark_may_move,
    })
}

/// Read the display names of the solution field's list (one request).
pub async fn fetch_solution_labels(
    client: &Bitrix24Client,
    field: &str,
) -> Result<HashMap<String, String>, RunError> {
    let entry = portal::solution_field(client, field).await?;
    Ok(transform::solution_labels_from_userfield(&entry))
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
    let now = portal::server_time(client).await?;
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

pub(super) fn unix_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(super) async fn read_u64(state: &dyn StateStore, key: &str) -> Result<u64, RunError> {
    Ok(state
        .read_state(key)
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Full runs always check; incremental runs every N-th run or every T.
pub(super) async fn deletion_check_due(
    state: &dyn StateStore,
    opts: &SyncOptions,
    full: bool,
) -> Result<bool, RunError> {
    if full {
        return Ok(true);
    }
    let runs_since = read_u64(state, state_keys::RUNS_SINCE_DELETION_CHECK).await?;
    let last = read_u64(state, state_keys::DELETION_CHECK_AT).await?;
    let due_by_count =
        opts.deletion.every_runs > 0 && runs_since + 1 >= opts.deletion.every_runs as u64;
    let due_by_time = unix_now_secs().saturating_sub(last) >= opts.deletion.every.as_secs();
    Ok(due_by_count || due_by_time)
}
