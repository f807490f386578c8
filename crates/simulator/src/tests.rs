//! Behaviour over real HTTP, as a client sees it.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::*;

pub(super) fn config(leads: usize) -> SimulatorConfig {
    SimulatorConfig {
        leads,
        rate_limit: None,
        ..SimulatorConfig::default()
    }
}

pub(super) async fn start(cfg: SimulatorConfig) -> Simulator {
    Simulator::start(cfg).await.expect("simulator starts")
}

/// POSTs a JSON body; returns (status, body as JSON).
pub(super) async fn call(sim: &Simulator, method: &str, params: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{}", sim.webhook_url(), method))
        .json(&params)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

/// GETs with a raw (already encoded, or deliberately not) query string.
pub(super) async fn get(sim: &Simulator, method: &str, query: &str) -> (u16, Value) {
    let resp = reqwest::get(format!("{}{}?{}", sim.webhook_url(), method, query))
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

pub(super) fn ids(rows: &Value) -> Vec<i64> {
    rows.as_array()
        .expect("array")
        .iter()
        .map(|r| {
            r["ID"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("ID string")
        })
        .collect()
}

#[tokio::test]
async fn paging_by_next_returns_every_lead_once() {
    let sim = start(SimulatorConfig {
        id_step: 3,
        ..config(237)
    })
    .await;
    let mut seen = Vec::new();
    let mut start_at = Some(0u64);
    while let Some(s) = start_at {
        let (st, body) = call(
            &sim,
            "crm.lead.list",
            json!({"order": {"ID": "ASC"}, "select": ["ID"], "start": s}),
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(body["total"], 237);
        assert!(body["time"]["operating"].is_number());
        seen.extend(ids(&body["result"]));
        start_at = body.get("next").and_then(Value::as_u64);
    }
    assert_eq!(seen, sim.portal().lead_ids());
    assert_eq!(seen.len(), 237);
    assert_eq!(sim.stats().by_method["crm.lead.list"], 5);
}

#[tokio::test]
async fn start_minus_one_does_not_count() {
    let sim = start(config(120)).await;
    let (_, body) = get(&sim, "crm.lead.list.json", "start=-1&select[]=ID").await;
    assert_eq!(body["result"].as_array().map(Vec::len), Some(50));
    assert_eq!(body["total"], 0);
    assert!(body.get("next").is_none());
    // Counting is what makes pages expensive.
    let (_, counted) = get(&sim, "crm.lead.list", "start=0&select[]=ID").await;
    assert!(counted["time"]["processing"].as_f64() > body["time"]["processing"].as_f64());
}

#[tokio::test]
async fn keyset_paging_by_id() {
    let sim = start(config(173)).await;
    let mut last = 0;
    let mut seen: Vec<i64> = Vec::new();
    loop {
        let q = format!("order%5BID%5D=ASC&filter%5B%3EID%5D={last}&select%5B%5D=ID&start=-1");
        let (st, body) = get(&sim, "crm.lead.list", &q).await;
        assert_eq!(st, 200);
        let page = ids(&body["result"]);
        seen.extend(&page);
        if page.len() < 50 {
            break;
        }
        last = *page.last().expect("full page");
    }
    assert_eq!(seen, sim.portal().lead_ids());
}

#[tokio::test]
async fn filter_by_date_modify_with_and_without_offset() {
    let sim = start(config(300)).await;
    let leads = sim.portal().leads();
    let pivot = leads[150]["DATE_MODIFY"]
        .as_str()
        .expect("date")
        .to_string();
    let pivot_t = chrono::DateTime::parse_from_rfc3339(&pivot).expect("rfc3339");
    let expected: BTreeSet<i64> = leads
        .iter()
        .filter(|l| {
            chrono::DateTime::parse_from_rfc3339(l["DATE_MODIFY"].as_str().unwrap_or(""))
                .expect("date")
                >= pivot_t
        })
        .map(|l| l["ID"].as_str().and_then(|s| s.parse().ok()).expect("id"))
        .collect();
    assert!(pivot.ends_with("+03:00"));
    let naive = pivot[..19].replace('T', " "); // portal zone implied
    let utc = pivot_t
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for value in [pivot.clone(), naive, utc] {
        let mut got = BTreeSet::new();
        let mut start_at = Some(0u64);
        while let Some(s) = start_at {
            let (_, body) = call(
                &sim,
                "crm.lead.list",
                json!({"filter": {">=DATE_MODIFY": value}, "select": ["ID", "DATE_MODIFY"], "start": s}),
            )
            .await;
            assert_eq!(
                body["total"].as_u64(),
                Some(expected.len() as u64),
                "filter value {value}"
            );
            got.extend(ids(&body["result"]));
            start_at = body.get("next").and_then(Value::as_u64);
        }
        assert_eq!(got, expected, "filter value {value}");
    }
    // The same filter sent raw in a query string: `>=` splits the pair, the filter is
    // silently lost and every lead comes back.
    let (_, body) = get(
        &sim,
        "crm.lead.list",
        &format!("filter[>=DATE_MODIFY]={}&start=0", pivot),
    )
    .await;
    assert_eq!(body["total"], 300);
    // Encoded key but a raw '+' in the offset: the value is unusable, also lost.
    let (_, body) = get(
        &sim,
        "crm.lead.list",
        &format!("filter%5B%3E%3DDATE_MODIFY%5D={}&start=0", pivot),
    )
    .await;
    assert_eq!(body["total"], 300);
    // Fully encoded: it works.
    let enc = pivot.replace('+', "%2B").replace(':', "%3A");
    let (_, body) = get(
        &sim,
        "crm.lead.list",
        &format!("filter%5B%3E%3DDATE_MODIFY%5D={enc}&start=0"),
    )
    .await;
    assert_eq!(body["total"].as_u64(), Some(expected.len() as u64));
    // Unknown filter keys are dropped silently.
    let (_, body) = call(
        &sim,
        "crm.lead.list",
        json!({"filter": {">DATE_MODIFYY": pivot}, "start": 0}),
    )
    .await;
    assert_eq!(body["total"], 300);
}

#[tokio::test]
async fn select_rules() {
    let sim = start(config(200)).await;
    let (_, body) = call(&sim, "crm.lead.list", json!({"select": ["*"], "start": -1})).await;
    for row in body["result"].as_array().expect("rows") {
        let o = row.as_object().expect("object");
        assert!(o.keys().all(|k| !k.starts_with("UF_")), "{o:?}");
        for m in ["PHONE", "EMAIL", "WEB", "IM"] {
            assert!(!o.contains_key(m));
        }
        assert_eq!(
            o["ID"].as_str().map(|s| s.parse::<i64>().is_ok()),
            Some(true)
        );
        assert!(o["OPPORTUNITY"].as_str().is_some_and(|s| s.contains('.')));
        assert!(o.contains_key("DATE_CLOSED") && o.contains_key("UTM_SOURCE"));
    }
    // No select = "*".
    let (_, plain) = call(&sim, "crm.lead.list", json!({"start": -1})).await;
    assert_eq!(plain["result"], body["result"]);

    let sol = "UF_CRM_SOLUTION";
    let (_, body) = call(
        &sim,
        "crm.lead.list",
        json!({"select": ["ID", "PHONE", "EMAIL", sol], "start": -1}),
    )
    .await;
    let rows = body["result"].as_array().expect("rows");
    let mut with_phone = 0;
    let mut without_phone = 0;
    for row in rows {
        let o = row.as_object().expect("object");
        match o.get("PHONE") {
            Some(Value::Array(p)) => {
                assert!(!p.is_empty());
                assert_eq!(p[0]["TYPE_ID"], "PHONE");
                assert!(p[0]["ID"].is_string());
                with_phone += 1;
            }
            None => without_phone += 1,
            other => panic!("PHONE must be absent or a non-empty array: {other:?}"),
        }
        assert!(o.contains_key(sol));
        assert!(!o.contains_key("TITLE"));
        let id = o["ID"].as_str().and_then(|s| s.parse().ok()).expect("id");
        assert_eq!(
            sim.portal().lead(id).expect("lead").get("PHONE"),
            o.get("PHONE")
        );
    }
    assert!(with_phone > 0 && without_phone > 0);
    // UF_* gives the single user fields; the multiple solution field must be named.
    let (_, body) = call(
        &sim,
        "crm.lead.list",
        json!({"select": ["UF_*"], "start": -1}),
    )
    .await;
    let o = body["result"][0].as_object().expect("row");
    assert!(o.contains_key("UF_CRM_BUDGET") && !o.contains_key(sol) && !o.contains_key("TITLE"));
}

#[tokio::test]
async fn batch_chains_three_pages() {
    let sim = start(config(130)).await;
    let q = |after: &str| {
        format!(
            "crm.lead.list?order%5BID%5D=ASC&filter%5B%3EID%5D={after}&select%5B0%5D=ID&start=-1"
        )
    };
    let cmd = json!({
        "p0": q("0"),
        "p1": q("$result[p0][49][ID]"),
        "p2": q("$result[p1][49][ID]"),
    });
    let (st, body) = call(&sim, "batch", json!({"halt": 0, "cmd": cmd})).await;
    assert_eq!(st, 200);
    let r = &body["result"];
    let mut all = Vec::new();
    for p in ["p0", "p1", "p2"] {
        all.extend(ids(&r["result"][p]));
        assert!(r["result_time"][p]["operating"].is_number());
    }
    assert_eq!(all, sim.portal().lead_ids());
    assert_eq!(r["result_error"], json!([]));
    assert_eq!(r["result_next"], json!([]));
    assert_eq!(r["result_total"]["p0"], 0);
    let stats = sim.stats();
    assert_eq!(stats.http_requests, 1);
    assert_eq!(stats.by_method["batch"], 1);
    assert_eq!(stats.by_method["crm.lead.list"], 3);

    // A reference past a short page yields "": the `>ID` filter is dropped and the
    // sub-call starts again from the first lead.
    let cmd = json!({"a": q("120"), "b": q("$result[a][49][ID]")});
    let (_, body) = call(&sim, "batch", json!({"cmd": cmd})).await;
    assert_eq!(ids(&body["result"]["result"]["a"]).len(), 10);
    assert_eq!(ids(&body["result"]["result"]["b"])[0], 1);

    // Form-encoded outer request, array cmd, halt on the first error.
    let form = "halt=1&cmd%5B0%5D=crm.lead.get%3Fid%3D999999&cmd%5B1%5D=server.time";
    let resp = reqwest::Client::new()
        .post(format!("{}batch", sim.webhook_url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("request");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        body["result"]["result_error"],
        json!([{"error": "", "error_description": "Not found"}])
    );
    assert_eq!(body["result"]["result"], json!([]));
}

#[tokio::test]
async fn batch_limits() {
    let sim = start(config(10)).await;
    let cmd: Map<String, Value> = (0..51)
        .map(|i| (format!("c{i}"), json!("server.time")))
        .collect();
    let (st, body) = call(&sim, "batch", json!({"cmd": cmd})).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (400, Some("ERROR_BATCH_LENGTH_EXCEEDED"))
    );
    let cmd: Map<String, Value> = (0..50)
        .map(|i| (format!("c{i}"), json!("server.time")))
        .collect();
    let (st, body) = call(&sim, "batch", json!({"cmd": cmd})).await;
    assert_eq!(st, 200);
    assert_eq!(body["result"]["result"].as_object().map(Map::len), Some(50));
    let (st, body) = call(
        &sim,
        "batch",
        json!({"cmd": {"x": "batch?cmd[a]=server.time"}}),
    )
    .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (405, Some("ERROR_BATCH_METHOD_NOT_ALLOWED"))
    );
}

#[tokio::test]
async fn auth_and_routing() {
    let sim = start(config(5)).await;
    let bad = format!("{}/rest/1/wrong/server.time", sim.base_url());
    let resp = reqwest::get(bad).await.expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        body,
        json!({"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"})
    );
    let bad_user = format!("{}/rest/2/sim0secret0webhook/server.time", sim.base_url());
    assert_eq!(
        reqwest::get(bad_user)
            .await
            .expect("request")
            .status()
            .as_u16(),
        401
    );
    let oauth = format!("{}/rest/server.time?auth=token", sim.base_url());
    assert_eq!(
        reqwest::get(oauth)
            .await
            .expect("request")
            .status()
            .as_u16(),
        401
    );
    let (st, body) = get(&sim, "crm.lead.nothing", "").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (404, Some("ERROR_METHOD_NOT_FOUND"))
    );
    let (st, body) = get(&sim, "server.time.json", "").await;
    assert_eq!(st, 200);
    assert!(body["result"]
        .as_str()
        .is_some_and(|s| s.ends_with("+03:00") && s.len() == 25));
    let (st, body) = call(&sim, "crm.lead.get", json!({"id": 4242})).await;
    assert_eq!(
        (st, body),
        (400, json!({"error": "", "error_description": "Not found"}))
    );
}

#[tokio::test]
async fn leaky_bucket_rejects_bursts_and_recovers() {
    let sim = start(SimulatorConfig {
        rate_limit: Some(RateLimit {
            per_second: 2.0,
            burst: 5,
        }),
        ..config(5)
    })
    .await;
    for _ in 0..5 {
        assert_eq!(get(&sim, "server.time", "").await.0, 200);
    }
    let (st, body) = get(&sim, "server.time", "").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (503, Some("QUERY_LIMIT_EXCEEDED"))
    );
    assert_eq!(sim.stats().rate_limited, 1);
    sim.portal().advance_clock(Duration::from_millis(1100)); // drains 2
    assert_eq!(get(&sim, "server.time", "").await.0, 200);
    assert_eq!(get(&sim, "server.time", "").await.0, 200);
    assert_eq!(get(&sim, "server.time", "").await.0, 503);
    let s = sim.stats();
    assert_eq!(
        (s.http_requests, s.rate_limited, s.arrivals_ms.len()),
        (9, 2, 9)
    );
}

