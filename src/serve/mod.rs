//! `b24sync serve`: the event-driven service, a driver beside `run` (the commands `sync`,
//! `run --every`). Four tasks share one [`Service`]:
//!
//! - `http`: the endpoint Bitrix24 posts outbound events to (`POST /`, form-encoded), which
//!   checks the sender and answers 200 only once the record is queued durably in
//!   `b24sync_event_queue` (`store::EventQueue`); and `GET /health`, `GET /metrics`;
//! - `worker`: drains the queue in micro-batches (each record once however many events
//!   named it), re-reads them in one `batch` request per 2,500, loads them through the same
//!   transform → prepare → load as `sync` and deletes what the portal no longer has
//!   (`run::apply_changes`); a record that fails stays queued and, after
//!   `max_attempts`, gets a row in the error table;
//! - `reconcile`: the normal incremental `run::sync` every `reconcile_every` (outbound
//!   events are not re-sent when the handler was down), under the run lock;
//! - `offline` (OAuth apps): polls `event.offline.get` with `clear=0`, queues durably, then
//!   `event.offline.clear` (so a crash between reading and queueing loses nothing);
//!   and, opt-in, the OAuth token keep-alive.
//!
//! Everything is keyed by an entity type ([`ENTITIES`]: lead, contact, company); the worker
//! re-reads each entity's records with its own list method.

mod http;
pub mod inbound;
mod metrics;
mod offline;
mod worker;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::extract::client::Bitrix24Client;
use crate::load::Stores;
use crate::run::{self, RunError, RunStores, SyncOptions};
use crate::store::StoreError;
use crate::transform::TransformContext;

pub use metrics::{Metrics, LAG_BUCKETS};

/// The entity types the service keeps (their events are queued, the others ignored): the
/// names of every entity b24sync syncs (`schema::ENTITIES`).
pub static ENTITIES: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| crate::schema::ENTITIES.iter().map(|e| e.name).collect());

/// Biggest event body accepted (a real one is well under 2 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where the endpoint listens (`--listen`, 127.0.0.1:8723 by default).
    pub listen: SocketAddr,
    /// `auth[application_token]` every post must carry (never logged).
    pub application_token: String,
    /// The incremental sync's interval (`--reconcile-every`).
    pub reconcile_every: Duration,
    /// `event.offline.get` every this long (`--offline-poll`; OAuth apps only).
    pub offline_poll: Option<Duration>,
    /// Records re-read per micro-batch (at most 2,500: one `batch` request).
    pub batch_ids: u32,
    /// Failed attempts before a record gets a row in the error table instead.
    pub max_attempts: u32,
    /// How long the worker waits between looks at an empty queue (a post wakes it at once).
    pub idle_poll: Duration,
    /// A micro-batch is read once its oldest event is this old, so the events of a burst
    /// share one request (the most it adds to an event's latency).
    pub batch_window: Duration,
    /// Renew the OAuth tokens shortly before they expire (`--keep-token-fresh`).
    pub keep_token_fresh: bool,
    /// Bodies above this are refused with 413.
    pub max_body: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8723)),
            application_token: String::new(),
            reconcile_every: Duration::from_secs(300),
            offline_poll: None,
            batch_ids: 2_500,
            max_attempts: 10,
            idle_poll: Duration::from_millis(500),
            batch_window: Duration::from_millis(200),
            keep_token_fresh: false,
            max_body: MAX_BODY_BYTES,
        }
    }
}

