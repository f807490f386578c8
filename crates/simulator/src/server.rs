//! HTTP: routing, authentication, parameters, faults, limits and envelopes.
//!
//! Every request walks the same pipeline, in the order a real portal would apply it:
//!
//! 1. counted in the stats (arrival time), `config.latency` slept;
//! 2. path → webhook (`/rest/{user}/{secret}/{method}`) or OAuth (`/rest/{method}` +
//!    `auth`); parameters = query string, then the body (JSON or form) on top;
//! 3. authentication → 401 `NO_AUTH_FOUND`;
//! 4. an injected fault, if one matches;
//! 5. the leaky bucket → 503 `QUERY_LIMIT_EXCEEDED`;
//! 6. unknown method → 404; the method's operating budget → 429;
//! 7. the method runs, its simulated time is charged and (× `sleep_scale`) slept.
//!
//! Here: the shared state, steps 1–6 and the answers; `server/call.rs` runs one call
//! against its operating budget (step 7), `server/batch.rs` runs `batch`.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::changes::Change;
use super::data::Portal;
use super::events::{EventHub, EventsConfig, Site};
use super::faults::{raw_response, truncated, FaultKind, FaultQueue, PageFaultQueue, HTML_502};
use super::limits::{LeakyBucket, Operating, OperatingState, RequestStats};
use super::methods::{Caller, Ctx, METHODS};
use super::oauth::{member_id, portal_unix, OAuthReply, OAuthServer, TokenRejection};
use super::query::parse_str;
use super::SimulatorConfig;

mod batch;
mod call;

/// Everything the handler shares.
pub(crate) struct Shared {
    pub config: SimulatorConfig,
    pub portal: Portal,
    pub stats: Mutex<RequestStats>,
    pub faults: Mutex<FaultQueue>,
    pub page_faults: Mutex<PageFaultQueue>,
    pub oauth: OAuthServer,
    pub events: EventHub,
    bucket: Option<Mutex<LeakyBucket>>,
    operating: Option<Mutex<Operating>>,
}

/// Locks a mutex even if a panicking thread poisoned it: stats and queues stay usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The answer before it becomes bytes.
struct Reply {
    status: u16,
    body: Value,
}

fn error_body(code: &str, description: &str) -> Value {
    json!({"error": code, "error_description": description})
}

impl Shared {
    /// Needs a tokio runtime (the event poster starts here); `addr` is where it serves.
    pub fn new(config: SimulatorConfig, portal: Portal, addr: std::net::SocketAddr) -> Shared {
        let site = Site {
            domain: addr.to_string(),
            endpoint: format!("http://{addr}/rest/"),
            member_id: member_id(config.seed),
        };
        let events: EventsConfig = config.events.clone();
        Shared {
            events: EventHub::start(events, site),
            bucket: config.rate_limit.map(|r| Mutex::new(LeakyBucket::new(r))),
            operating: config
                .operating_limit
                .map(|o| Mutex::new(Operating::new(o))),
            config,
            portal,
            stats: Mutex::new(RequestStats::default()),
            faults: Mutex::new(FaultQueue::default()),
            page_faults: Mutex::new(PageFaultQueue::default()),
            oauth: OAuthServer::default(),
        }
    }

    fn ctx<'a>(&'a self, caller: &'a Caller) -> Ctx<'a> {
        Ctx {
            portal: &self.portal,
            cost: &self.config.cost,
            uf_mask_includes_multiple: self.config.uf_mask_includes_multiple,
            user_scope: self.config.user_scope,
            denied: &self.config.denied,
            caller,
            events: &self.events,
        }
    }

    /// A change to the portal's data: posts and offline rows for the bound handlers.
    pub fn on_change(&self, change: Change) {
        let now = self.portal.now();
        let issue = |client_id: &str| self.oauth.issue_access(client_id, now.timestamp());
        self.events.on_change(change, now, &issue);
    }
}

fn normalize_method(m: &str) -> String {
    let m = m.trim().trim_matches('/').to_ascii_lowercase();
    m.strip_suffix(".json").map(str::to_string).unwrap_or(m)
}