#[tokio::test]
async fn operating_limit_blocks_a_method_until_reset() {
    let sim = start(SimulatorConfig {
        operating_limit: Some(OperatingLimit {
            budget_secs: 0.1,
            window_secs: 600,
        }),
        ..config(100)
    })
    .await;
    let page = json!({"select": ["*", "UF_*", "PHONE"], "start": 0});
    let (_, first) = call(&sim, "crm.lead.list", page.clone()).await;
    let op1 = first["time"]["operating"].as_f64().expect("operating");
    assert!(op1 > 0.0);
    let reset_at = first["time"]["operating_reset_at"].as_i64().expect("reset");
    let now = sim.portal().now().timestamp();
    assert!(
        (now + 598..=now + 601).contains(&reset_at),
        "{reset_at} vs {now}"
    );
    let (_, second) = call(&sim, "crm.lead.list", page.clone()).await;
    assert!(second["time"]["operating"].as_f64().expect("operating") > op1);
    let (st, body) = call(&sim, "crm.lead.list", page.clone()).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (429, Some("OPERATION_TIME_LIMIT"))
    );
    assert!(body["time"]["operating"].as_f64().expect("operating") > 0.1);
    assert_eq!(body["time"]["operating_reset_at"].as_i64(), Some(reset_at));
    // Other methods are not blocked.
    assert_eq!(get(&sim, "server.time", "").await.0, 200);
    assert_eq!(sim.stats().operating_limited, 1);
    sim.portal().advance_clock(Duration::from_secs(601));
    assert_eq!(call(&sim, "crm.lead.list", page).await.0, 200);
}

