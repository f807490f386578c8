//! Outbound and offline events over real HTTP: `event.bind` / `event.get` / `event.unbind`
//! and their refusals, posts to a real handler for add / update / delete (application and
//! outgoing-webhook auth), no retries, the offline queue's collapse, reservation, clearing
//! and error marking, and the portal's limits on `event.*` calls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use b24sync_simulator::{
    EventsConfig, OAuthApp, OutgoingWebhook, RateLimit, Simulator, SimulatorConfig,
};
use serde_json::{json, Map, Value};

const CLIENT_ID: &str = "local.events.test";
const SECRET: &str = "events-secret";

fn config() -> SimulatorConfig {
    SimulatorConfig {
        leads: 20,
        rate_limit: None,
        ..SimulatorConfig::default()
    }
}

/// Installs an app with this scope and returns an access token for it.
async fn app_token(sim: &Simulator, client_id: &str, scope: &str) -> String {
    sim.register_oauth_app(OAuthApp {
        client_id: client_id.into(),
        client_secret: SECRET.into(),
        redirect_uri: "https://app.example/callback".into(),
        scope: scope.into(),
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = client
        .get(sim.oauth_authorize_url(client_id, "s"))
        .send()
        .await
        .expect("authorize");
    let location = resp.headers()[header::LOCATION].to_str().expect("location");
    let code = url::Url::parse(location)
        .expect("redirect URL")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let token: Value = client
        .get(format!("{}/oauth/token/", sim.base_url()))
        .query(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("client_secret", SECRET),
            ("code", &code),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// An application call: POST JSON to `/rest/{method}` with `auth`.
async fn app_call(sim: &Simulator, token: &str, method: &str, params: Value) -> (u16, Value) {
    let mut body = params.as_object().cloned().unwrap_or_default();
    body.insert("auth".into(), json!(token));
    let resp = reqwest::Client::new()
        .post(format!("{}/rest/{method}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .expect("request");
    (resp.status().as_u16(), resp.json().await.expect("JSON"))
}

async fn webhook_call(sim: &Simulator, method: &str, params: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{method}", sim.webhook_url()))
        .json(&params)
        .send()
        .await
        .expect("request");
    (resp.status().as_u16(), resp.json().await.expect("JSON"))
}

/// A handler on loopback recording (content type, body) of every POST it gets.
struct Handler {
    url: String,
    got: Arc<Mutex<Vec<(String, String)>>>,
}

impl Handler {
    fn posts(&self) -> Vec<Map<String, Value>> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .map(|(ctype, body)| {
                assert_eq!(ctype, "application/x-www-form-urlencoded");
                url::form_urlencoded::parse(body.as_bytes())
                    .map(|(k, v)| (k.into_owned(), json!(v.into_owned())))
                    .collect()
            })
            .collect()
    }
}

async fn handler(status: StatusCode) -> Handler {
    type Got = Arc<Mutex<Vec<(String, String)>>>;
    let got: Got = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                move |State(got): State<Got>, headers: HeaderMap, body: String| async move {
                    let ctype = headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    got.lock().expect("lock").push((ctype, body));
                    status
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Handler {
        url: format!("http://{addr}/hook"),
        got,
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..250 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The post's fields, in order: the event's, then these `auth[...]` ones.
fn assert_keys(post: &Map<String, Value>, auth: &[&str]) {
    let keys: Vec<&str> = post.keys().map(String::as_str).collect();
    let mut want = vec!["event", "event_handler_id", "data[FIELDS][ID]", "ts"];
    want.extend_from_slice(auth);
    assert_eq!(keys, want);
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("")
}

#[tokio::test]
async fn bind_get_unbind_and_every_refusal() {
    let sim = Simulator::start(config()).await.expect("start");
    let token = app_token(&sim, CLIENT_ID, "crm,user").await;

    // Webhook auth: every event.* method is refused with 403 WRONG_AUTH_TYPE.
    for method in [
        "event.bind",
        "event.get",
        "event.unbind",
        "event.offline.get",
        "event.offline.clear",
        "event.offline.error",
    ] {
        let (st, body) = webhook_call(
            &sim,
            method,
            json!({"event": "ONCRMLEADADD", "handler": "https://a.example/h"}),
        )
        .await;
        assert_eq!((st, error_of(&body)), (403, "WRONG_AUTH_TYPE"), "{method}");
    }

    let bind = |event: &str, handler: &str| json!({"event": event, "handler": handler});
    let refusals = [
        (
            bind("ONCRMLEADADD", "http://localhost:8080/h"),
            "ERROR_WRONG_HANDLER_URL",
        ),
        (
            bind("ONCRMLEADADD", "http://.example/h"),
            "ERROR_WRONG_HANDLER_URL",
        ),
        (bind("ONCRMLEADADD", "not a url"), "ERROR_WRONG_HANDLER_URL"),
        (
            bind("ONCRMLEADADD", "ftp://files.example/h"),
            "ERROR_UNSUPPORTED_PROTOCOL",
        ),
        (
            bind("ONCRMNOSUCHTHING", "https://a.example/h"),
            "ERROR_EVENT_NOT_FOUND",
        ),
        (bind("ONCRMLEADADD", ""), "ERROR_ARGUMENT"),
        (bind("", "https://a.example/h"), "ERROR_ARGUMENT"),
        (
            json!({"event": "ONCRMLEADADD", "handler": "https://a.example/h", "event_type": "sometimes"}),
            "ERROR_ARGUMENT",
        ),
    ];
    for (params, code) in refusals {
        let (st, body) = app_call(&sim, &token, "event.bind", params.clone()).await;
        assert_eq!((st, error_of(&body)), (400, code), "{params}");
    }

    let hook = "http://127.0.0.1:9/hook";
    let (st, body) = app_call(&sim, &token, "event.bind", bind("ONCRMLEADADD", hook)).await;
    assert_eq!((st, &body["result"]), (200, &json!(true)));
    let (st, body) = app_call(&sim, &token, "event.bind", bind("ONCRMLEADADD", hook)).await;
    assert_eq!((st, error_of(&body)), (400, "ERROR_CORE"));
    assert!(body["error_description"]
        .as_str()
        .unwrap_or("")
        .contains("Handler already binded"));
    // Names are upper-cased; a different user is a different binding.
    let (st, _) = app_call(&sim, &token, "event.bind", bind("onCrmLeadUpdate", hook)).await;
    assert_eq!(st, 200);
    let (st, _) = app_call(
        &sim,
        &token,
        "event.bind",
        json!({"event": "ONCRMLEADADD", "handler": hook, "auth_type": 1}),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = app_call(
        &sim,
        &token,
        "event.bind",
        json!({"event": "ONCRMLEADDELETE", "event_type": "offline"}),
    )
    .await;
    assert_eq!(st, 200);

    let (st, body) = app_call(&sim, &token, "event.get", json!({})).await;
    assert_eq!(st, 200);
    assert_eq!(
        body["result"],
        json!([
            {"event": "ONCRMLEADADD", "handler": hook, "auth_type": "0", "offline": 0},
            {"event": "ONCRMLEADUPDATE", "handler": hook, "auth_type": "0", "offline": 0},
            {"event": "ONCRMLEADADD", "handler": hook, "auth_type": "1", "offline": 0},
            {"event": "ONCRMLEADDELETE", "connector_id": "", "offline": 1},
        ])
    );

    // Another app sees none of them; an app without the crm scope binds no CRM event.
    let other = app_token(&sim, "local.other", "user").await;
    let (_, body) = app_call(&sim, &other, "event.get", json!({})).await;
    assert_eq!(body["result"], json!([]));
    let (st, body) = app_call(&sim, &other, "event.bind", bind("ONCRMLEADADD", hook)).await;
    assert_eq!((st, error_of(&body)), (400, "ERROR_EVENT_NOT_FOUND"));

    // Unbind without auth_type removes both users' ONCRMLEADADD bindings.
    let (st, body) = app_call(&sim, &token, "event.unbind", bind("ONCRMLEADADD", hook)).await;
    assert_eq!((st, &body["result"]), (200, &json!({"count": 2})));
    let (_, body) = app_call(&sim, &token, "event.unbind", bind("ONCRMLEADADD", hook)).await;
    assert_eq!(body["result"], json!({"count": 0}));
    let (st, body) = app_call(
        &sim,
        &token,
        "event.unbind",
        json!({"event": "ONCRMLEADUPDATE"}),
    )
    .await;
    assert_eq!((st, error_of(&body)), (400, "ERROR_ARGUMENT"));
    let (_, body) = app_call(
        &sim,
        &token,
        "event.unbind",
        json!({"event": "ONCRMLEADDELETE", "event_type": "offline"}),
    )
    .await;
    assert_eq!(body["result"], json!({"count": 1}));
    let (_, body) = app_call(&sim, &token, "event.get", json!({})).await;
    assert_eq!(
        body["result"],
        json!([{"event": "ONCRMLEADUPDATE", "handler": hook, "auth_type": "0", "offline": 0}])
    );
    // Refused calls posted nothing and never reached a handler.
    assert_eq!(sim.event_stats().sent + sim.event_stats().failed, 0);
}

#[tokio::test]
async fn handlers_get_the_documented_form_for_add_update_delete() {
    let sim = Simulator::start(config()).await.expect("start");
    let token = app_token(&sim, CLIENT_ID, "crm,user").await;
    let h = handler(StatusCode::OK).await;
    for event in ["ONCRMLEADADD", "ONCRMLEADUPDATE", "ONCRMLEADDELETE"] {
        let (st, _) = app_call(
            &sim,
            &token,
            "event.bind",
            json!({"event": event, "handler": h.url}),
        )
        .await;
        assert_eq!(st, 200);
    }
    let portal = sim.portal();
    let added = portal.add_lead(Map::new());
    assert!(portal.update_lead(3, |l| {
        l.insert("TITLE".into(), json!("changed"));
    }));
    assert!(portal.set_field_raw(4, "TITLE", json!("raw")));
    assert!(portal.delete_lead(5));
    assert!(!portal.delete_lead(5), "a second delete changes nothing");
    wait_until("four posts", || sim.event_stats().sent == 4).await;

    let posts = h.posts();
    let seen: Vec<(String, String)> = posts
        .iter()
        .map(|p| {
            (
                p["event"].as_str().unwrap_or("").to_string(),
                p["data[FIELDS][ID]"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ONCRMLEADADD".to_string(), added.to_string()),
            ("ONCRMLEADUPDATE".to_string(), "3".to_string()),
            ("ONCRMLEADUPDATE".to_string(), "4".to_string()),
            ("ONCRMLEADDELETE".to_string(), "5".to_string()),
        ]
    );
    let host = sim.base_url().trim_start_matches("http://").to_string();
    let now = sim.portal().now().timestamp();
    let mut handler_ids = std::collections::BTreeSet::new();
    for p in &posts {
        assert_keys(
            p,
            &[
                "auth[access_token]",
                "auth[expires_in]",
                "auth[scope]",
                "auth[domain]",
                "auth[server_endpoint]",
                "auth[status]",
                "auth[client_endpoint]",
                "auth[member_id]",
                "auth[application_token]",
            ],
        );
        handler_ids.insert(p["event_handler_id"].as_str().unwrap_or("").to_string());
        let ts: i64 = p["ts"].as_str().and_then(|t| t.parse().ok()).expect("ts");
        assert!((now - ts).abs() < 30);
        assert_eq!(p["auth[application_token]"], json!(sim.application_token()));
        assert_eq!(p["auth[domain]"], json!(host));
        assert_eq!(
            p["auth[client_endpoint]"],
            json!(format!("{}/rest/", sim.base_url()))
        );
        assert_eq!(p["auth[expires_in]"], json!("3600"));
        assert_eq!(p["auth[scope]"], json!("crm,user"));
        assert_eq!(p["auth[status]"], json!("L"));
        assert_eq!(p["auth[member_id]"].as_str().map(str::len), Some(32));
    }
    assert_eq!(handler_ids.len(), 3, "one event_handler_id per binding");
    // The handler's access token is a working token of the app.
    let access = posts[1]["auth[access_token]"].as_str().expect("token");
    let (st, body) = app_call(&sim, access, "crm.lead.get", json!({"id": 3})).await;
    assert_eq!((st, &body["result"]["TITLE"]), (200, &json!("changed")));
    assert_eq!(sim.event_stats().failed, 0);
}

#[tokio::test]
async fn outgoing_webhooks_need_no_bind_and_carry_their_own_token() {
    let h = handler(StatusCode::OK).await;
    let sim = Simulator::start(SimulatorConfig {
        events: EventsConfig {
            outgoing: vec![OutgoingWebhook {
                events: vec!["ONCRMLEADUPDATE".into(), "ONCRMLEADDELETE".into()],
                handler: h.url.clone(),
                application_token: "outgoing0token".into(),
            }],
            ..EventsConfig::default()
        },
        ..config()
    })
    .await
    .expect("start");
    sim.portal().add_lead(Map::new()); // not configured: no post
    sim.portal().update_lead(2, |_| {});
    sim.portal().delete_lead(2);
    wait_until("two posts", || sim.event_stats().sent == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let posts = h.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0]["event"], json!("ONCRMLEADUPDATE"));
    assert_eq!(posts[1]["event"], json!("ONCRMLEADDELETE"));
    for p in &posts {
        // Outgoing webhooks get no tokens: only the portal's address and the app token.
        assert_keys(
            p,
            &[
                "auth[domain]",
                "auth[server_endpoint]",
                "auth[client_endpoint]",
                "auth[member_id]",
                "auth[application_token]",
            ],
        );
        assert_eq!(p["auth[application_token]"], json!("outgoing0token"));
        assert_eq!(p["data[FIELDS][ID]"], json!("2"));
    }
}

#[tokio::test]
async fn failed_posts_are_counted_and_never_retried() {
    // A port with nothing listening: bind, note it, close.
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr")
    };
    let failing = handler(StatusCode::INTERNAL_SERVER_ERROR).await;
    let sim = Simulator::start(SimulatorConfig {
        events: EventsConfig {
            delay: Duration::from_millis(300),
            outgoing: vec![
                OutgoingWebhook {
                    events: vec!["ONCRMLEADUPDATE".into()],
                    handler: format!("http://{closed}/down"),
                    application_token: "t1".into(),
                },
                OutgoingWebhook {
                    events: vec!["ONCRMLEADUPDATE".into()],
                    handler: failing.url.clone(),
                    application_token: "t2".into(),
                },
            ],
            ..EventsConfig::default()
        },
        ..config()
    })
    .await
    .expect("start");
    sim.portal().update_lead(1, |_| {});
    // Posting is asynchronous and delayed: the change returned before any post.
    let st = sim.event_stats();
    assert_eq!((st.sent, st.failed, st.pending), (0, 0, 2));
    wait_until("both posts failed", || sim.event_stats().failed == 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let st = sim.event_stats();
    assert_eq!((st.sent, st.failed, st.pending), (0, 2, 0));
    assert_eq!(failing.posts().len(), 1, "the 500 was not retried");
}

#[tokio::test]
async fn offline_queue_collapses_reserves_clears_and_marks_errors() {
    let sim = Simulator::start(config()).await.expect("start");
    let token = app_token(&sim, CLIENT_ID, "crm").await;
    for event in ["ONCRMLEADADD", "ONCRMLEADUPDATE"] {
        let (st, _) = app_call(
            &sim,
            &token,
            "event.bind",
            json!({"event": event, "event_type": "offline"}),
        )
        .await;
        assert_eq!(st, 200);
    }
    let portal = sim.portal();
    for _ in 0..3 {
        portal.update_lead(5, |_| {});
    }
    portal.update_lead(6, |_| {});
    let added = portal.add_lead(Map::new());
    portal.update_lead(added, |_| {});
    assert_eq!(
        sim.offline_queue_len(CLIENT_ID),
        4,
        "one row per record and event"
    );

    let get = |params: Value| app_call(&sim, &token, "event.offline.get", params);
    let (st, body) = get(json!({})).await;
    assert_eq!(st, 200);
    assert!(body.get("total").is_none());
    assert_eq!(body["result"]["process_id"], Value::Null);
    let events = body["result"]["events"].as_array().expect("events").clone();
    let seen: Vec<(String, i64)> = events
        .iter()
        .map(|e| {
            (
                e["EVENT_NAME"].as_str().unwrap_or("").to_string(),
                e["EVENT_DATA"]["FIELDS"]["ID"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ONCRMLEADUPDATE".into(), 5),
            ("ONCRMLEADUPDATE".into(), 6),
            ("ONCRMLEADADD".into(), added),
            ("ONCRMLEADUPDATE".into(), added),
        ]
    );
    for e in &events {
        let mid = e["MESSAGE_ID"].as_str().expect("MESSAGE_ID");
        assert!(mid.len() == 32 && mid.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(e["ID"].is_string() && e["TIMESTAMP_X"].is_string());
    }
    let (_, body) = get(json!({})).await;
    assert_eq!(body["result"]["events"], json!([]), "clear=1 removed them");

    // clear=0 reserves under a process ID; other readers do not see the rows again.
    portal.update_lead(5, |_| {});
    portal.update_lead(6, |_| {});
    let (_, first) = get(json!({"clear": 0, "limit": 1, "order": {"ID": "ASC"}})).await;
    let pid = first["result"]["process_id"]
        .as_str()
        .expect("process_id")
        .to_string();
    assert_eq!(pid.len(), 32);
    let first_events = first["result"]["events"].clone();
    assert_eq!(first_events[0]["EVENT_DATA"]["FIELDS"]["ID"], json!(5));
    let (_, second) = get(json!({"clear": 0})).await;
    let pid2 = second["result"]["process_id"]
        .as_str()
        .expect("process_id")
        .to_string();
    assert_ne!(pid, pid2);
    assert_eq!(
        second["result"]["events"][0]["EVENT_DATA"]["FIELDS"]["ID"],
        json!(6)
    );
    let (_, none) = get(json!({"clear": 0})).await;
    assert_eq!(none["result"]["events"], json!([]));
    // The reader that "died" finds its rows again by its process ID.
    let (_, again) = get(json!({"clear": 0, "process_id": pid})).await;
    assert_eq!(again["result"]["events"], first_events);
    assert_eq!(again["result"]["process_id"], json!(pid));
    // A change while reserved adds a free row next to the reserved one.
    portal.update_lead(5, |_| {});
    assert_eq!(sim.offline_queue_len(CLIENT_ID), 3);
    let (st, body) = app_call(
        &sim,
        &token,
        "event.offline.clear",
        json!({"process_id": pid}),
    )
    .await;
    assert_eq!((st, &body["result"]), (200, &json!(true)));
    assert_eq!(sim.offline_queue_len(CLIENT_ID), 2);
    // Clearing by message_id removes only the listed rows of the process.
    let mid2 = second["result"]["events"][0]["MESSAGE_ID"].clone();
    let (st, _) = app_call(
        &sim,
        &token,
        "event.offline.clear",
        json!({"process_id": pid2, "message_id": ["0123456789abcdef0123456789abcdef"]}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(sim.offline_queue_len(CLIENT_ID), 2);
    let (_, _) = app_call(
        &sim,
        &token,
        "event.offline.clear",
        json!({"process_id": pid2, "message_id": [mid2]}),
    )
    .await;
    assert_eq!(sim.offline_queue_len(CLIENT_ID), 1);

    // event.offline.error: the row comes back only with error=1.
    let (_, reserved) = get(json!({"clear": 0})).await;
    let pid3 = reserved["result"]["process_id"]
        .as_str()
        .expect("pid")
        .to_string();
    let mid = reserved["result"]["events"][0]["MESSAGE_ID"].clone();
    let (st, body) = app_call(
        &sim,
        &token,
        "event.offline.error",
        json!({"process_id": pid3, "message_id": [mid]}),
    )
    .await;
    assert_eq!((st, &body["result"]), (200, &json!(true)));
    let (_, body) = get(json!({})).await;
    assert_eq!(body["result"]["events"], json!([]));
    let (_, body) =
        get(json!({"error": 1, "filter": {"=EVENT_NAME": "ONCRMLEADUPDATE", ">=ID": 1}})).await;
    assert_eq!(body["result"]["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["result"]["events"][0]["MESSAGE_ID"], mid);
    assert_eq!(sim.offline_queue_len(CLIENT_ID), 0);

    // Refusals.
    let refusals = [
        ("event.offline.get", json!({"limit": 0})),
        ("event.offline.get", json!({"filter": {"PROCESS_ID": "x"}})),
        ("event.offline.get", json!({"order": {"APP_ID": "ASC"}})),
        ("event.offline.clear", json!({})),
        (
            "event.offline.clear",
            json!({"process_id": pid, "message_id": ["short"]}),
        ),
        ("event.offline.clear", json!({"process_id": pid, "id": [0]})),
        ("event.offline.clear", json!({"process_id": pid, "id": 3})),
        ("event.offline.error", json!({"process_id": pid})),
        ("event.offline.error", json!({"message_id": []})),
    ];
    for (method, params) in refusals {
        let (st, body) = app_call(&sim, &token, method, params.clone()).await;
        assert_eq!(
            (st, error_of(&body)),
            (400, "ERROR_ARGUMENT"),
            "{method} {params}"
        );
    }
}

#[tokio::test]
async fn the_portals_limits_apply_to_event_calls() {
    let sim = Simulator::start(SimulatorConfig {
        rate_limit: Some(RateLimit {
            per_second: 0.01,
            burst: 3,
        }),
        ..config()
    })
    .await
    .expect("start");
    let token = app_token(&sim, CLIENT_ID, "crm").await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (st, body) = app_call(&sim, &token, "event.get", json!({})).await;
        statuses.push((st, error_of(&body).to_string()));
    }
    assert_eq!(
        statuses[..3],
        [
            (200, String::new()),
            (200, String::new()),
            (200, String::new())
        ]
    );
    assert_eq!(statuses[3], (503, "QUERY_LIMIT_EXCEEDED".to_string()));
    assert_eq!(sim.stats().by_method["event.get"], 3);
}

#[tokio::test]
async fn batch_runs_event_calls_with_the_callers_auth() {
    let sim = Simulator::start(config()).await.expect("start");
    let token = app_token(&sim, CLIENT_ID, "crm").await;
    let cmd = json!({"cmd": {
        "b": "event.bind?event=ONCRMLEADADD&handler=https%3A%2F%2Fh.example%2Fx",
        "g": "event.get",
    }});
    let (st, body) = app_call(&sim, &token, "batch", cmd.clone()).await;
    assert_eq!(st, 200);
    assert_eq!(body["result"]["result"]["b"], json!(true));
    assert_eq!(
        body["result"]["result"]["g"][0]["handler"],
        json!("https://h.example/x")
    );
    let (st, body) = webhook_call(&sim, "batch", cmd).await;
    assert_eq!(st, 200);
    assert_eq!(
        body["result"]["result_error"]["g"]["error"],
        json!("WRONG_AUTH_TYPE")
    );
}

#[tokio::test]
async fn unbound_handlers_get_nothing_and_each_connector_has_its_own_queue() {
    let sim = Simulator::start(config()).await.expect("start");
    let token = app_token(&sim, CLIENT_ID, "crm").await;
    let h = handler(StatusCode::OK).await;
    let online = json!({"event": "ONCRMLEADUPDATE", "handler": h.url});
    app_call(&sim, &token, "event.bind", online.clone()).await;
    sim.portal().update_lead(1, |_| {});
    wait_until("one post", || sim.event_stats().sent == 1).await;
    let (_, body) = app_call(&sim, &token, "event.unbind", online).await;
    assert_eq!(body["result"], json!({"count": 1}));
    sim.portal().update_lead(1, |_| {});
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.posts().len(), 1, "no post after unbind");
    assert_eq!(sim.event_stats().pending, 0);

    // Offline bindings with and without a connector fill separate queues.
    for connector in ["", "erp"] {
        let (st, _) = app_call(
            &sim,
            &token,
            "event.bind",
            json!({"event": "ONCRMLEADDELETE", "event_type": "offline", "auth_connector": connector}),
        )
        .await;
        assert_eq!(st, 200);
    }
    sim.portal().delete_lead(7);
    assert_eq!(sim.offline_queue_len(CLIENT_ID), 2);
    let (_, plain) = app_call(&sim, &token, "event.offline.get", json!({})).await;
    assert_eq!(plain["result"]["events"].as_array().map(Vec::len), Some(1));
    let (_, erp) = app_call(
        &sim,
        &token,
        "event.offline.get",
        json!({"auth_connector": "erp"}),
    )
    .await;
    assert_eq!(erp["result"]["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        erp["result"]["events"][0]["EVENT_NAME"],
        json!("ONCRMLEADDELETE")
    );
    assert_eq!(sim.offline_queue_len(CLIENT_ID), 0);

    // Uninstalling the app takes its bindings and queue with it.
    sim.portal().delete_lead(8);
    assert_eq!(sim.offline_queue_len(CLIENT_ID), 2);
    sim.revoke_oauth(CLIENT_ID);
    assert_eq!(sim.offline_queue_len(CLIENT_ID), 0);
    sim.portal().delete_lead(9);
    assert_eq!(sim.offline_queue_len(CLIENT_ID), 0);
}
