//! The statements one entity's records are written and deleted with: the templates under
//! `sql/sqlite/` with the entity's table and column names filled in from the schema
//! description (`{{table}}`, `{{columns}}`, ...). Only names from [`crate::schema`] are
//! filled in; values are always bound as parameters. Expanded once per entity.

use std::sync::LazyLock;

use crate::schema::{Entity, Kind, ENTITIES};

/// One entity's statements.
#[derive(Debug)]
pub(super) struct EntitySql {
    pub stage_create: String,
    pub stage_clear: String,
    pub stage_record: String,
    pub stage_multi: String,
    pub records_update: String,
    pub records_insert: String,
    pub multi_delete: String,
    pub multi_update: String,
    pub multi_insert: String,
    pub phones_delete: String,
    pub phones_insert: String,
    pub errors_delete: String,
    pub errors_update: String,
    pub errors_insert: String,
    pub fingerprint_upsert: String,
    pub fingerprint_delete: String,
    pub fingerprints: String,
    pub record_ids: String,
    pub delete_dependents: String,
    pub delete_records: String,
}

macro_rules! template {
    ($file:literal) => {
        include_str!(concat!("../../../sql/sqlite/", $file))
    };
}

/// Every template, by the field of [`EntitySql`] it fills (the SQL tests expand each one for
/// every entity).
pub(super) const TEMPLATES: [(&str, &str); 20] = [
    ("stage_create", template!("stage_create.sql")),
    ("stage_clear", template!("stage_clear.sql")),
    ("stage_record", template!("stage_record.sql")),
    ("stage_multi", template!("stage_multi.sql")),
    ("records_update", template!("records_update.sql")),
    ("records_insert", template!("records_insert.sql")),
    ("multi_delete", template!("multi_delete.sql")),
    ("multi_update", template!("multi_update.sql")),
    ("multi_insert", template!("multi_insert.sql")),
    ("phones_delete", template!("lookup_phones_delete.sql")),
    ("phones_insert", template!("lookup_phones_insert.sql")),
    ("errors_delete", template!("errors_delete.sql")),
    ("errors_update", template!("errors_update.sql")),
    ("errors_insert", template!("errors_insert.sql")),
    ("fingerprint_upsert", template!("fingerprint_upsert.sql")),
    ("fingerprint_delete", template!("fingerprint_delete.sql")),
    ("fingerprints", template!("fingerprints.sql")),
    ("record_ids", template!("record_ids.sql")),
    ("delete_dependents", template!("delete_dependents.sql")),
    ("delete_records", template!("delete_records.sql")),
];

static STATEMENTS: LazyLock<Vec<EntitySql>> =
    LazyLock::new(|| ENTITIES.iter().map(|e| expand_all(*e)).collect());

/// The statements of `entity`.
pub(super) fn statements(entity: Entity) -> &'static EntitySql {
    let at = ENTITIES.iter().position(|e| *e == entity).unwrap_or(0);
    &STATEMENTS[at]
}

fn expand_all(e: Entity) -> EntitySql {
    let t = |name: &str| {
        let text = TEMPLATES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .unwrap_or_default();
        expand(text, e)
    };
    EntitySql {
        stage_create: t("stage_create"),
        stage_clear: t("stage_clear"),
        stage_record: t("stage_record"),
        stage_multi: t("stage_multi"),
        records_update: t("records_update"),
        records_insert: t("records_insert"),
        multi_delete: t("multi_delete"),
        multi_update: t("multi_update"),
        multi_insert: t("multi_insert"),
        phones_delete: t("phones_delete"),
        phones_insert: t("phones_insert"),
        errors_delete: t("errors_delete"),
        errors_update: t("errors_update"),
        errors_insert: t("errors_insert"),
        fingerprint_upsert: t("fingerprint_upsert"),
        fingerprint_delete: t("fingerprint_delete"),
        fingerprints: t("fingerprints"),
        record_ids: t("record_ids"),
        delete_dependents: t("delete_dependents"),
        delete_records: t("delete_records"),
    }
}

