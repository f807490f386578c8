//! A Bitrix24 portal stand-in: an HTTP server on loopback that speaks the REST wire
//! format as Bitrix24 documents it, with seeded leads, the portal's limits and
//! injectable faults. Used by `b24sync demo`, `b24sync simulator`, the tests and the
//! benchmarks. Where the docs are unsure, the simulator is the strict side.
//!
//! It is its own crate (see README.md next to Cargo.toml) so that the b24sync library does
//! not carry it; it does not depend on that library either. To run it on its own:
//! `cargo run --release -- simulator` at the top of the repository (the `b24sync
//! simulator` command) prints a webhook URL and serves until Ctrl-C.
//!
//! # The model
//!
//! ```text
//!  reqwest ──HTTP──► server.rs ─► faults.rs   (queued failures, first match wins)
//!                        │      ─► limits.rs   (leaky bucket, per-method operating time)
//!                        ▼
//!                    methods.rs  (crm.{lead,contact,company}.list/get/fields/userfield.list
//!                        │        over one Entity (entity.rs), user.get, server.time;
//!                        │        `batch` is in server/batch.rs)
//!                        ▼
//!                    data.rs     Portal: a BTreeMap<i64, record> per entity behind a Mutex + clock
//!                        │
//!                    gen.rs      seeded leads, contacts and companies, rendered on demand
//! ```
//!
//! - [`Simulator::start`] binds `127.0.0.1:config.port` (0 = any free port) and serves
//!   until [`Simulator::shutdown`] or drop.
//! - Webhook URL: `{base}/rest/{user}/{secret}/` + method, `.json` suffix optional.
//!   A wrong user/secret answers 401 `NO_AUTH_FOUND` "Wrong authorization data".
//!   OAuth (`/rest/{method}` + `auth`) checks tokens issued by `/oauth/authorize/` and
//!   `/oauth/token/` for apps added with [`Simulator::register_oauth_app`] (see `oauth.rs`).
//! - Parameters: query string, then a JSON or form body on top; query and form go through
//!   a faithful PHP `parse_str` ([`query::parse_str`]), which reproduces the real traps
//!   (raw `=` in `>=`, raw `+` in offsets).
//! - [`Portal`] is the test's handle on the data: read leads, contacts and companies as
//!   the API returns them, mutate them (DATE_MODIFY follows), move the clock.
//! - Contacts and companies (`SimulatorConfig::contacts` / `companies`, default 0) are
//!   served with the lead's paging, select, filters, costs and limits; their links to
//!   leads and each other are described in `gen/crm.rs`.
//! - Simulated server time ([`CostModel`]) feeds the operating limit and the `time`
//!   block; with `sleep_scale > 0` the server also really sleeps it.
//!   `sparse_time` leaves `operating` / `operating_reset_at` out, as some answers do.
//! - Events (`events.rs`, methods in `methods/events.rs`): every change through
//!   [`Portal`] posts `ONCRMLEADADD|UPDATE|DELETE` form-encoded to the handlers apps bound
//!   with `event.bind` and to the outgoing webhooks of [`EventsConfig`], once, in the
//!   background ([`Simulator::event_stats`] counts them), and queues offline events for
//!   `event.offline.get`. `event.*` answers OAuth apps only (webhooks: 403 `WRONG_AUTH_TYPE`).
//! - Faults: [`Fault`] for whole HTTP requests (errors, HTML pages, cut bodies, delays,
//!   a 302 for a renamed portal); [`PageFault`] for single `crm.lead.list` pages that
//!   come back empty or cut short in the middle of a listing.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use b24sync_simulator::{Fault, FaultKind, Simulator, SimulatorConfig};
//! let sim = Simulator::start(SimulatorConfig { leads: 500, rate_limit: None, ..Default::default() }).await?;
//! let url = format!("{}crm.lead.list", sim.webhook_url()); // POST JSON, GET or form
//! sim.inject(Fault { method: Some("crm.lead.list".into()), kind: FaultKind::Internal, times: 1 });
//! sim.portal().update_lead(7, |lead| {
//!     lead.insert("TITLE".into(), serde_json::json!("Изменён"));
//! });
//! # let _ = url;
//! println!("{:?}", sim.stats().by_method);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Generated data lives between 2023-11 and 2026-11-01 (fixed, so a seed always gives
//! the same portal); changes through [`Portal`] are stamped with the portal's real now.

