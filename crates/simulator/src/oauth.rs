//! The portal's OAuth 2.0 side, strict where the docs are unsure:
//!
//! - `GET /oauth/authorize/?client_id=..&state=..` approves at once (as user 1) and answers
//!   302 to the app's registered `redirect_uri` with `code, state, domain, member_id,
//!   scope, server_domain`. A code lives 30 s on the portal clock and is single-use.
//! - `GET /oauth/token/?grant_type=authorization_code|refresh_token&client_id&client_secret&…`
//!   (a form POST is accepted too) issues an access token (3600 s) and a refresh token
//!   (180 days). Refresh tokens rotate: using one invalidates it *and* the access token
//!   issued with it. Errors: 400 `invalid_grant`, 401 `invalid_client`, 400 `invalid_request`.
//! - REST calls at `/rest/{method}` + `auth`: expired → 401 `expired_token`, unknown or
//!   revoked → 401 `invalid_token`, missing → 401 `NO_AUTH_FOUND`.
//!
//! All expiry is measured on the portal clock ([`Portal::now`]), so `advance_clock`
//! expires tokens and codes.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::Rng;
use serde_json::{json, Map, Value};

use super::data::Portal;
use super::server::lock;

/// How long an authorization code lives.
pub const CODE_TTL_SECS: i64 = 30;
/// How long an access token lives (Bitrix24's `expires_in`).
pub const ACCESS_TTL_SECS: i64 = 3600;
/// How long a refresh token lives (current docs: 180 days).
pub const REFRESH_TTL_SECS: i64 = 180 * 24 * 3600;

/// An OAuth application installed on the simulated portal.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
    /// Where `/oauth/authorize/` sends the browser (the app's settings in Bitrix24).
    pub redirect_uri: String,
    /// Comma list, as Bitrix24 returns it (`crm,user`).
    pub scope: String,
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("redirect_uri", &self.redirect_uri)
            .field("scope", &self.scope)
            .finish()
    }
}

struct CodeGrant {
    client_id: String,
    expires_at: i64,
}

struct AccessGrant {
    client_id: String,
    expires_at: i64,
}

struct RefreshGrant {
    client_id: String,
    access_token: String,
    expires_at: i64,
}

#[derive(Default)]
struct State {
    apps: Vec<OAuthApp>,
    codes: HashMap<String, CodeGrant>,
    access: HashMap<String, AccessGrant>,
    refresh: HashMap<String, RefreshGrant>,
}

/// The simulated OAuth server and the portal's token table.
#[derive(Default)]
pub(crate) struct OAuthServer {
    state: Mutex<State>,
}

/// An OAuth answer: status and JSON body, or a redirect.
pub(crate) enum OAuthReply {
    Json(u16, Value),
    Redirect(String),
}

fn oauth_error(status: u16, code: &str, description: &str) -> OAuthReply {
    OAuthReply::Json(
        status,
        json!({"error": code, "error_description": description}),
    )
}

fn new_token() -> String {
    let mut rng = rand::thread_rng();
    (0..48)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

fn param<'a>(params: &'a Map<String, Value>, key: &str) -> &'a str {
    params.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Why a REST call's `auth` was refused.
pub(crate) enum TokenRejection {
    Missing,
    Expired,
    Invalid,
}

impl OAuthServer {
    pub fn register(&self, app: OAuthApp) {
        let mut st = lock(&self.state);
        st.apps.retain(|a| a.client_id != app.client_id);
        st.apps.push(app);
    }

    /// Forgets every token and code of an app (the admin uninstalled or re-installed it).
    pub fn revoke(&self, client_id: &str) {
        let mut st = lock(&self.state);
        st.codes.retain(|_, g| g.client_id != client_id);
        st.access.retain(|_, g| g.client_id != client_id);
        st.refresh.retain(|_, g| g.client_id != client_id);
    }

    /// Live refresh tokens of an app (tests check that exactly one pair survives).
    pub fn live_refresh_tokens(&self, client_id: &str, now: i64) -> usize {
        lock(&self.state)
            .refresh
            .values()
            .filter(|g| g.client_id == client_id && g.expires_at > now)
            .count()
    }

    /// Checks a REST call's `auth`: the app's (client_id, scope).
    pub fn check(&self, token: Option<&str>, now: i64) -> Result<(String, String), TokenRejection> {
        let token = match token {
            None | Some("") => return Err(TokenRejection::Missing),
            Some(t) => t,
        };
        let st = lock(&self.state);
        match st.access.get(token) {
            Some(g) if g.expires_at > now => {
                let scope = st
                    .apps
                    .iter()
                    .find(|a| a.client_id == g.client_id)
                    .map(|a| a.scope.clone());
                Ok((g.client_id.clone(), scope.unwrap_or_default()))
            }
            Some(_) => Err(TokenRejection::Expired),
            None => Err(TokenRejection::Invalid),
        }
    }

