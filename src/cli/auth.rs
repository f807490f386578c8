//! OAuth application mode on the command line:
//! - `b24sync auth`: authorize once (browser → loopback redirect → code → tokens), store
//!   the app's row in `bitrix_oauth`;
//! - `b24sync token refresh`: refresh now and store (for installations whose telephony
//!   scenarios read `access_token` themselves);
//! - `b24sync token status`: what is stored, never the tokens;
//! - `sync --client-id`: a client whose requests carry the stored access token.
//!
//! Nothing here prints a secret: tokens, the client secret and the code only travel to
//! the OAuth server and into the database.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use clap::{Args, Subcommand};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::exit;
use super::groups::DbArgs;
use super::open::{open_db_stores, DbOpen};
use super::settings::{FileSettings, Settings};
use b24sync::extract::client::{Auth, Bitrix24Client, ClientConfig};
use b24sync::extract::limits::RateConfig;
use b24sync::extract::oauth::{
    authorize_url, parse_base_url, OAuthError, OAuthServer, OAuthSession, DEFAULT_OAUTH_SERVER,
};
use b24sync::model::oauth::{Secret, StoredApp};
use b24sync::store::TokenStore;

#[derive(Debug, Args)]
pub struct AuthArgs {
    /// The application's client_id (Bitrix24: Developer resources → Other → Local application)
    #[arg(long, env = "B24SYNC_CLIENT_ID", value_name = "ID")]
    pub client_id: String,
    /// The application's client_secret (prefer the environment variable: flags show in the process list)
    #[arg(
        long,
        env = "B24SYNC_CLIENT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub client_secret: String,
    /// The portal: acme.bitrix24.ru or https://acme.bitrix24.ru
    #[arg(long, env = "B24SYNC_PORTAL", value_name = "PORTAL")]
    pub portal: String,
    /// Port on 127.0.0.1 for the browser's redirect; the app's redirect URI must be
    /// http://127.0.0.1:PORT/
    #[arg(long, default_value_t = 4055)]
    pub port: u16,
    /// Skip the browser redirect: exchange this code (from the redirect URL, valid 30 s)
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,
    /// OAuth server [default: https://oauth.bitrix.info; Russian-region portals: https://oauth.bitrix24.tech]
    #[arg(long, env = "B24SYNC_OAUTH_SERVER", value_name = "URL")]
    pub oauth_server: Option<String>,
    /// How long to wait for the browser, in seconds
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub wait: u64,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Refresh the access token now and store the new pair in bitrix_oauth
    Refresh(TokenArgs),
    /// Show the stored authorization (app, portal, scope, expiry; never the tokens)
    Status(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The application's client_id
    #[arg(long, env = "B24SYNC_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// OAuth server [default: the one `auth` used]
    #[arg(long, env = "B24SYNC_OAUTH_SERVER", value_name = "URL")]
    pub oauth_server: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Read only to tell webhook mode apart (which keeps no tokens); never printed
    #[arg(
        long,
        env = "B24SYNC_WEBHOOK",
        value_name = "URL",
        hide = true,
        hide_env_values = true
    )]
    pub webhook: Option<String>,
}

/// Exit code for an OAuth failure.
pub fn exit_code(e: &OAuthError) -> u8 {
    exit::for_oauth(e)
}

fn fail(e: &OAuthError) -> u8 {
    super::ui::error(&e.to_string());
    exit_code(e)
}

fn config_error(msg: &str) -> u8 {
    super::ui::error(msg);
    exit::CONFIG
}

fn db_of(args: &DbArgs, file: &FileSettings) -> String {
    args.db
        .clone()
        .or_else(|| file.db.clone())
        .unwrap_or_else(|| "b24sync.db".into())
}

/// The token store behind `--db`: `bitrix_oauth` in SQL Server or in the embedded file
/// (created only when `mode` allows: `auth` and `sync`, not `token status|refresh`).
async fn open_store(db: &str, mode: DbOpen) -> Result<Arc<dyn TokenStore>, u8> {
    // The refresh lock takes a dedicated connection besides this pool.
    const POOL_SIZE: u32 = 2;
    match open_db_stores(db, POOL_SIZE, mode).await {
        Ok(stores) => Ok(stores.tokens),
        Err(e) => {
            super::ui::error(&e.to_string());
            Err(exit::DATABASE)
        }
    }
}

