//! The CRM entities the simulator serves — leads, contacts, companies — and the standard
//! fields of contacts and companies (the lead's are in `fields.rs`). One `Entity` value
//! picks the store, the field table and the user fields; the list/get/fields machinery in
//! `methods/leads.rs` is the same for all three.
//!
//! Contact and company fields follow the official REST docs (`crm.contact.get`,
//! `crm.contact.fields`, `crm.company.get` in bitrix24/b24restdocs), in their order.
//! `COMPANY_IDS` is described by `crm.contact.fields` (multiple) but neither `get` nor
//! `list` returns it (the docs send callers to `crm.contact.company.items.get`), so it is
//! not a stored field here: strict side.

use std::sync::LazyLock;

use serde_json::{json, Value};

use crate::fields::{
    self, f, st, StdField, UserField, ADDRESS_FIELDS, STANDARD_FIELDS, UTM_FIELDS,
};

/// The contact's user field (a string, so `UF_*` returns it).
pub const UF_CONTACT_CARD: &str = "UF_CRM_CLIENT_CARD";
/// The company's user field: its tax number (ИНН), a string.
pub const UF_COMPANY_INN: &str = "UF_CRM_INN";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Entity {
    Lead,
    Contact,
    Company,
}

impl Entity {
    /// `crm.contact.list` → (Contact, "list"); None for other methods.
    pub fn from_method(method: &str) -> Option<(Entity, &str)> {
        let rest = method.strip_prefix("crm.")?;
        let (name, op) = rest.split_once('.')?;
        let entity = match name {
            "lead" => Entity::Lead,
            "contact" => Entity::Contact,
            "company" => Entity::Company,
            _ => return None,
        };
        Some((entity, op))
    }

    pub fn standard_fields(self) -> &'static [StdField] {
        match self {
            Entity::Lead => &STANDARD_FIELDS,
            Entity::Contact => &CONTACT_FIELDS,
            Entity::Company => &COMPANY_FIELDS,
        }
    }

    pub fn is_standard(self, name: &str) -> bool {
        self.standard_fields().iter().any(|f| f.name == name)
    }

    /// The entity as event names spell it (`ONCRM` + this + `ADD`); see changes.rs.
    pub fn event_entity(self) -> &'static str {
        match self {
            Entity::Lead => "LEAD",
            Entity::Contact => "CONTACT",
            Entity::Company => "COMPANY",
        }
    }

    /// `ENTITY_ID` of the entity's user fields (`crm.*.userfield.list`).
    pub fn uf_entity_id(self) -> &'static str {
        match self {
            Entity::Lead => "CRM_LEAD",
            Entity::Contact => "CRM_CONTACT",
            Entity::Company => "CRM_COMPANY",
        }
    }

    /// The user fields of contacts and companies (the lead's depend on the config).
    pub fn own_user_fields(self) -> Vec<UserField> {
        let one = |id, name: &str, ru, en| UserField {
            id,
            name: name.to_string(),
            user_type: "string",
            multiple: false,
            label_ru: ru,
            label_en: en,
            items: vec![],
        };
        match self {
            Entity::Lead => vec![],
            Entity::Contact => vec![one(301, UF_CONTACT_CARD, "Карта клиента", "Client card")],
            Entity::Company => vec![one(401, UF_COMPANY_INN, "ИНН", "Tax number")],
        }
    }

    /// `crm.{entity}.fields`.
    pub fn fields_description(self, ufs: &[UserField]) -> Value {
        let mut d = fields::fields_description(self.standard_fields(), self.required(), ufs);
        if let (Entity::Contact, Some(m)) = (self, d.as_object_mut()) {
            if let Some(c) = m.get_mut("COMPANY_ID").and_then(Value::as_object_mut) {
                c.insert("isDeprecated".into(), json!(true));
            }
            m.insert(
                "COMPANY_IDS".into(),
                json!({"type": "crm_company", "isRequired": false, "isReadOnly": false,
                       "isImmutable": false, "isMultiple": true, "isDynamic": false,
                       "title": "COMPANY_IDS"}),
            );
        }
        d
    }

    /// Fields `crm.*.fields` marks `isRequired`.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Entity::Lead | Entity::Company => &["TITLE"],
            // As the docs' example answer shows.
            Entity::Contact => &["NAME", "SECOND_NAME", "LAST_NAME"],
        }
    }
}

/// Contact fields in the order `crm.contact.get` writes them.
pub static CONTACT_FIELDS: LazyLock<Vec<StdField>> =
    LazyLock::new(|| [CONTACT_HEAD, ADDRESS_FIELDS, UTM_FIELDS, CONTACT_TAIL].concat());

