//! OAuth application mode (Bitrix24 OAuth 2.0): the app is authorized once (`b24sync auth`),
//! then its tokens live in `bitrix_oauth` and are kept alive by refreshing them when
//! Bitrix24 says the access token expired — never on a timer.
//!
//! The hard part is that refresh tokens are single-use: a refresh invalidates the old
//! refresh token *and* its access token. So a refresh must
//! 1. be serialized with every other refresher of the same app, in this process
//!    ([`OAuthSession`]'s mutex) and in others ([`TokenStore::lock_app`]);
//! 2. re-read the stored row first: if another process already refreshed (the stored
//!    access token differs from the one that failed and has not expired), use that pair
//!    instead of burning its refresh token;
//! 3. write the new pair to the database *before* using it, so a crash after the refresh
//!    leaves tokens that work.
//!
//! Secrets (client secret, tokens, codes) are [`Secret`]s: their `Debug` prints `***`,
//! they have no `Display`, and no error message of this module contains one.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use url::Url;

use crate::model::oauth::{Secret, StoredApp, TokenSet};
use crate::store::{StoreError, TokenStore};

mod server;
pub use server::{authorize_url, parse_base_url, OAuthServer};

/// Bitrix24's global OAuth server (Russian-region portals use `https://oauth.bitrix24.tech`).
pub const DEFAULT_OAUTH_SERVER: &str = "https://oauth.bitrix.info";

/// How long a refresher waits for another refresher of the same app.
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Why OAuth failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The authorization is gone (refresh token expired or revoked, app reinstalled,
    /// never authorized): a person must run `b24sync auth` again.
    #[error("the Bitrix24 authorization has expired or was revoked ({reason}): run `b24sync auth --client-id {client_id} --portal {portal}` again")]
    Reauthorize {
        client_id: String,
        portal: String,
        reason: String,
    },
    /// The OAuth server refused for another reason (scope, payment, bad request).
    #[error("the Bitrix24 OAuth server refused: {code} ({description})")]
    Refused { code: String, description: String },
    /// The OAuth server could not be reached or answered nonsense.
    #[error("the Bitrix24 OAuth server {server} did not answer usably: {detail}")]
    Unreachable { server: String, detail: String },
    /// A setting is wrong (a URL that does not parse, ...).
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A test hook stopped the session right after a token write (a simulated crash).
    #[error("stopped by a test hook after storing the tokens: {0}")]
    Injected(String),
}

/// A hook run right after a refreshed pair was written (tests simulate a crash with it).
pub type AfterStoreHook = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Why a refresh is wanted.
enum Need {
    /// This access token failed or expired: refresh unless the store already moved on.
    Replace(Secret),
    /// Refresh whatever is stored (`b24sync token refresh`).
    Always,
}

/// One application's live authorization, shared by every request of a run.
pub struct OAuthSession {
    client_id: String,
    server: OAuthServer,
    store: Arc<dyn TokenStore>,
    current: tokio::sync::Mutex<StoredApp>,
    /// The portal host, for messages (kept outside the async mutex so it never waits).
    portal: std::sync::Mutex<String>,
    refreshes: AtomicU64,
    lock_wait: Duration,
    after_store: Option<AfterStoreHook>,
}

