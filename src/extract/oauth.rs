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

use chrono::{DateTime, Utc};
use serde_json::Value;
use url::Url;

use crate::model::oauth::{Secret, StoredApp, TokenSet};
use crate::store::{StoreError, TokenStore};

/// Bitrix24's global OAuth server (Russian-region portals use `https://oauth.bitrix24.tech`).
pub const DEFAULT_OAUTH_SERVER: &str = "https://oauth.bitrix.info";

/// Bitrix24's `expires_in` when an answer lacks it.
const DEFAULT_EXPIRES_IN: i64 = 3600;
/// How long a refresher waits for another refresher of the same app.
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);
/// Attempts at the token endpoint for failures where the request did not get an answer.
const TOKEN_ATTEMPTS: u32 = 3;

impl TokenSet {
    /// Reads a token endpoint answer. `fallback_endpoint` is used when the answer has no
    /// `client_endpoint` (the docs show it, but be lenient).
    pub fn from_response(
        v: &Value,
        now: DateTime<Utc>,
        fallback_endpoint: Option<&str>,
    ) -> Result<TokenSet, String> {
        let text = |k: &str| -> Option<String> {
            match v.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let access = text("access_token").filter(|s| !s.is_empty());
        let refresh = text("refresh_token").filter(|s| !s.is_empty());
        let (Some(access), Some(refresh)) = (access, refresh) else {
            return Err("the answer has no access_token or refresh_token".into());
        };
        let expires_in = text("expires_in").unwrap_or_else(|| DEFAULT_EXPIRES_IN.to_string());
        let secs = expires_in
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_EXPIRES_IN);
        let client_endpoint = text("client_endpoint")
            .filter(|s| !s.is_empty())
            .or_else(|| fallback_endpoint.map(str::to_string))
            .ok_or("the answer has no client_endpoint")?;
        let domain = host_of(&client_endpoint)
            .ok_or("the answer's client_endpoint is not a URL with a host")?;
        Ok(TokenSet {
            access_token: Secret::new(access),
            refresh_token: Secret::new(refresh),
            expires_in,
            expires_at: now.timestamp() + secs,
            obtained_at: now,
            scope: text("scope").unwrap_or_default(),
            domain,
            member_id: text("member_id").unwrap_or_default(),
            user_id: text("user_id").unwrap_or_default(),
            client_endpoint,
            server_endpoint: text("server_endpoint"),
        })
    }
}

/// `host[:port]` of a URL.
fn host_of(url: &str) -> Option<String> {
    let u = Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

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

/// The OAuth server's token endpoint.
#[derive(Clone)]
pub struct OAuthServer {
    base: Url,
    http: reqwest::Client,
}

impl fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OAuthServer({})", self.base)
    }
}

/// `https://host` or `host` → URL; plain http only for loopback (the simulator).
pub fn parse_base_url(what: &str, input: &str) -> Result<Url, String> {
    let input = input.trim().trim_end_matches('/');
    // Messages show the text redacted: a webhook URL pasted as `--portal` holds a secret.
    let shown = super::auth::redact_url(input);
    let with_scheme = if input.contains("://") {
        input.to_string()
    } else {
        format!("https://{input}")
    };
    let url =
        Url::parse(&with_scheme).map_err(|e| format!("{what} {shown:?} is not a URL: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("{what} {shown:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!(
            "{what} {shown:?} must use https (http only for a local simulator)"
        )),
    }
}

/// Takes out of a text every secret we sent, in case a server echoes one.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "***");
    }
    out
}

/// How a token-endpoint call failed.
enum TokenFailure {
    /// `invalid_grant` / `invalid_client`: only a new authorization helps.
    Grant {
        code: String,
        description: String,
    },
    Refused {
        code: String,
        description: String,
    },
    Unreachable(String),
}