mod changes;
#[cfg(test)]
mod crm_tests;
mod data;
mod entity;
mod events;
mod faults;
mod fields;
mod gen;
mod limits;
mod methods;
mod oauth;
pub mod query;
mod server;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use data::Portal;
pub use events::{EventStats, EventsConfig, OutgoingWebhook};
pub use faults::{Fault, FaultKind, PageFault, PageFaultKind};
pub use limits::{CostModel, OperatingLimit, RequestStats};
pub use oauth::OAuthApp;

use server::{lock, Shared};

/// The portal's request-rate limit (leaky bucket): each request adds 1, the counter drains
/// `per_second`; a request that would take it above `burst` is answered 503 `QUERY_LIMIT_EXCEEDED`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    /// Every plan but Enterprise: 2 requests/s, burst 50.
    pub const STANDARD: RateLimit = RateLimit {
        per_second: 2.0,
        burst: 50,
    };
    /// Enterprise: 5 requests/s, burst 250.
    pub const ENTERPRISE: RateLimit = RateLimit {
        per_second: 5.0,
        burst: 250,
    };
}

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// How many leads to generate (IDs 1..=leads unless `id_step` spreads them).
    pub leads: usize,
    /// How many contacts and companies to generate (IDs spread by `id_step` as leads').
    /// Default 0: a portal of leads only, as before. With them, some leads link to
    /// contacts and companies and share a phone with a contact (see `gen/crm.rs`).
    pub contacts: usize,
    pub companies: usize,
    /// Seed of the generator: the same seed gives the same portal.
    pub seed: u64,
    /// Distance between consecutive generated IDs (1 = dense).
    pub id_step: u32,
    /// The webhook's user and secret.
    pub webhook_user: u32,
    pub webhook_secret: String,
    /// The portal's time zone offset in seconds east of UTC (Moscow: 3 * 3600).
    pub utc_offset_secs: i32,
    /// `None` = no rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Added to every response.
    pub latency: Duration,
    /// Name of the generated list-type (multiple) user field ("solution").
    pub solution_field: String,
    /// Per-method operating-time budget; `None` = unlimited. Default 480 s / 600 s.
    pub operating_limit: Option<OperatingLimit>,
    /// Simulated server time per call (see [`CostModel`] for the defaults' reasoning).
    pub cost: CostModel,
    /// Outbound events: application token, outgoing webhooks, post delay (events.rs).
    pub events: EventsConfig,
    /// Whether the webhook has the `user` scope; without it `user.get` answers 401
    /// `insufficient_scope`. Default true.
    pub user_scope: bool,
    /// CRM method families the webhook's user has no right to read (`"crm.contact"`): every
    /// method of theirs answers 403 `ACCESS_DENIED` "Access denied.", as a portal does for a
    /// user whose role gives no access to that entity. Default none.
    pub denied: Vec<String>,
    /// Whether `select: ["UF_*"]` also returns *multiple* user fields. The docs say
    /// "without multiple" (ambiguous), so the strict default is false: the solution
    /// field must be named.
    pub uf_mask_includes_multiple: bool,
    /// `time` blocks as the docs' examples vary: whole-second `start`/`finish` and no
    /// `operating` / `operating_reset_at` (also in a 429's answer). Default false: the
    /// full block.
    pub sparse_time: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            port: 0,
            leads: 1000,
            contacts: 0,
            companies: 0,
            seed: 1,
            id_step: 1,
            webhook_user: 1,
            webhook_secret: "sim0secret0webhook".to_string(),
            utc_offset_secs: 3 * 3600,
            rate_limit: Some(RateLimit::STANDARD),
            latency: Duration::ZERO,
            solution_field: "UF_CRM_SOLUTION".to_string(),
            operating_limit: Some(OperatingLimit::default()),
            cost: CostModel::default(),
            events: EventsConfig::default(),
            user_scope: true,
            denied: Vec::new(),
            uf_mask_includes_multiple: false,
            sparse_time: false,
        }
    }
}