#[tokio::test]
async fn every_fault_is_observable() {
    let sim = start(config(60)).await;
    let fault = |kind| Fault {
        method: Some("server.time".into()),
        kind,
        times: 1,
    };
    let url = format!("{}server.time", sim.webhook_url());
    let fetch = || async { reqwest::get(&url).await.expect("request") };

    sim.inject(fault(FaultKind::QueryLimit));
    // A fault for another method does not fire on server.time.
    sim.inject(Fault {
        method: Some("crm.lead.get".into()),
        kind: FaultKind::Internal,
        times: 1,
    });
    let r = fetch().await;
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "QUERY_LIMIT_EXCEEDED"
    );
    let (st, _) = call(&sim, "crm.lead.get", json!({"id": 1})).await;
    assert_eq!(st, 500);

    let reset_in = Duration::from_secs(90);
    sim.inject(fault(FaultKind::OperationTimeLimit { reset_in }));
    let r = fetch().await;
    assert_eq!(r.status().as_u16(), 429);
    let body: Value = r.json().await.expect("json");
    let now = sim.portal().now().timestamp();
    let at = body["time"]["operating_reset_at"]
        .as_i64()
        .expect("reset_at");
    assert!((now + 89..=now + 91).contains(&at));

    sim.inject(fault(FaultKind::HtmlPage));
    let r = fetch().await;
    assert_eq!(r.status().as_u16(), 502);
    let text = r.text().await.expect("text");
    assert!(text.contains("502 Bad Gateway") && serde_json::from_str::<Value>(&text).is_err());

    sim.inject(fault(FaultKind::MalformedJson));
    let r = fetch().await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.expect("text")).is_err());

    sim.inject(Fault {
        method: Some("crm.lead.list".into()),
        kind: FaultKind::TruncatedBody,
        times: 1,
    });
    let r = reqwest::get(format!("{}crm.lead.list", sim.webhook_url()))
        .await
        .expect("headers arrive");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.bytes().await.is_err(), "body must break off");

    sim.inject(fault(FaultKind::Delay(Duration::from_millis(800))));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let err = client.get(&url).send().await.expect_err("times out");
    assert!(err.is_timeout());

    sim.inject(Fault {
        method: None,
        kind: FaultKind::Error {
            status: 403,
            code: "insufficient_scope".into(),
            description: "no crm".into(),
        },
        times: 2,
    });
    for _ in 0..2 {
        let r = fetch().await;
        assert_eq!(r.status().as_u16(), 403);
        assert_eq!(
            r.json::<Value>().await.expect("json")["error"],
            "insufficient_scope"
        );
    }
    assert_eq!(fetch().await.status().as_u16(), 200);
    assert_eq!(sim.stats().faults_served, 9);
}

