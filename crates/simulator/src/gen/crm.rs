//! Generated contacts and companies, and the links between the three entities.
//!
//! Links are pure functions of the generated indices, so a lead, a contact and a company
//! agree on them without storing anything: generated lead `8m+1` is linked to contact `4m`
//! (`CONTACT_ID` on the lead, `LEAD_ID` on the contact, which carries the lead's first
//! phone — the same caller on both), every third contact works at a company (`COMPANY_ID`),
//! and lead `10m+3` names a company too. Phones of their own use city codes no generated
//! lead uses (contacts 499/343/383, companies 495/812/846), so a number found there is only
//! on that contact or company.

use chrono::{FixedOffset, NaiveDate};
use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::lead::{digits, long_comment, multi, person};
use super::words::{pick, COMPANIES, EMAIL_DOMAINS, EMAIL_USERS, PLACES, SOURCES, STREETS};
use super::{fmt_date, fmt_dt, generate_lead, lead_times, rng_for, USERS};
use crate::entity::{Entity, UF_COMPANY_INN, UF_CONTACT_CARD};

/// How many of each entity were generated, and their ID step: enough to follow a link.
#[derive(Debug, Clone, Copy, Default)]
pub struct Links {
    pub step: i64,
    pub leads: usize,
    pub contacts: usize,
    pub companies: usize,
}

impl Links {
    fn id(self, index: usize) -> i64 {
        (index as i64 + 1) * self.step
    }

    fn index(self, id: i64) -> Option<usize> {
        (self.step > 0 && id > 0 && id % self.step == 0).then(|| (id / self.step - 1) as usize)
    }

    /// The lead contact `j` was converted from.
    fn contact_lead(self, j: usize) -> Option<usize> {
        (j.is_multiple_of(4) && 2 * j + 1 < self.leads).then_some(2 * j + 1)
    }

    fn lead_contact(self, i: usize) -> Option<usize> {
        (i % 8 == 1 && i / 2 < self.contacts).then_some(i / 2)
    }

    fn contact_company(self, j: usize) -> Option<usize> {
        (self.companies > 0 && j.is_multiple_of(3)).then(|| (j / 3) % self.companies)
    }

    fn lead_company(self, i: usize) -> Option<usize> {
        match self.lead_contact(i) {
            Some(j) => self.contact_company(j),
            None => (self.companies > 0 && i % 10 == 3).then(|| (i / 10) % self.companies),
        }
    }
}

/// Sets a generated lead's CONTACT_ID / COMPANY_ID; nothing without contacts and companies.
pub fn link_lead(lead: &mut Map<String, Value>, id: i64, links: Links) {
    let Some(i) = links.index(id) else { return };
    if let Some(j) = links.lead_contact(i) {
        lead.insert("CONTACT_ID".into(), json!(links.id(j).to_string()));
    }
    if let Some(k) = links.lead_company(i) {
        lead.insert("COMPANY_ID".into(), json!(links.id(k).to_string()));
    }
}

/// A phone on a city code the lead generator never uses.
fn city_phone(rng: &mut SmallRng, codes: &[&str]) -> String {
    let code = *pick(rng, codes);
    let (a, b, c) = (digits(rng, 3), digits(rng, 2), digits(rng, 2));
    match rng.gen_range(0..7) {
        0 => format!("+7 ({code}) {a}-{b}-{c}"),
        1 => format!("8 ({code}) {a}{b}{c}"),
        2 => format!("8{code}{a}{b}{c}"),
        3 => format!("+7{code}{a}{b}{c}"),
        4 => format!("+7 ({code}) {a}-{b}-{c}, доб. {}", rng.gen_range(100..999)),
        5 => format!("{code}-{a}-{b}-{c}"),
        _ => format!(" +7 {code} {a} {b} {c} "),
    }
}

fn opt(b: bool, v: Value) -> Value {
    if b {
        v
    } else {
        Value::Null
    }
}

fn comments(rng: &mut SmallRng) -> Value {
    match rng.gen_range(0..1000) {
        0..=1 => json!(long_comment(rng)),
        2..=599 => Value::Null,
        600..=750 => json!("Постоянный клиент. Звонить с 10:00 до 18:00"),
        751..=850 => json!("[B]VIP[/B] — \"особые\" условия\r\nСм. C:\\Договоры\\2026"),
        851..=900 => json!("Любит 📞, не любит ✉️"),
        _ => json!(""),
    }
}

