//! The T-SQL one entity's records are staged, written, listed, fingerprinted and deleted
//! with: the templates under `sql/mssql/` with the entity's table and column names filled
//! in from the schema description (`{{table}}`, `{{set_columns}}`, ...), as the embedded
//! database does it (`src/load/sqlite/entity_sql.rs`). Only names from [`crate::schema`] are
//! filled in, never a value: values are bulk-loaded or bound as parameters. A
//! `{{#solution}}...{{/solution}}` section is kept only for an entity with a solution table
//! (the lead). Expanded once per entity.
//!
//! The lead's expansion of every template is the text that ran on a real SQL Server
//! (`sql/mssql/shipped/`, compared in the tests below), so nothing changed for the lead.

use std::sync::LazyLock;

use super::sql;
use crate::schema::{ColumnKind, Entity, ENTITIES};

/// One entity's statements, and the staging tables they read.
#[derive(Debug)]
pub(super) struct EntitySql {
    /// The staging table of the records (`#stage_leads`).
    pub stage: String,
    /// The staging table of the multi-field values (`#stage_contacts` for the lead).
    pub stage_multi: String,
    pub stage_create: String,
    pub upsert_batch: String,
    pub phones_sync: String,
    pub fingerprints_sync: String,
    /// Per long-text field (its index in `Entity::fields`): the statement that sets staged
    /// values too long for the bulk path.
    pub stage_long_text: Vec<(usize, String)>,
    pub stage_long_error_json: String,
    pub record_ids: String,
    pub record_fingerprints: String,
    pub delete_records: String,
}

macro_rules! template {
    ($file:literal) => {
        include_str!(concat!("../../../sql/mssql/", $file))
    };
}

/// Every template, by file name (the SQL tests expand each one for every entity).
pub(super) const TEMPLATES: [(&str, &str); 10] = [
    ("stage_create.sql", template!("stage_create.sql")),
    ("upsert_batch.sql", template!("upsert_batch.sql")),
    ("lookup_phones_sync.sql", sql::LOOKUP_PHONES_SYNC),
    ("fingerprints_sync.sql", template!("fingerprints_sync.sql")),
    ("stage_long_text.sql", template!("stage_long_text.sql")),
    (
        "stage_long_error_json.sql",
        template!("stage_long_error_json.sql"),
    ),
    ("record_ids.sql", template!("record_ids.sql")),
    (
        "record_fingerprints.sql",
        template!("record_fingerprints.sql"),
    ),
    ("delete_records.sql", template!("delete_records.sql")),
    // Not a template (no entity names), but the one staging table every entity's phones go
    // through; listed so that the tests see every statement of a batch here.
    ("lookup_stage_create.sql", sql::LOOKUP_STAGE_CREATE),
];

static STATEMENTS: LazyLock<Vec<EntitySql>> =
    LazyLock::new(|| ENTITIES.iter().map(|e| expand_all(*e)).collect());

/// The statements of `entity`.
pub(super) fn statements(entity: Entity) -> &'static EntitySql {
    let at = ENTITIES.iter().position(|e| *e == entity).unwrap_or(0);
    &STATEMENTS[at]
}

fn template(name: &str) -> &'static str {
    TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or_default()
}

fn expand_all(e: Entity) -> EntitySql {
    let t = |name: &str| expand(template(name), e);
    EntitySql {
        stage: stage_of(e),
        stage_multi: stage_multi_of(e),
        stage_create: t("stage_create.sql"),
        upsert_batch: t("upsert_batch.sql"),
        phones_sync: t("lookup_phones_sync.sql"),
        fingerprints_sync: t("fingerprints_sync.sql"),
        stage_long_text: long_text_fields(e)
            .map(|(i, column)| {
                let text = template("stage_long_text.sql").replace("{{long_column}}", &column);
                (i, expand(&text, e))
            })
            .collect(),
        stage_long_error_json: t("stage_long_error_json.sql"),
        record_ids: t("record_ids.sql"),
        record_fingerprints: t("record_fingerprints.sql"),
        delete_records: t("delete_records.sql"),
    }
}