#[tokio::test]
async fn mutations_show_in_the_next_list() {
    let sim = start(SimulatorConfig {
        id_step: 2,
        ..config(80)
    })
    .await;
    let portal = sim.portal();
    let before = portal.now();
    assert!(portal.update_lead(10, |l| {
        l.insert("TITLE".into(), json!("Новый заголовок"));
        l.insert(
            "PHONE".into(),
            json!([{"VALUE": "+7 999 000-00-00", "VALUE_TYPE": "WORK"}]),
        );
    }));
    let added = portal.add_lead(
        json!({"TITLE": "Добавлен", "NAME": "Олег"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    assert_eq!(added, 162);
    assert!(portal.delete_lead(4));
    assert!(!portal.delete_lead(4));

    let since = before.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
    let (_, body) = call(&sim, "crm.lead.list", json!({"filter": {">=DATE_MODIFY": since}, "select": ["ID", "TITLE", "PHONE", "HAS_PHONE"], "start": 0})).await;
    assert_eq!(ids(&body["result"]), vec![10, 162]);
    assert_eq!(body["result"][0]["TITLE"], "Новый заголовок");
    assert_eq!(body["result"][0]["HAS_PHONE"], "Y");
    assert!(body["result"][0]["PHONE"][0]["ID"].is_string());
    let (_, all) = call(&sim, "crm.lead.list", json!({"select": ["ID"], "start": 0})).await;
    assert_eq!(all["total"], 80);
    assert_eq!(call(&sim, "crm.lead.get", json!({"id": 4})).await.0, 400);
    let (st, got) = call(&sim, "crm.lead.get", json!({"id": 162})).await;
    assert_eq!((st, got["result"]["NAME"].as_str()), (200, Some("Олег")));
    assert_eq!(got["result"]["BIRTHDATE"], "");

    // Raw writes keep DATE_MODIFY and may be garbage.
    let dm = portal.lead(6).expect("lead")["DATE_MODIFY"].clone();
    assert!(portal.set_field_raw(6, "ID", json!("abc")));
    assert!(portal.set_field_raw(6, "TITLE", json!({"x": 1})));
    let l = portal.lead(6).expect("lead");
    assert_eq!(
        (
            l["ID"].clone(),
            l["TITLE"].clone(),
            l["DATE_MODIFY"].clone()
        ),
        (json!("abc"), json!({"x": 1}), dm)
    );
}

#[tokio::test]
async fn same_seed_same_portal() {
    let a = start(SimulatorConfig {
        seed: 7,
        ..config(300)
    })
    .await;
    let b = start(SimulatorConfig {
        seed: 7,
        ..config(300)
    })
    .await;
    let c = start(SimulatorConfig {
        seed: 8,
        ..config(300)
    })
    .await;
    assert_eq!(a.portal().leads(), b.portal().leads());
    assert_ne!(a.portal().leads(), c.portal().leads());
    let (_, la) = call(
        &a,
        "crm.lead.list",
        json!({"select": ["*", "PHONE"], "start": 100}),
    )
    .await;
    let (_, lb) = call(
        &b,
        "crm.lead.list",
        json!({"select": ["*", "PHONE"], "start": 100}),
    )
    .await;
    assert_eq!(la["result"], lb["result"]);
}

#[tokio::test]
async fn dictionaries_and_users() {
    let sim = start(config(50)).await;
    let (_, f) = call(&sim, "crm.lead.fields", json!({})).await;
    let sol = &f["result"]["UF_CRM_SOLUTION"];
    assert_eq!(
        (
            sol["type"].as_str(),
            sol["isMultiple"].as_bool(),
            sol["isDynamic"].as_bool()
        ),
        (Some("enumeration"), Some(true), Some(true))
    );
    assert_eq!(
        sol["items"][0],
        json!({"ID": "101", "VALUE": "Перезвонить"})
    );
    assert_eq!(f["result"]["DATE_MODIFY"]["type"], "datetime");

    let (_, u) = get(
        &sim,
        "crm.lead.userfield.list",
        "filter%5BFIELD_NAME%5D=UF_CRM_SOLUTION&filter%5BLANG%5D=ru",
    )
    .await;
    let rows = u["result"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["MULTIPLE"].as_str(), rows[0]["ENTITY_ID"].as_str()),
        (Some("Y"), Some("CRM_LEAD"))
    );
    assert_eq!(
        rows[0]["LIST"].as_array().map(Vec::len),
        Some(sim.portal().solution_items().len())
    );
    assert_eq!(rows[0]["EDIT_FORM_LABEL"], "Решение клиента");

    let (_, users) = call(&sim, "user.get", json!({"filter": {"@ID": ["3", "5"]}})).await;
    assert_eq!(users["result"].as_array().map(Vec::len), Some(2));
    assert_eq!(users["result"][0]["UF_PHONE_INNER"], "103");
    let (_, users) = call(&sim, "user.get", json!({})).await;
    assert_eq!(users["total"], 20);
    for lead in sim.portal().leads() {
        let uid: u32 = lead["ASSIGNED_BY_ID"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("user id");
        assert!((1..=20).contains(&uid));
    }

    let scoped = start(SimulatorConfig {
        user_scope: false,
        ..config(1)
    })
    .await;
    let (st, body) = call(&scoped, "user.get", json!({})).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (401, Some("insufficient_scope"))
    );
}

#[tokio::test]
async fn generated_data_has_the_traps() {
    let sim = start(SimulatorConfig {
        seed: 3,
        ..config(20_000)
    })
    .await;
    let leads = sim.portal().leads();
    let no_contacts = leads
        .iter()
        .filter(|l| {
            ["PHONE", "EMAIL", "WEB", "IM"]
                .iter()
                .all(|k| l.get(*k).is_none())
        })
        .count();
    assert!((1_400..2_600).contains(&no_contacts), "{no_contacts}");
    let long_comments = leads
        .iter()
        .filter(|l| {
            l["COMMENTS"]
                .as_str()
                .is_some_and(|c| c.chars().count() >= 40_000)
        })
        .count();
    assert!(long_comments > 5);
    assert!(leads.iter().any(|l| l["TITLE"]
        .as_str()
        .is_some_and(|t| t.chars().count() > 4_000)));
    assert!(leads.iter().any(|l| l["BIRTHDATE"]
        .as_str()
        .is_some_and(|b| b.starts_with("1984-02-29T03:00:00+03:00"))));
    assert!(leads
        .iter()
        .any(|l| l["COMPANY_TITLE"].as_str().is_some_and(|c| c.contains('"'))));
    assert!(leads
        .iter()
        .any(|l| l["COMMENTS"].as_str().is_some_and(|c| c.contains('\\'))));
    assert!(leads.iter().any(|l| l["UF_CRM_SOLUTION"] == json!(false)));
    assert!(leads.iter().any(|l| l["UF_CRM_SOLUTION"]
        .as_array()
        .is_some_and(|a| a.len() >= 2)));
    assert!(leads.iter().any(|l| l["IM"][0]["VALUE"]
        .as_str()
        .is_some_and(|v| v.starts_with("imol|"))));
    assert!(leads
        .iter()
        .all(|l| l["DATE_CLOSED"].is_string() && l["CONTACT_ID"].is_null()));
    // Multi-field IDs are unique across the portal.
    let mut fm_ids = BTreeSet::new();
    for l in &leads {
        for k in ["PHONE", "EMAIL", "WEB", "IM"] {
            for v in l.get(k).and_then(Value::as_array).into_iter().flatten() {
                assert!(fm_ids.insert(v["ID"].as_str().expect("fm id").to_string()));
            }
        }
    }
}

#[tokio::test]
async fn big_portal_generates_fast_and_pages_by_keyset() {
    let t = std::time::Instant::now();
    let sim = start(config(100_000)).await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let (_, body) = call(
        &sim,
        "crm.lead.list",
        json!({"order": {"ID": "ASC"}, "filter": {">ID": 99_990}, "select": ["ID"], "start": -1}),
    )
    .await;
    assert_eq!(ids(&body["result"]), (99_991..=100_000).collect::<Vec<_>>());
    // Deep counted pages are charged for the count and the offset.
    let (_, deep) = call(
        &sim,
        "crm.lead.list",
        json!({"select": ["ID"], "start": 99_950}),
    )
    .await;
    assert_eq!(deep["total"], 100_000);
    assert!(deep["time"]["processing"].as_f64().expect("processing") > 2.0);
}

/// Run by hand: `cargo test -p b24sync-simulator --lib tests::million -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "slow: a million leads"]
async fn million_leads_fit_in_memory() {
    let rss = || {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS"))
                    .map(str::to_string)
            })
    };
    let before = rss();
    let t = std::time::Instant::now();
    let sim = start(config(1_000_000)).await;
    println!("generated in {:?}; {before:?} -> {:?}", t.elapsed(), rss());
    let t = std::time::Instant::now();
    let (_, body) = call(
        &sim,
        "crm.lead.list",
        json!({"filter": {">ID": 999_000}, "select": ["*", "PHONE"], "start": -1}),
    )
    .await;
    assert_eq!(ids(&body["result"]).len(), 50);
    let (_, body) = call(
        &sim,
        "crm.lead.list",
        json!({"filter": {">=DATE_MODIFY": "2026-10-01"}, "select": ["ID"], "start": 0}),
    )
    .await;
    println!(
        "two pages in {:?}; total since 2026-10-01: {}",
        t.elapsed(),
        body["total"]
    );
}