/// The address block shared by contacts and companies (`prefix` "" or "REG_").
fn address(rng: &mut SmallRng, m: &mut Map<String, Value>, prefix: &str, has: bool) {
    let place = *pick(rng, PLACES);
    let street = format!("{}, д. {}", pick(rng, STREETS), rng.gen_range(1..120));
    let postal = format!("{}{}", place.4, digits(rng, 3));
    let loc = rng.gen_range(1..90_000).to_string();
    for (k, v) in [
        ("ADDRESS", json!(street)),
        ("ADDRESS_2", Value::Null),
        ("ADDRESS_CITY", json!(place.0)),
        ("ADDRESS_POSTAL_CODE", json!(postal)),
        ("ADDRESS_REGION", Value::Null),
        ("ADDRESS_PROVINCE", json!(place.1)),
        ("ADDRESS_COUNTRY", json!(place.2)),
        ("ADDRESS_COUNTRY_CODE", json!(place.3)),
        ("ADDRESS_LOC_ADDR_ID", json!(loc)),
    ] {
        let v = if has && !v.is_null() { v } else { Value::Null };
        m.insert(format!("{prefix}{k}"), v);
    }
}

/// The fields in the table's order (absent ones null), then the user fields, then the
/// multi-fields that have values (missing, never `[]`, when there are none).
fn ordered(
    table: &[crate::fields::StdField],
    mut m: Map<String, Value>,
    ufs: &[(&str, Value)],
    multis: [(&str, Vec<Value>); 4],
) -> Map<String, Value> {
    let yn = |b: bool| json!(if b { "Y" } else { "N" });
    let has = |k: &str| multis.iter().any(|(n, v)| *n == k && !v.is_empty());
    m.insert("HAS_PHONE".into(), yn(has("PHONE")));
    m.insert("HAS_EMAIL".into(), yn(has("EMAIL")));
    m.insert("HAS_IMOL".into(), yn(false));
    let mut out = Map::new();
    for sf in table {
        out.insert(sf.name.into(), m.remove(sf.name).unwrap_or(Value::Null));
    }
    for (k, v) in ufs {
        out.insert((*k).into(), v.clone());
    }
    for (key, vals) in multis {
        if !vals.is_empty() {
            out.insert(key.into(), Value::Array(vals));
        }
    }
    out
}

fn users(rng: &mut SmallRng, create: i64, modify: i64) -> (String, String, String) {
    let mut user = || rng.gen_range(1..=USERS).to_string();
    let (assigned, created) = (user(), user());
    let modified = if modify == create {
        created.clone()
    } else {
        user()
    };
    (assigned, created, modified)
}

