//! Creating and checking the schema (`SchemaAdmin`): `sql/mssql/oktell_tables.sql`, the
//! numbered migrations, row Id = 1 of `bitrix_lead_runtime`, and `b24sync doctor`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::{conn, ops, run, sql, Client, MssqlSink};
use crate::store::{Diagnosis, SchemaAdmin, SchemaReport, StoreError};

impl MssqlSink {
    /// Make sure `bitrix_lead_runtime` has row Id = 1 (`runtime_row.sql`). Part of the schema
    /// check every sync starts with, so a login that may not create the row (ALTER, for
    /// IDENTITY_INSERT) is told what to do before the run writes anything, not after.
    async fn runtime_row(
        &self,
        c: &mut Client,
        report: &mut SchemaReport,
    ) -> Result<(), StoreError> {
        let context = "checking row Id = 1 of dbo.bitrix_lead_runtime";
        let state = match run(c, sql::RUNTIME_ROW).await {
            Ok(sets) => sets
                .iter()
                .rev()
                .find_map(|s| s.first())
                .and_then(|r| r.get::<&str, _>("runtime_row"))
                .map(str::to_string),
            Err(e) => {
                self.rollback(c, context).await;
                return Err(self.db_error(context, &e));
            }
        };
        match state.as_deref() {
            Some("present") => Ok(()),
            Some("created") => {
                let row = "row Id = 1 of dbo.bitrix_lead_runtime";
                tracing::debug!("created {row}");
                match report.created.last_mut() {
                    // Right after the tables: part of the same step.
                    Some(tables) if tables.contains(" table(s): ") => {
                        tables.push_str("; ");
                        tables.push_str(row);
                    }
                    _ => report.created.push(row.to_string()),
                }
                Ok(())
            }
            Some("no_permission") => Err(StoreError::Schema(runtime_row_refused(&self.target))),
            other => Err(StoreError::Database {
                context: context.to_string(),
                reason: format!("runtime_row.sql answered {other:?}"),
            }),
        }
    }

    /// The error `init-db` gives when duplicate `sql_ID` rows block the unique index.
    async fn duplicates_report(&self, c: &mut Client) -> Result<Option<String>, StoreError> {
        let Some((ids, surplus, examples)) = ops::duplicates(c)
            .await
            .map_err(|e| self.db_error("looking for duplicate sql_ID rows", &e))?
        else {
            return Ok(None);
        };
        Ok(Some(format!(
            "dbo.bitrix_leads on {} has {ids} sql_ID value(s) stored more than once ({surplus} surplus row(s)), e.g. sql_ID {}; \
             b24sync upserts by sql_ID and needs it unique. Remove the duplicates with sql/mssql/fix_duplicate_leads.sql \
             (keeps the row with the highest Id of each sql_ID, all in one transaction): \
             {} \
             -- then run `b24sync init-db` again",
            self.target.describe(),
            examples.join(", "),
            ops::fix_duplicates_command(&self.target),
        )))
    }
}

/// Why a sync (or init-db) stops when row Id = 1 is missing and this login may not create it.
fn runtime_row_refused(target: &conn::Target) -> String {
    format!(
        "dbo.bitrix_lead_runtime on {} has no row Id = 1 (the row each run stamps), and the login '{}' \
         may not create it (SET IDENTITY_INSERT needs ALTER on the table); nothing was written. \
         Run `b24sync init-db` once with a login that may (e.g. the database owner), then sync \
         with this one: a sync itself needs only SELECT, INSERT, UPDATE and DELETE",
        target.describe(),
        target.user.as_deref().unwrap_or("")
    )
}

#[async_trait]
impl SchemaAdmin for MssqlSink {
    async fn init_schema(&self) -> Result<SchemaReport, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        let mut report = SchemaReport::default();

        let before: HashSet<String> = run(c, sql::TABLES_PRESENT)
            .await
            .map_err(|e| self.db_error("looking for the Oktell tables", &e))?
            .iter()
            .flatten()
            .filter_map(|r| r.get::<&str, _>("name").map(str::to_string))
            .collect();
        run(c, sql::OKTELL_TABLES)
            .await
            .map_err(|e| self.db_error("creating the missing Oktell tables", &e))?;
        // One entry for the tables, one per migration: the log says what happened in a few
        // lines, the objects themselves are named at debug level (-v).
        let created: Vec<String> = sql::SCHEMA_TABLES
            .iter()
            .filter(|t| !before.contains(**t))
            .map(|t| format!("dbo.{t}"))
            .collect();
        for t in &created {
            tracing::debug!("created table {t}");
        }
        if !created.is_empty() {
            report.created.push(format!(
                "{} table(s): {}",
                created.len(),
                created.join(", ")
            ));
        }
        self.runtime_row(c, &mut report).await?;

        let applied = self.applied(c).await?;
        for m in sql::MIGRATIONS.iter() {
            let sum = sql::checksum(m.sql);
            if let Some(recorded) = applied.get(&m.version) {
                if recorded != "manual" && *recorded != sum {
                    report.warnings.push(format!(
                        "migration {:04} {} was applied from a different file (recorded checksum {recorded}, \
                         this build's {sum}); it is not applied again",
                        m.version, m.name
                    ));
                }
                continue;
            }
            if m.needs_unique_leads {
                if let Some(message) = self.duplicates_report(c).await? {
                    return Err(StoreError::Schema(message));
                }
            }
            let context = format!("applying migration {:04} {}", m.version, m.name);
            let applied_ok = async {
                run(c, sql::TX_BEGIN).await?;
                for batch in sql::batches(m.sql) {
                    run(c, &batch).await?;
                }
                c.execute(sql::MIGRATION_SET_CHECKSUM, &[&sum.as_str(), &m.version])
                    .await?;
                run(c, sql::TX_COMMIT).await?;
                Ok::<(), tiberius::error::Error>(())
            }
            .await;
            if let Err(e) = applied_ok {
                let _ = run(c, sql::ROLLBACK).await;
                return Err(self.db_error(&context, &e));
            }
            for object in sql::objects(m.sql) {
                tracing::debug!("migration {:04} {}: created {object}", m.version, m.name);
            }
            report
                .created
                .push(format!("migration {:04} {}", m.version, m.name));
        }
        self.schema_ready.store(true, Ordering::Relaxed);
        Ok(report)
    }

    /// Reads only, and works before `init-db` (it says what init-db would do).
    async fn diagnose(&self) -> Result<Vec<Diagnosis>, StoreError> {
        let mut pooled = self.conn().await?;
        let c: &mut Client = &mut pooled;
        Ok(ops::diagnose(c, &self.target).await)
    }
}