/// Reads the parameters: query string first, the body on top (JSON or form).
fn read_params(uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, Reply> {
    let mut params = uri.query().map(parse_str).unwrap_or_default();
    if body.is_empty() {
        return Ok(params);
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let from_body = if ctype.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => Map::new(),
            Err(_) => {
                return Err(Reply {
                    status: 400,
                    body: error_body("INVALID_REQUEST", "Invalid JSON in request body"),
                });
            }
        }
    } else if ctype.starts_with("application/x-www-form-urlencoded") {
        parse_str(&String::from_utf8_lossy(body))
    } else {
        // multipart and unknown types: not supported by the simulator; be strict.
        Map::new()
    };
    params.extend(from_body);
    Ok(params)
}

/// Checks a REST call's OAuth `auth` against the portal's token table.
fn check_oauth_token(sh: &Shared, token: Option<&str>) -> Result<Caller, Reply> {
    let reject = |code: &str, description: &str| Reply {
        status: 401,
        body: error_body(code, description),
    };
    match sh.oauth.check(token, portal_unix(&sh.portal)) {
        Ok((client_id, scope)) => Ok(Caller::App { client_id, scope }),
        Err(TokenRejection::Missing) => Err(reject("NO_AUTH_FOUND", "Wrong authorization data")),
        Err(TokenRejection::Expired) => Err(reject(
            "expired_token",
            "The access token provided has expired.",
        )),
        Err(TokenRejection::Invalid) => Err(reject(
            "invalid_token",
            "The access token provided is invalid.",
        )),
    }
}

/// `/oauth/authorize/` and `/oauth/token/`: the portal's OAuth side (see `oauth.rs`).
fn handle_oauth(sh: &Shared, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let base = format!("http://{host}");
    let member_id = member_id(sh.config.seed);
    let params = match read_params(uri, headers, body) {
        Ok(p) => p,
        Err(reply) => return json_response(&reply),
    };
    let now = portal_unix(&sh.portal);
    let reply = match uri.path().trim_end_matches('/') {
        "/oauth/authorize" => {
            sh.count_served("oauth.authorize");
            sh.oauth.authorize(&params, &host, &member_id, now)
        }
        "/oauth/token" => {
            sh.count_served("oauth.token");
            sh.oauth.token(&params, &base, &host, &member_id, now)
        }
        _ => OAuthReply::Json(404, error_body("invalid_request", "Unknown OAuth endpoint")),
    };
    match reply {
        OAuthReply::Json(status, body) => json_response(&Reply { status, body }),
        OAuthReply::Redirect(location) => {
            let mut resp = raw_response(302, "text/html; charset=utf-8", Vec::new());
            if let Ok(v) = header::HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
    }
}

fn json_response(reply: &Reply) -> Response {
    let bytes = serde_json::to_vec(&reply.body).unwrap_or_default();
    raw_response(reply.status, "application/json; charset=utf-8", bytes)
}

/// The one handler behind every path.
pub(crate) async fn handle(
    State(sh): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut st = lock(&sh.stats);
        st.http_requests += 1;
        st.arrivals_ms.push(sh.portal.elapsed_ms());
    }
    if !sh.config.latency.is_zero() {
        tokio::time::sleep(sh.config.latency).await;
    }
    if uri.path().starts_with("/oauth/") {
        return handle_oauth(&sh, &uri, &headers, &body);
    }
    let mut truncate = false;
    let (reply, cost) = match prepare(&sh, &uri, &headers, &body) {
        Err(reply) => (reply, 0.0),
        Ok((method, params, caller)) => {
            let fault = lock(&sh.faults).take(&method);
            if let Some(kind) = fault {
                lock(&sh.stats).faults_served += 1;
                match kind {
                    FaultKind::Delay(d) => tokio::time::sleep(d).await,
                    FaultKind::TruncatedBody => truncate = true,
                    other => return fault_response(&sh, other),
                }
            }
            serve(&sh, &method, &params, &caller)
        }
    };
    let scale = sh.config.cost.sleep_scale;
    if scale > 0.0 && cost > 0.0 {
        tokio::time::sleep(std::time::Duration::from_secs_f64(cost * scale)).await;
    }
    if truncate {
        return truncated(serde_json::to_vec(&reply.body).unwrap_or_default());
    }
    json_response(&reply)
}