/// Every expansion of every template for every entity, named `file (entity)`, for the SQL
/// tests (`sql::all_included`).
#[cfg(test)]
pub(super) fn expansions() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for e in ENTITIES {
        let s = statements(*e);
        let name = |file: &str| -> &'static str {
            Box::leak(format!("{file} ({})", e.name).into_boxed_str())
        };
        out.extend([
            (name("stage_create.sql"), s.stage_create.as_str()),
            (name("upsert_batch.sql"), s.upsert_batch.as_str()),
            (name("lookup_phones_sync.sql"), s.phones_sync.as_str()),
            (name("fingerprints_sync.sql"), s.fingerprints_sync.as_str()),
            (
                name("stage_long_error_json.sql"),
                s.stage_long_error_json.as_str(),
            ),
            (name("record_ids.sql"), s.record_ids.as_str()),
            (
                name("record_fingerprints.sql"),
                s.record_fingerprints.as_str(),
            ),
            (name("delete_records.sql"), s.delete_records.as_str()),
            (name("lookup_stage_create.sql"), sql::LOOKUP_STAGE_CREATE),
        ]);
        out.extend(
            s.stage_long_text
                .iter()
                .map(|(_, text)| (name("stage_long_text.sql"), text.as_str())),
        );
    }
    out
}

/// The fields stored as `ntext`, by index, with their column names.
pub(super) fn long_text_fields(e: Entity) -> impl Iterator<Item = (usize, String)> {
    e.fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.kind == ColumnKind::LongText)
        .map(|(i, f)| (i, f.sql_name()))
}

/// The records' staging table: `#stage_leads` for `bitrix_leads`.
fn stage_of(e: Entity) -> String {
    format!(
        "#stage_{}",
        e.table.strip_prefix("bitrix_").unwrap_or(e.table)
    )
}

/// The multi-field values' staging table: `#stage_contacts` for `bitrix_lead_contacts` (the
/// name the lead's statements always had), `#stage_multifields` for the others.
fn stage_multi_of(e: Entity) -> String {
    let prefix = format!("bitrix_{}_", e.name);
    format!(
        "#stage_{}",
        e.multi_table.strip_prefix(&prefix).unwrap_or(e.multi_table)
    )
}

/// The comma-separated lines `f` makes of each field's column.
fn lines(e: Entity, f: impl Fn(&str, ColumnKind) -> String) -> String {
    e.fields
        .iter()
        .map(|c| f(&c.sql_name(), c.kind))
        .collect::<Vec<_>>()
        .join(",\n")
}

fn is_date(kind: ColumnKind) -> bool {
    matches!(kind, ColumnKind::DateTime | ColumnKind::Date)
}