impl OAuthServer {
    pub fn new(base: &str) -> Result<OAuthServer, OAuthError> {
        let base = parse_base_url("the OAuth server", base).map_err(OAuthError::Config)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("b24sync/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                OAuthError::Config(format!("cannot build the HTTP client: {}", e.without_url()))
            })?;
        Ok(OAuthServer { base, http })
    }

    /// The server's base URL (no secret in it).
    pub fn url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `grant_type=authorization_code`.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &Secret,
        code: &Secret,
        portal_endpoint: &str,
    ) -> Result<TokenSet, OAuthError> {
        let params = [
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("client_secret", client_secret.expose()),
            ("code", code.expose()),
        ];
        let secrets = [client_secret.expose(), code.expose()];
        self.token_call(&params, &secrets, Some(portal_endpoint))
            .await
            .map_err(|f| match f {
                TokenFailure::Grant { code, description } => OAuthError::Refused {
                    code,
                    description: format!(
                        "{description}; the code lives 30 s and works once, and client_id/client_secret must be the app's"
                    ),
                },
                other => self.other_failure(other),
            })
    }

    /// `grant_type=refresh_token`; `Reauthorize` on `invalid_grant` / `invalid_client`.
    pub async fn refresh(&self, app: &StoredApp) -> Result<TokenSet, OAuthError> {
        let params = [
            ("grant_type", "refresh_token"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose()),
            ("refresh_token", app.tokens.refresh_token.expose()),
        ];
        let secrets = [
            app.client_secret.expose(),
            app.tokens.refresh_token.expose(),
            app.tokens.access_token.expose(),
        ];
        self.token_call(&params, &secrets, Some(&app.tokens.client_endpoint))
            .await
            .map(|mut t| {
                // The refresh answer's `client_endpoint` may be missing; the portal did
                // not move, so keep what the authorization gave.
                if t.member_id.is_empty() {
                    t.member_id = app.tokens.member_id.clone();
                }
                t
            })
            .map_err(|f| match f {
                TokenFailure::Grant { code, description } => OAuthError::Reauthorize {
                    client_id: app.client_id.clone(),
                    portal: app.tokens.domain.clone(),
                    reason: format!("{code}: {description}"),
                },
                other => self.other_failure(other),
            })
    }

    fn other_failure(&self, f: TokenFailure) -> OAuthError {
        match f {
            TokenFailure::Grant { code, description }
            | TokenFailure::Refused { code, description } => {
                OAuthError::Refused { code, description }
            }
            TokenFailure::Unreachable(detail) => OAuthError::Unreachable {
                server: super::auth::redact_url(&self.url()),
                detail,
            },
        }
    }

    async fn token_call(
        &self,
        params: &[(&str, &str)],
        secrets: &[&str],
        fallback_endpoint: Option<&str>,
    ) -> Result<TokenSet, TokenFailure> {
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}/oauth/token/",
            self.base.path().trim_end_matches('/')
        ));
        // The token endpoint is documented as GET with the parameters in the query.
        url.query_pairs_mut().extend_pairs(params);
        let mut last = String::new();
        for attempt in 1..=TOKEN_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            let resp = match self
                .http
                .get(url.clone())
                .header("Accept", "application/json")
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    last = scrub(&super::client::describe_reqwest(&e), secrets);
                    continue;
                }
            };
            let status = resp.status();
            let body: Option<Value> = match resp.bytes().await {
                Ok(b) => serde_json::from_slice(&b).ok(),
                Err(e) => {
                    last = scrub(&super::client::describe_reqwest(&e), secrets);
                    continue;
                }
            };
            let Some(body) = body else {
                last = format!("HTTP {status} with a body that is not JSON");
                if status.is_server_error() {
                    continue;
                }
                return Err(TokenFailure::Unreachable(last));
            };
            if let Some(code) = body
                .get("error")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
            {
                let description = scrub(
                    body.get("error_description")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    secrets,
                );
                let code = scrub(code, secrets);
                return Err(match code.as_str() {
                    "invalid_grant" | "invalid_client" => TokenFailure::Grant { code, description },
                    _ if status.is_server_error() => {
                        last = format!("HTTP {status} {code}: {description}");
                        continue;
                    }
                    _ => TokenFailure::Refused { code, description },
                });
            }
            if !status.is_success() {
                last = format!("HTTP {status}");
                if status.is_server_error() {
                    continue;
                }
                return Err(TokenFailure::Unreachable(last));
            }
            return TokenSet::from_response(&body, Utc::now(), fallback_endpoint)
                .map_err(TokenFailure::Unreachable);
        }
        Err(TokenFailure::Unreachable(format!(
            "{last} (after {TOKEN_ATTEMPTS} attempts)"
        )))
    }
}

/// The portal's authorize URL: `https://PORTAL/oauth/authorize/?client_id=..&state=..`.
pub fn authorize_url(portal: &Url, client_id: &str, state: &str) -> Url {
    let mut url = portal.clone();
    url.set_path("/oauth/authorize/");
    url.set_query(None);
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("state", state);
    url
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("topsecretvalue");
        assert_eq!(format!("{s:?}"), "***");
        let t = TokenSet::from_response(
            &json!({"access_token": "acc0secret", "refresh_token": "ref0secret", "expires_in": 3600,
                    "client_endpoint": "https://acme.bitrix24.ru/rest/", "user_id": 1, "scope": "crm"}),
            Utc::now(),
            None,
        )
        .unwrap();
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("acc0secret") && !shown.contains("ref0secret"),
            "{shown}"
        );
        assert_eq!(t.domain, "acme.bitrix24.ru");
        assert_eq!(t.user_id, "1");
        assert_eq!(t.expires_in, "3600");
    }

    #[test]
    fn answers_without_tokens_are_refused() {
        let e = TokenSet::from_response(
            &json!({"expires_in": 3600}),
            Utc::now(),
            Some("https://a/rest/"),
        )
        .unwrap_err();
        assert!(e.contains("access_token"), "{e}");
    }

    #[test]
    fn base_urls_need_https_except_on_loopback() {
        assert!(parse_base_url("x", "acme.bitrix24.ru").is_ok());
        assert!(parse_base_url("x", "http://127.0.0.1:5000").is_ok());
        assert!(parse_base_url("x", "http://acme.bitrix24.ru").is_err());
    }

    #[test]
    fn echoed_secrets_are_scrubbed() {
        assert_eq!(scrub("bad token abcdef", &["abcdef"]), "bad token ***");
    }
}