#[tokio::test]
async fn order_and_other_filters() {
    let sim = start(config(200)).await;
    let leads = sim.portal().leads();
    let (_, body) = call(
        &sim,
        "crm.lead.list",
        json!({"order": {"DATE_MODIFY": "DESC"}, "select": ["ID", "DATE_MODIFY"], "start": 0}),
    )
    .await;
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = body["result"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            chrono::DateTime::parse_from_rfc3339(r["DATE_MODIFY"].as_str().unwrap_or(""))
                .expect("date")
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));

    let (_, body) = call(
        &sim,
        "crm.lead.list",
        json!({"filter": {"@ID": [3, "5", 7], "!ID": 5}, "start": 0}),
    )
    .await;
    assert_eq!(ids(&body["result"]), vec![3, 7]);
    let junk = leads.iter().filter(|l| l["STATUS_ID"] == "JUNK").count() as u64;
    let (_, body) = get(&sim, "crm.lead.list", "filter%5BSTATUS_ID%5D=JUNK&start=0").await;
    assert_eq!(body["total"].as_u64(), Some(junk));
    // Lower-case field names are unknown to the server: the filter is dropped.
    let (_, body) = get(&sim, "crm.lead.list", "filter%5Bstatus_id%5D=JUNK&start=0").await;
    assert_eq!(body["total"], 200);
    let (_, body) = call(
        &sim,
        "crm.lead.list",
        json!({"filter": {"%TITLE": "заявка"}, "select": ["TITLE"], "start": -1}),
    )
    .await;
    for row in body["result"].as_array().expect("rows") {
        assert!(row["TITLE"]
            .as_str()
            .is_some_and(|t| t.to_lowercase().contains("заявка")));
    }
}

