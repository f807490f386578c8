//! `b24sync serve` end to end: the simulator posts outbound events (an outgoing webhook, as
//! the portal's UI sets it up) to the real binary over HTTP, and the SQLite tables follow
//! within seconds; refusals (token, domain, size, shape) with the log free of secrets; a
//! flood of one ID read once; SIGKILL at random moments while events arrive, then a restart,
//! and the tables equal the portal.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use b24sync::model::{ColumnKind, LEAD_COLUMNS};
use b24sync_simulator::{EventsConfig, OutgoingWebhook, Simulator, SimulatorConfig};
use common::*;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

const TOKEN: &str = "serve0test0application0token0x1";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn portal(leads: usize, port: u16) -> Simulator {
    Simulator::start(SimulatorConfig {
        leads,
        rate_limit: None,
        events: EventsConfig {
            outgoing: vec![OutgoingWebhook {
                events: ["ONCRMLEADADD", "ONCRMLEADUPDATE", "ONCRMLEADDELETE"]
                    .map(String::from)
                    .to_vec(),
                handler: format!("http://127.0.0.1:{port}/"),
                application_token: TOKEN.into(),
            }],
            ..EventsConfig::default()
        },
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// A running `b24sync serve`, its log going to a file.
struct Served {
    child: tokio::process::Child,
    log: PathBuf,
    port: u16,
}

impl Served {
    async fn start(sim: &Simulator, db: &Path, port: u16, log: PathBuf) -> Served {
        let webhook = ["--webhook".to_string(), sim.webhook_url()];
        Served::start_with(db, port, log, &webhook).await
    }

    /// With these credentials (a webhook, or an OAuth app's flags).
    async fn start_with(db: &Path, port: u16, log: PathBuf, auth: &[String]) -> Served {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut cmd = b24sync();
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(auth)
            .args(["--db", &db.to_string_lossy()])
            .args(["--solution-field", SOLUTION])
            .args(["--reconcile-every", "1h", "-v"])
            .env("B24SYNC_APPLICATION_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        let child = cmd.spawn().expect("serve starts");
        Served { child, log, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Wait until /health answers 200 (the first reconcile is done).
    async fn healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(self.url("/health")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "serve never became healthy:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    #[cfg(unix)]
    fn kill(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }

    async fn stop(mut self) -> String {
        #[cfg(unix)]
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        #[cfg(not(unix))]
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        self.log_text()
    }
}

/// A title as `bitrix_leads.sql_TITLE` holds it (cut to the column's UTF-16 length).
fn stored_title(raw: Option<String>) -> Option<String> {
    let max = LEAD_COLUMNS
        .iter()
        .find(|c| c.field == "TITLE")
        .and_then(|c| match c.kind {
            ColumnKind::Text { max_chars } => Some(max_chars),
            _ => None,
        })
        .expect("TITLE is text");
    raw.map(|t| {
        let mut used = 0;
        t.chars()
            .take_while(|c| {
                used += c.len_utf16();
                used <= max
            })
            .collect()
    })
}

type Snapshot = BTreeMap<i64, (Option<String>, Vec<ContactTuple>)>;

fn portal_snapshot(sim: &Simulator) -> Snapshot {
    sim.portal()
        .leads()
        .iter()
        .map(|lead| {
            let id: i64 = text_field(lead, "ID")
                .and_then(|s| s.parse().ok())
                .expect("ID");
            (
                id,
                (
                    stored_title(text_field(lead, "TITLE")),
                    expected_contacts(lead),
                ),
            )
        })
        .collect()
}

fn db_snapshot(db: &Path) -> Snapshot {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return Snapshot::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT sql_ID, sql_TITLE FROM bitrix_leads") else {
        return Snapshot::new();
    };
    let rows: Vec<(i64, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default();
    rows.into_iter()
        .map(|(id, title)| (id, (title, stored_contacts(db, id))))
        .collect()
}

/// Wait (at most `secs`) until the database equals the portal; the time it took.
async fn until_equal(sim: &Simulator, db: &Path, secs: u64, served: &Served) -> Duration {
    let start = Instant::now();
    loop {
        let (p, d) = (portal_snapshot(sim), db_snapshot(db));
        if p == d {
            return start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let missing: Vec<_> = p.keys().filter(|k| !d.contains_key(k)).take(5).collect();
            let extra: Vec<_> = d.keys().filter(|k| !p.contains_key(k)).take(5).collect();
            let differ: Vec<_> = p
                .iter()
                .filter(|(k, v)| d.get(k).is_some_and(|dv| dv != *v))
                .map(|(k, _)| k)
                .take(5)
                .collect();
            panic!(
                "the database does not follow the portal after {secs} s: missing {missing:?}, \
                 extra {extra:?}, differing {differ:?}\n{}",
                served.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn title(t: &str) -> impl FnOnce(&mut Map<String, Value>) + '_ {
    move |m| {
        m.insert("TITLE".into(), json!(t));
    }
}

fn new_lead(t: &str, phone: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("TITLE".into(), json!(t));
    m.insert(
        "PHONE".into(),
        json!([{"VALUE": phone, "VALUE_TYPE": "WORK"}]),
    );
    m
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

async fn post(url: &str, ctype: &str, body: impl Into<reqwest::Body>) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_adds_and_deletes_reach_the_tables_within_seconds() {
    let port = free_port();
    let sim = portal(40, port).await;
    let db = test_db();
    let served = Served::start(&sim, &db.path, port, db.path.with_extension("log")).await;
    served.healthy().await;
    until_equal(&sim, &db.path, 10, &served).await;

    let p = sim.portal();
    assert!(p.update_lead(7, title("edited by an operator")));
    let edited = until_equal(&sim, &db.path, 5, &served).await;
    let added = p.add_lead(new_lead("a new caller", "+7 912 000-11-22"));
    let add = until_equal(&sim, &db.path, 5, &served).await;
    assert!(db_snapshot(&db.path).contains_key(&added));
    assert!(p.delete_lead(3));
    let delete = until_equal(&sim, &db.path, 5, &served).await;
    assert!(!db_snapshot(&db.path).contains_key(&3));
    eprintln!("event to row: edit {edited:?}, add {add:?}, delete {delete:?}");

    let health: Value = reqwest::get(served.url("/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("JSON");
    assert_eq!(health["status"], json!("ok"), "{health}");
    assert_eq!(health["queue_depth"], json!(0), "{health}");
    let metrics = reqwest::get(served.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for want in [
        "b24sync_events_total{outcome=\"queued\"} 3",
        "b24sync_records_synced_total{entity=\"lead\",kind=\"deleted\"} 1",
        "b24sync_event_lag_seconds_count 3",
        "b24sync_queue_depth 0",
        "b24sync_runs_total{status=",
    ] {
        assert!(metrics.contains(want), "{want} in\n{metrics}");
    }
    let log = served.stop().await;
    assert!(!log.contains(TOKEN), "the token was logged:\n{log}");
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM b24sync_event_queue"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_from_anyone_else_are_refused_and_the_log_keeps_no_secret() {
    let port = free_port();
    let sim = portal(10, port).await;
    let db = test_db();
    let served = Served::start(&sim, &db.path, port, db.path.with_extension("log")).await;
    served.healthy().await;
    let domain = sim.webhook_url();
    let domain = domain
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host")
        .to_string();
    let url = served.url("/");
    let event = |token: Option<&str>, domain: &str, id: &str| {
        let mut pairs = vec![
            ("event", "ONCRMLEADUPDATE"),
            ("data[FIELDS][ID]", id),
            ("ts", "1700000000"),
            ("auth[domain]", domain),
        ];
        if let Some(t) = token {
            pairs.push(("auth[application_token]", t));
        }
        form(&pairs)
    };
    let guess = "guessed0token0that0is0not0right";
    assert_eq!(
        post(&url, FORM, event(Some(guess), &domain, "1")).await,
        401
    );
    assert_eq!(post(&url, FORM, event(None, &domain, "1")).await, 401);
    assert_eq!(
        post(&url, FORM, event(Some(TOKEN), "evil.example", "1")).await,
        403
    );
    assert_eq!(
        post(&url, FORM, event(Some(TOKEN), &domain, "x1")).await,
        400
    );
    assert_eq!(post(&url, FORM, "not a form").await, 400);
    assert_eq!(post(&url, "application/json", "{\"event\":1}").await, 415);
    let huge = format!(
        "{}&pad={}",
        event(Some(TOKEN), &domain, "1"),
        "x".repeat(70 * 1024)
    );
    assert_eq!(post(&url, FORM, huge).await, 413);
    // Nothing of that was queued; a genuine event still is.
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM b24sync_event_queue"),
        0
    );
    assert_eq!(
        post(&url, FORM, event(Some(TOKEN), &domain, "2")).await,
        200
    );

    let log = served.stop().await;
    assert!(log.contains("wrong application token"), "{log}");
    assert!(log.contains("no application token"), "{log}");
    assert!(log.contains("event from another portal"), "{log}");
    assert!(
        !log.contains(TOKEN),
        "the configured token was logged:\n{log}"
    );
    assert!(!log.contains(guess), "the token sent was logged:\n{log}");
    assert!(
        !log.contains("/rest/1/"),
        "the webhook URL was logged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_one_lead_is_read_once() {
    let port = free_port();
    let sim = portal(20, port).await;
    let db = test_db();
    let served = Served::start(&sim, &db.path, port, db.path.with_extension("log")).await;
    served.healthy().await;
    until_equal(&sim, &db.path, 10, &served).await;
    // Hold the run lock (as a `sync` in another process would) while the flood arrives:
    // every event coalesces into one queued row, read once the lock is free.
    let sink = b24sync::load::sqlite::SqliteSink::open(&db.path).expect("open");
    let stores = sink.into_stores();
    let guard = stores
        .lock
        .lock_run(Duration::from_secs(5))
        .await
        .expect("lock");
    sim.reset_stats();
    let p = sim.portal();
    for i in 0..200 {
        assert!(p.update_lead(5, title(&format!("edit {i}"))));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while {
        let e = sim.event_stats();
        e.sent + e.failed < 200
    } && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queued = count(&db.path, "SELECT COUNT(*) FROM b24sync_event_queue");
    assert_eq!(queued, 1, "200 events, one queued row");
    guard.release().await.expect("release");
    let took = until_equal(&sim, &db.path, 10, &served).await;
    let stats = sim.stats();
    let reads = stats.by_method.get("crm.lead.list").copied().unwrap_or(0);
    eprintln!(
        "flood of 200 events: {reads} crm.lead.list read(s), {} HTTP requests, {took:?} after the lock",
        stats.http_requests
    );
    assert_eq!(reads, 1, "{:?}", stats.by_method);
    served.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_events_arrive_then_a_restart_leaves_the_portal_s_tables() {
    let port = free_port();
    let sim = portal(60, port).await;
    let db = test_db();
    let log = db.path.with_extension("log");
    let mut served = Served::start(&sim, &db.path, port, log.clone()).await;
    served.healthy().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let p = sim.portal();
    let mut deleted = 0;
    for round in 0..3 {
        let kill_at = Instant::now() + Duration::from_millis(rng.gen_range(100..900));
        while Instant::now() < kill_at {
            let ids = p.lead_ids();
            let id = ids[rng.gen_range(0..ids.len())];
            match rng.gen_range(0..10) {
                0 if deleted < 6 => {
                    p.delete_lead(id);
                    deleted += 1;
                }
                1 => {
                    p.add_lead(new_lead(
                        &format!("added in round {round}"),
                        "+7 900 555-00-00",
                    ));
                }
                _ => {
                    p.update_lead(
                        id,
                        title(&format!("round {round} edit {}", rng.gen::<u32>())),
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(5..40))).await;
        }
        served.kill();
        let _ = served.child.wait().await;
        // A few changes while it is down: their events reach no one.
        let ids = p.lead_ids();
        p.update_lead(
            ids[rng.gen_range(0..ids.len())],
            title(&format!("while down {round}")),
        );
        if deleted < 6 {
            p.delete_lead(ids[rng.gen_range(0..ids.len())]);
            deleted += 1;
        }
        served = Served::start(&sim, &db.path, port, log.clone()).await;
        served.healthy().await;
    }
    let settled = until_equal(&sim, &db.path, 20, &served).await;
    eprintln!("after 3 SIGKILLs: the tables equal the portal {settled:?} after the last restart");
    let text = served.stop().await;
    assert!(!text.contains(TOKEN));
}

// ---- Offline events (an OAuth application) ----

const CLIENT_ID: &str = "local.serve0app";
const CLIENT_SECRET: &str = "serve0app0secret0value";

/// Authorizes the app in-process (what `b24sync auth --code` does) into `db`; the access
/// token expires in `expires_in` seconds when given.
async fn authorize(sim: &Simulator, db: &Path) {
    authorize_expiring(sim, db, None).await
}

async fn authorize_expiring(sim: &Simulator, db: &Path, expires_in: Option<i64>) {
    use b24sync::extract::oauth::OAuthServer;
    use b24sync::model::oauth::{Secret, StoredApp};
    use b24sync::store::TokenStore;
    sim.register_oauth_app(b24sync_simulator::OAuthApp {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uri: "http://127.0.0.1:1/".into(),
        scope: "crm,user".into(),
    });
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(sim.oauth_authorize_url(CLIENT_ID, "st"))
        .send()
        .await
        .expect("authorize");
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let code = url::Url::parse(&location)
        .expect("URL")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .expect("code");
    let server = OAuthServer::new(&sim.base_url()).expect("server");
    let mut tokens = server
        .exchange_code(
            CLIENT_ID,
            &Secret::new(CLIENT_SECRET),
            &Secret::new(code),
            &format!("{}/rest/", sim.base_url()),
        )
        .await
        .expect("tokens");
    if let Some(secs) = expires_in {
        tokens.expires_at = chrono::Utc::now().timestamp() + secs;
    }
    let app = StoredApp {
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        redirect_uri: Some("http://127.0.0.1:1/".into()),
        oauth_server: Some(server.url()),
        tokens,
    };
    b24sync::load::sqlite::SqliteSink::open(db)
        .expect("open")
        .save_app(&app)
        .await
        .expect("save");
}

async fn events_cmd(args: &[&str], db: &Path) -> (i32, String) {
    let out = run_cmd(b24sync().arg("events").args(args).args([
        "--client-id",
        CLIENT_ID,
        "--db",
        &db.to_string_lossy(),
    ]))
    .await;
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_events_reach_the_tables_and_leave_the_portal_s_queue() {
    let sim = Simulator::start(SimulatorConfig {
        leads: 20,
        rate_limit: None,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    let db = test_db();
    authorize(&sim, &db.path).await;
    let (code, out) = events_cmd(&["bind", "--offline"], &db.path).await;
    assert_eq!(code, 0, "{out}");
    // Three events for each entity b24sync syncs (leads, contacts, companies).
    assert_eq!(out.matches("(offline)").count(), 9, "{out}");
    let (code, out) = events_cmd(&["status"], &db.path).await;
    assert_eq!(code, 0, "{out}");
    for e in ["LEAD", "CONTACT", "COMPANY"] {
        for action in ["ADD", "UPDATE", "DELETE"] {
            assert!(out.contains(&format!("ONCRM{e}{action}\toffline")), "{out}");
        }
    }
    let (code, out) = events_cmd(&["bind"], &db.path).await;
    assert_eq!(code, 2, "outbound needs a handler: {out}");

    let port = free_port();
    let auth: Vec<String> = ["--client-id", CLIENT_ID, "--offline-poll", "1s"]
        .map(String::from)
        .to_vec();
    let log = db.path.with_extension("log");
    // Offline events carry no token, but serve needs one for its POST endpoint.
    let served = Served::start_with(&db.path, port, log, &auth).await;
    served.healthy().await;
    until_equal(&sim, &db.path, 10, &served).await;
    let p = sim.portal();
    assert!(p.update_lead(4, title("changed while offline events are read")));
    assert!(p.delete_lead(9));
    p.add_lead(new_lead("offline newcomer", "+7 913 111-22-33"));
    assert!(sim.offline_queue_len(CLIENT_ID) >= 3);
    let took = until_equal(&sim, &db.path, 10, &served).await;
    eprintln!("offline events to rows: {took:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while sim.offline_queue_len(CLIENT_ID) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sim.offline_queue_len(CLIENT_ID), 0, "cleared once queued");
    // Quiet now: one request per poll (a clear rides with the next get in one batch).
    sim.reset_stats();
    tokio::time::sleep(Duration::from_millis(3_300)).await;
    let stats = sim.stats();
    let gets = stats
        .by_method
        .get("event.offline.get")
        .copied()
        .unwrap_or(0);
    eprintln!(
        "quiet for 3.3 s at --offline-poll 1s: {} request(s), {gets} event.offline.get",
        stats.http_requests
    );
    assert!(
        (2..=4).contains(&stats.http_requests),
        "{:?}",
        stats.by_method
    );
    assert_eq!(
        stats.http_requests, gets,
        "every request is one poll: {:?}",
        stats.by_method
    );
    let metrics = reqwest::get(served.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("b24sync_events_total{outcome=\"queued\"} 3"),
        "{metrics}"
    );
    let log_text = served.stop().await;
    assert!(log_text.contains("polling offline events"), "{log_text}");
    assert!(!log_text.contains(CLIENT_SECRET) && !log_text.contains(TOKEN));
    let (code, out) = events_cmd(&["unbind", "--offline"], &db.path).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("1 binding(s)").count(), 9, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_token_fresh_renews_the_tokens_before_they_expire() {
    let sim = Simulator::start(SimulatorConfig {
        leads: 5,
        rate_limit: None,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    let db = test_db();
    // Valid for 200 s more: no request needs a refresh yet, the keep-alive (5 minutes
    // ahead) renews it within seconds.
    authorize_expiring(&sim, &db.path, Some(200)).await;
    let before = query_strings(&db.path, "SELECT access_token FROM bitrix_oauth");
    sim.reset_stats();
    let port = free_port();
    let auth: Vec<String> = ["--client-id", CLIENT_ID, "--keep-token-fresh"]
        .map(String::from)
        .to_vec();
    let served = Served::start_with(&db.path, port, db.path.with_extension("log"), &auth).await;
    served.healthy().await;
    let refreshes = |sim: &Simulator| {
        sim.stats()
            .by_method
            .get("oauth.token")
            .copied()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while refreshes(&sim) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refreshes(&sim), 1, "one refresh, ahead of the expiry");
    // The portal answered the refresh; the new pair is stored right after.
    let stored = Instant::now() + Duration::from_secs(10);
    let mut after = query_strings(&db.path, "SELECT access_token FROM bitrix_oauth");
    while after == before && Instant::now() < stored {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = query_strings(&db.path, "SELECT access_token FROM bitrix_oauth");
    }
    assert_ne!(before, after, "the new pair is stored");
    let log = served.stop().await;
    assert!(log.contains("renewed the OAuth tokens"), "{log}");
    assert!(!log.contains(CLIENT_SECRET));
    assert_eq!(
        refreshes(&sim),
        1,
        "and not again while the new pair is fresh"
    );
}

#[tokio::test]
async fn serve_without_a_token_and_events_without_an_app_say_what_is_missing() {
    let db = test_db();
    let out = run_cmd(b24sync().args([
        "serve",
        "--webhook",
        "https://acme.bitrix24.ru/rest/1/abc123xyz/",
        "--db",
        &db.path.to_string_lossy(),
    ]))
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--application-token") && err.contains("B24SYNC_APPLICATION_TOKEN"),
        "{err}"
    );
    assert!(!err.contains("abc123xyz"), "{err}");

    let out = run_cmd(b24sync().args([
        "serve",
        "--listen",
        "localhost",
        "--application-token",
        TOKEN,
        "--db",
        &db.path.to_string_lossy(),
    ]))
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--listen") && err.contains("127.0.0.1:8723"),
        "{err}"
    );
    assert!(!err.contains(TOKEN), "{err}");

    let out = run_cmd(b24sync().args([
        "events",
        "bind",
        "--handler",
        "https://b24sync.example/",
        "--webhook",
        "https://acme.bitrix24.ru/rest/1/abc123xyz/",
        "--db",
        &db.path.to_string_lossy(),
    ]))
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("outgoing webhook"), "{err}");
}

/// Wait (at most `secs`) until `sql` counts `want` rows; panics with the log otherwise.
async fn until_count(db: &Path, sql: &str, want: i64, secs: u64, served: &Served) {
    let start = Instant::now();
    while count_or_zero(db, sql) != want {
        if start.elapsed() > Duration::from_secs(secs) {
            panic!("{sql} is not {want} after {secs} s\n{}", served.log_text());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_and_company_events_reach_their_tables_within_seconds() {
    let port = free_port();
    let events: Vec<String> = ["CONTACT", "COMPANY"]
        .iter()
        .flat_map(|e| ["ADD", "UPDATE", "DELETE"].map(|a| format!("ONCRM{e}{a}")))
        .collect();
    let sim = Simulator::start(SimulatorConfig {
        leads: 10,
        contacts: 20,
        companies: 10,
        rate_limit: None,
        events: EventsConfig {
            outgoing: vec![OutgoingWebhook {
                events,
                handler: format!("http://127.0.0.1:{port}/"),
                application_token: TOKEN.into(),
            }],
            ..EventsConfig::default()
        },
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts");
    let db = test_db();
    let served = Served::start(&sim, &db.path, port, db.path.with_extension("log")).await;
    served.healthy().await;
    until_count(
        &db.path,
        "SELECT COUNT(*) FROM bitrix_contacts",
        20,
        10,
        &served,
    )
    .await;

    let p = sim.portal();
    let contacts = p.contact_ids();
    assert!(p.update_contact(contacts[2], |c| {
        c.insert("NAME".into(), json!("Изменён событием"));
    }));
    let edited = format!(
        "SELECT COUNT(*) FROM bitrix_contacts WHERE sql_ID = {} AND sql_NAME = 'Изменён событием'",
        contacts[2]
    );
    until_count(&db.path, &edited, 1, 5, &served).await;
    let mut company = Map::new();
    company.insert("TITLE".into(), json!("Компания из события"));
    company.insert(
        "PHONE".into(),
        json!([{"VALUE": "+7 912 000-33-44", "VALUE_TYPE": "WORK"}]),
    );
    let added = p.add_company(company);
    let phone = format!(
        "SELECT COUNT(*) FROM b24sync_company_phones WHERE company_id = {added} AND e164 = '+79120003344'"
    );
    until_count(&db.path, &phone, 1, 5, &served).await;
    assert!(p.delete_contact(contacts[5]));
    let gone = format!(
        "SELECT COUNT(*) FROM bitrix_contacts WHERE sql_ID = {}",
        contacts[5]
    );
    until_count(&db.path, &gone, 0, 5, &served).await;
    let metrics = reqwest::get(served.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("b24sync_records_synced_total{entity=\"contact\",kind=\"deleted\"} 1"),
        "{metrics}"
    );
    served.stop().await;
    assert_eq!(
        count(&db.path, "SELECT COUNT(*) FROM b24sync_event_queue"),
        0
    );
}
