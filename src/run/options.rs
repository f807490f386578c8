//! How a run is asked to go: its options, its progress reporting, and the state keys it
//! keeps between runs.

use std::time::Duration;

use crate::extract::paging::{Paging, PagingOptions, DEFAULT_MAX_CHAINS};
use crate::schema::{Entity, ENTITIES, LEAD};
use crate::transform::phone::DefaultRegion;
use crate::transform::TimePolicy;

/// `b24sync_state` keys.
pub mod state_keys {
    use crate::schema::{Entity, LEAD};

    /// Bitrix24's clock at the start of the last completed run (`2024-05-01T12:00:00+03:00`):
    /// the lead's watermark.
    pub const WATERMARK: &str = "watermark.date_modify";

    /// An entity's watermark: [`WATERMARK`] for the lead, `watermark.contact.date_modify`
    /// for contacts, ... Each entity has its own, so an entity read for the first time (just
    /// added to `--entities`, or readable again after its access was granted) gets a full read.
    pub fn watermark(entity: Entity) -> String {
        if entity == LEAD {
            WATERMARK.to_string()
        } else {
            format!("watermark.{}.date_modify", entity.name)
        }
    }
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
    /// The most keyset chains the export runs at once (`extract::paging::PagingOptions`).
    pub max_chains: usize,
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
    /// the client's portal on purpose (and reads every lead: see `run::binding`).
    pub rebind_portal: bool,
    /// `--verify`: ignore the stored fingerprints (`b24sync_lead_fingerprints`). Every lead
    /// read is staged and compared with the tables, and its fingerprint written again; with
    /// `--full` this repairs rows edited by hand or restored from a backup. Without it a full
    /// read skips the leads whose fingerprint did not change (`prepare::skip_unchanged`).
    pub verify: bool,
    /// The CRM entities a run syncs, in this order (`--entities`; default every entity b24sync
    /// knows: leads, contacts, companies). An entity the portal refuses (no rights, no scope)
    /// is skipped with a warning.
    pub entities: Vec<Entity>,
}

impl SyncOptions {
    /// The fields a read of `entity` selects: its columns and multi-fields, and for the
    /// lead the solution field (the only user field b24sync stores).
    pub fn select_fields(&self, entity: Entity) -> Vec<String> {
        let user_fields: Vec<String> = match entity {
            e if e == LEAD => self.solution_field.iter().cloned().collect(),
            _ => Vec::new(),
        };
        crate::extract::paging::select_fields(entity, &user_fields)
    }

    /// How the export pages: the strategy and the most chains at once.
    pub fn paging_options(&self) -> PagingOptions {
        PagingOptions {
            paging: self.paging,
            max_chains: self.max_chains,
        }
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            paging: Paging::Batch,
            max_chains: DEFAULT_MAX_CHAINS,
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
            verify: false,
            entities: ENTITIES.to_vec(),
        }
    }
}
