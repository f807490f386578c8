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

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::data::Portal;
use super::faults::{
    raw_response, truncated, FaultKind, FaultQueue, PageFaultKind, PageFaultQueue, HTML_502,
};
use super::limits::{LeakyBucket, Operating, OperatingState, RequestStats};
use super::methods::{self, CallErr, CallOk, Ctx, METHODS};
use super::oauth::{portal_unix, OAuthReply, OAuthServer, TokenRejection};
use super::query::parse_str;
use super::SimulatorConfig;

/// Everything the handler shares.
pub(crate) struct Shared {
    pub config: SimulatorConfig,
    pub portal: Portal,
    pub stats: Mutex<RequestStats>,
    pub faults: Mutex<FaultQueue>,
    pub page_faults: Mutex<PageFaultQueue>,
    pub oauth: OAuthServer,
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
    pub fn new(config: SimulatorConfig, portal: Portal) -> Shared {
        Shared {
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

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            portal: &self.portal,
            cost: &self.config.cost,
            uf_mask_includes_multiple: self.config.uf_mask_includes_multiple,
            user_scope: self.config.user_scope,
        }
    }

    fn operating_state(&self, method: &str) -> OperatingState {
        let now = self.portal.mono_secs();
        match &self.operating {
            Some(o) => lock(o).state(method, now),
            None => OperatingState {
                operating: 0.0,
                reset_at: None,
                blocked: false,
            },
        }
    }

    fn charge(&self, method: &str, secs: f64) -> OperatingState {
        lock(&self.stats).server_time_secs += secs;
        let now = self.portal.mono_secs();
        match &self.operating {
            Some(o) => lock(o).charge(method, now, secs),
            None => OperatingState {
                operating: 0.0,
                reset_at: None,
                blocked: false,
            },
        }
    }

    /// The `time` block. `start`/`finish` are unix seconds; `processing` is simulated.
    fn time_block(&self, processing: f64, op: OperatingState) -> Value {
        let now = self.portal.now();
        let start = now.timestamp_millis() as f64 / 1000.0;
        let finish = start + processing;
        let finish_dt = now + chrono::Duration::microseconds((processing * 1e6) as i64);
        let window = self
            .config
            .operating_limit
            .map(|o| o.window_secs as f64)
            .unwrap_or(600.0);
        let reset_in = op
            .reset_at
            .map(|r| r - self.portal.mono_secs())
            .unwrap_or(window);
        let fmt =
            |d: chrono::DateTime<chrono::FixedOffset>| d.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
        if self.config.sparse_time {
            return json!({
                "start": start.floor() as i64,
                "finish": finish.ceil() as i64,
                "duration": finish - start,
                "processing": processing,
                "date_start": fmt(now),
                "date_finish": fmt(finish_dt),
            });
        }
        json!({
            "start": start,
            "finish": finish,
            "duration": finish - start,
            "processing": processing,
            "date_start": fmt(now),
            "date_finish": fmt(finish_dt),
            "operating_reset_at": (start + reset_in.max(0.0)).ceil() as i64,
            "operating": (op.operating * 1e4).round() / 1e4,
        })
    }

    fn count_served(&self, method: &str) {
        *lock(&self.stats)
            .by_method
            .entry(method.to_string())
            .or_insert(0) += 1;
    }

    fn operating_error(&self, op: OperatingState) -> (CallErr, Value) {
        lock(&self.stats).operating_limited += 1;
        (
            CallErr::new(
                429,
                "OPERATION_TIME_LIMIT",
                "Method is blocked due to operation time limit.",
            ),
            self.time_block(0.0, op),
        )
    }

    /// Runs one call (not `batch`) with its operating budget: (outcome, time block, cost).
    /// `chained`: a batch sub-call whose parameters referred to an earlier one.
    fn run_call(
        &self,
        method: &str,
        params: &Map<String, Value>,
        chained: bool,
    ) -> (Result<CallOk, CallErr>, Value, f64) {
        let op = self.operating_state(method);
        if op.blocked {
            let (e, t) = self.operating_error(op);
            return (Err(e), t, 0.0);
        }
        self.count_served(method);
        let (mut res, cost) = methods::call(&self.ctx(), method, params);
        if let Ok(ok) = &mut res {
            self.apply_page_fault(method, params, chained, ok);
        }
        let op = self.charge(method, cost);
        (res, self.time_block(cost, op), cost)
    }