    /// An access token for an app's event handler, as the portal puts into each post:
    /// (access_token, expires_in, scope); None when the app is not installed.
    pub fn issue_access(&self, client_id: &str, now: i64) -> Option<(String, i64, String)> {
        let mut st = lock(&self.state);
        let scope = st
            .apps
            .iter()
            .find(|a| a.client_id == client_id)?
            .scope
            .clone();
        let access = new_token();
        st.access.insert(
            access.clone(),
            AccessGrant {
                client_id: client_id.to_string(),
                expires_at: now + ACCESS_TTL_SECS,
            },
        );
        Some((access, ACCESS_TTL_SECS, scope))
    }

    /// `GET /oauth/authorize/`. `host` is the portal's address as the browser used it.
    pub fn authorize(
        &self,
        params: &Map<String, Value>,
        host: &str,
        member_id: &str,
        now: i64,
    ) -> OAuthReply {
        let client_id = param(params, "client_id");
        let mut st = lock(&self.state);
        let Some(app) = st.apps.iter().find(|a| a.client_id == client_id).cloned() else {
            return oauth_error(401, "invalid_client", "Application not installed");
        };
        let code = new_token();
        st.codes.insert(
            code.clone(),
            CodeGrant {
                client_id: app.client_id.clone(),
                expires_at: now + CODE_TTL_SECS,
            },
        );
        let sep = if app.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", param(params, "state"))
            .append_pair("domain", host)
            .append_pair("member_id", member_id)
            .append_pair("scope", &app.scope)
            .append_pair("server_domain", host)
            .finish();
        OAuthReply::Redirect(format!("{}{sep}{query}", app.redirect_uri))
    }

    /// `GET /oauth/token/`.
    pub fn token(
        &self,
        params: &Map<String, Value>,
        base: &str,
        host: &str,
        member_id: &str,
        now: i64,
    ) -> OAuthReply {
        let client_id = param(params, "client_id");
        let mut st = lock(&self.state);
        let app = match st.apps.iter().find(|a| a.client_id == client_id) {
            Some(a) if a.client_secret == param(params, "client_secret") => a.clone(),
            _ => return oauth_error(401, "invalid_client", "Invalid client credentials"),
        };
        match param(params, "grant_type") {
            "authorization_code" => {
                // Single use: the code is gone whether or not it was still valid.
                match st.codes.remove(param(params, "code")) {
                    Some(g) if g.client_id == app.client_id && g.expires_at > now => {}
                    _ => return oauth_error(400, "invalid_grant", "Invalid authorization code"),
                }
            }
            "refresh_token" => match st.refresh.remove(param(params, "refresh_token")) {
                Some(g) if g.client_id == app.client_id && g.expires_at > now => {
                    // Rotation: the old pair dies with its refresh token.
                    st.access.remove(&g.access_token);
                }
                Some(g) => {
                    // A foreign or expired token: put a foreign one back untouched.
                    if g.client_id != app.client_id {
                        st.refresh
                            .insert(param(params, "refresh_token").to_string(), g);
                    }
                    return oauth_error(400, "invalid_grant", "Invalid refresh token");
                }
                None => return oauth_error(400, "invalid_grant", "Invalid refresh token"),
            },
            _ => return oauth_error(400, "invalid_request", "Unknown grant_type"),
        }
        let (access, refresh) = (new_token(), new_token());
        st.access.insert(
            access.clone(),
            AccessGrant {
                client_id: app.client_id.clone(),
                expires_at: now + ACCESS_TTL_SECS,
            },
        );
        st.refresh.insert(
            refresh.clone(),
            RefreshGrant {
                client_id: app.client_id.clone(),
                access_token: access.clone(),
                expires_at: now + REFRESH_TTL_SECS,
            },
        );
        OAuthReply::Json(
            200,
            json!({
                "access_token": access,
                "expires": now + ACCESS_TTL_SECS,
                "expires_in": ACCESS_TTL_SECS,
                "scope": app.scope,
                // The docs: `domain` is the OAuth server's host; here that is the simulator.
                "domain": host,
                "server_endpoint": format!("{base}/rest/"),
                "client_endpoint": format!("{base}/rest/"),
                "member_id": member_id,
                "user_id": 1,
                "status": "L",
                "refresh_token": refresh,
            }),
        )
    }
}

/// The portal's stable `member_id` (32 hex digits), derived from the seed.
pub(crate) fn member_id(seed: u64) -> String {
    format!("{:032x}", seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The portal clock as unix seconds.
pub(crate) fn portal_unix(portal: &Portal) -> i64 {
    portal.now().timestamp()
}