/// Generated contact `id`, the `index`-th, in `crm.contact.get` order.
pub fn generate_contact(
    seed: u64,
    id: i64,
    times: (i64, i64),
    offset: FixedOffset,
    links: Links,
) -> Map<String, Value> {
    let mut rng = rng_for(seed, id, 12);
    let (create, modify) = times;
    let (female, first, last, second) = person(&mut rng);
    let j = links.index(id);
    let lead = j.and_then(|j| links.contact_lead(j));
    let company = j.and_then(|j| links.contact_company(j));
    let (assigned, created, modified) = users(&mut rng, create, modify);

    let base = 1_000_000_000 + id * 8;
    let mut k = 0;
    let mut fm = || {
        k += 1;
        base + k - 1
    };
    let mut phones = Vec::new();
    if let Some(i) = lead {
        // The converted lead's first phone, as typed there: one caller on both.
        let lead_id = links.id(i);
        let times = lead_times(seed, lead_id, i, links.leads);
        let l = generate_lead(seed, lead_id, times, offset, "");
        if let Some(v) = l.get("PHONE").and_then(|p| p[0]["VALUE"].as_str()) {
            phones.push(multi(fm(), "PHONE", "MOBILE", v.to_string()));
        }
    }
    let n_own = *pick(&mut rng, &[0usize, 1, 1, 1, 2, 3]);
    for _ in 0..n_own {
        let vt = *pick(&mut rng, &["WORK", "MOBILE", "HOME", "OTHER"]);
        phones.push(multi(
            fm(),
            "PHONE",
            vt,
            city_phone(&mut rng, &["499", "343", "383"]),
        ));
    }
    if rng.gen_ratio(1, 50) {
        phones.push(multi(fm(), "PHONE", "WORK", String::new()));
    }
    let mut emails = Vec::new();
    if rng.gen_bool(0.5) {
        let mut e = format!(
            "{}@{}",
            pick(&mut rng, EMAIL_USERS),
            pick(&mut rng, EMAIL_DOMAINS)
        );
        if rng.gen_ratio(1, 20) {
            e = format!(" {} ", e.to_uppercase());
        }
        emails.push(multi(fm(), "EMAIL", "WORK", e));
    }
    let mut ims = Vec::new();
    if rng.gen_bool(0.1) {
        let nick = pick(&mut rng, EMAIL_USERS).replace('.', "_");
        ims.push(multi(fm(), "IM", "TELEGRAM", format!("@{nick}")));
    }
    let birthdate = if rng.gen_bool(0.7) {
        String::new()
    } else {
        let d = match rng.gen_range(0..15) {
            0 => NaiveDate::from_ymd_opt(1984, 2, 29),
            1 => NaiveDate::from_ymd_opt(1931, rng.gen_range(1..=12), rng.gen_range(1..=28)),
            _ => NaiveDate::from_ymd_opt(
                rng.gen_range(1950..2006),
                rng.gen_range(1..=12),
                rng.gen_range(1..=28),
            ),
        };
        d.map(|d| fmt_date(d, offset)).unwrap_or_default()
    };

    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("ID", json!(id.to_string()));
    put(
        "POST",
        opt(
            rng.gen_bool(0.3),
            json!(pick(
                &mut rng,
                &[
                    "Директор",
                    "Менеджер по закупкам",
                    "Гл. бухгалтер",
                    "Инженер \"по ТБ\""
                ]
            )),
        ),
    );
    put("COMMENTS", comments(&mut rng));
    put(
        "HONORIFIC",
        opt(
            rng.gen_bool(0.2),
            json!(if female { "HNR_RU_2" } else { "HNR_RU_1" }),
        ),
    );
    put("NAME", json!(first));
    put("SECOND_NAME", opt(rng.gen_bool(0.4), json!(second)));
    put("LAST_NAME", opt(rng.gen_bool(0.9), json!(last)));
    put(
        "LEAD_ID",
        opt(lead.is_some(), json!(lead.map(|i| links.id(i).to_string()))),
    );
    put(
        "TYPE_ID",
        json!(pick(
            &mut rng,
            &["CLIENT", "CLIENT", "SUPPLIER", "PARTNER", "OTHER"]
        )),
    );
    put("SOURCE_ID", json!(pick(&mut rng, SOURCES)));
    put(
        "COMPANY_ID",
        opt(
            company.is_some(),
            json!(company.map(|k| links.id(k).to_string())),
        ),
    );
    put("BIRTHDATE", json!(birthdate));
    put("EXPORT", json!(if rng.gen_bool(0.9) { "Y" } else { "N" }));
    put("DATE_CREATE", json!(fmt_dt(create, offset)));
    put("DATE_MODIFY", json!(fmt_dt(modify, offset)));
    put("ASSIGNED_BY_ID", json!(assigned));
    put("CREATED_BY_ID", json!(created));
    put("MODIFY_BY_ID", json!(modified.clone()));
    put("OPENED", json!(if rng.gen_bool(0.8) { "Y" } else { "N" }));
    put("LAST_ACTIVITY_TIME", json!(fmt_dt(modify, offset)));
    put("LAST_ACTIVITY_BY", json!(modified));
    let has_addr = rng.gen_bool(0.3);
    address(&mut rng, &mut m, "", has_addr);
    let card = opt(
        rng.gen_bool(0.3),
        json!(format!("КК-{}", digits(&mut rng, 6))),
    );
    let multis = [
        ("PHONE", phones),
        ("EMAIL", emails),
        ("WEB", vec![]),
        ("IM", ims),
    ];
    ordered(
        Entity::Contact.standard_fields(),
        m,
        &[(UF_CONTACT_CARD, card)],
        multis,
    )
}