/// The staging table of a table: `stage_leads` for `bitrix_leads`.
fn stage_of(table: &str) -> String {
    format!("stage_{}", table.strip_prefix("bitrix_").unwrap_or(table))
}

/// `template` with `e`'s names in place of its `{{...}}` tokens.
pub(super) fn expand(template: &str, e: Entity) -> String {
    let columns: Vec<String> = e.fields.iter().map(|f| f.sql_name()).collect();
    let list = |f: &dyn Fn(&str) -> String, sep: &str| {
        columns.iter().map(|c| f(c)).collect::<Vec<_>>().join(sep)
    };
    let stage_columns = e
        .fields
        .iter()
        .map(|f| {
            format!(
                "    {} {} NULL",
                f.sql_name(),
                Kind::from(f.kind).sqlite_type()
            )
        })
        .collect::<Vec<_>>()
        .join(",\n");
    // sql_ID, the cells, sql_solution.
    let placeholders = (1..=columns.len() + 2)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let tokens: [(&str, String); 19] = [
        ("table", e.table.to_string()),
        ("stage", stage_of(e.table)),
        ("stage_multi", stage_of(e.multi_table)),
        ("multi_table", e.multi_table.to_string()),
        ("multi_owner", e.multi_owner.to_string()),
        ("multi_value_id", e.multi_value_id.to_string()),
        ("phones_table", e.phones_table.to_string()),
        ("phones_owner", e.phones_owner.to_string()),
        ("phones_value_id", e.phones_value_id.to_string()),
        ("error_table", e.error_table.to_string()),
        ("error_json", e.error_json.to_string()),
        ("fingerprints_table", e.fingerprints_table.to_string()),
        ("fingerprint_key", e.phones_owner.to_string()),
        ("columns", list(&|c| format!("    {c}"), ",\n")),
        ("s_columns", list(&|c| format!("    s.{c}"), ",\n")),
        ("set_columns", list(&|c| format!("    {c} = s.{c}"), ",\n")),
        (
            "differs",
            list(&|c| format!("       l.{c} IS NOT s.{c}"), "\n    OR "),
        ),
        ("stage_columns", stage_columns),
        ("placeholders", placeholders),
    ];
    let mut out = template.to_string();
    for (name, value) in &tokens {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{COMPANY, CONTACT, LEAD};

    #[test]
    fn every_template_expands_to_sql_sqlite_accepts_for_every_entity() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, "test").unwrap();
        conn.execute_batch(super::super::sql::LOOKUP_STAGE_CREATE)
            .unwrap();
        conn.execute_batch(super::super::sql::STAGE_DELETE_CREATE)
            .unwrap();
        for e in [LEAD, CONTACT, COMPANY] {
            conn.execute_batch(&statements(e).stage_create).unwrap();
            for (name, template) in TEMPLATES {
                let text = expand(template, e);
                assert!(!text.contains("{{"), "{name} for {}: {text}", e.name);
                // Each statement prepares against the migrated schema: every table and
                // column the expansion names exists.
                let code: String = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                for statement in code.split(';').filter(|s| !s.trim().is_empty()) {
                    if let Err(err) = conn.prepare(statement) {
                        panic!("{name} for {}: {err}\n{statement}", e.name);
                    }
                }
            }
        }
    }

    #[test]
    fn a_contact_is_staged_in_its_own_tables() {
        let s = statements(CONTACT);
        assert!(s.records_insert.contains("INSERT INTO bitrix_contacts ("));
        assert!(s.records_insert.contains("FROM temp.stage_contacts AS s"));
        assert!(s
            .multi_insert
            .contains("bitrix_contact_multifields (sql_CONTACT_ID, sql_VALUE_ID,"));
        assert!(s.stage_record.matches('?').count() == CONTACT.fields.len() + 2);
        assert!(statements(LEAD)
            .records_update
            .contains("sql_TITLE = s.sql_TITLE"));
        assert!(statements(COMPANY)
            .delete_records
            .contains("DELETE FROM bitrix_companies"));
    }
}