fn show_time(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0)
        .map(|t| {
            t.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `b24sync auth`.
pub async fn auth_command(args: &AuthArgs, file: &FileSettings) -> u8 {
    let portal = match parse_base_url("--portal", &args.portal) {
        Ok(p) => p,
        Err(e) => return config_error(&e),
    };
    let server_url = args
        .oauth_server
        .clone()
        .or_else(|| file.oauth_server.clone())
        .unwrap_or_else(|| DEFAULT_OAUTH_SERVER.to_string());
    let server = match OAuthServer::new(&server_url) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if args.client_id.trim().is_empty() || args.client_secret.trim().is_empty() {
        return config_error(
            "--client-id and --client-secret (B24SYNC_CLIENT_SECRET) must not be empty",
        );
    }
    let db = db_of(&args.db, file);
    let store = match open_store(&db, DbOpen::Create).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let redirect_uri = format!("http://127.0.0.1:{}/", args.port);
    let code = match &args.code {
        Some(c) => Secret::new(c.trim()),
        None => match code_from_browser(args, &portal, &redirect_uri).await {
            Ok(code) => code,
            Err(exit_code) => return exit_code,
        },
    };
    let endpoint = format!("{}/rest/", portal.as_str().trim_end_matches('/'));
    let secret = Secret::new(args.client_secret.trim());
    let tokens = match server
        .exchange_code(&args.client_id, &secret, &code, &endpoint)
        .await
    {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let app = StoredApp {
        client_id: args.client_id.clone(),
        client_secret: secret,
        redirect_uri: Some(redirect_uri),
        oauth_server: Some(server.url()),
        tokens,
    };
    if let Err(e) = store.save_app(&app).await {
        super::ui::error(&e.to_string());
        return exit::DATABASE;
    }
    println!(
        "authorized: app {} on portal {} (scope {}); tokens stored in bitrix_oauth of {}; the access token is valid until {}",
        app.client_id,
        app.tokens.domain,
        app.tokens.scope,
        store.describe(),
        show_time(app.tokens.expires_at),
    );
    println!(
        "sync with: b24sync sync --client-id {} --db {}",
        app.client_id,
        store.describe()
    );
    exit::OK
}

/// The authorization code, from the browser's redirect to `redirect_uri` (a loopback
/// listener on `--port`) after the administrator approves the app.
async fn code_from_browser(
    args: &AuthArgs,
    portal: &Url,
    redirect_uri: &str,
) -> Result<Secret, u8> {
    let state: String = {
        let mut rng = rand::thread_rng();
        (0..24)
            .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
            .collect()
    };
    let listener = match TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(l) => l,
        Err(e) => {
            return Err(config_error(&format!(
                "cannot listen on 127.0.0.1:{} for the browser's redirect ({e}); choose another --port \
                 (and the same in the app's redirect URI) or pass --code",
                args.port
            )))
        }
    };
    let url = authorize_url(portal, &args.client_id, &state);
    println!("Open this address in a browser logged in to Bitrix24 as a portal administrator:");
    println!("{url}");
    println!(
        "Waiting up to {} s for Bitrix24 to redirect the browser to {redirect_uri} (the app's redirect URI must be exactly that) ...",
        args.wait
    );
    match tokio::time::timeout(
        Duration::from_secs(args.wait),
        wait_for_code(&listener, &state),
    )
    .await
    {
        Ok(Ok(code)) => Ok(code),
        Ok(Err(msg)) => {
            super::ui::error(&msg);
            Err(exit::BITRIX_REFUSED)
        }
        Err(_) => {
            eprintln!(
                "error: no redirect from Bitrix24 within {} s; run `b24sync auth` again (or pass --code)",
                args.wait
            );
            Err(exit::BITRIX_UNREACHABLE)
        }
    }
}

/// Serves the loopback redirect until a request carries `code` with our `state`.
async fn wait_for_code(listener: &TcpListener, state: &str) -> Result<Secret, String> {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let mut buf = Vec::with_capacity(2048);
        let mut chunk = [0u8; 1024];
        // The request line is all we need; stop at the end of the headers or 16 KiB.
        while buf.len() < 16 * 1024 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        let query: Vec<(String, String)> = Url::parse(&format!("http://127.0.0.1{target}"))
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let (status, page, outcome) = match (get("code"), get("error")) {
            (_, Some(err)) => (
                "400 Bad Request",
                "Bitrix24 did not authorize the application. You can close this tab.",
                Some(Err(format!(
                    "Bitrix24 did not authorize the application: {err} {}",
                    get("error_description").unwrap_or_default()
                ))),
            ),
            (Some(code), _) if get("state").as_deref() == Some(state) => (
                "200 OK",
                "b24sync is authorized. You can close this tab.",
                Some(Ok(Secret::new(code))),
            ),
            (Some(_), _) => (
                "400 Bad Request",
                "This redirect does not belong to the running b24sync auth (state mismatch).",
                None,
            ),
            (None, _) => ("404 Not Found", "Not found.", None),
        };
        let html = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>b24sync</title></head><body><p>{page}</p></body></html>"
        );
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
            html.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        if let Some(outcome) = outcome {
            return outcome;
        }
    }
}