/// Generated company `id`, in `crm.company.get` order.
pub fn generate_company(
    seed: u64,
    id: i64,
    times: (i64, i64),
    offset: FixedOffset,
) -> Map<String, Value> {
    let mut rng = rng_for(seed, id, 22);
    let (create, modify) = times;
    let name = *pick(&mut rng, COMPANIES);
    let title = if rng.gen_ratio(1, 500) {
        // Pasted from a document: over the 4,000-character column.
        let mut t = String::from("Компания: ");
        while t.chars().count() <= 4_100 {
            t.push_str(name);
            t.push_str(" — филиал «Центральный»; ");
        }
        t
    } else if rng.gen_bool(0.5) {
        format!("{name} #{id}")
    } else {
        name.to_string()
    };
    let (assigned, created, modified) = users(&mut rng, create, modify);
    let base = 1_500_000_000 + id * 8;
    let mut k = 0;
    let mut fm = || {
        k += 1;
        base + k - 1
    };
    let mut phones = Vec::new();
    for _ in 0..*pick(&mut rng, &[0usize, 1, 1, 2, 3]) {
        phones.push(multi(
            fm(),
            "PHONE",
            "WORK",
            city_phone(&mut rng, &["495", "812", "846"]),
        ));
    }
    if rng.gen_ratio(1, 50) {
        phones.push(multi(fm(), "PHONE", "WORK", String::new()));
    }
    let mut emails = Vec::new();
    if rng.gen_bool(0.6) {
        emails.push(multi(
            fm(),
            "EMAIL",
            "WORK",
            format!("info@{}", pick(&mut rng, EMAIL_DOMAINS)),
        ));
    }
    let mut webs = Vec::new();
    if rng.gen_bool(0.4) {
        let w = *pick(
            &mut rng,
            &[
                "https://romashka.ru",
                "www.okna-mir.ru/?utm=1&x=\"2\"",
                "http://газ-и-ко.рф",
            ],
        );
        webs.push(multi(fm(), "WEB", "WORK", w.to_string()));
    }
    let revenue = if rng.gen_bool(0.4) {
        "0".to_string()
    } else {
        (rng.gen_range(1..2_000) * 50_000).to_string()
    };

    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("ID", json!(id.to_string()));
    put(
        "COMPANY_TYPE",
        json!(pick(
            &mut rng,
            &[
                "CUSTOMER",
                "CUSTOMER",
                "SUPPLIER",
                "PARTNER",
                "COMPETITOR",
                "OTHER"
            ]
        )),
    );
    put("TITLE", json!(title));
    put("ASSIGNED_BY_ID", json!(assigned));
    put("CREATED_BY_ID", json!(created));
    put("MODIFY_BY_ID", json!(modified.clone()));
    put(
        "BANKING_DETAILS",
        opt(
            rng.gen_bool(0.2),
            json!(format!(
                "р/с 40702810{}\r\nБИК 044525{}",
                digits(&mut rng, 12),
                digits(&mut rng, 3)
            )),
        ),
    );
    put(
        "INDUSTRY",
        json!(pick(
            &mut rng,
            &[
                "IT",
                "TELECOM",
                "MANUFACTURING",
                "BANKING",
                "CONSULTING",
                "DELIVERY",
                "OTHER"
            ]
        )),
    );
    put("REVENUE", json!(revenue));
    put("CURRENCY_ID", json!("RUB"));
    put(
        "EMPLOYEES",
        json!(pick(
            &mut rng,
            &["EMPLOYEES_1", "EMPLOYEES_2", "EMPLOYEES_3", "EMPLOYEES_4"]
        )),
    );
    put("COMMENTS", comments(&mut rng));
    put("DATE_CREATE", json!(fmt_dt(create, offset)));
    put("DATE_MODIFY", json!(fmt_dt(modify, offset)));
    put("OPENED", json!(if rng.gen_bool(0.8) { "Y" } else { "N" }));
    put("IS_MY_COMPANY", json!("N"));
    put("LAST_ACTIVITY_BY", json!(modified));
    put("LAST_ACTIVITY_TIME", json!(fmt_dt(modify, offset)));
    put("LAST_COMMUNICATION_TIME", json!(""));
    let has_addr = rng.gen_bool(0.5);
    address(&mut rng, &mut m, "", has_addr);
    let has_reg = has_addr && rng.gen_bool(0.5);
    address(&mut rng, &mut m, "REG_", has_reg);
    let inn = opt(rng.gen_bool(0.6), json!(digits(&mut rng, 10)));
    let multis = [
        ("PHONE", phones),
        ("EMAIL", emails),
        ("WEB", webs),
        ("IM", vec![]),
    ];
    ordered(
        Entity::Company.standard_fields(),
        m,
        &[(UF_COMPANY_INN, inn)],
        multis,
    )
}