/// Why the service stopped (or could not start).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {reason} (choose another address with --listen)")]
    Listen { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The first reconcile failed in a way waiting cannot heal (settings, credentials, the
    /// portal binding).
    #[error(transparent)]
    Run(#[from] RunError),
}

/// What `/health` reports besides the queue.
#[derive(Debug, Default, Clone)]
pub(crate) struct HealthState {
    /// When the last reconcile finished (local time, as the run history) and whether it
    /// succeeded.
    pub last_sync: Option<String>,
    pub last_sync_ok: bool,
    pub last_error: Option<String>,
}

/// What the tasks share.
pub(crate) struct Service {
    pub client: Bitrix24Client,
    pub stores: Stores,
    pub run_stores: RunStores,
    pub sync: SyncOptions,
    pub opts: ServeOptions,
    /// The portal's host, as events must name it in `auth[domain]`.
    pub portal: String,
    pub metrics: Metrics,
    /// Wakes the worker when an event was queued.
    pub wake: Notify,
    /// The worker's micro-batches and the reconcile take turns (the run lock is shared by
    /// one process's holders, so it does not order them).
    pub turn: tokio::sync::Mutex<()>,
    pub health: Mutex<HealthState>,
    /// The transform context of event re-reads; None: ask again (after a reconcile).
    pub ctx: tokio::sync::Mutex<Option<TransformContext>>,
    pub cancel: CancellationToken,
}

impl Service {
    pub fn health(&self) -> HealthState {
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_health(&self, f: impl FnOnce(&mut HealthState)) {
        f(&mut self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// UTC milliseconds since 1970 (the queue's clock).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Run the service until `cancel`. `ready` gets the address actually listened on (useful
/// with port 0).
pub async fn serve(
    client: Bitrix24Client,
    stores: Stores,
    sync: SyncOptions,
    opts: ServeOptions,
    cancel: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ServeError> {
    if opts.application_token.trim().is_empty() {
        return Err(ServeError::Config(
            "serve needs the application token Bitrix24 signs its events with: pass \
             --application-token or set B24SYNC_APPLICATION_TOKEN (an outgoing webhook shows it \
             in the portal's UI; an app gets it with ONAPPINSTALL)"
                .into(),
        ));
    }
    if sync.dry_run {
        return Err(ServeError::Config("serve cannot run with --dry-run".into()));
    }
    let report = stores.schema.init_schema().await?;
    for created in &report.created {
        tracing::info!("applied {created}");
    }
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| ServeError::Listen {
            addr: opts.listen,
            reason: e.to_string(),
        })?;
    let local = listener.local_addr().map_err(|e| ServeError::Listen {
        addr: opts.listen,
        reason: e.to_string(),
    })?;
    let portal = client.portal();
    let service = Arc::new(Service {
        run_stores: RunStores::from(&stores),
        client,
        stores,
        sync,
        opts,
        portal,
        metrics: Metrics::default(),
        wake: Notify::new(),
        turn: tokio::sync::Mutex::new(()),
        health: Mutex::default(),
        ctx: tokio::sync::Mutex::new(None),
        cancel: cancel.clone(),
    });
    tracing::info!(
        listen = %local,
        portal = %service.portal,
        db = %service.stores.target,
        reconcile_every_s = service.opts.reconcile_every.as_secs(),
        "serving Bitrix24 events (POST /), /health and /metrics"
    );
    if let Some(tx) = ready {
        let _ = tx.send(local);
    }
    let server = tokio::spawn(http::run(listener, service.clone()));
    // The first reconcile runs before the worker starts: it binds the database to the
    // portal (or refuses another portal's) and creates what is missing. Events queue
    // meanwhile.
    // It also checks for deletions: those made while the service was down sent events to
    // no one.
    let first = reconcile_with(&service, &startup_options(&service.sync)).await;
    if let Err(e) = first {
        if stops_the_service(&e) {
            cancel.cancel();
            let _ = server.await;
            return Err(e.into());
        }
    }
    let tasks = vec![
        tokio::spawn(worker::run(service.clone())),
        tokio::spawn(reconcile_loop(service.clone())),
        tokio::spawn(offline::run(service.clone())),
        tokio::spawn(offline::keep_token_fresh(service.clone())),
    ];
    cancel.cancelled().await;
    tracing::info!("stopping: finishing the batch in flight");
    for t in tasks {
        let _ = t.await;
    }
    let _ = server.await;
    Ok(())
}

/// A first reconcile failure that no later attempt can get past: settings, refused
/// credentials, an OAuth app to authorize again, a database bound to another portal. The
/// others (the portal or the database down, the lock busy, the deletion guard) are
/// reported by `/health` and tried again.
fn stops_the_service(e: &RunError) -> bool {
    use crate::run::Status;
    matches!(
        e.status(),
        Status::Config | Status::BitrixRefused | Status::Reauthorize
    )
}

/// The first reconcile's options: a deletion check whatever the schedule.
fn startup_options(sync: &SyncOptions) -> SyncOptions {
    let mut opts = sync.clone();
    opts.deletion.every_runs = 1;
    opts
}

async fn reconcile_loop(service: Arc<Service>) {
    loop {
        tokio::select! {
            _ = service.cancel.cancelled() => return,
            _ = tokio::time::sleep(service.opts.reconcile_every) => {}
        }
        let _ = reconcile_once(&service).await;
    }
}

/// One incremental sync, taking turns with the worker; its outcome goes to `/health` and
/// `/metrics`.
async fn reconcile_once(service: &Service) -> Result<(), RunError> {
    reconcile_with(service, &service.sync).await
}

async fn reconcile_with(service: &Service, opts: &SyncOptions) -> Result<(), RunError> {
    let _turn = service.turn.lock().await;
    let result = run::sync(
        &service.client,
        &service.run_stores,
        opts,
        service.cancel.child_token(),
    )
    .await;
    let finished = run::local_now().format("%Y-%m-%d %H:%M:%S").to_string();
    // The solution field's labels may have changed: the worker asks again.
    *service.ctx.lock().await = None;
    match result {
        Ok(summary) => {
            let status = summary.status();
            service.metrics.run(&format!("{status:?}"));
            service.metrics.error_rows.store(
                summary.error_rows_held,
                std::sync::atomic::Ordering::Relaxed,
            );
            tracing::info!(
                leads_read = summary.leads_read,
                loaded = summary.leads_loaded,
                deleted = summary.leads_deleted,
                "reconcile finished"
            );
            service.set_health(|h| {
                h.last_sync = Some(finished);
                h.last_sync_ok = true;
                h.last_error = None;
            });
            Ok(())
        }
        Err(e) => {
            service.metrics.run(&format!("{:?}", e.status()));
            tracing::warn!("reconcile failed: {e}");
            service.set_health(|h| {
                h.last_sync = Some(finished);
                h.last_sync_ok = false;
                h.last_error = Some(e.to_string());
            });
            Err(e)
        }
    }
}
