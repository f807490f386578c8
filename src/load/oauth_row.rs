//! The OAuth row rules both backends share: how an application's `bitrix_oauth` row and its
//! side record in `b24sync_state` (under `oauth:<client_id>`: the absolute expiry, the REST
//! endpoint and the OAuth server, which the contract table has no column for) become a
//! [`StoredApp`] and back. One module, so SQLite and SQL Server read and write them alike.

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Value};

use crate::model::oauth::{Secret, StoredApp, TokenSet};

/// What `b24sync_state` keeps beside the row.
struct Extra {
    expires_at: Option<i64>,
    obtained_at: Option<i64>,
    client_endpoint: Option<String>,
    server_endpoint: Option<String>,
    oauth_server: Option<String>,
}

fn parse_extra(text: Option<&str>) -> Option<Extra> {
    let v = serde_json::from_str::<Value>(text?).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Extra {
        expires_at: v.get("expires_at").and_then(Value::as_i64),
        obtained_at: v.get("obtained_at").and_then(Value::as_i64),
        client_endpoint: s("client_endpoint"),
        server_endpoint: s("server_endpoint"),
        oauth_server: s("oauth_server"),
    })
}

/// The local wall-clock time `dateexec` holds for an instant (whole seconds).
fn local_naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&Local).naive_local()
}

/// An application's `bitrix_oauth` row as read, whatever the database.
pub struct OAuthRow {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub redirect_uri: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<String>,
    pub scope: Option<String>,
    pub domain: Option<String>,
    pub member_id: Option<String>,
    pub user_id: Option<String>,
    /// Local time, whole seconds.
    pub dateexec: Option<NaiveDateTime>,
}

/// The `b24sync_state` name of an app's side record.
pub fn state_key(client_id: &str) -> String {
    format!("oauth:{client_id}")
}

/// The app as stored: its row, plus the side record `extra` (the JSON under
/// [`state_key`]) when that record describes this very row.
pub fn app_from_row(client_id: &str, row: OAuthRow, extra: Option<&str>) -> StoredApp {
    let dateexec = row.dateexec;
    let dateexec_utc = dateexec
        .and_then(|n| Local.from_local_datetime(&n).earliest())
        .map(|d| d.with_timezone(&Utc));
    // b24sync's side record describes this row only if the row's dateexec is the one it
    // wrote; a row refreshed by something else (an Oktell scenario) is read on its own.
    let extra = parse_extra(extra).filter(|x| {
        match (
            x.obtained_at.and_then(|t| DateTime::from_timestamp(t, 0)),
            dateexec,
        ) {
            (Some(t), Some(d)) => local_naive(t) == d,
            _ => false,
        }
    });
    let expires_in = row.expires_in.unwrap_or_default();
    let obtained_at = extra
        .as_ref()
        .and_then(|x| x.obtained_at)
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .or(dateexec_utc)
        .unwrap_or(DateTime::UNIX_EPOCH);
    let expires_at = extra
        .as_ref()
        .and_then(|x| x.expires_at)
        .unwrap_or_else(|| obtained_at.timestamp() + expires_in.trim().parse::<i64>().unwrap_or(0));
    let domain = row.domain.unwrap_or_default();
    let client_endpoint = extra
        .as_ref()
        .and_then(|x| x.client_endpoint.clone())
        .unwrap_or_else(|| format!("https://{domain}/rest/"));
    StoredApp {
        client_id: row.client_id.unwrap_or_else(|| client_id.to_string()),
        client_secret: Secret::new(row.client_secret.unwrap_or_default()),
        redirect_uri: row.redirect_uri,
        oauth_server: extra.as_ref().and_then(|x| x.oauth_server.clone()),
        tokens: TokenSet {
            access_token: Secret::new(row.access_token.unwrap_or_default()),
            refresh_token: Secret::new(row.refresh_token.unwrap_or_default()),
            expires_in,
            expires_at,
            obtained_at,
            scope: row.scope.unwrap_or_default(),
            domain,
            member_id: row.member_id.unwrap_or_default(),
            user_id: row.user_id.unwrap_or_default(),
            client_endpoint,
            server_endpoint: extra.and_then(|x| x.server_endpoint),
        },
    }
}

/// What to write for `app`: its `dateexec` (local time, whole seconds: what the column can
/// hold and what [`app_from_row`] compares) and the side record's JSON.
pub fn app_extra(app: &StoredApp) -> (NaiveDateTime, String) {
    let t = &app.tokens;
    let obtained = DateTime::from_timestamp(t.obtained_at.timestamp(), 0).unwrap_or(t.obtained_at);
    let extra = json!({
        "expires_at": t.expires_at,
        "obtained_at": obtained.timestamp(),
        "client_endpoint": t.client_endpoint,
        "server_endpoint": t.server_endpoint,
        "oauth_server": app.oauth_server,
    })
    .to_string();
    (local_naive(obtained), extra)
}
