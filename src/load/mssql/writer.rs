//! Writing prepared batches (`BatchWriter`): per batch, on one pooled connection, bulk-load
//! the `#stage_*` tables and run `sql/mssql/upsert_batch.sql`, one transaction. A lead the
//! server rejects is isolated by bisection and recorded in `bitrix_import_lead_error`; the
//! others load. A preview (`sync --dry-run`) does the same, each attempt rolled back.

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use tiberius::Query;

use super::{
    bulk, check_lock, entity_sql, lookup, run, server_text, sql, stage, Client, MssqlSink, TxError,
};
use crate::model::{clip_reason, Batch, RejectedLead};
use crate::prepare::{Fingerprints, PreparedBatch};
use crate::store::{BatchOutcome, BatchWriter, StoreError};

impl MssqlSink {
    /// Stage and upsert one batch, isolating leads the server rejects (see `BatchWriter::load_batch`).
    ///
    /// With `commit` false (a dry-run preview) every attempt is rolled back instead of
    /// committed; the bisection works the same, so the counts are what a load would report.
    async fn load_isolating(
        &self,
        c: &mut Client,
        (batch, fingerprints): (Batch, &Fingerprints),
        now: NaiveDateTime,
        commit: bool,
    ) -> Result<BatchOutcome, StoreError> {
        let mut total = BatchOutcome::default();
        // A stack rather than recursion: halves are pushed right-then-left so leads are
        // written in their original order.
        let mut pending = vec![batch];
        while let Some(b) = pending.pop() {
            match self.load_retrying(c, (&b, fingerprints), now, commit).await {
                Ok(o) => total.add(&o),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Rejected(why)) if stage::units(&b) > 1 => {
                    tracing::debug!(
                        leads = stage::units(&b),
                        "batch rejected by the server, splitting it: {why}"
                    );
                    let (left, right) = stage::split(b);
                    pending.push(right);
                    pending.push(left);
                }
                Err(Attempt::Rejected(why)) => match b.records.into_iter().next() {
                    Some(r) => {
                        tracing::warn!(
                            id = r.lead.id,
                            "SQL Server rejected the {}: {why}",
                            b.entity.name
                        );
                        pending.push(Batch {
                            entity: b.entity,
                            records: Vec::new(),
                            rejected: vec![RejectedLead {
                                lead_id: Some(r.lead.id.to_string()),
                                reason: clip_reason(&format!(
                                    "not loaded: SQL Server rejected the {}: {why}",
                                    b.entity.name
                                )),
                                raw_json: r.raw_json,
                            }],
                        });
                    }
                    // Even the error row alone cannot be written: nothing left to isolate.
                    None => {
                        return Err(StoreError::Database {
                            context: format!(
                                "writing the error row of {} {}",
                                b.entity.name,
                                b.rejected
                                    .first()
                                    .and_then(|r| r.lead_id.as_deref())
                                    .unwrap_or("(no ID)")
                            ),
                            reason: why,
                        })
                    }
                },
            }
        }
        Ok(total)
    }

    async fn load_retrying(
        &self,
        c: &mut Client,
        b: (&Batch, &Fingerprints),
        now: NaiveDateTime,
        commit: bool,
    ) -> Result<BatchOutcome, Attempt> {
        let mut tries = 0;
        loop {
            match self.load_once(c, b, now, commit).await {
                Err(TxError::Db(e)) if e.is_deadlock() && tries < self.opts.deadlock_retries => {
                    tries += 1;
                    tracing::info!(
                        try_no = tries,
                        "batch chosen as a deadlock victim; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                }
                Err(TxError::Db(e)) => {
                    return Err(if is_row_rejection(&e) {
                        Attempt::Rejected(self.target.scrub(&server_text(&e)))
                    } else {
                        Attempt::Fatal(self.db_error("loading a batch", &e))
                    })
                }
                Err(e @ TxError::LockLost(_)) => {
                    return Err(Attempt::Fatal(self.tx_error("loading a batch", &e)))
                }
                Ok(o) => return Ok(o),
            }
        }
    }

    /// One try: stage, upsert, read the counts. Rolls back on failure, and always when
    /// `commit` is false: then an outer transaction (`preview_begin.sql`) holds the staging
    /// and the upsert, whose own COMMIT only closes its nested transaction.
    async fn load_once(
        &self,
        c: &mut Client,
        b: (&Batch, &Fingerprints),
        now: NaiveDateTime,
        commit: bool,
    ) -> Result<BatchOutcome, TxError> {
        let token = self.token();
        let token = token.as_deref();
        let result = if commit {
            stage_and_upsert(c, b, now, token).await
        } else {
            async {
                run(c, sql::PREVIEW_BEGIN).await?;
                let outcome = stage_and_upsert(c, b, now, token).await?;
                run(c, sql::PREVIEW_END).await?;
                Ok(outcome)
            }
            .await
        };
        if result.is_err() {
            // Usually XACT_ABORT rolled back already; make sure, so the pooled connection
            // goes back clean. A failure here means the connection is gone anyway.
            if let Err(e) = run(c, sql::ROLLBACK).await {
                tracing::warn!(
                    "rollback after a failed batch failed: {}",
                    self.target.scrub(&e.to_string())
                );
            }
        }
        result
    }
}

enum Attempt {
    /// The server refused the data (constraint, conversion): worth isolating the lead.
    Rejected(String),
    /// Anything else (connection, permissions, schema): stop.
    Fatal(StoreError),
}

/// Errors that say "this data cannot go in", as opposed to "this cannot work at all".
/// Severity above 16 is a resource or system problem; the listed codes are about schema,
/// permissions, syntax or locking, which no subset of the batch would get past.
fn is_row_rejection(e: &tiberius::error::Error) -> bool {
    const NOT_ABOUT_DATA: [u32; 24] = [
        102, 137, 156, 207, 208, 229, 230, 262, 266, 297, 300, 701, 1105, 1205, 1222, 2714, 2812,
        3902, 3903, 4060, 4104, 8645, 9002, 18456,
    ];
    match e {
        tiberius::error::Error::Server(t) => t.class() <= 16 && !NOT_ABOUT_DATA.contains(&t.code()),
        _ => false,
    }
}

/// Set values the bulk path cannot carry, [`sql::LONG_CHUNK`] per statement.
async fn set_long(
    c: &mut Client,
    statement: &'static str,
    values: impl Iterator<Item = (i32, &str)>,
) -> tiberius::Result<()> {
    let values: Vec<(i32, &str)> = values.collect();
    for chunk in values.chunks(sql::LONG_CHUNK) {
        let mut q = Query::new(statement);
        for i in 0..sql::LONG_CHUNK {
            // A short chunk repeats its last pair: setting the same value twice is harmless
            // and keeps the statement text (and its parameter count) fixed.
            let (key, value) = chunk.get(i).or(chunk.last()).copied().unwrap_or((0, ""));
            q.bind(key);
            q.bind(value.to_string());
        }
        q.execute(c).await?;
    }
    Ok(())
}

async fn stage_and_upsert(
    c: &mut Client,
    (b, fingerprints): (&Batch, &Fingerprints),
    now: NaiveDateTime,
    token: Option<&str>,
) -> Result<BatchOutcome, TxError> {
    // The batch's entity's statements and staging tables (entity_sql.rs).
    let s = entity_sql::statements(b.entity);
    run(c, &s.stage_create).await?;
    run(c, sql::LOOKUP_STAGE_CREATE).await?;
    let errors = b.error_rows();
    let staged = stage::build(b, &errors, now);
    bulk(c, &s.stage, staged.records).await?;
    bulk(c, &s.stage_multi, staged.multi).await?;
    bulk(c, sql::STAGE_ERRORS, staged.errors).await?;
    bulk(c, sql::STAGE_PHONES, lookup::phone_rows(b)).await?;
    // This part's records only: a part of a bisected batch writes its own fingerprints.
    let fingerprint_rows = stage::fingerprint_rows(&fingerprints.rows_for(b));
    bulk(c, sql::STAGE_FINGERPRINTS, fingerprint_rows).await?;
    for (field, statement) in &s.stage_long_text {
        let values = staged
            .long_text
            .iter()
            .filter(|(f, _, _)| f == field)
            .map(|(_, id, text)| (*id, *text));
        set_long(c, statement, values).await?;
    }
    set_long(
        c,
        &s.stage_long_error_json,
        staged.long_error_json.iter().copied(),
    )
    .await?;

    // One transaction around the upsert, the phones and the fingerprints: upsert_batch.sql's
    // own BEGIN/COMMIT nest inside it, and XACT_ABORT (set by TX_BEGIN) rolls all of it back
    // on any failure, so the normalised phones always agree with the multi-field values and
    // a fingerprint never describes rows that were not committed.
    run(c, sql::TX_BEGIN).await?;
    check_lock(c, token).await?;
    let sets = run(c, &s.upsert_batch).await?;
    run(c, &s.phones_sync).await?;
    run(c, &s.fingerprints_sync).await?;
    run(c, sql::TX_COMMIT).await?;
    let row = sets.iter().rev().find_map(|s| s.first()).ok_or_else(|| {
        tiberius::error::Error::Protocol("upsert_batch.sql returned no counts".into())
    })?;
    let n = |name: &str| {
        row.get::<i32, _>(name)
            .map(|v| u64::try_from(v).unwrap_or(0))
            .unwrap_or(0)
    };
    Ok(BatchOutcome {
        leads_inserted: n("leads_inserted"),
        leads_updated: n("leads_updated"),
        leads_unchanged: n("leads_unchanged"),
        contacts_written: n("contacts_written"),
        contacts_deleted: n("contacts_deleted"),
        error_rows: n("error_rows"),
        error_rows_new: n("error_rows_new"),
    })
}

#[async_trait]
impl BatchWriter for MssqlSink {
    /// See `store::BatchWriter` for the contract. Unchanged leads are not
    /// touched; when the server rejects a row, the batch is rolled back and bisected until the
    /// rejected lead(s) are isolated, the rest is loaded, and each rejected lead gets an error
    /// row with the server's message.
    async fn load_batch(
        &self,
        batch: PreparedBatch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError> {
        self.write(batch, now, true).await
    }

    /// The same staging, upsert and bisection as `load_batch`, each attempt rolled back.
    async fn preview_batch(
        &self,
        batch: PreparedBatch,
        now: NaiveDateTime,
    ) -> Result<BatchOutcome, StoreError> {
        self.write(batch, now, false).await
    }
}

impl MssqlSink {
    /// A load (`commit`) or a preview of one batch, on one pooled connection.
    async fn write(
        &self,
        batch: PreparedBatch,
        now: NaiveDateTime,
        commit: bool,
    ) -> Result<BatchOutcome, StoreError> {
        let mut pooled = self.ready_conn().await?;
        let c: &mut Client = &mut pooled;
        // Prepared once, for both backends; the bisection below splits it into parts that
        // are still prepared (prepare's rules hold for every subset of a batch).
        let (batch, fingerprints) = batch.into_parts();
        if batch.is_empty() {
            return Ok(BatchOutcome::default());
        }
        self.load_isolating(c, (batch, &fingerprints), now, commit)
            .await
    }
}