#[tokio::test]
async fn latency_and_simulated_cost() {
    let cost = CostModel {
        sleep_scale: 1.0,
        base: 0.15,
        ..CostModel::default()
    };
    let sim = start(SimulatorConfig {
        latency: Duration::from_millis(100),
        cost,
        ..config(10)
    })
    .await;
    let t = std::time::Instant::now();
    let (_, body) = call(&sim, "crm.lead.fields", json!({})).await;
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(body["time"]["processing"].as_f64(), Some(0.15));
    assert!((sim.stats().server_time_secs - 0.15).abs() < 1e-9);
    sim.reset_stats();
    assert_eq!(sim.stats(), RequestStats::default());
}

#[tokio::test]
async fn sparse_time_blocks_leave_out_the_operating_keys() {
    let sim = start(SimulatorConfig {
        sparse_time: true,
        ..config(60)
    })
    .await;
    let (st, body) = call(&sim, "crm.lead.list", json!({"start": -1})).await;
    assert_eq!(st, 200);
    let time = &body["time"];
    assert!(time["start"].is_i64() && time["finish"].is_i64(), "{time}");
    assert!(time["processing"].is_number());
    assert!(time.get("operating").is_none() && time.get("operating_reset_at").is_none());
    // Inside a batch too, and in a 429.
    let (_, body) = call(
        &sim,
        "batch",
        json!({"cmd": {"a": "crm.lead.list?start=-1"}}),
    )
    .await;
    assert!(body["result"]["result_time"]["a"]
        .get("operating")
        .is_none());
    sim.inject(Fault::once(FaultKind::OperationTimeLimit {
        reset_in: Duration::from_secs(5),
    }));
    let (st, body) = call(&sim, "crm.lead.list", json!({})).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (429, Some("OPERATION_TIME_LIMIT"))
    );
    assert!(body["time"].get("operating_reset_at").is_none(), "{body}");
}