impl fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthSession")
            .field("client_id", &self.client_id)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl OAuthSession {
    /// Loads the app's row. `server` overrides the OAuth server the app was authorized
    /// with (else that one, else [`DEFAULT_OAUTH_SERVER`]).
    pub async fn open(
        store: Arc<dyn TokenStore>,
        client_id: &str,
        server: Option<&str>,
    ) -> Result<OAuthSession, OAuthError> {
        let app = store
            .load_app(client_id)
            .await?
            .ok_or_else(|| OAuthError::Reauthorize {
                client_id: client_id.to_string(),
                portal: "PORTAL".into(),
                reason: format!(
                    "{} has no bitrix_oauth row for this client_id",
                    store.describe()
                ),
            })?;
        if app.tokens.refresh_token.is_empty() || app.client_secret.is_empty() {
            return Err(OAuthError::Reauthorize {
                client_id: client_id.to_string(),
                portal: app.tokens.domain.clone(),
                reason: "the stored row has no refresh token or client secret".into(),
            });
        }
        let server_url = server
            .map(str::to_string)
            .or_else(|| app.oauth_server.clone())
            .unwrap_or_else(|| DEFAULT_OAUTH_SERVER.to_string());
        let server = OAuthServer::new(&server_url)?;
        Ok(OAuthSession {
            client_id: client_id.to_string(),
            server,
            store,
            portal: std::sync::Mutex::new(app.tokens.domain.clone()),
            current: tokio::sync::Mutex::new(app),
            refreshes: AtomicU64::new(0),
            lock_wait: DEFAULT_LOCK_WAIT,
            after_store: None,
        })
    }

    /// Runs `hook` right after each refreshed pair is written; an `Err` ends the call as
    /// if the process had died there. For tests.
    #[doc(hidden)]
    pub fn with_after_store_hook(mut self, hook: AfterStoreHook) -> OAuthSession {
        self.after_store = Some(hook);
        self
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The portal host, for messages.
    pub fn portal(&self) -> String {
        self.portal
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The portal's `member_id` as stored with the tokens (empty when Bitrix24 gave none);
    /// the run binds a database to it.
    pub async fn member_id(&self) -> String {
        self.current.lock().await.tokens.member_id.clone()
    }

    /// Refreshes done by this session.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// The access token and REST base to use now; refreshes first if the stored expiry
    /// has passed.
    pub async fn credentials(&self) -> Result<(Secret, Url), OAuthError> {
        let mut cur = self.current.lock().await;
        if cur.tokens.expired(Utc::now()) {
            let stale = cur.tokens.access_token.clone();
            self.refresh_locked(&mut cur, Need::Replace(stale)).await?;
        }
        let endpoint = cur.tokens.endpoint().map_err(OAuthError::Config)?;
        Ok((cur.tokens.access_token.clone(), endpoint))
    }

    /// Bitrix24 rejected `rejected` (401 `expired_token` / `invalid_token`): get a new
    /// pair, unless someone (this process or another) already did.
    pub async fn refresh_after_rejection(&self, rejected: &Secret) -> Result<(), OAuthError> {
        let mut cur = self.current.lock().await;
        if cur.tokens.access_token != *rejected {
            return Ok(());
        }
        self.refresh_locked(&mut cur, Need::Replace(rejected.clone()))
            .await
    }

    /// Seconds until the access token in use expires (by this machine's clock).
    pub async fn expires_in_secs(&self) -> i64 {
        self.current.lock().await.tokens.expires_at - Utc::now().timestamp()
    }

    /// Keep-alive (`serve --keep-token-fresh`): refresh when the access token expires within
    /// `within_secs`, under the token lock, unless another process already did (then its
    /// stored pair is used). Returns whether this call refreshed.
    pub async fn refresh_if_expiring(&self, within_secs: i64) -> Result<bool, OAuthError> {
        let mut cur = self.current.lock().await;
        if cur.tokens.expires_at - Utc::now().timestamp() > within_secs {
            return Ok(false);
        }
        let before = self.refreshes();
        let held = cur.tokens.access_token.clone();
        self.refresh_locked(&mut cur, Need::Replace(held)).await?;
        Ok(self.refreshes() > before)
    }

    /// Refresh now, whatever the expiry (`b24sync token refresh`); returns the new pair.
    pub async fn refresh_now(&self) -> Result<TokenSet, OAuthError> {
        let mut cur = self.current.lock().await;
        self.refresh_locked(&mut cur, Need::Always).await?;
        Ok(cur.tokens.clone())
    }

    async fn refresh_locked(&self, cur: &mut StoredApp, need: Need) -> Result<(), OAuthError> {
        let mut lock = self.store.lock_app(&self.client_id, self.lock_wait).await?;
        let stored = lock.read().await?.ok_or_else(|| OAuthError::Reauthorize {
            client_id: self.client_id.clone(),
            portal: cur.tokens.domain.clone(),
            reason: format!(
                "the bitrix_oauth row was deleted from {}",
                self.store.describe()
            ),
        })?;
        if let Need::Replace(failed) = &need {
            if stored.tokens.access_token != *failed && !stored.tokens.expired(Utc::now()) {
                tracing::info!(
                    client_id = %self.client_id,
                    "another process already refreshed the Bitrix24 tokens; using the stored pair"
                );
                *cur = stored;
                return Ok(());
            }
        }
        let tokens = self.server.refresh(&stored).await?;
        let fresh = StoredApp { tokens, ..stored };
        lock.write(&fresh).await.map_err(|e| {
            // The old refresh token is spent and the new one could not be kept.
            tracing::error!(
                client_id = %self.client_id,
                "the Bitrix24 tokens were refreshed but could not be stored; the next run will need `b24sync auth` again"
            );
            OAuthError::Store(e)
        })?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            client_id = %self.client_id,
            expires_in = %fresh.tokens.expires_in,
            "refreshed the Bitrix24 access token and stored the new pair"
        );
        if let Ok(mut p) = self.portal.lock() {
            p.clone_from(&fresh.tokens.domain);
        }
        *cur = fresh;
        drop(lock);
        if let Some(hook) = &self.after_store {
            hook().map_err(OAuthError::Injected)?;
        }
        Ok(())
    }
}
