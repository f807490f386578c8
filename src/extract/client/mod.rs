//! One HTTP client for one portal.
//!
//! Every call goes through the same path: wait for the [`LeakyBucket`] and the method's
//! [`OperatingBudget`], POST a JSON body, then sort the answer into success, a failure
//! that can heal (retried with backoff, or after the portal's `operating_reset_at`), or a
//! failure that cannot (reported at once with what to do). A body that is not the JSON we
//! asked for — an HTML proxy page, a cut-off answer — is a failed request and is retried,
//! never a shorter page.
//!
//! Secrets: reqwest's errors carry the request URL, which holds the webhook secret, so
//! every reqwest error is stripped of it (`without_url`) before it is shown anywhere.
//!
//! The parts: `send.rs` (sending and retries), `envelope.rs` (what came back → success,
//! retry or a typed [`ExtractError`], `error.rs`), `giveup.rs` (when a silent portal is
//! given up), `answer.rs` (results and `batch` answers), `stats.rs` (request counters),
//! `text.rs` (HTTP failures described without secrets).

mod answer;
mod envelope;
mod error;
mod giveup;
mod send;
mod stats;
mod text;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::auth::Webhook;
use super::limits::{LeakyBucket, OperatingBudget, OperatingConfig, RateConfig};
use super::oauth::OAuthSession;

pub use answer::{ApiResponse, ResponseTime, SubResult};
pub use error::ExtractError;
pub use stats::{ClientStats, StatsSnapshot};
pub(crate) use text::describe_reqwest;

/// How the client paces and retries.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub rate: RateConfig,
    pub operating: OperatingConfig,
    /// Bitrix24 ends a request after 60 s; wait a little longer than that.
    pub request_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a call may go without any answer from the portal (connection refused,
    /// timed out, cut off, no Bitrix24 JSON) before it stops retrying and fails with
    /// [`ExtractError::GaveUp`] (exit 5), unless `max_attempts` ends it first. Only
    /// silence counts: the clock restarts whenever Bitrix24 answers, even with a
    /// rate-limit error. No single request may outlast what is left of it.
    pub give_up_after: Duration,
}

/// The default [`ClientConfig::give_up_after`]: well inside a 5-minute schedule.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(120);

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            rate: RateConfig::default(),
            operating: OperatingConfig::default(),
            request_timeout: Duration::from_secs(65),
            max_attempts: 10,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            give_up_after: DEFAULT_GIVE_UP_AFTER,
        }
    }
}

/// How requests authenticate.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `https://PORTAL/rest/USER/SECRET/method`.
    Webhook(Webhook),
    /// `{client_endpoint}method` + `auth=<access token>`; refreshed on 401.
    OAuth(Arc<OAuthSession>),
}

/// A Bitrix24 REST client for one webhook or OAuth application.
#[derive(Clone)]
pub struct Bitrix24Client {
    http: reqwest::Client,
    auth: Auth,
    config: ClientConfig,
    bucket: Arc<LeakyBucket>,
    budget: Arc<OperatingBudget>,
    stats: Arc<ClientStats>,
    cancel: CancellationToken,
}

impl Bitrix24Client {
    pub fn new(
        webhook: Webhook,
        config: ClientConfig,
        cancel: CancellationToken,
    ) -> Result<Bitrix24Client, ExtractError> {
        Bitrix24Client::with_auth(Auth::Webhook(webhook), config, cancel)
    }

    /// A client authenticating by webhook or as an OAuth application.
    pub fn with_auth(
        auth: Auth,
        config: ClientConfig,
        cancel: CancellationToken,
    ) -> Result<Bitrix24Client, ExtractError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("b24sync/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(15).min(config.give_up_after))
            // A renamed portal answers 302; following it could turn the POST into a GET
            // and drop the body, so we report it instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ExtractError::Protocol {
                portal: auth_portal(&auth),
                method: "-".into(),
                detail: format!("cannot build the HTTP client: {}", e.without_url()),
            })?;
        Ok(Bitrix24Client {
            http,
            bucket: Arc::new(LeakyBucket::new(config.rate)),
            budget: Arc::new(OperatingBudget::new(config.operating)),
            auth,
            config,
            stats: Arc::new(ClientStats::default()),
            cancel,
        })
    }

    /// The webhook, in webhook mode.
    pub fn webhook(&self) -> Option<&Webhook> {
        match &self.auth {
            Auth::Webhook(w) => Some(w),
            Auth::OAuth(_) => None,
        }
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The portal's host, for messages.
    pub fn portal(&self) -> String {
        auth_portal(&self.auth)
    }

    /// What the run authenticates as, for the log (never a secret).
    pub fn describe(&self) -> String {
        match &self.auth {
            Auth::Webhook(w) => format!("webhook {w}"),
            Auth::OAuth(s) => format!("OAuth app {} at {}", s.client_id(), s.portal()),
        }
    }

    /// Server seconds `method` may still spend in its operating window before this client
    /// starts waiting for the window (see [`OperatingBudget::headroom`]).
    pub fn operating_headroom(&self, method: &str) -> f64 {
        self.budget.headroom(method)
    }
}

fn auth_portal(auth: &Auth) -> String {
    match auth {
        Auth::Webhook(w) => w.portal(),
        Auth::OAuth(s) => s.portal(),
    }
}