const CONTACT_HEAD: &[StdField] = &[
    f("ID", "integer", true, "ID"),
    f("POST", "string", false, "Должность"),
    f("COMMENTS", "string", false, "Комментарий"),
    st("HONORIFIC", "HONORIFIC", "Обращение"),
    f("NAME", "string", false, "Имя"),
    f("SECOND_NAME", "string", false, "Отчество"),
    f("LAST_NAME", "string", false, "Фамилия"),
    f("PHOTO", "file", false, "Фотография"),
    f("LEAD_ID", "crm_lead", true, "Лид"),
    st("TYPE_ID", "CONTACT_TYPE", "Тип контакта"),
    st("SOURCE_ID", "SOURCE", "Источник"),
    f(
        "SOURCE_DESCRIPTION",
        "string",
        false,
        "Дополнительно об источнике",
    ),
    f("COMPANY_ID", "crm_company", false, "Компания"),
    f("BIRTHDATE", "date", false, "Дата рождения"),
    f("EXPORT", "char", false, "Участвует в экспорте контактов"),
    f("HAS_PHONE", "char", true, "Есть телефон"),
    f("HAS_EMAIL", "char", true, "Есть e-mail"),
    f("HAS_IMOL", "char", true, "Есть открытая линия"),
    f("DATE_CREATE", "datetime", true, "Дата создания"),
    f("DATE_MODIFY", "datetime", true, "Дата изменения"),
    f("ASSIGNED_BY_ID", "user", false, "Ответственный"),
    f("CREATED_BY_ID", "user", true, "Кем создан"),
    f("MODIFY_BY_ID", "user", true, "Кем изменён"),
    f("OPENED", "char", false, "Доступен для всех"),
    f("ORIGINATOR_ID", "string", false, "Внешний источник"),
    f(
        "ORIGIN_ID",
        "string",
        false,
        "Идентификатор во внешнем источнике",
    ),
    f("ORIGIN_VERSION", "string", false, "Версия оригинала"),
    f("FACE_ID", "integer", false, "Привязка к лицам"),
    f(
        "LAST_ACTIVITY_TIME",
        "datetime",
        true,
        "Последняя активность",
    ),
];

const CONTACT_TAIL: &[StdField] = &[f(
    "LAST_ACTIVITY_BY",
    "user",
    true,
    "Последняя активность (кто)",
)];

/// Company fields in the order `crm.company.get` writes them.
pub static COMPANY_FIELDS: LazyLock<Vec<StdField>> = LazyLock::new(|| {
    [
        COMPANY_HEAD,
        ADDRESS_FIELDS,
        COMPANY_REG,
        UTM_FIELDS,
        COMPANY_TAIL,
    ]
    .concat()
});

const COMPANY_HEAD: &[StdField] = &[
    f("ID", "integer", true, "ID"),
    st("COMPANY_TYPE", "COMPANY_TYPE", "Тип компании"),
    f("TITLE", "string", false, "Название компании"),
    f("LOGO", "file", false, "Логотип"),
    f("LEAD_ID", "crm_lead", true, "Лид"),
    f("HAS_PHONE", "char", true, "Есть телефон"),
    f("HAS_EMAIL", "char", true, "Есть e-mail"),
    f("HAS_IMOL", "char", true, "Есть открытая линия"),
    f("ASSIGNED_BY_ID", "user", false, "Ответственный"),
    f("CREATED_BY_ID", "user", true, "Кем создана"),
    f("MODIFY_BY_ID", "user", true, "Кем изменена"),
    f("BANKING_DETAILS", "string", false, "Реквизиты банка"),
    st("INDUSTRY", "INDUSTRY", "Сфера деятельности"),
    f("REVENUE", "double", false, "Годовой оборот"),
    f("CURRENCY_ID", "crm_currency", false, "Валюта"),
    st("EMPLOYEES", "EMPLOYEES", "Кол-во сотрудников"),
    f("COMMENTS", "string", false, "Комментарий"),
    f("DATE_CREATE", "datetime", true, "Дата создания"),
    f("DATE_MODIFY", "datetime", true, "Дата изменения"),
    f("OPENED", "char", false, "Доступна для всех"),
    f("IS_MY_COMPANY", "char", false, "Моя компания"),
    f("ORIGINATOR_ID", "string", false, "Внешний источник"),
    f(
        "ORIGIN_ID",
        "string",
        false,
        "Идентификатор во внешнем источнике",
    ),
    f("ORIGIN_VERSION", "string", false, "Версия оригинала"),
];

const COMPANY_REG: &[StdField] = &[
    f("ADDRESS_LEGAL", "string", false, "Юридический адрес"),
    f("REG_ADDRESS", "string", false, "Юридический адрес"),
    f(
        "REG_ADDRESS_2",
        "string",
        false,
        "Юридический адрес (стр. 2)",
    ),
    f("REG_ADDRESS_CITY", "string", false, "Город (юр.)"),
    f(
        "REG_ADDRESS_POSTAL_CODE",
        "string",
        false,
        "Почтовый индекс (юр.)",
    ),
    f("REG_ADDRESS_REGION", "string", false, "Район (юр.)"),
    f("REG_ADDRESS_PROVINCE", "string", false, "Область (юр.)"),
    f("REG_ADDRESS_COUNTRY", "string", false, "Страна (юр.)"),
    f(
        "REG_ADDRESS_COUNTRY_CODE",
        "string",
        false,
        "Код страны (юр.)",
    ),
    f(
        "REG_ADDRESS_LOC_ADDR_ID",
        "integer",
        false,
        "ID юридического адреса",
    ),
];

const COMPANY_TAIL: &[StdField] = &[
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
    f(
        "LAST_COMMUNICATION_TIME",
        "datetime",
        true,
        "Последняя коммуникация",
    ),
];
