//! The lead's field catalogue: standard fields, multi-fields and the
//! portal's user fields. One table drives `crm.lead.fields`, `select` and the order
//! in which a lead's keys are written.

use std::sync::LazyLock;

use serde_json::{json, Map, Value};

/// How a standard field is typed in `crm.lead.fields`.
#[derive(Clone, Copy)]
pub struct StdField {
    pub name: &'static str,
    pub ty: &'static str,
    pub read_only: bool,
    pub title: &'static str,
    /// Dictionary of `crm_status` fields.
    pub status_type: Option<&'static str>,
}

pub(crate) const fn f(
    name: &'static str,
    ty: &'static str,
    read_only: bool,
    title: &'static str,
) -> StdField {
    StdField {
        name,
        ty,
        read_only,
        title,
        status_type: None,
    }
}
pub(crate) const fn st(name: &'static str, status: &'static str, title: &'static str) -> StdField {
    StdField {
        name,
        ty: "crm_status",
        read_only: false,
        title,
        status_type: Some(status),
    }
}

/// Standard fields in the order the real `crm.lead.get` writes them.
pub static STANDARD_FIELDS: LazyLock<Vec<StdField>> =
    LazyLock::new(|| [LEAD_HEAD, ADDRESS_FIELDS, UTM_FIELDS, LEAD_TAIL].concat());

const LEAD_HEAD: &[StdField] = &[
    f("ID", "integer", true, "ID"),
    f("TITLE", "string", false, "Название лида"),
    st("HONORIFIC", "HONORIFIC", "Обращение"),
    f("NAME", "string", false, "Имя"),
    f("SECOND_NAME", "string", false, "Отчество"),
    f("LAST_NAME", "string", false, "Фамилия"),
    f("COMPANY_TITLE", "string", false, "Название компании"),
    f("COMPANY_ID", "crm_company", false, "Компания"),
    f("CONTACT_ID", "crm_contact", false, "Контакт"),
    f("IS_RETURN_CUSTOMER", "char", true, "Повторный лид"),
    f("BIRTHDATE", "date", false, "Дата рождения"),
    st("SOURCE_ID", "SOURCE", "Источник"),
    f(
        "SOURCE_DESCRIPTION",
        "string",
        false,
        "Дополнительно об источнике",
    ),
    st("STATUS_ID", "STATUS", "Стадия"),
    f(
        "STATUS_DESCRIPTION",
        "string",
        false,
        "Дополнительно о стадии",
    ),
    f("POST", "string", false, "Должность"),
    f("COMMENTS", "string", false, "Комментарий"),
    f("CURRENCY_ID", "crm_currency", false, "Валюта"),
    f("OPPORTUNITY", "double", false, "Сумма"),
    f(
        "IS_MANUAL_OPPORTUNITY",
        "char",
        false,
        "Сумма заполнена вручную",
    ),
    f("HAS_PHONE", "char", true, "Есть телефон"),
    f("HAS_EMAIL", "char", true, "Есть e-mail"),
    f("HAS_IMOL", "char", true, "Есть открытая линия"),
    f("ASSIGNED_BY_ID", "user", false, "Ответственный"),
    f("CREATED_BY_ID", "user", true, "Кем создан"),
    f("MODIFY_BY_ID", "user", true, "Кем изменён"),
    f("MOVED_BY_ID", "user", true, "Кем перемещён"),
    f("DATE_CREATE", "datetime", true, "Дата создания"),
    f("DATE_MODIFY", "datetime", true, "Дата изменения"),
    f("MOVED_TIME", "datetime", true, "Дата перемещения"),
    f("OPENED", "char", false, "Доступен для всех"),
    f("DATE_CLOSED", "datetime", true, "Дата закрытия"),
    f("STATUS_SEMANTIC_ID", "string", true, "Состояние статуса"),
    f("ORIGINATOR_ID", "string", false, "Внешний источник"),
    f(
        "ORIGIN_ID",
        "string",
        false,
        "Идентификатор элемента во внешнем источнике",
    ),
];