#[tokio::test]
async fn page_faults_hit_only_ascending_pages_after_their_id() {
    let sim = start(config(300)).await;
    let q = |after: &str, order: &str| {
        format!("crm.lead.list?order%5BID%5D={order}&filter%5B%3EID%5D={after}&start=-1")
    };
    sim.inject_page_fault(PageFault {
        from_id: 100,
        chained_only: true,
        kind: PageFaultKind::Empty,
        times: 1,
    });
    sim.inject_page_fault(PageFault {
        from_id: 200,
        chained_only: false,
        kind: PageFaultKind::Truncated { keep: 3 },
        times: 1,
    });
    // Not chained: the first fault does not apply, the second starts at 200.
    let cmd = json!({
        "a": q("120", "ASC"),
        "b": q("$result[a][49][ID]", "ASC"),
        "c": q("250", "DESC"),
        "d": q("250", "ASC"),
    });
    let (_, body) = call(&sim, "batch", json!({"cmd": cmd})).await;
    let r = &body["result"]["result"];
    assert_eq!(ids(&r["a"]).len(), 50, "a page after 120, not chained");
    assert_eq!(
        ids(&r["b"]),
        Vec::<i64>::new(),
        "chained after 170: emptied"
    );
    assert_eq!(ids(&r["c"]).len(), 50, "descending: untouched");
    assert_eq!(ids(&r["d"]), vec![251, 252, 253], "cut to 3 rows");
    assert_eq!(sim.stats().faults_served, 2);
    // Used up: the same batch again is whole.
    let (_, body) = call(&sim, "batch", json!({"cmd": cmd})).await;
    assert_eq!(ids(&body["result"]["result"]["b"]).len(), 50);
    assert_eq!(ids(&body["result"]["result"]["d"]).len(), 50);
}

#[tokio::test]
async fn a_renamed_portal_answers_302_with_the_new_address() {
    let sim = start(config(10)).await;
    sim.inject(Fault::once(FaultKind::Moved {
        location: "https://new-name.bitrix24.ru/rest/1/x/server.time.json".into(),
    }));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .post(format!("{}server.time", sim.webhook_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(
        resp.headers()["location"],
        "https://new-name.bitrix24.ru/rest/1/x/server.time.json"
    );
}