/// `b24sync token refresh|status`.
pub async fn token_command(command: &TokenCommand, file: &FileSettings) -> u8 {
    let (TokenCommand::Refresh(args) | TokenCommand::Status(args)) = command;
    let Some(client_id) = args
        .client_id
        .clone()
        .or_else(|| file.client_id.clone())
        .filter(|c| !c.trim().is_empty())
    else {
        let webhook_mode = args
            .webhook
            .as_ref()
            .or(file.webhook.as_ref())
            .is_some_and(|w| !w.trim().is_empty());
        if !webhook_mode {
            return config_error(
                "no application: pass --client-id or set B24SYNC_CLIENT_ID (the app authorized with `b24sync auth`)",
            );
        }
        let what = "webhook mode keeps no tokens: b24sync authenticates with the webhook URL \
                    (B24SYNC_WEBHOOK / webhook in the settings file) and stores nothing in bitrix_oauth; \
                    tokens exist only in OAuth application mode (`b24sync auth --client-id ...`)";
        return match command {
            TokenCommand::Status(_) => {
                println!("{what}");
                exit::OK
            }
            TokenCommand::Refresh(_) => config_error(&format!("nothing to refresh: {what}")),
        };
    };
    let db = db_of(&args.db, file);
    let store = match open_store(&db, DbOpen::MustExist).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let server = args
        .oauth_server
        .clone()
        .or_else(|| file.oauth_server.clone());
    match command {
        TokenCommand::Refresh(_) => token_refresh(store, &client_id, server.as_deref()).await,
        TokenCommand::Status(_) => token_status(store.as_ref(), &client_id, server).await,
    }
}

/// `token refresh`: a new access token now, stored.
async fn token_refresh(store: Arc<dyn TokenStore>, client_id: &str, server: Option<&str>) -> u8 {
    let session = match OAuthSession::open(store.clone(), client_id, server).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    match session.refresh_now().await {
        Ok(t) => {
            println!(
                "refreshed: app {client_id} on portal {}; new access token stored in bitrix_oauth of {}, valid until {}",
                t.domain,
                store.describe(),
                show_time(t.expires_at)
            );
            exit::OK
        }
        Err(e) => fail(&e),
    }
}

/// `token status`: what is stored, never the tokens.
async fn token_status(store: &dyn TokenStore, client_id: &str, server: Option<String>) -> u8 {
    let app = match store.load_app(client_id).await {
        Ok(Some(app)) => app,
        Ok(None) => {
            eprintln!(
                "error: {} holds no authorization for app {client_id}: run `b24sync auth --client-id {client_id} --portal PORTAL`",
                store.describe()
            );
            return exit::REAUTHORIZE;
        }
        Err(e) => {
            super::ui::error(&e.to_string());
            return exit::DATABASE;
        }
    };
    let t = &app.tokens;
    let now = Utc::now().timestamp();
    let left = t.expires_at - now;
    let state = if left > 0 {
        format!("valid for {} min", left / 60)
    } else {
        "expired; the next sync or `b24sync token refresh` renews it".to_string()
    };
    println!("app (client_id): {}", app.client_id);
    println!("portal:          {}", t.domain);
    println!("scope:           {}", t.scope);
    println!("member_id:       {}", t.member_id);
    println!("obtained:        {}", show_time(t.obtained_at.timestamp()));
    println!("expires:         {} ({state})", show_time(t.expires_at));
    println!(
        "OAuth server:    {}",
        server
            .or(app.oauth_server.clone())
            .unwrap_or_else(|| DEFAULT_OAUTH_SERVER.to_string())
    );
    println!("database:        {}", store.describe());
    exit::OK
}

/// `sync` in OAuth mode: a client whose requests carry the app's stored access token.
pub async fn oauth_client(s: &Settings, cancel: CancellationToken) -> Result<Bitrix24Client, u8> {
    let Some(client_id) = s.client_id.as_deref() else {
        return Err(config_error("no --client-id"));
    };
    let store = open_store(&s.db, s.db_open).await?;
    let session = OAuthSession::open(store, client_id, s.oauth_server.as_deref())
        .await
        .map_err(|e| fail(&e))?;
    let config = ClientConfig {
        rate: RateConfig {
            per_second: s.rate,
            burst: s.burst,
        },
        give_up_after: s
            .give_up_after
            .unwrap_or(b24sync::extract::client::DEFAULT_GIVE_UP_AFTER),
        ..ClientConfig::default()
    };
    Bitrix24Client::with_auth(Auth::OAuth(Arc::new(session)), config, cancel)
        .map_err(|e| super::run_error_code(&e.into()))
}