    /// An injected [`super::PageFault`] for an ascending `crm.lead.list` page.
    fn apply_page_fault(
        &self,
        method: &str,
        params: &Map<String, Value>,
        chained: bool,
        ok: &mut CallOk,
    ) {
        if method != "crm.lead.list" {
            return;
        }
        let ascending = params
            .get("order")
            .and_then(|o| o.get("ID"))
            .and_then(Value::as_str)
            .is_some_and(|d| d.eq_ignore_ascii_case("ASC"));
        let after = params
            .get("filter")
            .and_then(|f| f.get(">ID"))
            .and_then(|v| match v {
                Value::String(s) => s.trim().parse::<i64>().ok(),
                Value::Number(n) => n.as_i64(),
                _ => None,
            });
        let (true, Some(after)) = (ascending, after) else {
            return;
        };
        let Some(kind) = lock(&self.page_faults).take(after, chained) else {
            return;
        };
        lock(&self.stats).faults_served += 1;
        if let Value::Array(rows) = &mut ok.result {
            match kind {
                PageFaultKind::Empty => rows.clear(),
                PageFaultKind::Truncated { keep } => rows.truncate(keep),
            }
        }
    }

    fn run_batch(&self, params: &Map<String, Value>) -> (Reply, f64) {
        let halt = params.get("halt").is_some_and(|h| match h {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
            Value::String(s) => !matches!(s.trim(), "" | "0" | "false" | "N" | "n"),
            _ => false,
        });
        let cmds: Vec<(String, String)> = match params.get("cmd") {
            Some(Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), text(v)))
                .collect(),
            _ => vec![],
        };
        if cmds.len() > 50 {
            let body = error_body("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded");
            return (Reply { status: 400, body }, 0.0);
        }
        let mut parsed = Vec::with_capacity(cmds.len());
        for (name, cmd) in cmds {
            let (method, query) = cmd.split_once('?').unwrap_or((cmd.as_str(), ""));
            let method = normalize_method(method);
            if method == "batch" {
                let body = error_body(
                    "ERROR_BATCH_METHOD_NOT_ALLOWED",
                    "Method is not allowed for batch usage",
                );
                return (Reply { status: 405, body }, 0.0);
            }
            parsed.push((name, method, query.to_string()));
        }

        let mut results = Map::new();
        let mut errors = Map::new();
        let mut totals = Map::new();
        let mut nexts = Map::new();
        let mut times = Map::new();
        let mut processing = 0.0;
        for (name, method, query) in parsed {
            let mut sub = parse_str(&query);
            let chained = sub.values().any(refers_to_result);
            let refs = Refs {
                result: &results,
                total: &totals,
                next: &nexts,
                error: &errors,
            };
            for v in sub.values_mut() {
                substitute(v, &refs);
            }
            let (res, time, cost) = if METHODS.contains(&method.as_str()) {
                self.run_call(&method, &sub, chained)
            } else {
                let e = CallErr::new(404, "ERROR_METHOD_NOT_FOUND", "Method not found!");
                (
                    Err(e),
                    self.time_block(0.0, self.operating_state(&method)),
                    0.0,
                )
            };
            processing += cost;
            times.insert(name.clone(), time);
            match res {
                Ok(ok) => {
                    results.insert(name.clone(), ok.result);
                    if let Some(t) = ok.total {
                        totals.insert(name.clone(), json!(t));
                    }
                    if let Some(n) = ok.next {
                        nexts.insert(name.clone(), json!(n));
                    }
                }
                Err(e) => {
                    errors.insert(name.clone(), error_body(&e.code, &e.description));
                    if halt {
                        break;
                    }
                }
            }
        }
        let body = json!({
            "result": {
                "result": php_array(results),
                "result_error": php_array(errors),
                "result_total": php_array(totals),
                "result_next": php_array(nexts),
                "result_time": php_array(times),
            },
            "time": self.time_block(processing, self.operating_state("batch")),
        });
        (Reply { status: 200, body }, processing)
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// PHP `json_encode` of an array: keys 0..n in order → JSON array (so empty → `[]`).
fn php_array(m: Map<String, Value>) -> Value {
    let sequential = m.keys().enumerate().all(|(i, k)| *k == i.to_string());
    if sequential {
        Value::Array(m.into_iter().map(|(_, v)| v).collect())
    } else {
        Value::Object(m)
    }
}

fn normalize_method(m: &str) -> String {
    let m = m.trim().trim_matches('/').to_ascii_lowercase();
    m.strip_suffix(".json").map(str::to_string).unwrap_or(m)
}

/// Whether a parameter refers to an earlier sub-call's output.
fn refers_to_result(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("$result"),
        Value::Array(a) => a.iter().any(refers_to_result),
        Value::Object(o) => o.values().any(refers_to_result),
        _ => false,
    }
}

/// Earlier sub-calls' outputs, for `$result[...]` chaining.
struct Refs<'a> {
    result: &'a Map<String, Value>,
    total: &'a Map<String, Value>,
    next: &'a Map<String, Value>,
    error: &'a Map<String, Value>,
}