/// A running simulator; serves while alive.
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Generates the portal and starts serving on `127.0.0.1:config.port`.
    pub async fn start(config: SimulatorConfig) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        // Generation is CPU work (≈ 100 ms per million leads); keep it off the reactor.
        let cfg = config.clone();
        let portal = tokio::task::spawn_blocking(move || Portal::generate(&cfg))
            .await
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared::new(config, portal, addr));
        // Weak: the portal (which holds the hook) lives inside `shared`.
        let weak = Arc::downgrade(&shared);
        let _ = shared.portal.inner.on_change.set(Arc::new(move |change| {
            if let Some(sh) = weak.upgrade() {
                sh.on_change(change);
            }
        }));
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "simulator server stopped with an error");
            }
        });
        Ok(Simulator {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/rest/{user}/{secret}/`
    pub fn webhook_url(&self) -> String {
        format!(
            "{}/rest/{}/{}/",
            self.base_url(),
            self.shared.config.webhook_user,
            self.shared.config.webhook_secret
        )
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> &SimulatorConfig {
        &self.shared.config
    }

    pub fn portal(&self) -> Portal {
        self.shared.portal.clone()
    }

    pub fn stats(&self) -> RequestStats {
        lock(&self.shared.stats).clone()
    }

    pub fn reset_stats(&self) {
        *lock(&self.shared.stats) = RequestStats::default();
    }

    /// Installs an OAuth application on the portal (replaces one with the same client_id).
    pub fn register_oauth_app(&self, app: OAuthApp) {
        self.shared.oauth.register(app);
    }

    /// `http://127.0.0.1:PORT/oauth/authorize/?client_id=..&state=..`
    pub fn oauth_authorize_url(&self, client_id: &str, state: &str) -> String {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", client_id)
            .append_pair("state", state)
            .finish();
        format!("{}/oauth/authorize/?{query}", self.base_url())
    }

    /// Revokes every code and token of an app, as uninstalling it does; its event
    /// bindings and offline queue go with them.
    pub fn revoke_oauth(&self, client_id: &str) {
        self.shared.oauth.revoke(client_id);
        events::lock(&self.shared.events.bindings).remove_app(client_id);
        events::lock(&self.shared.events.offline).remove_app(client_id);
    }

    /// Refresh tokens of the app that would still be accepted now.
    pub fn live_refresh_tokens(&self, client_id: &str) -> usize {
        self.shared
            .oauth
            .live_refresh_tokens(client_id, oauth::portal_unix(&self.shared.portal))
    }

    /// Online event posts so far: sent, failed (never retried) and still pending.
    pub fn event_stats(&self) -> EventStats {
        self.shared.events.stats()
    }

    /// The `auth[application_token]` of the posts to apps' handlers.
    pub fn application_token(&self) -> String {
        self.shared.events.application_token().to_string()
    }

    /// Offline-queue rows an app has, free, reserved or failed.
    pub fn offline_queue_len(&self, client_id: &str) -> usize {
        events::lock(&self.shared.events.offline).len(client_id)
    }

    /// Queues a fault for the next matching requests.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    /// Queues a fault for single `crm.lead.list` pages (see [`PageFault`]).
    pub fn inject_page_fault(&self, fault: PageFault) {
        lock(&self.shared.page_faults).push(fault);
    }

    /// Stops accepting, lets running requests finish (up to 5 s), then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `b24sync simulator`: start, print the webhook URL on stdout, serve until Ctrl-C.
pub async fn serve_until_ctrl_c(config: SimulatorConfig) -> std::io::Result<()> {
    let sim = Simulator::start(config).await?;
    println!("{}", sim.webhook_url());
    tracing::info!(webhook = %sim.webhook_url(), "simulator serving; Ctrl-C stops it");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