/// Routing, parameters and authentication: (method, params) or the error reply.
fn prepare(
    sh: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(String, Map<String, Value>, Caller), Reply> {
    let not_found = || Reply {
        status: 404,
        body: error_body("ERROR_METHOD_NOT_FOUND", "Method not found!"),
    };
    let path = uri.path().strip_prefix("/rest/").ok_or_else(not_found)?;
    let segments: Vec<&str> = path.split('/').collect();
    // Webhook credentials are checked before the body is even parsed.
    let (method, params, caller) = match segments.as_slice() {
        [user, secret, method] => {
            let user_ok = user.parse::<u32>().ok() == Some(sh.config.webhook_user);
            if !user_ok || *secret != sh.config.webhook_secret {
                return Err(Reply {
                    status: 401,
                    body: error_body("NO_AUTH_FOUND", "Wrong authorization data"),
                });
            }
            (method, read_params(uri, headers, body)?, Caller::Webhook)
        }
        [method] => {
            let params = read_params(uri, headers, body)?;
            let caller = check_oauth_token(sh, params.get("auth").and_then(Value::as_str))?;
            (method, params, caller)
        }
        _ => return Err(not_found()),
    };
    let method = normalize_method(method);
    if method.is_empty() {
        return Err(not_found());
    }
    Ok((method, params, caller))
}

/// Rate limit, method lookup, operating limit, execution: (reply, simulated cost).
fn serve(sh: &Shared, method: &str, params: &Map<String, Value>, caller: &Caller) -> (Reply, f64) {
    if let Some(bucket) = &sh.bucket {
        if !lock(bucket).admit(sh.portal.mono_secs()) {
            lock(&sh.stats).rate_limited += 1;
            let body = error_body("QUERY_LIMIT_EXCEEDED", "Too many requests");
            return (Reply { status: 503, body }, 0.0);
        }
    }
    if !METHODS.contains(&method) {
        return (
            Reply {
                status: 404,
                body: error_body("ERROR_METHOD_NOT_FOUND", "Method not found!"),
            },
            0.0,
        );
    }
    if method == "batch" {
        sh.count_served("batch");
        return sh.run_batch(params, caller);
    }
    let (res, time, cost) = sh.run_call(method, params, false, caller);
    let reply = match res {
        Ok(ok) => {
            let mut body = Map::new();
            body.insert("result".into(), ok.result);
            if let Some(n) = ok.next {
                body.insert("next".into(), json!(n));
            }
            if let Some(t) = ok.total {
                body.insert("total".into(), json!(t));
            }
            body.insert("time".into(), time);
            Reply {
                status: 200,
                body: Value::Object(body),
            }
        }
        Err(e) => {
            let mut body = error_body(&e.code, &e.description);
            if e.status == 429 {
                if let Some(o) = body.as_object_mut() {
                    o.insert("time".into(), time);
                }
            }
            Reply {
                status: e.status,
                body,
            }
        }
    };
    (reply, cost)
}

fn fault_response(sh: &Shared, kind: FaultKind) -> Response {
    let reply = |status, code: &str, desc: &str| {
        json_response(&Reply {
            status,
            body: error_body(code, desc),
        })
    };
    match kind {
        FaultKind::QueryLimit => reply(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
        FaultKind::Internal => reply(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
        FaultKind::OperationTimeLimit { reset_in } => {
            let mut time = sh.time_block(0.0, OperatingState { operating: 0.0, reset_at: None, blocked: true });
            let reset_at = (sh.portal.now().timestamp_millis() as f64 / 1000.0 + reset_in.as_secs_f64()).ceil() as i64;
            if !sh.config.sparse_time {
                time["operating_reset_at"] = json!(reset_at);
            }
            let mut body = error_body("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.");
            body["time"] = time;
            json_response(&Reply { status: 429, body })
        }
        FaultKind::HtmlPage => raw_response(502, "text/html", HTML_502),
        FaultKind::Moved { location } => {
            let mut resp = raw_response(302, "text/html; charset=utf-8", Vec::new());
            if let Ok(v) = header::HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        FaultKind::MalformedJson => raw_response(
            200,
            "application/json; charset=utf-8",
            "<br />\n<b>Warning</b>:  Undefined array key \"ID\" in <b>/home/bitrix/www/bitrix/modules/crm/lib/rest.php</b> on line <b>42</b><br />\n{\"result\":[]}",
        ),
        FaultKind::Error { status, code, description } => reply(status, &code, &description),
        // Handled in `handle`; answer as an internal error if they ever arrive here.
        FaultKind::Delay(_) | FaultKind::TruncatedBody => reply(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
    }
}
