//! One generated lead: every field in `crm.lead.get` order, drawn from its own RNG stream,
//! with the awkward values a loader must survive.

use chrono::{FixedOffset, NaiveDate};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::words::{
    pick, COMPANIES, EMAIL_DOMAINS, EMAIL_USERS, FEMALE, MALE, PATRONYMIC_ROOTS, PLACES, PRODUCTS,
    SOURCES, STATUSES, STREETS, SURNAMES, SURNAMES_FIXED,
};
use super::{fmt_date, fmt_dt, rng_for, USERS};
use crate::fields::{SOLUTION_ITEMS, UF_BUDGET, UF_PROMO};

pub(super) fn digits(rng: &mut SmallRng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// A phone number in one of the formats people actually type into a CRM.
pub(super) fn phone(rng: &mut SmallRng) -> String {
    let op = format!("9{}", digits(rng, 2));
    let a = digits(rng, 3);
    let b = digits(rng, 2);
    let c = digits(rng, 2);
    match rng.gen_range(0..10) {
        0 => format!("+7 ({op}) {a}-{b}-{c}"),
        1 => format!("+7 ({op}) {a}-{b}-{c} (доб. {})", rng.gen_range(10..999)),
        2 => format!("8 {op} {a} {b} {c}"),
        3 => format!("8-{op}-{a}-{b}-{c}"),
        4 => format!("8{op}{a}{b}{c}"),
        5 => format!("+375 29 {a}-{b}-{c}"),
        6 => format!("+380 44 {a} {b}{c}"),
        7 => format!("+7 701 {a} {b} {c}"),
        8 => format!("{op}{a}{b}{c}"),
        _ => format!("+7{op}{a}{b}{c}"),
    }
}

pub(super) fn multi(id: i64, ty: &str, value_type: &str, value: String) -> Value {
    json!({"ID": id.to_string(), "VALUE_TYPE": value_type, "VALUE": value, "TYPE_ID": ty})
}

pub(super) fn long_comment(rng: &mut SmallRng) -> String {
    // A pasted e-mail thread: quoted replies, CRLFs, HTML remnants, signature with quotes.
    let mut s = String::from("-----Original Message-----\r\nFrom: \"Иванов Пётр\" <ivanov.p@mail.ru>\r\nSubject: RE: Коммерческое предложение №");
    s.push_str(&digits(rng, 5));
    s.push_str("\r\n\r\n");
    let para = "> Добрый день! Направляем Вам коммерческое предложение по вашему запросу. \
Цены указаны с НДС 20%, доставка по г. Москва — бесплатно. Путь к файлу: C:\\Users\\manager\\КП\\offer_v2.pdf. \
<p style=\"margin:0\">С уважением, отдел продаж ООО \"Ромашка\" 🌼</p>\r\n";
    while s.chars().count() < 40_000 {
        s.push_str(para);
    }
    s
}

/// (female, first name, surname, patronymic), drawn in this order from `rng`.
pub(super) fn person(rng: &mut SmallRng) -> (bool, &'static str, String, String) {
    let female = rng.gen_bool(0.5);
    let first = *pick(rng, if female { FEMALE } else { MALE });
    let last = if rng.gen_bool(0.85) {
        let s = *pick(rng, SURNAMES);
        if female {
            format!("{s}а")
        } else {
            s.to_string()
        }
    } else {
        pick(rng, SURNAMES_FIXED).to_string()
    };
    let patronymic = format!(
        "{}{}",
        pick(rng, PATRONYMIC_ROOTS),
        if female { "на" } else { "ич" }
    );
    (female, first, last, patronymic)
}

/// All fields of generated lead `id`, in `crm.lead.get` order (standard, UF, multi).
pub fn generate_lead(
    seed: u64,
    id: i64,
    times: (i64, i64),
    offset: FixedOffset,
    solution_field: &str,
) -> Map<String, Value> {
    let mut rng = rng_for(seed, id, 2);
    let (create, modify) = times;
    let (female, first, last, patronymic) = person(&mut rng);
    let has_name = rng.gen_bool(0.9);
    let has_second = rng.gen_bool(0.3);
    let company = rng
        .gen_bool(0.35)
        .then(|| pick(&mut rng, COMPANIES).to_string());
    let product = *pick(&mut rng, PRODUCTS);
    let place = *pick(&mut rng, PLACES);

    let title = if rng.gen_ratio(1, 2000) {
        // A title pasted from a document: over the 4,000-character column.
        let mut t = String::from("Заявка: ");
        while t.chars().count() <= 4_100 {
            t.push_str("Прошу перезвонить по поводу «");
            t.push_str(product);
            t.push_str("» — срочно!!! ");
        }
        t
    } else {
        match rng.gen_range(0..11) {
            0 => "Заявка с сайта".to_string(),
            1 => "Входящий звонок".to_string(),
            2 => format!("Лид с формы обратной связи #{}", id),
            3 => format!(
                "Заявка: {}",
                company.clone().unwrap_or_else(|| "частное лицо".into())
            ),
            4 => format!("{last} {first} — консультация"),
            5 => format!("Звонок с номера {}", phone(&mut rng)),
            6 => format!("🔥 Срочно: {product}"),
            7 => "Повторное обращение".to_string(),
            8 => format!("CRM-форма \"Расчёт стоимости\" ({product})"),
            9 => format!("Чат Telegram — {first} 💬"),
            _ => format!("Заказ №{}", rng.gen_range(1000..99_999)),
        }
    };

    let status = *pick(&mut rng, STATUSES);
    let semantic = match status {
        "JUNK" => "F",
        "CONVERTED" => "S",
        _ => "P",
    };
    let closed = if semantic == "P" {
        String::new()
    } else {
        fmt_dt(modify, offset)
    };
    let user = |rng: &mut SmallRng| rng.gen_range(1..=USERS).to_string();
    let assigned = user(&mut rng);
    let created_by = user(&mut rng);
    let modify_by = if modify == create {
        created_by.clone()
    } else {
        user(&mut rng)
    };

    let birthdate = if rng.gen_bool(0.85) {
        String::new()
    } else {
        let d = match rng.gen_range(0..20) {
            0 => NaiveDate::from_ymd_opt(1984, 2, 29),
            1 => NaiveDate::from_ymd_opt(1931, rng.gen_range(1..=12), rng.gen_range(1..=28)),
            2 => NaiveDate::from_ymd_opt(1932, 2, 29),
            _ => NaiveDate::from_ymd_opt(
                rng.gen_range(1950..2006),
                rng.gen_range(1..=12),
                rng.gen_range(1..=28),
            ),
        };
        d.map(|d| fmt_date(d, offset)).unwrap_or_default()
    };

    let comments: Value = match rng.gen_range(0..1000) {
        0..=1 => json!(long_comment(&mut rng)),
        2..=549 => Value::Null,
        550..=700 => json!(format!(
            "Клиент интересуется: {product}. Перезвонить после 18:00"
        )),
        701..=800 => json!("[B]Важно![/B] Просил не звонить в выходные.\r\nВторой номер — у жены."),
        801..=850 => json!("Файл КП: C:\\Users\\Менеджер\\Documents\\КП \"Окна\".docx"),
        851..=900 => json!("Оставил заявку 😊👍 ждёт звонка"),
        _ => json!(""),
    };
    let opportunity = if rng.gen_bool(0.5) {
        "0.00".to_string()
    } else {
        format!(
            "{}.{:02}",
            rng.gen_range(1..500) * 500,
            if rng.gen_bool(0.9) {
                0
            } else {
                rng.gen_range(1..100)
            }
        )
    };
    let utm = rng.gen_bool(0.3);

    // Multi-fields. Each value has its own ID: lead_id * 8 + k keeps them unique.
    let mut k = 0i64;
    let mut next_fm = || {
        k += 1;
        id * 8 + k - 1
    };
    let mut phones = Vec::new();
    let mut emails = Vec::new();
    let mut webs = Vec::new();
    let mut ims = Vec::new();
    if !rng.gen_bool(0.1) {
        let n_phones = *[0, 1, 1, 1, 2, 2, 3, 4].choose(&mut rng).unwrap_or(&1);
        for _ in 0..n_phones {
            let vt = *pick(&mut rng, &["WORK", "MOBILE", "MOBILE", "HOME", "OTHER"]);
            phones.push(multi(next_fm(), "PHONE", vt, phone(&mut rng)));
        }
        let n_emails = *[0, 0, 1, 1, 2].choose(&mut rng).unwrap_or(&0);
        for _ in 0..n_emails {
            let mut e = format!(
                "{}@{}",
                pick(&mut rng, EMAIL_USERS),
                pick(&mut rng, EMAIL_DOMAINS)
            );
            if rng.gen_ratio(1, 30) {
                e = format!(" {} ", e.to_uppercase());
            }
            emails.push(multi(
                next_fm(),
                "EMAIL",
                if rng.gen_bool(0.5) { "WORK" } else { "HOME" },
                e,
            ));
        }
        if rng.gen_bool(0.1) {
            let w = *pick(
                &mut rng,
                &[
                    "https://romashka.ru",
                    "vk.com/id123456",
                    "www.okna-mir.ru/?utm=1&x=\"2\"",
                ],
            );
            webs.push(multi(next_fm(), "WEB", "WORK", w.to_string()));
        }
        if rng.gen_bool(0.15) {
            let (vt, v) = if rng.gen_bool(0.6) {
                (
                    "IMOL",
                    format!(
                        "imol|livechat|1|{}|{}",
                        rng.gen_range(10..999),
                        rng.gen_range(1..99)
                    ),
                )
            } else {
                (
                    "TELEGRAM",
                    format!("@{}", pick(&mut rng, EMAIL_USERS).replace('.', "_")),
                )
            };
            ims.push(multi(next_fm(), "IM", vt, v));
        }
        if phones.is_empty() && emails.is_empty() && webs.is_empty() && ims.is_empty() {
            phones.push(multi(next_fm(), "PHONE", "MOBILE", phone(&mut rng)));
        }
    }
    let has_imol = ims.iter().any(|v| v["VALUE_TYPE"] == "IMOL");

    let solution: Value = match rng.gen_range(0..10) {
        0..=2 => json!([]),
        3 => json!(false),
        _ => {
            let n = rng.gen_range(1..=3);
            let mut ids: Vec<&str> = SOLUTION_ITEMS.iter().map(|(i, _)| *i).collect();
            ids.shuffle(&mut rng);
            json!(ids[..n].to_vec())
        }
    };

    let yn = |b: bool| if b { "Y" } else { "N" };
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("ID", json!(id.to_string()));
    put("TITLE", json!(title));
    put(
        "HONORIFIC",
        if rng.gen_bool(0.1) {
            json!(if female { "HNR_RU_2" } else { "HNR_RU_1" })
        } else {
            Value::Null
        },
    );
    put("NAME", if has_name { json!(first) } else { Value::Null });
    put(
        "SECOND_NAME",
        if has_second {
            json!(patronymic)
        } else {
            Value::Null
        },
    );
    put(
        "LAST_NAME",
        if has_name && rng.gen_bool(0.8) {
            json!(last)
        } else {
            Value::Null
        },
    );
    put(
        "COMPANY_TITLE",
        company.map(Value::String).unwrap_or(Value::Null),
    );
    put("COMPANY_ID", json!("0"));
    put("CONTACT_ID", Value::Null);
    put("IS_RETURN_CUSTOMER", json!(yn(rng.gen_bool(0.05))));
    put("BIRTHDATE", json!(birthdate));
    put("SOURCE_ID", json!(pick(&mut rng, SOURCES)));
    put(
        "SOURCE_DESCRIPTION",
        if rng.gen_bool(0.2) {
            json!("Яндекс.Директ, кампания \"Осень-2026\"")
        } else {
            Value::Null
        },
    );
    put("STATUS_ID", json!(status));
    put("STATUS_DESCRIPTION", Value::Null);
    put(
        "POST",
        if rng.gen_bool(0.15) {
            json!(pick(
                &mut rng,
                &["Директор", "Менеджер по закупкам", "Гл. бухгалтер"]
            ))
        } else {
            Value::Null
        },
    );
    put("COMMENTS", comments);
    put("CURRENCY_ID", json!("RUB"));
    put("OPPORTUNITY", json!(opportunity));
    put("IS_MANUAL_OPPORTUNITY", json!("N"));
    put("HAS_PHONE", json!(yn(!phones.is_empty())));
    put("HAS_EMAIL", json!(yn(!emails.is_empty())));
    put("HAS_IMOL", json!(yn(has_imol)));
    put("ASSIGNED_BY_ID", json!(assigned));
    put("CREATED_BY_ID", json!(created_by));
    put("MODIFY_BY_ID", json!(modify_by));
    put("MOVED_BY_ID", json!(created_by));
    put("DATE_CREATE", json!(fmt_dt(create, offset)));
    put("DATE_MODIFY", json!(fmt_dt(modify, offset)));
    put("MOVED_TIME", json!(fmt_dt(create, offset)));
    put("OPENED", json!(yn(rng.gen_bool(0.8))));
    put("DATE_CLOSED", json!(closed));
    put("STATUS_SEMANTIC_ID", json!(semantic));
    put("ORIGINATOR_ID", Value::Null);
    put("ORIGIN_ID", Value::Null);
    let has_addr = rng.gen_bool(0.4);
    let addr = |v: Value| if has_addr { v } else { Value::Null };
    put(
        "ADDRESS",
        addr(json!(format!(
            "{}, д. {}, кв. {}",
            pick(&mut rng, STREETS),
            rng.gen_range(1..120),
            rng.gen_range(1..300)
        ))),
    );
    put("ADDRESS_2", Value::Null);
    put("ADDRESS_CITY", addr(json!(place.0)));
    put(
        "ADDRESS_POSTAL_CODE",
        addr(json!(format!("{}{}", place.4, digits(&mut rng, 3)))),
    );
    put("ADDRESS_REGION", Value::Null);
    put("ADDRESS_PROVINCE", addr(json!(place.1)));
    put("ADDRESS_COUNTRY", addr(json!(place.2)));
    put("ADDRESS_COUNTRY_CODE", addr(json!(place.3)));
    put(
        "ADDRESS_LOC_ADDR_ID",
        if has_addr {
            json!(rng.gen_range(1..90_000).to_string())
        } else {
            Value::Null
        },
    );
    put(
        "UTM_SOURCE",
        if utm { json!("yandex") } else { Value::Null },
    );
    put("UTM_MEDIUM", if utm { json!("cpc") } else { Value::Null });
    put(
        "UTM_CAMPAIGN",
        if utm {
            json!("okna_osen_2026")
        } else {
            Value::Null
        },
    );
    put(
        "UTM_CONTENT",
        if utm {
            json!("banner_240x400")
        } else {
            Value::Null
        },
    );
    put(
        "UTM_TERM",
        if utm {
            json!("окна пвх недорого")
        } else {
            Value::Null
        },
    );
    put("LAST_ACTIVITY_BY", json!(modify_by));
    put("LAST_ACTIVITY_TIME", json!(fmt_dt(modify, offset)));
    put(solution_field, solution);
    put(
        UF_PROMO,
        if rng.gen_bool(0.2) {
            json!(pick(&mut rng, &["ОСЕНЬ-2026", "SALE10", "ДРУГ"]))
        } else {
            Value::Null
        },
    );
    put(
        UF_BUDGET,
        if rng.gen_bool(0.3) {
            json!(format!("{}|RUB", rng.gen_range(1..400) * 500))
        } else {
            Value::Null
        },
    );
    for (key, vals) in [
        ("PHONE", phones),
        ("EMAIL", emails),
        ("WEB", webs),
        ("IM", ims),
    ] {
        if !vals.is_empty() {
            put(key, Value::Array(vals));
        }
    }
    m
}
