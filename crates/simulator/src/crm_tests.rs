//! Contacts and companies over real HTTP, as a client sees them: the same paging,
//! select, filters, batch chaining, limits and edits as leads, their links to leads and
//! each other, and that a portal without them serves leads exactly as before.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::tests::{call, config, get, ids, start};
use super::*;

fn crm(leads: usize, contacts: usize, companies: usize) -> SimulatorConfig {
    SimulatorConfig {
        contacts,
        companies,
        ..config(leads)
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The digits of every PHONE value of these records.
fn phones(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .flat_map(|r| r["PHONE"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["VALUE"].as_str().map(digits))
        .filter(|d| !d.is_empty())
        .collect()
}

/// Pages a list method by `>ID` inside one batch of chained sub-calls per 3 pages.
async fn all_ids_by_batch(sim: &Simulator, method: &str) -> Vec<i64> {
    let q = |after: &str| {
        format!("{method}?order%5BID%5D=ASC&filter%5B%3EID%5D={after}&select%5B0%5D=ID&start=-1")
    };
    let mut seen = Vec::new();
    let mut last = "0".to_string();
    loop {
        let cmd = json!({
            "p0": q(&last),
            "p1": q("$result[p0][49][ID]"),
            "p2": q("$result[p1][49][ID]"),
        });
        let (st, body) = call(sim, "batch", json!({"halt": 0, "cmd": cmd})).await;
        assert_eq!(st, 200);
        let r = &body["result"];
        assert_eq!(r["result_error"], json!([]));
        assert_eq!(r["result_next"], json!([]), "start=-1 gives no next");
        assert_eq!(r["result_total"]["p0"], 0, "start=-1 does not count");
        let mut short = false;
        for p in ["p0", "p1", "p2"] {
            let page = ids(&r["result"][p]);
            short = page.len() < 50;
            seen.extend(&page);
            if short {
                break;
            }
        }
        if short {
            return seen;
        }
        last = seen.last().expect("a full page").to_string();
    }
}

#[tokio::test]
async fn contacts_and_companies_page_by_keyset_in_batch_and_by_next() {
    let sim = start(SimulatorConfig {
        id_step: 3,
        ..crm(20, 237, 121)
    })
    .await;
    let p = sim.portal();
    assert_eq!(p.contact_ids().len(), 237);
    assert_eq!(p.contact_ids()[..3], [3, 6, 9]);
    assert_eq!(
        all_ids_by_batch(&sim, "crm.contact.list").await,
        p.contact_ids()
    );
    assert_eq!(
        all_ids_by_batch(&sim, "crm.company.list").await,
        p.company_ids()
    );
    assert!(sim.stats().by_method["crm.contact.list"] >= 5);

    // Offset paging counts, 50 a page, as for leads.
    let (_, body) = call(
        &sim,
        "crm.company.list",
        json!({"start": 100, "select": ["ID"]}),
    )
    .await;
    assert_eq!(body["total"], 121);
    assert_eq!(body["result"].as_array().map(Vec::len), Some(21));
    assert!(body.get("next").is_none());
    let (_, body) = get(&sim, "crm.contact.list", "start=0&select[]=ID").await;
    assert_eq!(
        (body["total"].as_u64(), body["next"].as_u64()),
        (Some(237), Some(50))
    );

    // `<=ID`, `@ID` and a descending order.
    let (_, body) = call(
        &sim,
        "crm.contact.list",
        json!({"filter": {"<=ID": 30, "@ID": [3, 12, 30, 33]}, "order": {"ID": "DESC"},
               "select": ["ID"], "start": -1}),
    )
    .await;
    assert_eq!(ids(&body["result"]), vec![30, 12, 3]);
}

#[tokio::test]
async fn select_follows_the_lead_rules() {
    let sim = start(crm(10, 60, 30)).await;
    let p = sim.portal();
    let with_phone = p
        .contacts()
        .into_iter()
        .find(|c| c["PHONE"].is_array() && c[entity::UF_CONTACT_CARD].is_string())
        .expect("a contact with a phone and a card");
    let id = with_phone["ID"].as_str().expect("ID").to_string();
    let one = |select: Value| json!({"filter": {"=ID": id.clone()}, "select": select, "start": -1});
    let (_, body) = call(&sim, "crm.contact.list", one(json!(["*"]))).await;
    let row = body["result"][0].as_object().expect("row").clone();
    assert!(row.contains_key("NAME") && row.contains_key("COMPANY_ID"));
    assert!(!row.contains_key("PHONE"), "* leaves out multi-fields");
    assert!(
        !row.contains_key(entity::UF_CONTACT_CARD),
        "* leaves out UF fields"
    );
    assert!(!row.contains_key("COMPANY_IDS"), "not returned by list");

    let (_, body) = call(
        &sim,
        "crm.contact.list",
        one(json!(["*", "UF_*", "PHONE", "EMAIL", "COMPANY_IDS"])),
    )
    .await;
    let row = body["result"][0].as_object().expect("row").clone();
    assert_eq!(row["PHONE"], with_phone["PHONE"]);
    assert_eq!(
        row[entity::UF_CONTACT_CARD],
        with_phone[entity::UF_CONTACT_CARD]
    );
    assert!(!row.contains_key("COMPANY_IDS"));
    assert!(!row.contains_key("WEB"), "unnamed multi-field");

    let (_, body) = call(
        &sim,
        "crm.contact.list",
        one(json!(["NAME", "DATE_MODIFY"])),
    )
    .await;
    let keys: Vec<&String> = body["result"][0].as_object().expect("row").keys().collect();
    assert_eq!(keys, ["ID", "NAME", "DATE_MODIFY"]);

    // No select: the standard fields only; the full row is what `get` returns.
    let (_, body) = call(&sim, "crm.company.list", json!({"start": -1})).await;
    let row = body["result"][0].as_object().expect("row");
    assert!(row.contains_key("TITLE") && !row.contains_key(entity::UF_COMPANY_INN));
    let (st, got) = call(&sim, "crm.contact.get", json!({"id": id})).await;
    assert_eq!((st, &got["result"]), (200, &with_phone));
}

#[tokio::test]
async fn get_of_a_missing_id_and_the_field_descriptions() {
    let sim = start(crm(5, 5, 5)).await;
    for m in ["crm.contact.get", "crm.company.get"] {
        let (st, body) = call(&sim, m, json!({"id": 999})).await;
        assert_eq!(
            (st, &body),
            (400, &json!({"error": "", "error_description": "Not found"}))
        );
        let (st, body) = call(&sim, m, json!({"id": "x"})).await;
        assert_eq!(
            (st, body["error_description"].as_str()),
            (400, Some("ID is not defined or invalid."))
        );
    }
    let (_, f) = call(&sim, "crm.contact.fields", json!({})).await;
    let f = &f["result"];
    assert_eq!(f["NAME"]["type"], "string");
    assert_eq!(f["TYPE_ID"]["statusType"], "CONTACT_TYPE");
    assert_eq!(f["COMPANY_IDS"]["isMultiple"], true);
    assert_eq!(f["COMPANY_ID"]["isDeprecated"], true);
    assert_eq!(f["LEAD_ID"]["isReadOnly"], true);
    assert_eq!(
        (
            f["PHONE"]["type"].as_str(),
            f["PHONE"]["isMultiple"].as_bool()
        ),
        (Some("crm_multifield"), Some(true))
    );
    assert_eq!(f[entity::UF_CONTACT_CARD]["isDynamic"], true);
    assert!(f.get("TITLE").is_none());
    let (_, f) = call(&sim, "crm.company.fields", json!({})).await;
    let f = &f["result"];
    assert_eq!(f["TITLE"]["isRequired"], true);
    for k in [
        "COMPANY_TYPE",
        "INDUSTRY",
        "REVENUE",
        "EMPLOYEES",
        "CURRENCY_ID",
        "IS_MY_COMPANY",
    ] {
        assert!(f[k].is_object(), "{k}");
    }
    let (_, u) = call(
        &sim,
        "crm.company.userfield.list",
        json!({"filter": {"LANG": "en"}}),
    )
    .await;
    assert_eq!(u["result"][0]["ENTITY_ID"], "CRM_COMPANY");
    assert_eq!(u["result"][0]["FIELD_NAME"], entity::UF_COMPANY_INN);
    assert_eq!(u["result"][0]["EDIT_FORM_LABEL"], "Tax number");
    let (_, u) = call(&sim, "crm.contact.userfield.list", json!({})).await;
    assert_eq!(u["total"], 1);
    assert_eq!(u["result"][0]["ENTITY_ID"], "CRM_CONTACT");
    // The lead's are unchanged.
    let (_, u) = call(&sim, "crm.lead.userfield.list", json!({})).await;
    assert_eq!(u["total"], 3);
    assert_eq!(u["result"][0]["ENTITY_ID"], "CRM_LEAD");
}

#[tokio::test]
async fn links_and_shared_phones() {
    let sim = start(SimulatorConfig {
        id_step: 7,
        ..crm(400, 150, 40)
    })
    .await;
    let p = sim.portal();
    let (leads, contacts, companies) = (p.leads(), p.contacts(), p.companies());
    let contact_ids: BTreeSet<String> = contacts
        .iter()
        .map(|c| c["ID"].as_str().unwrap_or("").into())
        .collect();
    let company_ids: BTreeSet<String> = companies
        .iter()
        .map(|c| c["ID"].as_str().unwrap_or("").into())
        .collect();
    let mut linked = 0;
    let mut shared = 0;
    for lead in &leads {
        if let Some(c) = lead["CONTACT_ID"].as_str() {
            linked += 1;
            assert!(contact_ids.contains(c), "lead {} → contact {c}", lead["ID"]);
            let contact = p.contact(c.parse().expect("ID")).expect("contact");
            assert_eq!(contact["LEAD_ID"], lead["ID"]);
            let lead_phones = phones(std::slice::from_ref(lead));
            if !lead_phones.is_empty() {
                shared += 1;
                assert!(!lead_phones.is_disjoint(&phones(&[contact])));
            }
        }
        let company = lead["COMPANY_ID"]
            .as_str()
            .expect("lead COMPANY_ID is a string");
        assert!(company == "0" || company_ids.contains(company));
    }
    assert!(
        linked >= 20 && shared >= 10,
        "{linked} linked, {shared} share a phone"
    );
    assert!(leads.iter().any(|l| l["COMPANY_ID"] != "0"));
    let with_company = contacts
        .iter()
        .filter(|c| c["COMPANY_ID"].is_string())
        .count();
    assert!(with_company >= 30);
    for c in &contacts {
        if let Some(k) = c["COMPANY_ID"].as_str() {
            assert!(company_ids.contains(k));
        }
    }
    // Numbers only on a contact, only on a company, and on a lead and a contact.
    let (lp, cp, kp) = (phones(&leads), phones(&contacts), phones(&companies));
    assert!(!lp.is_disjoint(&cp));
    assert!(cp.difference(&lp).any(|n| !kp.contains(n)));
    assert!(kp.difference(&lp).any(|n| !cp.contains(n)));
    // A filter on the link, as a lookup by contact would use.
    let some_contact = leads
        .iter()
        .find_map(|l| l["CONTACT_ID"].as_str())
        .expect("a link");
    let (_, body) = call(
        &sim,
        "crm.lead.list",
        json!({"filter": {"CONTACT_ID": some_contact}, "select": ["ID", "CONTACT_ID"]}),
    )
    .await;
    assert_eq!(body["total"], 1);
}

#[tokio::test]
async fn awkward_values_and_types_as_for_leads() {
    let sim = start(crm(0, 600, 300)).await;
    let p = sim.portal();
    let contacts = p.contacts();
    let companies = p.companies();
    assert!(
        contacts.iter().any(|c| c.get("PHONE").is_none()),
        "missing PHONE key"
    );
    assert!(contacts.iter().all(|c| c["PHONE"] != json!([])), "never []");
    assert!(contacts.iter().chain(&companies).any(|c| c["PHONE"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v["VALUE"] == ""))));
    assert!(contacts.iter().any(|c| c["BIRTHDATE"] == ""));
    assert!(contacts
        .iter()
        .any(|c| c["BIRTHDATE"].as_str().is_some_and(|b| b.len() == 25)));
    assert!(companies.iter().any(|c| c["TITLE"]
        .as_str()
        .is_some_and(|t| t.chars().count() > 4_000)));
    for c in &contacts {
        assert!(c["ASSIGNED_BY_ID"].is_string() && c["ID"].is_string());
        assert_eq!(c["HAS_PHONE"] == "Y", c["PHONE"].is_array());
    }
    for c in &companies {
        assert!(c["REVENUE"].is_string() && c["TITLE"].is_string());
        assert_eq!(c["LAST_COMMUNICATION_TIME"], "");
    }
    // Multi-field value IDs are unique across entities.
    let mut fm = BTreeSet::new();
    for r in contacts.iter().chain(&companies) {
        for k in ["PHONE", "EMAIL", "WEB", "IM"] {
            for v in r[k].as_array().cloned().unwrap_or_default() {
                assert!(fm.insert(v["ID"].as_str().expect("fm ID").to_string()));
            }
        }
    }
}

#[tokio::test]
async fn edits_show_in_date_modify_filters() {
    let sim = start(crm(5, 80, 20)).await;
    let p = sim.portal();
    let since = p.now().format("%Y-%m-%dT%H:%M:%S%:z").to_string();
    let changed = |m: &'static str| {
        let since = since.clone();
        let sim = &sim;
        async move {
            let (_, body) = call(sim, m, json!({"filter": {">=DATE_MODIFY": since}, "select": ["ID", "NAME", "TITLE", "PHONE"], "start": -1})).await;
            body["result"].clone()
        }
    };
    assert_eq!(changed("crm.contact.list").await, json!([]));
    assert!(p.update_contact(7, |c| {
        c.insert("NAME".into(), json!("Изменён"));
        c.insert("PHONE".into(), json!([{"VALUE": "+7 (499) 000-00-00"}]));
    }));
    let mut fields = Map::new();
    fields.insert("TITLE".into(), json!("ООО \"Новая\""));
    let new_company = p.add_company(fields);
    assert_eq!(new_company, 21);
    assert!(p.update_company(3, |c| {
        c.insert("TITLE".into(), json!("Переименована"));
    }));
    let rows = changed("crm.contact.list").await;
    assert_eq!(ids(&rows), vec![7]);
    assert_eq!(rows[0]["NAME"], "Изменён");
    assert!(
        rows[0]["PHONE"][0]["ID"].is_string(),
        "new values get an ID"
    );
    assert_eq!(p.contact(7).expect("contact")["HAS_PHONE"], "Y");
    assert_eq!(ids(&changed("crm.company.list").await), vec![3, 21]);
    let added = p.company(21).expect("company");
    assert_eq!(
        (added["COMPANY_TYPE"].as_str(), added["REVENUE"].as_str()),
        (Some("CUSTOMER"), Some("0"))
    );
    assert_eq!(added["LAST_COMMUNICATION_TIME"], "");

    assert!(p.delete_contact(7));
    assert!(!p.update_contact(7, |_| {}));
    assert_eq!(changed("crm.contact.list").await, json!([]));
    let (st, _) = call(&sim, "crm.contact.get", json!({"id": 7})).await;
    assert_eq!(st, 400);
    assert!(p.add_contact_with_id(5_000, Map::new()));
    assert!(!p.add_contact_with_id(5_000, Map::new()));
    assert_eq!(
        p.contact(5_000).expect("contact")["COMPANY_ID"],
        Value::Null
    );
    assert_eq!(p.contact_ids().len(), 80);
    // Leads untouched by contact and company edits.
    assert_eq!(p.lead_ids(), vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn limits_and_faults_apply() {
    let sim = start(SimulatorConfig {
        rate_limit: Some(RateLimit {
            per_second: 2.0,
            burst: 3,
        }),
        ..crm(5, 100, 10)
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get(&sim, "crm.contact.list", "start=-1").await.0, 200);
    }
    let (st, body) = get(&sim, "crm.company.list", "").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (503, Some("QUERY_LIMIT_EXCEEDED"))
    );
    sim.portal().advance_clock(Duration::from_secs(10));
    sim.inject(Fault {
        method: Some("crm.contact.list".into()),
        kind: FaultKind::Internal,
        times: 1,
    });
    assert_eq!(get(&sim, "crm.contact.list", "").await.0, 500);
    assert_eq!(get(&sim, "crm.contact.list", "").await.0, 200);
    // Counting is what costs, as for leads.
    let (_, cheap) = get(&sim, "crm.contact.list", "start=-1").await;
    let (_, counted) = get(&sim, "crm.contact.list", "start=0").await;
    assert!(counted["time"]["processing"].as_f64() > cheap["time"]["processing"].as_f64());
    assert!(counted["time"]["operating"].is_number());
}

#[tokio::test]
async fn without_contacts_leads_are_served_as_before() {
    let plain = start(config(300)).await;
    let (_, body) = call(&plain, "crm.contact.list", json!({})).await;
    assert_eq!((&body["result"], &body["total"]), (&json!([]), &json!(0)));
    let leads = plain.portal().leads();
    assert!(leads
        .iter()
        .all(|l| l["CONTACT_ID"].is_null() && l["COMPANY_ID"] == "0"));
    // With contacts and companies, leads differ only in their two link fields.
    let linked = start(crm(300, 100, 20)).await;
    let other = linked.portal().leads();
    assert_eq!(leads.len(), other.len());
    let mut differ = 0;
    for (a, b) in leads.iter().zip(&other) {
        let (mut a, mut b) = (a.clone(), b.clone());
        if a != b {
            differ += 1;
        }
        for k in ["CONTACT_ID", "COMPANY_ID"] {
            a[k] = Value::Null;
            b[k] = Value::Null;
        }
        assert_eq!(a, b);
    }
    assert!(differ > 0);
}
