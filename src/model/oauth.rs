//! The `bitrix_oauth` row of an OAuth application, as both backends store it and the
//! OAuth session uses it. Secrets are [`Secret`]s: `Debug` prints `***`, no `Display`.

use std::fmt;

use chrono::{DateTime, Utc};
use url::Url;

/// An access token this close to its expiry is refreshed before the call instead of
/// after a 401, so a request does not start with a token that dies in flight.
const EXPIRY_MARGIN_SECS: i64 = 30;

/// A value that must never be shown: `Debug` prints `***` and there is no `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The value itself, for the request that needs it (and the database).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One pair of tokens and what Bitrix24 said with it.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSet {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// As Bitrix24 returned it (normally "3600").
    pub expires_in: String,
    /// When the access token expires, on this machine's clock (unix seconds).
    pub expires_at: i64,
    /// When the pair was obtained (stored as `dateexec`).
    pub obtained_at: DateTime<Utc>,
    pub scope: String,
    /// The portal's host (`acme.bitrix24.ru`), what the Oktell scenarios build URLs from.
    /// Not the token answer's `domain`, which names the OAuth server.
    pub domain: String,
    pub member_id: String,
    pub user_id: String,
    /// The portal's REST base, `https://acme.bitrix24.ru/rest/`.
    pub client_endpoint: String,
    pub server_endpoint: Option<String>,
}

impl TokenSet {
    /// True when the access token has expired (or is about to), by this machine's clock.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now.timestamp() + EXPIRY_MARGIN_SECS
    }

    /// The REST base URL of the portal.
    pub fn endpoint(&self) -> Result<Url, String> {
        let mut url = Url::parse(&self.client_endpoint)
            .map_err(|e| format!("the stored client_endpoint is not a URL ({e})"))?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(url)
    }
}

/// The `bitrix_oauth` row of one application, plus what b24sync keeps beside it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredApp {
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: Option<String>,
    /// The OAuth server the app was authorized with (refreshes go there too).
    pub oauth_server: Option<String>,
    pub tokens: TokenSet,
}
