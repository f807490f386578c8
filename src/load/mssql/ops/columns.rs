//! Doctor's columns check: the contract tables' columns as the server describes them
//! (`contract_columns.sql`), compared with the schema description.

use std::collections::BTreeMap;

use tiberius::Row;

use super::doctor::{failed, passed};
use crate::schema;
use crate::store::Diagnosis;

/// (column, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, nullable) per lower-cased table name.
pub(super) type Found = BTreeMap<String, Vec<(String, String, Option<i32>, bool)>>;

pub(super) fn found_columns(rows: &[Row]) -> Found {
    let mut found: Found = BTreeMap::new();
    for r in rows {
        let text = |n: &str| r.get::<&str, _>(n).unwrap_or_default().to_string();
        found
            .entry(text("table_name").to_lowercase())
            .or_default()
            .push((
                text("column_name"),
                text("data_type"),
                r.get::<i32, _>("max_length"),
                text("is_nullable").eq_ignore_ascii_case("YES"),
            ));
    }
    found
}

pub(super) fn check_columns(found: &Found) -> Diagnosis {
    let mut problems = Vec::new();
    let mut checked = 0;
    for t in schema::contract_tables() {
        let (table, expected) = (t.name, &t.columns);
        // A missing table is the tables check's finding.
        let Some(present) = found.get(table) else {
            continue;
        };
        checked += 1;
        let before = problems.len();
        for e in expected {
            let should = e.mssql_describe();
            // ntext's length is not compared (the catalog reports a fixed 2^30 - 1).
            let (data_type, max_length) = e.kind.mssql_catalog();
            match present.iter().find(|p| p.0.eq_ignore_ascii_case(&e.name)) {
                None => problems.push(format!(
                    "dbo.{table}.{} is missing (should be {should})",
                    e.name
                )),
                Some((_, ty, len, nullable)) => {
                    let same = ty.eq_ignore_ascii_case(data_type)
                        && (max_length.is_none() || *len == max_length)
                        && *nullable == e.nullable;
                    if !same {
                        problems.push(format!(
                            "dbo.{table}.{} is {} (should be {should})",
                            e.name,
                            type_text(ty, *len, *nullable)
                        ));
                    }
                }
            }
        }
        // A renamed column shows up as one missing and one unknown: name the unknown ones.
        let unknown: Vec<&str> = present
            .iter()
            .map(|p| p.0.as_str())
            .filter(|p| !expected.iter().any(|e| e.name.eq_ignore_ascii_case(p)))
            .collect();
        if problems.len() > before && !unknown.is_empty() {
            problems.push(format!(
                "dbo.{table} also has columns the contract does not list: {}",
                unknown.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        passed(
            "columns",
            format!("every contract column is present with its type in the {checked} table(s)"),
        )
    } else {
        failed(
            "columns",
            problems.join("; "),
            "restore the columns as docs/oktell-schema.md lists them (Oktell's scenarios query \
             them by these names and types); b24sync never alters an existing table"
                .into(),
        )
    }
}

/// What the server has, as a DBA writes it: `nvarchar(3000) NULL`.
fn type_text(data_type: &str, max_length: Option<i32>, nullable: bool) -> String {
    let null = if nullable { "NULL" } else { "NOT NULL" };
    let ty = data_type.to_lowercase();
    match max_length {
        _ if matches!(ty.as_str(), "ntext" | "text" | "image" | "xml") => format!("{ty} {null}"),
        Some(-1) => format!("{ty}(max) {null}"),
        Some(n) => format!("{ty}({n}) {null}"),
        None => format!("{ty} {null}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract as the server would describe it after `oktell_tables.sql`.
    fn intact() -> Found {
        schema::contract_tables()
            .map(|t| {
                let rows = t
                    .columns
                    .iter()
                    .map(|c| {
                        let (data_type, len) = c.kind.mssql_catalog();
                        let len = match data_type {
                            "ntext" => Some(1_073_741_823),
                            _ => len,
                        };
                        (c.name.to_string(), data_type.to_string(), len, c.nullable)
                    })
                    .collect();
                (t.name.to_string(), rows)
            })
            .collect()
    }

    #[test]
    fn intact_contract_passes_the_columns_check() {
        let d = check_columns(&intact());
        assert!(d.ok, "{d:?}");
        assert!(d.detail.contains("6 table(s)"), "{d:?}");
    }

    #[test]
    fn renamed_and_retyped_columns_are_named_with_what_they_should_be() {
        let mut found = intact();
        let leads = found.get_mut("bitrix_leads").expect("leads");
        let title = leads
            .iter_mut()
            .find(|c| c.0 == "sql_TITLE")
            .expect("sql_TITLE");
        title.0 = "sql_TITLE_old".into();
        let name = leads
            .iter_mut()
            .find(|c| c.0 == "sql_NAME")
            .expect("sql_NAME");
        name.2 = Some(100);
        let sql_id = leads.iter_mut().find(|c| c.0 == "sql_ID").expect("sql_ID");
        sql_id.3 = true;
        found.remove("bitrix_lead_solution"); // the tables check's business
        let d = check_columns(&found);
        assert!(!d.ok);
        for part in [
            "dbo.bitrix_leads.sql_TITLE is missing (should be nvarchar(4000) NULL)",
            "dbo.bitrix_leads.sql_NAME is nvarchar(100) NULL (should be nvarchar(3000) NULL)",
            "dbo.bitrix_leads.sql_ID is int NULL (should be int NOT NULL)",
            "dbo.bitrix_leads also has columns the contract does not list: sql_TITLE_old",
        ] {
            assert!(d.detail.contains(part), "{part}\n{}", d.detail);
        }
        assert!(!d.detail.contains("bitrix_lead_solution"), "{}", d.detail);
        assert!(d.fix.contains("oktell-schema.md"));
    }

    #[test]
    fn column_case_does_not_matter_but_ntext_length_is_not_compared() {
        let mut found = intact();
        for cols in found.values_mut() {
            for c in cols.iter_mut() {
                c.0 = c.0.to_lowercase();
                c.1 = c.1.to_uppercase();
            }
        }
        assert!(check_columns(&found).ok);
    }

    #[test]
    fn type_text_reads_like_ddl() {
        assert_eq!(type_text("nvarchar", Some(-1), true), "nvarchar(max) NULL");
        assert_eq!(type_text("NTEXT", Some(1_073_741_823), true), "ntext NULL");
        assert_eq!(type_text("int", None, false), "int NOT NULL");
    }
}