/// `template` with `e`'s names in place of its `{{...}}` tokens.
pub(super) fn expand(template: &str, e: Entity) -> String {
    let stage_columns = lines(e, |c, k| {
        if is_date(k) {
            format!("        {c} datetime2(0) NULL")
        } else {
            format!("        {c} nvarchar(max) COLLATE DATABASE_DEFAULT NULL")
        }
    });
    let set_columns = lines(e, |c, k| {
        if is_date(k) {
            format!("        t.{c} = CAST(s.{c} AS datetime)")
        } else {
            format!("        t.{c} = s.{c}")
        }
    });
    // Compared NULL-safely with INTERSECT: text as bytes (ntext through nvarchar(max)),
    // dates as the tables' datetime.
    let target_compared = lines(e, |c, k| match k {
        ColumnKind::DateTime | ColumnKind::Date => format!("            t.{c}"),
        ColumnKind::LongText => {
            format!("            CAST(CAST(t.{c} AS nvarchar(max)) AS varbinary(max))")
        }
        ColumnKind::Text { .. } => format!("            CAST(t.{c} AS varbinary(max))"),
    });
    let staged_compared = lines(e, |c, k| {
        if is_date(k) {
            format!("            CAST(s.{c} AS datetime)")
        } else {
            format!("            CAST(s.{c} AS varbinary(max))")
        }
    });
    let columns = lines(e, |c, _| format!("        {c}"));
    let staged_values = lines(e, |c, k| {
        if is_date(k) {
            format!("        CAST(s.{c} AS datetime)")
        } else {
            format!("        s.{c}")
        }
    });
    let tokens: [(&str, String); 20] = [
        ("table", e.table.to_string()),
        ("stage", stage_of(e)),
        ("stage_multi", stage_multi_of(e)),
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
        (
            "solution_table",
            e.solution_table.unwrap_or_default().to_string(),
        ),
        ("stage_columns", stage_columns),
        ("set_columns", set_columns),
        ("target_compared", target_compared),
        ("staged_compared", staged_compared),
        ("columns", columns),
        ("staged_values", staged_values),
    ];
    let mut out = section(template, "solution", e.solution_table.is_some());
    for (name, value) in &tokens {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    out
}

/// `text` with its `{{#name}}...{{/name}}` sections kept (without the markers) or dropped.
/// A marker alone on its line takes its line break with it.
fn section(text: &str, name: &str, keep: bool) -> String {
    let (open, close) = (format!("{{{{#{name}}}}}"), format!("{{{{/{name}}}}}"));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&open) {
        out.push_str(&rest[..at]);
        let own_line = at == 0 || rest[..at].ends_with('\n');
        let mut inner = &rest[at + open.len()..];
        if own_line {
            inner = inner.strip_prefix('\n').unwrap_or(inner);
        }
        let end = inner.find(&close).unwrap_or(inner.len());
        if keep {
            out.push_str(&inner[..end]);
        }
        let close_own_line = end == 0 || inner[..end].ends_with('\n');
        rest = inner.get(end + close.len()..).unwrap_or("");
        if close_own_line {
            rest = rest.strip_prefix('\n').unwrap_or(rest);
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{COMPANY, CONTACT, LEAD};

    /// What ran on a real SQL Server for the lead before the templates (docs/sql-server.md,
    /// "Testing against a server"): (template, the lead's shipped file).
    const SHIPPED: [(&str, &str); 9] = [
        ("stage_create.sql", template!("shipped/stage_create.sql")),
        ("upsert_batch.sql", template!("shipped/upsert_batch.sql")),
        (
            "lookup_phones_sync.sql",
            template!("shipped/lookup_phones_sync.sql"),
        ),
        (
            "fingerprints_sync.sql",
            template!("shipped/fingerprints_sync.sql"),
        ),
        (
            "stage_long_text.sql",
            template!("shipped/stage_long_comments.sql"),
        ),
        (
            "stage_long_error_json.sql",
            template!("shipped/stage_long_error_json.sql"),
        ),
        ("record_ids.sql", template!("shipped/lead_ids.sql")),
        (
            "record_fingerprints.sql",
            template!("shipped/lead_fingerprints.sql"),
        ),
        ("delete_records.sql", template!("shipped/delete_leads.sql")),
    ];

    /// The code of a text (no comment lines), its whitespace collapsed.
    pub(in crate::load::mssql) fn code(text: &str) -> String {
        text.lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .flat_map(str::split_whitespace)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn lead_expansion(name: &str) -> String {
        let s = statements(LEAD);
        match name {
            "stage_create.sql" => s.stage_create.clone(),
            "upsert_batch.sql" => s.upsert_batch.clone(),
            "lookup_phones_sync.sql" => s.phones_sync.clone(),
            "fingerprints_sync.sql" => s.fingerprints_sync.clone(),
            "stage_long_text.sql" => {
                assert_eq!(s.stage_long_text.len(), 1, "the lead has one ntext field");
                s.stage_long_text[0].1.clone()
            }
            "stage_long_error_json.sql" => s.stage_long_error_json.clone(),
            "record_ids.sql" => s.record_ids.clone(),
            "record_fingerprints.sql" => s.record_fingerprints.clone(),
            "delete_records.sql" => s.delete_records.clone(),
            other => panic!("no expansion for {other}"),
        }
    }

    #[test]
    fn the_leads_statements_are_the_ones_that_ran_on_sql_server() {
        for (name, shipped) in SHIPPED {
            let expanded = lead_expansion(name);
            assert_eq!(
                code(&expanded),
                code(shipped),
                "{name}: the lead's expansion differs from what shipped"
            );
        }
        // Every template but the shared phone staging has its shipped text.
        for (name, _) in TEMPLATES {
            assert!(
                name == "lookup_stage_create.sql" || SHIPPED.iter().any(|(n, _)| *n == name),
                "{name} has no shipped text to compare the lead's expansion with"
            );
        }
        assert_eq!(statements(LEAD).stage, "#stage_leads");
        assert_eq!(statements(LEAD).stage_multi, "#stage_contacts");
    }

    #[test]
    fn every_expansion_names_only_described_identifiers() {
        for e in [LEAD, CONTACT, COMPANY] {
            let names = [
                e.table,
                e.multi_table,
                e.multi_owner,
                e.multi_value_id,
                e.phones_table,
                e.phones_owner,
                e.phones_value_id,
                e.error_table,
                e.error_json,
                e.fingerprints_table,
                e.solution_table.unwrap_or("x"),
            ];
            let plain =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            for n in names {
                assert!(plain(n), "{}: {n} is not a plain identifier", e.name);
            }
            for f in e.fields {
                assert!(plain(f.field), "{}: field {}", e.name, f.field);
            }
            let s = statements(e);
            for (name, text) in [
                ("stage_create", &s.stage_create),
                ("upsert_batch", &s.upsert_batch),
                ("phones_sync", &s.phones_sync),
                ("fingerprints_sync", &s.fingerprints_sync),
                ("stage_long_error_json", &s.stage_long_error_json),
                ("record_ids", &s.record_ids),
                ("record_fingerprints", &s.record_fingerprints),
                ("delete_records", &s.delete_records),
            ]
            .into_iter()
            .chain(
                s.stage_long_text
                    .iter()
                    .map(|(_, t)| ("stage_long_text", t)),
            ) {
                assert!(!text.contains("{{"), "{name} for {}: {text}", e.name);
                assert!(!text.contains("@P9"), "{name} for {}", e.name);
            }
        }
    }

    #[test]
    fn a_contact_is_written_to_its_own_tables_and_has_no_solution() {
        let s = statements(CONTACT);
        assert_eq!(
            (s.stage.as_str(), s.stage_multi.as_str()),
            ("#stage_contacts", "#stage_multifields")
        );
        assert!(s.upsert_batch.contains("INSERT INTO dbo.bitrix_contacts ("));
        assert!(s
            .upsert_batch
            .contains("FROM dbo.bitrix_contact_multifields AS c"));
        assert!(s
            .upsert_batch
            .contains("c.sql_CONTACT_ID = s.sql_CONTACT_ID"));
        assert!(s.upsert_batch.contains("dbo.bitrix_import_contact_error"));
        assert!(s
            .upsert_batch
            .contains("t.sql_LAST_ACTIVITY_TIME = CAST(s.sql_LAST_ACTIVITY_TIME AS datetime)"));
        for text in [&s.upsert_batch, &s.delete_records, &s.stage_create] {
            let code = code(text);
            assert!(!code.contains("solution"), "{code}");
            assert!(!code.contains("lead_"), "{code}");
        }
        assert!(s.phones_sync.contains("dbo.b24sync_contact_phones"));
        assert!(s.fingerprints_sync.contains("f.contact_id = s.contact_id"));
        assert!(s
            .stage_create
            .contains("        contact_id int NOT NULL PRIMARY KEY,"));
        let company = statements(COMPANY);
        assert!(company
            .delete_records
            .contains("DELETE FROM dbo.bitrix_companies\n"));
        assert!(company
            .stage_create
            .contains("        sql_COMPANY_ID int NOT NULL,"));
        assert_eq!(company.stage_long_text.len(), 1);
        assert!(company.stage_long_text[0]
            .1
            .contains("UPDATE s SET s.sql_COMMENTS = v.value\nFROM #stage_companies AS s"));
    }

    #[test]
    fn sections_keep_or_drop_their_text_and_markers() {
        let t = "a\n{{#solution}}\nb\n{{/solution}}\nc {{#solution}}, d{{/solution}}\n";
        assert_eq!(section(t, "solution", true), "a\nb\nc , d\n");
        assert_eq!(section(t, "solution", false), "a\nc \n");
        assert_eq!(section("x", "solution", false), "x");
    }
}