/// Replaces `$result[name][path]...` (also `$result_total`, `$result_next`,
/// `$result_error`) inside string values. A missing element becomes "" — the value is
/// then unusable and, for a filter, dropped (the strict reading of the docs).
fn substitute(v: &mut Value, refs: &Refs<'_>) {
    match v {
        Value::String(s) if s.contains("$result") => {
            if let Some(whole) = resolve_whole(s, refs) {
                *v = whole;
            } else {
                *s = replace_refs(s, refs);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, refs)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, refs)),
        _ => {}
    }
}

/// Parses one reference at the start of `s`: (its value if present, bytes consumed).
fn parse_ref(s: &str, refs: &Refs<'_>) -> Option<(Option<Value>, usize)> {
    let rest = s.strip_prefix('$')?;
    let (root, name_len) = [
        ("result_total", refs.total),
        ("result_next", refs.next),
        ("result_error", refs.error),
        ("result", refs.result),
    ]
    .into_iter()
    .find(|(n, _)| rest.starts_with(n) && rest[n.len()..].starts_with('['))
    .map(|(n, m)| (m, n.len()))?;
    let mut pos = 1 + name_len;
    let mut path = Vec::new();
    while s[pos..].starts_with('[') {
        let close = s[pos..].find(']')?;
        path.push(s[pos + 1..pos + close].to_string());
        pos += close + 1;
    }
    let (first, tail) = path.split_first()?;
    let mut cur = root.get(first);
    for p in tail {
        cur = match cur {
            Some(Value::Array(a)) => p.parse::<usize>().ok().and_then(|i| a.get(i)),
            Some(Value::Object(o)) => o.get(p),
            _ => None,
        };
    }
    Some((cur.cloned(), pos))
}

fn resolve_whole(s: &str, refs: &Refs<'_>) -> Option<Value> {
    match parse_ref(s, refs) {
        Some((Some(v @ (Value::Array(_) | Value::Object(_))), used)) if used == s.len() => Some(v),
        _ => None,
    }
}

fn replace_refs(s: &str, refs: &Refs<'_>) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with("$result") {
            if let Some((val, used)) = parse_ref(&s[i..], refs) {
                out.push_str(&match val {
                    Some(Value::String(x)) => x,
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::Bool(true)) => "1".into(),
                    Some(Value::Array(_) | Value::Object(_)) => "Array".into(),
                    _ => String::new(),
                });
                i += used;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
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
fn check_oauth_token(sh: &Shared, token: Option<&str>) -> Result<(), Reply> {
    let reject = |code: &str, description: &str| Reply {
        status: 401,
        body: error_body(code, description),
    };
    match sh.oauth.check(token, portal_unix(&sh.portal)) {
        Ok(()) => Ok(()),
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
    let member_id = format!(
        "{:032x}",
        sh.config.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    );
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
        Ok((method, params)) => {
            let fault = lock(&sh.faults).take(&method);
            if let Some(kind) = fault {
                lock(&sh.stats).faults_served += 1;
                match kind {
                    FaultKind::Delay(d) => tokio::time::sleep(d).await,
                    FaultKind::TruncatedBody => truncate = true,
                    other => return fault_response(&sh, other),
                }
            }
            serve(&sh, &method, &params)
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
) -> Result<(String, Map<String, Value>), Reply> {
    let not_found = || Reply {
        status: 404,
        body: error_body("ERROR_METHOD_NOT_FOUND", "Method not found!"),
    };
    let path = uri.path().strip_prefix("/rest/").ok_or_else(not_found)?;
    let segments: Vec<&str> = path.split('/').collect();
    // Webhook credentials are checked before the body is even parsed.
    let (method, params) = match segments.as_slice() {
        [user, secret, method] => {
            let user_ok = user.parse::<u32>().ok() == Some(sh.config.webhook_user);
            if !user_ok || *secret != sh.config.webhook_secret {
                return Err(Reply {
                    status: 401,
                    body: error_body("NO_AUTH_FOUND", "Wrong authorization data"),
                });
            }
            (method, read_params(uri, headers, body)?)
        }
        [method] => {
            let params = read_params(uri, headers, body)?;
            check_oauth_token(sh, params.get("auth").and_then(Value::as_str))?;
            (method, params)
        }
        _ => return Err(not_found()),
    };
    let method = normalize_method(method);
    if method.is_empty() {
        return Err(not_found());
    }
    Ok((method, params))
}

/// Rate limit, method lookup, operating limit, execution: (reply, simulated cost).
fn serve(sh: &Shared, method: &str, params: &Map<String, Value>) -> (Reply, f64) {
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
        return sh.run_batch(params);
    }
    let (res, time, cost) = sh.run_call(method, params, false);
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
