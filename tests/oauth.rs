//! OAuth application mode end to end: real HTTP to the simulator's OAuth server and REST
//! endpoint, a real SQLite file, the binary for the command-line cases.

mod common;

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use b24sync::extract::client::{Auth, Bitrix24Client, ClientConfig};
use b24sync::extract::limits::RateConfig;
use b24sync::extract::oauth::{OAuthError, OAuthServer, OAuthSession};
use b24sync::extract::paging::Paging;
use b24sync::extract::ExtractError;
use b24sync::load::sqlite::SqliteSink;
use b24sync::model::oauth::{Secret, StoredApp};
use b24sync::run::{self, RunError, SyncOptions};
use b24sync::store::TokenStore;
use b24sync_simulator::{OAuthApp, Simulator, SimulatorConfig};
use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

const CLIENT_ID: &str = "local.test0app";
const CLIENT_SECRET: &str = "app0secret0value0xyz";
const HOUR_AND_A_BIT: Duration = Duration::from_secs(3601);

fn text(o: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn sim_with_app(leads: usize, latency: Duration, redirect_port: u16) -> Simulator {
    let sim = Simulator::start(SimulatorConfig {
        leads,
        latency,
        rate_limit: None,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    sim.register_oauth_app(OAuthApp {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uri: format!("http://127.0.0.1:{redirect_port}/"),
        scope: "crm,user".into(),
    });
    sim
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Plays the admin in the browser: approve, and read the code off the redirect.
async fn code_from_portal(sim: &Simulator) -> String {
    let resp = http()
        .get(sim.oauth_authorize_url(CLIENT_ID, "st"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let url = url::Url::parse(&location).unwrap();
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .unwrap();
    code
}

/// Authorizes in-process (what `b24sync auth --code` does) and returns the stored row.
async fn authorize(sim: &Simulator, db: &std::path::Path) -> StoredApp {
    let code = code_from_portal(sim).await;
    let server = OAuthServer::new(&sim.base_url()).unwrap();
    let tokens = server
        .exchange_code(
            CLIENT_ID,
            &Secret::new(CLIENT_SECRET),
            &Secret::new(code),
            &format!("{}/rest/", sim.base_url()),
        )
        .await
        .unwrap();
    let app = StoredApp {
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        redirect_uri: Some("http://127.0.0.1:1/".into()),
        oauth_server: Some(server.url()),
        tokens,
    };
    SqliteSink::open(db).unwrap().save_app(&app).await.unwrap();
    app
}

fn config() -> ClientConfig {
    ClientConfig {
        rate: RateConfig {
            per_second: 50.0,
            burst: 50,
        },
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..ClientConfig::default()
    }
}

async fn session(db: &std::path::Path) -> Arc<OAuthSession> {
    let store: Arc<dyn TokenStore> = Arc::new(SqliteSink::open(db).unwrap());
    Arc::new(OAuthSession::open(store, CLIENT_ID, None).await.unwrap())
}

fn client(session: Arc<OAuthSession>) -> Bitrix24Client {
    Bitrix24Client::with_auth(Auth::OAuth(session), config(), CancellationToken::new()).unwrap()
}

/// (access_token, refresh_token) as stored.
fn stored_pair(db: &std::path::Path) -> (String, String) {
    let rows = query_strings(
        db,
        "SELECT access_token, refresh_token FROM bitrix_oauth ORDER BY Id",
    );
    assert_eq!(rows.len(), 1, "one row per client_id: {rows:?}");
    (rows[0][0].clone().unwrap(), rows[0][1].clone().unwrap())
}

fn token_calls(sim: &Simulator) -> u64 {
    sim.stats()
        .by_method
        .get("oauth.token")
        .copied()
        .unwrap_or(0)
}

fn assert_no_secrets(output: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!s.is_empty());
        assert!(
            !output.contains(s),
            "a secret leaked into the output:\n{output}"
        );
    }
}

fn next_paging() -> SyncOptions {
    SyncOptions {
        paging: Paging::Next,
        solution_field: Some(SOLUTION.into()),
        batch_leads: 200,
        ..SyncOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_with_the_loopback_listener_stores_a_working_row() {
    let port = free_port();
    let sim = sim_with_app(120, Duration::ZERO, port).await;
    let db = test_db();
    let mut child = b24sync()
        .args(["auth", "--client-id", CLIENT_ID, "--portal"])
        .arg(sim.base_url())
        .args(["--port", &port.to_string(), "--oauth-server"])
        .arg(sim.base_url())
        .arg("--db")
        .arg(&db.path)
        .env("B24SYNC_CLIENT_SECRET", CLIENT_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let authorize_url = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("auth prints the authorize URL")
            .unwrap()
            .expect("stdout open");
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("http") {
            break line;
        }
    };
    assert!(
        authorize_url.starts_with(&format!("{}/oauth/authorize/?client_id=", sim.base_url())),
        "{authorize_url}"
    );
    // The browser: the portal redirects to the app's redirect URI with the code.
    let resp = http().get(&authorize_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("http://127.0.0.1:{port}/?code=")),
        "{location}"
    );
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .unwrap();
    let page = http().get(&location).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("close this tab"));

    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let all = format!("{printed}{}", text(&out));
    assert_eq!(out.status.code(), Some(0), "{all}");

    let rows = query_strings(
        &db.path,
        "SELECT client_id, client_secret, redirect_uri, expires_in, scope, domain, member_id, user_id, code, \
         dateexec IS NOT NULL, length(access_token) > 10, length(refresh_token) > 10 FROM bitrix_oauth",
    );
    let host = sim.base_url().trim_start_matches("http://").to_string();
    let redirect = format!("http://127.0.0.1:{port}/");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r[0].as_deref(), Some(CLIENT_ID));
    assert_eq!(r[1].as_deref(), Some(CLIENT_SECRET));
    assert_eq!(r[2].as_deref(), Some(redirect.as_str()));
    assert_eq!(r[3].as_deref(), Some("3600"));
    assert_eq!(r[4].as_deref(), Some("crm,user"));
    assert_eq!(r[5].as_deref(), Some(host.as_str()), "domain = the portal");
    assert!(r[6].as_deref().is_some_and(|m| !m.is_empty()));
    assert_eq!(r[7].as_deref(), Some("1"));
    assert_eq!(r[8], None, "the spent code is not kept");
    assert_eq!(
        &r[9..],
        &[Some("1".into()), Some("1".into()), Some("1".into())]
    );
    let (access, refresh) = stored_pair(&db.path);
    assert_no_secrets(&all, &[CLIENT_SECRET, &code, &access, &refresh]);

    // The stored pair works: a sync in OAuth mode needs no further token call.
    sim.reset_stats();
    let out = run_cmd(
        b24sync()
            .args([
                "sync",
                "--solution-field",
                SOLUTION,
                "--client-id",
                CLIENT_ID,
                "--db",
            ])
            .arg(&db.path),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("OAuth app local.test0app"),
        "the start line names the mode: {}",
        text(&out)
    );
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"), 120);
    assert_eq!(token_calls(&sim), 0);
    assert_no_secrets(&text(&out), &[CLIENT_SECRET, &code, &access, &refresh]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_with_code_then_status_refresh_and_sync_never_print_a_secret() {
    let sim = sim_with_app(80, Duration::ZERO, 1).await;
    let db = test_db();
    let code = code_from_portal(&sim).await;
    let mut outputs = String::new();
    let out = run_cmd(
        b24sync()
            .args(["-vv", "auth", "--client-id", CLIENT_ID, "--portal"])
            .arg(sim.base_url())
            .args(["--code", &code, "--oauth-server"])
            .arg(sim.base_url())
            .arg("--db")
            .arg(&db.path)
            .env("B24SYNC_CLIENT_SECRET", CLIENT_SECRET),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    outputs.push_str(&text(&out));
    let first = stored_pair(&db.path);

    let out = run_cmd(
        b24sync()
            .args(["-vv", "token", "status", "--client-id", CLIENT_ID, "--db"])
            .arg(&db.path),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status = text(&out);
    assert!(
        status.contains("crm,user") && status.contains(CLIENT_ID),
        "{status}"
    );
    assert!(
        status.contains("expires:") && status.contains("obtained:"),
        "{status}"
    );
    outputs.push_str(&status);

    let out = run_cmd(
        b24sync()
            .args(["-vv", "token", "refresh", "--db"])
            .arg(&db.path)
            .env("B24SYNC_CLIENT_ID", CLIENT_ID),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    outputs.push_str(&text(&out));
    let second = stored_pair(&db.path);
    assert_ne!(first, second, "token refresh stores a new pair");
    assert_eq!(token_calls(&sim), 2, "code exchange + one refresh");

    sim.portal().advance_clock(HOUR_AND_A_BIT);
    let out = run_cmd(
        b24sync()
            .args(["-vv", "sync", "--solution-field", SOLUTION, "--db"])
            .arg(&db.path)
            .env("B24SYNC_CLIENT_ID", CLIENT_ID),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    outputs.push_str(&text(&out));
    let third = stored_pair(&db.path);
    assert_ne!(second, third);
    assert_eq!(token_calls(&sim), 3);

    assert_no_secrets(
        &outputs,
        &[
            CLIENT_SECRET,
            &code,
            &first.0,
            &first.1,
            &second.0,
            &second.1,
            &third.0,
            &third.1,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_expiring_mid_export_is_refreshed_once_and_every_lead_loads() {
    let sim = sim_with_app(1500, Duration::from_millis(40), 1).await;
    let db = test_db();
    let before = authorize(&sim, &db.path).await;
    sim.reset_stats();

    let portal = sim.portal();
    let stats_sim = Arc::new(sim);
    let watcher = {
        let sim = Arc::clone(&stats_sim);
        tokio::spawn(async move {
            // A few pages in, the hour is over.
            loop {
                let pages = sim
                    .stats()
                    .by_method
                    .get("crm.lead.list")
                    .copied()
                    .unwrap_or(0);
                if pages >= 5 {
                    portal.advance_clock(HOUR_AND_A_BIT);
                    return pages;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let session = session(&db.path).await;
    let client = client(Arc::clone(&session));
    let sink = run::RunStores::from(&SqliteSink::open(&db.path).unwrap().into_stores());
    let summary = run::sync(&client, &sink, &next_paging(), CancellationToken::new())
        .await
        .unwrap();
    let advanced_at = watcher.await.unwrap();
    let sim = stats_sim;
    assert!(
        advanced_at < 30,
        "the clock moved during the export ({advanced_at} pages)"
    );
    assert_eq!(summary.leads_read, 1500);
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"), 1500);
    assert_eq!(token_calls(&sim), 1, "exactly one refresh");
    assert_eq!(session.refreshes(), 1);
    let (access, refresh) = stored_pair(&db.path);
    assert_ne!(access, before.tokens.access_token.expose());
    assert_ne!(refresh, before.tokens.refresh_token.expose());
    assert_eq!(sim.live_refresh_tokens(CLIENT_ID), 1);
    // The stored pair is the live one: a new session works without refreshing.
    let again = session_call_ok(&db.path).await;
    assert_eq!(again, 0);
    assert_eq!(token_calls(&sim), 1);
}

/// One REST call through a fresh session; returns the refreshes it needed.
async fn session_call_ok(db: &std::path::Path) -> u64 {
    let s = session(db).await;
    client(Arc::clone(&s))
        .call("crm.lead.list", &json!({"select": ["ID"]}))
        .await
        .unwrap();
    s.refreshes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_storing_refreshed_tokens_leaves_working_tokens() {
    let sim = sim_with_app(200, Duration::ZERO, 1).await;
    let db = test_db();
    let before = authorize(&sim, &db.path).await;
    sim.reset_stats();
    sim.portal().advance_clock(HOUR_AND_A_BIT);

    // The run "dies" right after the new pair is written, before any request uses it.
    let store: Arc<dyn TokenStore> = Arc::new(SqliteSink::open(&db.path).unwrap());
    let crashing = OAuthSession::open(store, CLIENT_ID, None)
        .await
        .unwrap()
        .with_after_store_hook(Arc::new(|| Err("killed".to_string())));
    let client = client(Arc::new(crashing));
    let sink = run::RunStores::from(&SqliteSink::open(&db.path).unwrap().into_stores());
    let err = run::sync(&client, &sink, &next_paging(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RunError::Extract(ExtractError::OAuth(OAuthError::Injected(_)))
        ),
        "{err:?}"
    );
    assert_eq!(token_calls(&sim), 1);
    let stored = stored_pair(&db.path);
    assert_ne!(stored.0, before.tokens.access_token.expose());
    drop(client);
    drop(sink);

    // A following run uses the stored pair as it is: no re-authorization, no refresh.
    let s = session(&db.path).await;
    let sink = run::RunStores::from(&SqliteSink::open(&db.path).unwrap().into_stores());
    let summary = run::sync(
        &client_of(&s),
        &sink,
        &next_paging(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(summary.leads_read, 200);
    assert_eq!(s.refreshes(), 0);
    assert_eq!(token_calls(&sim), 1);
    assert_eq!(stored_pair(&db.path), stored);
}

fn client_of(s: &Arc<OAuthSession>) -> Bitrix24Client {
    client(Arc::clone(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_refreshers_leave_one_valid_pair_and_both_succeed() {
    let sim = sim_with_app(100, Duration::from_millis(20), 1).await;
    let db = test_db();
    authorize(&sim, &db.path).await;
    sim.reset_stats();
    // Two "processes": separate sink handles (connections) and separate sessions.
    let (a, b) = (session(&db.path).await, session(&db.path).await);
    let (ca, cb) = (client_of(&a), client_of(&b));
    sim.portal().advance_clock(HOUR_AND_A_BIT);
    let params = json!({"select": ["ID"]});
    let (ra, rb) = tokio::join!(
        ca.call("crm.lead.list", &params),
        cb.call("crm.lead.list", &params)
    );
    ra.unwrap();
    rb.unwrap();
    assert_eq!(
        token_calls(&sim),
        1,
        "the second refresher used the first one's pair"
    );
    assert_eq!(a.refreshes() + b.refreshes(), 1);
    assert_eq!(sim.live_refresh_tokens(CLIENT_ID), 1);
    assert_eq!(session_call_ok(&db.path).await, 0);

    // Two processes that both insist on refreshing serialize on the lock: both succeed,
    // the second one refreshing with the first one's new refresh token.
    sim.reset_stats();
    let refresh = || {
        let mut c = b24sync();
        c.args(["token", "refresh", "--client-id", CLIENT_ID, "--db"])
            .arg(&db.path);
        c
    };
    let (mut c1, mut c2) = (refresh(), refresh());
    let (o1, o2) = tokio::join!(run_cmd(&mut c1), run_cmd(&mut c2));
    assert_eq!(o1.status.code(), Some(0), "{}", text(&o1));
    assert_eq!(o2.status.code(), Some(0), "{}", text(&o2));
    assert_eq!(token_calls(&sim), 2);
    assert_eq!(sim.live_refresh_tokens(CLIENT_ID), 1);
    assert_eq!(session_call_ok(&db.path).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_authorization_stops_the_run_with_exit_8() {
    let sim = sim_with_app(100, Duration::ZERO, 1).await;
    let db = test_db();
    let app = authorize(&sim, &db.path).await;
    let row_before = query_strings(&db.path, "SELECT * FROM bitrix_oauth");
    sim.revoke_oauth(CLIENT_ID);
    let out = run_cmd(
        b24sync()
            .args(["sync", "--client-id", CLIENT_ID, "--db"])
            .arg(&db.path),
    )
    .await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(8), "{all}");
    let host = sim.base_url().trim_start_matches("http://").to_string();
    assert!(
        all.contains("the Bitrix24 authorization has expired or was revoked")
            && all.contains(&format!(
                "run `b24sync auth --client-id {CLIENT_ID} --portal {host}` again"
            )),
        "{all}"
    );
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"), 0);
    assert_eq!(
        query_strings(&db.path, "SELECT * FROM bitrix_oauth"),
        row_before
    );
    assert_no_secrets(
        &all,
        &[
            CLIENT_SECRET,
            app.tokens.access_token.expose(),
            app.tokens.refresh_token.expose(),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_refresh_token_asks_for_a_new_authorization() {
    let sim = sim_with_app(10, Duration::ZERO, 1).await;
    let db = test_db();
    authorize(&sim, &db.path).await;
    sim.portal()
        .advance_clock(Duration::from_secs(181 * 24 * 3600));
    let out = run_cmd(
        b24sync()
            .args(["token", "refresh", "--client-id", CLIENT_ID, "--db"])
            .arg(&db.path),
    )
    .await;
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    assert!(text(&out).contains("invalid_grant"), "{}", text(&out));

    // An app never authorized in this database: the same advice.
    let other = test_db();
    let out = run_cmd(
        b24sync()
            .args(["sync", "--client-id", CLIENT_ID, "--db"])
            .arg(&other.path),
    )
    .await;
    assert_eq!(out.status.code(), Some(8), "{}", text(&out));
    assert!(text(&out).contains("b24sync auth"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_and_client_id_together_are_a_configuration_error() {
    let sim = sim_with_app(10, Duration::ZERO, 1).await;
    let db = test_db();
    let out = run_cmd(
        b24sync()
            .args(["sync", "--client-id", CLIENT_ID, "--db"])
            .arg(&db.path)
            .env("B24SYNC_WEBHOOK", sim.webhook_url()),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--webhook") && text(&out).contains("--client-id"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("sim0secret0webhook"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_enforces_the_oauth_rules() {
    let sim = sim_with_app(5, Duration::ZERO, 1).await;
    let base = sim.base_url();
    let token = |params: Vec<(&'static str, String)>| {
        let url = format!("{base}/oauth/token/");
        async move {
            let r = http().get(url).query(&params).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let exchange = |code: String, secret: &'static str| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("client_id", CLIENT_ID.to_string()),
            ("client_secret", secret.to_string()),
            ("code", code),
        ]
    };
    let refresh = |rt: &str| {
        vec![
            ("grant_type", "refresh_token".to_string()),
            ("client_id", CLIENT_ID.to_string()),
            ("client_secret", CLIENT_SECRET.to_string()),
            ("refresh_token", rt.to_string()),
        ]
    };
    let rest = |auth: String| {
        let url = format!("{base}/rest/crm.lead.list");
        async move {
            let r = http()
                .post(url)
                .json(&json!({"auth": auth}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };

    // Wrong secret: 401 invalid_client. A code older than 30 s: 400 invalid_grant.
    let code = code_from_portal(&sim).await;
    let (s, b) = token(exchange(code.clone(), "wrong")).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    sim.portal().advance_clock(Duration::from_secs(31));
    let (s, b) = token(exchange(code, CLIENT_SECRET)).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));

    // A fresh code works once.
    let code = code_from_portal(&sim).await;
    let (s, first) = token(exchange(code.clone(), CLIENT_SECRET)).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["expires_in"], json!(3600));
    assert_eq!(first["client_endpoint"], json!(format!("{base}/rest/")));
    assert_eq!(first["status"], json!("L"));
    let (s, _) = token(exchange(code, CLIENT_SECRET)).await;
    assert_eq!(s, 400, "codes are single-use");
    let access1 = first["access_token"].as_str().unwrap().to_string();
    let refresh1 = first["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(rest(access1.clone()).await.0, 200);

    // Rotation: the old refresh token and its access token die with the refresh.
    let (s, second) = token(refresh(&refresh1)).await;
    assert_eq!(s, 200, "{second}");
    let (s, b) = rest(access1).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_token")));
    let (s, b) = token(refresh(&refresh1)).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    let access2 = second["access_token"].as_str().unwrap().to_string();
    assert_eq!(rest(access2.clone()).await.0, 200);

    // An hour later the access token has expired; no token at all is NO_AUTH_FOUND.
    sim.portal().advance_clock(HOUR_AND_A_BIT);
    let (s, b) = rest(access2).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("expired_token")));
    let r = http()
        .post(format!("{base}/rest/crm.lead.list"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(token_calls(&sim), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_right_after_a_refresh_leaves_tokens_the_next_run_uses() {
    let sim = sim_with_app(3000, Duration::from_millis(50), 1).await;
    let db = test_db();
    let before = authorize(&sim, &db.path).await;
    let old = (
        before.tokens.access_token.expose().to_string(),
        before.tokens.refresh_token.expose().to_string(),
    );
    sim.reset_stats();
    let mut child = b24sync()
        .args(["sync", "--paging", "next", "--client-id", CLIENT_ID, "--db"])
        .arg(&db.path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A few pages in, the hour is over; as soon as the new pair is in the database the
    // process dies (SIGKILL: no cleanup of any kind).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut advanced = false;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no refresh seen");
        let pages = sim
            .stats()
            .by_method
            .get("crm.lead.list")
            .copied()
            .unwrap_or(0);
        if !advanced && pages >= 3 {
            sim.portal().advance_clock(HOUR_AND_A_BIT);
            advanced = true;
        }
        if advanced && stored_pair(&db.path) != old {
            child.start_kill().unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), None, "killed before it finished");
    assert_eq!(token_calls(&sim), 1);
    let stored = stored_pair(&db.path);

    let out = run_cmd(
        b24sync()
            .args([
                "sync",
                "--solution-field",
                SOLUTION,
                "--client-id",
                CLIENT_ID,
                "--db",
            ])
            .arg(&db.path),
    )
    .await;
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", text(&out));
    assert_eq!(count(&db.path, "SELECT COUNT(*) FROM bitrix_leads"), 3000);
    assert_eq!(
        token_calls(&sim),
        1,
        "no second refresh, no re-authorization"
    );
    assert_eq!(stored_pair(&db.path), stored);
}