/// The legacy address block, as leads, contacts and companies write it.
pub const ADDRESS_FIELDS: &[StdField] = &[
    f("ADDRESS", "string", false, "Адрес"),
    f("ADDRESS_2", "string", false, "Адрес (стр. 2)"),
    f("ADDRESS_CITY", "string", false, "Город"),
    f("ADDRESS_POSTAL_CODE", "string", false, "Почтовый индекс"),
    f("ADDRESS_REGION", "string", false, "Район"),
    f("ADDRESS_PROVINCE", "string", false, "Область"),
    f("ADDRESS_COUNTRY", "string", false, "Страна"),
    f("ADDRESS_COUNTRY_CODE", "string", false, "Код страны"),
    f(
        "ADDRESS_LOC_ADDR_ID",
        "integer",
        false,
        "ID адреса местоположения",
    ),
];

/// The UTM block, the same on leads, contacts and companies.
pub const UTM_FIELDS: &[StdField] = &[
    f("UTM_SOURCE", "string", false, "Рекламная система"),
    f("UTM_MEDIUM", "string", false, "Тип трафика"),
    f(
        "UTM_CAMPAIGN",
        "string",
        false,
        "Обозначение рекламной кампании",
    ),
    f("UTM_CONTENT", "string", false, "Содержание кампании"),
    f("UTM_TERM", "string", false, "Условие поиска кампании"),
];

const LEAD_TAIL: &[StdField] = &[
    f(
        "LAST_ACTIVITY_BY",
        "user",
        true,
        "Последняя активность (кто)",
    ),
    f(
        "LAST_ACTIVITY_TIME",
        "datetime",
        true,
        "Последняя активность",
    ),
];

/// Multi-field types in output order. `LINK` exists but the generator never fills it.
pub const MULTI_FIELDS: &[(&str, &str)] = &[
    ("PHONE", "Телефон"),
    ("EMAIL", "E-mail"),
    ("WEB", "Сайт"),
    ("IM", "Мессенджер"),
    ("LINK", "Ссылка"),
];

pub fn is_multi(name: &str) -> bool {
    MULTI_FIELDS.iter().any(|(n, _)| *n == name)
}

/// Date-typed standard fields: filters compare them as instants.
pub fn is_datetime(name: &str) -> bool {
    matches!(
        name,
        "DATE_CREATE"
            | "DATE_MODIFY"
            | "MOVED_TIME"
            | "DATE_CLOSED"
            | "LAST_ACTIVITY_TIME"
            | "BIRTHDATE"
            | "LAST_COMMUNICATION_TIME"
    )
}

/// One user field of the portal.
pub struct UserField {
    pub id: u32,
    pub name: String,
    pub user_type: &'static str,
    pub multiple: bool,
    pub label_ru: &'static str,
    pub label_en: &'static str,
    /// Enumeration items (ID, VALUE), empty for other types.
    pub items: Vec<(String, String)>,
}

/// The "solution" list items: numeric IDs as a real portal assigns them.
pub const SOLUTION_ITEMS: &[(&str, &str)] = &[
    ("101", "Перезвонить"),
    ("102", "Отказ"),
    ("103", "Купил"),
    ("104", "Думает"),
    ("105", "Не дозвонились"),
    ("106", "Дорого"),
    ("107", "Назначена встреча"),
    ("108", "Спам / ошибка"),
];

pub const UF_PROMO: &str = "UF_CRM_1712345678";
pub const UF_BUDGET: &str = "UF_CRM_BUDGET";

pub fn user_fields(solution_field: &str) -> Vec<UserField> {
    vec![
        UserField {
            id: 201,
            name: solution_field.to_string(),
            user_type: "enumeration",
            multiple: true,
            label_ru: "Решение клиента",
            label_en: "Client's decision",
            items: SOLUTION_ITEMS
                .iter()
                .map(|(i, v)| (i.to_string(), v.to_string()))
                .collect(),
        },
        UserField {
            id: 202,
            name: UF_PROMO.to_string(),
            user_type: "string",
            multiple: false,
            label_ru: "Промокод",
            label_en: "Promo code",
            items: vec![],
        },
        UserField {
            id: 203,
            name: UF_BUDGET.to_string(),
            user_type: "money",
            multiple: false,
            label_ru: "Бюджет клиента",
            label_en: "Client budget",
            items: vec![],
        },
    ]
}

/// `crm.lead.fields` (and, with their tables, `crm.contact.fields` / `crm.company.fields`).
pub fn fields_description(std: &[StdField], required: &[&str], ufs: &[UserField]) -> Value {
    let mut m = Map::new();
    for sf in std {
        let mut d = json!({
            "type": sf.ty,
            "isRequired": required.contains(&sf.name),
            "isReadOnly": sf.read_only,
            "isImmutable": false,
            "isMultiple": false,
            "isDynamic": false,
            "title": sf.title,
        });
        if let (Some(s), Some(obj)) = (sf.status_type, d.as_object_mut()) {
            obj.insert("statusType".into(), json!(s));
        }
        m.insert(sf.name.to_string(), d);
    }
    for (name, title) in MULTI_FIELDS {
        m.insert(
            name.to_string(),
            json!({"type": "crm_multifield", "isRequired": false, "isReadOnly": false,
                   "isImmutable": false, "isMultiple": true, "isDynamic": false, "title": title}),
        );
    }
    for uf in ufs {
        let mut d = json!({
            "type": uf.user_type,
            "isRequired": false,
            "isReadOnly": false,
            "isImmutable": false,
            "isMultiple": uf.multiple,
            "isDynamic": true,
            "title": uf.name,
            "listLabel": uf.label_ru,
            "formLabel": uf.label_ru,
            "filterLabel": uf.label_ru,
        });
        if uf.user_type == "enumeration" {
            if let Some(obj) = d.as_object_mut() {
                obj.insert(
                    "items".into(),
                    Value::Array(
                        uf.items
                            .iter()
                            .map(|(i, v)| json!({"ID": i, "VALUE": v}))
                            .collect(),
                    ),
                );
                obj.insert(
                    "settings".into(),
                    json!({"DISPLAY": "LIST", "LIST_HEIGHT": 1}),
                );
            }
        }
        m.insert(uf.name.clone(), d);
    }
    Value::Object(m)
}

/// `crm.lead.userfield.list` rows. With `lang` the labels are plain strings, otherwise
/// objects keyed by language, as the docs describe.
pub fn userfield_rows(entity_id: &str, ufs: &[UserField], lang: Option<&str>) -> Vec<Value> {
    ufs.iter()
        .map(|uf| {
            let label = match lang {
                Some("en") => json!(uf.label_en),
                Some(_) => json!(uf.label_ru),
                None => json!({"ru": uf.label_ru, "en": uf.label_en}),
            };
            let mut row = json!({
                "ID": uf.id.to_string(),
                "ENTITY_ID": entity_id,
                "FIELD_NAME": uf.name,
                "USER_TYPE_ID": uf.user_type,
                "XML_ID": null,
                "SORT": "100",
                "MULTIPLE": if uf.multiple { "Y" } else { "N" },
                "MANDATORY": "N",
                "SHOW_FILTER": "E",
                "SHOW_IN_LIST": "Y",
                "EDIT_IN_LIST": "Y",
                "IS_SEARCHABLE": "N",
                "SETTINGS": if uf.user_type == "enumeration" {
                    json!({"DISPLAY": "LIST", "LIST_HEIGHT": 1, "CAPTION_NO_VALUE": "", "SHOW_NO_VALUE": "Y"})
                } else {
                    json!({"SIZE": 20, "ROWS": 1, "DEFAULT_VALUE": ""})
                },
                "EDIT_FORM_LABEL": label.clone(),
                "LIST_COLUMN_LABEL": label.clone(),
                "LIST_FILTER_LABEL": label,
                "ERROR_MESSAGE": null,
                "HELP_MESSAGE": null,
            });
            if uf.user_type == "enumeration" {
                if let Some(obj) = row.as_object_mut() {
                    obj.insert(
                        "LIST".into(),
                        Value::Array(
                            uf.items
                                .iter()
                                .enumerate()
                                .map(|(n, (i, v))| {
                                    json!({"ID": i, "SORT": ((n + 1) * 10).to_string(), "VALUE": v,
                                           "DEF": "N", "XML_ID": format!("SOL_{i}")})
                                })
                                .collect(),
                        ),
                    );
                }
            }
            row
        })
        .collect()
}
